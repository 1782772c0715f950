// Package selfprobe checks, periodically, that the directory can be reached the way
// clients reach it: it dials the directory's own onion through a SOCKS port of tor,
// performs a full JoinMarket handshake as a throw-away taker and asks for the peerlist
// (internal/probe), and records success, latency and the last error. The server is
// told the probe's nick beforehand, answers it without registering it, and reports
// having seen it, so a probe counts as a success only if this very directory answered.
//
// Health turns false after UnhealthyAfter without a successful probe, counted from the
// later of the last success and the moment the onion was (re)published, so a start
// or a republication is given a full period.
package selfprobe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/probe"
)

// Settings are read before each probe (they may change on reload).
type Settings struct {
	Interval       time.Duration // between probes; 0 = no probes
	Timeout        time.Duration // bound on one probe
	UnhealthyAfter time.Duration // without a success; 0 = never unhealthy
}

// Options connect a Prober to the directory.
type Options struct {
	Network  string                                               // the JoinMarket network the handshake names
	Onion    func() (location string, published bool, why string) // the directory's onion location and whether it is published
	SOCKS    func() (network, addr, why string)                   // a SOCKS port of tor, or why none is known
	Expect   func(nick string) (seen func() bool, done func())    // announce the probe's nick to the server
	Settings func() Settings
	Log      *slog.Logger
	// Probe runs one probe; nil = probe.Probe (tests replace it).
	Probe func(ctx context.Context, addr string, o probe.Options) (probe.Result, error)
}

// retryAfterFailure is the wait after a failed probe, when shorter than the interval:
// a failure is confirmed or cleared soon.
const retryAfterFailure = time.Minute

// idleRecheck is how often a Prober that cannot probe (no SOCKS port, onion not
// published, probes off) looks again.
const idleRecheck = 5 * time.Second

// Prober runs the self-probes.
type Prober struct {
	o Options

	mu          sync.Mutex
	running     bool      // probes are being made
	why         string    // why not, when not
	socks       string    // the SOCKS port used
	since       time.Time // the onion published, without interruption, since
	probes      uint64
	failures    uint64
	consecutive int
	lastAttempt time.Time
	lastSuccess time.Time
	lastError   string
	connectMs   float64 // of the last success
	handshakeMs float64
}

// New returns a Prober; Run starts it.
func New(o Options) *Prober {
	if o.Probe == nil {
		o.Probe = probe.Probe
	}
	return &Prober{o: o, why: "not started"}
}

// Run probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	for ctx.Err() == nil {
		wait := p.step(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// step makes one probe if it can and returns the wait before the next step.
func (p *Prober) step(ctx context.Context) time.Duration {
	set := p.o.Settings()
	if set.Interval <= 0 {
		p.idle("self-probes are off (self_probe_interval = 0)")
		return idleRecheck
	}
	loc, published, why := p.o.Onion()
	if !published {
		p.idle("onion not published: " + why)
		return idleRecheck
	}
	network, addr, why := p.o.SOCKS()
	if network == "" {
		p.idle(why)
		return idleRecheck
	}
	socks := addr
	if network == "unix" {
		socks = "unix:" + addr
	}
	p.mu.Lock()
	if p.since.IsZero() {
		p.since = time.Now()
	}
	p.running, p.why, p.socks = true, "", socks
	p.mu.Unlock()

	res, err := p.probe(ctx, loc, network, addr, set.Timeout)
	if ctx.Err() != nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes++
	p.lastAttempt = time.Now()
	if err != nil {
		p.failures++
		p.consecutive++
		p.lastError = err.Error()
		p.o.Log.Warn("self-probe failed: the onion could not be reached through tor", "err", err,
			"consecutive", p.consecutive)
		return min(set.Interval, retryAfterFailure)
	}
	if p.consecutive > 0 {
		p.o.Log.Info("self-probe succeeded again", "after_failures", p.consecutive)
	}
	p.consecutive, p.lastError = 0, ""
	p.lastSuccess = p.lastAttempt
	p.connectMs, p.handshakeMs = res.ConnectMs, res.HandshakeMs
	p.o.Log.Debug("self-probe succeeded", "connect_ms", res.ConnectMs, "handshake_ms", res.HandshakeMs)
	return set.Interval
}

// idle records why no probe is made now.
func (p *Prober) idle(why string) {
	p.mu.Lock()
	p.running, p.why, p.since = false, why, time.Time{}
	p.mu.Unlock()
}

// probe makes one probe of loc through the SOCKS port, on a circuit of its own.
func (p *Prober) probe(ctx context.Context, loc, network, addr string, timeout time.Duration) (probe.Result, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	dial, err := probe.SOCKSDialer(network, addr, "jm-self-probe-"+hex.EncodeToString(b[:]))
	if err != nil {
		return probe.Result{}, err
	}
	nick := probe.NewNick()
	seen, done := p.o.Expect(nick)
	defer done()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := p.o.Probe(ctx, loc, probe.Options{Network: p.o.Network, Dial: dial, Nick: nick, Quiet: time.Second})
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return res, fmt.Errorf("no answer within %v: %w", timeout, err)
	case err != nil:
		return res, err
	case !res.Accepted:
		return res, fmt.Errorf("handshake refused: %s", res.Rejection)
	case !seen():
		return res, fmt.Errorf("a directory answered at %s, but not this one (nick %s)", loc, res.Nick)
	}
	return res, nil
}

