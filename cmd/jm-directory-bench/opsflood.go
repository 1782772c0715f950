package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// opsflood floods the directory's ops port (HEALTH_CHECK_HOST:HEALTH_CHECK_PORT) with
// connections — each sends one keep-alive GET /health and idles, or opens and stays
// silent — and, while they are held, lets honest peers join the peer port and pass a
// privmsg pair. A server that takes a descriptor per ops connection runs out of them
// and can no longer accept peers; the pass line is that every honest peer joins.
//
// Beyond one process's descriptor limit the connections are spread over worker
// processes ("jm-directory-bench opsflood --flood-worker", driven with JSON lines over
// stdin/stdout like the idle scenario's workers), each dialling from its own
// 127.0.0.x source address:
//
//	parent → worker                               worker → parent
//	{"op":"flood", ops_addr, mode, conns, …}      {"ev":"progress", established, failed} …
//	                                              {"ev":"dialed", established, failed, failures, answered}
//	{"op":"stats"}                                {"ev":"stats", …, answered, closed_by_server, open}
//	{"op":"close"} (or EOF)                       {"ev":"closed", …}
func init() {
	attacks["opsflood"] = attack{
		usage: "--ops-addr HOST:PORT --conns 30000 [--mode request|silent] --peers 20 [--server-pid PID]  ops-port connection flood while peers join",
		setup: setupOpsflood,
	}
}

// opsfloodOptions are the opsflood scenario's flags.
type opsfloodOptions struct {
	*common
	opsAddr      string
	conns        int
	mode         string // "request" or "silent"
	peers        int    // honest peers (takers and makers in pairs)
	serverPID    int
	dialTimeout  time.Duration
	dialConc     int
	redial       bool
	redialPause  time.Duration
	workers      int
	perWorker    int
	sourceBase   int
	replyTimeout time.Duration
	probeTimeout time.Duration
	settle       time.Duration
	worker       bool     // this process is a flood worker
	launch       launcher // nil: re-exec this binary (or in-process when it all fits)
}

func setupOpsflood(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
	c.register(fs, false)
	o := &opsfloodOptions{common: c}
	fs.StringVar(&o.opsAddr, "ops-addr", "127.0.0.1:8080", "the directory's ops `host:port` (HEALTH_CHECK_HOST:HEALTH_CHECK_PORT; loopback only)")
	fs.IntVar(&o.conns, "conns", 30000, "ops connections to open and hold")
	fs.StringVar(&o.mode, "mode", "request", "what each ops connection does: request (one keep-alive GET /health, then idle) or silent (nothing)")
	fs.IntVar(&o.peers, "peers", 20, "honest peers that join the peer port during the flood, in taker/maker pairs that exchange one privmsg each way")
	fs.IntVar(&o.serverPID, "server-pid", 0, "directory process id, to report its open descriptors and RSS")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 3*time.Second, "connect timeout of a flood connection (over the server's backlog the kernel drops SYNs)")
	fs.IntVar(&o.dialConc, "dial-concurrency", 2048, "flood connects in flight at most, over all workers")
	fs.BoolVar(&o.redial, "redial", true, "keep the flood up: a connection the server closes (or a failed connect) is replaced after --redial-pause")
	fs.DurationVar(&o.redialPause, "redial-pause", time.Second, "pause before a flood connection is replaced")
	fs.IntVar(&o.workers, "workers", 0, "flood worker processes (0 = one per --per-worker connections)")
	fs.IntVar(&o.perWorker, "per-worker", 9000, "flood connections per worker process when --workers is 0")
	fs.IntVar(&o.sourceBase, "source-base", 20, "worker i dials from 127.0.0.(source-base+i)")
	fs.DurationVar(&o.replyTimeout, "reply-timeout", 10*time.Second, "an honest privmsg round trip slower than this counts as failed")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", 5*time.Second, "how long a fresh GET /health may take during and after the flood")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "after closing the flood, wait this long before the last readings")
	fs.BoolVar(&o.worker, "flood-worker", false, "internal: be one flood worker process, driven over stdin/stdout")
	return func() (*report, error) {
		if o.worker {
			if err := runFloodWorker(ctx, os.Stdin, os.Stdout, c.fdBudget); err != nil {
				return nil, err
			}
			return newReport("opsflood-worker"), nil
		}
		return runOpsflood(ctx, o)
	}
}

