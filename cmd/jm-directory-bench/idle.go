package main

import (
	"context"
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
	ws := newWorkers[wmsg]("worker", nw)
	defer ws.close()
	base := 0
	for i := range nw {
		if err := ws.start(i, launch); err != nil {
			return nil, err
		}
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
		if err := ws.sendTo(i, job); err != nil {
			return nil, err
		}
	}
	await := func(ev string, onOther func(workerEvent[wmsg])) ([]wmsg, error) { return ws.await(ctx, ev, onOther) }
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
	if err := ws.send(wmsg{Op: "connect"}); err != nil {
		return nil, err
	}
	connected, err := await("connected", func(e workerEvent[wmsg]) {
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
	if err := ws.send(wmsg{Op: "stats"}); err != nil {
		return nil, err
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
	if err := ws.send(wmsg{Op: "close"}); err != nil {
		return nil, err
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
