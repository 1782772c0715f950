package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// startDirectory runs this repository's directory in-process on 127.0.0.1:0.
func startDirectory(t *testing.T, tweak func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.MessageRateLimit = 1e6
	cfg.MessageBurstLimit = 1e6
	if tweak != nil {
		tweak(&cfg)
	}
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, id, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// runJSON runs the command line and decodes its --json output.
func runJSON(t *testing.T, wantCode int, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append(args, "--json", "--quiet"), strings.NewReader(""), &stdout, &stderr)
	if code != wantCode {
		t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout.String(), stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	return m
}

// want checks numeric fields of a JSON report.
func want(t *testing.T, m map[string]any, kv map[string]float64) {
	t.Helper()
	for k, v := range kv {
		got, ok := m[k].(float64)
		if !ok || got != v {
			t.Errorf("%s = %v, want %v (report %v)", k, m[k], v, m)
		}
	}
}

func positive(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := m[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want > 0", k, m[k])
		}
	}
}

func TestFanoutSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "fanout", "--addr", addr, "--peers", "20", "--publishers", "3", "--duration", "300ms", "--rate", "1000")
	if m["ok"] != true {
		t.Fatalf("%v", m)
	}
	want(t, m, map[string]float64{"peers": 20, "missing": 0, "duplicates": 0, "peers_cut": 0, "out_of_order": 0})
	positive(t, m, "sent_lines", "delivered_per_s")
	if m["delivered"] != m["expected_deliveries"] || m["expected_deliveries"].(float64) != m["sent_lines"].(float64)*19 {
		t.Fatalf("delivered %v expected %v sent %v", m["delivered"], m["expected_deliveries"], m["sent_lines"])
	}
}

func TestCeilingSmoke(t *testing.T) {
	m := runJSON(t, 0, "ceiling", "--peers", "20", "--publishers", "3", "--duration", "300ms", "--rate", "1000", "--size", "200", "--rcvbuf", "65536")
	want(t, m, map[string]float64{"missing": 0, "duplicates": 0, "peers_cut": 0})
	positive(t, m, "sent_lines", "delivered")
	if _, ok := m["kernel_tcp_retransmits"].(float64); !ok && runtime.GOOS == "linux" {
		t.Errorf("no kernel counters: %v", m)
	}
	if m["relay"] != "in-process" || m["line_bytes"].(float64) < 190 {
		t.Fatalf("%v", m)
	}
}

func TestLatencySmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "latency", "--addr", addr, "--peers", "10", "--publishers", "2", "--bg-rate", "2000",
		"--samples", "50", "--warmup", "100ms")
	want(t, m, map[string]float64{"samples": 50, "lost": 0, "rtt_samples": 50, "bg_missing": 0})
	positive(t, m, "rtt_p50_ms", "rtt_max_ms", "bg_delivered")
	if m["rtt_p99_ms"].(float64) < m["rtt_p50_ms"].(float64) {
		t.Fatalf("p99 < p50: %v", m)
	}
}

func TestOrderbookSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "orderbook", "--addr", addr, "--makers", "20")
	want(t, m, map[string]float64{"makers": 20, "offers_received": 20, "location_peerlists_received": 20,
		"missing_offers": 0, "missing_peerlists": 0, "maker_arrival_samples": 20, "orderbook_requests_seen_by_makers": 20})
	positive(t, m, "full_orderbook_ms", "maker_arrival_p50_ms")
}

// TestOrderbookMissingFails: against the relay (which sends no location peerlists) the
// orderbook is incomplete and the exit status says so.
func TestOrderbookMissingFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(ln, "regtest", 1<<20, 5*time.Second, 0)
	defer r.Close()
	// --wait bounds how long the taker listens: the relay never completes the orderbook,
	// so the run lasts all of it, and every offer must arrive within it even under -race
	// on a loaded machine (300 ms lost one in a CI run).
	m := runJSON(t, 1, "orderbook", "--addr", r.Addr(), "--makers", "5", "--wait", "3s")
	// The relay forwards every maker's privmsg to every other connection, the taker
	// included, but never sends a 789.
	want(t, m, map[string]float64{"offers_received": 5, "missing_peerlists": 5})
	if m["ok"] != false {
		t.Fatal("ok with missing peerlists")
	}
}

func TestChurnSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "churn", "--addr", addr, "--peers", "10", "--rate", "50/s", "--duration", "300ms")
	want(t, m, map[string]float64{"observers": 10, "joins": 15, "leaves": 15, "notices_expected": 150,
		"notices_received": 150, "notices_missing": 0, "wrong_location_notices": 0, "notice_latency_samples": 150})
}

// TestIdleInProcessWorkers runs idle over two in-process workers (the worker protocol
// without processes) with distinct source addresses, measuring this process's RSS.
func TestIdleInProcessWorkers(t *testing.T) {
	addr := startDirectory(t, nil)
	c := &common{addr: addr, network: "regtest", concurrency: 16, timeout: 10 * time.Second, makers: 0.5}
	o := &idleOptions{common: c, peers: 50, serverPID: os.Getpid(), hold: 100 * time.Millisecond,
		settle: 50 * time.Millisecond, workers: 2, perWorker: 9000, sourceBase: 2, launch: inprocLauncher(t.Context())}
	rep, err := runIdle(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.num("accepted") != 50 || rep.num("failed") != 0 || rep.num("worker_processes") != 2 {
		t.Fatalf("%v %+v", rep.Failures, rep.fields)
	}
	if rep.get("source_addresses") != "127.0.0.2-127.0.0.3" || rep.num("handshakes_per_s") <= 0 || rep.num("server_rss_after") <= 0 {
		t.Fatalf("%+v", rep.fields)
	}
}

// TestIdleWorkerProcesses builds the tool and runs idle with two worker processes (the
// tool re-executing itself), against the in-process directory.
func TestIdleWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	addr := startDirectory(t, nil)
	bin := filepath.Join(t.TempDir(), "jm-directory-bench")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "idle", "--addr", addr, "--peers", "50", "--workers", "2", "--hold", "100ms",
		"--settle", "50ms", "--server-pid", "0", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	want(t, m, map[string]float64{"peers": 50, "accepted": 50, "failed": 0, "worker_processes": 2, "peers_cut_while_held": 0})
	if m["ok"] != true || m["source_addresses"] != "127.0.0.2-127.0.0.3" {
		t.Fatalf("%v", m)
	}
	if !strings.Contains(stderr.String(), "idle ") && stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
}

// TestIdleRejectionsCounted: a directory at capacity rejects; failures are grouped by
// reason and the exit status is 1.
func TestIdleRejectionsCounted(t *testing.T) {
	addr := startDirectory(t, func(c *config.Config) { c.MaxPeers = 10 })
	m := runJSON(t, 1, "idle", "--addr", addr, "--peers", "15", "--hold", "0", "--settle", "0", "--concurrency", "1")
	want(t, m, map[string]float64{"accepted": 10, "failed": 5})
	f, _ := m["handshake_failures"].(map[string]any)
	if len(f) != 1 {
		t.Fatalf("failures %v", m["handshake_failures"])
	}
	for k, v := range f {
		if !strings.HasPrefix(k, "rejected: ") || v != 5.0 {
			t.Fatalf("failures %v", f)
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"nonsense"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown scenario: exit %d", code)
	}
	if code := run([]string{"fanout", "--addr", "10.1.2.3:5222"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "loopback") {
		t.Fatalf("non-loopback address: exit %d, %s", code, errb.String())
	}
	if code := run([]string{"relay", "--listen", "0.0.0.0:5223"}, nil, &out, &errb); code != 2 {
		t.Fatalf("non-loopback listen: exit %d", code)
	}
}
