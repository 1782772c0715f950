package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// The peerlist scenario: with many makers connected, many connections each join, send
// three GETPEERLIST (the most the reference per-connection cap lets through at once) and
// never read another byte, so every answer (the whole maker list) sits in the
// directory's memory. The victims' view: the directory's memory (VmRSS, sampled every
// 100 ms), two bystanders' privmsg round trips before and during the attack, and the
// makers still connected at the end.

func init() {
	attacks["peerlist"] = attack{
		usage: "--makers 3000 --requesters 2000 --server-pid PID  GETPEERLISTs that are never read",
		setup: setupPeerlist,
	}
}

// getPeerlistLine is the request as the reference client would send it (docs/protocol.md
// §11.6).
var getPeerlistLine = appendEnvelope(nil, wire.TypeGetPeerlist, "")

// peerlistOptions are the peerlist scenario's flags.
type peerlistOptions struct {
	*common
	makers, requesters, requests int
	reqRcvbuf                    byteSize
	serverPID                    int
	samples                      int           // bystander round trips before the attack
	maxDuring                    int           // at most this many round trips during the attack
	interval                     time.Duration // pause between round trips
	replyTimeout                 time.Duration
	hold                         time.Duration // the attack window goes on this long after the last request
	drain                        time.Duration // then the requesters read what they got, at most this long
	settle                       time.Duration // after they close, before the last RSS reading
	rssEvery                     time.Duration
	maxRSS                       byteSize      // allowed RSS increase
	maxP99                       time.Duration // allowed bystander p99 during the attack
}

func setupPeerlist(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
	c.register(fs, false)
	o := &peerlistOptions{common: c, reqRcvbuf: 4096, maxRSS: 100e6}
	fs.IntVar(&o.makers, "makers", 3000, "makers connected (serving 127.0.0.1:<port>)")
	fs.IntVar(&o.requesters, "requesters", 2000, "connections that join, send --requests GETPEERLIST and never read")
	fs.IntVar(&o.requests, "requests", 3, "GETPEERLIST per requester, sent at once")
	fs.Var(&o.reqRcvbuf, "requester-rcvbuf", "SO_RCVBUF of the requesters, e.g. 4KiB")
	fs.IntVar(&o.serverPID, "server-pid", 0, "directory process id, to sample its VmRSS (required)")
	fs.IntVar(&o.samples, "samples", 300, "bystander round trips before the attack")
	fs.IntVar(&o.maxDuring, "max-during", 3000, "at most this many bystander round trips during the attack")
	fs.DurationVar(&o.interval, "interval", 10*time.Millisecond, "pause between bystander round trips (one in flight at a time)")
	fs.DurationVar(&o.replyTimeout, "reply-timeout", 5*time.Second, "a round trip slower than this is lost (and counts as this long)")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "the attack window lasts this long after the last requester has sent")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "after the window, the requesters read what they were sent, at most this long (tells which were cut)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "after the requesters close, wait this long before the last RSS reading")
	fs.DurationVar(&o.rssEvery, "rss-every", 100*time.Millisecond, "RSS sampling interval")
	fs.Var(&o.maxRSS, "max-rss-increase", "allowed growth of the directory's RSS, before → peak (100MB = 100·10⁶ bytes)")
	fs.DurationVar(&o.maxP99, "max-p99", 50*time.Millisecond, "allowed bystander round-trip p99 during the attack")
	return func() (*report, error) { return runPeerlist(ctx, o) }
}

// peerlistResult is what a peerlist run observed.
type peerlistResult struct {
	rssBefore, rssPeak, rssAfter int64 // before the attack, its peak in the window, after it
	rssPeakDrain                 int64 // peak while the requesters finally read

	before, during         []time.Duration // bystander round trips (lost ones count as the reply timeout)
	lostBefore, lostDuring int64
	window                 time.Duration // first requester's connect → end of the hold
	sendPhase              time.Duration // first connect → last requester's GETPEERLISTs written

	reqJoined, reqSent, reqSendErrs int64
	reqFailures                     map[string]int64
	reqCut                          int64 // saw EOF or a reset when they finally read
	reqCutClasses                   map[string]int64
	reqBytes, reqLines              int64 // what they read after the window
	reqAnswered                     int64 // requesters that got at least one 789

	makersCut, bystandersCut int64
	answerErrs               int64 // the bystander maker's answers that could not be written
}

