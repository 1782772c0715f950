package orderbook

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// The offer commands (docs/protocol.md §4.3), in the reference's offername_list order.
var offerTypes = [...]string{"reloffer", "absoffer", "swreloffer", "swabsoffer", "sw0reloffer", "sw0absoffer"}

// OfferType returns the offer command cmd as a static string (so that a stored offer
// keeps no part of the line it came from), and whether cmd is one.
func OfferType(cmd string) (string, bool) {
	for _, t := range offerTypes {
		if t == cmd {
			return t, true
		}
	}
	return "", false
}

// IsAbsolute reports whether an offer type carries an absolute fee in satoshis (the
// others carry a fraction of the coinjoin amount).
func IsAbsolute(ordertype string) bool { return strings.HasSuffix(ordertype, "absoffer") }

// Limits of an offer, as the reference's OrderbookWatch.on_order_seen applies them.
const (
	// DustThreshold is the smallest minsize a taker uses: a smaller one is raised to it
	// (jm_single().DUST_THRESHOLD, 10 × 2730 satoshis), not refused.
	DustThreshold = 27300
	// MaxAmount bounds minsize and maxsize: 21 × 10^14 satoshis.
	MaxAmount = 21 * 100_000_000_000_000
	// MaxFeeLen bounds the cjfee field, in bytes as received. Real fees are a few
	// characters ("0.00002", "250"); the bound keeps what a maker can make the book hold
	// small. It is this server's, not the reference's.
	MaxFeeLen = 64
)

// Parse errors. An offer, cancel or tbond that fails to parse is counted and skipped.
var (
	ErrFields = errors.New("orderbook: too few fields")
	ErrOID    = errors.New("orderbook: oid is not a non-negative integer")
	ErrSize   = errors.New("orderbook: minsize or maxsize out of range")
	ErrTxFee  = errors.New("orderbook: txfee is not a non-negative integer")
	ErrFee    = errors.New("orderbook: cjfee is not a number of the offer's kind")
	ErrProof  = errors.New("orderbook: not a 252-byte fidelity bond proof")
)

// Fields is one parsed offer, before it is attributed to a maker.
type Fields struct {
	Type    string // one of the offer commands (static)
	OID     int64
	MinSize int64 // raised to DustThreshold when below it
	MaxSize int64
	TxFee   int64
	// CJFee is the fee as the reference's orderbook stores it: str(Decimal(cjfee)), Python's
	// canonical decimal string ("0.0002", "1E-7", "250"). Absolute offers hold an integer.
	CJFee string
}

// ParseOffer parses one offer command, "<type> <oid> <minsize> <maxsize> <txfee>
// <cjfee>", with the reference's rules (jmdaemon OrderbookWatch.on_order_seen): fields
// split on single spaces, tokens after the sixth ignored; oid, sizes and txfee decimal
// integers (oid ≥ 0, 0 ≤ sizes ≤ MaxAmount, txfee ≥ 0), minsize raised to DustThreshold,
// minsize ≤ maxsize; cjfee an integer for absolute offers and any decimal number for
// relative ones. It is stricter than Python in one way: numbers are plain ASCII decimals
// ("+5", "1_000", "NaN" and non-ASCII digits are refused).
//
// oidOK is set when the oid parsed (even if another field did not): the reference then
// drops the maker's previous offer with that oid, so that a taker never fills the ghost
// of an offer the maker has tried to change.
//
// The canonical fee is returned as fee, in a buffer of the caller's, and Fields.CJFee is
// left for the caller to set (Book keeps the string it has when the fee is unchanged), so
// that parsing allocates nothing.
func ParseOffer(cmd string) (f Fields, oidOK bool, err error) {
	var buf [feeBufLen]byte
	f, fee, oidOK, err := parseOffer(cmd, buf[:0])
	f.CJFee = string(fee)
	return f, oidOK, err
}

// feeBufLen holds any canonical fee of a token of at most MaxFeeLen bytes: its digits,
// a sign, "0." and up to five zeros, or an exponent.
const feeBufLen = MaxFeeLen + 16

