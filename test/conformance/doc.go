// Package conformance is a black-box test suite for JoinMarket directory nodes. It dials
// a directory over TCP — by default a fresh in-process server per test; with
// JM_DIRECTORY_ADDR=host:port (and JM_DIRECTORY_NETWORK, default regtest) any running
// directory, whose tests needing custom settings are then skipped — and checks every rule
// of docs/protocol.md that a reference or joinmarket-ng client depends on, including a replay
// of the reference-wire fixtures.
//
//	go test ./test/conformance/
//	JM_DIRECTORY_ADDR=127.0.0.1:5222 go test ./test/conformance/
//
// With JM_DIRECTORY_SOCKS=host:port as well, every connection goes through that SOCKS5
// proxy (Tor's SOCKS port), so JM_DIRECTORY_ADDR may be an onion: xyz.onion:5222.
//
// Its clients are internal/dirtest's (Target, Client): the same send/expect helpers every
// socket-level test of the repository uses.
package conformance
