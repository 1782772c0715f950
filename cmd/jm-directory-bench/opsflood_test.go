package main

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/ops"
)

// startDirectoryWithOps runs this repository's directory in-process with its ops
// listener as main wires it (Server on Listener), capped at maxConns connections, and
// returns the peer and ops addresses.
func startDirectoryWithOps(t *testing.T, maxConns int) (string, string) {
	t.Helper()
	d := dirtest.Start(t, nil, nil)
	opsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	op, err := ops.New(d.Srv, ops.Options{Addr: opsLn.Addr().String(), MaxConns: maxConns}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	httpSrv := op.Server()
	done := make(chan struct{})
	go func() { _ = httpSrv.Serve(op.Listener(opsLn)); close(done) }()
	t.Cleanup(func() { _ = httpSrv.Close(); <-done })
	return d.Addr, opsLn.Addr().String()
}

// TestOpsfloodSmoke: a small flood in both modes against a capped ops listener; every
// honest peer joins and passes its privmsgs, /health answers a fresh connection.
func TestOpsfloodSmoke(t *testing.T) {
	addr, opsAddr := startDirectoryWithOps(t, 4)
	for _, mode := range []string{"request", "silent"} {
		m := runJSON(t, 0, "opsflood", "--addr", addr, "--ops-addr", opsAddr, "--mode", mode, "--conns", "40",
			"--peers", "4", "--settle", "0", "--probe-timeout", "20s", "--redial=false")
		want(t, m, map[string]float64{"ops_conns": 40, "honest_joins_attempted": 4, "honest_joins_accepted": 4,
			"privmsg_round_trips": 2, "privmsg_round_trips_ok": 2, "worker_processes": 0})
		if m["ok"] != true || !strings.HasPrefix(m["health_during_flood"].(string), "yes") ||
			m["claim"] != "40 ops connections leave peers able to join" {
			t.Fatalf("%s: %v", mode, m)
		}
	}
}

// TestOpsfloodWorkers: the flood spread over two (in-process) workers, each from its own
// source address, with redial on.
func TestOpsfloodWorkers(t *testing.T) {
	addr, opsAddr := startDirectoryWithOps(t, 4)
	o := &opsfloodOptions{common: &common{addr: addr, network: "regtest", concurrency: 16, timeout: 20 * time.Second},
		opsAddr: opsAddr, conns: 30, mode: "request", peers: 2, dialTimeout: 5 * time.Second, dialConc: 8,
		redial: true, redialPause: 10 * time.Millisecond, workers: 2, perWorker: 9000, sourceBase: 20,
		replyTimeout: 20 * time.Second, probeTimeout: 20 * time.Second, launch: floodInprocLauncher(t.Context())}
	rep, err := runOpsflood(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("failures: %v", rep.Failures)
	}
	got := map[string]any{}
	for _, f := range rep.fields {
		got[f.key] = f.val
	}
	if got["source_addresses"] != "127.0.0.20-127.0.0.21" || got["worker_processes"] != 2 || got["honest_joins_accepted"] != 2 {
		t.Fatalf("%v", got)
	}
	if n, _ := got["ops_connects"].(int64); n < 30 {
		t.Fatalf("ops_connects = %v, want ≥ 30", got["ops_connects"])
	}
}

// TestOpsfloodFailsWhenPeersCannotJoin: a peer port that accepts and never answers (as
// a directory out of descriptors leaves connections in its backlog) fails the run.
func TestOpsfloodFailsWhenPeersCannotJoin(t *testing.T) {
	_, opsAddr := startDirectoryWithOps(t, 4)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		dead.Close()
		<-acceptDone
		for _, c := range held {
			c.Close()
		}
	})
	m := runJSON(t, 1, "opsflood", "--addr", dead.Addr().String(), "--ops-addr", opsAddr, "--conns", "10",
		"--peers", "2", "--settle", "0", "--timeout", "300ms", "--redial=false")
	want(t, m, map[string]float64{"honest_joins_accepted": 0, "privmsg_round_trips_ok": 0})
	f, _ := m["failures"].([]any)
	if m["ok"] != false || len(f) != 2 || !strings.Contains(f[0].(string), "2 of 2 honest peers could not join") {
		t.Fatalf("%v", m)
	}
}

// TestOpsHealthProbe: a probe says "no" when nothing answers in time.
func TestOpsHealthProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := probeOpsHealth(t.Context(), ln.Addr().String(), 100*time.Millisecond) // never accepted, never answered
	if p.status != 0 || !strings.HasPrefix(p.answer(), "no (timeout)") || p.lat < 100*time.Millisecond {
		t.Fatalf("%+v %s", p, p.answer())
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if p := probeOpsHealth(t.Context(), ln.Addr().String(), 20*time.Second); p.answer() != "yes (503)" {
		t.Fatalf("%+v", p)
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1 000", 30000: "30 000", 1234567: "1 234 567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("%d: %q", n, got)
		}
	}
}
