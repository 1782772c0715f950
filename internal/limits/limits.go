// Package limits holds a client's rate limits: its token buckets and its count of
// refused messages (violations). The connections of one client share one Buckets.
package limits

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/jm-directory/jm-directory-server/internal/config"
)

// Buckets are a client's token buckets, shared by its connections' read loops.
type Buckets struct {
	mu         sync.Mutex
	cfg        atomic.Pointer[config.Config] // the configuration the buckets were set from
	msgs       *rate.Limiter
	getPeers   *rate.Limiter
	orderbooks *rate.Limiter
	violations atomic.Int64
}

// Use brings the buckets up to date with c: call it before taking tokens, with the
// current configuration (it is cheap when nothing changed). Buckets keep their level
// across a change of rates.
func (b *Buckets) Use(c *config.Config, now time.Time) {
	if b.cfg.Load() == c {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.Load() == c {
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
	set(&b.msgs, rate.Limit(c.MessageRateLimit), c.MessageBurstLimit)
	set(&b.getPeers, perMinute(c.GetPeerlistPerMinute), c.GetPeerlistPerMinute)
	set(&b.orderbooks, perMinute(c.OrderbookPerMinute), c.OrderbookPerMinute)
	b.cfg.Store(c)
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
)

// Allow takes a token from the bucket (Use must have been called) and reports whether
// there was one.
func (b *Buckets) Allow(which Bucket, now time.Time) bool {
	switch which {
	case GetPeerlist:
		return b.getPeers.AllowN(now, 1)
	case Orderbook:
		return b.orderbooks.AllowN(now, 1)
	}
	return b.msgs.AllowN(now, 1)
}

// Violation counts one refused message and returns the client's total.
func (b *Buckets) Violation() int64 { return b.violations.Add(1) }
