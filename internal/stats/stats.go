// Package stats holds lock-free counters for what the directory sees: disconnects,
// drops and handshake rejections by reason (the vocabulary is package reason), traffic
// by message type, and the relay latency histogram. No counter is keyed by nick or onion.
package stats

import (
	"sync/atomic"

	"github.com/jm-directory/jm-directory-server/internal/reason"
)

// Counters are process-wide totals, safe for concurrent use.
type Counters struct {
	closes      [reason.NumCloses]atomic.Uint64
	drops       [reason.NumDrops]atomic.Uint64
	rejects     [reason.NumRejects]atomic.Uint64 // handshakes answered accepted:false
	Accepted    atomic.Uint64                    // handshakes accepted
	RateViolate atomic.Uint64                    // rate-limit violations (any bucket)
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
func (c *Counters) Close(r reason.Close) { c.closes[r].Add(1) }

// Drop counts a dropped message.
func (c *Counters) Drop(r reason.Drop) { c.drops[r].Add(1) }

// Reject counts a handshake answered accepted:false.
func (c *Counters) Reject(r reason.Reject) { c.rejects[r].Add(1) }

// Closes returns the count for one close reason.
func (c *Counters) Closes(r reason.Close) uint64 { return c.closes[r].Load() }

// Drops returns the count for one drop reason.
func (c *Counters) Drops(r reason.Drop) uint64 { return c.drops[r].Load() }

// Rejects returns the count for one rejection reason.
func (c *Counters) Rejects(r reason.Reject) uint64 { return c.rejects[r].Load() }

// CloseCounts returns every non-zero close count by reason label.
func (c *Counters) CloseCounts() map[string]uint64 { return nonZero[reason.Close](c.closes[:]) }

// DropCounts returns every non-zero drop count by reason label.
func (c *Counters) DropCounts() map[string]uint64 { return nonZero[reason.Drop](c.drops[:]) }

// RejectCounts returns every non-zero rejection count by reason label.
func (c *Counters) RejectCounts() map[string]uint64 { return nonZero[reason.Reject](c.rejects[:]) }

// nonZero maps the label of every reason R (but the zero "none") to its count, where
// the count is not zero.
func nonZero[R interface {
	~uint8
	String() string
}](counts []atomic.Uint64) map[string]uint64 {
	m := map[string]uint64{}
	for i := 1; i < len(counts); i++ {
		if v := counts[i].Load(); v > 0 {
			m[R(i).String()] = v
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
