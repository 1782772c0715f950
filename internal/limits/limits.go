// Package limits holds a client's rate limits: its token buckets and its count of
// refused messages (violations). The connections of one client share one Buckets. It
// takes plain numbers (Rates) and knows nothing of where they come from.
package limits

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Rates are the sizes of a client's buckets.
type Rates struct {
	Messages    float64 // lines per second after the handshake, > 0
	Burst       int     // lines allowed at once, >= 1
	GetPeerlist int     // GETPEERLIST requests per minute, also their burst, >= 1
	Orderbook   int     // public !orderbook requests per minute, also their burst, >= 1
	Bytes       float64 // bytes per second of relayed pubmsg and privmsg lines; 0 = no byte budget
	ByteBurst   int     // bytes of relayed lines allowed at once, >= the longest line
}

// Buckets are a client's token buckets, shared by its connections' read loops.
type Buckets struct {
	mu         sync.Mutex
	rates      Rates // what the buckets were set from; guarded by mu
	msgs       *rate.Limiter
	getPeers   *rate.Limiter
	orderbooks *rate.Limiter
	bytes      *rate.Limiter
	violations atomic.Int64
}

// Use brings the buckets up to date with r: call it before the first token is taken
// and again whenever the rates may have changed (it does nothing when they have not).
// Buckets keep their level across a change of rates.
func (b *Buckets) Use(r Rates, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.msgs != nil && b.rates == r {
		return
	}
	set := func(l **rate.Limiter, r rate.Limit, burst int) {
		if *l == nil {
			*l = rate.NewLimiter(r, burst)
			return
		}
		(*l).SetLimitAt(now, r)
		(*l).SetBurstAt(now, burst)
	}
	set(&b.msgs, rate.Limit(r.Messages), r.Burst)
	set(&b.getPeers, perMinute(r.GetPeerlist), r.GetPeerlist)
	set(&b.orderbooks, perMinute(r.Orderbook), r.Orderbook)
	if r.Bytes > 0 {
		set(&b.bytes, rate.Limit(r.Bytes), r.ByteBurst)
	} else {
		set(&b.bytes, rate.Inf, 0)
	}
	b.rates = r
}

// perMinute is the rate of n events per minute.
func perMinute(n int) rate.Limit { return rate.Limit(float64(n) / 60) }

// Bucket names one of a client's buckets.
type Bucket uint8

// The buckets.
const (
	Messages    Bucket = iota // every line after the handshake
	GetPeerlist               // GETPEERLIST requests
	Orderbook                 // public !orderbook requests
	Bytes                     // bytes of relayed pubmsg and privmsg lines (AllowN)
)

// Allow takes a token from the bucket (Use must have been called) and reports whether
// there was one.
func (b *Buckets) Allow(which Bucket, now time.Time) bool { return b.AllowN(which, now, 1) }

// AllowN takes n tokens from the bucket (Use must have been called) and reports whether
// there were that many; none are taken otherwise.
func (b *Buckets) AllowN(which Bucket, now time.Time, n int) bool {
	switch which {
	case Bytes:
		return b.bytes.AllowN(now, n)
	case GetPeerlist:
		return b.getPeers.AllowN(now, n)
	case Orderbook:
		return b.orderbooks.AllowN(now, n)
	}
	return b.msgs.AllowN(now, n)
}

// Violation counts one refused message and returns the client's total.
func (b *Buckets) Violation() int64 { return b.violations.Add(1) }