// floodMsg is one message between the opsflood parent and a worker, either way.
type floodMsg struct {
	Op string `json:"op,omitempty"` // parent → worker: flood, stats, close
	Ev string `json:"ev,omitempty"` // worker → parent: progress, dialed, stats, closed, error

	OpsAddr       string `json:"ops_addr,omitempty"`
	Mode          string `json:"mode,omitempty"`
	Conns         int    `json:"conns,omitempty"`
	Source        string `json:"source,omitempty"` // source IP; "" = kernel's choice
	Concurrency   int    `json:"concurrency,omitempty"`
	DialTimeoutMS int64  `json:"dial_timeout_ms,omitempty"`
	RedialPauseMS int64  `json:"redial_pause_ms,omitempty"` // 0 = no redial

	Established    int64            `json:"established,omitempty"` // connects that succeeded (redials included)
	Failed         int64            `json:"failed,omitempty"`      // connects that failed
	Failures       map[string]int64 `json:"failures,omitempty"`
	Answered       int64            `json:"answered,omitempty"`         // GET /health answered
	ClosedByServer int64            `json:"closed_by_server,omitempty"` // ended before we closed
	Open           int64            `json:"open,omitempty"`             // established and not ended
	Error          string           `json:"error,omitempty"`
}

// opsHealthRequest is the flood's (and the probe's) request: HTTP/1.1, so keep-alive.
const opsHealthRequest = "GET /health HTTP/1.1\r\nHost: ops\r\nUser-Agent: jm-directory-bench\r\n\r\n"

// opsFlood is one worker's connections: job.Conns slots, each keeping one connection open
// (with redial, opening a new one when the server closes it or a connect fails).
type opsFlood struct {
	job         floodMsg
	source      net.IP // nil: the kernel's choice
	dialTimeout time.Duration
	request     bool          // send one GET /health on each connection
	redialPause time.Duration // 0: no redial
	sem         chan struct{} // connects in flight

	established, failed, answered, closedByServer, open atomic.Int64
	stop                                                chan struct{}      // closed by closeAll
	cancel                                              context.CancelFunc // ends connects in flight
	slots                                               sync.WaitGroup

	mu       sync.Mutex // guards conns, failures, closing
	conns    map[net.Conn]struct{}
	failures map[string]int64
	closing  bool
}

// run starts every slot and returns once each has made its first connect attempt.
func (f *opsFlood) run(ctx context.Context) {
	var first sync.WaitGroup
	first.Add(f.job.Conns)
	for range f.job.Conns {
		f.slots.Add(1)
		go f.slot(ctx, first.Done)
	}
	first.Wait()
}

func (f *opsFlood) slot(ctx context.Context, firstDone func()) {
	defer f.slots.Done()
	for attempt := 0; ; attempt++ {
		c := f.connect(ctx)
		if attempt == 0 {
			firstDone()
		}
		if c != nil {
			f.hold(c)
		}
		if f.redialPause <= 0 {
			return
		}
		t := time.NewTimer(f.redialPause)
		select {
		case <-t.C:
		case <-f.stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// connect opens one connection (and sends the request), nil when that fails or the
// flood is closing.
func (f *opsFlood) connect(ctx context.Context) net.Conn {
	select {
	case f.sem <- struct{}{}:
	case <-f.stop:
		return nil
	}
	nd := net.Dialer{Timeout: f.dialTimeout, KeepAlive: -1}
	if f.source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: f.source}
		nd.Control = func(_, _ string, c syscall.RawConn) error { return bindNoPort(c) }
	}
	c, err := nd.DialContext(ctx, "tcp", f.job.OpsAddr)
	<-f.sem
	if err != nil {
		f.failed.Add(1)
		f.mu.Lock()
		f.failures["dial: "+errClass(err)]++
		f.mu.Unlock()
		return nil
	}
	f.established.Add(1)
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		c.Close()
		return nil
	}
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	f.open.Add(1)
	return c
}

