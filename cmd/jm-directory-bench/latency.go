package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// latencyOptions are the latency scenario's flags.
type latencyOptions struct {
	*common
	peers        int
	publishers   int
	bgRate       float64 // background deliveries/s, all receivers together
	samples      int
	interval     time.Duration // pause between round trips
	warmup       time.Duration
	replyTimeout time.Duration
	drain        time.Duration

	relay        bool          // also measure through the reference relay
	relayProcess bool          // run that relay in a child process (else in this one)
	block        int           // round trips per block; directory and relay blocks alternate
	blockWarmup  time.Duration // background before every block but each target's first

	// serveRelay, when set, makes this process the reference relay's child process
	// (see serveLatencyRelay): it serves on this address until stdin ends.
	serveRelay string
	stdin      io.Reader
	stdout     io.Writer
}

// p99RatioGoal is the latency goal judged against the machine: our round-trip p99 at most
// this many times the reference relay's, measured in the same run. It is reported
// (p99_ratio_ok), never a failure: the exit status is for correctness.
const p99RatioGoal = 1.5

// reply is B's answer as A's reader saw it.
type reply struct {
	n  int
	at time.Time
}

// latTarget is one system the round trips go through — the directory, or the reference
// relay — with its own connections (the same identities on each), background and results.
type latTarget struct {
	name    string
	peers   []*peer
	pa      *peer // A, the taker that sends !fill and times the answer
	f       *fanout
	bg      *background
	replies chan reply
	bErrors atomic.Int64 // B's answers that could not be sent
	done    atomic.Int64 // round trips finished (answered or lost), for progress
	lost    atomic.Int64
	warmed  bool // has had its first (long) warm-up

	rtts     []time.Duration
	sampling time.Duration // time spent sampling, all blocks
	bgWhile  int64         // background lines delivered while sampling
}

