package peer

// The send side of a peer: its outbound queue, everything that drains it, and the
// vectored write. Start here to check the concurrency; the Flusher's shards are in
// flusher.go, the queue's fields in Peer (peer.go).
//
// Who writes to the socket:
//
//	drainer           runs on                     on a full socket       entered by
//	flusher shard     a Flusher goroutine         hands off, never waits Send → startWriter → Flusher.add
//	helper            a broadcaster's read loop   hands off, never waits Flusher.Help → flush
//	writer goroutine  its own, started on demand  waits, WriteTimeout    Send without flusher or socket;
//	                                              per 64 KiB             a hand-off from flush or SendUrgent
//	urgent            the sender's goroutine      leaves the rest        SendUrgent
//	                                              to a drainer
//	handshake         the Accept goroutine        waits, WriteTimeout    WriteNow, before the peer is shared
//
// States of an open peer, (writer, inIO), both guarded by p.mu. writer: the queue has a
// drainer (on a shard's ready list, claimed by a helper, or a writer goroutine), running
// or about to run. inIO: one goroutine is writing to the socket (that drainer, or
// SendUrgent's caller).
//
//	(F,F) idle           nobody drains or writes; the queue is empty
//	(T,F) assigned       a drainer will take the queue (any length)
//	(T,T) writing        the drainer writes a batch it took, or SendUrgent writes while
//	                     the assigned drainer has not yet taken the queue
//	(F,T) urgent         SendUrgent writes; no drainer
//	closed               terminal: queue dropped, writer and inIO no longer matter
//
// Transitions (each under p.mu; the write itself runs with no lock held):
//
//	Send           (F,F) → (T,F), startWriter          other states: append only; over cap → Close
//	SendUrgent     (w,F) → (w,T), takes queue+line      (·,T), closed or over cap → Send
//	  after write  (w,T) → (w,F); rest back in front;   non-empty queue and !w → (T,F):
//	                                                    go writeLoop if the socket was full, else startWriter
//	takeBatch      (T,F), queue non-empty → (T,T)       empty, (T,T) or closed → writer=false, drainer exits
//	release        (T,T) → (T,F)                        after each batch (writeLoop, flush)
//	flush, EAGAIN  (T,T) → (T,F); rest back in front;   hand-off: go writeLoop now owns writer
//	flush, rounds  (T,F) stays                          flushRounds batches done: back on the ready list
//	flush, error   (T,T) → (F,F) → Close(WriteError)
//	writeLoop, err (T,T) → (T,F) → Close(WriteTimeout on deadline, else WriteError)
//	Close          any → closed                         conn closed: a write in progress fails, the next
//	                                                    takeBatch ends the drainer
//
// Invariants: at most one goroutine writes to the socket (inIO is set only by whoever
// finds it false under p.mu); at most one drainer (writer is set only by whoever finds it
// false, and cleared only by the drainer: takeBatch, or flush on a write error); lines
// reach the socket in queue order (a partial write's rest goes back in front); an open
// peer with queued lines has writer or inIO set, so someone will write them (except
// between a flush's write error and its Close).
//
// Goroutines: a Flusher's shard goroutines and the writer goroutines of its peers are
// started on demand, end when their work is done or their peer is closed, and are counted
// by the Flusher: Flusher.Close waits for all of them. (A peer without a Flusher, in
// tests, starts uncounted writer goroutines.)
//
// Lock order on the send path: registry.mu → peer.mu → flushShard.mu. The registry
// sends the welcome under registry.mu; Send takes p.mu, releases it, then may take a
// shard's mu (Flusher.add) or close the peer. peer.mu and flushShard.mu are never held
// together, and no lock is held during I/O or while a shard waits for its round's helpers.

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// startWriter has the queue drained: by the flusher when there is one and the connection
// is a socket, else by a writer goroutine. The caller has just set p.writer.
func (p *Peer) startWriter() {
	if p.fl != nil && p.raw != nil {
		p.fl.add(p)
		return
	}
	p.goWriteLoop()
}

// goWriteLoop starts a writer goroutine. A peer with a Flusher has it counted there, so
// Flusher.Close waits for it.
func (p *Peer) goWriteLoop() {
	if p.fl != nil {
		p.fl.wg.Add(1)
	}
	go p.writeLoop()
}

// Send queues one encoded line (terminator included) that someone waits for. It never
// blocks. It returns false when the line was not queued: the peer is closed, the line is
// longer than the peer accepts (Refuses: counted as reason.DropTooLongForRecipient when
// it is over wire.MaxLine for a peer that does not speak long lines, else
// reason.DropOversizeOut), or the
// peer is cut as a slow consumer — its queue would overflow (reason.CloseQueueFull), or
// the server's outbound bytes are over their bound and this peer already holds more
// than LagBytes (reason.CloseOutboundFull).
func (p *Peer) Send(line []byte) bool { return p.enqueue(line, false) }

// Broadcast queues a line every peer gets (a relayed pubmsg). A reader that lags — more
// than LagBytes queued, or LagBytes/8 while the server's outbound bytes are over their
// bound — does not get it: the line is dropped for this peer and counted
// (reason.DropLagging), and the peer stays connected. A peer with an empty queue always
// gets it. It returns whether the line was queued.
func (p *Peer) Broadcast(line []byte) bool { return p.enqueue(line, true) }