// hold sends the request (request mode), reads the answer and then whatever comes
// until the connection ends, which it counts as closed by the server unless the flood is
// closing.
func (f *opsFlood) hold(c net.Conn) {
	defer func() {
		f.open.Add(-1)
		f.mu.Lock()
		delete(f.conns, c)
		closing := f.closing
		f.mu.Unlock()
		c.Close()
		if !closing {
			f.closedByServer.Add(1)
		}
	}()
	br := bufio.NewReaderSize(c, 512)
	if f.request {
		if _, err := io.WriteString(c, opsHealthRequest); err != nil {
			return
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			return
		}
		f.answered.Add(1)
	}
	_, _ = io.Copy(io.Discard, br) // until the server closes it, or we do
}

func (f *opsFlood) stats(ev string) floodMsg {
	f.mu.Lock()
	fails := make(map[string]int64, len(f.failures))
	for k, v := range f.failures {
		fails[k] = v
	}
	f.mu.Unlock()
	return floodMsg{Ev: ev, Established: f.established.Load(), Failed: f.failed.Load(), Failures: fails,
		Answered: f.answered.Load(), ClosedByServer: f.closedByServer.Load(), Open: f.open.Load()}
}

// closeAll stops every slot and closes every connection.
func (f *opsFlood) closeAll() {
	f.mu.Lock()
	f.closing = true
	close(f.stop)
	f.cancel()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.slots.Wait()
}

// runFloodWorker serves one opsflood parent over in/out until told to close or in ends.
func runFloodWorker(ctx context.Context, in io.Reader, out io.Writer, budget uint64) error {
	send, msgs := workerChannel(ctx, in, out, func(err error) floodMsg {
		return floodMsg{Ev: "error", Error: "bad message: " + err.Error()}
	})
	fail := func(err error) error {
		send(floodMsg{Ev: "error", Error: err.Error()})
		return err
	}
	var job floodMsg
	select {
	case <-ctx.Done():
		return ctx.Err()
	case m, ok := <-msgs:
		if !ok {
			return nil
		}
		if m.Op != "flood" {
			return fail(fmt.Errorf("expected %q, got %q", "flood", m.Op))
		}
		job = m
	}
	if _, err := loopbackAddr(job.OpsAddr); err != nil {
		return fail(err)
	}
	if budget != 0 && uint64(job.Conns)+64 > budget {
		return fail(fmt.Errorf("%d connections exceed this process's file descriptor limit (%d)", job.Conns, budget))
	}
	f := &opsFlood{job: job, dialTimeout: time.Duration(job.DialTimeoutMS) * time.Millisecond,
		request: job.Mode == "request", redialPause: time.Duration(job.RedialPauseMS) * time.Millisecond,
		sem: make(chan struct{}, max(job.Concurrency, 1)), stop: make(chan struct{}),
		conns: map[net.Conn]struct{}{}, failures: map[string]int64{}}
	if job.Source != "" {
		if f.source = net.ParseIP(job.Source).To4(); f.source == nil || f.source[0] != 127 {
			return fail(fmt.Errorf("source %q is not a 127.0.0.0/8 address", job.Source))
		}
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				send(floodMsg{Ev: "progress", Established: f.established.Load(), Failed: f.failed.Load(), Open: f.open.Load()})
			}
		}
	}()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.cancel = cancel
	f.run(fctx)
	close(stopProgress)
	<-progressDone
	send(f.stats("dialed"))
	defer func() {
		f.closeAll()
		send(f.stats("closed"))
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-msgs:
			switch {
			case !ok || m.Op == "close":
				return nil
			case m.Op == "stats":
				send(f.stats("stats"))
			default:
				send(floodMsg{Ev: "error", Error: "unexpected op " + strconv.Quote(m.Op)})
			}
		}
	}
}

