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
	numCloseReasons
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
	numDropReasons
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
	closes      [numCloseReasons]atomic.Uint64
	drops       [numDropReasons]atomic.Uint64
	Accepted    atomic.Uint64 // handshakes accepted
	Relayed     atomic.Uint64 // lines handed to recipients' queues (one per recipient)
	Received    atomic.Uint64 // lines received after the handshake
	RateViolate atomic.Uint64 // rate-limit violations (any bucket)
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
	for r := CloseReason(1); r < numCloseReasons; r++ {
		if v := c.closes[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// DropCounts returns every non-zero drop count by reason name.
func (c *Counters) DropCounts() map[string]uint64 {
	m := map[string]uint64{}
	for r := DropReason(1); r < numDropReasons; r++ {
		if v := c.drops[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}