func parseOffer(cmd string, buf []byte) (f Fields, fee []byte, oidOK bool, err error) {
	var tok [6]string
	n := 0
	for rest := cmd; n < len(tok); n++ {
		var found bool
		tok[n], rest, found = strings.Cut(rest, " ")
		if !found {
			n++
			break
		}
	}
	if n < len(tok) {
		return f, nil, false, ErrFields
	}
	t, ok := OfferType(tok[0])
	if !ok {
		return f, nil, false, ErrFields
	}
	f.Type = t
	if f.OID, ok = parseUint(tok[1]); !ok {
		return f, nil, false, ErrOID
	}
	var min, max int64
	if min, ok = parseUint(tok[2]); !ok || min > MaxAmount {
		return f, nil, true, ErrSize
	}
	if max, ok = parseUint(tok[3]); !ok || max > MaxAmount {
		return f, nil, true, ErrSize
	}
	f.MinSize, f.MaxSize = maxInt(min, DustThreshold), max
	if f.TxFee, ok = parseUint(tok[4]); !ok {
		return f, nil, true, ErrTxFee
	}
	if f.MinSize > f.MaxSize {
		return f, nil, true, ErrSize
	}
	if len(tok[5]) > MaxFeeLen {
		return f, nil, true, ErrFee
	}
	if IsAbsolute(t) {
		fee, ok = appendInteger(buf, tok[5])
	} else {
		fee, ok = appendDecimal(buf, tok[5])
	}
	if !ok {
		return f, nil, true, ErrFee
	}
	return f, fee, true, nil
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// parseUint parses a non-empty string of ASCII digits (leading zeros allowed) that fits
// an int64.
func parseUint(s string) (int64, bool) {
	if s == "" || !digits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 19 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		v = v*10 + uint64(s[i]-'0')
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// appendInteger appends str(Decimal(int(s))) for s an optionally signed ASCII integer:
// the digits without leading zeros, with the sign (Python's int() accepts "-5": the
// reference takes a negative absolute fee as it is).
func appendInteger(dst []byte, s string) ([]byte, bool) {
	neg := false
	if s != "" && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" {
		return dst, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return dst, false
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return append(dst, '0'), true // int("-0") is 0
	}
	if neg {
		dst = append(dst, '-')
	}
	return append(dst, s...), true
}

// appendDecimal appends str(Decimal(s)) — Python's to-scientific-string of the decimal
// literal s ([sign] digits [. digits] [e [sign] digits], or [sign] . digits …) — and
// reports whether s is such a literal. The coefficient keeps its trailing zeros, as
// Python's does ("0.00020" stays "0.00020"); leading zeros go; an exponent is used when
// the number's exponent is positive or it is smaller than 1E-6 ("1E-7", "1E+2").
func appendDecimal(dst []byte, s string) ([]byte, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	mant, expPart, hasExp := cutAny(s, "eE")
	intPart, fracPart, _ := strings.Cut(mant, ".")
	if intPart == "" && fracPart == "" || !digits(intPart) || !digits(fracPart) {
		return dst, false
	}
	exp := 0
	if hasExp {
		e := expPart
		eneg := false
		if e != "" && (e[0] == '-' || e[0] == '+') {
			eneg, e = e[0] == '-', e[1:]
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > 4 || !digits(e) || (e == "" && (expPart == "" || expPart == "-" || expPart == "+")) {
			return dst, false // no digits, or an exponent beyond ±9999
		}
		for i := 0; i < len(e); i++ {
			exp = exp*10 + int(e[i]-'0')
		}
		if eneg {
			exp = -exp
		}
	}
	exp -= len(fracPart)
	// The coefficient's digits without leading zeros ("0" for zero); the whole token is
	// at most MaxFeeLen bytes, so they fit the array.
	var cbuf [MaxFeeLen]byte
	c := append(append(cbuf[:0], intPart...), fracPart...)
	for len(c) > 1 && c[0] == '0' {
		c = c[1:]
	}
	if neg {
		dst = append(dst, '-')
	}
	leftdigits := exp + len(c)
	dotplace := 1
	if exp <= 0 && leftdigits > -6 {
		dotplace = leftdigits
	}
	switch {
	case dotplace <= 0:
		dst = append(dst, '0', '.')
		for i := 0; i < -dotplace; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, c...)
	case dotplace >= len(c):
		dst = append(dst, c...)
		for i := 0; i < dotplace-len(c); i++ {
			dst = append(dst, '0')
		}
	default:
		dst = append(dst, c[:dotplace]...)
		dst = append(dst, '.')
		dst = append(dst, c[dotplace:]...)
	}
	if e := leftdigits - dotplace; e != 0 {
		dst = append(dst, 'E')
		if e > 0 {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '-')
			e = -e
		}
		var eb [8]byte
		i := len(eb)
		for e > 0 {
			i--
			eb[i] = byte('0' + e%10)
			e /= 10
		}
		dst = append(dst, eb[i:]...)
	}
	return dst, true
}

