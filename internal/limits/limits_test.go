package limits

import (
	"sync"
	"testing"
	"time"
)

var defaults = Rates{Messages: 500, Burst: 1000, GetPeerlist: 3, Orderbook: 3}

// take takes tokens from which at now until one is refused and returns how many it got.
func take(b *Buckets, which Bucket, now time.Time) int {
	n := 0
	for b.Allow(which, now) {
		n++
	}
	return n
}

func TestBurstAndRefill(t *testing.T) {
	var b Buckets
	now := time.Unix(1e9, 0)
	b.Use(Rates{Messages: 10, Burst: 5, GetPeerlist: 3, Orderbook: 2}, now)
	for _, tc := range []struct {
		which Bucket
		burst int
		every time.Duration // one token per
	}{
		{Messages, 5, 100 * time.Millisecond},
		{GetPeerlist, 3, 20 * time.Second},
		{Orderbook, 2, 30 * time.Second},
	} {
		if got := take(&b, tc.which, now); got != tc.burst {
			t.Errorf("bucket %d: burst %d, want %d", tc.which, got, tc.burst)
		}
		if b.Allow(tc.which, now.Add(tc.every-time.Millisecond)) {
			t.Errorf("bucket %d: a token back before %v", tc.which, tc.every)
		}
		if got := take(&b, tc.which, now.Add(tc.every)); got != 1 {
			t.Errorf("bucket %d: %d tokens after %v, want 1", tc.which, got, tc.every)
		}
	}
}

// TestUseKeepsLevel: new rates apply to the buckets as they are; the same rates again
// change nothing (no refill).
func TestUseKeepsLevel(t *testing.T) {
	var b Buckets
	now := time.Unix(1e9, 0)
	r := Rates{Messages: 0.001, Burst: 3, GetPeerlist: 3, Orderbook: 3}
	b.Use(r, now)
	if got := take(&b, Messages, now); got != 3 {
		t.Fatalf("burst %d, want 3", got)
	}
	b.Use(r, now)
	if b.Allow(Messages, now) {
		t.Fatal("Use with unchanged rates refilled the bucket")
	}
	more := r
	more.Burst = 10
	b.Use(more, now)
	if b.Allow(Messages, now) {
		t.Fatal("a larger burst refilled the bucket at once")
	}
	more.Messages = 1
	b.Use(more, now)
	if got := take(&b, Messages, now.Add(time.Hour)); got != 10 {
		t.Fatalf("after an hour at the new rates: %d tokens, want the new burst 10", got)
	}
}

func TestViolation(t *testing.T) {
	var b Buckets
	for want := int64(1); want <= 3; want++ {
		if got := b.Violation(); got != want {
			t.Fatalf("violation %d, want %d", got, want)
		}
	}
}

// TestConcurrentUse: connections sharing the buckets take tokens while others bring
// them up to date; run it with -race. No more tokens are handed out than the burst.
func TestConcurrentUse(t *testing.T) {
	var b Buckets
	now := time.Unix(1e9, 0)
	slow := defaults
	slow.Messages = 1e-9
	other := slow
	other.Orderbook = 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for j := range 200 {
				r := slow
				if (i+j)%2 == 1 {
					r = other
				}
				b.Use(r, now)
				if b.Allow(Messages, now) {
					n++
				}
				b.Allow(GetPeerlist, now)
				b.Allow(Orderbook, now)
			}
			mu.Lock()
			got += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got != slow.Burst {
		t.Fatalf("%d tokens handed out, want the burst %d", got, slow.Burst)
	}
}

func TestByteBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	var b Buckets
	b.Use(Rates{Messages: 500, Burst: 1000, GetPeerlist: 3, Orderbook: 3, Bytes: 1000, ByteBurst: 5000}, now)
	if !b.AllowN(Bytes, now, 4000) {
		t.Fatal("4000 bytes refused from a full 5000-byte burst")
	}
	if b.AllowN(Bytes, now, 1001) {
		t.Fatal("1001 bytes allowed with 1000 left")
	}
	if !b.AllowN(Bytes, now, 1000) {
		t.Fatal("a refused AllowN took tokens")
	}
	if b.AllowN(Bytes, now, 1) {
		t.Fatal("a byte allowed from an empty bucket")
	}
	if !b.AllowN(Bytes, now.Add(2*time.Second), 2000) {
		t.Fatal("2 s at 1000 B/s did not refill 2000 bytes")
	}
	// Without a byte budget nothing is refused.
	var u Buckets
	u.Use(defaults, now)
	if !u.AllowN(Bytes, now, 1<<30) {
		t.Fatal("Bytes 0 must mean no byte budget")
	}
}
