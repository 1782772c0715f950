package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
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
	testkit.Eventually(t, "three joined connections", func() bool { return len(*r.conns.Load()) == 3 })

	// Two complete lines and half of a third in one write, the rest only once the relay
	// has forwarded the complete ones to b and c: it has read the first write, and holds
	// the half line.
	first := "one\r\ntwo\r\nthr"
	if _, err := io.WriteString(a.c, first); err != nil {
		t.Fatal(err)
	}
	complete := int64(2 * len("one\r\ntwo\r\n"))
	testkit.Eventually(t, "the relay forwarding the complete lines", func() bool { return r.bytesF.Load() >= complete })
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
	testkit.Eventually(t, "three joined connections", func() bool { return len(*r.conns.Load()) == 3 })
	line := []byte(strings.Repeat("x", 999) + "\n")
	// 16 MB: more than the slow reader's socket buffers and queue together.
	const n, step = 16000, 200
	var got atomic.Int64
	var readErr error               // set before readDone is closed
	readDone := make(chan struct{}) // closed when the good reader stops
	go func() {
		defer close(readDone)
		_ = good.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for got.Load() < n {
			var k int64
			err := good.readChunk(func([]byte) { k++ })
			got.Add(k)
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	stopped := func() bool {
		select {
		case <-readDone:
			return true
		default:
			return false
		}
	}
	for i := 0; i < n; i++ {
		if _, err := pub.write(line, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if (i+1)%step == 0 {
			// The good reader keeps up: it has every line written so far (or has
			// stopped, which is checked next).
			want := int64(i + 1)
			testkit.Eventually(t, fmt.Sprintf("the good reader receiving line %d", want), func() bool {
				return got.Load() >= want || stopped()
			})
			if got.Load() < want {
				t.Fatalf("good reader: %v after %d of %d", readErr, got.Load(), n)
			}
		}
	}
	<-readDone
	if readErr != nil || got.Load() != n {
		t.Fatalf("good reader got %d of %d: %v", got.Load(), n, readErr)
	}
	if r.cut.Load() != 1 {
		t.Fatalf("cut %d, want the slow reader", r.cut.Load())
	}
}
