// Package circuit keys abuse accounting on the client's Tor circuit rather than on the
// connection or the nick.
//
// With "HiddenServiceExportCircuitID haproxy" tor starts every stream it hands to the
// onion's target with a PROXY protocol v1 header whose source address carries the
// global identifier of the rendezvous circuit the stream arrived on: the address is
// fc00:dead:beef:4dad::/96 with the identifier in its low 32 bits. Every connection
// over one circuit shares one Client: its token buckets, its connection and handshake
// counts, its strikes and its ban. A client that wants a fresh identity has to build a
// new rendezvous circuit, which tor's proof-of-work defence makes costly under attack; a
// new nick is free.
//
// A connection without an identity (tor_proxy_protocol off, or "PROXY UNKNOWN") gets a
// Client of its own that the Table does not track, so the same code applies the limits
// per connection.
package circuit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/reason"
)

// torPrefix is the network tor puts exported circuit identifiers in.
var torPrefix = netip.MustParsePrefix("fc00:dead:beef:4dad::/96")

// ID names a client: the source address of its PROXY header. The zero ID means the
// connection has no identity beyond itself.
type ID struct{ addr netip.Addr }

// IDFromAddr returns the ID for a source address (IPv4-mapped addresses are unmapped).
func IDFromAddr(a netip.Addr) ID { return ID{a.Unmap()} }

// Valid reports whether the ID names a client (it is not the zero ID).
func (id ID) Valid() bool { return id.addr.IsValid() }

// Tor returns tor's circuit identifier when the address is in tor's export prefix.
func (id ID) Tor() (uint32, bool) {
	if !torPrefix.Contains(id.addr) {
		return 0, false
	}
	b := id.addr.As16()
	return uint32(b[12])<<24 | uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15]), true
}

// String is tor's circuit identifier in decimal, or else the address; "" for the zero ID.
func (id ID) String() string {
	if gid, ok := id.Tor(); ok {
		return strconv.FormatUint(uint64(gid), 10)
	}
	if !id.Valid() {
		return ""
	}
	return id.addr.String()
}

// ErrHeader is wrapped by every ParseHeader error.
var ErrHeader = errors.New("circuit: bad PROXY header")

// maxHeader is the longest PROXY v1 line, without its CRLF (the spec's 107 with it).
const maxHeader = 105

