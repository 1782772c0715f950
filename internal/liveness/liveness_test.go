package liveness_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

// t0 is an arbitrary base for the explicit-time tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	ping  = "{\"type\":798,\"line\":\"\"}\r\n"
	probe = "{\"type\":687,\"line\":\"J5CHzCDv77erayr2!PUBLIC!orderbook\"}\r\n"
)

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

// kinds of peer, by what they advertised and whether they serve an onion.
type kind struct {
	name  string
	loc   string
	feats []string
}

var (
	pingTaker  = kind{"ping taker", peertest.NotServing, []string{"ping", "peerlist_features"}}
	pingMaker  = kind{"ping maker", peertest.MakerLoc, []string{"ping"}}
	plainMaker = kind{"plain maker", peertest.MakerLoc, nil}
	plainTaker = kind{"plain taker", peertest.NotServing, []string{"peerlist_features"}}
)

func (h *harness) addKind(nick string, k kind, lastSeen time.Time) *peertest.Client {
	h.t.Helper()
	c := h.Add(nick, k.loc, k.feats...)
	c.P.Touch(lastSeen)
	return c
}

func TestProtocolLines(t *testing.T) {
	if string(router.PingLine) != ping {
		t.Errorf("PingLine = %q, want %q", router.PingLine, ping)
	}
	rt := router.New(nil, &stats.Counters{}, peertest.NickDN, peertest.DNLoc)
	if string(rt.ProbeLine()) != probe {
		t.Errorf("ProbeLine = %q, want %q", rt.ProbeLine(), probe)
	}
}

func TestSweepOnePeer(t *testing.T) {
	cases := []struct {
		kind        kind
		idle        time.Duration
		want        []string // lines the peer receives
		wantPending bool
		wantReason  reason.Close
		wantResult  liveness.Result
	}{
		{pingTaker, 0, nil, false, reason.CloseNone, liveness.Result{}},
		{pingTaker, sec(599), nil, false, reason.CloseNone, liveness.Result{}},
		{pingTaker, sec(600), []string{ping}, true, reason.CloseNone, liveness.Result{Pinged: 1}},
		{pingTaker, sec(1499), []string{ping}, true, reason.CloseNone, liveness.Result{Pinged: 1}},
		{pingTaker, sec(1500), nil, false, reason.CloseHardEvict, liveness.Result{Evicted: 1}},
		{pingMaker, sec(599), nil, false, reason.CloseNone, liveness.Result{}},
		{pingMaker, sec(600), []string{ping}, true, reason.CloseNone, liveness.Result{Pinged: 1}},
		{pingMaker, sec(1500), nil, false, reason.CloseHardEvict, liveness.Result{Evicted: 1}},
		{plainMaker, sec(599), nil, false, reason.CloseNone, liveness.Result{}},
		{plainMaker, sec(600), []string{probe}, false, reason.CloseNone, liveness.Result{Probed: 1}},
		{plainMaker, sec(1499), []string{probe}, false, reason.CloseNone, liveness.Result{Probed: 1}},
		{plainMaker, sec(1500), nil, false, reason.CloseHardEvict, liveness.Result{Evicted: 1}},
		{plainMaker, 100 * time.Hour, nil, false, reason.CloseHardEvict, liveness.Result{Evicted: 1}},
		{plainTaker, sec(599), nil, false, reason.CloseNone, liveness.Result{}},
		{plainTaker, sec(600), nil, false, reason.CloseNone, liveness.Result{}},
		{plainTaker, sec(1500), nil, false, reason.CloseNone, liveness.Result{}},
		{plainTaker, 100 * time.Hour, nil, false, reason.CloseNone, liveness.Result{}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s idle %v", tc.kind.name, tc.idle), func(t *testing.T) {
			bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
				now := t0.Add(tc.idle)
				c := h.addKind(peertest.NickMaker, tc.kind, t0)
				if got := h.sw.Sweep(now); got != tc.wantResult {
					t.Errorf("Sweep = %+v, want %+v", got, tc.wantResult)
				}
				peertest.EqualLines(t, "peer", c.Recv(), tc.want)
				sent, pending := c.P.PingPending()
				if pending != tc.wantPending || (pending && !sent.Equal(now)) {
					t.Errorf("PingPending = %v, %v; want pending %v at %v", sent, pending, tc.wantPending, now)
				}
				if got := c.P.Reason(); got != tc.wantReason {
					t.Errorf("Reason = %v, want %v", got, tc.wantReason)
				}
			})
		})
	}
}

