package selfprobe

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/probe"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// fake is the directory and tor as the Prober sees them.
type fake struct {
	mu        sync.Mutex
	set       Settings
	published bool
	socks     string
	answer    func(nick string) (probe.Result, error) // what the probe gets
	seen      bool                                    // the server saw the nick
	expected  []string
	addrs     []string
}

func (f *fake) options() Options {
	return Options{
		Network: "regtest",
		Onion: func() (string, bool, string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return "abc.onion:5222", f.published, "waiting for tor to upload"
		},
		SOCKS: func() (string, string, string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.socks == "" {
				return "", "", "tor has no SocksPort"
			}
			return "tcp", f.socks, ""
		},
		Expect: func(nick string) (func() bool, func()) {
			f.mu.Lock()
			f.expected = append(f.expected, nick)
			f.mu.Unlock()
			return func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.seen }, func() {}
		},
		Settings: func() Settings { f.mu.Lock(); defer f.mu.Unlock(); return f.set },
		Log:      slog.New(slog.DiscardHandler),
		Probe: func(ctx context.Context, addr string, o probe.Options) (probe.Result, error) {
			f.mu.Lock()
			f.addrs = append(f.addrs, addr)
			answer := f.answer
			f.mu.Unlock()
			if o.Dial == nil || o.Nick == "" || o.Network != "regtest" {
				return probe.Result{}, errors.New("probe options incomplete")
			}
			return answer(o.Nick)
		},
	}
}

func accepted(string) (probe.Result, error) {
	return probe.Result{Accepted: true, ConnectMs: 120, HandshakeMs: 30}, nil
}

func TestIdleReasons(t *testing.T) {
	f := &fake{set: Settings{Interval: 0, Timeout: time.Second, UnhealthyAfter: time.Millisecond}, answer: accepted}
	p := New(f.options())
	ctx := context.Background()
	for _, c := range []struct {
		change func()
		reason string
	}{
		{func() {}, "self-probes are off"},
		{func() { f.set.Interval = time.Minute }, "onion not published: waiting for tor to upload"},
		{func() { f.published = true }, "tor has no SocksPort"},
	} {
		f.mu.Lock()
		c.change()
		f.mu.Unlock()
		if wait := p.step(ctx); wait != idleRecheck {
			t.Fatalf("%s: wait %v", c.reason, wait)
		}
		st := p.Status()
		if st.Running || !strings.HasPrefix(st.Reason, c.reason) || !st.Healthy || st.Probes != 0 {
			t.Fatalf("status %+v, want idle for %q and healthy", st, c.reason)
		}
	}
	if len(f.expected) != 0 {
		t.Fatal("a probe was made while idle")
	}
}

// TestHealthFollowsProbes: a success keeps the directory healthy; failures turn it
// unhealthy once UnhealthyAfter has passed since the last success (with the last error
// in the reason), and a success makes it healthy again. A probe is a success only if
// accepted and seen by this server.
func TestHealthFollowsProbes(t *testing.T) {
	f := &fake{set: Settings{Interval: time.Hour, Timeout: time.Second, UnhealthyAfter: 50 * time.Millisecond},
		published: true, socks: "127.0.0.1:9050", answer: accepted, seen: true}
	p := New(f.options())
	ctx := context.Background()
	if wait := p.step(ctx); wait != time.Hour {
		t.Fatalf("wait after a success %v", wait)
	}
	st := p.Status()
	if !st.Running || st.Probes != 1 || st.Failures != 0 || st.LastSuccess == nil || st.ConnectMs != 120 || st.HandshakeMs != 30 || st.SOCKS != "127.0.0.1:9050" {
		t.Fatalf("after a success: %+v", st)
	}
	if f.addrs[0] != "abc.onion:5222" || len(f.expected) != 1 {
		t.Fatalf("probed %v with nicks %v", f.addrs, f.expected)
	}

	for _, c := range []struct {
		answer func(string) (probe.Result, error)
		seen   bool
		err    string
	}{
		{func(string) (probe.Result, error) {
			return probe.Result{}, errors.New("socks connect: host unreachable")
		}, true, "host unreachable"},
		{func(string) (probe.Result, error) { return probe.Result{Rejection: "wrong network"}, nil }, true, "handshake refused: wrong network"},
		{accepted, false, "not this one"},
	} {
		f.mu.Lock()
		f.answer, f.seen = c.answer, c.seen
		f.mu.Unlock()
		if wait := p.step(ctx); wait != retryAfterFailure {
			t.Fatalf("%s: wait %v after a failure", c.err, wait)
		}
		if st := p.Status(); !strings.Contains(st.LastError, c.err) {
			t.Fatalf("last error %q, want %q", st.LastError, c.err)
		}
	}
	testkit.Eventually(t, "unhealthy without a success", func() bool {
		ok, why := p.Health()
		return !ok && strings.Contains(why, "no successful self-probe for") && strings.Contains(why, "not this one")
	})
	if st := p.Status(); st.Healthy || st.Consecutive != 3 || st.Failures != 3 || st.Probes != 4 {
		t.Fatalf("after three failures: %+v", st)
	}
	f.mu.Lock()
	f.answer, f.seen = accepted, true
	f.mu.Unlock()
	p.step(ctx)
	if ok, why := p.Health(); !ok {
		t.Fatalf("unhealthy after a success: %s", why)
	}
	// 0 = never unhealthy.
	f.mu.Lock()
	f.set.UnhealthyAfter = 0
	f.answer = func(string) (probe.Result, error) { return probe.Result{}, errors.New("down") }
	f.mu.Unlock()
	p.step(ctx)
	p.mu.Lock()
	p.lastSuccess, p.since = time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)
	p.mu.Unlock()
	if ok, why := p.Health(); !ok {
		t.Fatalf("unhealthy with self_probe_unhealthy_after = 0: %s", why)
	}
}

// TestUnhealthyCountsFromPublication: with no success yet, the period runs from the
// onion's publication, and an unpublished onion resets it.
func TestUnhealthyCountsFromPublication(t *testing.T) {
	f := &fake{set: Settings{Interval: time.Hour, Timeout: time.Second, UnhealthyAfter: 50 * time.Millisecond},
		published: true, socks: "127.0.0.1:9050", seen: true,
		answer: func(string) (probe.Result, error) { return probe.Result{}, errors.New("down") }}
	p := New(f.options())
	ctx := context.Background()
	p.step(ctx)
	testkit.Eventually(t, "unhealthy with no success since publication", func() bool {
		ok, why := p.Health()
		return !ok && strings.Contains(why, "since the onion was published")
	})
	f.mu.Lock()
	f.published = false
	f.mu.Unlock()
	p.step(ctx)
	if ok, _ := p.Health(); !ok {
		t.Fatal("the self-probe blames an unpublished onion (the onion's own check does)")
	}
	f.mu.Lock()
	f.published = true
	f.mu.Unlock()
	p.step(ctx)
	if ok, why := p.Health(); !ok {
		t.Fatalf("unhealthy at once after the onion was published again: %s", why)
	}
}
