// Package reason is the one vocabulary for why a connection ended (Close), why a
// received message was not relayed (Drop) and why a handshake was answered
// accepted:false (Reject). Each value has one label, a snake_case word its String
// returns, and that label is the only spelling anywhere: log lines (reason=queue_full),
// /status keys, /metrics label values, the recent-disconnects ring, the live page,
// jm-directory-ctl's report and the motd of a rejection. Grep a label or a constant and
// you find every producer and every report.
//
// It is a leaf: it imports nothing of the project, so every package can use it.
package reason

import "fmt"

// label is the name of r in names, or "unknown" out of range.
func label[T ~uint8](r T, names []string) string {
	if int(r) < len(names) {
		return names[r]
	}
	return "unknown"
}

// parse sets *r to the index of the label b in names.
func parse[T ~uint8](r *T, names []string, b []byte) error {
	for i, n := range names {
		if n == string(b) {
			*r = T(i)
			return nil
		}
	}
	return fmt.Errorf("unknown reason %q", b)
}

// Close says why a connection ended.
type Close uint8

// Close reasons.
const (
	CloseNone               Close = iota
	CloseClientGone               // the peer closed the connection (EOF)
	CloseReadError                // reading failed (reset, timeout other than handshake)
	CloseWriteError               // writing failed
	CloseQueueFull                // slow consumer: the outbound queue went over its byte cap
	CloseWriteTimeout             // slow consumer: a write made no progress within the write deadline
	CloseLineTooLong              // an input line exceeded the limit
	CloseMalformed                // an input line was not a valid envelope
	CloseHandshakeTimeout         // no handshake within the deadline
	CloseNotHandshake             // the first line was not a 793 handshake
	CloseRejected                 // the handshake was answered with accepted:false
	ClosePendingCap               // too many connections were still handshaking
	CloseRateLimit                // too many rate-limit violations
	CloseSpoofing                 // too many messages with another nick as sender
	ClosePongTimeout              // a ping went unanswered
	CloseHardEvict                // idle past the hard-evict threshold
	CloseReplaced                 // unresponsive owner of a nick a newcomer claimed
	ClosePeerRequested            // the peer sent 801 disconnect
	CloseShutdown                 // the server is stopping
	CloseProxyHeader              // no valid PROXY v1 header first (tor_proxy_protocol)
	CloseBanned                   // the connection's circuit is banned
	CloseCircuitCap               // the circuit already has too many connections, or too many handshaking
	CloseSilent                   // no byte of the handshake within the first-byte deadline
	ClosePendingEvicted           // the handshake pool was full and this was its oldest silent connection
	CloseOutboundFull             // the server's outbound bytes were at their global bound and this peer lagged most
	CloseSelfProbe                // the directory's own reachability probe, answered and done (never a peer)
	CloseNickAuthFailed           // nick authentication failed (the 807 result code says how)
	CloseDisplaced                // the nick's verified owner connected again, or a verified owner took it from a legacy peer
	CloseNickAuthOutOfOrder       // an 803, 805 or 807 outside the authentication round
	NumCloses
)

var closeNames = [...]string{
	CloseNone:               "none",
	CloseClientGone:         "client_closed",
	CloseReadError:          "read_error",
	CloseWriteError:         "write_error",
	CloseQueueFull:          "queue_full",
	CloseWriteTimeout:       "write_timeout",
	CloseLineTooLong:        "line_too_long",
	CloseMalformed:          "malformed_line",
	CloseHandshakeTimeout:   "handshake_timeout",
	CloseNotHandshake:       "first_line_not_a_handshake",
	CloseRejected:           "handshake_rejected",
	ClosePendingCap:         "too_many_pending_handshakes",
	CloseRateLimit:          "rate_limit",
	CloseSpoofing:           "sender_spoofing",
	ClosePongTimeout:        "pong_timeout",
	CloseHardEvict:          "idle_eviction",
	CloseReplaced:           "unresponsive_nick_owner_replaced",
	ClosePeerRequested:      "peer_requested_disconnect",
	CloseShutdown:           "shutdown",
	CloseProxyHeader:        "bad_proxy_header",
	CloseBanned:             "circuit_banned",
	CloseCircuitCap:         "circuit_connection_cap",
	CloseSilent:             "silent_connection",
	ClosePendingEvicted:     "pending_evicted",
	CloseOutboundFull:       "outbound_full",
	CloseSelfProbe:          "self_probe",
	CloseNickAuthFailed:     "nick_auth_failed",
	CloseDisplaced:          "displaced_by_verified_owner",
	CloseNickAuthOutOfOrder: "nick_auth_out_of_order",
}

