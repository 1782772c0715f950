package registry_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

func benchPeers(n int) []*peer.Peer {
	ctr := &stats.Counters{}
	log := slog.New(slog.DiscardHandler)
	ps := make([]*peer.Peer, n)
	for i := range ps {
		p := peer.New(uint64(i+1), peertest.DiscardConn{}, peer.Limits{QueueBytes: 1 << 40, WriteTimeout: time.Second}, ctr, log)
		p.SetHello(handshake.Hello{Nick: fmt.Sprintf("J5reg%011d", i), Location: jm.Location{}})
		ps[i] = p
	}
	return ps
}

var benchWelcome = []byte("{\"type\":795,\"line\":\"\"}\r\n")

// BenchmarkRegisterRemove measures a peer joining and leaving a registry of 10 000.
func BenchmarkRegisterRemove(b *testing.B) {
	ps := benchPeers(10001)
	reg := registry.New(20000)
	for _, p := range ps[:10000] {
		reg.Register(p, benchWelcome)
	}
	extra := ps[10000]
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := reg.Register(extra, benchWelcome); res != registry.Registered {
			b.Fatalf("result %d, peer closed: %v (%v)", res, extra.Closed(), extra.Reason())
		}
		reg.Remove(extra)
	}
}

// BenchmarkLookup measures finding a privmsg recipient among 10 000 peers.
func BenchmarkLookup(b *testing.B) {
	ps := benchPeers(10000)
	reg := registry.New(20000)
	for _, p := range ps {
		reg.Register(p, benchWelcome)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if reg.Lookup(ps[i%len(ps)].Nick) == nil {
			b.Fatal("missing")
		}
		i++
	}
}

// BenchmarkSnapshotAfterChurn measures the broadcast snapshot rebuilt after every
// change, with 10 000 peers: the worst case of one join or leave per broadcast.
func BenchmarkSnapshotAfterChurn(b *testing.B) {
	ps := benchPeers(10001)
	reg := registry.New(20000)
	for _, p := range ps[:10000] {
		reg.Register(p, benchWelcome)
	}
	extra := ps[10000]
	b.ReportAllocs()
	for b.Loop() {
		reg.Register(extra, benchWelcome)
		_ = reg.Snapshot()
		reg.Remove(extra)
		_ = reg.Snapshot()
	}
}
