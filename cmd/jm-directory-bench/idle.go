package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// idleOptions are the idle scenario's flags.
type idleOptions struct {
	*common
	peers      int
	serverPID  int
	hold       time.Duration
	settle     time.Duration
	workers    int // 0 = automatic
	perWorker  int
	sourceBase int
	launch     launcher // how to start worker processes (re-exec by default)
}

type workerEvent struct {
	i   int
	m   wmsg
	eof bool
}

// runIdle connects and handshakes N peers, optionally spread over worker processes and
// source addresses, measures the handshake rate and the server's RSS, holds, and closes.
func runIdle(ctx context.Context, o *idleOptions) (*report, error) {
	if o.peers < 1 {
		return nil, errors.New("--peers must be ≥ 1")
	}
	w := o.workers
	if w == 0 && o.peers > o.perWorker {
		w = (o.peers + o.perWorker - 1) / o.perWorker
	}
	launch := o.launch
	sources := "kernel's choice"
	if w == 0 {
		// Everything fits in this process: one in-process worker, default source address.
		if err := o.checkBudget(o.peers); err != nil {
			return nil, err
		}
		launch = inprocLauncher(ctx)
	} else {
		if o.sourceBase < 1 || o.sourceBase+w-1 > 254 {
			return nil, fmt.Errorf("--source-base %d with %d workers leaves 127.0.0.0/8's last octet", o.sourceBase, w)
		}
		sources = fmt.Sprintf("127.0.0.%d", o.sourceBase)
		if w > 1 {
			sources += fmt.Sprintf("-127.0.0.%d", o.sourceBase+w-1)
		}
	}
	if launch == nil {
		launch = execLauncher
	}
	nw := max(w, 1)

	// Start the workers and hand out the jobs.
	handles := make([]*workerHandle, nw)
	events := make(chan workerEvent, 64)
	defer func() {
		for _, h := range handles {
			if h != nil {
				h.in.Close()
			}
		}
		for _, h := range handles {
			if h != nil {
				_ = h.wait()
			}
		}
	}()
	base := 0
	for i := range nw {
		h, err := launch(i)
		if err != nil {
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		handles[i] = h
		go func() {
			sc := bufio.NewScanner(h.out)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				var m wmsg
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					events <- workerEvent{i: i, m: m}
				}
			}
			events <- workerEvent{i: i, eof: true}
		}()
		n := o.peers / nw
		if i < o.peers%nw {
			n++
		}
		job := wmsg{Op: "prepare", Addr: o.addr, Network: o.network, Peers: n, Base: base, Makers: o.makers,
			Concurrency: max(1, (o.concurrency+nw-1)/nw), TimeoutMS: o.timeout.Milliseconds()}
		if w > 0 {
			job.Source = "127.0.0." + strconv.Itoa(o.sourceBase+i)
		}
		base += n
		if err := sendTo(h, job); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
	}
	// await collects one event of kind ev from every worker, calling onOther for others.
	await := func(ev string, onOther func(workerEvent)) ([]wmsg, error) {
		got := make([]wmsg, nw)
		have := make([]bool, nw)
		seen := 0
		for seen < nw {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case e := <-events:
				switch {
				case e.eof && have[e.i]:
					// It said what we waited for, then exited (after "closed").
				case e.eof:
					return nil, fmt.Errorf("worker %d exited while we waited for %q", e.i, ev)
				case e.m.Ev == "error":
					return nil, fmt.Errorf("worker %d: %s", e.i, e.m.Error)
				case e.m.Ev == ev && !have[e.i]:
					got[e.i], have[e.i] = e.m, true
					seen++
				case onOther != nil:
					onOther(e)
				}
			}
		}
		return got, nil
	}
	if _, err := await("ready", nil); err != nil {
		return nil, err
	}

	rep := newReport("idle")
	var rssBefore int64
	if o.serverPID != 0 {
		var err error
		if rssBefore, err = readRSS(o.serverPID); err != nil {
			return nil, err
		}
	}

	// Connect.
	progressAcc := make([]int64, nw)
	progressFail := make([]int64, nw)
	var phase atomic.Value
	phase.Store("connecting")
	sum := func(v []int64) (s int64) {
		for _, x := range v {
			s += x
		}
		return s
	}
	var accNow, failNow int64
	var pmu sync.Mutex
	t0 := time.Now()
	pr := startProgress(o.progress, "idle", func() string {
		pmu.Lock()
		a, f := accNow, failNow
		pmu.Unlock()
		st := fmt.Sprintf("%s accepted=%d/%d failed=%d", phase.Load(), a, o.peers, f)
		if phase.Load() == "connecting" {
			st += fmt.Sprintf(" (%s handshakes/s avg)", si(rate(a, time.Since(t0))))
		}
		return st
	})
	defer pr.stop()
	for _, h := range handles {
		if err := sendTo(h, wmsg{Op: "connect"}); err != nil {
			return nil, err
		}
	}
	connected, err := await("connected", func(e workerEvent) {
		if e.m.Ev == "progress" {
			progressAcc[e.i], progressFail[e.i] = e.m.Accepted, e.m.Failed
			pmu.Lock()
			accNow, failNow = sum(progressAcc), sum(progressFail)
			pmu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	var accepted, failed, lastNS int64
	failures := map[string]int64{}
	for _, m := range connected {
		accepted += m.Accepted
		failed += m.Failed
		lastNS = max(lastNS, m.LastNS)
		for k, v := range m.Failures {
			failures[k] += v
		}
	}
	pmu.Lock()
	accNow, failNow = accepted, failed
	pmu.Unlock()
	var tAll time.Duration
	if lastNS != 0 {
		tAll = time.Unix(0, lastNS).Sub(t0)
	}

	// Settle, read the server's RSS, hold.
	phase.Store("settling")
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}
	var rssAfter int64
	if o.serverPID != 0 {
		if rssAfter, err = readRSS(o.serverPID); err != nil {
			return nil, err
		}
	}
	phase.Store("holding")
	if err := sleepCtx(ctx, o.hold); err != nil {
		return nil, err
	}
	for _, h := range handles {
		if err := sendTo(h, wmsg{Op: "stats"}); err != nil {
			return nil, err
		}
	}
	held, err := await("stats", nil)
	if err != nil {
		return nil, err
	}
	var cut, lines int64
	for _, m := range held {
		cut += m.Cut
		lines += m.Lines
	}
	phase.Store("closing")
	for _, h := range handles {
		if err := sendTo(h, wmsg{Op: "close"}); err != nil {
			return nil, err
		}
	}
	if _, err := await("closed", nil); err != nil {
		return nil, err
	}

	rep.add("peers", o.peers, "")
	rep.add("makers_fraction", o.makers, "")
	rep.add("worker_processes", w, "")
	rep.add("source_addresses", sources, "")
	rep.add("accepted", accepted, "")
	rep.add("failed", failed, "")
	rep.add("handshake_failures", failures, "")
	rep.addMs("time_to_all_accepted", tAll)
	rep.add("handshakes_per_s", rate(accepted, tAll), "")
	if o.serverPID != 0 {
		const mib = 1 << 20
		rep.add("server_pid", o.serverPID, "")
		rep.add("server_rss_before", round3(float64(rssBefore)/mib), "MiB")
		rep.add("server_rss_after", round3(float64(rssAfter)/mib), "MiB")
		rep.add("server_rss_delta", round3(float64(rssAfter-rssBefore)/mib), "MiB")
		if accepted > 0 {
			rep.add("rss_per_peer", round3(float64(rssAfter-rssBefore)/float64(accepted)/1024), "KiB")
		}
	}
	rep.addMs("settle", o.settle)
	rep.addMs("hold", o.hold)
	rep.add("peers_cut_while_held", cut, "")
	rep.add("lines_received_while_held", lines, "")
	if failed > 0 {
		rep.fail("%d of %d handshakes failed: %s", failed, o.peers, formatCounts(failures))
	}
	if cut > 0 {
		rep.fail("%d peers were disconnected by the server while idle", cut)
	}
	return rep, nil
}

func sendTo(h *workerHandle, m wmsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = h.in.Write(append(b, '\n'))
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
