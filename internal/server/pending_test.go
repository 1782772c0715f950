package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// The pool evicts the oldest silent connection first, then the oldest with an incomplete
// handshake line, the oldest of all only when every one is being answered, and never more
// than one per newcomer.
func TestPendingPoolEviction(t *testing.T) {
	var pp pendingPool
	mk := func(heard bool) *pendingConn {
		pc := &pendingConn{p: &peer.Peer{}}
		pc.heard.Store(heard)
		return pc
	}
	a, b, c := mk(true), mk(false), mk(false)
	for _, pc := range []*pendingConn{a, b, c} {
		if v, _ := pp.add(pc, 3); v != nil {
			t.Fatal("an eviction below the cap")
		}
	}
	d := mk(false)
	if v, why := pp.add(d, 3); v != b || why != reason.ClosePendingEvicted {
		t.Fatalf("evicted %p (%v), want the oldest silent one %p", v, why, b)
	}
	// None silent: the oldest whose line is incomplete goes before one being answered.
	a.read.Store(true)
	c.heard.Store(true)
	d.heard.Store(true)
	e := mk(false)
	if v, why := pp.add(e, 3); v != c || why != reason.ClosePendingCap {
		t.Fatalf("evicted %p (%v), want %p, the oldest with its handshake line incomplete", v, why, c)
	}
	d.read.Store(true)
	e.heard.Store(true)
	e.read.Store(true)
	f := mk(false)
	if v, why := pp.add(f, 3); v != a || why != reason.ClosePendingCap {
		t.Fatalf("evicted %p (%v), want the oldest %p when every one is being answered", v, why, a)
	}
	if pp.Len() != 3 {
		t.Fatalf("pool holds %d, want 3", pp.Len())
	}
	pp.remove(b) // already evicted: nothing happens
	pp.remove(d)
	if pp.Len() != 2 {
		t.Fatalf("pool holds %d after a removal, want 2", pp.Len())
	}
}

// recorder is a slog handler keeping every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// sum adds up the integer attributes of every INFO record with message msg (the closes
// may fall into two periods), and counts those records.
func (r *recorder) sum(msg string) (attrs map[string]int64, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attrs = map[string]int64{}
	for _, rec := range r.recs {
		if rec.Message != msg || rec.Level != slog.LevelInfo {
			continue
		}
		records++
		rec.Attrs(func(a slog.Attr) bool {
			if a.Value.Kind() == slog.KindInt64 {
				attrs[a.Key] += a.Value.Int64()
			}
			return true
		})
	}
	return attrs, records
}

// At INFO, connections closed before their handshake are summed up by reason in one
// line per period, and nothing is logged for a period without any.
func TestEarlyCloseSummary(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.FirstByteTimeout = 100 * time.Millisecond
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s, err := New(cfg, id, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	s.summaryEvery = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	for _, send := range []string{"not json\r\n", "{\"type\": 687, \"line\": \"x\"}\r\n", ""} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if send != "" {
			if _, err := c.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(testkit.Timeout))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) && err == nil {
			t.Fatalf("%q: connection not closed", send)
		}
	}
	const msg = "connections closed before their handshake"
	var attrs map[string]int64
	var records int
	testkit.Eventually(t, "the early-close summary", func() bool {
		attrs, records = rec.sum(msg)
		return attrs["total"] == 3
	})
	if records > 3 {
		t.Errorf("%d summary lines for 3 closes: a period without closes logged one", records)
	}
	for _, r := range []reason.Close{reason.CloseMalformed, reason.CloseNotHandshake, reason.CloseSilent} {
		if attrs[r.String()] != 1 {
			t.Errorf("summary %v: want %s=1", attrs, r)
		}
	}
}

// TestPendingPoolEvictsUnansweredChallenge: a connection that has not answered its
// nick-authentication challenge is evicted before a silent connection that has owed
// its first byte for less time, and after one that has owed it for longer; it is never
// evicted for being in the middle of its round once it has answered.
func TestPendingPoolEvictsUnansweredChallenge(t *testing.T) {
	var pp pendingPool
	now := time.Now()
	mk := func(heard, read bool, since time.Time, proofSince time.Time) *pendingConn {
		pc := &pendingConn{p: &peer.Peer{}, since: since}
		pc.heard.Store(heard)
		pc.read.Store(read)
		if !proofSince.IsZero() {
			pc.proofSince.Store(proofSince.UnixNano())
		}
		return pc
	}
	// Three stallers waiting for their proofs since 5, 3 and 4 s ago.
	s1 := mk(true, true, now.Add(-6*time.Second), now.Add(-5*time.Second))
	s2 := mk(true, true, now.Add(-4*time.Second), now.Add(-3*time.Second))
	s3 := mk(true, true, now.Add(-5*time.Second), now.Add(-4*time.Second))
	for _, pc := range []*pendingConn{s1, s2, s3} {
		if v, _ := pp.add(pc, 3); v != nil {
			t.Fatal("an eviction below the cap")
		}
	}
	// A newcomer (silent, just now) replaces the staller waiting longest, not itself or
	// another newcomer.
	fresh := mk(false, false, now, time.Time{})
	if v, why := pp.add(fresh, 3); v != s1 || why != reason.ClosePendingEvicted {
		t.Fatalf("evicted %p (%v), want the staller waiting longest %p", v, why, s1)
	}
	fresh2 := mk(false, false, now, time.Time{})
	if v, _ := pp.add(fresh2, 3); v != s3 {
		t.Fatalf("evicted %p, want the next staller %p", v, s3)
	}
	// A silent connection older than every wait goes first.
	var pp2 pendingPool
	old := mk(false, false, now.Add(-10*time.Second), time.Time{})
	waiting := mk(true, true, now.Add(-2*time.Second), now.Add(-time.Second))
	answered := mk(true, true, now.Add(-20*time.Second), time.Time{})
	for _, pc := range []*pendingConn{answered, old, waiting} {
		pp2.add(pc, 3)
	}
	if v, _ := pp2.add(mk(false, false, now, time.Time{}), 3); v != old {
		t.Fatalf("evicted %p, want the silent connection owing for 10 s %p", v, old)
	}
	if v, _ := pp2.add(mk(true, false, now, time.Time{}), 3); v != waiting {
		t.Fatalf("evicted %p, want the one waiting 1 s for its proof %p (before a fresh silent one)", v, waiting)
	}
}
