// Package nickauth implements the primitives of NG's nick-authentication extension
// ("JMP-0005", docs/protocol.md §5): the 803 challenge, the 805 proof and the 807
// result payloads with NG's strict parsing, the signed transcript, and proof
// verification (directory side) and creation (client side, for tests and tools).
//
// It holds no state and does no I/O; the directory's handshake code runs the round.
package nickauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/jm-directory/jm-directory-server/internal/jm"
)

// Message types of the nick-authentication round (docs/protocol.md §2.1, §5.2).
const (
	TypeChallenge = 803 // D→C: Challenge.Line()
	TypeProof     = 805 // C→D: Proof.Line()
	TypeResult    = 807 // D→C: Result(code)
)

const (
	// ChallengeSize is the number of random bytes in a challenge.
	ChallengeSize = 32
	// DomainTag is appended to the transcript with no separator (§5.4).
	DomainTag = "nick-auth-v1"
	// transcriptPrefix starts every transcript.
	transcriptPrefix = "nick-auth"
)

// Code is the result code of a nick-authentication round, sent in the 807 result.
type Code string

// The result codes (§5.2).
const (
	CodeOK        Code = "ok"        // the proof verified
	CodeMalformed Code = "malformed" // bad envelope, JSON or fields, or the next line was not a 805
	CodeExpired   Code = "expired"   // no proof within the timeout
	CodeInvalid   Code = "invalid"   // signature or nick binding failed
	CodePolicy    Code = "policy"    // ownership conflict with a different verified key, or registry full
)

// String returns the wire form of the code.
func (c Code) String() string { return string(c) }

// Valid reports whether c is one of the five result codes.
func (c Code) Valid() bool {
	switch c {
	case CodeOK, CodeMalformed, CodeExpired, CodeInvalid, CodePolicy:
		return true
	}
	return false
}

// Error is a failure of parsing or verification, carrying the result code the
// directory sends for it: CodeMalformed for anything ParseProof, ParseChallenge,
// ParseResult or CheckEnvelope rejects, CodeInvalid for a proof that is well formed
// but does not verify. errors.Is(err, ErrMalformed) and errors.Is(err, ErrInvalid)
// test the code; CodeOf maps any error to a code.
type Error struct {
	Code   Code
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Reason == "" {
		return "nick-auth: " + string(e.Code)
	}
	return "nick-auth: " + string(e.Code) + ": " + e.Reason
}

// Is reports whether target is an *Error with the same Code and no Reason (one of
// the sentinels ErrMalformed, ErrInvalid).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	// ErrMalformed matches every error with CodeMalformed.
	ErrMalformed error = &Error{Code: CodeMalformed}
	// ErrInvalid matches every error with CodeInvalid.
	ErrInvalid error = &Error{Code: CodeInvalid}
)

func malformed(format string, a ...any) error {
	return &Error{Code: CodeMalformed, Reason: fmt.Sprintf(format, a...)}
}

func invalid(format string, a ...any) error {
	return &Error{Code: CodeInvalid, Reason: fmt.Sprintf(format, a...)}
}

// CodeOf returns the result code for err: CodeOK for nil, the Code of an *Error in
// err's chain, and CodeMalformed for any other error.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeMalformed
}

// ValidDirectoryID reports whether s matches the directory-id grammar
// [a-z0-9][a-z0-9.:_-]* (§5.5).
func ValidDirectoryID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == ':' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// DirectoryIDForOnion returns the directory-id an NG client derives from the v3
// onion endpoint "host:port" it dials (§5.5): the host lower-cased (a trailing dot
// after ".onion" dropped, as NG does) + ":" + the port, e.g.
// "<56 chars>.onion:5222". The host must be a valid v3 onion address (checksum and
// version checked, any case) and the port decimal 1..65535 without sign or leading
// zeros. Anything else, including non-onion hosts (for which NG requires an
// explicitly configured id), is an error.
func DirectoryIDForOnion(location string) (string, error) {
	i := strings.LastIndexByte(location, ':')
	if i < 0 {
		return "", fmt.Errorf("nick-auth: directory endpoint %q: missing port", location)
	}
	host, port := location[:i], location[i+1:]
	if strings.HasSuffix(host, ".") {
		host = host[:len(host)-1]
	}
	loc, err := jm.ParseLocation(host+":"+port, false)
	if err == nil && !loc.Serving() {
		err = errors.New("not a v3 onion address")
	}
	if err != nil {
		return "", fmt.Errorf("nick-auth: directory endpoint %q: %w", location, err)
	}
	return loc.Host + ":" + strconv.Itoa(loc.Port), nil
}

