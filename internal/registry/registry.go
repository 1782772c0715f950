// Package registry knows who is connected: handshaked peers by nick, and a read-mostly
// snapshot of all of them for broadcasts.
package registry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
)

// Result of a registration attempt.
type Result uint8

// Registration results.
const (
	Registered Result = iota // the peer now owns its nick
	Duplicate                // a live peer owns the nick
	Checking                 // the nick's owner is being checked for another newcomer
	Proven                   // the nick's owner proved alive less than CheckCooldown ago
	Full                     // the registry holds MaxPeers peers
	Gone                     // the newcomer was closed before it could be registered
	// Nick authentication (JMP-0005, docs/protocol.md §5.6):
	Displaced     // the verified newcomer took the nick from its live owner (legacy, or verified with the same key), returned
	Conflict      // the nick's live owner is verified with another key
	VerifiedOwner // a legacy newcomer claims the nick of a live verified owner: never displaced, never checked
)

// CheckCooldown is how long after a nick's owner proved alive a new claim on the nick is
// refused without checking the owner again. With at most one check in flight per nick,
// an owner answers at most 3 checks a minute however many claims arrive: the cap a
// client has on !orderbook requests (docs/protocol-choices.md, "Duplicate nicks").
const CheckCooldown = 20 * time.Second

// check is the state of the owner checks of one registered peer.
type check struct {
	running    bool      // a check is in flight
	provenTill time.Time // the owner proved alive; claims before this are refused unchecked
}

// Registry maps nicks to handshaked peers.
type Registry struct {
	mu     sync.RWMutex
	byNick map[string]*peer.Peer // guarded by mu
	all    []*peer.Peer          // every registered peer, in no particular order; guarded by mu
	index  map[*peer.Peer]int    // position of each peer in all; guarded by mu
	// checks holds the owner-check state of registered peers that were checked: an
	// entry is made only for a registered owner (BeginCheck) and dropped when it leaves
	// (Remove), so it never outgrows the registry, whatever newcomers claim.
	checks   map[*peer.Peer]*check // guarded by mu
	makers   int                   // guarded by mu
	verified int                   // registered peers with a VerifiedKey; guarded by mu
	max      atomic.Int64
	now      func() time.Time // the clock of the cooldown (a test may replace it)

	// snap is an immutable copy of all, made lazily at the first broadcast after a
	// change (a copy, not a sort: joins and leaves must stay cheap under churn); nil
	// means stale.
	snap atomic.Pointer[[]*peer.Peer]
}

// New returns an empty registry that admits at most max peers.
func New(max int) *Registry {
	r := &Registry{byNick: map[string]*peer.Peer{}, index: map[*peer.Peer]int{},
		checks: map[*peer.Peer]*check{}, now: time.Now}
	r.max.Store(int64(max))
	return r
}

// SetMax changes the capacity (existing peers stay).
func (r *Registry) SetMax(max int) { r.max.Store(int64(max)) }

// Max returns the capacity.
func (r *Registry) Max() int { return int(r.max.Load()) }

// Register adds p under p.Nick. On success welcome is queued to p before p becomes
// visible to any other sender, so it is the first line p receives. On Duplicate the
// current owner is returned.
func (r *Registry) Register(p *peer.Peer, welcome []byte) (Result, *peer.Peer) {
	return r.RegisterThen(p, welcome, nil)
}

