// Package peer is one client connection: identity fixed at the handshake, a bounded
// outbound queue drained by a shared Flusher (or, when the socket is full, an on-demand
// writer goroutine), and a single typed close reason.
//
// Enqueueing never blocks. When a peer's queued bytes exceed its cap, or a write misses
// its deadline, the peer is cut with stats.CloseSlowConsumer: one slow reader can never
// hold up a sender or a broadcast, and nothing accepted into a live peer's queue is
// dropped silently.
package peer

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Limits bound a peer's outbound side.
type Limits struct {
	QueueBytes   int           // cap on bytes waiting to be written
	WriteTimeout time.Duration // deadline for each write of up to 64 KiB: no progress for this long = slow consumer
}

// Peer is one connection. The identity fields are set by SetHello before the peer is
// registered and never change afterwards, so other goroutines read them without locks.
type Peer struct {
	ID   uint64
	Log  *slog.Logger // child logger for this connection (no nick at INFO)
	conn net.Conn
	lim  Limits
	ctr  *stats.Counters

	// Identity, written once by SetHello before registration.
	Nick     string
	Location jm.Location
	Features handshake.Features
	// Peerlist entries, precomputed at SetHello.
	EntryPlain    []byte // "nick;location"
	EntryFeatures []byte // "nick;location;F:…" (= EntryPlain without true features)
	EntryLeft     []byte // "nick;location;D"

	// Liveness, written by the reader and the heartbeat.
	lastSeen    atomic.Int64 // unix nanoseconds of the last line received
	pingPending atomic.Int64 // unix nanoseconds a 798 was sent and not yet answered; 0 = none

	mu     sync.Mutex // guards the fields below
	queue  [][]byte   // lines waiting for the writer
	spare  [][]byte   // recycled queue backing array
	queued int        // bytes queued or being written, not yet on the wire
	writer bool       // the queue has a drainer: a writer goroutine or the flusher (running or about to run)
	inIO   bool       // a write to the socket is in progress (by the writer or SendUrgent)
	closed bool
	reason stats.CloseReason
	probe  chan struct{} // closed when the next qualifying answer arrives (nick check)

	raw  syscall.RawConn // set for real sockets: lets SendUrgent and the flusher write directly
	fl   *Flusher        // writes broadcasts for real sockets; nil = a writer goroutine each time
	bufs net.Buffers     // the current vectored write; used only by the goroutine doing I/O

	probing atomic.Bool   // probe is set: Answered must take the lock
	done    chan struct{} // closed by Close
	left    chan struct{} // closed by MarkLeft once the peer is unregistered and announced
}

// New wraps a connection.
func New(id uint64, conn net.Conn, lim Limits, ctr *stats.Counters, log *slog.Logger) *Peer {
	p := &Peer{ID: id, conn: conn, lim: lim, ctr: ctr, Log: log,
		done: make(chan struct{}), left: make(chan struct{})}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.raw = rc
		}
	}
	return p
}

// UseFlusher makes f write this peer's queued lines while its socket takes them without
// blocking. Call it before the peer is shared with other goroutines.
func (p *Peer) UseFlusher(f *Flusher) { p.fl = f }

// startWriter has the queue drained: by the flusher when there is one and the connection
// is a socket, else by a writer goroutine. The caller has just set p.writer.
func (p *Peer) startWriter() {
	if p.fl != nil && p.raw != nil {
		p.fl.add(p)
		return
	}
	go p.writeLoop()
}

// Conn returns the underlying connection.
func (p *Peer) Conn() net.Conn { return p.conn }

// SetHello fixes the peer's identity from its accepted handshake.
func (p *Peer) SetHello(h handshake.Hello) {
	p.Nick, p.Location, p.Features = h.Nick, h.Location, h.Features
	loc := h.Location.String()
	p.EntryPlain = wire.AppendEntry(nil, h.Nick, loc, false, nil)
	p.EntryFeatures = wire.AppendEntry(nil, h.Nick, loc, false, h.Features.True)
	p.EntryLeft = wire.AppendEntry(nil, h.Nick, loc, true, nil)
}

