package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"unicode/utf8"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Everything a simulated peer sends is built here, in the reference client's exact form
// (docs/protocol.md §1.3, §3.2, §4.3, §4.4): Python json.dumps style envelopes
// {"type": 687, "line": "…"} with ", " / ": " separators and ASCII-only strings, CRLF
// terminated; the handshake JSON in the reference key order with features {}.

// hostID is the string appended to every signed privmsg payload (docs/protocol.md §4.4).
const hostID = "onion-network"

// identity is a simulated peer's key, its public key in hex and the nick derived from it.
type identity struct {
	key    *secp256k1.PrivateKey
	pubHex string
	nick   string
}

// newIdentity makes a fresh random identity with a valid nick (docs/protocol.md §4.1).
func newIdentity() identity {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		panic("jm-directory-bench: no randomness: " + err.Error())
	}
	pub := k.PubKey().SerializeCompressed()
	return identity{key: k, pubHex: hex.EncodeToString(pub), nick: jm.NickFromPubKey(pub)}
}

// appendPyQuoted appends s as a JSON string the way Python's json.dumps (ensure_ascii)
// writes it: short escapes for quote, backslash and \b \f \n \r \t, \u00XX for other
// control characters, \uXXXX (surrogate pairs above U+FFFF) for everything non-ASCII.
func appendPyQuoted(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	u4 := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hexd[r>>12&0xF], hexd[r>>8&0xF], hexd[r>>4&0xF], hexd[r&0xF])
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = u4(dst, rune(c))
			default:
				dst = append(dst, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r > 0xFFFF {
			r -= 0x10000
			dst = u4(dst, 0xD800+(r>>10))
			dst = u4(dst, 0xDC00+(r&0x3FF))
			continue
		}
		dst = u4(dst, r)
	}
	return append(dst, '"')
}

// appendEnvelope appends {"type": t, "line": "…"} and CRLF, as a reference client sends it.
func appendEnvelope(dst []byte, t int, line string) []byte {
	dst = append(dst, `{"type": `...)
	dst = strconv.AppendInt(dst, int64(t), 10)
	dst = append(dst, `, "line": `...)
	dst = appendPyQuoted(dst, line)
	return append(dst, "}\r\n"...)
}

// handshakeJSON is a reference client's 793 payload: keys in the order app-name,
// directory, location-string, proto-ver, features, nick, network; features {}.
func handshakeJSON(nick, location, network string) string {
	return handshake.ClientHello{Nick: nick, Location: location, Network: network}.Line()
}

// handshakeLine is the complete 793 line.
func handshakeLine(nick, location, network string) []byte {
	return appendEnvelope(nil, wire.TypeHandshake, handshakeJSON(nick, location, network))
}

// orderbookLine is a taker's public orderbook request (docs/protocol.md §11.2).
func orderbookLine(nick string) []byte {
	return appendEnvelope(nil, wire.TypePubmsg, nick+"!PUBLIC!orderbook")
}

// offerArgs are the fields after the offer's oid: minsize maxsize txfee cjfee, as the
// reference maker announces them (see the reference-wire fixtures).
const offerArgs = " 27300 1000000000 0 0.0002"

// offerTemplate builds the publisher's pubmsg "<nick>!PUBLIC!sw0reloffer <seq> 27300
// <maxsize> 0 0.0002" split around the sequence number, so that the hot loop only appends
// digits. When size > 0 the line is padded, with a chained "!tbond <base64>" command, to
// about size bytes of content (without CRLF).
func offerTemplate(nick string, size int) (prefix, suffix []byte) {
	prefix = append([]byte(`{"type": 687, "line": "`), nick+"!PUBLIC!sw0reloffer "...)
	suffix = []byte(offerArgs)
	natural := len(prefix) + len("1000") + len(suffix) + len(`"}`)
	if pad := size - natural - len("!tbond "); pad > 0 {
		suffix = append(suffix, "!tbond "...)
		const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		for i := 0; i < pad; i++ {
			suffix = append(suffix, b64[i%len(b64)])
		}
	}
	suffix = append(suffix, "\"}\r\n"...)
	return prefix, suffix
}

// appendOffer appends one complete offer line with sequence number seq.
func appendOffer(dst, prefix, suffix []byte, seq int64) []byte {
	dst = append(dst, prefix...)
	dst = strconv.AppendInt(dst, seq, 10)
	return append(dst, suffix...)
}

// signedMessageHash is the Bitcoin signed-message digest of m: SHA256d(0x18 "Bitcoin
// Signed Message:\n" || compactsize(len m) || m).
func signedMessageHash(m string) [32]byte {
	b := make([]byte, 0, 32+len(m))
	b = append(b, 0x18)
	b = append(b, "Bitcoin Signed Message:\n"...)
	switch n := len(m); {
	case n < 0xfd:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 0xfd, byte(n), byte(n>>8))
	default:
		b = append(b, 0xfe, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	}
	b = append(b, m...)
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

// signPrivmsg returns the base64 DER signature of msg+"onion-network" (docs/protocol.md §4.4).
func signPrivmsg(key *secp256k1.PrivateKey, msg string) string {
	h := signedMessageHash(msg + hostID)
	return base64.StdEncoding.EncodeToString(ecdsa.Sign(key, h[:]).Serialize())
}

// privmsgLine builds a signed privmsg "from!to!cmd args <pubkey hex> <sig b64>".
func privmsgLine(from identity, to, cmd, args string) []byte {
	text := from.nick + "!" + to + "!" + cmd + " " + args + " " + from.pubHex + " " + signPrivmsg(from.key, args)
	return appendEnvelope(nil, wire.TypePrivmsg, text)
}

// offerReplyLine is a maker's privmsg answer to !orderbook:
// "M!T!sw0reloffer 0 27300 <max> 0 0.0002 <pubkey hex> <sig b64>".
func offerReplyLine(maker identity, taker string) []byte {
	return privmsgLine(maker, taker, "sw0reloffer", "0"+offerArgs)
}

// fillLine is a taker's "!fill <n> 1000000 <hex> P<hex> <pubkey> <sig>" to a maker; n
// (the order id) carries the sample number.
func fillLine(taker identity, maker string, n int, randHex string) []byte {
	args := strconv.Itoa(n) + " 1000000 " + randHex[:64] + " P" + randHex[64:128]
	return privmsgLine(taker, maker, "fill", args)
}

// pubkeyLine is a maker's "!pubkey <hex> <pubkey> <sig>" answer to a fill; the first 16
// hex digits of the encryption key carry the sample number n.
func pubkeyLine(maker identity, taker string, n int, randHex string) []byte {
	args := pad16hex(uint64(n)) + randHex[:48]
	return privmsgLine(maker, taker, "pubkey", args)
}

func pad16hex(n uint64) string {
	s := strconv.FormatUint(n, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}

// parseUint parses the decimal digits at the start of b.
func parseUint(b []byte) (n int64, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, i > 0
}