// runPeerlist runs the scenario.
func runPeerlist(ctx context.Context, o *peerlistOptions) (*report, error) {
	if o.makers < 1 || o.requesters < 1 || o.requests < 1 || o.samples < 1 || o.maxDuring < 1 || o.interval < 0 || o.replyTimeout <= 0 || o.rssEvery <= 0 {
		return nil, errors.New("need --makers, --requesters, --requests, --samples, --max-during ≥ 1, --reply-timeout, --rss-every > 0")
	}
	if o.serverPID <= 0 {
		return nil, errors.New("--server-pid is required (the directory's RSS is the measure)")
	}
	if _, err := readRSS(o.serverPID); err != nil {
		return nil, fmt.Errorf("--server-pid %d: %w", o.serverPID, err)
	}
	if err := o.checkBudget(o.makers + o.requesters + 2); err != nil {
		return nil, err
	}
	specs := makeSpecs(o.makers, 1, 0)
	a := spec{id: newIdentity(), location: wire.NotServing}         // bystander taker
	b := spec{id: newIdentity(), location: makerLocation(o.makers)} // bystander maker
	specs = append(specs, a, b)
	reqSpecs := makeSpecs(o.requesters, 0, 0)

	// Every round trip is built and signed before the clock starts.
	nRT := o.samples + o.maxDuring
	fills := make([][]byte, nRT)
	answers := make([][]byte, nRT)
	var sg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		sg.Add(1)
		go func() {
			defer sg.Done()
			for i := w; i < nRT; i += runtime.GOMAXPROCS(0) {
				var rnd [64]byte
				_, _ = rand.Read(rnd[:])
				h := hex.EncodeToString(rnd[:])
				fills[i] = fillLine(a.id, b.id.nick, i, h)
				answers[i] = pubkeyLine(b.id, a.id.nick, i, h)
			}
		}()
	}
	sg.Wait()

	peers, err := joinEvery(ctx, o.progress, "peerlist", "makers ", o.dialer(4096), specs, o.concurrency)
	if err != nil {
		return nil, err
	}
	pa, pb := peers[o.makers], peers[o.makers+1]

	res := &peerlistResult{reqFailures: map[string]int64{}, reqCutClasses: map[string]int64{}}
	var (
		closing        atomic.Bool
		readers        sync.WaitGroup
		makersCut      atomic.Int64
		bystandersCut  atomic.Int64
		replies        = make(chan int, 64)
		answerErrs     atomic.Int64
		requesters     = make([]*peer, o.requesters)
		joined, sentN  atomic.Int64
		reqMu          sync.Mutex
		reqSendErrs    atomic.Int64
		fillTag        = []byte("!" + b.id.nick + "!fill ")
		pubkeyTag      = []byte(b.id.nick + "!" + a.id.nick + "!pubkey ")
		sampling       atomic.Int64 // round trips done, for progress
		samplePhase    atomic.Value
		shutdownOnce   sync.Once
		shutdownAlways = func() {
			shutdownOnce.Do(func() {
				closing.Store(true)
				closeAll(peers)
				reqMu.Lock()
				closeAll(requesters)
				reqMu.Unlock()
				readers.Wait()
			})
		}
	)
	defer shutdownAlways()
	samplePhase.Store("before")
	read := func(p *peer, cut *atomic.Int64, handle func([]byte)) {
		defer readers.Done()
		for {
			if err := p.readChunk(handle); err != nil {
				if !closing.Load() {
					cut.Add(1)
				}
				return
			}
		}
	}
	ignore := func([]byte) {}
	for _, p := range peers[:o.makers] {
		readers.Add(1)
		go read(p, &makersCut, ignore)
	}
	readers.Add(2)
	go read(pb, &bystandersCut, func(line []byte) {
		i := bytes.Index(line, fillTag)
		if i < 0 {
			return
		}
		n, ok := parseUint(line[i+len(fillTag):])
		if !ok || n >= int64(nRT) {
			return
		}
		if _, err := pb.write(answers[n], 5*time.Second); err != nil {
			answerErrs.Add(1)
		}
	})
	go read(pa, &bystandersCut, func(line []byte) {
		i := bytes.Index(line, pubkeyTag)
		if i < 0 || len(line) < i+len(pubkeyTag)+16 {
			return
		}
		n, err := strconv.ParseUint(string(line[i+len(pubkeyTag):i+len(pubkeyTag)+16]), 16, 64)
		if err != nil {
			return
		}
		select {
		case replies <- int(n):
		default:
		}
	})

	pr := startProgress(o.progress, "peerlist", func() string {
		return fmt.Sprintf("%s: round trips=%d requesters joined=%d sent=%d makers cut=%d",
			samplePhase.Load(), sampling.Load(), joined.Load(), sentN.Load(), makersCut.Load())
	})
	defer pr.stop()

	// roundTrips measures round trips first … first+max-1 until stop is closed (or max).
	roundTrips := func(first, n int, stop <-chan struct{}) (rtts []time.Duration, lost int64, err error) {
		for i := first; i < first+n; i++ {
			select {
			case <-stop:
				return rtts, lost, nil
			default:
			}
			t0 := time.Now()
			if _, err := pa.write(fills[i], 5*time.Second); err != nil {
				return rtts, lost, fmt.Errorf("bystander cannot send: %w", err)
			}
			timer := time.NewTimer(o.replyTimeout)
		wait:
			for {
				select {
				case <-ctx.Done():
					timer.Stop()
					return rtts, lost, ctx.Err()
				case r := <-replies:
					if r == i {
						rtts = append(rtts, time.Since(t0))
						break wait
					}
				case <-timer.C:
					lost++
					rtts = append(rtts, o.replyTimeout)
					break wait
				}
			}
			timer.Stop()
			sampling.Add(1)
			if err := sleepCtx(ctx, o.interval); err != nil {
				return rtts, lost, err
			}
		}
		return rtts, lost, nil
	}

	// Before.
	if res.before, res.lostBefore, err = roundTrips(0, o.samples, nil); err != nil {
		return nil, err
	}
	if res.rssBefore, err = readRSS(o.serverPID); err != nil {
		return nil, err
	}

	// The attack, with the bystanders sampling all along.
	samplePhase.Store("attack")
	rss := startRSS(o.serverPID, o.rssEvery)
	stopSampling := make(chan struct{})
	type sampled struct {
		rtts []time.Duration
		lost int64
		err  error
	}
	during := make(chan sampled, 1)
	go func() {
		r, l, err := roundTrips(o.samples, o.maxDuring, stopSampling)
		during <- sampled{r, l, err}
	}()
	attackStart := time.Now()
	d := o.dialer(1024)
	d.rcvbuf = int(o.reqRcvbuf)
	burst := bytes.Repeat(getPeerlistLine, o.requests)
	sem := make(chan struct{}, max(o.concurrency, 1))
	var jg sync.WaitGroup
	for i := range reqSpecs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		jg.Add(1)
		go func() {
			defer func() { <-sem; jg.Done() }()
			p, err := d.join(ctx, reqSpecs[i].id, reqSpecs[i].location)
			if err != nil {
				reqMu.Lock()
				res.reqFailures[failReason(err)]++
				reqMu.Unlock()
				return
			}
			joined.Add(1)
			reqMu.Lock()
			if closing.Load() {
				reqMu.Unlock()
				p.conn.Close()
				return
			}
			requesters[i] = p
			reqMu.Unlock()
			if _, err := p.write(burst, 5*time.Second); err != nil {
				reqSendErrs.Add(1)
				return
			}
			sentN.Add(1)
		}()
	}
	jg.Wait()
	res.sendPhase = time.Since(attackStart)
	_ = sleepCtx(ctx, o.hold)
	close(stopSampling)
	s := <-during
	res.window = time.Since(attackStart)
	peak, rssErr := rss.finish()
	if s.err != nil {
		return nil, s.err
	}
	if rssErr != nil {
		return nil, rssErr
	}
	res.rssPeak = peak
	res.during, res.lostDuring = s.rtts, s.lost
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// The requesters finally read: what they were sent, and whether the directory had
	// cut them (EOF or a reset once the data before it is read). A peer that never reads
	// cannot tell when that happened.
	samplePhase.Store("requesters reading")
	rss = startRSS(o.serverPID, o.rssEvery)
	drainRequesters(requesters, o.drain, res)
	if res.rssPeakDrain, err = rss.finish(); err != nil {
		return nil, err
	}
	reqMu.Lock()
	closeAll(requesters)
	reqMu.Unlock()
	samplePhase.Store("settling")
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}
	if res.rssAfter, err = readRSS(o.serverPID); err != nil {
		return nil, err
	}
	res.reqJoined, res.reqSent, res.reqSendErrs = joined.Load(), sentN.Load(), reqSendErrs.Load()
	shutdownAlways()
	res.makersCut, res.bystandersCut = makersCut.Load(), bystandersCut.Load()
	res.answerErrs = answerErrs.Load()
	return buildPeerlistReport(o, res), nil
}

