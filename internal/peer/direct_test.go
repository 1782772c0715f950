package peer_test

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// tcpPair returns a connected loopback TCP pair (server side, client side).
func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); cli.Close() })
	return srv.(*net.TCPConn), cli.(*net.TCPConn)
}

// TestDirectWriteKeepsOrder: on a real socket an idle peer is written to directly; when
// the socket buffer fills mid-line, the rest and everything sent meanwhile follow in
// order through the writer.
func TestDirectWriteKeepsOrder(t *testing.T) {
	srv, cli := tcpPair(t)
	_ = srv.SetWriteBuffer(4096)
	p := peer.New(1, srv, peer.Limits{QueueBytes: 64 << 20, WriteTimeout: 10 * time.Second},
		new(stats.Counters), slog.New(slog.DiscardHandler))
	defer p.Close(reason.CloseShutdown)

	const n = 2000
	body := strings.Repeat("d", 3000) // lines far larger than the send buffer
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("%04d %s\r\n", i, body)
	}
	done := make(chan bool)
	go func() {
		ok := true
		for _, l := range want {
			ok = p.SendUrgent([]byte(l)) && ok
		}
		done <- ok
	}()
	select { // nobody reads yet: Send must not block
	case ok := <-done:
		if !ok {
			t.Fatal("Send refused a line")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a full socket")
	}
	r := bufio.NewReaderSize(cli, 1<<16)
	_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range n {
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got != want[i] {
			t.Fatalf("line %d out of order or torn: %.20q", i, got)
		}
	}
	if p.Closed() {
		t.Fatalf("peer closed: %v", p.Reason())
	}
	// An idle peer again takes the direct path; the line arrives at once.
	if !p.SendUrgent([]byte("last\r\n")) {
		t.Fatal("Send after drain refused")
	}
	if got, err := r.ReadString('\n'); err != nil || got != "last\r\n" {
		t.Fatalf("after drain: %v %q", err, got)
	}

}

// TestDirectWriteError: writing to a socket the client has reset cuts the peer.
func TestDirectWriteError(t *testing.T) {
	srv, cli := tcpPair(t)
	_ = cli.SetLinger(0)
	cli.Close() // RST
	awaitReset(t, srv)
	p := peer.New(1, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second},
		new(stats.Counters), slog.New(slog.DiscardHandler))
	// The socket is reset: the direct write fails at once, from SendUrgent itself.
	if p.SendUrgent([]byte("x\r\n")) {
		t.Fatal("SendUrgent to a reset socket = true")
	}
	if !p.Closed() {
		t.Fatal("peer still open after its write failed")
	}
	if r := p.Reason(); r != reason.CloseWriteError {
		t.Fatalf("reason %v, want write error", r)
	}
}

// awaitReset returns once srv has received the client's RST (the client closed with
// SO_LINGER 0). Until then a write to srv may still succeed; afterwards every write
// fails (EPIPE). The client sends nothing, so a read on srv ends only with the reset;
// it consumes nothing a test needs.
func awaitReset(t *testing.T, srv *net.TCPConn) {
	t.Helper()
	_ = srv.SetReadDeadline(time.Now().Add(testkit.Timeout))
	n, err := srv.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("waiting for the client's reset: read %d bytes, %v", n, err)
	}
	_ = srv.SetReadDeadline(time.Time{})
}
