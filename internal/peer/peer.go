// Package peer is one client connection: identity fixed at the handshake, a bounded
// outbound queue drained by a shared Flusher (or, when the socket is full, an on-demand
// writer goroutine), and a single typed close reason.
//
// Enqueueing never blocks. A lagging reader first loses broadcasts (Broadcast drops and
// counts them, reason.DropLagging, once its queue is over LagBytes); a slow consumer is
// cut: with reason.CloseQueueFull when its queued bytes would exceed their cap (Send),
// with reason.CloseOutboundFull when the bytes queued to all peers together are over
// their bound and it lags most, with reason.CloseWriteTimeout when a write misses its
// deadline (the writer goroutine, writeLoop). One slow reader can never hold up a sender
// or a broadcast, and nothing accepted into a live peer's queue is dropped silently.
package peer

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Limits bound a peer's outbound side.
type Limits struct {
	QueueBytes   int           // cap on bytes waiting to be written; over it = reason.CloseQueueFull
	WriteTimeout time.Duration // deadline for each write of up to 64 KiB: no progress for this long = reason.CloseWriteTimeout
	// LagBytes: a broadcast to a peer with more than this queued is dropped and counted
	// (reason.DropLagging) instead of queued; 0 = never. Lines someone waits for
	// (privmsgs, peerlists, probes) are never dropped.
	LagBytes int
	// Total, when set, accounts this peer's queued bytes in the bound shared by every
	// peer of the server (see Outbound).
	Total *Outbound
}

// Outbound is the bound on the bytes queued to all peers together. Each queue counts the
// lines it holds, so a line shared by many queues (a broadcast, a cached peerlist) is
// counted once per queue: the figure bounds memory from above. A peer passes its changes
// on in steps of up to 16 KiB, so the total may lag the truth by that much per peer.
//
// The policy at the bound (Over): a broadcast is queued only to readers that keep up
// (less than LagBytes/8 queued), and any other line to a peer that already holds more
// than LagBytes cuts that peer (reason.CloseOutboundFull): the readers that lag most
// go first, and readers that keep up lose nothing. Lines to peers below LagBytes are
// still queued, so the bound is soft by at most LagBytes per peer.
type Outbound struct {
	bound atomic.Int64 // 0 = no bound; written only by SetBound
	over  atomic.Bool  // queued > bound, as of the last change passed on; written only when it flips
	_     [48]byte     // keeps bound and over, read on enqueues, off the line queued's adds invalidate
	// queued is the sum of what the peers have passed on (accountLocked).
	queued atomic.Int64
}

// SetBound sets the bound in bytes; 0 removes it.
func (o *Outbound) SetBound(n int) {
	o.bound.Store(int64(n))
	o.note(o.queued.Load())
}

// Queued is the bytes queued to all peers and not yet written.
func (o *Outbound) Queued() int64 { return o.queued.Load() }

// Over reports whether the queued bytes are over the bound.
func (o *Outbound) Over() bool { return o.over.Load() }

// add passes a change of some peer's queued bytes on.
func (o *Outbound) add(n int) { o.note(o.queued.Add(int64(n))) }

