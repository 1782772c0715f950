// Package router moves messages between registered peers (docs/protocol.md §6): pubmsg
// fan-out, privmsg forwarding with the sender's location, GETPEERLIST replies and ";D"
// notices. Message bodies are relayed opaquely: the "line" string token is copied byte
// for byte and no command is ever whitelisted.
//
// Broadcasts encode once and hand the same immutable []byte to every recipient's
// non-blocking queue; no lock is held while doing so.
package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Self is the directory's own identity as shown to peers.
type Self struct {
	Nick     string
	Location string // own "onion:port" / "host:port"; "" while unknown
	// Precomputed peerlist entries; nil while Location is unknown.
	entryPlain, entryFeatures []byte
	probe                     []byte // the legacy liveness probe, see ProbeLine
}

// directoryFeatures are the features the directory advertises, sorted.
var directoryFeatures = []string{"peerlist_features", "ping"}

// Router relays between the peers of a registry.
type Router struct {
	reg  *registry.Registry
	ctr  *stats.Counters
	self atomic.Pointer[Self]
	dep  departures
	help func()          // back-pressure after a fan-out (SetBackPressure); nil for none
	book *orderbook.Book // offers seen (SetOrderbook); nil for none

	peerlists atomic.Pointer[peerlistCache] // the GETPEERLIST answer for the current makers
	encoded   atomic.Int64                  // GETPEERLIST answers encoded (PeerlistEncodings)
}

// PeerlistEncodings is how many times a GETPEERLIST answer was encoded (once per set of
// makers and shape, however many peers asked).
func (r *Router) PeerlistEncodings() int64 { return r.encoded.Load() }

// New returns a router for reg, speaking as the directory nick at location ("" if unknown).
func New(reg *registry.Registry, ctr *stats.Counters, nick, location string) *Router {
	r := &Router{reg: reg, ctr: ctr}
	r.SetSelf(nick, location)
	return r
}

// SetSelf changes the directory's advertised identity (e.g. once its onion is published).
func (r *Router) SetSelf(nick, location string) {
	s := &Self{Nick: nick, Location: location,
		probe: wire.AppendEnvelope(nil, wire.TypePubmsg, nick+"!"+wire.Public+"!orderbook")}
	if location != "" {
		s.entryPlain = wire.AppendEntry(nil, nick, location, false, nil)
		s.entryFeatures = wire.AppendEntry(nil, nick, location, false, directoryFeatures)
	}
	r.self.Store(s)
}

// Self returns the directory's identity.
func (r *Router) Self() *Self { return r.self.Load() }

// Pubmsg fans a pubmsg from p out to every other registered peer. raw is the "line"
// token as received; the caller has checked that it reads "<p.Nick>!PUBLIC!…".
// A recipient that lags does not get it (peer.Broadcast: dropped and counted), nor does
// one that does not speak long lines when the line is over wire.MaxLine (dropped and
// counted per recipient, reason.DropTooLongForRecipient). A line over wire.MaxLineNG
// goes to nobody (reason.DropOversizeOut, counted once).
// It returns the number of recipients that queued it.
func (r *Router) Pubmsg(p *peer.Peer, raw []byte) int {
	line := wire.AppendRelay(make([]byte, 0, len(raw)+24), wire.TypePubmsg, raw)
	if wire.ContentLen(line) > wire.MaxLineNG {
		r.ctr.Drop(reason.DropOversizeOut)
		return 0
	}
	n := 0
	for _, q := range r.reg.Snapshot() {
		if q != p && q.Broadcast(line) {
			n++
		}
	}
	r.ctr.Sent(stats.MsgPubmsg, n, len(line))
	return n
}

// Privmsg forwards a privmsg from p to the peer owning nick to, followed by a peerlist
// telling the recipient where the sender can be reached. raw is the "line" token as
// received; the caller has checked the sender field. A line the recipient does not
// accept (peer.Refuses: over wire.MaxLine to a peer that does not speak long lines) is
// not sent, nor is the peerlist; the reason is returned for the caller to count.
func (r *Router) Privmsg(p *peer.Peer, to string, raw []byte) reason.Drop {
	self := r.Self()
	if to == self.Nick {
		return reason.DropToDirectory
	}
	q := r.reg.Lookup(to)
	if q == nil {
		return reason.DropUnknownRecipient
	}
	line := wire.AppendRelay(make([]byte, 0, len(raw)+24), wire.TypePrivmsg, raw)
	if d := q.Refuses(wire.ContentLen(line)); d != reason.DropNone {
		return d
	}
	if !q.SendUrgent(line) {
		return reason.DropRecipientGone
	}
	r.ctr.Sent(stats.MsgPrivmsg, 1, len(line))
	if pl := r.locationPeerlist(self, p, q); pl != nil && q.SendUrgent(pl) {
		r.ctr.Sent(stats.MsgPeerlist, 1, len(pl))
	}
	return reason.DropNone
}