// floodExecLauncher re-executes this binary as an opsflood worker.
func floodExecLauncher(addr string) launcher {
	return func(i int) (*workerHandle, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return commandLauncher(exe, "opsflood", "--flood-worker", "--quiet", "--json", "--addr", addr)(i)
	}
}

// floodInprocLauncher runs flood workers as goroutines over pipes.
func floodInprocLauncher(ctx context.Context) launcher { return pipeLauncher(ctx, runFloodWorker) }

// sumFlood adds the workers' counts.
func sumFlood(ms []floodMsg) floodMsg {
	t := floodMsg{Failures: map[string]int64{}}
	for _, m := range ms {
		t.Established += m.Established
		t.Failed += m.Failed
		t.Answered += m.Answered
		t.ClosedByServer += m.ClosedByServer
		t.Open += m.Open
		for k, v := range m.Failures {
			t.Failures[k] += v
		}
	}
	return t
}

// serverUse is the server's open descriptors and RSS at one moment.
type serverUse struct {
	fds int
	rss int64
}

func readServerUse(pid int) (serverUse, error) {
	fds, err := countFDs(pid)
	if err != nil {
		return serverUse{}, err
	}
	rss, err := readRSS(pid)
	return serverUse{fds: fds, rss: rss}, err
}

// countFDs is the number of open file descriptors of a process.
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}

