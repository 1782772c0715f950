package peer_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

const (
	onion = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	nick  = "J59xfsUewpdmrbuM"
	// watchdog bounds waits on real goroutines outside synctest bubbles; it is never
	// reached when the code works.
	watchdog = 5 * time.Second
)

var roomy = peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Hour}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newPeer wraps the server end of a net.Pipe; the client end is returned for the test to
// read from. Both ends are closed at cleanup.
func newPeer(t *testing.T, lim peer.Limits) (*peer.Peer, net.Conn, *stats.Counters) {
	t.Helper()
	srv, cli := net.Pipe()
	ctr := new(stats.Counters)
	p := peer.New(7, srv, lim, ctr, discard())
	t.Cleanup(func() {
		p.Close(reason.CloseShutdown)
		cli.Close()
	})
	return p, cli, ctr
}

func line(s string) []byte { return []byte(s + "\r\n") }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(watchdog):
		t.Fatalf("%s not closed after %v", what, watchdog)
	}
}

// readLines reads n CRLF-terminated lines from c under a deadline.
func readLines(t *testing.T, c net.Conn, n int) []string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(watchdog))
	r := bufio.NewReaderSize(c, 64<<10)
	out := make([]string, 0, n)
	for len(out) < n {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d lines: %v", len(out), err)
		}
		out = append(out, s)
	}
	return out
}

func TestSendDeliversInOrder(t *testing.T) {
	p, cli, _ := newPeer(t, roomy)
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf(`{"type":687,"line":"J5x!PUBLIC!n %d"}`+"\r\n", i))
	}
	// Nobody reads while sending: Send must return anyway.
	sent := make(chan bool, 1)
	go func() {
		ok := true
		for _, l := range want {
			ok = p.Send([]byte(l)) && ok
		}
		sent <- ok
	}()
	select {
	case ok := <-sent:
		if !ok {
			t.Fatal("Send = false")
		}
	case <-time.After(watchdog):
		t.Fatal("Send blocked while nobody was reading")
	}
	got := readLines(t, cli, len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if p.Reason() != reason.CloseNone || isClosed(p.Done()) {
		t.Errorf("peer closed: %v", p.Reason())
	}
	// An idle peer accepts more later (a new writer is started on demand).
	if !p.Send(line("again")) {
		t.Fatal("Send after idle = false")
	}
	if got := readLines(t, cli, 1); got[0] != "again\r\n" {
		t.Fatalf("got %q", got[0])
	}
}

func TestSendConcurrentSendersKeepPerSenderOrder(t *testing.T) {
	p, cli, _ := newPeer(t, roomy)
	const senders, per = 8, 100
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range per {
				if !p.Send(line(fmt.Sprintf("%d %d", g, i))) {
					t.Errorf("Send(%d,%d) = false", g, i)
				}
			}
		})
	}
	got := readLines(t, cli, senders*per)
	wg.Wait()
	next := make([]int, senders)
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "%d %d\r\n", &g, &i); err != nil {
			t.Fatalf("garbled line %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("sender %d: got line %d, want %d", g, i, next[g])
		}
		next[g]++
	}
}

func TestSendNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		p := peer.New(1, srv, roomy, new(stats.Counters), discard())
		defer p.Close(reason.CloseShutdown)

		// Nobody reads: the writer goroutine blocks on the unbuffered pipe, Send does not.
		const n = 200
		var queued int
		for i := range n {
			l := line(fmt.Sprintf("line %03d", i))
			if !p.Send(l) {
				t.Fatalf("Send %d = false", i)
			}
			if i == 0 {
				synctest.Wait() // the writer has taken line 0 and is blocked writing it
			}
			queued += len(l) // bytes being written still count until they are written
		}
		if q := p.QueuedBytes(); q != queued {
			t.Errorf("QueuedBytes = %d, want %d", q, queued)
		}
		if isClosed(p.Done()) {
			t.Fatalf("peer closed: %v", p.Reason())
		}
		// Everything arrives once the client reads.
		r := bufio.NewReader(cli)
		for i := range n {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("line %03d\r\n", i); s != want {
				t.Fatalf("got %q, want %q", s, want)
			}
		}
		synctest.Wait() // the writer has finished its last write
		if q := p.QueuedBytes(); q != 0 {
			t.Errorf("QueuedBytes after everything was read = %d", q)
		}
	})
}

func TestQueueOverflowClosesQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		p := peer.New(1, srv, peer.Limits{QueueBytes: 120, WriteTimeout: time.Hour}, new(stats.Counters), discard())
		defer p.Close(reason.CloseShutdown)

		l := line(strings.Repeat("x", 38)) // 40 bytes
		if !p.Send(l) {
			t.Fatal("first Send = false")
		}
		synctest.Wait() // the writer holds the first line, blocked on the pipe
		// The line being written counts; up to exactly the cap is fine.
		for i := range 2 {
			if !p.Send(l) {
				t.Fatalf("Send %d = false with %d bytes queued", i+2, p.QueuedBytes())
			}
		}
		if q := p.QueuedBytes(); q != 120 {
			t.Fatalf("QueuedBytes = %d, want 120", q)
		}
		if isClosed(p.Done()) {
			t.Fatal("closed before overflow")
		}
		if p.Send(l) { // 160 > 120
			t.Fatal("overflowing Send = true")
		}
		if !isClosed(p.Done()) {
			t.Fatal("Done not closed after overflow")
		}
		if r := p.Reason(); r != reason.CloseQueueFull {
			t.Fatalf("Reason = %v, want %v", r, reason.CloseQueueFull)
		}
		if p.Send(line("more")) {
			t.Error("Send after close = true")
		}
		if q := p.QueuedBytes(); q != 0 {
			t.Errorf("QueuedBytes after close = %d", q)
		}
		synctest.Wait() // the writer saw the closed pipe and exited
		if r := p.Reason(); r != reason.CloseQueueFull {
			t.Errorf("Reason after writer exit = %v, want %v", r, reason.CloseQueueFull)
		}
		// The client sees the connection end.
		if _, err := cli.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("client Read = %v, want EOF", err)
		}
	})
}

func TestQueueOverflowSingleLine(t *testing.T) {
	p, _, ctr := newPeer(t, peer.Limits{QueueBytes: 10, WriteTimeout: time.Hour})
	if p.Send(line("0123456789")) { // 12 bytes > 10
		t.Fatal("Send = true")
	}
	if !isClosed(p.Done()) || p.Reason() != reason.CloseQueueFull {
		t.Fatalf("Done closed %v, Reason %v", isClosed(p.Done()), p.Reason())
	}
	if ctr.Drops(reason.DropOversizeOut) != 0 {
		t.Error("overflow counted as oversize drop")
	}
}

func TestWriteTimeoutClosesWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		p := peer.New(1, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: 50 * time.Millisecond}, new(stats.Counters), discard())
		defer p.Close(reason.CloseShutdown)

		start := time.Now()
		if !p.Send(line("hello")) {
			t.Fatal("Send = false")
		}
		<-p.Done() // nobody reads: the deadline fires
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("closed after %v, want 50ms", d)
		}
		if r := p.Reason(); r != reason.CloseWriteTimeout {
			t.Fatalf("Reason = %v, want %v", r, reason.CloseWriteTimeout)
		}
		if p.Send(line("late")) {
			t.Error("Send after close = true")
		}
	})
}