// cutAny cuts s around the first byte that is in chars.
func cutAny(s, chars string) (before, after string, found bool) {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// digits reports whether s is all ASCII digits (true for "").
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseCancel parses "cancel <oid>" (the reference takes int(oid); tokens after it are
// ignored).
func ParseCancel(cmd string) (int64, error) {
	rest, ok := strings.CutPrefix(cmd, "cancel ")
	if !ok {
		return 0, ErrFields
	}
	oid, _, _ := strings.Cut(rest, " ")
	v, ok := parseUint(oid)
	if !ok {
		return 0, ErrOID
	}
	return v, nil
}

// ProofLen is the size of a decoded fidelity bond proof.
const ProofLen = 252

// Proof is what a fidelity bond proof says without a blockchain. Nothing in it is
// verified: not the two signatures, not that the UTXO exists, is unspent or is locked.
type Proof struct {
	CertPub    [33]byte // the certificate's public key
	CertExpiry uint16   // the certificate's expiry, in 2016-block retarget periods
	UtxoPub    [33]byte // the bond UTXO's public key
	TxID       [32]byte // the bond UTXO's outpoint, bytes as sent (hex of them = ob-watcher's txid)
	Vout       uint32
	Locktime   uint32 // the bond's timelock, a Unix time
}

// ParseProof parses the base64 proof of a "tbond <proof>" command.
//
// The proof is joinmarket-clientserver's FidelityBondProof (jmclient/fidelity_bond.py),
// parsed here by hand rather than with a library: base64 of 252 bytes packed as
// struct '<72s72s33sH33s32sII' — nick signature (72, DER, left-padded with 0xff), certificate
// signature (72, the same), certificate pubkey (33), certificate expiry (uint16 LE),
// UTXO pubkey (33), txid (32), vout (uint32 LE), locktime (uint32 LE). As the
// reference's fidelity_bond_sanity_check and parse_and_verify_proof_msg do before they
// verify anything, it requires strict base64 of exactly 252 bytes and a DER header
// (0x30) in both signature fields; it also requires both pubkeys to start 02 or 03
// (compressed). It verifies no signature: the directory cannot value or check a bond
// without the blockchain, so everything it reports of one is marked unverified.
func ParseProof(b64 string) (Proof, error) {
	var p Proof
	if base64.StdEncoding.DecodedLen(len(b64)) != ProofLen || strings.ContainsAny(b64, "\r\n") {
		return p, ErrProof
	}
	var raw [ProofLen]byte
	n, err := base64.StdEncoding.Strict().Decode(raw[:], []byte(b64))
	if err != nil || n != ProofLen {
		return p, ErrProof
	}
	nickSig, certSig := raw[0:72], raw[72:144]
	if indexByte(nickSig, 0x30) < 0 || indexByte(certSig, 0x30) < 0 {
		return p, ErrProof
	}
	copy(p.CertPub[:], raw[144:177])
	p.CertExpiry = binary.LittleEndian.Uint16(raw[177:179])
	copy(p.UtxoPub[:], raw[179:212])
	copy(p.TxID[:], raw[212:244])
	p.Vout = binary.LittleEndian.Uint32(raw[244:248])
	p.Locktime = binary.LittleEndian.Uint32(raw[248:252])
	if !compressed(p.CertPub[:]) || !compressed(p.UtxoPub[:]) {
		return p, ErrProof
	}
	return p, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func compressed(pub []byte) bool { return pub[0] == 0x02 || pub[0] == 0x03 }
