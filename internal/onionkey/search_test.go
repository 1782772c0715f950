package onionkey

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// The Search tests are not parallel: TestSearchProgress changes progressInterval.

func TestCheckPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"a": "a", "Z": "z", "jm22": "jm22", "DIR7": "dir7", "abcdefghijkl": "abcdefghijkl",
	} {
		if got, err := CheckPrefix(in); err != nil || got != want {
			t.Errorf("CheckPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abcdefghijklm", "a0", "1", "8", "9", "jm-", "a b", "é", "a.onion"} {
		if got, err := CheckPrefix(in); !errors.Is(err, ErrPrefix) || got != "" {
			t.Errorf("CheckPrefix(%q) = %q, %v; want ErrPrefix", in, got, err)
		}
	}
	if _, err := CheckPrefix("jm0"); err == nil || !strings.Contains(err.Error(), "a-z and 2-7") {
		t.Errorf("message: %v", err)
	}
	if _, err := Search(context.Background(), "ab1", 1, nil); !errors.Is(err, ErrPrefix) {
		t.Errorf("Search with a bad prefix: %v", err)
	}
}

func TestExpected(t *testing.T) {
	for p, want := range map[string]float64{"a": 32, "ab": 1024, "abcde": 33554432, "abcdefghijkl": 1 << 60} {
		if got := Expected(p); got != want {
			t.Errorf("Expected(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestMatcher: the fast test on the public key's first 8 bytes agrees with the
// address, for every prefix length.
func TestMatcher(t *testing.T) {
	for range 64 {
		k, _ := Generate()
		on := k.Onion()
		for n := 1; n <= MaxPrefixLen; n++ {
			if !newMatcher(on[:n]).matches(k.public[:]) {
				t.Fatalf("%s does not match its own prefix %q", on, on[:n])
			}
			// Change the last character of the prefix: no match.
			c := on[n-1]
			d := byte('a')
			if c == 'a' {
				d = '7'
			}
			if wrong := on[:n-1] + string(d); newMatcher(wrong).matches(k.public[:]) {
				t.Fatalf("%s matches %q", on, wrong)
			}
		}
	}
}

func TestAddScalar(t *testing.T) {
	var s [32]byte
	for i := range 8 {
		s[i] = 0xff
	}
	got := addScalar(s, 1)
	want := [32]byte{8: 1}
	if got != want {
		t.Errorf("carry across a word: %x", got)
	}
	s = [32]byte{0: 0xf8, 31: 0x40}
	if got := addScalar(s, 8); got != ([32]byte{1: 1, 31: 0x40}) {
		t.Errorf("0x..f8 + 8 = %x", got)
	}
}

// TestWorkerStepsExactly: from a known start, the worker walks s0, s0+8, s0+16, ...
// across batch boundaries: told to look for the full 12-character prefix of the key
// at offset i, it returns exactly that key.
func TestWorkerStepsExactly(t *testing.T) {
	var s0 [32]byte
	copy(s0[:], rfcKey(t).ExpandedSecretKey()[:32])
	for _, i := range []uint64{0, 1, batch - 1, batch, batch + 7, 3*batch - 1} {
		want, err := FromExpanded(append(addScalarSlice(s0, 8*i), make([]byte, 32)...))
		if err != nil {
			t.Fatal(err)
		}
		var tried atomic.Uint64
		// Bounded: if the walk were wrong, the worker would search for ever.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		k, err := searchWorker(ctx, newMatcher(want.Onion()[:MaxPrefixLen]), func() [32]byte { return s0 }, &tried)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.ExpandedSecretKey()[:32], want.ExpandedSecretKey()[:32]) || k.Onion() != want.Onion() {
			t.Errorf("offset %d: found %v, want %v", i, k, want)
		}
		if w := (i/batch + 1) * batch; tried.Load() != w { // whole batches are counted
			t.Errorf("offset %d: tried %d keys, want %d", i, tried.Load(), w)
		}
	}
}

func addScalarSlice(s [32]byte, v uint64) []byte {
	b := addScalar(s, v)
	return b[:]
}

func TestSearch(t *testing.T) {
	for _, c := range []struct {
		prefix  string
		workers int
	}{{"a", 1}, {"Q", 2}, {"jm", 2}, {"7", 0}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		k, err := Search(ctx, c.prefix, c.workers, func(uint64) {})
		cancel()
		if err != nil {
			t.Fatalf("Search(%q): %v", c.prefix, err)
		}
		want := strings.ToLower(c.prefix)
		if on := k.Onion(); !strings.HasPrefix(on, want) {
			t.Errorf("Search(%q) found %s", c.prefix, on)
		}
		// The key survives tor's file format and has a real nonce half.
		k2, err := ParseSecretFile(k.SecretFile())
		if err != nil || !k2.Equal(k) || bytes.Equal(k.ExpandedSecretKey()[32:], make([]byte, 32)) {
			t.Errorf("found key does not round-trip: %v", err)
		}
	}
}

func TestSearchCancel(t *testing.T) {
	// Already cancelled: returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if k, err := Search(ctx, "abcdefghijkl", 2, nil); !errors.Is(err, context.Canceled) || !k.IsZero() {
		t.Errorf("cancelled before: %v, %v", k, err)
	}
	// Cancelled while searching: returns promptly. The cancel comes with the first
	// progress report that counts tried keys (the timeout only bounds the test if none
	// ever comes; Search then reports a deadline, not a cancel).
	old := progressInterval
	progressInterval = 20 * time.Millisecond
	defer func() { progressInterval = old }()
	ctx, cancel = context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	var cancelled atomic.Int64 // unix nanoseconds of the cancel
	k, err := Search(ctx, "abcdefghijkl", 2, func(tried uint64) {
		if tried > 0 && cancelled.Load() == 0 {
			cancelled.Store(time.Now().UnixNano())
			cancel()
		}
	})
	if cancelled.Load() == 0 {
		t.Errorf("no progress report counted tried keys within %v (Search: %v, %v)", testkit.Timeout, k, err)
	} else {
		if !errors.Is(err, context.Canceled) || !k.IsZero() {
			t.Errorf("cancelled during: %v, %v", k, err)
		}
		if d := time.Since(time.Unix(0, cancelled.Load())); d > 3*time.Second {
			t.Errorf("Search took %v to stop", d)
		}
	}
	// A deadline is reported as such.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Search(ctx, "abcdefghijkl", 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
}

func TestSearchProgress(t *testing.T) {
	old := progressInterval
	progressInterval = 20 * time.Millisecond
	defer func() { progressInterval = old }()

	var (
		mu       sync.Mutex
		calls    []uint64
		busy     atomic.Int32
		returned atomic.Bool  // Search has returned
		late     atomic.Int32 // progress calls after that
	)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Search(ctx, "abcdefghijkl", 2, func(n uint64) {
		if returned.Load() {
			late.Add(1)
			return
		}
		if busy.Add(1) != 1 {
			t.Error("progress called concurrently")
		}
		mu.Lock()
		if len(calls) == 0 && !searchRunning() {
			t.Error("searchRunning does not see the goroutine calling progress")
		}
		calls = append(calls, n)
		mu.Unlock()
		busy.Add(-1)
	})
	returned.Store(true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	// Nothing is reported after Search returned: every goroutine it started, the one
	// calling progress among them, is gone (one that has been waited for may take a
	// moment to exit, hence the wait), and none called progress in between.
	testkit.Eventually(t, "Search's goroutines exiting", func() bool { return !searchRunning() })
	if n := late.Load(); n != 0 {
		t.Errorf("progress called %d times after Search returned", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 3 {
		t.Fatalf("progress called %d times in 300ms at a 20ms interval", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] {
			t.Errorf("progress went backwards: %v", calls)
		}
	}
	if calls[len(calls)-1] == 0 || calls[len(calls)-1]%batch != 0 {
		t.Errorf("last progress %d: want a positive multiple of %d", calls[len(calls)-1], batch)
	}
}

// searchRunning reports whether a goroutine that Search started is still alive: one
// with a function of Search (a closure: Search.func1, …) on its stack.
func searchRunning() bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("/onionkey.Search."))
}

// BenchmarkSearch measures the search rate of one worker.
func BenchmarkSearch(b *testing.B) {
	var tried atomic.Uint64
	ctx := triedCtx{Context: context.Background(), tried: &tried, n: uint64(b.N)}
	b.ResetTimer()
	searchWorker(ctx, newMatcher("abcdefghijkl"), randomStart, &tried)
}

// triedCtx is a context that ends once tried reaches n: the worker stops within one
// batch of b.N keys, with no goroutine polling the count. It works because searchWorker
// checks ctx.Err() before every batch (Done never closes).
type triedCtx struct {
	context.Context
	tried *atomic.Uint64
	n     uint64
}

func (c triedCtx) Err() error {
	if c.tried.Load() >= c.n {
		return context.Canceled
	}
	return nil
}

// BenchmarkGenerate measures the plain route for comparison.
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		Generate()
	}
}