// The deadline applies to each write, not to the connection's lifetime: a reader that
// takes 40ms per line survives many lines with a 50ms timeout.
func TestWriteTimeoutIsPerWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		p := peer.New(1, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: 50 * time.Millisecond}, new(stats.Counters), discard())
		defer p.Close(reason.CloseShutdown)

		r := bufio.NewReader(cli)
		for i := range 10 {
			want := fmt.Sprintf("line %d\r\n", i)
			if !p.Send([]byte(want)) {
				t.Fatalf("Send %d = false (reason %v)", i, p.Reason())
			}
			time.Sleep(40 * time.Millisecond) // fake time inside the bubble
			got, err := r.ReadString('\n')
			if err != nil || got != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
		synctest.Wait()
		if isClosed(p.Done()) {
			t.Fatalf("peer closed: %v", p.Reason())
		}
	})
}

func TestWriteErrorCloses(t *testing.T) {
	p, cli, _ := newPeer(t, roomy)
	cli.Close()
	if !p.Send(line("into the void")) {
		t.Fatal("Send = false")
	}
	waitClosed(t, p.Done(), "Done")
	if r := p.Reason(); r != reason.CloseWriteError {
		t.Fatalf("Reason = %v, want %v", r, reason.CloseWriteError)
	}
}

// TestSendOversize: the one check every queued line passes. A peer that does not speak
// long lines (a reference client) never gets a line over wire.MaxLine; one that does (a
// joinmarket-ng client) gets lines up to wire.MaxLineNG; nobody gets a longer one. A
// refused line is counted with its reason, never reaches the client, and the peer stays.
func TestSendOversize(t *testing.T) {
	rep := func(c byte, n int, term string) []byte { return append(bytes.Repeat([]byte{c}, n), term...) }
	const (
		ok     = reason.DropNone
		tooRef = reason.DropTooLongForRecipient
		tooAll = reason.DropOversizeOut
	)
	tests := []struct {
		name    string
		line    []byte
		ref, ng reason.Drop // the outcome for a reference peer and for an ng peer
	}{
		{"40000 + CRLF", rep('a', wire.MaxLine, "\r\n"), ok, ok},
		{"40000 without terminator", rep('b', wire.MaxLine, ""), ok, ok},
		{"40001 + CRLF", rep('c', wire.MaxLine+1, "\r\n"), tooRef, ok},
		{"40001 without terminator", rep('d', wire.MaxLine+1, ""), tooRef, ok},
		{"40000 + LF (a bare LF is content)", rep('e', wire.MaxLine, "\n"), tooRef, ok},
		{"48226 + CRLF", rep('g', 48226, "\r\n"), tooRef, ok},
		{"65536 + CRLF", rep('h', wire.MaxLineNG, "\r\n"), tooRef, ok},
		{"65537 + CRLF", rep('i', wire.MaxLineNG+1, "\r\n"), tooAll, tooAll},
		{"1 MB", rep('f', 1<<20, ""), tooAll, tooAll},
	}
	sends := map[string]func(*peer.Peer, []byte) bool{
		"Send":       (*peer.Peer).Send,
		"Broadcast":  (*peer.Peer).Broadcast,
		"SendUrgent": (*peer.Peer).SendUrgent,
	}
	for _, tc := range tests {
		for _, kind := range []string{"ref", "ng"} {
			for how, send := range sends {
				t.Run(tc.name+"/"+kind+"/"+how, func(t *testing.T) {
					p, cli, ctr := newPeer(t, peer.Limits{QueueBytes: 4 << 20, WriteTimeout: time.Hour})
					want := tc.ref
					if kind == "ng" {
						p.SetHello(handshake.Hello{Nick: "J5ngpeer", Features: handshake.Features{Ping: true, PeerlistFeatures: true}})
						want = tc.ng
					}
					if p.LongLines() != (kind == "ng") {
						t.Fatalf("LongLines = %v for a %s peer", p.LongLines(), kind)
					}
					if got := p.Refuses(wire.ContentLen(tc.line)); got != want {
						t.Errorf("Refuses = %v, want %v", got, want)
					}
					if got := send(p, tc.line); got != (want == ok) {
						t.Fatalf("%s = %v, want %v", how, got, want == ok)
					}
					for r := reason.Drop(1); r < reason.NumDrops; r++ {
						var n uint64
						if r == want {
							n = 1
						}
						if d := ctr.Drops(r); d != n {
							t.Errorf("drops %s = %d, want %d", r, d, n)
						}
					}
					if isClosed(p.Done()) || p.Reason() != reason.CloseNone {
						t.Fatalf("peer closed: %v", p.Reason())
					}
					// The peer stays usable and a refused line never reaches the client.
					if !p.Send(line("next")) {
						t.Fatal("Send after a refused line = false")
					}
					wantOut := "next\r\n"
					if want == ok {
						wantOut = string(tc.line) + wantOut
					}
					got := make([]byte, len(wantOut))
					_ = cli.SetReadDeadline(time.Now().Add(watchdog))
					if _, err := io.ReadFull(cli, got); err != nil {
						t.Fatal(err)
					}
					if string(got) != wantOut {
						t.Fatalf("client got %d bytes %q…, want %d bytes", len(got), got[:min(len(got), 20)], len(wantOut))
					}
				})
			}
		}
	}
}