// drainIdle ends a requester's final read once nothing has arrived for this long.
const drainIdle = 3 * time.Second

// drainRequesters reads every requester, all at once, until it ends (cut), or nothing
// more arrives for drainIdle, or the drain time is up, and records bytes, lines and cuts
// in res.
func drainRequesters(reqs []*peer, drain time.Duration, res *peerlistResult) {
	deadline := time.Now().Add(drain)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range reqs {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Now a normal reader: a receive window that could never hold one loopback
			// segment would leave the directory's kernel to zero-window probes, seconds
			// apart.
			if tc, ok := p.conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(1 << 20)
			}
			// The handshake reader may have buffered lines after the 795.
			lines := int64(bytes.Count(p.buf[p.r:p.w], []byte{'\n'}))
			n := int64(p.w - p.r)
			buf := make([]byte, 16<<10)
			var err error
			for {
				dl := time.Now().Add(drainIdle)
				if dl.After(deadline) {
					dl = deadline
				}
				_ = p.conn.SetReadDeadline(dl)
				var k int
				k, err = p.conn.Read(buf)
				n += int64(k)
				lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
				if err != nil {
					break
				}
			}
			var ne net.Error
			cut := !errors.As(err, &ne) || !ne.Timeout()
			mu.Lock()
			defer mu.Unlock()
			res.reqBytes += n
			res.reqLines += lines
			if lines > 0 {
				res.reqAnswered++
			}
			if cut {
				res.reqCut++
				res.reqCutClasses[errClass(err)]++
			}
		}()
	}
	wg.Wait()
}

