package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// long is a timeout no test here waits for.
const long = time.Minute

// serveOps serves op on a fresh loopback listener through Listener and a server built
// with tm, as main does with the default timeouts.
func serveOps(t *testing.T, op *Ops, tm timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := op.newServer(tm)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(op.Listener(ln)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// askHealth sends GET /health (keep-alive) on c.
func askHealth(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// answer reads one response from br within d.
func answer(c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res, err
}

// closedByServer waits (at most testkit.Timeout) for the server to close c.
func closedByServer(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	if n, err := br.Read(make([]byte, 1)); n != 0 || (!errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err)) {
		t.Fatalf("connection not closed by the server: read %d bytes, %v", n, err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// TestServerLimits: the server main runs carries the documented limits.
func TestServerLimits(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, err := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	s := op.Server()
	if s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != ReadTimeout || s.WriteTimeout != WriteTimeout ||
		s.IdleTimeout != 30*time.Second || s.MaxHeaderBytes != 8<<10 || s.ConnState == nil {
		t.Fatalf("server limits: %+v", s)
	}
	if op.MaxConns() != DefaultMaxConns || DefaultMaxConns != 64 {
		t.Fatalf("default cap %d", op.MaxConns())
	}
	op, _ = New(d.Srv, Options{Addr: "127.0.0.1:8080", MaxConns: 3}, discard)
	if op.MaxConns() != 3 {
		t.Fatalf("cap %d", op.MaxConns())
	}
}

// countingListener counts the connections the kernel handed to Accept.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// stream opens the live page's event stream on a new connection and reads its first
// event: the connection is then running a handler.
func stream(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			return c
		}
	}
}

// TestConnCap: with every slot held by a connection running a handler, a further
// connection is not served until one of them closes, and the ones after it are not even
// accepted (they wait in the kernel's backlog, holding no descriptor of the server).
func TestConnCap(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", MaxConns: 2}, discard)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := op.newServer(timeouts{readHeader: long, read: long, write: long, idle: long})
	go func() { _ = srv.Serve(op.Listener(cl)) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	a := stream(t, addr)
	stream(t, addr)
	c := dial(t, addr)
	askHealth(t, c)
	testkit.Eventually(t, "the third connection waiting for a slot", op.conns.isFull)
	for range 3 {
		askHealth(t, dial(t, addr)) // into the backlog
	}
	br := bufio.NewReader(c)
	if res, err := answer(c, br, 200*time.Millisecond); err == nil || !os.IsTimeout(err) {
		t.Fatalf("third connection served over the cap: %v %v", res, err)
	}
	if n := cl.n.Load(); n != 3 {
		t.Fatalf("%d connections accepted with 2 slots, want 3 (2 + the one waiting)", n)
	}
	if n := op.conns.evictions(); n != 0 {
		t.Fatalf("%d evictions of connections running a handler", n)
	}
	a.Close()
	res, err := answer(c, br, testkit.Timeout)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("third connection after a slot was freed: %v %v", res, err)
	}
}

// TestIdleClosedWhenFull: when a connection arrives with every slot taken, the
// keep-alive connection idle longest is closed for it, well before IdleTimeout, rather
// than a silent one.
func TestIdleClosedWhenFull(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", MaxConns: 2}, discard)
	addr := serveOps(t, op, timeouts{readHeader: long, read: long, write: long, idle: long})

	a := dial(t, addr)
	askHealth(t, a)
	abr := bufio.NewReader(a)
	if res, err := answer(a, abr, testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("first request: %v %v", res, err)
	}
	s := dial(t, addr) // silent: takes the second slot
	c := dial(t, addr)
	askHealth(t, c)
	if res, err := answer(c, bufio.NewReader(c), testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("waiting connection: %v %v", res, err)
	}
	closedByServer(t, a, abr)
	if n := op.conns.evictions(); n != 1 {
		t.Fatalf("evictions = %d, want 1", n)
	}
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Fatalf("silent connection closed although an idle one could go: %v", err)
	}
}

// TestSilentClosedWhenFull: without an idle connection, the oldest connection that has
// not sent a request is closed for the newcomer, and the younger one stays.
func TestSilentClosedWhenFull(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", MaxConns: 2}, discard)
	addr := serveOps(t, op, timeouts{readHeader: long, read: long, write: long, idle: long})

	old := dial(t, addr)
	obr := bufio.NewReader(old)
	// old must be tracked before the younger one is: wait until the server holds it.
	testkit.Eventually(t, "the first connection tracked", func() bool {
		op.conns.mu.Lock()
		defer op.conns.mu.Unlock()
		return len(op.conns.silent) == 1
	})
	young := dial(t, addr)
	c := dial(t, addr)
	askHealth(t, c)
	if res, err := answer(c, bufio.NewReader(c), testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("waiting connection: %v %v", res, err)
	}
	closedByServer(t, old, obr)
	_ = young.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := young.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Fatalf("younger silent connection closed: %v", err)
	}
	if n := op.conns.evictions(); n != 1 {
		t.Fatalf("evictions = %d, want 1", n)
	}
}

// TestIdleAndHeaderTimeouts: below the cap, a keep-alive connection idle after one
// request and a connection that never sends are closed by their timeouts.
func TestIdleAndHeaderTimeouts(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", MaxConns: 8}, discard)
	const idle, header = 100 * time.Millisecond, 150 * time.Millisecond
	addr := serveOps(t, op, timeouts{readHeader: header, read: long, write: long, idle: idle})

	a := dial(t, addr)
	askHealth(t, a)
	abr := bufio.NewReader(a)
	if res, err := answer(a, abr, testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("request: %v %v", res, err)
	}
	t0 := time.Now()
	closedByServer(t, a, abr)
	if el := time.Since(t0); el < idle/2 {
		t.Fatalf("idle connection closed after %v, before its idle timeout", el)
	}
	s := dial(t, addr)
	t0 = time.Now()
	closedByServer(t, s, bufio.NewReader(s))
	if el := time.Since(t0); el < header/2 {
		t.Fatalf("silent connection closed after %v, before the header timeout", el)
	}
	if n := op.conns.evictions(); n != 0 {
		t.Fatalf("%d evictions below the cap", n)
	}
}

// TestLongResponsesOutliveTimeouts: the event stream and pprof's trace run longer than
// the server's read and write timeouts without being cut.
func TestLongResponsesOutliveTimeouts(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", Pprof: true}, discard)
	const read, write = 100 * time.Millisecond, 200 * time.Millisecond
	addr := serveOps(t, op, timeouts{readHeader: read, read: read, write: write, idle: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go op.Run(ctx, 20*time.Millisecond)

	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	start := time.Now()
	events := 0
	for time.Since(start) < 4*write {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %v and %d events: %v", time.Since(start), events, err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ls LiveState
			if err := json.Unmarshal([]byte(data), &ls); err != nil {
				t.Fatal(err)
			}
			events++
		}
	}

	const traceFor = 500 * time.Millisecond
	t0 := time.Now()
	tr, err := http.Get("http://" + addr + "/debug/pprof/trace?seconds=0.5")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, tr.Body)
	tr.Body.Close()
	if el := time.Since(t0); err != nil || tr.StatusCode != 200 || n == 0 || el < traceFor {
		t.Fatalf("trace: status %d, %d bytes after %v, %v", tr.StatusCode, n, el, err)
	}
}