// enqueue is Send (droppable false) and Broadcast (droppable true).
func (p *Peer) enqueue(line []byte, droppable bool) bool {
	// The one check every line queued to a peer passes: nothing over wire.MaxLine ever
	// reaches a reference client.
	if n := wire.ContentLen(line); n > wire.MaxLine {
		if why := p.Refuses(n); why != reason.DropNone {
			p.ctr.Drop(why)
			return false
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	// The server's total is looked at only for a peer that already lags a little: a
	// reader that keeps up costs no load of a counter every core writes.
	if droppable && p.queued > 0 && p.lim.LagBytes > 0 {
		lag := p.lim.LagBytes
		if p.queued+len(line) > lag/8 && p.overBound() {
			lag /= 8
		}
		if p.queued+len(line) > lag {
			p.mu.Unlock()
			p.ctr.Drop(reason.DropLagging)
			return false
		}
	}
	switch {
	case p.queued+len(line) > p.lim.QueueBytes:
		p.mu.Unlock()
		p.Close(reason.CloseQueueFull)
		return false
	case !droppable && p.queued > p.lim.LagBytes && p.overBound():
		p.mu.Unlock()
		p.Close(reason.CloseOutboundFull)
		return false
	}
	p.queue = append(p.queue, line)
	p.accountLocked(len(line))
	start := !p.writer && !p.inIO // whoever is writing restarts the writer when done
	p.writer = p.writer || start
	p.mu.Unlock()
	if start {
		p.startWriter()
	}
	return true
}

// overBound reports whether the bytes queued to all peers are over their bound.
func (p *Peer) overBound() bool { return p.lim.Total != nil && p.lim.Total.Over() }

// accountLocked adds n (negative: written or dropped) to the bytes queued for p, and
// passes the change on to the server's total in steps of at least reportStep: one
// atomic add per line on a counter every core writes would cost a broadcast to a
// thousand peers a fifth of its throughput. The caller holds p.mu.
func (p *Peer) accountLocked(n int) {
	p.queued += n
	if p.lim.Total == nil {
		return
	}
	p.unreported += n
	if p.unreported >= reportStep || p.unreported <= -reportStep {
		p.lim.Total.add(p.unreported)
		p.unreported = 0
	}
}

// dropQueueLocked forgets everything queued for a closed peer, in the server's total
// too. The caller holds p.mu.
func (p *Peer) dropQueueLocked() {
	if p.lim.Total != nil {
		p.lim.Total.add(p.unreported - p.queued)
	}
	p.queued, p.unreported = 0, 0
	p.queue, p.spare = nil, nil
}

// reportStep is the most a peer's queued bytes may differ from what the server's total
// holds for it (see accountLocked).
const reportStep = 16 << 10

// SendUrgent is Send for a line someone is waiting for (a privmsg, its location
// peerlist, a ping). Unless a write is in progress, the caller writes what is queued and
// the line itself at once, from its own goroutine and without blocking: the line does
// not wait for a writer goroutine to be scheduled, which, behind a broadcast that woke a
// thousand writers, can take milliseconds. Whatever the socket does not take is left,
// in order, to a writer goroutine. Broadcasts use Send: their writer batches many lines
// per write, where one write per line would cost a broadcast its throughput.
func (p *Peer) SendUrgent(line []byte) bool {
	if p.raw == nil || wire.ContentLen(line) > wire.MaxLine { // Send checks and counts long lines
		return p.Send(line)
	}
	p.mu.Lock()
	if p.closed || p.inIO || p.queued+len(line) > p.lim.QueueBytes || (p.queued > p.lim.LagBytes && p.overBound()) {
		p.mu.Unlock()
		return p.Send(line)
	}
	batch := append(p.queue, line)
	p.queue, p.spare = p.spare[:0], nil
	p.accountLocked(len(line))
	p.inIO = true
	p.mu.Unlock()

	iov := iovPool.Get().(*[]syscall.Iovec)
	written, rest, err := p.tryWritev(batch, iov)
	iovPool.Put(iov)
	if err != nil {
		p.Close(reason.CloseWriteError)
		return false
	}
	p.mu.Lock()
	p.inIO = false
	if p.closed {
		p.mu.Unlock()
		return true
	}
	p.accountLocked(-written)
	if len(rest) > 0 { // put the unwritten lines back in front of anything queued meanwhile
		p.queue = append(rest, p.queue...)
	}
	start := len(p.queue) > 0 && !p.writer
	p.writer = p.writer || start
	p.mu.Unlock()
	switch {
	case start && len(rest) > 0:
		p.goWriteLoop() // the socket is full: wait for it under the write deadline
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
	if p.fl != nil {
		defer p.fl.wg.Done()
	}
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
			if errors.Is(err, os.ErrDeadlineExceeded) { // a slow consumer
				p.Close(reason.CloseWriteTimeout)
			} else {
				p.Close(reason.CloseWriteError)
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
			p.accountLocked(-size)
		}
		p.mu.Unlock()
		batch = batch[n:]
	}
	return nil
}

// ErrLineRefused is WriteNow's error for a line longer than the peer accepts (Refuses).
var ErrLineRefused = errors.New("peer: line too long for this peer")

// WriteNow writes one line directly, bypassing the queue. It is only for the handshake
// phase, before any other goroutine can send to the peer. A line the peer does not
// accept (Refuses) is not written: it is counted and ErrLineRefused returned.
func (p *Peer) WriteNow(line []byte) error { return p.WriteNowWithin(line, p.lim.WriteTimeout) }

// WriteNowWithin is WriteNow with the write bounded by d instead of the write timeout
// (the nick-authentication round bounds the directory's writes by its own timeout). The
// deadline is cleared afterwards: the flusher's and SendUrgent's direct writes, which a
// peer that goes on to be registered gets, must not meet a stale one.
func (p *Peer) WriteNowWithin(line []byte, d time.Duration) error {
	if why := p.Refuses(wire.ContentLen(line)); why != reason.DropNone {
		p.ctr.Drop(why)
		return ErrLineRefused
	}
	_ = p.conn.SetWriteDeadline(time.Now().Add(d))
	_, err := p.conn.Write(line)
	_ = p.conn.SetWriteDeadline(time.Time{})
	return err
}

// iovPool holds helpers' iovec buffers.
var iovPool = sync.Pool{New: func() any { return new([]syscall.Iovec) }}

// flushRounds bounds how many times in a row the flusher writes one peer whose queue
// keeps refilling, so one busy peer cannot hold up the others.
const flushRounds = 4

// flush writes p's queue without blocking. It returns true when lines are left that the
// flusher should come back for. If the socket does not take everything, the rest goes
// to a blocking writer goroutine.
func (p *Peer) flush(iov *[]syscall.Iovec) (again bool) {
	for range flushRounds {
		batch := p.takeBatch()
		if batch == nil {
			return false
		}
		written, rest, err := p.tryWritev(batch, iov)
		if err != nil {
			p.mu.Lock()
			p.inIO = false
			p.writer = false
			p.mu.Unlock()
			p.Close(reason.CloseWriteError)
			return false
		}
		p.mu.Lock()
		if !p.closed {
			p.accountLocked(-written)
		}
		if len(rest) > 0 {
			// The socket is full: keep the order and let a writer goroutine wait for it,
			// under the write deadline. p.writer stays set: that goroutine owns the queue.
			p.queue = append(rest, p.queue...)
			p.releaseBatchLocked(batch)
			p.mu.Unlock()
			p.fl.handoffs.Add(1)
			p.goWriteLoop()
			return false
		}
		p.releaseBatchLocked(batch)
		p.mu.Unlock()
	}
	return true
}

// maxIovec is the most buffers one writev takes (Linux IOV_MAX).
const maxIovec = 1024

// tryWritev writes lines in order, in vectored writes of up to writeChunk bytes, as far
// as the socket takes them without blocking. It returns the bytes written and the
// unwritten remainder (a fresh slice; its first element may be the tail of a line).
//
// Written by hand on syscall.Syscall(SYS_WRITEV): net.Buffers.WriteTo blocks until
// everything is written, and golang.org/x/sys/unix.Writev allocates its iovecs on every
// call; this reuses the flusher's.
func (p *Peer) tryWritev(lines [][]byte, iov *[]syscall.Iovec) (written int, rest [][]byte, err error) {
	for len(lines) > 0 {
		v := (*iov)[:0]
		size, used := 0, 0
		for _, l := range lines {
			if len(v) == maxIovec || (len(v) > 0 && size+len(l) > writeChunk) {
				break
			}
			used++
			if len(l) == 0 {
				continue
			}
			vec := syscall.Iovec{Base: &l[0]}
			vec.SetLen(len(l))
			v = append(v, vec)
			size += len(l)
		}
		*iov = v
		n, werr := p.writev(v)
		clear(v) // do not keep lines alive through the flusher's iovecs
		written += n
		if werr != nil {
			return written, nil, werr
		}
		if n < size {
			return written, remainder(lines, n), nil
		}
		lines = lines[used:]
	}
	return written, nil, nil
}

// remainder returns lines without their first n bytes, as a new slice.
func remainder(lines [][]byte, n int) [][]byte {
	i := 0
	for i < len(lines) && n >= len(lines[i]) {
		n -= len(lines[i])
		i++
	}
	rest := make([][]byte, 0, len(lines)-i)
	if i < len(lines) {
		rest = append(rest, lines[i][n:])
		rest = append(rest, lines[i+1:]...)
	}
	return rest
}

// writev is one non-blocking vectored write; a full socket buffer returns 0, nil.
func (p *Peer) writev(v []syscall.Iovec) (int, error) {
	if len(v) == 0 {
		return 0, nil
	}
	var n int
	var werr error
	err := p.raw.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
			switch e {
			case 0:
				n = int(r)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
			default:
				werr = e
			}
			return true // never wait for writability here
		}
	})
	if werr == nil {
		werr = err
	}
	return n, werr
}
