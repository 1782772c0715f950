package jm

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"strings"

	"github.com/mr-tron/base58"
)

const (
	// nickLen is the length of every JoinMarket nick: "J5" + 14 chars.
	nickLen = 16
	// nickHeader is JOINMARKET_NICK_HEADER followed by the JM version.
	nickHeader = "J5"
	// nickEncodedLen is NICK_MAX_ENCODED, the padded base58 part.
	nickEncodedLen = nickLen - len(nickHeader)
	// nickHashLen is NICK_HASH_LENGTH, the bytes of sha256 encoded in a nick.
	nickHashLen = 10
	// nickPad pads the base58 part; it is not in the base58 alphabet.
	nickPad = 'O'
)

// b58Alphabet is the Bitcoin base58 alphabet.
const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// b58Digit maps an ASCII byte to its base58 value, or 0xff if it is not a
// base58 character.
var b58Digit = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(b58Alphabet); i++ {
		t[b58Alphabet[i]] = byte(i)
	}
	return t
}()

// ValidNick reports whether s is a well-formed JoinMarket nick (docs/protocol.md
// §4.2, RS rule): exactly 16 bytes, 'J', '5', then 14 chars which, with trailing 'O'
// padding removed, are non-empty Bitcoin-base58 that decodes to at most 10 bytes. ('O'
// is not in the base58 alphabet, so an 'O' before a non-'O' is invalid.)
func ValidNick(s string) bool {
	if len(s) != nickLen || s[0] != nickHeader[0] || s[1] != nickHeader[1] {
		return false
	}
	e := s[len(nickHeader):]
	for len(e) > 0 && e[len(e)-1] == nickPad {
		e = e[:len(e)-1]
	}
	if len(e) == 0 {
		return false
	}
	n, ok := b58DecodedLen(e)
	return ok && n <= nickHashLen
}

// b58DecodedLen returns the number of bytes the base58 string e (at most 14
// characters) decodes to; ok is false if e contains a character outside the
// alphabet. Each leading '1' stands for one zero byte; the remaining digits
// form a big-endian number (58^14 < 2^83, so it fits in 128 bits).
func b58DecodedLen(e string) (n int, ok bool) {
	zeros := 0
	for zeros < len(e) && e[zeros] == b58Alphabet[0] {
		zeros++
	}
	var hi, lo uint64
	for i := zeros; i < len(e); i++ {
		d := b58Digit[e[i]]
		if d == 0xff {
			return 0, false
		}
		// (hi, lo) = (hi, lo)*58 + d; no overflow for ≤ 14 digits.
		h, l := bits.Mul64(lo, 58)
		var c uint64
		lo, c = bits.Add64(l, uint64(d), 0)
		hi = hi*58 + h + c
	}
	if hi != 0 {
		n = 8 + (bits.Len64(hi)+7)/8
	} else {
		n = (bits.Len64(lo) + 7) / 8
	}
	return zeros + n, true
}

// NickFromPubKey derives the nick of a 33-byte compressed secp256k1 public
// key (docs/protocol.md §4.1): "J5" + base58(sha256(lowercase hex of the key)[:10])
// right-padded with 'O' to 14 chars. The hash is taken over the hex text, not
// the raw key bytes. The caller is responsible for passing a compressed key;
// any other byte string yields a syntactically valid but meaningless nick.
func NickFromPubKey(compressed []byte) string {
	h := make([]byte, hex.EncodedLen(len(compressed)))
	hex.Encode(h, compressed)
	sum := sha256.Sum256(h)
	e := base58.Encode(sum[:nickHashLen])
	var b strings.Builder
	b.Grow(nickLen)
	b.WriteString(nickHeader)
	b.WriteString(e)
	for i := len(e); i < nickEncodedLen; i++ {
		b.WriteByte(nickPad)
	}
	return b.String()
}