// runLatency measures privmsg round trips A → B → A (a taker's !fill, the maker's
// !pubkey) through the directory while K of N background peers publish offers paced so
// that the directory delivers about bgRate lines/s in total.
//
// Unless --relay=false, the same round trips also go through a reference relay (relay.go's
// relay with privmsg routing, latency_relay.go) with the same peers, publishers and
// background rate, so that our tail is judged against what this machine does with no
// directory logic: the report adds the relay's percentiles and our p99 as a ratio of its.
// To keep the comparison fair against a shared, noisy machine, the two are measured in
// alternating blocks of --block round trips: directory, relay, directory, …. Each target
// has its own set of connections, joined up front; a block switches its target's
// background on, lets it run for --block-warmup (--warmup before each target's first
// block), samples, then switches it off and waits until every background line has
// arrived. So only one background runs at a time (the machine carries what a
// directory-only run puts on it), both are sampled under the same offered load, and slow
// drifts of the machine (other processes, frequency, caches) fall on both alike instead
// of on whichever ran second. By default the relay runs in a child process, as the
// directory does in the documented setup, so neither shares the load generator's Go
// scheduler.
func runLatency(ctx context.Context, o *latencyOptions) (*report, error) {
	if o.serveRelay != "" {
		return serveLatencyRelay(ctx, o.serveRelay, o.network, o.stdin, o.stdout)
	}
	if o.peers < 2 || o.publishers < 1 || o.publishers > o.peers || o.samples < 1 || o.bgRate < 0 || o.block < 1 {
		return nil, errors.New("need --peers ≥ 2, 1 ≤ --publishers ≤ --peers, --samples ≥ 1, --bg-rate ≥ 0, --block ≥ 1")
	}
	nTargets := 1
	if o.relay {
		nTargets = 2
	}
	if err := o.checkBudget(nTargets * (o.peers + 2)); err != nil {
		return nil, err
	}
	specs := makeSpecs(o.peers, o.makers, 0)
	a := spec{id: newIdentity(), location: wire.NotServing}        // taker
	b := spec{id: newIdentity(), location: makerLocation(o.peers)} // maker
	specs = append(specs, a, b)

	// Every message of the run is built and signed before the clock starts; each target
	// sends the same lines.
	fills := make([][]byte, o.samples)
	answers := make([][]byte, o.samples)
	for i := range o.samples {
		var rnd [64]byte
		_, _ = rand.Read(rnd[:])
		h := hex.EncodeToString(rnd[:])
		fills[i] = fillLine(a.id, b.id.nick, i, h)
		answers[i] = pubkeyLine(b.id, a.id.nick, i, h)
	}
	tags := latTags{fill: []byte("!" + b.id.nick + "!fill "), pubkey: []byte(b.id.nick + "!" + a.id.nick + "!pubkey ")}

	var targets []*latTarget
	defer func() {
		for _, t := range targets {
			t.f.shutdown()
		}
	}()
	var rl *latencyRelay
	stopRelay := func() (int64, error) {
		if rl == nil {
			return 0, nil
		}
		r := rl
		rl = nil
		return r.stop()
	}
	defer func() { _, _ = stopRelay() }()

	// Background: every pubmsg reaches all other peers (A and B included).
	recipients := float64(len(specs) - 1)
	cfg := fanoutConfig{peers: len(specs), publishers: o.publishers, rate: o.bgRate / recipients / float64(o.publishers),
		drain: o.drain, writeTimeout: 5 * time.Second}
	if o.bgRate <= 0 {
		cfg.publishers, cfg.rate = 0, 0 // no background (rate 0 would mean "as fast as possible")
	}
	d := o.dialer(64 << 10)
	t, err := setupLatTarget(ctx, o, "directory", d, specs, cfg, answers, tags)
	if err != nil {
		return nil, err
	}
	targets = append(targets, t)
	block := o.samples
	if o.relay {
		if rl, err = startLatencyRelay(o); err != nil {
			return nil, fmt.Errorf("reference relay: %w", err)
		}
		rd := *d
		rd.addr = rl.addr
		t, err := setupLatTarget(ctx, o, "relay", &rd, specs, cfg, answers, tags)
		if err != nil {
			return nil, fmt.Errorf("reference relay: %w", err)
		}
		targets = append(targets, t)
		block = o.block
	}
	relayWhere := "off"
	if rl != nil {
		relayWhere = rl.where
	}

	k0 := tcpCounters()
	start := time.Now()
	pr := startProgress(o.progress, "latency", func() string {
		var s []string
		for _, t := range targets {
			s = append(s, fmt.Sprintf("%s: samples=%d/%d lost=%d background: %s", t.name, t.done.Load(), o.samples, t.lost.Load(), t.f.status(start)))
		}
		return strings.Join(s, "; ")
	})
	var sampleErr error
	blocks := 0
	for from := 0; from < o.samples && sampleErr == nil; from += block {
		to := min(from+block, o.samples)
		for _, t := range targets {
			if sampleErr = t.sampleBlock(ctx, o, fills, from, to); sampleErr != nil {
				break
			}
		}
		blocks++
	}
	k1 := tcpCounters()
	pr.stop()
	for _, t := range targets {
		t.f.shutdown()
	}
	relayCut, relayErr := stopRelay()
	if sampleErr != nil {
		return nil, sampleErr
	}

	rep := newReport("latency")
	rep.add("peers", o.peers, "+ A and B")
	rep.add("publishers", o.publishers, "")
	rep.add("target_bg_rate", o.bgRate, "lines/s")
	rep.add("rate_per_publisher", round3(cfg.rate), "pubmsgs/s")
	rep.add("relay", relayWhere, "")
	if o.relay {
		rep.add("blocks", blocks, "per target, alternating")
		rep.add("block_samples", block, "")
	}
	dir := targets[0]
	rep.add("achieved_bg_rate", rate(dir.bgWhile, dir.sampling), "lines/s (while sampling)")
	rep.addMs("sampling", dir.sampling)
	rep.add("samples", o.samples, "")
	rep.addMs("interval", o.interval)
	rep.add("lost", dir.lost.Load(), "")
	rep.addLatencies("rtt", dir.rtts)
	tot := dir.totals()
	tot.kernel = kernelDelta(k0, k1)
	tot.addTo(rep, "bg_")
	dir.checks(rep, "", o)
	if o.relay {
		rl := targets[1]
		rep.add("relay_achieved_bg_rate", rate(rl.bgWhile, rl.sampling), "lines/s (while sampling)")
		rep.addMs("relay_sampling", rl.sampling)
		rep.add("relay_lost", rl.lost.Load(), "")
		rep.addLatencies("relay_rtt", rl.rtts)
		sub := newReport("")
		rl.totals().addTo(sub, "relay_bg_")
		rep.fields = append(rep.fields, sub.fields...)
		for _, f := range sub.Failures {
			rep.fail("relay background: %s", f)
		}
		rep.add("relay_cut", relayCut, "connections (write deadline missed)")
		if relayErr != nil {
			rep.fail("reference relay: %v", relayErr)
		}
		rl.checks(rep, "relay: ", o)
		// The ratios, from the unrounded percentiles (addLatencies sorted both).
		ours, theirs := percentile(dir.rtts, 99), percentile(rl.rtts, 99)
		if len(dir.rtts) > 0 && len(rl.rtts) > 0 && theirs > 0 {
			rep.add("p50_ratio", round3(float64(percentile(dir.rtts, 50))/float64(percentile(rl.rtts, 50))), "our p50 / the relay's")
			ratio := float64(ours) / float64(theirs)
			rep.add("p99_ratio", round3(ratio), "our p99 / the relay's")
			rep.add("p99_ratio_goal", p99RatioGoal, "at most")
			rep.add("p99_ratio_ok", ratio <= p99RatioGoal, fmt.Sprintf("goal: p99 ≤ %g× the relay's (reported, not a failure)", p99RatioGoal))
		}
	}
	return rep, nil
}