// runOpsflood runs the scenario's parent: flood, honest peers, readings, report.
func runOpsflood(ctx context.Context, o *opsfloodOptions) (*report, error) {
	if o.conns < 1 || o.peers < 2 || o.peers%2 != 0 || (o.mode != "request" && o.mode != "silent") {
		return nil, errors.New("need --conns ≥ 1, an even --peers ≥ 2 and --mode request or silent")
	}
	opsAddr, err := loopbackAddr(o.opsAddr)
	if err != nil {
		return nil, err
	}
	w := o.workers
	if w == 0 && o.conns > o.perWorker {
		w = (o.conns + o.perWorker - 1) / o.perWorker
	}
	launch := o.launch
	sources := "kernel's choice"
	if w == 0 {
		if err := o.checkBudget(o.conns + o.peers + 1); err != nil {
			return nil, err
		}
		if launch == nil {
			launch = floodInprocLauncher(ctx)
		}
	} else {
		if err := o.checkBudget(o.peers + 1); err != nil {
			return nil, err
		}
		if o.sourceBase < 1 || o.sourceBase+w-1 > 254 {
			return nil, fmt.Errorf("--source-base %d with %d workers leaves 127.0.0.0/8's last octet", o.sourceBase, w)
		}
		sources = fmt.Sprintf("127.0.0.%d-127.0.0.%d", o.sourceBase, o.sourceBase+w-1)
		if launch == nil {
			launch = floodExecLauncher(o.addr)
		}
	}
	nw := max(w, 1)

	rep := newReport("opsflood")
	var before, during, after serverUse
	var peakFDs atomic.Int64
	if o.serverPID != 0 {
		if before, err = readServerUse(o.serverPID); err != nil {
			return nil, err
		}
		peakFDs.Store(int64(before.fds))
	}

	// Start the workers and the flood.
	fw := newWorkers[floodMsg]("flood worker", nw)
	defer fw.close()
	for i := range nw {
		if err := fw.start(i, launch); err != nil {
			return nil, err
		}
	}
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	go func() {
		defer close(samplingDone)
		if o.serverPID == 0 {
			return
		}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if n, err := countFDs(o.serverPID); err == nil && int64(n) > peakFDs.Load() {
					peakFDs.Store(int64(n))
				}
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
		}
		<-samplingDone
	}()

	progOpen := make([]int64, nw)
	progFail := make([]int64, nw)
	var pmu sync.Mutex
	var phase atomic.Value
	phase.Store("flooding")
	pr := startProgress(o.progress, "opsflood", func() string {
		pmu.Lock()
		var open, failed int64
		for i := range progOpen {
			open += progOpen[i]
			failed += progFail[i]
		}
		pmu.Unlock()
		s := fmt.Sprintf("%s ops connections open=%d/%d connects failed=%d", phase.Load(), open, o.conns, failed)
		if o.serverPID != 0 {
			s += fmt.Sprintf(" server fds peak=%d", peakFDs.Load())
		}
		return s
	})
	defer pr.stop()
	t0 := time.Now()
	for i, h := range fw.handles {
		n := o.conns / nw
		if i < o.conns%nw {
			n++
		}
		job := floodMsg{Op: "flood", OpsAddr: opsAddr, Mode: o.mode, Conns: n,
			Concurrency: max(1, (o.dialConc+nw-1)/nw), DialTimeoutMS: o.dialTimeout.Milliseconds()}
		if o.redial {
			job.RedialPauseMS = max(1, o.redialPause.Milliseconds())
		}
		if w > 0 {
			job.Source = "127.0.0." + strconv.Itoa(o.sourceBase+i)
		}
		b, _ := json.Marshal(job)
		if _, err := h.in.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("flood worker %d: %w", i, err)
		}
	}
	dialed, err := fw.await(ctx, "dialed", func(e workerEvent[floodMsg]) {
		if e.m.Ev == "progress" {
			pmu.Lock()
			progOpen[e.i], progFail[e.i] = e.m.Open, e.m.Failed
			pmu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	tDialed := time.Since(t0)
	atDialed := sumFlood(dialed)
	pmu.Lock()
	for i, m := range dialed {
		progOpen[i], progFail[i] = m.Open, m.Failed
	}
	pmu.Unlock()

	// During the flood: readings, a fresh /health, honest peers.
	if o.serverPID != 0 {
		if during, err = readServerUse(o.serverPID); err != nil {
			return nil, err
		}
		if n := int64(during.fds); n > peakFDs.Load() {
			peakFDs.Store(n)
		}
	}
	phase.Store("probing /health,")
	probeDuring := probeOpsHealth(ctx, opsAddr, o.probeTimeout)
	phase.Store("honest peers joining,")
	hr := runHonestPeers(ctx, o.dialer(4096), o.peers, o.concurrency, o.replyTimeout)
	if err := fw.send(floodMsg{Op: "stats"}); err != nil {
		return nil, err
	}
	held, err := fw.await(ctx, "stats", nil)
	if err != nil {
		return nil, err
	}
	atStats := sumFlood(held)
	tHeld := time.Since(t0)

	// After: close the flood, settle, read again.
	phase.Store("closing")
	if err := fw.send(floodMsg{Op: "close"}); err != nil {
		return nil, err
	}
	closed, err := fw.await(ctx, "closed", nil)
	if err != nil {
		return nil, err
	}
	pmu.Lock()
	for i, m := range closed {
		progOpen[i] = m.Open
	}
	pmu.Unlock()
	close(stopSampling)
	<-samplingDone
	phase.Store("settling")
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}
	if o.serverPID != 0 {
		if after, err = readServerUse(o.serverPID); err != nil {
			return nil, err
		}
	}
	probeAfter := probeOpsHealth(ctx, opsAddr, o.probeTimeout)
	pr.stop()

	rep.add("claim", groupDigits(o.conns)+" ops connections leave peers able to join", "")
	rep.add("ops_addr", opsAddr, "")
	rep.add("mode", o.mode, "")
	rep.add("ops_conns", o.conns, "")
	rep.add("worker_processes", w, "")
	rep.add("source_addresses", sources, "")
	rep.add("redial", o.redial, "")
	rep.add("ops_open_when_dialed", atDialed.Open, "client-side, once every connection was tried")
	rep.addMs("ops_dial_phase", tDialed)
	rep.add("ops_connects", atStats.Established, "succeeded, redials included, by the end of the honest phase")
	rep.add("ops_connects_failed", atStats.Failed, "")
	rep.add("ops_connect_failures", atStats.Failures, "")
	if o.mode == "request" {
		rep.add("ops_answered", atStats.Answered, "GET /health answered")
	}
	rep.add("ops_closed_by_server", atStats.ClosedByServer, "")
	rep.add("ops_open", atStats.Open, "client-side, at the end of the honest phase")
	rep.addMs("flood_held", tHeld)
	if o.serverPID != 0 {
		const mib = 1 << 20
		rep.add("server_pid", o.serverPID, "")
		rep.add("server_fds_before", before.fds, "")
		rep.add("server_fds_during", during.fds, "all connects done")
		rep.add("server_fds_peak", peakFDs.Load(), "sampled every 200 ms")
		rep.add("server_fds_after", after.fds, "")
		rep.add("server_rss_before", round3(float64(before.rss)/mib), "MiB")
		rep.add("server_rss_during", round3(float64(during.rss)/mib), "MiB")
		rep.add("server_rss_after", round3(float64(after.rss)/mib), "MiB")
	}
	rep.add("health_during_flood", probeDuring.answer(), "fresh connection")
	rep.addMs("health_during_latency", probeDuring.lat)
	rep.add("health_after_flood", probeAfter.answer(), "")
	rep.addMs("health_after_latency", probeAfter.lat)
	rep.add("honest_joins_attempted", o.peers, "")
	rep.add("honest_joins_accepted", hr.accepted, "")
	rep.add("honest_join_failures", hr.failures, "")
	rep.addMs("handshake_p50", percentile(hr.lat, 50))
	rep.addMs("handshake_p99", percentile(hr.lat, 99))
	rep.add("privmsg_round_trips", o.peers/2, "taker → maker → taker")
	rep.add("privmsg_round_trips_ok", hr.rtOK, "")
	rep.add("privmsg_failures", hr.rtFailures, "")
	rep.addMs("privmsg_rtt_p50", percentile(hr.rtts, 50))
	rep.addMs("privmsg_rtt_max", percentile(hr.rtts, 100))
	if hr.accepted < o.peers {
		rep.fail("%d of %d honest peers could not join during the flood: %s", o.peers-hr.accepted, o.peers, formatCounts(hr.failures))
	}
	if hr.rtOK < o.peers/2 {
		rep.fail("%d of %d privmsg round trips failed during the flood: %s", o.peers/2-hr.rtOK, o.peers/2, formatCounts(hr.rtFailures))
	}
	return rep, nil
}

// groupDigits writes n with a space between groups of three digits ("30 000").
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b = append(b, ' ')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// opsHealthProbe is one GET /health on a fresh connection.
type opsHealthProbe struct {
	status int // 0: no answer
	lat    time.Duration
	err    error
}

func (h opsHealthProbe) answer() string {
	if h.status == 0 {
		return "no (" + errClass(h.err) + ")"
	}
	return "yes (" + strconv.Itoa(h.status) + ")"
}

// probeOpsHealth asks /health on a new connection within timeout: connect, request,
// response.
func probeOpsHealth(ctx context.Context, addr string, timeout time.Duration) opsHealthProbe {
	t0 := time.Now()
	nd := net.Dialer{Timeout: timeout, KeepAlive: -1}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return opsHealthProbe{lat: time.Since(t0), err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(t0.Add(timeout))
	if _, err := io.WriteString(c, opsHealthRequest); err != nil {
		return opsHealthProbe{lat: time.Since(t0), err: err}
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return opsHealthProbe{lat: time.Since(t0), err: err}
	}
	res.Body.Close()
	return opsHealthProbe{status: res.StatusCode, lat: time.Since(t0)}
}

// honestResult is what the honest peers saw.
type honestResult struct {
	accepted   int
	failures   map[string]int64
	lat        []time.Duration // handshake latencies of the accepted joins, sorted
	rtOK       int
	rtFailures map[string]int64
	rtts       []time.Duration // sorted
}

// runHonestPeers joins n peers (taker, maker, taker, maker, …) at once, then each pair
// whose two peers joined passes one privmsg each way: the taker's !fill, the maker's
// !pubkey. Every peer is closed before it returns.
func runHonestPeers(ctx context.Context, d *dialer, n, conc int, replyTimeout time.Duration) honestResult {
	specs := make([]spec, n)
	for i := range specs {
		specs[i].id = newIdentity()
		specs[i].location = wire.NotServing
		if i%2 == 1 {
			specs[i].location = makerLocation(60000 + i)
		}
	}
	r := honestResult{failures: map[string]int64{}, rtFailures: map[string]int64{}}
	peers := make([]*peer, n)
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, min(conc, n)))
	for i := range specs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			p, err := d.join(ctx, specs[i].id, specs[i].location)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.failures[failReason(err)]++
				return
			}
			peers[i], lat[i] = p, time.Since(t0)
			r.accepted++
			r.lat = append(r.lat, lat[i])
		}()
	}
	wg.Wait()
	defer closeAll(peers)
	for k := 0; 2*k+1 < n; k++ {
		tp, mp := peers[2*k], peers[2*k+1]
		if tp == nil || mp == nil {
			r.rtFailures["a peer of the pair did not join"]++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := honestRoundTrip(tp, mp, k, replyTimeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.rtFailures[err.Error()]++
				return
			}
			r.rtOK++
			r.rtts = append(r.rtts, rtt)
		}()
	}
	wg.Wait()
	slices.Sort(r.lat)
	slices.Sort(r.rtts)
	return r
}

