// Package orderbook keeps the live JoinMarket orderbook a directory sees: the offers
// makers announce in pubmsgs, and those they send the directory itself in answer to its
// own "!orderbook" probe (with a fidelity bond proof, "!tbond", when they have one).
// Withdrawn offers ("!cancel <oid>") and the offers of a maker that leaves are dropped.
//
// It is pure: it is handed message texts, connection ids and times, and never sends or
// relays anything. The router hands it a line only after the line has been relayed, so
// nothing here can change what is relayed.
//
// Memory is bounded: at most MaxOffersPerMaker offers and one bond per maker, and a maker
// is a registered connection, so the whole book holds at most max_peers × MaxOffersPerMaker
// offers, each with a fee of at most a few dozen bytes.
package orderbook

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxOffersPerMaker caps the offers kept per maker. A reference maker announces one or
// two; an offer with a new oid beyond the cap is skipped and counted (OverCap).
const MaxOffersPerMaker = 32

// Kind names what a malformed command claimed to be: the fixed label set of the
// malformed counter.
type Kind uint8

// The kinds of command the book parses.
const (
	KindOffer  Kind = iota // an offer command (reloffer … sw0absoffer)
	KindCancel             // !cancel <oid>
	KindBond               // !tbond <proof>
	NumKinds
)

var kindNames = [NumKinds]string{KindOffer: "offer", KindCancel: "cancel", KindBond: "tbond"}

// String is the kind's label.
func (k Kind) String() string { return kindNames[k] }

// Offer is one live offer of a maker.
type Offer struct {
	Counterparty string // the maker's nick
	Fields
	LastSeen time.Time // when the maker last announced or sent it
}

// Bond is a maker's fidelity bond as read from its last proof; nothing in it is verified.
type Bond struct {
	Counterparty string
	Proof
	LastSeen time.Time
}

// maker is what the book holds for one nick, from one connection.
type maker struct {
	conn   uint64  // the connection the entry came from (ids grow with each connection)
	offers []Offer // by oid; at most MaxOffersPerMaker
	bond   *Bond
}

// Book is the orderbook. It is safe for concurrent use.
type Book struct {
	mu     sync.Mutex        // guards makers and offers
	makers map[string]*maker // by nick
	offers int               // offers in all makers

	malformed [NumKinds]atomic.Uint64
	overCap   atomic.Uint64
}

// New returns an empty book.
func New() *Book { return &Book{makers: map[string]*maker{}} }

// Watches reports whether a pubmsg whose first command is cmd concerns the book (an
// offer or a cancel): the router calls Public only for those.
func Watches(cmd string) bool {
	_, ok := OfferType(cmd)
	return ok || cmd == "cancel"
}

// Public takes the text of a pubmsg from nick on connection conn, after "from!PUBLIC!":
// chained commands split on '!', each split on ' '. Offers are added or replaced,
// "cancel <oid>" withdraws one; other commands (a "tbond" among them: a bond proof is
// only ever sent privately) are ignored. The caller has checked that nick is the
// connection's registered nick.
func (b *Book) Public(nick string, conn uint64, body string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var m *maker
	for body != "" {
		var cmd string
		cmd, body, _ = strings.Cut(body, "!")
		name, _, _ := strings.Cut(cmd, " ")
		switch {
		case name == "cancel":
			oid, err := ParseCancel(cmd)
			if err != nil {
				b.malformed[KindCancel].Add(1)
				continue
			}
			if m == nil {
				if m = b.makerLocked(nick, conn, false); m == nil {
					continue
				}
			}
			b.removeLocked(nick, m, oid)
		case isOffer(name):
			if m == nil {
				if m = b.makerLocked(nick, conn, true); m == nil {
					return
				}
			}
			b.offerLocked(nick, m, cmd, now)
		}
	}
	b.dropIfEmptyLocked(nick, m)
}

// Private takes the text of a privmsg from nick on connection conn addressed to the
// directory itself, after "from!to!": a maker's answer to the directory's "!orderbook"
// probe, "<offer>!<offer>…[!tbond <proof>] <pubkey> <signature>". The last two
// space-separated tokens (the signature pair, not checked) are removed first, as the
// reference's ob-watcher does; then offers are added or replaced and a tbond replaces the
// maker's bond. A privmsg whose first command is not an offer is ignored.
func (b *Book) Private(nick string, conn uint64, body string, now time.Time) {
	body = strings.TrimPrefix(body, "!")
	first, _, _ := strings.Cut(body, " ")
	first, _, _ = strings.Cut(first, "!")
	if !isOffer(first) {
		return
	}
	i := strings.LastIndexByte(body, ' ')
	j := -1
	if i > 0 {
		j = strings.LastIndexByte(body[:i], ' ')
	}
	if j < 0 {
		b.malformed[KindOffer].Add(1) // no signature pair
		return
	}
	body = body[:j]
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.makerLocked(nick, conn, true)
	if m == nil {
		return
	}
	for body != "" {
		var cmd string
		cmd, body, _ = strings.Cut(body, "!")
		name, arg, _ := strings.Cut(cmd, " ")
		switch {
		case name == "tbond":
			arg, _, _ = strings.Cut(arg, " ")
			p, err := ParseProof(arg)
			if err != nil {
				b.malformed[KindBond].Add(1)
				continue
			}
			if m.bond == nil {
				m.bond = &Bond{Counterparty: nick}
			}
			m.bond.Proof, m.bond.LastSeen = p, now
		case isOffer(name):
			b.offerLocked(nick, m, cmd, now)
		}
	}
	b.dropIfEmptyLocked(nick, m)
}

