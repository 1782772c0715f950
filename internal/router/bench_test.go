package router_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// benchRouter registers n peers over discarding connections.
func benchRouter(b *testing.B, n int) (*router.Router, *registry.Registry, []*peer.Peer) {
	b.Helper()
	ctr := &stats.Counters{}
	reg := registry.New(n + 1)
	rt := router.New(reg, ctr, peertest.NickDN, peertest.DNLoc)
	log := slog.New(slog.DiscardHandler)
	var peers []*peer.Peer
	for i := 0; i < n; i++ {
		p := peer.New(uint64(i+1), peertest.DiscardConn{}, peer.Limits{QueueBytes: 8 << 20, WriteTimeout: time.Second}, ctr, log)
		nick := fmt.Sprintf("J5bench%09d", i) // unique; the router does not validate nicks
		p.SetHello(handshake.Hello{Nick: nick, Location: jm.Location{Host: peertest.OnionA, Port: 5222}})
		if res, _ := reg.Register(p, []byte("{\"type\":795,\"line\":\"\"}\r\n")); res != registry.Registered {
			b.Fatalf("register %d: %v", i, res)
		}
		peers = append(peers, p)
	}
	return rt, reg, peers
}

// BenchmarkPubmsgFanout measures one pubmsg fanned out to 1 000 peers (enqueue plus the
// writers' vectored writes to a discarding connection).
func BenchmarkPubmsgFanout(b *testing.B) {
	const n = 1000
	rt, _, peers := benchRouter(b, n)
	env, err := wire.Decode([]byte(`{"type": 687, "line": "J5bench000000000!PUBLIC!sw0reloffer 0 27300 1000000000 0 0.0002"}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rt.Pubmsg(peers[0], env.RawLine())
	}
	b.ReportMetric(float64(b.N*(n-1))/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPrivmsg measures one privmsg forwarded with its location peerlist.
func BenchmarkPrivmsg(b *testing.B) {
	rt, _, peers := benchRouter(b, 100)
	env, err := wire.Decode([]byte(`{"type": 685, "line": "J5bench000000000!J5bench000000001!sw0reloffer 0 27300 4000000 0 0.00002 032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w=="}`))
	if err != nil {
		b.Fatal(err)
	}
	to := peers[1].Nick
	b.ReportAllocs()
	for b.Loop() {
		if r := rt.Privmsg(peers[0], to, env.RawLine()); r != reason.DropNone {
			b.Fatal(r)
		}
	}
}

// BenchmarkGetPeerlist measures a GETPEERLIST answer listing 1 000 makers.
func BenchmarkGetPeerlist(b *testing.B) {
	rt, _, peers := benchRouter(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		rt.GetPeerlist(peers[0])
	}
}

// benchHandle measures Handle for one line from peers[0] to 100 peers: the dispatch path
// of the read loop (split, sender check, byte budget, relay, and whatever is done with
// the line after it is queued).
func benchHandle(b *testing.B, typ int, line string) {
	rt, _, peers := benchRouter(b, 100)
	env, err := wire.Decode(wire.AppendEnvelope(nil, typ, line)[:len(wire.AppendEnvelope(nil, typ, line))-2])
	if err != nil {
		b.Fatal(err)
	}
	bk := new(limits.Buckets)
	bk.Use(limits.Rates{Messages: 1e9, Burst: 1e9, Bytes: 1e12, ByteBurst: 1e12, GetPeerlist: 3, Orderbook: 3}, time.Now())
	lim := &router.ConnLimits{Buckets: bk}
	rt.SetOrderbook(orderbook.New())
	pol := router.Policy{SpoofDisconnect: 3}
	b.ReportAllocs()
	for b.Loop() {
		if !rt.Handle(peers[0], &env, lim, pol, time.Now()) {
			b.Fatal("sender closed")
		}
	}
}

// BenchmarkHandleOfferPubmsg is Handle for an offer announcement (relayed to 99 peers,
// then recorded in the orderbook when one is attached).
func BenchmarkHandleOfferPubmsg(b *testing.B) {
	benchHandle(b, wire.TypePubmsg, "J5bench000000000!PUBLIC!sw0reloffer 0 27300 1000000000 0 0.0002")
}

// BenchmarkHandleOtherPubmsg is Handle for a pubmsg that is not an offer (hp2).
func BenchmarkHandleOtherPubmsg(b *testing.B) {
	benchHandle(b, wire.TypePubmsg, "J5bench000000000!PUBLIC!hp2 02f442f23bb0d0c7d4c9062d56a5b19b3ddbaeb8fed5aba865d932ae721d3825e6")
}

// BenchmarkHandleProbeAnswer is Handle for a maker's answer to the directory's own
// !orderbook probe: a signed privmsg addressed to the directory (not relayed; recorded
// in the orderbook when one is attached).
func BenchmarkHandleProbeAnswer(b *testing.B) {
	benchHandle(b, wire.TypePrivmsg, "J5bench000000000!"+peertest.NickDN+"!sw0reloffer 0 27300 1000000000 0 0.0002!sw0absoffer 1 100000 50000000 0 250 "+
		"02f442f23bb0d0c7d4c9062d56a5b19b3ddbaeb8fed5aba865d932ae721d3825e6 Z+LN0jWjAbsUINETdIGrBWCYSotpvp3Gm1dKXcimtMK60itjClYS20myqSD7rYCZN5/FRys82AOjjI5IGfAZLiE=")
}
