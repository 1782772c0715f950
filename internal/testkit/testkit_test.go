package testkit

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	var n atomic.Int32
	if !Poll(5*time.Second, func() bool { return n.Add(1) == 3 }) {
		t.Fatalf("Poll gave up after %d checks of a condition true on the third", n.Load())
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("Poll checked %d times, want 3", got)
	}
	start := time.Now()
	if Poll(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("Poll gave up before its bound")
	}
}

// fakeTB records what Eventually does with a failing condition without failing this test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestEventuallyFails(t *testing.T) {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(f) {
				panic(r)
			}
		}()
		EventuallyWithin(f, 10*time.Millisecond, "the impossible", func() bool { return false })
	}()
	if f.failed == "" {
		t.Fatal("Eventually did not fail on a condition that never held")
	}
}

func TestNeedToolPresent(t *testing.T) {
	// go is on PATH wherever tests run.
	if p := NeedTool(t, "go"); p == "" {
		t.Fatal("NeedTool returned no path for go")
	}
}