func TestSweepPingUnanswered(t *testing.T) {
	for _, k := range []kind{pingTaker, pingMaker} {
		t.Run(k.name, func(t *testing.T) {
			bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
				c := h.addKind(peertest.NickTaker, k, t0)

				if r := h.sw.Sweep(t0.Add(sec(600))); r != (liveness.Result{Pinged: 1}) {
					t.Fatalf("first sweep = %+v", r)
				}
				peertest.EqualLines(t, "after first sweep", c.Recv(), []string{ping})

				// Before the pong wait: no second ping, no eviction, pending time unchanged.
				for _, at := range []int{601, 615, 629} {
					if r := h.sw.Sweep(t0.Add(sec(at))); r != (liveness.Result{}) {
						t.Errorf("sweep at +%ds = %+v, want nothing", at, r)
					}
				}
				peertest.EqualLines(t, "before pong wait", c.Recv(), nil)
				if sent, ok := c.P.PingPending(); !ok || !sent.Equal(t0.Add(sec(600))) {
					t.Errorf("PingPending = %v, %v", sent, ok)
				}
				if r := c.P.Reason(); r != reason.CloseNone {
					t.Fatalf("closed early: %v", r)
				}

				if r := h.sw.Sweep(t0.Add(sec(630))); r != (liveness.Result{Evicted: 1}) {
					t.Errorf("sweep at pong wait = %+v, want one eviction", r)
				}
				if r := c.P.Reason(); r != reason.ClosePongTimeout {
					t.Errorf("Reason = %v, want %v", r, reason.ClosePongTimeout)
				}
				peertest.EqualLines(t, "after eviction", c.Recv(), nil)
			})
		})
	}
}

func TestSweepPingAnswered(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		c := h.addKind(peertest.NickTaker, pingTaker, t0)
		h.sw.Sweep(t0.Add(sec(600)))
		peertest.EqualLines(t, "first sweep", c.Recv(), []string{ping})

		// The 799 arrives: the reader refreshes last-seen and clears the ping.
		c.P.Touch(t0.Add(sec(605)))
		c.P.Pong()
		if _, ok := c.P.PingPending(); ok {
			t.Fatal("Pong did not clear the pending ping")
		}
		for _, at := range []int{630, 660, 1204} {
			if r := h.sw.Sweep(t0.Add(sec(at))); r != (liveness.Result{}) {
				t.Errorf("sweep at +%ds = %+v, want nothing", at, r)
			}
		}
		if r := c.P.Reason(); r != reason.CloseNone {
			t.Fatalf("answered peer closed: %v", r)
		}
		peertest.EqualLines(t, "after pong", c.Recv(), nil)

		// Idle again for the idle threshold: pinged again.
		if r := h.sw.Sweep(t0.Add(sec(1205))); r != (liveness.Result{Pinged: 1}) {
			t.Errorf("sweep at +1205s = %+v, want a ping", r)
		}
		peertest.EqualLines(t, "second ping", c.Recv(), []string{ping})
	})
}

// Only a 799 clears a pending ping; other traffic refreshes last-seen but does not.
func TestSweepTrafficWithoutPong(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		c := h.addKind(peertest.NickTaker, pingTaker, t0)
		h.sw.Sweep(t0.Add(sec(600)))
		c.P.Touch(t0.Add(sec(610)))
		c.P.Answered()
		if r := h.sw.Sweep(t0.Add(sec(630))); r != (liveness.Result{Evicted: 1}) {
			t.Errorf("Sweep = %+v, want one eviction", r)
		}
		if r := c.P.Reason(); r != reason.ClosePongTimeout {
			t.Errorf("Reason = %v, want %v", r, reason.ClosePongTimeout)
		}
	})
}