// honestRoundTrip sends taker → maker !fill and maker → taker !pubkey through the directory.
func honestRoundTrip(tp, mp *peer, k int, timeout time.Duration) (time.Duration, error) {
	var rnd [64]byte
	_, _ = rand.Read(rnd[:])
	h := hex.EncodeToString(rnd[:])
	fill := fillLine(tp.id, mp.id.nick, k, h)
	answer := pubkeyLine(mp.id, tp.id.nick, k, h)
	t0 := time.Now()
	deadline := t0.Add(timeout)
	if _, err := tp.write(fill, timeout); err != nil {
		return 0, errors.New("taker cannot send: " + errClass(err))
	}
	if err := awaitTaggedLine(mp, []byte(tp.id.nick+"!"+mp.id.nick+"!fill "), deadline); err != nil {
		return 0, errors.New("maker got no !fill: " + errClass(err))
	}
	if _, err := mp.write(answer, time.Until(deadline)); err != nil {
		return 0, errors.New("maker cannot send: " + errClass(err))
	}
	if err := awaitTaggedLine(tp, []byte(mp.id.nick+"!"+tp.id.nick+"!pubkey "), deadline); err != nil {
		return 0, errors.New("taker got no !pubkey: " + errClass(err))
	}
	return time.Since(t0), nil
}

// awaitTaggedLine reads p's lines until one contains tag, or the deadline passes.
func awaitTaggedLine(p *peer, tag []byte, deadline time.Time) error {
	_ = p.conn.SetReadDeadline(deadline)
	defer p.conn.SetReadDeadline(time.Time{})
	for {
		line, err := p.readLine()
		if err != nil {
			return err
		}
		if bytes.Contains(line, tag) {
			return nil
		}
	}
}