// isLowerHex reports whether s is exactly n lower-case hex digits.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidNick reports whether s has the strict nick form nick authentication requires,
// J[0-9][1-9A-HJ-NP-Za-km-zO]{14} (§5.4).
func ValidNick(s string) bool {
	if len(s) != 16 || s[0] != 'J' || s[1] < '0' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '1' && c <= '9':
		case c >= 'A' && c <= 'Z' && c != 'I':
		case c >= 'a' && c <= 'z' && c != 'l':
		default:
			return false
		}
	}
	return true
}

// Challenge is the payload of a 803 message.
type Challenge struct {
	Challenge   string // 64 lower-case hex digits (32 random bytes)
	DirectoryID string // the directory-id (§5.5)
}

// NewChallenge returns a challenge of ChallengeSize fresh random bytes for
// directoryID, which must satisfy ValidDirectoryID.
func NewChallenge(directoryID string) (Challenge, error) {
	if !ValidDirectoryID(directoryID) {
		return Challenge{}, fmt.Errorf("nick-auth: invalid directory-id %q", directoryID)
	}
	var b [ChallengeSize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Challenge{}, fmt.Errorf("nick-auth: challenge: %w", err)
	}
	return Challenge{Challenge: hex.EncodeToString(b[:]), DirectoryID: directoryID}, nil
}

// Line returns the 803 line: compact JSON with the keys in wire order,
// {"challenge":"<hex>","directory-id":"<id>"}.
func (c Challenge) Line() string {
	b := make([]byte, 0, 48+len(c.Challenge)+len(c.DirectoryID))
	b = append(b, `{"challenge":`...)
	b = appendJSONString(b, c.Challenge)
	b = append(b, `,"directory-id":`...)
	b = appendJSONString(b, c.DirectoryID)
	return string(append(b, '}'))
}

// ParseChallenge parses a 803 line strictly (§5.3): a JSON object with no
// duplicate keys and exactly the string fields "challenge" (64 lower-case hex
// digits) and "directory-id" (ValidDirectoryID). Errors match ErrMalformed.
func ParseChallenge(line string) (Challenge, error) {
	obj, err := parseStrictObject([]byte(line))
	if err != nil {
		return Challenge{}, malformed("challenge: %v", err)
	}
	f, err := stringFields(obj, "challenge", "directory-id")
	if err != nil {
		return Challenge{}, malformed("challenge: %v", err)
	}
	if !isLowerHex(f[0], 2*ChallengeSize) {
		return Challenge{}, malformed("challenge must be 64 lower-case hex digits")
	}
	if !ValidDirectoryID(f[1]) {
		return Challenge{}, malformed("invalid directory-id")
	}
	return Challenge{Challenge: f[0], DirectoryID: f[1]}, nil
}

// Proof is the payload of a 805 message, as the wire strings.
type Proof struct {
	PubKey    string // 66 lower-case hex digits: a compressed secp256k1 key
	Signature string // strict base64 of a strict DER ECDSA signature
}

// Line returns the 805 line: {"pubkey":"<hex>","signature":"<base64>"}.
func (p Proof) Line() string {
	b := make([]byte, 0, 32+len(p.PubKey)+len(p.Signature))
	b = append(b, `{"pubkey":`...)
	b = appendJSONString(b, p.PubKey)
	b = append(b, `,"signature":`...)
	b = appendJSONString(b, p.Signature)
	return string(append(b, '}'))
}