// RegisterThen is Register with admitted, when not nil, called once every check has
// passed and before welcome is queued: the caller's admission bookkeeping (counts of
// connections still handshaking, accepted totals) is then complete before the peer can
// see its answer. admitted runs under the registry's lock and must not call back into
// the registry. It has run whenever the result is Registered, and may have run when it
// is Gone (p closed while being registered).
func (r *Registry) RegisterThen(p *peer.Peer, welcome []byte, admitted func()) (Result, *peer.Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var displaced *peer.Peer
	if owner, ok := r.byNick[p.Nick]; ok {
		switch {
		case p.VerifiedKey != "" && (owner.VerifiedKey == "" || owner.VerifiedKey == p.VerifiedKey):
			displaced = owner // taken over below, once the newcomer is sure to be registered
		case p.VerifiedKey != "":
			return Conflict, owner
		case owner.VerifiedKey != "":
			return VerifiedOwner, owner
		default: // a legacy claim on a legacy owner
			if c := r.checks[owner]; c != nil {
				if c.running {
					return Checking, owner
				}
				if r.now().Before(c.provenTill) {
					return Proven, owner
				}
			}
			return Duplicate, owner
		}
	}
	if displaced == nil && int64(len(r.byNick)) >= r.max.Load() {
		return Full, nil
	}
	if p.Closed() {
		return Gone, nil
	}
	if admitted != nil {
		admitted()
	}
	if !p.Send(welcome) { // closed just now, after admitted ran
		return Gone, nil
	}
	if displaced != nil {
		r.removeLocked(displaced)
	}
	r.byNick[p.Nick] = p
	r.index[p] = len(r.all)
	r.all = append(r.all, p)
	if p.Maker() {
		r.makers++
	}
	if p.VerifiedKey != "" {
		r.verified++
	}
	r.snap.Store(nil)
	if displaced != nil {
		return Displaced, displaced
	}
	return Registered, nil
}

// BeginCheck marks owner's nick as being checked for a newcomer. It returns false, and
// the caller must not check, if the owner is no longer registered, a check of it is
// already in flight, or it proved alive less than CheckCooldown ago: so at most one check
// per nick is ever in flight, and none starts within CheckCooldown of the last success.
// A true return must be followed by EndCheck.
func (r *Registry) BeginCheck(owner *peer.Peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byNick[owner.Nick] != owner {
		return false
	}
	c := r.checks[owner]
	if c == nil {
		c = &check{}
		r.checks[owner] = c
	} else if c.running || r.now().Before(c.provenTill) {
		return false
	}
	c.running = true
	return true
}

// EndCheck ends the check BeginCheck started. alive reports whether the owner proved
// alive: if it did and is still registered, claims on its nick are refused unchecked
// (Proven) for CheckCooldown.
func (r *Registry) EndCheck(owner *peer.Peer, alive bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.checks[owner] // nil once the owner has left
	if c == nil {
		return
	}
	if !alive {
		delete(r.checks, owner)
		return
	}
	c.running = false
	c.provenTill = r.now().Add(CheckCooldown)
}

// Remove unregisters p if it is the current owner of its nick, and reports whether it was.
func (r *Registry) Remove(p *peer.Peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byNick[p.Nick] != p {
		return false
	}
	r.removeLocked(p)
	return true
}

// removeLocked unregisters p, the current owner of its nick.
func (r *Registry) removeLocked(p *peer.Peer) {
	delete(r.byNick, p.Nick)
	delete(r.checks, p)
	i := r.index[p]
	last := len(r.all) - 1
	r.all[i] = r.all[last]
	r.index[r.all[i]] = i
	r.all[last] = nil
	r.all = r.all[:last]
	delete(r.index, p)
	if p.Maker() {
		r.makers--
	}
	if p.VerifiedKey != "" {
		r.verified--
	}
	r.snap.Store(nil)
}

// Lookup returns the peer owning nick.
func (r *Registry) Lookup(nick string) *peer.Peer {
	r.mu.RLock()
	p := r.byNick[nick]
	r.mu.RUnlock()
	return p
}

// Snapshot returns every registered peer, in no particular order. The slice is shared
// and must not be modified; it stays valid (if stale) after later changes.
func (r *Registry) Snapshot() []*peer.Peer {
	if s := r.snap.Load(); s != nil {
		return *s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.snap.Load(); s != nil {
		return *s
	}
	s := append([]*peer.Peer(nil), r.all...)
	r.snap.Store(&s)
	return s
}

// Verified returns the number of registered peers that proved their nick (JMP-0005)
// and, taken at the same moment, the number of all registered peers.
func (r *Registry) Verified() (verified, total int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.verified, len(r.byNick)
}

// Counts returns the number of registered peers, makers and takers.
func (r *Registry) Counts() (total, makers, takers int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byNick), r.makers, len(r.byNick) - r.makers
}