// A maker without ping is probed at every sweep while idle and cut at hard-evict.
func TestSweepProbesUntilHardEvict(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		c := h.addKind(peertest.NickMaker, plainMaker, t0)
		var want []string
		for at := 60; at < 1500; at += 60 {
			r := h.sw.Sweep(t0.Add(sec(at)))
			wantR := liveness.Result{}
			if at >= 600 {
				wantR.Probed = 1
				want = append(want, probe)
			}
			if r != wantR {
				t.Errorf("sweep at +%ds = %+v, want %+v", at, r, wantR)
			}
		}
		peertest.EqualLines(t, "maker", c.Recv(), want)
		if len(want) != 15 {
			t.Fatalf("test bug: %d probes", len(want))
		}
		if r := c.P.Reason(); r != reason.CloseNone {
			t.Fatalf("closed before hard-evict: %v", r)
		}
		if r := h.sw.Sweep(t0.Add(sec(1500))); r != (liveness.Result{Evicted: 1}) {
			t.Errorf("sweep at hard-evict = %+v", r)
		}
		if r := c.P.Reason(); r != reason.CloseHardEvict {
			t.Errorf("Reason = %v, want %v", r, reason.CloseHardEvict)
		}
		peertest.EqualLines(t, "maker at hard-evict", c.Recv(), nil)
	})
}

// A taker without ping cannot be probed and is never cut for idleness.
func TestSweepNeverEvictsPlainTaker(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		c := h.addKind(peertest.NickTaker, plainTaker, t0)
		for at := 60; at <= 48*3600; at += 60 {
			if r := h.sw.Sweep(t0.Add(sec(at))); r != (liveness.Result{}) {
				t.Fatalf("sweep at +%ds = %+v, want nothing", at, r)
			}
		}
		if n := h.sw.ExpirePongs(t0.Add(48 * time.Hour)); n != 0 {
			t.Errorf("ExpirePongs = %d", n)
		}
		if r := c.P.Reason(); r != reason.CloseNone {
			t.Errorf("Reason = %v, want open", r)
		}
		peertest.EqualLines(t, "taker", c.Recv(), nil)
	})
}

func TestSweepMixed(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		now := t0.Add(time.Hour)
		fresh := h.addKind("J59xfsUewpdmrbuM", pingTaker, now.Add(-sec(10)))
		pinged := h.addKind("J58w4tpYN3zRBwC9", pingTaker, now.Add(-sec(700)))
		probedA := h.addKind("J55uwMUczBgZV44z", plainMaker, now.Add(-sec(601)))
		probedB := h.addKind("J554XN9CktYtikWE", plainMaker, now.Add(-sec(1000)))
		stale := h.addKind("J59EiPRQrQkXMk5d", pingMaker, now.Add(-sec(2000)))
		taker := h.addKind("J5ADox6oD453KSSf", plainTaker, now.Add(-sec(2000)))

		want := liveness.Result{Pinged: 1, Probed: 2, Evicted: 1}
		if r := h.sw.Sweep(now); r != want {
			t.Errorf("Sweep = %+v, want %+v", r, want)
		}
		peertest.EqualLines(t, "fresh", fresh.Recv(), nil)
		peertest.EqualLines(t, "pinged", pinged.Recv(), []string{ping})
		peertest.EqualLines(t, "probedA", probedA.Recv(), []string{probe})
		peertest.EqualLines(t, "probedB", probedB.Recv(), []string{probe})
		peertest.EqualLines(t, "stale", stale.Recv(), nil)
		peertest.EqualLines(t, "taker", taker.Recv(), nil)
		for _, c := range []*peertest.Client{fresh, pinged, probedA, probedB, taker} {
			if r := c.P.Reason(); r != reason.CloseNone {
				t.Errorf("%s closed: %v", c.P.Nick, r)
			}
		}
		if r := stale.P.Reason(); r != reason.CloseHardEvict {
			t.Errorf("stale: Reason = %v, want %v", r, reason.CloseHardEvict)
		}
	})
}