// Maker reports whether the peer serves an onion (a maker); otherwise it is a taker.
func (p *Peer) Maker() bool { return p.Location.Serving() }

// Role is "maker" or "taker".
func (p *Peer) Role() string {
	if p.Maker() {
		return "maker"
	}
	return "taker"
}

// Touch records that a line arrived at t.
func (p *Peer) Touch(t time.Time) { p.lastSeen.Store(t.UnixNano()) }

// LastSeen is when the last line arrived.
func (p *Peer) LastSeen() time.Time { return time.Unix(0, p.lastSeen.Load()) }

// MarkPing records that a ping was sent at t.
func (p *Peer) MarkPing(t time.Time) { p.pingPending.Store(t.UnixNano()) }

// PingPending returns when the unanswered ping was sent, if any.
func (p *Peer) PingPending() (time.Time, bool) {
	n := p.pingPending.Load()
	return time.Unix(0, n), n != 0
}

// Pong clears a pending ping and wakes a nick check waiting on this peer.
func (p *Peer) Pong() {
	p.pingPending.Store(0)
	p.Answered()
}

// Answered wakes a nick check waiting for this peer to prove it is alive. It is called
// for every received line, so it takes no lock unless a check is waiting.
func (p *Peer) Answered() {
	if !p.probing.Load() {
		return
	}
	p.mu.Lock()
	p.probing.Store(false)
	if p.probe != nil {
		close(p.probe)
		p.probe = nil
	}
	p.mu.Unlock()
}

// AwaitAnswer returns a channel closed at the peer's next Answered call.
func (p *Peer) AwaitAnswer() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.probe == nil {
		p.probe = make(chan struct{})
		p.probing.Store(true)
	}
	return p.probe
}

// Send queues one encoded line (terminator included). It never blocks. It returns false
// when the line was not queued: the peer is closed, the line is longer than a reference
// client accepts (counted as stats.DropOversizeOut), or the queue overflowed — in which
// case the peer is cut as a slow consumer.
func (p *Peer) Send(line []byte) bool {
	if wire.ContentLen(line) > wire.MaxLine {
		p.ctr.Drop(stats.DropOversizeOut)
		return false
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.queued+len(line) > p.lim.QueueBytes {
		p.mu.Unlock()
		p.Close(stats.CloseSlowConsumer)
		return false
	}
	p.queue = append(p.queue, line)
	p.queued += len(line)
	start := !p.writer && !p.inIO // whoever is writing restarts the writer when done
	p.writer = p.writer || start
	p.mu.Unlock()
	if start {
		p.startWriter()
	}
	return true
}

// SendUrgent is Send for a line someone is waiting for (a privmsg, its location
// peerlist, a ping). Unless a write is in progress, the caller writes what is queued and
// the line itself at once, from its own goroutine and without blocking: the line does
// not wait for a writer goroutine to be scheduled, which, behind a broadcast that woke a
// thousand writers, can take milliseconds. Whatever the socket does not take is left,
// in order, to a writer goroutine. Broadcasts use Send: their writer batches many lines
// per write, where one write per line would cost a broadcast its throughput.
func (p *Peer) SendUrgent(line []byte) bool {
	if p.raw == nil || wire.ContentLen(line) > wire.MaxLine {
		return p.Send(line)
	}
	p.mu.Lock()
	if p.closed || p.inIO || p.queued+len(line) > p.lim.QueueBytes {
		p.mu.Unlock()
		return p.Send(line)
	}
	batch := append(p.queue, line)
	p.queue, p.spare = p.spare[:0], nil
	p.queued += len(line)
	p.inIO = true
	p.mu.Unlock()

	iov := iovPool.Get().(*[]syscall.Iovec)
	written, rest, err := p.tryWritev(batch, iov)
	iovPool.Put(iov)
	if err != nil {
		p.Close(stats.CloseWriteError)
		return false
	}
	p.mu.Lock()
	p.inIO = false
	if p.closed {
		p.mu.Unlock()
		return true
	}
	p.queued -= written
	if len(rest) > 0 { // put the unwritten lines back in front of anything queued meanwhile
		p.queue = append(rest, p.queue...)
	}
	start := len(p.queue) > 0 && !p.writer
	p.writer = p.writer || start
	p.mu.Unlock()
	switch {
	case start && len(rest) > 0:
		go p.writeLoop() // the socket is full: wait for it under the write deadline
	case start:
		p.startWriter()
	}
	return true
}

// QueuedBytes is the number of bytes accepted for the peer and not yet written.
func (p *Peer) QueuedBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued
}

