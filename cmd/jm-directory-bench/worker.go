package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// The idle scenario spreads its peers over worker processes once they do not fit in one
// process's file-descriptor budget. The parent re-executes its own binary as
// "jm-directory-bench worker" and drives it with JSON lines on stdin; the worker answers
// with JSON lines on stdout:
//
//	parent → worker                            worker → parent
//	{"op":"prepare", peers, source, …}         {"ev":"ready"}              (identities made)
//	{"op":"connect"}                           {"ev":"progress", accepted, failed} …
//	                                           {"ev":"connected", accepted, failed, failures, last_ns}
//	{"op":"stats"}                             {"ev":"stats", cut, lines}  (while held)
//	{"op":"close"}                             {"ev":"closed", cut, lines}
//
// A worker that reads EOF on stdin closes its peers and exits. runWorker is the whole
// worker, so tests can run it in-process over pipes.

// wmsg is one message in either direction.
type wmsg struct {
	Op string `json:"op,omitempty"` // parent → worker: prepare, connect, close
	Ev string `json:"ev,omitempty"` // worker → parent: ready, progress, connected, closed, error

	Addr        string  `json:"addr,omitempty"`
	Network     string  `json:"network,omitempty"`
	Source      string  `json:"source,omitempty"` // source IP to dial from; "" = kernel's choice
	Peers       int     `json:"peers,omitempty"`
	Base        int     `json:"base,omitempty"` // index of this worker's first peer (maker ports)
	Makers      float64 `json:"makers,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	TimeoutMS   int64   `json:"timeout_ms,omitempty"`

	Accepted int64            `json:"accepted,omitempty"`
	Failed   int64            `json:"failed,omitempty"`
	Failures map[string]int64 `json:"failures,omitempty"`
	LastNS   int64            `json:"last_ns,omitempty"` // unix ns of this worker's last accepted handshake
	Cut      int64            `json:"cut,omitempty"`     // peers whose connection ended before close
	Lines    int64            `json:"lines,omitempty"`   // lines received after the handshakes
	Error    string           `json:"error,omitempty"`
}

// runWorker serves one parent over in/out until told to close or in ends.
func runWorker(ctx context.Context, in io.Reader, out io.Writer, budget uint64) error {
	send, ops := workerChannel(ctx, in, out, func(err error) wmsg {
		return wmsg{Ev: "error", Error: "bad message: " + err.Error()}
	})
	next := func(want string) (wmsg, error) {
		select {
		case <-ctx.Done():
			return wmsg{}, ctx.Err()
		case m, ok := <-ops:
			if !ok {
				return wmsg{}, io.EOF
			}
			if m.Op != want {
				return m, fmt.Errorf("expected %q, got %q", want, m.Op)
			}
			return m, nil
		}
	}
	fail := func(err error) error {
		send(wmsg{Ev: "error", Error: err.Error()})
		return err
	}

	job, err := next("prepare")
	if err != nil {
		return fail(err)
	}
	if budget != 0 && uint64(job.Peers)+64 > budget {
		return fail(fmt.Errorf("%d peers exceed this process's file descriptor limit (%d)", job.Peers, budget))
	}
	d := &dialer{addr: job.Addr, network: job.Network, timeout: time.Duration(job.TimeoutMS) * time.Millisecond, bufSize: 2048}
	if job.Source != "" {
		if d.source = net.ParseIP(job.Source).To4(); d.source == nil || d.source[0] != 127 {
			return fail(fmt.Errorf("source %q is not a 127.0.0.0/8 address", job.Source))
		}
	}
	specs := makeSpecs(job.Peers, job.Makers, job.Base)
	send(wmsg{Ev: "ready"})

	if _, err := next("connect"); err != nil {
		return fail(err)
	}
	var accepted, failed atomic.Int64
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
				send(wmsg{Ev: "progress", Accepted: accepted.Load(), Failed: failed.Load()})
			}
		}
	}()
	peers, failures, last := joinAll(ctx, d, specs, job.Concurrency, func(ok bool) {
		if ok {
			accepted.Add(1)
		} else {
			failed.Add(1)
		}
	})
	close(stopProgress)
	<-progressDone

	// Keep reading every connection: count what arrives and notice server-side closes.
	var closing atomic.Bool
	var cut, lines atomic.Int64
	var readers sync.WaitGroup
	for _, p := range peers {
		if p == nil {
			continue
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			var n int64
			count := func([]byte) { n++ }
			for {
				err := p.readChunk(count)
				if n > 0 {
					lines.Add(n)
					n = 0
				}
				if err != nil {
					if !closing.Load() {
						cut.Add(1)
					}
					return
				}
			}
		}()
	}
	m := wmsg{Ev: "connected", Accepted: accepted.Load(), Failed: failed.Load(), Failures: failures}
	if !last.IsZero() {
		m.LastNS = last.UnixNano()
	}
	send(m)

	// "stats" (optional, before any worker closes: our closes cause ;D notices at the
	// others) reports what happened while the peers were held; then "close".
	for {
		var m wmsg
		if m, err = next("close"); err != nil && m.Op == "stats" {
			send(wmsg{Ev: "stats", Cut: cut.Load(), Lines: lines.Load()})
			continue
		}
		break
	}
	closing.Store(true)
	closeAll(peers)
	readers.Wait()
	send(wmsg{Ev: "closed", Cut: cut.Load(), Lines: lines.Load()})
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// workerHandle is the parent's side of one worker.
type workerHandle struct {
	in   io.WriteCloser
	out  io.Reader
	wait func() error
}

// launcher starts worker number i.
type launcher func(i int) (*workerHandle, error)

// commandLauncher runs "path args…" child processes ("path worker" without args).
func commandLauncher(path string, args ...string) launcher {
	if len(args) == 0 {
		args = []string{"worker"}
	}
	return func(int) (*workerHandle, error) {
		cmd := exec.Command(path, args...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &workerHandle{in: in, out: out, wait: cmd.Wait}, nil
	}
}

// execLauncher re-executes this binary as an idle worker.
func execLauncher(i int) (*workerHandle, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return commandLauncher(exe)(i)
}

// inprocLauncher runs idle workers as goroutines over pipes (one process; for small runs
// and tests).
func inprocLauncher(ctx context.Context) launcher { return pipeLauncher(ctx, runWorker) }

// pipeLauncher runs serve, a worker's side, as goroutines over pipes.
func pipeLauncher(ctx context.Context, serve func(ctx context.Context, in io.Reader, out io.Writer, budget uint64) error) launcher {
	return func(int) (*workerHandle, error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := serve(ctx, inR, outW, 0)
			outW.Close()
			inR.Close()
			done <- err
		}()
		return &workerHandle{in: inW, out: outR, wait: func() error { return <-done }}, nil
	}
}

// workerMsg is a message of a parent–worker protocol: one JSON object per line. Parents
// read a worker's events by name, and "error" events as failures.
type workerMsg interface {
	event() string   // the event's name ("" for a parent's operation)
	failure() string // an "error" event's text
}

func (m wmsg) event() string       { return m.Ev }
func (m wmsg) failure() string     { return m.Error }
func (m floodMsg) event() string   { return m.Ev }
func (m floodMsg) failure() string { return m.Error }

// workerEvent is one line a worker wrote, or (eof) the end of its output.
type workerEvent[M workerMsg] struct {
	i   int
	m   M
	eof bool
}

// workers is a parent's side of its worker processes, which speak M.
type workers[M workerMsg] struct {
	name    string // "worker", "flood worker": for errors
	handles []*workerHandle
	events  chan workerEvent[M]
}

func newWorkers[M workerMsg](name string, n int) *workers[M] {
	return &workers[M]{name: name, handles: make([]*workerHandle, n), events: make(chan workerEvent[M], 64)}
}

// start launches worker i and reads its events.
func (w *workers[M]) start(i int, launch launcher) error {
	h, err := launch(i)
	if err != nil {
		return fmt.Errorf("start %s %d: %w", w.name, i, err)
	}
	w.handles[i] = h
	go func() {
		sc := bufio.NewScanner(h.out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m M
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.event() != "" {
				w.events <- workerEvent[M]{i: i, m: m}
			}
		}
		w.events <- workerEvent[M]{i: i, eof: true}
	}()
	return nil
}

// close ends every started worker's input and waits for them.
func (w *workers[M]) close() {
	for _, h := range w.handles {
		if h != nil {
			h.in.Close()
		}
	}
	for _, h := range w.handles {
		if h != nil {
			_ = h.wait()
		}
	}
}

// sendTo sends m to worker i.
func (w *workers[M]) sendTo(i int, m M) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err = w.handles[i].in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s %d: %w", w.name, i, err)
	}
	return nil
}

// send sends m to every worker.
func (w *workers[M]) send(m M) error {
	for i := range w.handles {
		if err := w.sendTo(i, m); err != nil {
			return err
		}
	}
	return nil
}

// await collects one event ev from every worker, passing others to onOther.
func (w *workers[M]) await(ctx context.Context, ev string, onOther func(workerEvent[M])) ([]M, error) {
	n := len(w.handles)
	got := make([]M, n)
	have := make([]bool, n)
	for seen := 0; seen < n; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.events:
			switch {
			case e.eof && have[e.i]:
				// It said what we waited for, then exited (after "closed").
			case e.eof:
				return nil, fmt.Errorf("%s %d exited while we waited for %q", w.name, e.i, ev)
			case e.m.event() == "error":
				return nil, fmt.Errorf("%s %d: %s", w.name, e.i, e.m.failure())
			case e.m.event() == ev && !have[e.i]:
				got[e.i], have[e.i] = e.m, true
				seen++
			case onOther != nil:
				onOther(e)
			}
		}
	}
	return got, nil
}

// workerChannel is a worker's side of the protocol over in and out: send writes one
// message (safe for concurrent use); msgs yields the parent's messages until in ends or
// ctx is done; a line that is not a message is answered with bad's.
func workerChannel[M any](ctx context.Context, in io.Reader, out io.Writer, bad func(error) M) (send func(M), msgs <-chan M) {
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	send = func(m M) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(m)
	}
	ch := make(chan M)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			var m M
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				send(bad(err))
				continue
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return send, ch
}