// note keeps over up to date with a new total, writing it only when it flips.
func (o *Outbound) note(total int64) {
	b := o.bound.Load()
	if over := b > 0 && total > b; o.over.Load() != over {
		o.over.Store(over)
	}
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
	// longLines: the peer is a joinmarket-ng client (SpeaksLongLines), so lines up to
	// wire.MaxLineNG may be queued to it; to anyone else at most wire.MaxLine.
	longLines bool

	// Peerlist entries, precomputed at SetHello.
	EntryPlain    []byte // "nick;location"
	EntryFeatures []byte // "nick;location;F:…" (= EntryPlain without true features)
	EntryLeft     []byte // "nick;location;D"
	// VerifiedKey is the public key (lower-case hex) the peer proved it holds by nick
	// authentication (JMP-0005), set before registration; "" for a legacy peer.
	VerifiedKey string

	// Liveness, written by the reader and the heartbeat.
	lastSeen    atomic.Int64 // unix nanoseconds of the last line received
	pingPending atomic.Int64 // unix nanoseconds a 798 was sent and not yet answered; 0 = none

	// The outbound queue: its states, drainers and lock order are in outq.go.
	mu         sync.Mutex // guards the fields below
	queue      [][]byte   // lines waiting for the writer
	spare      [][]byte   // recycled queue backing array
	queued     int        // bytes queued or being written, not yet on the wire
	unreported int        // change of queued not yet added to lim.Total (accountLocked)
	writer     bool       // the queue has a drainer: a writer goroutine or the flusher (running or about to run)
	inIO       bool       // a write to the socket is in progress (by the writer or SendUrgent)
	closed     bool
	reason     reason.Close
	probe      chan struct{} // closed when the next qualifying answer arrives (nick check)

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

// Conn returns the underlying connection.
func (p *Peer) Conn() net.Conn { return p.conn }

// SetHello fixes the peer's identity from its accepted handshake.
func (p *Peer) SetHello(h handshake.Hello) {
	p.Nick, p.Location, p.Features = h.Nick, h.Location, h.Features
	loc := h.Location.String()
	p.EntryPlain = wire.AppendEntry(nil, h.Nick, loc, false, nil)
	p.EntryFeatures = wire.AppendEntry(nil, h.Nick, loc, false, h.Features.True)
	p.EntryLeft = wire.AppendEntry(nil, h.Nick, loc, true, nil)
	p.longLines = SpeaksLongLines(h.Features)
}

// SpeaksLongLines reports whether a client whose handshake advertised f is a
// joinmarket-ng client, which sends each message as one line and reads lines of up to
// wire.MaxLineNG (65 536) bytes, where a reference client (joinmarket-clientserver, Jam)
// drops a directory that sends it one byte over wire.MaxLine (40 000).
//
// The signal is ping and peerlist_features both advertised (JSON true). Reference
// clients always send "features": {} (docs/protocol.md §3.6; every handshake in the
// reference-wire fixtures), so neither can be set by one, while every joinmarket-ng
// client sends both, whatever its role and whatever else it advertises (nick_auth and
// neutrino_compat depend on its settings). Requiring both, not either, keeps a client
// that merely borrows one of the names on the safe side. A wrong "no" costs an ng peer
// only its lines over 40 000 bytes; a wrong "yes" would get a reference client dropped
// by its directory, so the test errs towards "no".
func SpeaksLongLines(f handshake.Features) bool { return f.Ping && f.PeerlistFeatures }

// LongLines reports whether the peer speaks long lines (SpeaksLongLines of its
// handshake): lines up to wire.MaxLineNG may be sent to it.
func (p *Peer) LongLines() bool { return p.longLines }

// Refuses returns why a line of n content bytes (terminator excluded) may not be sent to
// p, or reason.DropNone if it may: reason.DropOversizeOut over wire.MaxLineNG, which
// nobody accepts, and reason.DropTooLongForRecipient over wire.MaxLine to a peer that
// does not speak long lines. Every queued line passes this check (enqueue); callers use
// it to learn the reason before sending.
func (p *Peer) Refuses(n int) reason.Drop {
	if n <= wire.MaxLine {
		return reason.DropNone
	}
	if n > wire.MaxLineNG {
		return reason.DropOversizeOut
	}
	if !p.longLines {
		return reason.DropTooLongForRecipient
	}
	return reason.DropNone
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

// Close cuts the connection with a reason. Only the first reason counts. Queued lines
// are discarded: the peer is gone.
func (p *Peer) Close(r reason.Close) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.reason = r
	p.dropQueueLocked()
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

// Reason returns the close reason (reason.CloseNone while open).
func (p *Peer) Reason() reason.Close {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason
}