// writeChunk bounds the bytes written under one deadline, so the write deadline means "no
// progress for WriteTimeout", not "a whole burst within WriteTimeout".
const writeChunk = 64 << 10

// writeLoop drains the queue with vectored writes and exits when the queue is empty, so an
// idle peer holds no writer goroutine.
func (p *Peer) writeLoop() {
	for {
		batch := p.takeBatch()
		if batch == nil {
			return
		}
		err := p.writeBatch(batch)
		p.mu.Lock()
		p.releaseBatchLocked(batch)
		p.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				p.Close(stats.CloseSlowConsumer)
			} else {
				p.Close(stats.CloseWriteError)
			}
			return
		}
	}
}

// takeBatch hands the queue to the calling drainer (writer goroutine or flusher) for
// writing and marks a write in progress. It returns nil, and gives up the drainer role,
// when there is nothing to do: the peer is closed, the queue is empty, or SendUrgent is
// writing (it restarts a drainer if lines remain).
func (p *Peer) takeBatch() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.queue) == 0 || p.inIO {
		p.writer = false
		return nil
	}
	batch := p.queue
	p.queue, p.spare = p.spare[:0], nil
	p.inIO = true
	return batch
}

// releaseBatchLocked ends the write of a batch from takeBatch and keeps its backing array
// for the next queue.
func (p *Peer) releaseBatchLocked(batch [][]byte) {
	p.inIO = false
	clear(batch)
	if p.spare == nil {
		p.spare = batch[:0]
	}
}

// writeBatch writes lines in chunks of about writeChunk bytes, each under a fresh write
// deadline. Bytes count against the queue cap until they are written.
func (p *Peer) writeBatch(batch [][]byte) error {
	for len(batch) > 0 {
		n, size := 0, 0
		for n < len(batch) && (n == 0 || size+len(batch[n]) <= writeChunk) {
			size += len(batch[n])
			n++
		}
		_ = p.conn.SetWriteDeadline(time.Now().Add(p.lim.WriteTimeout))
		p.bufs = batch[:n] // a field, not a local: WriteTo would move a local to the heap
		_, err := p.bufs.WriteTo(p.conn)
		p.bufs = nil
		if err != nil {
			return err
		}
		p.mu.Lock()
		if !p.closed {
			p.queued -= size
		}
		p.mu.Unlock()
		batch = batch[n:]
	}
	return nil
}

// WriteNow writes one line directly, bypassing the queue. It is only for the handshake
// phase, before any other goroutine can send to the peer.
func (p *Peer) WriteNow(line []byte) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.lim.WriteTimeout))
	_, err := p.conn.Write(line)
	return err
}

// Close cuts the connection with a reason. Only the first reason counts. Queued lines
// are discarded: the peer is gone.
func (p *Peer) Close(r stats.CloseReason) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.reason = r
	p.queue, p.spare, p.queued = nil, nil, 0
	p.mu.Unlock()
	close(p.done)
	_ = p.conn.Close()
}

// MarkLeft records that the peer has been unregistered and its departure announced.
func (p *Peer) MarkLeft() { close(p.left) }

// Left is closed once the peer has been unregistered and its departure announced.
func (p *Peer) Left() <-chan struct{} { return p.left }

// Closed reports whether the peer has been closed.
func (p *Peer) Closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the peer is closed.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Reason returns the close reason (stats.CloseNone while open).
func (p *Peer) Reason() stats.CloseReason {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason
}
