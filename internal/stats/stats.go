// Package stats holds the typed reasons for every disconnect and every dropped message, and
// lock-free counters for them. The same reason value names the log line, the counter and
// (later) the metric label, so the three always agree. No counter is keyed by nick or onion.
package stats

import "sync/atomic"

// CloseReason says why a connection ended.
type CloseReason uint8

// Close reasons.
const (
	CloseNone             CloseReason = iota
	CloseClientGone                   // the peer closed the connection (EOF)
	CloseReadError                    // reading failed (reset, timeout other than handshake)
	CloseWriteError                   // writing failed
	CloseSlowConsumer                 // outbound queue overflow or missed write deadline
	CloseLineTooLong                  // an input line exceeded the limit
	CloseMalformed                    // an input line was not a valid envelope
	CloseHandshakeTimeout             // no handshake within the deadline
	CloseNotHandshake                 // the first line was not a 793 handshake
	CloseRejected                     // the handshake was answered with accepted:false
	ClosePendingCap                   // too many connections were still handshaking
	CloseRateLimit                    // too many rate-limit violations
	CloseSpoofing                     // too many messages with another nick as sender
	ClosePongTimeout                  // a ping went unanswered
	CloseHardEvict                    // idle past the hard-evict threshold
	CloseReplaced                     // unresponsive owner of a nick a newcomer claimed
	ClosePeerRequested                // the peer sent 801 disconnect
	CloseShutdown                     // the server is stopping
	CloseProxyHeader                  // no valid PROXY v1 header first (tor_proxy_protocol)
	CloseBanned                       // the connection's circuit is banned
	CloseCircuitCap                   // the circuit already has too many connections, or too many handshaking
	NumCloseReasons
)

var closeNames = [...]string{
	CloseNone:             "none",
	CloseClientGone:       "client closed",
	CloseReadError:        "read error",
	CloseWriteError:       "write error",
	CloseSlowConsumer:     "slow consumer",
	CloseLineTooLong:      "line too long",
	CloseMalformed:        "malformed line",
	CloseHandshakeTimeout: "handshake timeout",
	CloseNotHandshake:     "first line not a handshake",
	CloseRejected:         "handshake rejected",
	ClosePendingCap:       "too many pending handshakes",
	CloseRateLimit:        "rate limit",
	CloseSpoofing:         "sender spoofing",
	ClosePongTimeout:      "pong timeout",
	CloseHardEvict:        "idle eviction",
	CloseReplaced:         "unresponsive nick owner replaced",
	ClosePeerRequested:    "peer requested disconnect",
	CloseShutdown:         "shutdown",
	CloseProxyHeader:      "bad proxy header",
	CloseBanned:           "circuit banned",
	CloseCircuitCap:       "circuit connection cap",
}

// Abusive reports whether a close counts as a strike against the client's circuit:
// the connection itself broke a rule (flooding, spoofing, garbage, stalling the
// handshake), as opposed to leaving, being rejected or being cut for slowness.
func (r CloseReason) Abusive() bool {
	switch r {
	case CloseRateLimit, CloseSpoofing, CloseLineTooLong, CloseMalformed, CloseNotHandshake, CloseHandshakeTimeout:
		return true
	}
	return false
}

func (r CloseReason) String() string {
	if int(r) < len(closeNames) {
		return closeNames[r]
	}
	return "unknown"
}

// DropReason says why a received message was not relayed.
type DropReason uint8

// Drop reasons.
const (
	DropNone             DropReason = iota
	DropRateLimited                 // the connection's token bucket was empty
	DropSpoofed                     // the "from" nick was not the connection's nick
	DropMalformedJM                 // not "from!to!…" (or "from!PUBLIC!…" for a pubmsg)
	DropUnknownRecipient            // privmsg to a nick that is not connected
	DropToDirectory                 // privmsg addressed to the directory itself
	DropGetPeerlistCap              // GETPEERLIST over its per-connection cap
	DropOrderbookCap                // !orderbook over its per-connection cap
	DropIgnoredType                 // a type the directory does not act on
	DropOversizeOut                 // the line to send would exceed 40 000 bytes
	DropRecipientGone               // the recipient's queue refused it (it is being cut)
	NumDropReasons
)

var dropNames = [...]string{
	DropNone:             "none",
	DropRateLimited:      "rate limited",
	DropSpoofed:          "spoofed sender",
	DropMalformedJM:      "malformed message text",
	DropUnknownRecipient: "unknown recipient",
	DropToDirectory:      "addressed to directory",
	DropGetPeerlistCap:   "getpeerlist cap",
	DropOrderbookCap:     "orderbook cap",
	DropIgnoredType:      "ignored type",
	DropOversizeOut:      "too long to send",
	DropRecipientGone:    "recipient disconnecting",
}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "unknown"
}

// Counters are process-wide totals, safe for concurrent use.
type Counters struct {
	closes      [NumCloseReasons]atomic.Uint64
	drops       [NumDropReasons]atomic.Uint64
	Accepted    atomic.Uint64 // handshakes accepted
	RateViolate atomic.Uint64 // rate-limit violations (any bucket)
	Traffic
}