// latTags recognise the round trip's lines: the fill B receives, the answer A receives.
type latTags struct{ fill, pubkey []byte }

// setupLatTarget joins every spec through d, arms A and B and starts the readers; the
// background stays off until the first block.
func setupLatTarget(ctx context.Context, o *latencyOptions, name string, d *dialer, specs []spec, cfg fanoutConfig, answers [][]byte, tags latTags) (*latTarget, error) {
	what := ""
	if name != "directory" {
		what = name + ": "
	}
	peers, err := joinEvery(ctx, o.progress, "latency", what, d, specs, o.concurrency)
	if err != nil {
		return nil, err
	}
	n := len(specs) - 2
	t := &latTarget{name: name, peers: peers, pa: peers[n], replies: make(chan reply, len(answers))}
	t.f = newFanout(cfg, peers)
	t.bg = newBackground(t.f)
	pb := peers[n+1]
	ra, rb := t.f.recvs[n], t.f.recvs[n+1]
	// B answers each fill with its pre-signed !pubkey (the directory's 789 after each
	// relayed privmsg does not match and is skipped).
	rb.extra = func(line []byte) {
		i := bytes.Index(line, tags.fill)
		if i < 0 {
			return
		}
		k, ok := parseUint(line[i+len(tags.fill):])
		if !ok || k >= int64(len(answers)) {
			return
		}
		if _, err := pb.write(answers[k], 5*time.Second); err != nil {
			t.bErrors.Add(1)
		}
	}
	ra.extra = func(line []byte) {
		i := bytes.Index(line, tags.pubkey)
		if i < 0 || len(line) < i+len(tags.pubkey)+16 {
			return
		}
		k, err := strconv.ParseUint(string(line[i+len(tags.pubkey):i+len(tags.pubkey)+16]), 16, 64)
		if err != nil {
			return
		}
		select {
		case t.replies <- reply{n: int(k), at: time.Now()}:
		default:
		}
	}
	t.f.startReaders()
	return t, nil
}

// sampleBlock runs round trips from..to-1 through t with t's background on, then
// switches the background off and waits until it has drained.
func (t *latTarget) sampleBlock(ctx context.Context, o *latencyOptions, fills [][]byte, from, to int) error {
	t.bg.start()
	warm := o.blockWarmup
	if !t.warmed {
		warm, t.warmed = o.warmup, true
	}
	err := sleepCtx(ctx, warm)
	bg0, s0 := t.f.delivered.Load(), time.Now()
	for i := from; i < to && err == nil; i++ {
		t0 := time.Now()
		if _, werr := t.pa.write(fills[i], 5*time.Second); werr != nil {
			err = fmt.Errorf("%s: A cannot send: %w", t.name, werr)
			break
		}
		deadline := time.NewTimer(o.replyTimeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				err = ctx.Err()
				break wait
			case r := <-t.replies:
				if r.n == i {
					t.rtts = append(t.rtts, r.at.Sub(t0))
					break wait
				}
			case <-deadline.C:
				t.lost.Add(1)
				break wait
			}
		}
		deadline.Stop()
		t.done.Add(1)
		if o.interval > 0 && err == nil {
			err = sleepCtx(ctx, o.interval)
		}
	}
	t.sampling += time.Since(s0)
	t.bgWhile += t.f.delivered.Load() - bg0
	t.bg.stop()
	t.f.waitDrained(ctx)
	return err
}