// TestSpeaksLongLines: joinmarket-ng clients (ping and peerlist_features) speak long
// lines; reference clients ({} features) and clients with only one of the two do not.
func TestSpeaksLongLines(t *testing.T) {
	cases := []struct {
		f    handshake.Features
		want bool
	}{
		{handshake.Features{}, false}, // reference: "features": {}
		{handshake.Features{Ping: true}, false},
		{handshake.Features{PeerlistFeatures: true}, false},
		{handshake.Features{Ping: true, PeerlistFeatures: true}, true},
		{handshake.Features{Ping: true, PeerlistFeatures: true, True: []string{"neutrino_compat", "nick_auth", "peerlist_features", "ping"}}, true},
	}
	for _, tc := range cases {
		if got := peer.SpeaksLongLines(tc.f); got != tc.want {
			t.Errorf("SpeaksLongLines(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestCloseIdempotentFirstReasonWins(t *testing.T) {
	p, cli, _ := newPeer(t, roomy)
	if p.Reason() != reason.CloseNone || isClosed(p.Done()) {
		t.Fatal("new peer is closed")
	}
	p.Close(reason.CloseClientGone)
	p.Close(reason.CloseReadError)
	p.Close(reason.CloseShutdown)
	if r := p.Reason(); r != reason.CloseClientGone {
		t.Fatalf("Reason = %v, want %v", r, reason.CloseClientGone)
	}
	if !isClosed(p.Done()) {
		t.Fatal("Done not closed")
	}
	if p.Send(line("x")) {
		t.Error("Send after Close = true")
	}
	if _, err := cli.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client Read = %v, want EOF (connection closed)", err)
	}
	if isClosed(p.Left()) {
		t.Error("Close closed Left")
	}
}

func TestCloseConcurrent(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	reasons := []reason.Close{reason.CloseClientGone, reason.CloseReadError, reason.ClosePongTimeout, reason.CloseReplaced}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			p.Send(line("x"))
			p.Close(reasons[i%len(reasons)])
		})
	}
	wg.Wait()
	got := p.Reason()
	found := false
	for _, r := range reasons {
		found = found || r == got
	}
	if !found {
		t.Fatalf("Reason = %v, want one of %v", got, reasons)
	}
}

// A Close while the writer is blocked keeps its reason: the write error it causes does
// not overwrite it.
func TestCloseDuringWriteKeepsReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, cli := net.Pipe()
		defer cli.Close()
		p := peer.New(1, srv, roomy, new(stats.Counters), discard())
		p.Send(line("stuck"))
		p.Send(line("queued"))
		synctest.Wait()
		p.Close(reason.CloseReplaced)
		synctest.Wait() // writer exits
		if r := p.Reason(); r != reason.CloseReplaced {
			t.Fatalf("Reason = %v, want %v", r, reason.CloseReplaced)
		}
		if q := p.QueuedBytes(); q != 0 {
			t.Errorf("QueuedBytes = %d after close", q)
		}
	})
}

