// The handshake pool: the connections that have not finished their handshake, and how
// a flood of silent ones is kept from locking everybody else out (docs/protocol-choices.md,
// "Abuse limits"). A connection must send its first byte within first_byte_timeout and
// its whole handshake within handshake_timeout. When the pool is full, a newcomer is not
// refused: the oldest connection that has not sent a byte yet is closed to make room
// (pending_evicted) — or one that has not answered its nick-authentication challenge for
// longer than that one has been silent —, or, when every connection has sent something, the oldest whose
// handshake line is still incomplete, and only when every one is being answered the
// oldest of all (both too_many_pending_handshakes). An honest client sends its
// handshake as soon as it connects, so it would take max_pending_handshakes newer
// connections arriving in the moment it needs to be evicted; a flood costs the flooder
// its oldest connections instead of costing everybody their joins.

package server

import (
	"container/list"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
)

// pendingConn is one connection in the handshake pool.
type pendingConn struct {
	p     *peer.Peer
	elem  *list.Element // in pendingPool.order; nil once removed or evicted
	heard atomic.Bool   // a byte of the client's own arrived (tor's PROXY header aside)
	// read: the whole handshake line arrived; the connection is being answered (in
	// microseconds, or a nick check's wait). Evicted last: one just being registered
	// would otherwise be closed after its 795.
	read atomic.Bool
	// since is when the connection joined the pool (set by add): a silent connection
	// has owed its first byte since then.
	since time.Time
	// proofSince (unix nanoseconds; 0 = not waiting) is when the directory sent its nick-
	// authentication challenge: the client owes its proof since then.
	proofSince atomic.Int64
}

// pendingPool is the handshake pool, oldest first.
type pendingPool struct {
	mu    sync.Mutex
	order list.List // of *pendingConn, in arrival order
	n     atomic.Int64
}

// Len is the number of connections in the pool.
func (pp *pendingPool) Len() int { return int(pp.n.Load()) }

// Silent is the number of connections in the pool that have not sent a byte.
func (pp *pendingPool) Silent() int {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	n := 0
	for e := pp.order.Front(); e != nil; e = e.Next() {
		if !e.Value.(*pendingConn).heard.Load() {
			n++
		}
	}
	return n
}

// add puts pc in the pool. When the pool already holds max connections, it first takes
// out the connection that has owed the directory its next bytes the longest — the
// oldest silent one, or one that has not answered its nick-authentication challenge for
// longer — or else the oldest whose handshake line is incomplete, or else the oldest,
// and returns it with the reason it is to be closed for; the caller closes it (outside
// the lock).
//
// A connection waiting for its proof has sent its whole handshake line, so without the
// comparison it would be evicted last, and a pool full of clients that never answer
// their challenge would make each newcomer evict a connection younger than all of them,
// often an honest one whose first bytes are still on their way (the authflood scenario
// of jm-directory-bench).
func (pp *pendingPool) add(pc *pendingConn, max int) (victim *pendingConn, why reason.Close) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pc.since.IsZero() {
		pc.since = time.Now()
	}
	if pp.order.Len() >= max && pp.order.Len() > 0 {
		var partial, silent, waiting *pendingConn
		var waitingSince int64
		for e := pp.order.Front(); e != nil; e = e.Next() {
			c := e.Value.(*pendingConn)
			if !c.heard.Load() {
				if silent == nil {
					silent = c
				}
				continue
			}
			if ps := c.proofSince.Load(); ps != 0 && (waiting == nil || ps < waitingSince) {
				waiting, waitingSince = c, ps
			}
			if partial == nil && !c.read.Load() {
				partial = c
			}
		}
		switch {
		case waiting != nil && (silent == nil || waitingSince < silent.since.UnixNano()):
			victim, why = waiting, reason.ClosePendingEvicted
		case silent != nil:
			victim, why = silent, reason.ClosePendingEvicted
		case partial != nil:
			victim, why = partial, reason.ClosePendingCap
		default:
			victim, why = pp.order.Front().Value.(*pendingConn), reason.ClosePendingCap
		}
		pp.removeLocked(victim)
	}
	pc.elem = pp.order.PushBack(pc)
	pp.n.Store(int64(pp.order.Len()))
	return victim, why
}

// remove takes pc out of the pool; it does nothing when pc was already taken out.
func (pp *pendingPool) remove(pc *pendingConn) {
	pp.mu.Lock()
	pp.removeLocked(pc)
	pp.mu.Unlock()
}

func (pp *pendingPool) removeLocked(pc *pendingConn) {
	if pc.elem == nil {
		return
	}
	pp.order.Remove(pc.elem)
	pc.elem = nil
	pp.n.Store(int64(pp.order.Len()))
}

// firstByteReader reads a handshaking connection for its LineReader. Until the client's
// first byte, the connection's read deadline is the first-byte deadline; that byte
// moves it out to the handshake deadline. A connection still silent at its deadline is
// closed as silent_connection. Only the Accept goroutine reads through it, and the
// handshake swaps it for the bare connection once it succeeds.
type firstByteReader struct {
	conn      net.Conn
	pc        *pendingConn
	handshake time.Time // the deadline of the whole handshake
}

func (r *firstByteReader) Read(b []byte) (int, error) {
	n, err := r.conn.Read(b)
	if r.pc.heard.Load() {
		return n, err
	}
	if n > 0 {
		r.pc.heard.Store(true)
		_ = r.conn.SetReadDeadline(r.handshake)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		r.pc.p.Close(reason.CloseSilent)
	}
	return n, err
}

// restart begins the wait for the client's first byte again, after tor's PROXY header:
// a byte of the client's already buffered counts (buffered > 0).
func (r *firstByteReader) restart(buffered int, firstByte time.Duration) {
	if buffered > 0 {
		r.pc.heard.Store(true)
		_ = r.conn.SetReadDeadline(r.handshake)
		return
	}
	r.pc.heard.Store(false)
	_ = r.conn.SetReadDeadline(earliest(time.Now().Add(firstByte), r.handshake))
}

// earliest returns the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// earlyCloses counts the connections closed before their handshake, by reason, for the
// summary logged at INFO at most once a period (Serve): under a flood an operator sees
// what is happening without a line per connection, and no line at all while nothing is.
type earlyCloses struct {
	mu    sync.Mutex
	count [reason.NumCloses]int
}

func (e *earlyCloses) add(why reason.Close) {
	if why >= reason.NumCloses {
		return
	}
	e.mu.Lock()
	e.count[why]++
	e.mu.Unlock()
}

// take returns the counts since the last take as log attributes (reason label = count),
// and their total; nil and 0 when there were none.
func (e *earlyCloses) take() (attrs []any, total int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for r, n := range e.count {
		if n > 0 {
			attrs = append(attrs, reason.Close(r).String(), n)
			total += n
			e.count[r] = 0
		}
	}
	return attrs, total
}

// summaryEvery is how often the summary of early closes may be logged.
const summaryEvery = time.Minute

// logEarlyCloses logs, every period in which there were any, one INFO line counting the
// connections closed before their handshake by reason.
func (s *Server) logEarlyCloses(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if attrs, total := s.early.take(); total > 0 {
				s.log.Info("connections closed before their handshake",
					append([]any{"total", total, "period", every}, attrs...)...)
			}
		}
	}
}
