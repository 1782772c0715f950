package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRelayHandshakeAndForward(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(ln, "regtest", 1<<20, 5*time.Second, 0)
	defer r.Close()

	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func() client {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		id := newIdentity()
		if _, err := c.Write(handshakeLine(id.nick, "NOT-SERVING-ONION", "regtest")); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("no CRLF: %q", line)
		}
		if err := checkDNHandshake([]byte(strings.TrimSuffix(line, "\r\n"))); err != nil {
			t.Fatalf("canned 795 %q: %v", line, err)
		}
		return client{c, br}
	}
	a, b, c := dial(), dial(), dial()
	for len(*r.conns.Load()) < 3 {
		time.Sleep(time.Millisecond)
	}

	// Two complete lines and half of a third in one write, the rest later.
	if _, err := io.WriteString(a.c, "one\r\ntwo\r\nthr"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := io.WriteString(a.c, "ee\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(b.c, "from b\n"); err != nil {
		t.Fatal(err)
	}
	read := func(cl client, n int) []string {
		var out []string
		for range n {
			l, err := cl.br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return out
	}
	for _, cl := range []client{b, c} {
		got := strings.Join(read(cl, 3), "")
		if got != "one\r\ntwo\r\nthree\r\n" && cl == b {
			t.Fatalf("b got %q", got)
		}
		if cl == c {
			// c also gets b's line, interleaved at a line boundary.
			rest := read(cl, 1)[0]
			all := got + rest
			if !strings.Contains(all, "from b\n") || strings.Replace(all, "from b\n", "", 1) != "one\r\ntwo\r\nthree\r\n" {
				t.Fatalf("c got %q", all)
			}
		}
	}
	if got := read(a, 1)[0]; got != "from b\n" {
		t.Fatalf("a got %q (a sender never gets its own lines)", got)
	}
}

// TestRelayCutsSlowConsumer: a connection that stops reading holds the others up (the
// relay waits for queue room) until its write misses the deadline; then it is cut and
// the others get everything.
func TestRelayCutsSlowConsumer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(ln, "regtest", 256<<10, 300*time.Millisecond, 0)
	defer r.Close()
	join := func() *peer {
		d := &dialer{addr: r.Addr(), network: "regtest", timeout: 5 * time.Second, bufSize: 4096}
		p, err := d.join(t.Context(), newIdentity(), "NOT-SERVING-ONION")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.conn.Close() })
		return p
	}
	pub, good, slow := join(), join(), join()
	_ = slow.conn.(*net.TCPConn).SetReadBuffer(4096)
	for len(*r.conns.Load()) < 3 {
		time.Sleep(time.Millisecond)
	}
	line := []byte(strings.Repeat("x", 999) + "\n")
	// 16 MB: more than the slow reader's socket buffers and queue together.
	const n, step = 16000, 200
	var got atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		_ = good.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for got.Load() < n {
			var k int64
			err := good.readChunk(func([]byte) { k++ })
			got.Add(k)
			if err != nil {
				readErr <- err
				return
			}
		}
		readErr <- nil
	}()
	for i := 0; i < n; i++ {
		if _, err := pub.write(line, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if (i+1)%step == 0 {
			for got.Load() < int64(i+1) {
				select {
				case err := <-readErr:
					t.Fatalf("good reader: %v after %d of %d", err, got.Load(), n)
				default:
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
	}
	if err := <-readErr; err != nil || got.Load() != n {
		t.Fatalf("good reader got %d of %d: %v", got.Load(), n, err)
	}
	if r.cut.Load() != 1 {
		t.Fatalf("cut %d, want the slow reader", r.cut.Load())
	}
}
