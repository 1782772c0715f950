// Package jm holds JoinMarket identifiers used by the directory node: peer
// nicks (docs/protocol.md §4.1, §4.2), location-strings (§3.7) and the directory's
// own persistent secp256k1 identity.
//
// ValidNick and ParseLocation run for every handshake; they do not allocate
// on success (ParseLocation may allocate only to lower-case an onion host
// given in upper or mixed case).
package jm

// NotServing is the location-string of a peer that serves no onion
// (takers, ob-watchers).
const NotServing = "NOT-SERVING-ONION"

// ProtocolVersion is the JoinMarket onion message channel protocol version
// ("proto-ver") spoken by the directory.
const ProtocolVersion = 5