// Abusive reports whether a close counts as a strike against the client's circuit:
// the connection itself broke a rule (flooding, spoofing, garbage, stalling the
// handshake), as opposed to leaving, being rejected or being cut for slowness.
func (r Close) Abusive() bool {
	switch r {
	case CloseRateLimit, CloseSpoofing, CloseLineTooLong, CloseMalformed, CloseNotHandshake, CloseHandshakeTimeout, CloseSilent,
		CloseNickAuthOutOfOrder:
		return true
	}
	return false
}

// String returns the reason's label ("unknown" out of range).
func (r Close) String() string { return label(r, closeNames[:]) }

// MarshalText encodes the reason as its label, in JSON too.
func (r Close) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a label MarshalText wrote.
func (r *Close) UnmarshalText(b []byte) error { return parse(r, closeNames[:], b) }

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
	DropOversizeOut           // the line to send is longer than any recipient accepts (65 536 bytes, wire.MaxLineNG)
	DropRecipientGone         // the recipient's queue refused it (it is being cut)
	DropByteBudget            // the sender's byte budget for relayed text was spent
	DropLagging               // a broadcast to a reader whose queue is over the lag threshold
	// DropTooLongForRecipient: a line over 40 000 bytes (wire.MaxLine), which a peer
	// that speaks long lines may send, withheld from one recipient that does not;
	// counted once per such recipient.
	DropTooLongForRecipient
	NumDrops
)

var dropNames = [...]string{
	DropNone:             "none",
	DropRateLimited:      "rate_limited",
	DropSpoofed:          "spoofed_sender",
	DropMalformedJM:      "malformed_message_text",
	DropUnknownRecipient: "unknown_recipient",
	DropToDirectory:      "addressed_to_directory",
	DropGetPeerlistCap:   "getpeerlist_cap",
	DropOrderbookCap:     "orderbook_cap",
	DropIgnoredType:      "ignored_type",
	DropOversizeOut:      "too_long_to_send",
	DropRecipientGone:    "recipient_disconnecting",
	DropByteBudget:       "byte_budget",
	DropLagging:          "lagging_reader",

	DropTooLongForRecipient: "line_too_long_for_recipient",
}

// String returns the reason's label ("unknown" out of range).
func (r Drop) String() string { return label(r, dropNames[:]) }

// MarshalText encodes the reason as its label, in JSON too.
func (r Drop) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a label MarshalText wrote.
func (r *Drop) UnmarshalText(b []byte) error { return parse(r, dropNames[:], b) }

// Reject says why a handshake was answered accepted:false (docs/protocol.md §3.8).
type Reject uint8

// Rejection reasons.
const (
	RejectNone             Reject = iota
	RejectMalformed               // not a JSON object of the right shape
	RejectAppName                 // app-name is not "joinmarket"
	RejectVersion                 // proto-ver is not 5
	RejectDirectory               // the client claims to be a directory
	RejectNetwork                 // another network
	RejectNick                    // nick is not a well-formed JoinMarket nick
	RejectLocation                // location-string is not valid
	RejectFeatures                // features object breaks the grammar
	RejectDuplicate               // nick held by a live peer
	RejectCapacity                // MAX_PEERS reached
	RejectReservedNick            // the nick is the directory's own
	RejectNickAuthRequired        // nick_auth_mode require_verified and the client did not offer nick authentication
	NumRejects
)

var rejectNames = [...]string{
	RejectNone: "none", RejectMalformed: "malformed", RejectAppName: "app_name", RejectVersion: "version",
	RejectDirectory: "directory", RejectNetwork: "network", RejectNick: "nick",
	RejectLocation: "location", RejectFeatures: "features", RejectDuplicate: "duplicate_nick",
	RejectCapacity:         "capacity",
	RejectReservedNick:     "reserved_nick",
	RejectNickAuthRequired: "nick_auth_required",
}

// String returns the reason's label ("unknown" out of range).
func (r Reject) String() string { return label(r, rejectNames[:]) }

// MarshalText encodes the reason as its label, in JSON too.
func (r Reject) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a label MarshalText wrote.
func (r *Reject) UnmarshalText(b []byte) error { return parse(r, rejectNames[:], b) }
