package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// relay is the smallest possible line relay over TCP: no parsing and no protocol logic.
// It answers a connection's first line with a canned accepted 795, then forwards every
// later complete line to every other connection. Each connection has a writer goroutine
// and a bounded outbound queue. A full queue makes the forwarding reader wait (so the
// relay runs at the speed of its slowest reader instead of cutting everyone once
// publishers outrun the readers); a write that misses the deadline cuts that connection,
// which releases anyone waiting on it. The ceiling scenario runs the fan-out against it,
// so a directory's numbers can be read as a fraction of what the machine does with no
// directory logic.
type relay struct {
	ln         net.Listener
	hello      []byte
	queueBytes int
	wto        time.Duration
	sockBuf    int // SO_SNDBUF and SO_RCVBUF of accepted connections; 0 = kernel autotuning

	mu     sync.Mutex
	all    map[*relayConn]struct{}      // every open connection, joined or not; under mu
	closed bool                         // under mu
	conns  atomic.Pointer[[]*relayConn] // joined connections: copy-on-write, replaced under mu
	wg     sync.WaitGroup

	accepted, cut  atomic.Int64
	chunks, bytesF atomic.Int64 // forwarded chunks / bytes (per recipient)

	// Hooks, set before start; nil for the plain relay. joined is told of a connection's
	// handshake line, left of its end; route names the one connection a complete line
	// goes to instead of every other (nil: every other). privRelay (latency_relay.go)
	// uses them to route privmsgs.
	joined func(rc *relayConn, hello []byte)
	left   func(rc *relayConn)
	route  func(line []byte) *relayConn
}

type relayConn struct {
	c    net.Conn
	mu   sync.Mutex
	room *sync.Cond // signalled when the writer takes the queue or the connection dies
	q    [][]byte   // pending chunks
	qLen int
	dead bool
	wake chan struct{}
	nick string // the handshake's nick, for the joined and left hooks; only rc's reader uses it
}

// relaySockBuf is the relay's default socket buffer size. With kernel autotuning, a relay
// forwarding at full speed to 1000 connections fills send buffers of up to tcp_wmem max
// each, pushes the host into TCP memory pressure, and the kernel starts pruning and
// dropping on loopback (a dropped segment then stalls its connection for seconds of RTO
// backoff). Fixed 256 KiB buffers keep the kernel out of that without costing throughput.
const relaySockBuf = 256 << 10

// cannedHello is the 795 the relay sends: a valid reference-style accepted handshake.
func cannedHello(network string) []byte {
	nick := newIdentity().nick
	js := `{"app-name": "joinmarket", "directory": true, "proto-ver-min": 5, "proto-ver-max": 5, "features": {}, "accepted": true, "nick": "` +
		nick + `", "network": "` + network + `", "motd": "jm-directory-bench relay (no directory logic)"}`
	return appendEnvelope(nil, 795, js)
}

// newRelay starts a relay on ln; sockBuf > 0 fixes the socket buffers of its connections.
func newRelay(ln net.Listener, network string, queueBytes int, wto time.Duration, sockBuf int) *relay {
	r := makeRelay(ln, network, queueBytes, wto, sockBuf)
	r.start()
	return r
}

// makeRelay is newRelay without starting it: a caller may set the hooks first.
func makeRelay(ln net.Listener, network string, queueBytes int, wto time.Duration, sockBuf int) *relay {
	r := &relay{ln: ln, hello: cannedHello(network), queueBytes: queueBytes, wto: wto, sockBuf: sockBuf, all: map[*relayConn]struct{}{}}
	r.conns.Store(&[]*relayConn{})
	return r
}

// start accepts connections.
func (r *relay) start() {
	r.wg.Add(1)
	go r.acceptLoop()
}