func TestExpirePongs(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		a := h.addKind("J59xfsUewpdmrbuM", pingTaker, t0.Add(-sec(600)))
		b := h.addKind("J58w4tpYN3zRBwC9", pingMaker, t0.Add(-sec(590)))
		quiet := h.addKind("J55uwMUczBgZV44z", pingTaker, t0)
		answered := h.addKind("J554XN9CktYtikWE", pingTaker, t0.Add(-sec(600)))
		maker := h.addKind("J59EiPRQrQkXMk5d", plainMaker, t0.Add(-sec(600)))

		if r := h.sw.Sweep(t0); r != (liveness.Result{Pinged: 2, Probed: 1}) {
			t.Fatalf("Sweep(t0) = %+v", r)
		}
		answered.P.Touch(t0.Add(sec(1)))
		answered.P.Pong()
		if r := h.sw.Sweep(t0.Add(sec(10))); r != (liveness.Result{Pinged: 1, Probed: 1}) {
			t.Fatalf("Sweep(t0+10s) = %+v", r)
		}

		if n := h.sw.ExpirePongs(t0.Add(sec(29))); n != 0 {
			t.Errorf("ExpirePongs(+29s) = %d, want 0", n)
		}
		if n := h.sw.ExpirePongs(t0.Add(sec(30))); n != 1 {
			t.Errorf("ExpirePongs(+30s) = %d, want 1", n)
		}
		if r := a.P.Reason(); r != reason.ClosePongTimeout {
			t.Errorf("a: Reason = %v, want %v", r, reason.ClosePongTimeout)
		}
		if r := b.P.Reason(); r != reason.CloseNone {
			t.Errorf("b closed before its pong wait: %v", r)
		}
		h.Reg.Remove(a.P) // as the server does once the peer is closed

		if n := h.sw.ExpirePongs(t0.Add(sec(39))); n != 0 {
			t.Errorf("ExpirePongs(+39s) = %d, want 0", n)
		}
		if n := h.sw.ExpirePongs(t0.Add(sec(40))); n != 1 {
			t.Errorf("ExpirePongs(+40s) = %d, want 1", n)
		}
		if r := b.P.Reason(); r != reason.ClosePongTimeout {
			t.Errorf("b: Reason = %v, want %v", r, reason.ClosePongTimeout)
		}
		h.Reg.Remove(b.P)

		if n := h.sw.ExpirePongs(t0.Add(time.Hour)); n != 0 {
			t.Errorf("ExpirePongs(+1h) = %d, want 0", n)
		}
		for _, c := range []*peertest.Client{quiet, answered, maker} {
			if r := c.P.Reason(); r != reason.CloseNone {
				t.Errorf("%s closed: %v", c.P.Nick, r)
			}
		}
	})
}

func TestSetSettings(t *testing.T) {
	bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *harness) {
		if got := h.sw.Settings(); got != settings {
			t.Fatalf("Settings = %+v, want %+v", got, settings)
		}
		c := h.addKind(peertest.NickTaker, pingTaker, t0)
		if r := h.sw.Sweep(t0.Add(sec(100))); r != (liveness.Result{}) {
			t.Fatalf("Sweep = %+v", r)
		}
		short := liveness.Settings{Sweep: sec(10), Idle: sec(100), HardEvict: sec(300), PongWait: sec(5)}
		h.sw.SetSettings(short)
		if got := h.sw.Settings(); got != short {
			t.Fatalf("Settings = %+v, want %+v", got, short)
		}
		if r := h.sw.Sweep(t0.Add(sec(100))); r != (liveness.Result{Pinged: 1}) {
			t.Errorf("Sweep with new settings = %+v, want a ping", r)
		}
		peertest.EqualLines(t, "peer", c.Recv(), []string{ping})
		if n := h.sw.ExpirePongs(t0.Add(sec(105))); n != 1 {
			t.Errorf("ExpirePongs = %d, want 1", n)
		}
	})
}