// ParseProof parses a 805 line strictly (§5.3): a JSON object with no duplicate
// keys and exactly the string fields "pubkey" and "signature"; the pubkey must
// match 0[23][0-9a-f]{64} and be a point on the curve, the signature must be
// canonical padded standard base64 of a strict DER signature (see
// parseStrictDER). Every error matches ErrMalformed. High-S signatures are
// accepted here and rejected by Verify (as invalid), as in NG.
func ParseProof(line string) (Proof, error) {
	obj, err := parseStrictObject([]byte(line))
	if err != nil {
		return Proof{}, malformed("proof: %v", err)
	}
	f, err := stringFields(obj, "pubkey", "signature")
	if err != nil {
		return Proof{}, malformed("proof: %v", err)
	}
	p := Proof{PubKey: f[0], Signature: f[1]}
	if _, err := parsePubKey(p.PubKey); err != nil {
		return Proof{}, err
	}
	if _, err := decodeSignature(p.Signature); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// parsePubKey checks the pubkey field and returns the key.
func parsePubKey(s string) (*secp256k1.PublicKey, error) {
	if len(s) != 66 || s[0] != '0' || (s[1] != '2' && s[1] != '3') || !isLowerHex(s, 66) {
		return nil, malformed("pubkey must be a lower-case hex compressed secp256k1 key")
	}
	raw, _ := hex.DecodeString(s) // checked above
	pub, err := secp256k1.ParsePubKey(raw)
	if err != nil {
		return nil, malformed("pubkey is not a valid secp256k1 point")
	}
	return pub, nil
}

// decodeSignature checks the signature field: strict base64 whose re-encoding
// equals the input, then strict DER.
func decodeSignature(s string) (*ecdsa.Signature, error) {
	der, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(der) != s {
		return nil, malformed("signature must be canonical base64")
	}
	sig, ok := parseStrictDER(der)
	if !ok {
		return nil, malformed("signature is not strict DER")
	}
	return sig, nil
}

// parseStrictDER parses an ECDSA signature with the checks NG applies (§5.3):
// 8..72 bytes; 0x30, a one-byte length equal to the rest; 0x02, r's length, r;
// 0x02, s's length, s, ending exactly at the end; each integer non-empty,
// non-negative and minimally encoded (a leading zero byte only before a byte with
// the high bit set), with 1 <= value < n.
func parseStrictDER(b []byte) (*ecdsa.Signature, bool) {
	if len(b) < 8 || len(b) > 72 || b[0] != 0x30 || int(b[1]) != len(b)-2 || b[2] != 0x02 {
		return nil, false
	}
	rLen := int(b[3])
	if rLen == 0 || 5+rLen >= len(b) {
		return nil, false
	}
	var r, s secp256k1.ModNScalar
	if !derScalar(b[4:4+rLen], &r) {
		return nil, false
	}
	i := 4 + rLen
	if b[i] != 0x02 {
		return nil, false
	}
	sLen := int(b[i+1])
	if sLen == 0 || i+2+sLen != len(b) {
		return nil, false
	}
	if !derScalar(b[i+2:], &s) {
		return nil, false
	}
	return ecdsa.NewSignature(&r, &s), true
}

// derScalar sets v to the DER INTEGER contents x (non-empty) if x is
// non-negative, minimally encoded, and in [1, n).
func derScalar(x []byte, v *secp256k1.ModNScalar) bool {
	if x[0]&0x80 != 0 {
		return false // negative
	}
	if len(x) > 1 && x[0] == 0 {
		if x[1]&0x80 == 0 {
			return false // superfluous leading zero
		}
		x = x[1:]
	}
	if len(x) > 32 {
		return false // >= 2^256 > n
	}
	if overflow := v.SetByteSlice(x); overflow || v.IsZero() {
		return false
	}
	return true
}

// HandshakeSHA256 returns the lower-case hex SHA-256 of the UTF-8 bytes of the
// client's 793 line exactly as decoded from its envelope (§5.4).
func HandshakeSHA256(handshakeLine string) string {
	sum := sha256.Sum256([]byte(handshakeLine))
	return hex.EncodeToString(sum[:])
}

// Transcript returns the signed message (§5.4):
//
//	"nick-auth|" + challenge + "|" + directory-id + "|" + sha256hex(handshake line) +
//	"|" + nick + "|" + pubkey, followed by "nick-auth-v1" with no separator.
//
// It only concatenates; Verify checks the parts.
func Transcript(challengeHex, directoryID, handshakeLine, nick, pubkeyHex string) []byte {
	parts := []string{transcriptPrefix, challengeHex, directoryID, HandshakeSHA256(handshakeLine), nick, pubkeyHex}
	return []byte(strings.Join(parts, "|") + DomainTag)
}

// SignedMessageDigest returns the Bitcoin signed-message hash of msg (§4.4):
// SHA256(SHA256(0x18 "Bitcoin Signed Message:\n" || compactsize(len(msg)) || msg)).
func SignedMessageDigest(msg []byte) [32]byte {
	const magic = "\x18Bitcoin Signed Message:\n"
	b := make([]byte, 0, len(magic)+9+len(msg))
	b = append(b, magic...)
	switch n := uint64(len(msg)); {
	case n < 0xfd:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(n))
	case n <= 0xffffffff:
		b = binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(n))
	default:
		b = binary.LittleEndian.AppendUint64(append(b, 0xff), n)
	}
	b = append(b, msg...)
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// Verify checks a proof as the directory does (§5.4). nick is the nick of the
// client's handshake, handshakeLine its 793 line exactly as decoded, and
// challengeHex and directoryID those of the challenge the directory sent.
//
// The result is nil when the proof verifies. A proof that ParseProof would reject
// gives an error matching ErrMalformed (ParseProof's results never do). Everything
// else matches ErrInvalid: a nick not of the form J[0-9][1-9A-HJ-NP-Za-km-zO]{14}
// or not the nick derived from the pubkey (protocol version 5, §4.1), a signature
// that does not verify over SignedMessageDigest(Transcript(...)), a high-S
// signature (S > n/2: libsecp256k1, which NG uses, rejects those; dcrd's Verify does
// not), and — as in NG, whose verifier returns false for them — a challengeHex
// that is not 64 lower-case hex digits or a directoryID that is not valid.
func Verify(p Proof, challengeHex, directoryID, handshakeLine, nick string) error {
	pub, err := parsePubKey(p.PubKey)
	if err != nil {
		return err
	}
	sig, err := decodeSignature(p.Signature)
	if err != nil {
		return err
	}
	if !ValidNick(nick) {
		return invalid("nick %q is not a valid nick", nick)
	}
	if derived := jm.NickFromPubKey(pub.SerializeCompressed()); derived != nick {
		return invalid("nick %s does not belong to pubkey (its nick is %s)", nick, derived)
	}
	if !isLowerHex(challengeHex, 2*ChallengeSize) {
		return invalid("expected challenge is not 64 lower-case hex digits")
	}
	if !ValidDirectoryID(directoryID) {
		return invalid("expected directory-id is not valid")
	}
	s := sig.S()
	if s.IsOverHalfOrder() {
		return invalid("high-S signature")
	}
	digest := SignedMessageDigest(Transcript(challengeHex, directoryID, handshakeLine, nick, p.PubKey))
	if !sig.Verify(digest[:], pub) {
		return invalid("signature does not verify")
	}
	return nil
}

