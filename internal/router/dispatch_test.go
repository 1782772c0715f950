package router_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// conn returns fresh per-connection limits with the given !orderbook and GETPEERLIST
// allowance (per minute) and generous message rates.
func conn(perMinute int) *router.ConnLimits {
	b := new(limits.Buckets)
	b.Use(limits.Rates{Messages: 1000, Burst: 1000, GetPeerlist: perMinute, Orderbook: perMinute}, time.Now())
	return &router.ConnLimits{Buckets: b}
}

// env is the envelope a client sends for (typ, line), as decoded by the read loop.
func env(t *testing.T, typ int, line string) *wire.Envelope {
	t.Helper()
	e, err := wire.Decode(bytes.TrimSuffix(wire.AppendEnvelope(nil, typ, line), []byte("\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return &e
}

// TestHandleRelaysAndHelps: a well-formed pubmsg is relayed to the others, counted as an
// offer when it is one, and the broadcaster is given the back-pressure hint.
func TestHandleRelaysAndHelps(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		helped := 0
		h.Rt.SetBackPressure(func() { helped++ })
		maker := h.Add(peertest.NickMaker, peertest.MakerLoc)
		taker := h.Add(peertest.NickTaker, peertest.NotServing)
		line := peertest.NickMaker + "!PUBLIC!sw0reloffer 0 27300 4000000 0 0.00002"
		if !h.Rt.Handle(maker.P, env(t, wire.TypePubmsg, line), conn(3), router.Policy{SpoofDisconnect: 3}, time.Now()) {
			t.Fatal("Handle closed the sender")
		}
		peertest.EqualLines(t, "taker", taker.Recv(), []string{peertest.Envelope(wire.TypePubmsg, line)})
		if helped != 1 {
			t.Errorf("back-pressure hint given %d times, want 1", helped)
		}
		if got := h.Ctr.OffersSeen[stats.OfferIndex("sw0reloffer")].Load(); got != 1 {
			t.Errorf("offers seen %d, want 1", got)
		}
	})
}

// TestHandleSpoofAndMalformed: text that is not "from!to!…" is dropped and counted; a
// sender naming another nick is dropped, counted, and cut at the policy's threshold;
// nothing of either reaches anyone.
func TestHandleSpoofAndMalformed(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		maker := h.Add(peertest.NickMaker, peertest.MakerLoc)
		taker := h.Add(peertest.NickTaker, peertest.NotServing)
		lim, pol := conn(3), router.Policy{SpoofDisconnect: 2}
		if !h.Rt.Handle(maker.P, env(t, wire.TypePubmsg, "no separators"), lim, pol, time.Now()) {
			t.Fatal("a malformed line closed the sender")
		}
		spoof := env(t, wire.TypePubmsg, peertest.NickTaker+"!PUBLIC!cancel 0")
		if !h.Rt.Handle(maker.P, spoof, lim, pol, time.Now()) {
			t.Fatal("the first spoof closed the sender")
		}
		if h.Rt.Handle(maker.P, spoof, lim, pol, time.Now()) || maker.P.Reason() != reason.CloseSpoofing {
			t.Fatalf("the second spoof: sender open, reason %v; want closed for spoofing", maker.P.Reason())
		}
		peertest.EqualLines(t, "taker", taker.Recv(), nil)
		d := h.Ctr.DropCounts()
		if d[reason.DropMalformedJM.String()] != 1 || d[reason.DropSpoofed.String()] != 2 {
			t.Errorf("drops %v", d)
		}
	})
}

// TestHandleCaps: a public !orderbook and a GETPEERLIST over the connection's allowance
// are dropped as violations, and the policy's violation threshold cuts the sender.
func TestHandleCaps(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		taker := h.Add(peertest.NickTaker, peertest.NotServing)
		maker := h.Add(peertest.NickMaker, peertest.MakerLoc)
		lim, pol := conn(1), router.Policy{RateLimitDisconnect: 2, SpoofDisconnect: 3}
		ob := env(t, wire.TypePubmsg, peertest.NickTaker+"!PUBLIC!orderbook")
		now := time.Now()
		if !h.Rt.Handle(taker.P, ob, lim, pol, now) || !h.Rt.Handle(taker.P, ob, lim, pol, now) {
			t.Fatal("the sender was cut before its second violation")
		}
		peertest.EqualLines(t, "maker", maker.Recv(), []string{peertest.Envelope(wire.TypePubmsg, peertest.NickTaker+"!PUBLIC!orderbook")})
		gp := env(t, wire.TypeGetPeerlist, "")
		if !h.Rt.Handle(taker.P, gp, lim, pol, now) {
			t.Fatal("the first GETPEERLIST closed the sender")
		}
		taker.Recv()
		if h.Rt.Handle(taker.P, gp, lim, pol, now) || taker.P.Reason() != reason.CloseRateLimit {
			t.Fatalf("second violation: reason %v, want closed for the rate limit", taker.P.Reason())
		}
		d := h.Ctr.DropCounts()
		if d[reason.DropOrderbookCap.String()] != 1 || d[reason.DropGetPeerlistCap.String()] != 1 || h.Ctr.RateViolate.Load() != 2 {
			t.Errorf("drops %v, violations %d", d, h.Ctr.RateViolate.Load())
		}
	})
}

// TestHandleByteBudget: relayed pubmsgs and privmsgs spend the sender's byte budget by
// their length; over it a line is dropped and counted as byte_budget (a violation), and
// once the budget has refilled lines pass again.
func TestHandleByteBudget(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		maker := h.Add(peertest.NickMaker, peertest.MakerLoc)
		taker := h.Add(peertest.NickTaker, peertest.NotServing)
		b := new(limits.Buckets)
		now := time.Now()
		b.Use(limits.Rates{Messages: 1000, Burst: 1000, GetPeerlist: 3, Orderbook: 3, Bytes: 100, ByteBurst: 1000}, now)
		lim, pol := &router.ConnLimits{Buckets: b}, router.Policy{SpoofDisconnect: 3}
		pub := peertest.NickTaker + "!PUBLIC!" + string(bytes.Repeat([]byte("o"), 600-len(peertest.NickTaker+"!PUBLIC!")))
		priv := peertest.NickTaker + "!" + peertest.NickMaker + "!" + string(bytes.Repeat([]byte("f"), 300))
		h.Rt.Handle(taker.P, env(t, wire.TypePubmsg, pub), lim, pol, now)   // 600 of 1000
		h.Rt.Handle(taker.P, env(t, wire.TypePrivmsg, priv), lim, pol, now) // 334: 934
		h.Rt.Handle(taker.P, env(t, wire.TypePrivmsg, priv), lim, pol, now) // over: dropped
		got := maker.Recv()
		if len(got) != 3 { // the pubmsg, one privmsg and its location peerlist
			t.Fatalf("maker got %d lines, want 3: %q", len(got), got)
		}
		if n := h.Ctr.DropCounts()[reason.DropByteBudget.String()]; n != 1 {
			t.Fatalf("%d lines dropped as %s, want 1", n, reason.DropByteBudget)
		}
		if v := b.Violation(); v != 2 {
			t.Fatalf("the drop was not a violation (count %d after one more)", v)
		}
		h.Rt.Handle(taker.P, env(t, wire.TypePrivmsg, priv), lim, pol, now.Add(5*time.Second)) // refilled
		if got := maker.Recv(); len(got) != 2 {
			t.Fatalf("after the budget refilled the maker got %d lines, want 2", len(got))
		}
	})
}