func TestWriteNow(t *testing.T) {
	t.Run("delivers", func(t *testing.T) {
		p, cli, _ := newPeer(t, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: watchdog})
		errc := make(chan error, 1)
		go func() { errc <- p.WriteNow(line("795")) }()
		if got := readLines(t, cli, 1); got[0] != "795\r\n" {
			t.Fatalf("got %q", got[0])
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, cli := net.Pipe()
			defer cli.Close()
			p := peer.New(1, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second}, new(stats.Counters), discard())
			defer p.Close(reason.CloseShutdown)
			start := time.Now()
			err := p.WriteNow(line("795"))
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("WriteNow = %v, want deadline exceeded", err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("returned after %v, want 1s", d)
			}
		})
	})
}

func TestSetHello(t *testing.T) {
	tests := []struct {
		name              string
		hello             handshake.Hello
		plain, feat, left string
		maker             bool
		role              string
	}{
		{
			name: "maker with features",
			hello: handshake.Hello{Nick: nick, Location: jm.Location{Host: onion, Port: 5222},
				Features: handshake.Features{Ping: true, PeerlistFeatures: true, True: []string{"peerlist_features", "ping"}}},
			plain: nick + ";" + onion + ":5222",
			feat:  nick + ";" + onion + ":5222;F:peerlist_features+ping",
			left:  nick + ";" + onion + ":5222;D",
			maker: true, role: "maker",
		},
		{
			name:  "taker without features",
			hello: handshake.Hello{Nick: "J55uwMUczBgZV44z"},
			plain: "J55uwMUczBgZV44z;NOT-SERVING-ONION",
			feat:  "J55uwMUczBgZV44z;NOT-SERVING-ONION",
			left:  "J55uwMUczBgZV44z;NOT-SERVING-ONION;D",
			maker: false, role: "taker",
		},
		{
			name: "local maker, one feature",
			hello: handshake.Hello{Nick: "J58w4tpYN3zRBwC9", Location: jm.Location{Host: "127.0.0.1", Port: 27103},
				Features: handshake.Features{True: []string{"nick_auth"}}},
			plain: "J58w4tpYN3zRBwC9;127.0.0.1:27103",
			feat:  "J58w4tpYN3zRBwC9;127.0.0.1:27103;F:nick_auth",
			left:  "J58w4tpYN3zRBwC9;127.0.0.1:27103;D",
			maker: true, role: "maker",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := newPeer(t, roomy)
			if p.Role() != "taker" || p.Maker() {
				t.Errorf("before SetHello: Role %q, Maker %v", p.Role(), p.Maker())
			}
			p.SetHello(tc.hello)
			if p.Nick != tc.hello.Nick || p.Location != tc.hello.Location {
				t.Errorf("identity = %q %+v", p.Nick, p.Location)
			}
			if p.Features.Ping != tc.hello.Features.Ping || p.Features.PeerlistFeatures != tc.hello.Features.PeerlistFeatures {
				t.Errorf("Features = %+v", p.Features)
			}
			for _, c := range []struct{ name, got, want string }{
				{"EntryPlain", string(p.EntryPlain), tc.plain},
				{"EntryFeatures", string(p.EntryFeatures), tc.feat},
				{"EntryLeft", string(p.EntryLeft), tc.left},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
			if p.Maker() != tc.maker || p.Role() != tc.role {
				t.Errorf("Maker %v Role %q, want %v %q", p.Maker(), p.Role(), tc.maker, tc.role)
			}
		})
	}
}

func TestIDAndConn(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	if p.ID != 7 {
		t.Errorf("ID = %d", p.ID)
	}
	if p.Conn() == nil {
		t.Error("Conn() = nil")
	}
}