// isOffer reports whether cmd is an offer command.
func isOffer(cmd string) bool {
	_, ok := OfferType(cmd)
	return ok
}

// makerLocked returns the entry of nick for connection conn, creating it if create is
// set. An entry from an older connection of the nick (one that has left or been
// displaced) is replaced; a line from an older connection than the entry's is stale and
// gets nil.
func (b *Book) makerLocked(nick string, conn uint64, create bool) *maker {
	m := b.makers[nick]
	switch {
	case m != nil && m.conn == conn:
		return m
	case m != nil && m.conn > conn:
		return nil
	case m != nil:
		b.offers -= len(m.offers)
		delete(b.makers, nick)
	}
	if !create {
		return nil
	}
	m = &maker{conn: conn}
	b.makers[nick] = m
	return m
}

// offerLocked parses one offer command of m's and stores it.
func (b *Book) offerLocked(nick string, m *maker, cmd string, now time.Time) {
	var buf [feeBufLen]byte
	f, fee, oidOK, err := parseOffer(cmd, buf[:0])
	if err != nil {
		b.malformed[KindOffer].Add(1)
		if oidOK {
			b.removeLocked(nick, m, f.OID) // as the reference: no ghost of the old offer
		}
		return
	}
	i, found := slices.BinarySearchFunc(m.offers, f.OID, func(o Offer, oid int64) int { return cmp.Compare(o.OID, oid) })
	if found {
		o := &m.offers[i]
		if o.CJFee == string(fee) { // no allocation: the fee is unchanged
			f.CJFee = o.CJFee
		} else {
			f.CJFee = string(fee)
		}
		o.Fields, o.LastSeen = f, now
		return
	}
	if len(m.offers) >= MaxOffersPerMaker {
		b.overCap.Add(1)
		return
	}
	f.CJFee = string(fee)
	m.offers = slices.Insert(m.offers, i, Offer{Counterparty: nick, Fields: f, LastSeen: now})
	b.offers++
}

// removeLocked withdraws m's offer oid, if it has one.
func (b *Book) removeLocked(nick string, m *maker, oid int64) {
	i, found := slices.BinarySearchFunc(m.offers, oid, func(o Offer, oid int64) int { return cmp.Compare(o.OID, oid) })
	if !found {
		return
	}
	m.offers = slices.Delete(m.offers, i, i+1)
	b.offers--
}

// dropIfEmptyLocked forgets m (nick's entry) once it holds nothing.
func (b *Book) dropIfEmptyLocked(nick string, m *maker) {
	if m != nil && len(m.offers) == 0 && m.bond == nil && b.makers[nick] == m {
		delete(b.makers, nick)
	}
}

// Leave drops everything nick announced on connection conn: the maker has left (or was
// displaced by its nick's new owner, whose own offers, from a newer connection, stay).
func (b *Book) Leave(nick string, conn uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.makers[nick]; m != nil && m.conn == conn {
		b.offers -= len(m.offers)
		delete(b.makers, nick)
	}
}

// Snapshot returns copies of every offer, sorted by counterparty and oid, and every
// bond, sorted by counterparty.
func (b *Book) Snapshot() ([]Offer, []Bond) {
	b.mu.Lock()
	offers := make([]Offer, 0, b.offers)
	var bonds []Bond
	for _, m := range b.makers {
		offers = append(offers, m.offers...)
		if m.bond != nil {
			bonds = append(bonds, *m.bond)
		}
	}
	b.mu.Unlock()
	slices.SortFunc(offers, func(x, y Offer) int {
		return cmp.Or(strings.Compare(x.Counterparty, y.Counterparty), cmp.Compare(x.OID, y.OID))
	})
	slices.SortFunc(bonds, func(x, y Bond) int { return strings.Compare(x.Counterparty, y.Counterparty) })
	return offers, bonds
}

// Stats are the book's counts, for /status and /metrics.
type Stats struct {
	Offers    int               `json:"offers"`           // live offers
	Makers    int               `json:"makers"`           // makers with at least one live offer
	Bonds     int               `json:"fidelity_bonds"`   // makers with a bond proof
	Malformed map[string]uint64 `json:"malformed"`        // commands skipped, by kind: offer, cancel, tbond
	OverCap   uint64            `json:"offers_over_cap"`  // new offers skipped: the maker had MaxOffersPerMaker
	Cap       int               `json:"offers_per_maker"` // MaxOffersPerMaker
}

// Stats returns the book's counts.
func (b *Book) Stats() Stats {
	st := Stats{Malformed: make(map[string]uint64, NumKinds), OverCap: b.overCap.Load(), Cap: MaxOffersPerMaker}
	for k := Kind(0); k < NumKinds; k++ {
		st.Malformed[k.String()] = b.malformed[k].Load()
	}
	b.mu.Lock()
	st.Offers = b.offers
	for _, m := range b.makers {
		if len(m.offers) > 0 {
			st.Makers++
		}
		if m.bond != nil {
			st.Bonds++
		}
	}
	b.mu.Unlock()
	return st
}

// Malformed returns how many commands of kind k were skipped as malformed.
func (b *Book) Malformed(k Kind) uint64 { return b.malformed[k].Load() }