// locationPeerlist is the 789 sent to recipient after a privmsg from sender: the sender's
// entry if it serves an onion, then the directory's own entry if known; ";F:" only for a
// recipient that advertised peerlist_features. Nil when there is nothing to say.
func (r *Router) locationPeerlist(self *Self, sender, recipient *peer.Peer) []byte {
	withF := recipient.Features.PeerlistFeatures
	var content []byte
	if sender.Maker() {
		if withF {
			content = append(content, sender.EntryFeatures...)
		} else {
			content = append(content, sender.EntryPlain...)
		}
	}
	if self.entryPlain != nil {
		if len(content) > 0 {
			content = append(content, ',')
		}
		if withF {
			content = append(content, self.entryFeatures...)
		} else {
			content = append(content, self.entryPlain...)
		}
	}
	if content == nil {
		return nil
	}
	return wire.AppendEnvelope(nil, wire.TypePeerlist, string(content))
}

// envelopeOverhead bounds the bytes an envelope adds around its line: {"type":789,"line":""}.
const envelopeOverhead = 32

// GetPeerlist answers a 791 from p: the directory's own entry (if known) and every maker,
// with ";F:" suffixes when p advertised peerlist_features, split over as many 789 lines
// as needed to keep each within wire.MaxLine. At least one line is always sent (possibly
// with an empty list). It returns the number of lines queued.
//
// The answer is encoded once per set of makers (and directory identity) and the same
// immutable lines are queued to every requester until the set changes: a thousand
// requests for a peerlist of 3 000 makers hold one copy of it, not a thousand.
func (r *Router) GetPeerlist(p *peer.Peer) int {
	lines := r.peerlistLines(p.Features.PeerlistFeatures)
	n := 0
	for _, l := range lines {
		if p.Send(l) {
			n++
			r.ctr.Sent(stats.MsgPeerlist, 1, len(l))
		}
	}
	return n
}

// PeerlistLines returns the encoded GETPEERLIST answer (shared, immutable lines), with
// ";F:" suffixes when withF is set.
func (r *Router) PeerlistLines(withF bool) [][]byte { return r.peerlistLines(withF) }

// peerlistCache is the GETPEERLIST answer for one list of makers (in registry order)
// and one directory identity, in both shapes, each encoded on first use.
type peerlistCache struct {
	self   *Self
	makers []*peer.Peer
	mu     sync.Mutex  // guards lines
	lines  [2][][]byte // [0] plain entries, [1] with ";F:"; nil until first asked for
}

