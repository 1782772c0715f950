package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutConfig is what the fanout and ceiling scenarios (and latency's background) take.
type fanoutConfig struct {
	peers        int
	publishers   int
	duration     time.Duration
	rate         float64 // lines/s per publisher; 0 = as fast as the socket takes them
	size         int     // pad lines to about this many bytes; 0 = natural (~80 bytes)
	drain        time.Duration
	writeTimeout time.Duration
}

// fanout drives K publishers among a set of connected peers and accounts for every line:
// each offer a publisher writes is tagged by its nick and sequence number (the offer id),
// so each receiver counts exactly what it got from whom.
type fanout struct {
	cfg     fanoutConfig
	pubOf   map[string]int // publisher nick → index; read-only once running
	pubKeys [][2]uint64    // the same as two little-endian words per nick, when few
	pubs    []*publisher
	recvs   []*receiver // every peer, publishers included

	closing   atomic.Bool  // we are closing the connections: read errors are not cuts
	firstSend atomic.Int64 // unix ns of the first write of any publisher
	pubsDone  atomic.Int64 // unix ns when the last publisher stopped
	delivered atomic.Int64 // tagged offers received, all receivers
	cuts      atomic.Int64
	readers   sync.WaitGroup
}

type publisher struct {
	p              *peer
	prefix, suffix []byte
	sent           atomic.Int64 // complete lines written
	stalls         atomic.Int64 // writes that hit their deadline (retried until the run ends)
	failed         atomic.Bool  // a write failed otherwise (connection gone)
}

type receiver struct {
	p     *peer
	got   []int64 // per publisher; owned by the reader goroutine until readers.Wait
	next  []int64 // next expected sequence number per publisher
	ooo   int64   // offers that did not carry the next expected sequence number
	other int64   // lines that are not tagged offers (peerlists, notices, …)
	total atomic.Int64
	last  atomic.Int64 // unix ns of the last read that brought tagged offers
	// extra handles lines that are not tagged offers (latency's A and B); may be nil.
	extra func(line []byte)
}

// newFanout makes publishers of peers[:publishers]; every peer is a receiver.
func newFanout(cfg fanoutConfig, peers []*peer) *fanout {
	f := &fanout{cfg: cfg, pubOf: make(map[string]int, cfg.publishers)}
	for i := 0; i < cfg.publishers; i++ {
		p := peers[i]
		pre, suf := offerTemplate(p.id.nick, cfg.size)
		f.pubs = append(f.pubs, &publisher{p: p, prefix: pre, suffix: suf})
		f.pubOf[p.id.nick] = i
	}
	if len(f.pubs) <= 16 {
		f.pubKeys = make([][2]uint64, len(f.pubs))
		for i, pb := range f.pubs {
			n := []byte(pb.p.id.nick)
			f.pubKeys[i] = [2]uint64{binary.LittleEndian.Uint64(n), binary.LittleEndian.Uint64(n[8:])}
		}
	}
	for _, p := range peers {
		f.recvs = append(f.recvs, &receiver{p: p, got: make([]int64, len(f.pubs)), next: make([]int64, len(f.pubs))})
	}
	return f
}

// lineBytes is the size of a typical offer line, without CRLF.
func (f *fanout) lineBytes() int {
	if len(f.pubs) == 0 {
		return 0
	}
	return len(appendOffer(nil, f.pubs[0].prefix, f.pubs[0].suffix, 1000)) - 2
}

var (
	publicSep   = []byte("!PUBLIC!")
	offerPrefix = []byte("sw0reloffer ")
)

// parseOffer recognises "<publisher nick>!PUBLIC!sw0reloffer <seq> …" in line,
// independent of the directory's JSON spacing. It runs for every delivered line, so it
// first tries the two usual places of the nick (right after `{"type":687,"line":"` or
// `{"type": 687, "line": "`) before searching.
func (f *fanout) parseOffer(line []byte) (pub int, seq int64, ok bool) {
	i := -1
	for _, off := range [...]int{len(`{"type":687,"line":"`), len(`{"type": 687, "line": "`)} {
		if len(line) > off+24 && line[off-1] == '"' && string(line[off+16:off+24]) == "!PUBLIC!" {
			i = off + 16
			break
		}
	}
	if i < 0 {
		if i = bytes.Index(line, publicSep); i < 16 {
			return 0, 0, false
		}
	}
	if pub, ok = f.publisherOf(line[i-16 : i]); !ok {
		return 0, 0, false
	}
	rest := line[i+len(publicSep):]
	if !bytes.HasPrefix(rest, offerPrefix) {
		return 0, 0, false
	}
	seq, ok = parseUint(rest[len(offerPrefix):])
	return pub, seq, ok
}

// publisherOf maps a 16-byte nick to its publisher: a linear scan over two words per
// publisher for a handful of them (cheaper than hashing), the map otherwise.
func (f *fanout) publisherOf(nick []byte) (int, bool) {
	if f.pubKeys == nil {
		pub, ok := f.pubOf[string(nick)]
		return pub, ok
	}
	a, b := binary.LittleEndian.Uint64(nick), binary.LittleEndian.Uint64(nick[8:])
	for i, k := range f.pubKeys {
		if k[0] == a && k[1] == b {
			return i, true
		}
	}
	return 0, false
}

// startReaders starts one reader goroutine per receiver.
func (f *fanout) startReaders() {
	for _, r := range f.recvs {
		f.readers.Add(1)
		go f.readLoop(r)
	}
}

func (f *fanout) readLoop(r *receiver) {
	defer f.readers.Done()
	var n int64
	handle := func(line []byte) {
		if pi, seq, ok := f.parseOffer(line); ok {
			r.got[pi]++
			if seq != r.next[pi] {
				r.ooo++
			}
			r.next[pi] = seq + 1
			n++
			return
		}
		if !f.closing.Load() { // not the ;D notices of our own shutdown
			r.other++
		}
		if r.extra != nil {
			r.extra(line)
		}
	}
	for {
		err := r.p.readChunk(handle)
		if n > 0 {
			r.total.Add(n)
			f.delivered.Add(n)
			r.last.Store(time.Now().UnixNano())
			n = 0
		}
		if err != nil {
			if !f.closing.Load() {
				r.p.cut.Store(true)
				f.cuts.Add(1)
			}
			return
		}
	}
}

// publish runs every publisher until stop is closed (or it cannot write any more).
func (f *fanout) publish(stop <-chan struct{}) {
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for _, pb := range f.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.publishOne(pb, &stopped)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-stop:
		// Stop now: unblock writes stuck on a full socket (again and again, in case a
		// publisher set a fresh deadline just after).
		stopped.Store(true)
		for {
			for _, pb := range f.pubs {
				_ = pb.p.conn.SetWriteDeadline(time.Now())
			}
			select {
			case <-done:
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
	}
	f.pubsDone.Store(time.Now().UnixNano())
}

// batchMax bounds the lines per write.
const batchMax = 64

func (f *fanout) publishOne(pb *publisher, stopped *atomic.Bool) {
	rate := f.cfg.rate
	buf := make([]byte, 0, 32<<10)
	var seq int64
	t0 := time.Now()
	for !stopped.Load() {
		n := int64(batchMax)
		if rate > 0 {
			// Line seq is due at t0 + seq/rate.
			elapsed := time.Since(t0)
			due := int64(rate*elapsed.Seconds()) + 1 - seq
			if due <= 0 {
				next := time.Duration(float64(seq) / rate * float64(time.Second))
				time.Sleep(max(next-elapsed, 200*time.Microsecond))
				continue
			}
			n = min(due, batchMax)
		}
		buf = buf[:0]
		for i := int64(0); i < n; i++ {
			buf = appendOffer(buf, pb.prefix, pb.suffix, seq+i)
		}
		f.firstSend.CompareAndSwap(0, time.Now().UnixNano())
		// A write blocked longer than the deadline is counted and retried with what is
		// left of the batch, until the run is over: then the publisher gives up, and a
		// line it wrote only partly is never completed, so the directory discards it.
		data := buf
		for {
			w, err := pb.p.write(data, f.cfg.writeTimeout)
			data = data[w:]
			if err == nil {
				break
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !stopped.Load() {
					pb.stalls.Add(1)
					continue
				}
			} else {
				pb.failed.Store(true)
			}
			seq += int64(bytes.Count(buf[:len(buf)-len(data)], []byte{'\n'}))
			pb.sent.Store(seq)
			return
		}
		seq += n
		pb.sent.Store(seq)
	}
}

// sent is the total number of lines written by all publishers.
func (f *fanout) sent() int64 {
	var s int64
	for _, pb := range f.pubs {
		s += pb.sent.Load()
	}
	return s
}

// pending reports whether a live receiver still lacks lines: each should get every line
// of every publisher but itself.
func (f *fanout) pending() bool {
	total := f.sent()
	for _, r := range f.recvs {
		if r.p.cut.Load() {
			continue
		}
		want := total
		if pi, ok := f.pubOf[r.p.id.nick]; ok {
			want -= f.pubs[pi].sent.Load()
		}
		if r.total.Load() < want {
			return true
		}
	}
	return false
}

// waitDrained waits after the publishers stopped until every live receiver has every
// line, or until nothing has arrived for cfg.drain.
func (f *fanout) waitDrained(ctx context.Context) {
	lastN := f.delivered.Load()
	lastChange := time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for f.pending() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := f.delivered.Load(); n != lastN {
			lastN, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= f.cfg.drain {
			return
		}
	}
}

// shutdown closes every connection and waits for the readers.
func (f *fanout) shutdown() {
	f.closing.Store(true)
	for _, r := range f.recvs {
		r.p.conn.Close()
	}
	f.readers.Wait()
}

// status is the progress line.
func (f *fanout) status(start time.Time) string {
	d := f.delivered.Load()
	return fmt.Sprintf("sent=%d delivered=%d (%s/s avg) cut=%d", f.sent(), d, si(rate(d, time.Since(start))), f.cuts.Load())
}

// fanoutTotals is the accounting after shutdown.
type fanoutTotals struct {
	sent, expected, delivered                 int64
	missRecvCut, missSendCut, missUnexplained int64
	duplicates, outOfOrder, other             int64
	peersCut, pubsCut, stalls, failedPubs     int64
	first, last, pubsDone                     time.Time
	wall                                      time.Duration
	unexplainedPairs                          int
	unexplainedExample                        string
	kernel                                    map[string]int64 // host TCP counter deltas over the run
}

// kernelDelta is after − before for the counters the report shows.
func kernelDelta(before, after map[string]int64) map[string]int64 {
	if before == nil || after == nil {
		return nil
	}
	d := map[string]int64{}
	for _, k := range kernelKeys {
		d[k] = after[k] - before[k]
	}
	return d
}

// kernelKeys are the host TCP counters reported: loopback retransmissions, TCP memory
// pressure and receive-queue pruning mean the kernel itself dropped and delayed data (a
// dropped segment can stall a connection for seconds of RTO backoff).
var kernelKeys = []string{"RetransSegs", "TCPMemoryPressures", "PruneCalled", "TCPOFODrop", "TCPRcvQDrop"}

// account matches what every receiver got against what every publisher sent. Call after
// shutdown.
func (f *fanout) account() fanoutTotals {
	var t fanoutTotals
	for _, pb := range f.pubs {
		t.sent += pb.sent.Load()
		if pb.p.cut.Load() {
			t.pubsCut++
		}
		t.stalls += pb.stalls.Load()
		if pb.failed.Load() {
			t.failedPubs++
		}
	}
	var last int64
	for _, r := range f.recvs {
		if r.p.cut.Load() {
			t.peersCut++
		}
		t.outOfOrder += r.ooo
		t.other += r.other
		last = max(last, r.last.Load())
		for pi, pb := range f.pubs {
			if pb.p == r.p {
				continue
			}
			sent := pb.sent.Load()
			got := r.got[pi]
			t.expected += sent
			t.delivered += got
			switch short := sent - got; {
			case short < 0:
				t.duplicates -= short
			case short == 0:
			case r.p.cut.Load():
				t.missRecvCut += short
			case pb.p.cut.Load():
				t.missSendCut += short
			default:
				t.missUnexplained += short
				if t.unexplainedPairs == 0 {
					t.unexplainedExample = fmt.Sprintf("%s got %d of %d lines from %s", r.p.id.nick, got, sent, pb.p.id.nick)
				}
				t.unexplainedPairs++
			}
		}
	}
	if fs := f.firstSend.Load(); fs != 0 {
		t.first = time.Unix(0, fs)
	}
	if last != 0 {
		t.last = time.Unix(0, last)
	}
	if pd := f.pubsDone.Load(); pd != 0 {
		t.pubsDone = time.Unix(0, pd)
	}
	if !t.first.IsZero() && t.last.After(t.first) {
		t.wall = t.last.Sub(t.first)
	}
	return t
}

// addTo reports the totals and checks that every line is accounted for.
func (t fanoutTotals) addTo(rep *report, prefix string) {
	rep.add(prefix+"sent_lines", t.sent, "")
	if !t.first.IsZero() && t.pubsDone.After(t.first) {
		rep.add(prefix+"send_rate", rate(t.sent, t.pubsDone.Sub(t.first)), "lines/s")
	}
	rep.add(prefix+"expected_deliveries", t.expected, "")
	rep.add(prefix+"delivered", t.delivered, "")
	rep.add(prefix+"delivered_per_s", rate(t.delivered, t.wall), "lines/s")
	rep.addMs(prefix+"delivery_wall", t.wall)
	if !t.pubsDone.IsZero() && t.last.After(t.pubsDone) {
		rep.addMs(prefix+"drain", t.last.Sub(t.pubsDone))
	} else {
		rep.addMs(prefix+"drain", 0)
	}
	rep.add(prefix+"missing", t.missRecvCut+t.missSendCut+t.missUnexplained, "")
	rep.add(prefix+"missing_receiver_cut", t.missRecvCut, "")
	rep.add(prefix+"missing_sender_cut", t.missSendCut, "")
	rep.add(prefix+"missing_unexplained", t.missUnexplained, "")
	rep.add(prefix+"duplicates", t.duplicates, "")
	rep.add(prefix+"out_of_order", t.outOfOrder, "")
	rep.add(prefix+"peers_cut", t.peersCut, "")
	rep.add(prefix+"publishers_cut", t.pubsCut, "")
	rep.add(prefix+"publisher_write_timeouts", t.stalls, "")
	rep.add(prefix+"publisher_write_errors", t.failedPubs, "")
	rep.add(prefix+"other_lines", t.other, "")
	if t.kernel != nil {
		rep.add(prefix+"kernel_tcp_retransmits", t.kernel["RetransSegs"], "segments (host-wide)")
		rep.add(prefix+"kernel_tcp_memory_pressure", t.kernel["TCPMemoryPressures"], "events (host-wide)")
		rep.add(prefix+"kernel_tcp_prunes", t.kernel["PruneCalled"]+t.kernel["TCPOFODrop"]+t.kernel["TCPRcvQDrop"], "(host-wide)")
	}
	if t.missUnexplained > 0 {
		hint := ""
		if t.kernel["RetransSegs"] > 0 || t.kernel["TCPMemoryPressures"] > 0 {
			hint = fmt.Sprintf("; the kernel retransmitted %d segments and hit TCP memory pressure %d times during the run, so lines may be stuck in RTO backoff rather than lost: a longer --drain tells (and smaller socket buffers, --rcvbuf here and on the directory's side, avoid the pressure)",
				t.kernel["RetransSegs"], t.kernel["TCPMemoryPressures"])
		}
		rep.fail("%d lines missing at %d receiver/publisher pairs with neither side cut (e.g. %s)%s", t.missUnexplained, t.unexplainedPairs, t.unexplainedExample, hint)
	}
	if t.duplicates > 0 {
		rep.fail("%d lines delivered more than once", t.duplicates)
	}
}

// runFanoutScenario joins the peers, runs the fan-out for cfg.duration and reports.
func runFanoutScenario(ctx context.Context, c *common, cfg fanoutConfig, name string, extra func(*report)) (*report, error) {
	if cfg.peers < 2 || cfg.publishers < 1 || cfg.publishers > cfg.peers {
		return nil, fmt.Errorf("need --peers ≥ 2 and 1 ≤ --publishers ≤ --peers")
	}
	if err := c.checkBudget(cfg.peers); err != nil {
		return nil, err
	}
	specs := makeSpecs(cfg.peers, c.makers, 0)
	d := c.dialer(64 << 10)
	peers, err := joinEvery(ctx, c.progress, name, "", d, specs, c.concurrency)
	if err != nil {
		return nil, err
	}
	f := newFanout(cfg, peers)
	f.startReaders()
	k0 := tcpCounters()
	cpu0 := cpuTime()
	start := time.Now()
	pr := startProgress(c.progress, name, func() string { return f.status(start) })
	stop := make(chan struct{})
	timer := time.AfterFunc(cfg.duration, func() { close(stop) })
	defer timer.Stop()
	f.publish(stop)
	f.waitDrained(ctx)
	cpu, elapsed := cpuTime()-cpu0, time.Since(start)
	k1 := tcpCounters()
	pr.stop()
	f.shutdown()
	t := f.account()
	t.kernel = kernelDelta(k0, k1)

	rep := newReport(name)
	if extra != nil {
		extra(rep)
	}
	rep.add("peers", cfg.peers, "")
	rep.add("publishers", cfg.publishers, "")
	rep.add("rate_per_publisher", cfg.rate, "lines/s (0 = max)")
	rep.add("line_bytes", f.lineBytes(), "")
	if !t.first.IsZero() {
		rep.addMs("publishing", t.pubsDone.Sub(t.first))
	}
	t.addTo(rep, "")
	// The load generator's own CPU (publishers + readers; with an in-process relay, the
	// relay too), to show it was not the bottleneck: 2.0 would be two busy cores.
	rep.add("client_cpu_cores", round3(cpu.Seconds()/elapsed.Seconds()), "")
	return rep, nil
}
