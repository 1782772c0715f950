package main

import (
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
)

// TestSchedFromTrace traces this process while the latency scenario runs against an
// in-process directory, then checks that the summary found the directory's read loops
// and measured their waits.
func TestSchedFromTrace(t *testing.T) {
	addr := startDirectory(t, nil)
	path := filepath.Join(t.TempDir(), "trace.out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	runJSON(t, 0, "latency", "--addr", addr, "--peers", "10", "--publishers", "2", "--bg-rate", "2000",
		"--samples", "30", "--warmup", "50ms")
	trace.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m := runJSON(t, 0, "sched", path)
	// 30 round trips and the background: every relayed line wakes a read loop.
	if n := m["read_loop_wait_samples"].(float64); n < 60 {
		t.Fatalf("read_loop_wait_samples = %v, want ≥ 60: %v", n, m)
	}
	if m["read_loop_wait_max_ms"].(float64) < m["read_loop_wait_p50_ms"].(float64) {
		t.Fatalf("max < p50: %v", m)
	}
	if m["flusher_wait_samples"].(float64) < 1 {
		t.Fatalf("no flusher goroutine seen: %v", m)
	}
}

func TestSchedRejectsNonTrace(t *testing.T) {
	if _, err := schedReport(strings.NewReader("not a trace")); err == nil {
		t.Fatal("accepted garbage")
	}
	path := filepath.Join(t.TempDir(), "x")
	_ = os.WriteFile(path, []byte("garbage"), 0o600)
	var out, errb strings.Builder
	if code := run([]string{"sched", path}, strings.NewReader(""), &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1 (%s)", code, errb.String())
	}
	if code := run([]string{"sched"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("no file: exit %d, want 2", code)
	}
}