// Addr is the listening address.
func (r *relay) Addr() string { return r.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the goroutines.
func (r *relay) Close() {
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.all {
		c.kill()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of descriptors
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && r.sockBuf > 0 {
			_ = tc.SetWriteBuffer(r.sockBuf)
			_ = tc.SetReadBuffer(r.sockBuf)
		}
		rc := &relayConn{c: c, wake: make(chan struct{}, 1)}
		rc.room = sync.NewCond(&rc.mu)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.all[rc] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go func() { defer r.wg.Done(); r.writeLoop(rc) }()
		go func() { defer r.wg.Done(); r.readLoop(rc) }()
	}
}

func (r *relay) add(rc *relayConn) {
	r.mu.Lock()
	old := *r.conns.Load()
	next := make([]*relayConn, len(old), len(old)+1)
	copy(next, old)
	next = append(next, rc)
	r.conns.Store(&next)
	r.mu.Unlock()
}

func (r *relay) remove(rc *relayConn) {
	r.mu.Lock()
	delete(r.all, rc)
	old := *r.conns.Load()
	next := make([]*relayConn, 0, len(old))
	for _, x := range old {
		if x != rc {
			next = append(next, x)
		}
	}
	r.conns.Store(&next)
	r.mu.Unlock()
}

// enqueue queues b (shared, never modified) for rc, waiting while rc's queue is full;
// false if rc is dead. An empty queue takes any one chunk.
func (rc *relayConn) enqueue(b []byte, limit int) bool {
	rc.mu.Lock()
	for !rc.dead && rc.qLen > 0 && rc.qLen+len(b) > limit {
		rc.room.Wait()
	}
	if rc.dead {
		rc.mu.Unlock()
		return false
	}
	rc.q = append(rc.q, b)
	rc.qLen += len(b)
	rc.mu.Unlock()
	select {
	case rc.wake <- struct{}{}:
	default:
	}
	return true
}

// kill closes rc; it reports whether rc was still alive.
func (rc *relayConn) kill() bool {
	rc.mu.Lock()
	alive := !rc.dead
	rc.dead = true
	rc.room.Broadcast()
	rc.mu.Unlock()
	rc.c.Close()
	select {
	case rc.wake <- struct{}{}:
	default:
	}
	return alive
}

func (r *relay) writeLoop(rc *relayConn) {
	// Two slices alternate: the writer owns one (q, then spare) while enqueue appends to
	// the other (rc.q); they never share an array.
	var spare [][]byte
	for range rc.wake {
		rc.mu.Lock()
		q, dead := rc.q, rc.dead
		rc.q, rc.qLen = spare, 0
		rc.room.Broadcast()
		rc.mu.Unlock()
		if dead {
			return
		}
		if len(q) > 0 {
			_ = rc.c.SetWriteDeadline(time.Now().Add(r.wto))
			bufs := net.Buffers(q)
			if _, err := bufs.WriteTo(rc.c); err != nil {
				// A missed deadline is a cut (stuck consumer); anything else means
				// the connection is gone anyway.
				if rc.kill() && errors.Is(err, os.ErrDeadlineExceeded) {
					r.cut.Add(1)
				}
				return
			}
			clear(q)
		}
		spare = q[:0]
	}
}

func (r *relay) readLoop(rc *relayConn) {
	defer func() {
		if r.left != nil {
			r.left(rc)
		}
		r.remove(rc)
		rc.kill()
	}()
	buf := make([]byte, 64<<10)
	w := 0
	joined := false
	for {
		if w == len(buf) {
			if len(buf) >= 1<<20 {
				return // no line is that long
			}
			nb := make([]byte, 2*len(buf))
			copy(nb, buf[:w])
			buf = nb
		}
		n, err := rc.c.Read(buf[w:])
		w += n
		start := 0
		if !joined {
			i := bytes.IndexByte(buf[:w], '\n')
			if i >= 0 {
				if r.joined != nil {
					r.joined(rc, buf[:i+1])
				}
				rc.enqueue(r.hello, r.queueBytes)
				r.add(rc)
				r.accepted.Add(1)
				joined = true
				start = i + 1
			}
		}
		if joined {
			start = r.forwardLines(rc, buf[:w], start)
		}
		w = copy(buf, buf[start:w])
		if err != nil {
			return
		}
	}
}

// forwardLines forwards the complete lines of buf from start on and returns where the
// incomplete rest begins. Without route, all of them go to every other connection as one
// chunk; with it, a line route addresses to another connection goes to that one alone,
// ending the run of lines around it.
func (r *relay) forwardLines(from *relayConn, buf []byte, start int) int {
	if r.route == nil {
		end := bytes.LastIndexByte(buf[start:], '\n')
		if end < 0 {
			return start
		}
		end += start + 1
		r.forward(from, append([]byte(nil), buf[start:end]...))
		return end
	}
	run := start
	for {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			break
		}
		end := start + i + 1
		if to := r.route(buf[start:end]); to != nil && to != from {
			if run < start {
				r.forward(from, append([]byte(nil), buf[run:start]...))
			}
			if to.enqueue(append([]byte(nil), buf[start:end]...), r.queueBytes) {
				r.chunks.Add(1)
				r.bytesF.Add(int64(end - start))
			}
			run = end
		}
		start = end
	}
	if run < start {
		r.forward(from, append([]byte(nil), buf[run:start]...))
	}
	return start
}

// forward queues chunk for every connection but from.
func (r *relay) forward(from *relayConn, chunk []byte) {
	var n int64
	for _, rc := range *r.conns.Load() {
		if rc == from {
			continue
		}
		if rc.enqueue(chunk, r.queueBytes) {
			n++
		}
	}
	r.chunks.Add(n)
	r.bytesF.Add(n * int64(len(chunk)))
}

// serveRelay runs the relay standalone until ctx ends.
func serveRelay(ctx context.Context, addr, network string, queueBytes int, wto time.Duration, sockBuf int, log io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	r := newRelay(ln, network, queueBytes, wto, sockBuf)
	fmt.Fprintf(log, "relay listening on %s (no directory logic; Ctrl-C to stop)\n", r.Addr())
	start := time.Now()
	pr := startProgress(log, "relay", func() string {
		return fmt.Sprintf("conns=%d accepted=%d cut=%d forwarded=%s bytes (%sB/s avg)",
			len(*r.conns.Load()), r.accepted.Load(), r.cut.Load(), si(float64(r.bytesF.Load())), si(rate(r.bytesF.Load(), time.Since(start))))
	})
	<-ctx.Done()
	pr.stop()
	r.Close()
	return nil
}

// runCeiling is the fanout scenario against the relay: an in-process one on 127.0.0.1:0
// unless --addr was given (a relay started with "jm-directory-bench relay").
func runCeiling(ctx context.Context, c *common, cfg fanoutConfig, explicitAddr bool, sockBuf int) (*report, error) {
	where := c.addr + " (external)"
	if !explicitAddr {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		r := newRelay(ln, c.network, 8<<20, 30*time.Second, sockBuf) // write timeout: the directory's default
		defer r.Close()
		c.addr = r.Addr()
		where = "in-process"
	}
	return runFanoutScenario(ctx, c, cfg, "ceiling", func(rep *report) { rep.add("relay", where, "") })
}
