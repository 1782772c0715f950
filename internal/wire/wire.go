// Package wire implements the framing of the JoinMarket onion message channel as the
// directory node speaks it (docs/protocol.md §1–§2).
//
// Protocol flow, as seen by the directory:
//
//	client                                  directory
//	  | -- TCP connect ------------------------> |
//	  | -- 793 handshake (JSON in "line") -----> |   first line, within the handshake deadline
//	  | <------------------ 795 dn-handshake --- |   accepted true/false (false → close)
//	  | -- 687 "from!PUBLIC!cmd …" ------------> |   fanned out to every other handshaked peer
//	  | -- 685 "from!to!cmd … pub sig" --------> |   forwarded to "to", then a 789 location
//	  |                                          |   peerlist "from;onion:port" to "to"
//	  | -- 791 "" -----------------------------> |   answered by one or more 789 lines
//	  | <---------------------------- 798 "" --- |   only to peers that advertised "ping"
//	  | -- 799 "" -----------------------------> |
//	  | <------------- 789 "nick;location;D" --- |   whenever a handshaked peer leaves
//
// Every line is a JSON object {"type": <int>, "line": <string>} terminated by CRLF on output;
// LF or CRLF is accepted on input. The directory relays the "line" string of pubmsgs and
// privmsgs byte for byte (the raw JSON string token), so a relayed line never grows and
// nothing is re-escaped.
package wire

// Message types on the wire (docs/protocol.md §2.1).
const (
	TypePrivmsg           = 685 // C→D→C "from!to!cmd args…"
	TypePubmsg            = 687 // C→D→all "from!PUBLIC!cmd args…"
	TypeConnect           = 785 // reference-client local event; never on the wire
	TypeDisconnectLocal   = 787 // reference-client local event; never on the wire
	TypePeerlist          = 789 // D→C comma-separated peerlist entries
	TypeGetPeerlist       = 791 // C→D request for the peerlist
	TypeHandshake         = 793 // C→D client handshake JSON
	TypeDNHandshake       = 795 // D→C directory handshake JSON
	TypeConnectIn         = 797 // reference "connect-in" (local) and shadowed "ping"; never sent
	TypePing              = 798 // D→C ping, only to peers that advertised "ping"
	TypePong              = 799 // C→D pong; a reference client crashes on receiving it
	TypeDisconnect        = 801 // never sent; a reference client crashes on receiving it
	TypeNickAuthChallenge = 803 // nick authentication (JMP-0005): the directory's challenge
	TypeNickAuthProof     = 805 // nick authentication: the client's proof
	TypeNickAuthResult    = 807 // nick authentication: the directory's result
)

// MaxLine is the longest line, in content bytes without the terminator, that a reference
// client accepts. The directory never sends a longer line to a peer that does not speak
// long lines (see MaxLineNG).
const MaxLine = 40000

// MaxLineNG is the longest line, in content bytes without the terminator, that a
// joinmarket-ng client accepts (its max_line_length): ng clients send each message as one
// line, so a coinjoin's !tx can pass MaxLine. Peers the directory recognises as
// joinmarket-ng clients (peer.SpeaksLongLines) may send and receive lines up to this
// long; nobody is ever sent a longer line.
const MaxLineNG = 65536

// Sendable reports whether the directory may ever send a message of type t. Types that
// reference clients treat as local events or crash on (docs/protocol.md §2.2–§2.3, Appendix B)
// are never sent to anybody.
func Sendable(t int) bool {
	switch t {
	case TypeConnect, TypeDisconnectLocal, TypeConnectIn, TypePong, TypeDisconnect:
		return false
	}
	return t >= 0
}

// NotServing is the location-string of a peer that serves no onion (takers, ob-watchers).
const NotServing = "NOT-SERVING-ONION"