func TestTouchLastSeen(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	if got := p.LastSeen(); got.UnixNano() != 0 {
		t.Errorf("LastSeen of a new peer = %v, want the Unix epoch", got)
	}
	t1 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	p.Touch(t1)
	if got := p.LastSeen(); !got.Equal(t1) {
		t.Errorf("LastSeen = %v, want %v", got, t1)
	}
	t2 := t1.Add(time.Minute)
	p.Touch(t2)
	if got := p.LastSeen(); !got.Equal(t2) {
		t.Errorf("LastSeen = %v, want %v", got, t2)
	}
}

func TestPing(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	if _, ok := p.PingPending(); ok {
		t.Fatal("new peer has a ping pending")
	}
	t1 := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)
	p.MarkPing(t1)
	at, ok := p.PingPending()
	if !ok || !at.Equal(t1) {
		t.Fatalf("PingPending = %v, %v; want %v, true", at, ok, t1)
	}
	p.Pong()
	if _, ok := p.PingPending(); ok {
		t.Fatal("ping still pending after Pong")
	}
	p.Pong() // no ping pending: harmless
	if _, ok := p.PingPending(); ok {
		t.Fatal("ping pending after a second Pong")
	}
}

func TestAwaitAnswer(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	p.Answered() // nobody waiting: no-op

	a := p.AwaitAnswer()
	if isClosed(a) {
		t.Fatal("fresh AwaitAnswer channel is already closed (an earlier Answered leaked)")
	}
	if b := p.AwaitAnswer(); b != a {
		t.Error("a second waiter got another channel; both must wake on the same answer")
	}
	p.Answered()
	if !isClosed(a) {
		t.Fatal("Answered did not close the channel")
	}
	p.Answered() // a second answer must not close twice (would panic)

	c := p.AwaitAnswer()
	if c == a {
		t.Fatal("AwaitAnswer after an answer returned the old, closed channel")
	}
	if isClosed(c) {
		t.Fatal("new AwaitAnswer channel already closed")
	}
	p.Pong() // a pong is an answer too
	if !isClosed(c) {
		t.Fatal("Pong did not close the channel")
	}
}

func TestAwaitAnswerConcurrent(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	for range 100 {
		ch := p.AwaitAnswer()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(p.Answered)
		}
		wg.Wait()
		waitClosed(t, ch, "AwaitAnswer channel")
	}
}

func TestMarkLeft(t *testing.T) {
	p, _, _ := newPeer(t, roomy)
	if isClosed(p.Left()) {
		t.Fatal("Left closed on a new peer")
	}
	p.Close(reason.CloseClientGone)
	if isClosed(p.Left()) {
		t.Fatal("Left closed by Close")
	}
	p.MarkLeft()
	if !isClosed(p.Left()) {
		t.Fatal("Left not closed by MarkLeft")
	}
}

// TestWriteNowOversize: the handshake's direct write obeys the same limit as the queue.
func TestWriteNowOversize(t *testing.T) {
	p, cli, ctr := newPeer(t, peer.Limits{QueueBytes: 4 << 20, WriteTimeout: time.Hour})
	if err := p.WriteNow(append(bytes.Repeat([]byte("w"), wire.MaxLine+1), "\r\n"...)); !errors.Is(err, peer.ErrLineRefused) {
		t.Fatalf("WriteNow of a long line: %v, want ErrLineRefused", err)
	}
	if d := ctr.Drops(reason.DropTooLongForRecipient); d != 1 {
		t.Errorf("%s = %d, want 1", reason.DropTooLongForRecipient, d)
	}
	done := make(chan error, 1)
	go func() { done <- p.WriteNow(line("ok")) }()
	got := make([]byte, 4)
	_ = cli.SetReadDeadline(time.Now().Add(watchdog))
	if _, err := io.ReadFull(cli, got); err != nil || string(got) != "ok\r\n" {
		t.Fatalf("client got %q, %v; want only the short line", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