// ParseHeader parses one PROXY protocol v1 header line, given without its line end,
// with go-proxyproto. "PROXY UNKNOWN" (the sender knows no address) gives the zero ID.
// Version 2 (binary) headers are not accepted: tor sends version 1.
func ParseHeader(line []byte) (ID, error) {
	if len(line) > maxHeader || !bytes.HasPrefix(line, []byte("PROXY ")) {
		return ID{}, fmt.Errorf("%w: not a PROXY v1 line", ErrHeader)
	}
	buf := make([]byte, 0, len(line)+2)
	buf = append(append(buf, line...), '\r', '\n')
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(buf), 128))
	if err != nil {
		return ID{}, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	if h.Command.IsLocal() {
		return ID{}, nil
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok {
		return ID{}, fmt.Errorf("%w: no TCP source address", ErrHeader)
	}
	a, ok := netip.AddrFromSlice(src.IP)
	if !ok {
		return ID{}, fmt.Errorf("%w: source address %v", ErrHeader, src.IP)
	}
	return IDFromAddr(a), nil
}

// Limits are the per-circuit caps and the ban policy.
type Limits struct {
	MaxConns   int           // open connections per circuit
	MaxPending int           // connections per circuit still handshaking
	BanAfter   int           // strikes (abusive closes) that ban the circuit; 0 = never ban
	BanFor     time.Duration // how long a ban lasts, and how long a strike is remembered
}

// Client is what the connections from one circuit share.
type Client struct {
	id ID
	b  *limits.Buckets // nil while the client has no connection

	// guarded by Table.mu
	conns, pending int
	strikes        int
	strikesUntil   time.Time // strikes are forgotten after this
	bannedUntil    time.Time
}

// ID returns the client's identity (the zero ID for a connection of its own).
func (c *Client) ID() ID { return c.id }

// Buckets returns the client's token buckets; valid while the caller's connection is open.
func (c *Client) Buckets() *limits.Buckets { return c.b }

// DefaultMaxIdle is how many circuits with no connection a table keeps for their
// strikes and bans (about 100 bytes each).
const DefaultMaxIdle = 1 << 16

// sweepEvery is how often Open drops expired idle entries.
const sweepEvery = time.Minute

// Table tracks the clients that have an identity. It is safe for concurrent use.
type Table struct {
	mu        sync.Mutex
	clients   map[ID]*Client
	idle      int // entries without a connection, kept for their strikes or ban
	maxIdle   int
	nextSweep time.Time

	bans      atomic.Uint64 // bans ever imposed
	forgotten atomic.Uint64 // idle entries dropped early because the table was full
}

// NewTable returns a table that keeps at most maxIdle circuits without a connection.
func NewTable(maxIdle int) *Table {
	return &Table{clients: make(map[ID]*Client), maxIdle: max(maxIdle, 1)}
}

// Open admits a new connection from id, or returns why not: CloseBanned, or
// CloseCircuitCap when the circuit already has lim.MaxConns connections or
// lim.MaxPending still handshaking. A zero id gets an untracked Client of its own.
// Every admitted connection must later call Handshaked once and Release once.
func (t *Table) Open(id ID, now time.Time, lim Limits) (*Client, reason.Close) {
	if !id.Valid() {
		return &Client{b: new(limits.Buckets)}, reason.CloseNone
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !now.Before(t.nextSweep) {
		t.sweepLocked(now)
		t.nextSweep = now.Add(sweepEvery)
	}
	c := t.clients[id]
	switch {
	case c == nil:
		c = &Client{id: id}
		t.clients[id] = c
	case now.Before(c.bannedUntil):
		return nil, reason.CloseBanned
	case c.conns >= lim.MaxConns, c.pending >= lim.MaxPending:
		return nil, reason.CloseCircuitCap
	case c.conns == 0:
		t.idle--
	}
	if c.b == nil {
		c.b = new(limits.Buckets)
	}
	c.conns++
	c.pending++
	return c, reason.CloseNone
}

// Handshaked ends a connection's handshake phase, whether it was accepted or not.
func (t *Table) Handshaked(c *Client) {
	if !c.id.Valid() { // untracked: a connection of its own
		return
	}
	t.mu.Lock()
	c.pending--
	t.mu.Unlock()
}

// Release ends a connection that closed for why. An abusive reason
// (reason.Close.Abusive) is a strike against the circuit; lim.BanAfter strikes,
// each within lim.BanFor of the last, ban it for lim.BanFor. Release reports whether
// this close imposed a ban.
func (t *Table) Release(c *Client, why reason.Close, now time.Time, lim Limits) (banned bool) {
	if !c.id.Valid() { // untracked: a connection of its own
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c.conns--
	if why.Abusive() && lim.BanAfter > 0 && !now.Before(c.bannedUntil) {
		if now.After(c.strikesUntil) {
			c.strikes = 0
		}
		c.strikes++
		c.strikesUntil = now.Add(lim.BanFor)
		if c.strikes >= lim.BanAfter {
			c.strikes = 0
			c.bannedUntil = now.Add(lim.BanFor)
			t.bans.Add(1)
			banned = true
		}
	}
	if c.conns > 0 {
		return banned
	}
	c.b = nil
	switch {
	case !remembered(c, now):
		delete(t.clients, c.id)
	case t.idle >= t.maxIdle:
		t.sweepLocked(now)
		if t.idle >= t.maxIdle {
			delete(t.clients, c.id)
			t.forgotten.Add(1)
			return banned
		}
		t.idle++
	default:
		t.idle++
	}
	return banned
}

// Forget drops every strike and ban. Tor numbers circuits from 1 again when it
// restarts, so after a restart the old numbers name other clients. Open connections keep
// their counts and buckets.
func (t *Table) Forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, c := range t.clients {
		c.strikes, c.strikesUntil, c.bannedUntil = 0, time.Time{}, time.Time{}
		if c.conns == 0 {
			delete(t.clients, id)
			t.idle--
		}
	}
}

// remembered reports whether an entry without connections still matters at now.
func remembered(c *Client, now time.Time) bool {
	return now.Before(c.bannedUntil) || (c.strikes > 0 && !now.After(c.strikesUntil))
}

// sweepLocked drops idle entries whose strikes and ban have expired.
func (t *Table) sweepLocked(now time.Time) {
	for id, c := range t.clients {
		if c.conns == 0 && !remembered(c, now) {
			delete(t.clients, id)
			t.idle--
		}
	}
}

// Counts is a point-in-time view of a table.
type Counts struct {
	Connected int    // circuits with at least one open connection
	Banned    int    // circuits banned now
	Bans      uint64 // bans imposed since start
	Forgotten uint64 // idle circuits dropped early, with their strikes or ban, because the table was full
}

// Counts counts the table's circuits at now.
func (t *Table) Counts(now time.Time) Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n Counts
	for _, c := range t.clients {
		if c.conns > 0 {
			n.Connected++
		}
		if now.Before(c.bannedUntil) {
			n.Banned++
		}
	}
	n.Bans, n.Forgotten = t.bans.Load(), t.forgotten.Load()
	return n
}
