// Package reason is the one vocabulary for why a connection ended (Close), why a
// received message was not relayed (Drop) and why a handshake was answered
// accepted:false (Reject). Each value has one name, used by the log line, the counter,
// /status, the metric label and the recent-disconnects ring, so they always agree.
//
// It is a leaf: it imports nothing of the project, so every package can use it.
package reason

// Close says why a connection ended.
type Close uint8

// Close reasons.
const (
	CloseNone             Close = iota
	CloseClientGone             // the peer closed the connection (EOF)
	CloseReadError              // reading failed (reset, timeout other than handshake)
	CloseWriteError             // writing failed
	CloseSlowConsumer           // outbound queue overflow or missed write deadline
	CloseLineTooLong            // an input line exceeded the limit
	CloseMalformed              // an input line was not a valid envelope
	CloseHandshakeTimeout       // no handshake within the deadline
	CloseNotHandshake           // the first line was not a 793 handshake
	CloseRejected               // the handshake was answered with accepted:false
	ClosePendingCap             // too many connections were still handshaking
	CloseRateLimit              // too many rate-limit violations
	CloseSpoofing               // too many messages with another nick as sender
	ClosePongTimeout            // a ping went unanswered
	CloseHardEvict              // idle past the hard-evict threshold
	CloseReplaced               // unresponsive owner of a nick a newcomer claimed
	ClosePeerRequested          // the peer sent 801 disconnect
	CloseShutdown               // the server is stopping
	CloseProxyHeader            // no valid PROXY v1 header first (tor_proxy_protocol)
	CloseBanned                 // the connection's circuit is banned
	CloseCircuitCap             // the circuit already has too many connections, or too many handshaking
	NumCloses
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
func (r Close) Abusive() bool {
	switch r {
	case CloseRateLimit, CloseSpoofing, CloseLineTooLong, CloseMalformed, CloseNotHandshake, CloseHandshakeTimeout:
		return true
	}
	return false
}

func (r Close) String() string {
	if int(r) < len(closeNames) {
		return closeNames[r]
	}
	return "unknown"
}

// Drop says why a received message was not relayed.
type Drop uint8

// Drop reasons.
const (
	DropNone             Drop = iota
	DropRateLimited           // the connection's token bucket was empty
	DropSpoofed               // the "from" nick was not the connection's nick
	DropMalformedJM           // not "from!to!…" (or "from!PUBLIC!…" for a pubmsg)
	DropUnknownRecipient      // privmsg to a nick that is not connected
	DropToDirectory           // privmsg addressed to the directory itself
	DropGetPeerlistCap        // GETPEERLIST over its per-connection cap
	DropOrderbookCap          // !orderbook over its per-connection cap
	DropIgnoredType           // a type the directory does not act on
	DropOversizeOut           // the line to send would exceed 40 000 bytes
	DropRecipientGone         // the recipient's queue refused it (it is being cut)
	NumDrops
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

func (r Drop) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "unknown"
}

// Reject says why a handshake was answered accepted:false (docs/protocol.md §3.8).
type Reject uint8

// Rejection reasons.
const (
	RejectNone      Reject = iota
	RejectMalformed        // not a JSON object of the right shape
	RejectAppName          // app-name is not "joinmarket"
	RejectVersion          // proto-ver is not 5
	RejectDirectory        // the client claims to be a directory
	RejectNetwork          // another network
	RejectNick             // nick is not a well-formed JoinMarket nick
	RejectLocation         // location-string is not valid
	RejectFeatures         // features object breaks the grammar
	RejectDuplicate        // nick held by a live peer
	RejectCapacity         // MAX_PEERS reached
	NumRejects
)

var rejectNames = [...]string{
	RejectNone: "none", RejectMalformed: "malformed", RejectAppName: "app-name", RejectVersion: "version",
	RejectDirectory: "directory", RejectNetwork: "network", RejectNick: "nick",
	RejectLocation: "location", RejectFeatures: "features", RejectDuplicate: "duplicate nick",
	RejectCapacity: "capacity",
}

func (r Reject) String() string {
	if int(r) < len(rejectNames) {
		return rejectNames[r]
	}
	return "unknown"
}