// Sent counts lines of one type queued to peers, each of size bytes.
func (c *Counters) Sent(t MsgType, lines, size int) {
	if lines > 0 {
		c.Out[t].Add(uint64(lines))
		c.BytesOut.Add(uint64(lines * size))
	}
}

// Relayed is the number of pubmsg and privmsg lines queued to recipients.
func (c *Counters) Relayed() uint64 { return c.Out[MsgPubmsg].Load() + c.Out[MsgPrivmsg].Load() }

// Received is the number of lines received from handshaked peers.
func (c *Counters) Received() uint64 {
	var n uint64
	for i := range c.In {
		n += c.In[i].Load()
	}
	return n - c.In[MsgHandshake].Load()
}

// Close counts a disconnect.
func (c *Counters) Close(r CloseReason) { c.closes[r].Add(1) }

// Drop counts a dropped message.
func (c *Counters) Drop(r DropReason) { c.drops[r].Add(1) }

// Closes returns the count for one close reason.
func (c *Counters) Closes(r CloseReason) uint64 { return c.closes[r].Load() }

// Drops returns the count for one drop reason.
func (c *Counters) Drops(r DropReason) uint64 { return c.drops[r].Load() }

// CloseCounts returns every non-zero close count by reason name.
func (c *Counters) CloseCounts() map[string]uint64 {
	m := map[string]uint64{}
	for r := CloseReason(1); r < NumCloseReasons; r++ {
		if v := c.closes[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// DropCounts returns every non-zero drop count by reason name.
func (c *Counters) DropCounts() map[string]uint64 {
	m := map[string]uint64{}
	for r := DropReason(1); r < NumDropReasons; r++ {
		if v := c.drops[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// MsgType groups wire message types for per-type counters (a bounded label set).
type MsgType uint8

// Message type groups.
const (
	MsgPrivmsg MsgType = iota
	MsgPubmsg
	MsgPeerlist
	MsgGetPeerlist
	MsgHandshake
	MsgDNHandshake
	MsgPing
	MsgPong
	MsgOther
	NumMsgTypes
)

var msgNames = [...]string{
	MsgPrivmsg: "privmsg", MsgPubmsg: "pubmsg", MsgPeerlist: "peerlist",
	MsgGetPeerlist: "getpeerlist", MsgHandshake: "handshake", MsgDNHandshake: "dn-handshake",
	MsgPing: "ping", MsgPong: "pong", MsgOther: "other",
}

func (m MsgType) String() string {
	if int(m) < len(msgNames) {
		return msgNames[m]
	}
	return "other"
}

// TypeOf maps a wire type number to its group.
func TypeOf(t int) MsgType {
	switch t {
	case 685:
		return MsgPrivmsg
	case 687:
		return MsgPubmsg
	case 789:
		return MsgPeerlist
	case 791:
		return MsgGetPeerlist
	case 793:
		return MsgHandshake
	case 795:
		return MsgDNHandshake
	case 798:
		return MsgPing
	case 799:
		return MsgPong
	}
	return MsgOther
}

// Offer commands counted in OffersSeen (docs/protocol.md §4.3); anything else is not an offer.
var OfferCommands = [...]string{"sw0reloffer", "sw0absoffer", "swreloffer", "swabsoffer", "reloffer", "absoffer"}

// OfferIndex returns the index of cmd in OfferCommands, or -1.
func OfferIndex(cmd string) int {
	for i, c := range OfferCommands {
		if c == cmd {
			return i
		}
	}
	return -1
}

// Traffic counts what flows through the directory. All fields are safe for concurrent use.
type Traffic struct {
	In, Out           [NumMsgTypes]atomic.Uint64 // lines received / queued to peers, by type
	BytesIn, BytesOut atomic.Uint64              // line bytes received / queued (terminators included)
	Pings, Probes     atomic.Uint64              // heartbeat 798 pings and legacy !orderbook probes sent
	Rejected          [16]atomic.Uint64          // handshakes answered accepted:false, by rejection code
	OffersSeen        [len(OfferCommands)]atomic.Uint64
	RelayLatency      Histogram // from reading a pubmsg/privmsg to having queued it to every recipient
}

// LatencyBounds are the upper bounds, in seconds, of the relay latency histogram buckets.
var LatencyBounds = [...]float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1}

// Histogram is a fixed-bucket latency histogram of atomics: cheap enough for the hot path
// and exported to Prometheus at scrape time.
type Histogram struct {
	buckets [len(LatencyBounds) + 1]atomic.Uint64 // last = above every bound
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

// Observe records one duration in nanoseconds.
func (h *Histogram) Observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	s := float64(ns) / 1e9
	i := 0
	for i < len(LatencyBounds) && s > LatencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNs.Add(uint64(ns))
}

// Snapshot returns cumulative bucket counts (aligned with LatencyBounds), the total count
// and the sum in seconds.
func (h *Histogram) Snapshot() (cumulative []uint64, count uint64, sumSeconds float64) {
	cumulative = make([]uint64, len(LatencyBounds))
	var acc uint64
	for i := range LatencyBounds {
		acc += h.buckets[i].Load()
		cumulative[i] = acc
	}
	return cumulative, h.count.Load(), float64(h.sumNs.Load()) / 1e9
}
