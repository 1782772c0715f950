package peer

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// startWriter has the queue drained: by the flusher when there is one and the connection
// is a socket, else by a writer goroutine. The caller has just set p.writer.
func (p *Peer) startWriter() {
	if p.fl != nil && p.raw != nil {
		p.fl.add(p)
		return
	}
	go p.writeLoop()
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
			p.Close(stats.CloseWriteError)
			return false
		}
		p.mu.Lock()
		if !p.closed {
			p.queued -= written
		}
		if len(rest) > 0 {
			// The socket is full: keep the order and let a writer goroutine wait for it,
			// under the write deadline. p.writer stays set: that goroutine owns the queue.
			p.queue = append(rest, p.queue...)
			p.releaseBatchLocked(batch)
			p.mu.Unlock()
			handoffs.Add(1)
			go p.writeLoop()
			return false
		}
		p.releaseBatchLocked(batch)
		p.mu.Unlock()
	}
	return true
}

// handoffs counts peers the flusher handed to a writer goroutine (tests read it).
var handoffs atomic.Int64

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