// buildPeerlistReport reports a peerlist run and checks the targets.
func buildPeerlistReport(o *peerlistOptions, r *peerlistResult) *report {
	rep := newReport("peerlist")
	rep.add("target", fmt.Sprintf("RSS increase (before → peak in the attack window) ≤ %.1f MiB; bystander round-trip p99 ≤ %v during the attack", mib(int64(o.maxRSS)), o.maxP99), "")
	rep.add("makers", o.makers, "")
	rep.add("requesters", o.requesters, fmt.Sprintf("× %d GETPEERLIST, never read (SO_RCVBUF %d)", o.requests, int64(o.reqRcvbuf)))
	rep.add("requesters_joined", r.reqJoined, "")
	rep.add("requesters_sent", r.reqSent, "")
	rep.add("requester_send_errors", r.reqSendErrs, "")
	rep.add("requester_join_failures", r.reqFailures, "")
	rep.addMs("send_phase", r.sendPhase)
	rep.addMs("attack_window", r.window)
	rep.add("server_rss_before", mib(r.rssBefore), "MiB")
	rep.add("server_rss_peak", mib(r.rssPeak), "MiB")
	rep.add("server_rss_peak_while_requesters_read", mib(r.rssPeakDrain), "MiB")
	rep.add("server_rss_after", mib(r.rssAfter), "MiB")
	inc := r.rssPeak - r.rssBefore
	rep.add("server_rss_increase", mib(inc), "MiB")
	rep.addLatencies("bystander_rtt_before", r.before)
	rep.add("bystander_lost_before", r.lostBefore, "")
	rep.addLatencies("bystander_rtt_during", r.during)
	rep.add("bystander_lost_during", r.lostDuring, fmt.Sprintf("(counted as %v)", o.replyTimeout))
	rep.add("requesters_cut", r.reqCut, "(seen when they read after the window; when is not visible to a peer that does not read)")
	rep.add("requester_cut_seen_as", r.reqCutClasses, "")
	rep.add("requesters_answered", r.reqAnswered, "(got at least one line)")
	rep.add("requester_bytes_received", r.reqBytes, "")
	rep.add("requester_lines_received", r.reqLines, "")
	rep.add("makers_connected_at_end", int64(o.makers)-r.makersCut, fmt.Sprintf("of %d", o.makers))
	rep.add("bystanders_cut", r.bystandersCut, "")
	rep.add("bystander_answer_errors", r.answerErrs, "")
	if inc > int64(o.maxRSS) {
		rep.fail("the directory's RSS grew by %.1f MiB (%.1f → %.1f MiB), more than %.1f MiB", mib(inc), mib(r.rssBefore), mib(r.rssPeak), mib(int64(o.maxRSS)))
	}
	sorted := slices.Clone(r.during)
	slices.Sort(sorted)
	if p99 := percentile(sorted, 99); len(sorted) == 0 || p99 > o.maxP99 {
		rep.fail("bystander round-trip p99 during the attack %.3f ms (%d samples, %d lost), want ≤ %v", float64(p99)/1e6, len(r.during), r.lostDuring, o.maxP99)
	}
	if r.makersCut > 0 {
		rep.fail("%d of %d makers were cut", r.makersCut, o.makers)
	}
	if r.bystandersCut > 0 {
		rep.fail("%d bystanders were cut", r.bystandersCut)
	}
	return rep
}