// TestRun drives the heartbeat loop with the default settings in virtual time.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, peertest.NickDN, peertest.DNLoc)
		defer h.Close()
		start := time.Now()

		silent := h.addKind("J59xfsUewpdmrbuM", pingTaker, start)
		responsive := h.addKind("J58w4tpYN3zRBwC9", pingMaker, start)
		maker := h.addKind("J55uwMUczBgZV44z", plainMaker, start)
		taker := h.addKind("J554XN9CktYtikWE", plainTaker, start)

		// responsive answers every ping at once, as the server's reader would record it.
		var pongs atomic.Int32
		var other atomic.Int32
		go func() {
			for l := range responsive.Lines() {
				if l != ping {
					other.Add(1)
					continue
				}
				pongs.Add(1)
				responsive.P.Touch(time.Now())
				responsive.P.Pong()
			}
		}()
		// maker answers every probe with a line (a privmsg to the directory nick).
		var probes atomic.Int32
		go func() {
			for l := range maker.Lines() {
				if l != probe {
					other.Add(1)
					continue
				}
				probes.Add(1)
				maker.P.Touch(time.Now())
			}
		}()

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			h.sw.Run(ctx)
			close(done)
		}()

		// advance moves virtual time to start+d and lets every goroutine settle.
		advance := func(d time.Duration) {
			time.Sleep(time.Until(start.Add(d)))
			synctest.Wait()
		}

		advance(sec(600) - 1)
		peertest.EqualLines(t, "silent before 600s", silent.Recv(), nil)
		if _, ok := silent.P.PingPending(); ok {
			t.Fatal("silent pinged before 600s idle")
		}
		if n := pongs.Load(); n != 0 {
			t.Fatalf("responsive pinged %d times before 600s", n)
		}

		advance(sec(600)) // the 10th sweep
		peertest.EqualLines(t, "silent at 600s", silent.Recv(), []string{ping})
		if sent, ok := silent.P.PingPending(); !ok || !sent.Equal(start.Add(sec(600))) {
			t.Errorf("silent: PingPending = %v, %v; want sent at +600s", sent, ok)
		}
		if n := pongs.Load(); n != 1 {
			t.Errorf("responsive pinged %d times at 600s, want 1", n)
		}
		if n := probes.Load(); n != 1 {
			t.Errorf("maker probed %d times at 600s, want 1", n)
		}

		advance(sec(630) - 1)
		if r := silent.P.Reason(); r != reason.CloseNone {
			t.Fatalf("silent closed before the pong wait: %v", r)
		}
		advance(sec(630))
		if r := silent.P.Reason(); r != reason.ClosePongTimeout {
			t.Fatalf("silent at 630s: Reason = %v, want %v", r, reason.ClosePongTimeout)
		}
		h.Reg.Remove(silent.P) // as the server does

		// Far beyond hard-evict, the answering peers and the plain taker are still there.
		advance(sec(3000))
		for _, c := range []*peertest.Client{responsive, maker, taker} {
			if r := c.P.Reason(); r != reason.CloseNone {
				t.Errorf("%s closed: %v", c.P.Nick, r)
			}
		}
		// Pinged / probed every 600 s of silence: at 600, 1200, …, 3000.
		if n := pongs.Load(); n != 5 {
			t.Errorf("responsive pinged %d times by 3000s, want 5", n)
		}
		if n := probes.Load(); n != 5 {
			t.Errorf("maker probed %d times by 3000s, want 5", n)
		}
		if n := other.Load(); n != 0 {
			t.Errorf("%d unexpected lines", n)
		}
		peertest.EqualLines(t, "taker", taker.Recv(), nil)

		cancel()
		<-done
	})
}

// TestRunStops checks that Run returns when its context ends, also while a pong check
// is outstanding.
func TestRunStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, peertest.NickDN, peertest.DNLoc)
		defer h.Close()
		start := time.Now()
		c := h.addKind(peertest.NickTaker, pingTaker, start.Add(-sec(600)))

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			h.sw.Run(ctx)
			close(done)
		}()
		time.Sleep(sec(60)) // first sweep
		synctest.Wait()
		peertest.EqualLines(t, "peer", c.Recv(), []string{ping})
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return after cancel")
		}
		if r := c.P.Reason(); r != reason.CloseNone {
			t.Errorf("Reason = %v, want open", r)
		}
	})
}