// Status is the self-probe's state for /status.
type Status struct {
	// Running says probes are being made; Reason says why not, when not.
	Running bool   `json:"running"`
	Reason  string `json:"reason,omitempty"`
	SOCKS   string `json:"socks,omitempty"`
	// Probes and Failures count probes made; Consecutive the failures since the last
	// success.
	Probes      uint64 `json:"probes"`
	Failures    uint64 `json:"failures"`
	Consecutive int    `json:"consecutive_failures"`
	// LastAttempt and LastSuccess are nil before the first.
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// ConnectMs (through tor to the onion) and HandshakeMs (to the 795) are the last
	// success's.
	ConnectMs   float64 `json:"connect_ms,omitempty"`
	HandshakeMs float64 `json:"handshake_ms,omitempty"`
	// UnhealthyAfter is the setting in force, in seconds (0 = never).
	UnhealthyAfterSeconds float64 `json:"unhealthy_after_seconds"`
	Healthy               bool    `json:"healthy"`
}

// Status returns the current state.
func (p *Prober) Status() Status {
	ok, _ := p.Health()
	set := p.o.Settings()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Running: p.running, Reason: p.why, SOCKS: p.socks, Probes: p.probes, Failures: p.failures,
		Consecutive: p.consecutive, LastError: p.lastError, ConnectMs: p.connectMs, HandshakeMs: p.handshakeMs,
		UnhealthyAfterSeconds: set.UnhealthyAfter.Seconds(), Healthy: ok}
	if !p.lastAttempt.IsZero() {
		t := p.lastAttempt
		st.LastAttempt = &t
	}
	if !p.lastSuccess.IsZero() {
		t := p.lastSuccess
		st.LastSuccess = &t
	}
	return st
}

// Health is false once probes are made and none has succeeded for UnhealthyAfter,
// counted from the later of the last success and the onion's publication.
func (p *Prober) Health() (bool, string) {
	after := p.o.Settings().UnhealthyAfter
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || after <= 0 {
		return true, ""
	}
	from := p.since
	if p.lastSuccess.After(from) {
		from = p.lastSuccess
	}
	if gone := time.Since(from); gone > after {
		what := "no successful self-probe"
		if !p.lastSuccess.IsZero() {
			what = "no successful self-probe for " + gone.Round(time.Second).String()
		} else {
			what += " since the onion was published " + gone.Round(time.Second).String() + " ago"
		}
		if p.lastError != "" {
			what += " (last error: " + p.lastError + ")"
		}
		return false, what + ": clients may not reach this onion"
	}
	return true, ""
}
