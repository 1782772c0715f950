package peer_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

// benchSockets returns n peers over loopback sockets whose other ends are read and
// discarded, all using f.
func benchSockets(b *testing.B, n int, f *peer.Flusher) []*peer.Peer {
	b.Helper()
	ps := make([]*peer.Peer, n)
	for i := range ps {
		srv, cli := tcpPair(b)
		go func() { _, _ = io.Copy(io.Discard, cli) }() // ends when the test's cleanup closes cli
		p := peer.New(uint64(i), srv, peer.Limits{QueueBytes: 64 << 20, WriteTimeout: 10 * time.Second}, new(stats.Counters), slog.New(slog.DiscardHandler))
		p.UseFlusher(f)
		b.Cleanup(func() { p.Close(reason.CloseShutdown) })
		ps[i] = p
	}
	return ps
}

// BenchmarkFlusherFanout measures one 200-byte line queued for 200 socket peers and
// written by the flusher (the broadcaster helps, as the server's read loops do).
func BenchmarkFlusherFanout(b *testing.B) {
	const n = 200
	f := peer.NewFlusher(0)
	ps := benchSockets(b, n, f)
	l := []byte(strings.Repeat("b", 198) + "\r\n")
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range ps {
			p.Send(l)
		}
		f.Help()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkSendUrgent measures one 200-byte line written at once to an idle socket peer.
func BenchmarkSendUrgent(b *testing.B) {
	f := peer.NewFlusher(0)
	p := benchSockets(b, 1, f)[0]
	l := []byte(strings.Repeat("u", 198) + "\r\n")
	b.ReportAllocs()
	for b.Loop() {
		p.SendUrgent(l)
	}
}