// Prove returns the proof a client holding priv sends for the challenge
// (challengeHex, directoryID), its own 793 line handshakeLine exactly as sent, and
// the nick derived from priv (protocol version 5). The signature is deterministic
// (RFC 6979) and low-S, as libsecp256k1's.
func Prove(priv *secp256k1.PrivateKey, challengeHex, directoryID, handshakeLine string) Proof {
	pub := priv.PubKey().SerializeCompressed()
	pubHex := hex.EncodeToString(pub)
	nick := jm.NickFromPubKey(pub)
	digest := SignedMessageDigest(Transcript(challengeHex, directoryID, handshakeLine, nick, pubHex))
	sig := ecdsa.Sign(priv, digest[:])
	return Proof{PubKey: pubHex, Signature: base64.StdEncoding.EncodeToString(sig.Serialize())}
}

// Result returns the 807 line for code: {"code":"<code>","verified":<bool>} with
// verified true iff code is CodeOK.
func Result(code Code) string {
	b := make([]byte, 0, 40)
	b = append(b, `{"code":`...)
	b = appendJSONString(b, string(code))
	b = append(b, `,"verified":`...)
	b = strconv.AppendBool(b, code == CodeOK)
	return string(append(b, '}'))
}

// ParseResult parses a 807 line strictly (§5.3): a JSON object with no duplicate
// keys and exactly the fields "code" (a JSON string, one of the five codes) and
// "verified" (a JSON boolean, true iff the code is "ok"). Errors match ErrMalformed.
func ParseResult(line string) (Code, error) {
	obj, err := parseStrictObject([]byte(line))
	if err != nil {
		return "", malformed("result: %v", err)
	}
	c, okC := obj["code"].(string)
	v, okV := obj["verified"].(bool)
	if len(obj) != 2 || !okC || !okV {
		return "", malformed(`result must have exactly a string "code" and a boolean "verified"`)
	}
	code := Code(c)
	if !code.Valid() {
		return "", malformed("unknown result code %q", c)
	}
	if v != (code == CodeOK) {
		return "", malformed("verified must be true iff the code is ok")
	}
	return code, nil
}

// CheckEnvelope checks the raw bytes of a nick-auth envelope line (the
// {"type":805,"line":"..."} JSON, without the line terminator) the way NG does
// before decoding it: valid UTF-8, one JSON object, no duplicate key in any object
// at any depth, no non-finite number literal, nothing after the object. It does
// not check the type or line fields; the envelope decoder does. Errors match
// ErrMalformed.
func CheckEnvelope(raw []byte) error {
	if _, err := parseStrictObject(raw); err != nil {
		return malformed("envelope: %v", err)
	}
	return nil
}