// totals is the background's accounting (call after the fan-out's shutdown). The
// background ran only during t's blocks, so its wall time is the time it was on plus the
// last drain, not the whole run.
func (t *latTarget) totals() fanoutTotals {
	tot := t.f.account()
	if !tot.pubsDone.IsZero() {
		tot.first = tot.pubsDone.Add(-t.bg.active)
		if tot.last.After(tot.first) {
			tot.wall = tot.last.Sub(tot.first)
		}
	}
	return tot
}

// checks adds t's correctness failures to rep.
func (t *latTarget) checks(rep *report, prefix string, o *latencyOptions) {
	if n := t.lost.Load(); n > 0 {
		rep.fail("%s%d of %d round trips got no reply within %v", prefix, n, o.samples, o.replyTimeout)
	}
	if n := t.bErrors.Load(); n > 0 {
		rep.fail("%sB could not send %d replies", prefix, n)
	}
}

// background runs a fan-out's publishers at their paced rate (cfg.rate > 0), switched on
// and off block by block. Sequence numbers continue across blocks, so the fan-out's
// accounting (every line delivered once, in order) covers the whole run. A switch-off
// lets a write in progress finish: half a line would garble the first line of the next
// block. Only a write still stuck past its deadline after the switch-off is abandoned,
// and its publisher is then out for the rest of the run (counted as a write error).
type background struct {
	f      *fanout
	seq    []int64 // next sequence number per publisher; owned by its goroutine while on
	stopCh chan struct{}
	wg     sync.WaitGroup
	on     time.Time
	active time.Duration // total time switched on
}

func newBackground(f *fanout) *background {
	return &background{f: f, seq: make([]int64, len(f.pubs))}
}

// start switches the publishers on.
func (b *background) start() {
	b.stopCh = make(chan struct{})
	b.on = time.Now()
	for i, pb := range b.f.pubs {
		if pb.failed.Load() {
			continue
		}
		b.wg.Add(1)
		go func() { defer b.wg.Done(); b.publish(i, pb, b.stopCh) }()
	}
}

// stop switches them off and waits until each has finished its write.
func (b *background) stop() {
	close(b.stopCh)
	b.wg.Wait()
	b.active += time.Since(b.on)
	b.f.pubsDone.Store(time.Now().UnixNano())
}

// publish writes publisher i's offers at cfg.rate, counting from now, until stop closes.
func (b *background) publish(i int, pb *publisher, stop <-chan struct{}) {
	rate := b.f.cfg.rate
	seq := b.seq[i]
	defer func() { b.seq[i] = seq }()
	base, t0 := seq, time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, 8<<10)
	for {
		select {
		case <-stop:
			return
		default:
		}
		// Line seq is due at t0 + (seq-base+1)/rate: a block's first line one interval
		// after the switch-on, so that blocks add no line beyond the rate.
		elapsed := time.Since(t0)
		due := base + int64(rate*elapsed.Seconds()) - seq
		if due <= 0 {
			next := time.Duration(float64(seq-base+1) / rate * float64(time.Second))
			timer.Reset(max(next-elapsed, 200*time.Microsecond))
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			continue
		}
		n := min(due, batchMax)
		buf = buf[:0]
		for k := int64(0); k < n; k++ {
			buf = appendOffer(buf, pb.prefix, pb.suffix, seq+k)
		}
		b.f.firstSend.CompareAndSwap(0, time.Now().UnixNano())
		data := buf
		for {
			w, err := pb.p.write(data, b.f.cfg.writeTimeout)
			data = data[w:]
			if err == nil {
				break
			}
			stopped := false
			select {
			case <-stop:
				stopped = true
			default:
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !stopped {
				pb.stalls.Add(1)
				continue
			}
			pb.failed.Store(true)
			seq += int64(bytes.Count(buf[:len(buf)-len(data)], []byte{'\n'}))
			pb.sent.Store(seq)
			return
		}
		seq += n
		pb.sent.Store(seq)
	}
}