// peerlistLines returns the shared GETPEERLIST lines for the current makers. Checking
// that the cache still holds costs one pass over the registry snapshot, no allocation.
func (r *Router) peerlistLines(withF bool) [][]byte {
	self := r.Self()
	snap := r.reg.Snapshot()
	c := r.peerlists.Load()
	if c == nil || c.self != self || !sameMakers(c.makers, snap) {
		c = &peerlistCache{self: self}
		for _, q := range snap {
			if q.Maker() {
				c.makers = append(c.makers, q)
			}
		}
		r.peerlists.Store(c)
	}
	i := 0
	if withF {
		i = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines[i] == nil {
		c.lines[i] = encodePeerlist(self, c.makers, withF)
		r.encoded.Add(1)
	}
	return c.lines[i]
}

// sameMakers reports whether the makers of snap are exactly makers, in order.
func sameMakers(makers, snap []*peer.Peer) bool {
	i := 0
	for _, q := range snap {
		if !q.Maker() {
			continue
		}
		if i == len(makers) || makers[i] != q {
			return false
		}
		i++
	}
	return i == len(makers)
}

// encodePeerlist encodes the GETPEERLIST answer: the directory's entry, then the
// makers', split into 789 lines within wire.MaxLine.
func encodePeerlist(self *Self, makers []*peer.Peer, withF bool) [][]byte {
	const limit = wire.MaxLine - envelopeOverhead
	var lines [][]byte
	content := make([]byte, 0, 1024)
	add := func(entry []byte) {
		if len(content) > 0 && len(content)+1+len(entry) > limit {
			lines = append(lines, wire.AppendEnvelope(nil, wire.TypePeerlist, string(content)))
			content = content[:0]
		}
		if len(content) > 0 {
			content = append(content, ',')
		}
		content = append(content, entry...)
	}
	if self.entryPlain != nil {
		if withF {
			add(self.entryFeatures)
		} else {
			add(self.entryPlain)
		}
	}
	for _, q := range makers {
		if withF {
			add(q.EntryFeatures)
		} else {
			add(q.EntryPlain)
		}
	}
	return append(lines, wire.AppendEnvelope(nil, wire.TypePeerlist, string(content)))
}

// burstWindow is how long departures are collected after one has been announced: a lone
// departure is announced at once, but when many peers leave together (a network cut, a
// mass disconnect) their notices share lines. Without that, N peers leaving at once
// would cost N×N queued lines.
const burstWindow = 20 * time.Millisecond

// departures batches ";D" notices during a burst.
type departures struct {
	mu      sync.Mutex
	pending [][]byte       // EntryLeft of peers that left while the window was open
	open    bool           // a departure was announced less than burstWindow ago
	timer   *time.Timer    // closes the open window (runs flushDepartures); nil when none is armed
	closed  bool           // Close was called: no timer is armed any more
	armed   sync.WaitGroup // an armed timer, from arming until its flushDepartures returns
}

// Left tells every registered peer that p has left: "nick;location;D", followed by the
// directory's own entry when known (the reference directory's shape). p must already be
// removed from the registry. A departure within burstWindow of the previous announcement
// is announced together with the others of the burst when the window closes (entries
// joined by ",", each line within wire.MaxLine); Left then returns 0.
func (r *Router) Left(p *peer.Peer) int {
	r.dep.mu.Lock()
	if r.dep.open {
		r.dep.pending = append(r.dep.pending, p.EntryLeft)
		r.dep.mu.Unlock()
		return 0
	}
	if !r.dep.closed {
		r.dep.open = true
		r.armLocked()
	}
	r.dep.mu.Unlock()
	return r.announceLeft([][]byte{p.EntryLeft})
}

// armLocked starts the timer that closes the departure window.
func (r *Router) armLocked() {
	r.dep.armed.Add(1)
	r.dep.timer = time.AfterFunc(burstWindow, r.flushDepartures)
}

// flushDepartures announces the departures collected during the window, and keeps the
// window open while departures keep coming.
func (r *Router) flushDepartures() {
	defer r.dep.armed.Done()
	r.dep.mu.Lock()
	batch := r.dep.pending
	r.dep.pending = nil
	r.dep.timer = nil
	if len(batch) == 0 || r.dep.closed {
		r.dep.open = false
	} else {
		r.armLocked()
	}
	r.dep.mu.Unlock()
	if len(batch) > 0 {
		r.announceLeft(batch)
	}
}

// Close stops the departure window's timer and waits for its callback if it is already
// running: after Close the router has no goroutine running or scheduled. Departures
// still waiting in an open window are not announced (Close is for shutdown, when every
// peer is closed); later departures are announced at once. Close is idempotent.
func (r *Router) Close() {
	r.dep.mu.Lock()
	r.dep.closed = true
	if r.dep.timer != nil && r.dep.timer.Stop() {
		r.dep.armed.Done() // its flushDepartures will not run
		r.dep.open, r.dep.pending = false, nil
	}
	r.dep.timer = nil
	r.dep.mu.Unlock()
	r.dep.armed.Wait()
}

// LeftExcept tells every registered peer but except that p has left, at once (no
// batching): for a peer displaced by its nick's verified owner (except), which holds
// the nick now and must not hear of its own departure. p must already be unregistered.
func (r *Router) LeftExcept(p, except *peer.Peer) int {
	return r.announceLeftExcept([][]byte{p.EntryLeft}, except)
}

// announceLeft sends the ";D" entries to every registered peer, as few lines as fit.
func (r *Router) announceLeft(entries [][]byte) int { return r.announceLeftExcept(entries, nil) }

// announceLeftExcept is announceLeft skipping the peer except (nil: none).
func (r *Router) announceLeftExcept(entries [][]byte, except *peer.Peer) int {
	self := r.Self()
	const limit = wire.MaxLine - envelopeOverhead
	var lines [][]byte
	var content []byte
	flush := func() {
		if self.entryPlain != nil {
			content = append(content, ',')
			content = append(content, self.entryPlain...)
		}
		lines = append(lines, wire.AppendEnvelope(nil, wire.TypePeerlist, string(content)))
		content = content[:0]
	}
	for _, e := range entries {
		if len(content) > 0 && len(content)+1+len(e)+1+len(self.entryPlain) > limit {
			flush()
		}
		if len(content) > 0 {
			content = append(content, ',')
		}
		content = append(content, e...)
	}
	flush()
	n := 0
	for _, line := range lines {
		sent := 0
		for _, q := range r.reg.Snapshot() {
			if q != except && q.Send(line) {
				sent++
			}
		}
		r.ctr.Sent(stats.MsgPeerlist, sent, len(line))
		n += sent
	}
	return n
}

// ProbeLine is the legacy liveness probe for makers that do not answer pings: a pubmsg
// "<directory nick>!PUBLIC!orderbook", to which a reference maker replies with privmsgs.
func (r *Router) ProbeLine() []byte { return r.Self().probe }

// PingLine is the 798 ping.
var PingLine = wire.AppendEnvelope(nil, wire.TypePing, "")

// Ping sends p a 798 ping and counts it. Only for peers that advertised "ping".
func (r *Router) Ping(p *peer.Peer) bool {
	if !p.SendUrgent(PingLine) {
		return false
	}
	r.ctr.Pings.Add(1)
	r.ctr.Sent(stats.MsgPing, 1, len(PingLine))
	return true
}

// Probe sends p the legacy orderbook probe (see ProbeLine) and counts it.
func (r *Router) Probe(p *peer.Peer) bool {
	line := r.ProbeLine()
	if !p.Send(line) {
		return false
	}
	r.ctr.Probes.Add(1)
	r.ctr.Sent(stats.MsgPubmsg, 1, len(line))
	return true
}
