package nickauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/jm-directory/jm-directory-server/internal/jm"
)

// NG's unit-test vector (docs/protocol.md §5.7).
const (
	vecPriv      = "1111111111111111111111111111111111111111111111111111111111111111"
	vecPub       = "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa"
	vecNick      = "J52N8GdNkKtMA6TW"
	vecChallenge = "2222222222222222222222222222222222222222222222222222222222222222"
	vecDirID     = "nakamotourflxwjnjpnrk7yc2nhkf6r62ed4gdfxmmn5f4saw5q5qoyd.onion:5222"
	vecHandshake = `{"nick":"J5example","features":{"nick_auth":true}}`
	vecSig       = "MEQCIDTAF2VwsN1hK3n+Hc2iGt2xkhURfTfCiJnM4myGM6T2AiAbXU8Kl5f16SwddktRYcl+gLHt5zS1nY7eLSi61e1g6w=="
)

// The wire round of docs/protocol.md §11.9 (handshake of §11.2, NG taker).
const (
	wireDirID          = "uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222"
	wireHandshakeEnv   = `{"type": 793, "line": "{\"app-name\": \"joinmarket\", \"directory\": false, \"location-string\": \"NOT-SERVING-ONION\", \"proto-ver\": 5, \"features\": {\"nick_auth\": true, \"peerlist_features\": true, \"ping\": true}, \"nick\": \"J554XN9CktYtikWE\", \"network\": \"mainnet\"}"}`
	wireChallengeEnv   = `{"type": 803, "line": "{\"challenge\":\"3b370151f35e0e3c9dc57f45de83766e629d7e0007cb32da9c0863f7d242e666\",\"directory-id\":\"uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222\"}"}`
	wireProofEnv       = `{"type": 805, "line": "{\"pubkey\":\"02bc4d0182a33c15469e581cf42fb1a2c9fcebab1651aa3158a23e10af59c18bd0\",\"signature\":\"MEQCIErFS9gfRMaF/ZUa2PMkZAnQmn1hsf6usPK1jWJ7DxJaAiA2/BSKaBe/I/AFEBipw3O/PavcufCllEPqYyhMsySqfg==\"}"}`
	wireResultOKEnv    = `{"type": 807, "line": "{\"code\":\"ok\",\"verified\":true}"}`
	wireResultBadEnv   = `{"type": 807, "line": "{\"code\":\"invalid\",\"verified\":false}"}`
	wireChallenge      = "3b370151f35e0e3c9dc57f45de83766e629d7e0007cb32da9c0863f7d242e666"
	wireNick           = "J554XN9CktYtikWE"
	wirePub            = "02bc4d0182a33c15469e581cf42fb1a2c9fcebab1651aa3158a23e10af59c18bd0"
	wireHandshakeSHA   = "909ad8f2d1519ca3c0dbcdf04c08de90325b0f33cf81ca3b700d11d1acdc8cfd"
	wireDigest         = "333f0f0a45b155ecf0002445f0fbf4ca20ad41801e53e86b07b22f746fabd054"
	wireTranscriptText = "nick-auth|3b370151f35e0e3c9dc57f45de83766e629d7e0007cb32da9c0863f7d242e666|uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222|909ad8f2d1519ca3c0dbcdf04c08de90325b0f33cf81ca3b700d11d1acdc8cfd|J554XN9CktYtikWE|02bc4d0182a33c15469e581cf42fb1a2c9fcebab1651aa3158a23e10af59c18bd0nick-auth-v1"
)

type envelope struct {
	Type int    `json:"type"`
	Line string `json:"line"`
}

func decodeEnv(t testing.TB, raw string) envelope {
	t.Helper()
	if err := CheckEnvelope([]byte(raw)); err != nil {
		t.Fatalf("CheckEnvelope(%s): %v", raw, err)
	}
	var e envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func vecKey(t testing.TB) *secp256k1.PrivateKey {
	t.Helper()
	b, err := hex.DecodeString(vecPriv)
	if err != nil {
		t.Fatal(err)
	}
	return secp256k1.PrivKeyFromBytes(b)
}

func TestNGVector(t *testing.T) {
	key := vecKey(t)
	pub := key.PubKey().SerializeCompressed()
	if got := hex.EncodeToString(pub); got != vecPub {
		t.Fatalf("pubkey %s, want %s", got, vecPub)
	}
	if got := jm.NickFromPubKey(pub); got != vecNick {
		t.Fatalf("nick %s, want %s", got, vecNick)
	}

	// The transcript's nick is the one derived from the key, not the "J5example" of
	// the handshake line (which is only hashed).
	p := Prove(key, vecChallenge, vecDirID, vecHandshake)
	if p.PubKey != vecPub || p.Signature != vecSig {
		t.Fatalf("Prove = %+v, want pubkey %s signature %s", p, vecPub, vecSig)
	}
	want := Proof{PubKey: vecPub, Signature: vecSig}
	parsed, err := ParseProof(want.Line())
	if err != nil || parsed != want {
		t.Fatalf("ParseProof(Line()) = %+v, %v", parsed, err)
	}
	if err := Verify(want, vecChallenge, vecDirID, vecHandshake, vecNick); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// The handshake line's own nick is not the signer's.
	if err := Verify(want, vecChallenge, vecDirID, vecHandshake, "J5example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Verify with nick J5example: %v, want invalid", err)
	}
}

func TestWireRound(t *testing.T) {
	hs := decodeEnv(t, wireHandshakeEnv)
	if got := HandshakeSHA256(hs.Line); got != wireHandshakeSHA {
		t.Fatalf("sha256(handshake line) = %s, want %s", got, wireHandshakeSHA)
	}
	tr := Transcript(wireChallenge, wireDirID, hs.Line, wireNick, wirePub)
	if string(tr) != wireTranscriptText {
		t.Fatalf("transcript\n%s\nwant\n%s", tr, wireTranscriptText)
	}
	d := SignedMessageDigest(tr)
	if got := hex.EncodeToString(d[:]); got != wireDigest {
		t.Fatalf("digest %s, want %s", got, wireDigest)
	}

	ch := decodeEnv(t, wireChallengeEnv)
	if ch.Type != TypeChallenge {
		t.Fatalf("challenge type %d", ch.Type)
	}
	c, err := ParseChallenge(ch.Line)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Challenge{Challenge: wireChallenge, DirectoryID: wireDirID}) || c.Line() != ch.Line {
		t.Fatalf("challenge %+v, line %s, want %s", c, c.Line(), ch.Line)
	}

	pe := decodeEnv(t, wireProofEnv)
	if pe.Type != TypeProof {
		t.Fatalf("proof type %d", pe.Type)
	}
	p, err := ParseProof(pe.Line)
	if err != nil {
		t.Fatal(err)
	}
	if p.Line() != pe.Line || p.PubKey != wirePub {
		t.Fatalf("proof line %s, want %s", p.Line(), pe.Line)
	}
	pub, _ := hex.DecodeString(p.PubKey)
	if got := jm.NickFromPubKey(pub); got != wireNick {
		t.Fatalf("nick %s, want %s", got, wireNick)
	}
	if err := Verify(p, c.Challenge, c.DirectoryID, hs.Line, wireNick); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	for _, tc := range []struct {
		env  string
		code Code
	}{{wireResultOKEnv, CodeOK}, {wireResultBadEnv, CodeInvalid}} {
		re := decodeEnv(t, tc.env)
		if re.Type != TypeResult || Result(tc.code) != re.Line {
			t.Fatalf("Result(%s) = %s, want %s", tc.code, Result(tc.code), re.Line)
		}
		if got, err := ParseResult(re.Line); err != nil || got != tc.code {
			t.Fatalf("ParseResult(%s) = %v, %v", re.Line, got, err)
		}
	}
}

func TestWrongContext(t *testing.T) {
	key := vecKey(t)
	p := Prove(key, vecChallenge, vecDirID, vecHandshake)
	other := strings.Repeat("3", 64)
	otherKey := secp256k1.PrivKeyFromBytes(bytes.Repeat([]byte{0x22}, 32))
	otherNick := jm.NickFromPubKey(otherKey.PubKey().SerializeCompressed())
	cases := []struct {
		name                       string
		challenge, dirID, hs, nick string
	}{
		{"challenge", other, vecDirID, vecHandshake, vecNick},
		{"directory-id", vecChallenge, "test:jm-directory-5222", vecHandshake, vecNick},
		{"handshake line with a trailing space", vecChallenge, vecDirID, vecHandshake + " ", vecNick},
		{"nick of another key", vecChallenge, vecDirID, vecHandshake, otherNick},
		{"nick not in nick form", vecChallenge, vecDirID, vecHandshake, "J5example"},
		{"nick with version 4", vecChallenge, vecDirID, vecHandshake, "J4" + vecNick[2:]},
		{"expected challenge upper-case", strings.ToUpper(strings.Repeat("a", 64)), vecDirID, vecHandshake, vecNick},
		{"expected challenge short", "22", vecDirID, vecHandshake, vecNick},
		{"expected directory-id invalid", vecChallenge, "Bad", vecHandshake, vecNick},
	}
	for _, tc := range cases {
		err := Verify(p, tc.challenge, tc.dirID, tc.hs, tc.nick)
		if !errors.Is(err, ErrInvalid) || CodeOf(err) != CodeInvalid || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %v, want invalid", tc.name, err)
		}
	}
	// A proof by another key for that key's own nick verifies.
	q := Prove(otherKey, vecChallenge, vecDirID, vecHandshake)
	if err := Verify(q, vecChallenge, vecDirID, vecHandshake, otherNick); err != nil {
		t.Fatal(err)
	}
	// ... but not with the first key's pubkey swapped in.
	swapped := Proof{PubKey: p.PubKey, Signature: q.Signature}
	if err := Verify(swapped, vecChallenge, vecDirID, vecHandshake, vecNick); !errors.Is(err, ErrInvalid) {
		t.Fatalf("swapped signature: %v", err)
	}
}

// der builds a DER signature from raw integer contents, without normalising
// anything, so that broken encodings can be built.
func der(r, s []byte) []byte {
	b := []byte{0x30, byte(4 + len(r) + len(s)), 0x02, byte(len(r))}
	b = append(b, r...)
	b = append(b, 0x02, byte(len(s)))
	return append(b, s...)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// curveN is the secp256k1 group order.
var curveN, _ = hex.DecodeString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")

// vecRS returns r and s of the §5.7 signature as minimal DER integer contents.
func vecRS(t testing.TB) (r, s []byte) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(vecSig)
	if err != nil {
		t.Fatal(err)
	}
	rl := int(raw[3])
	return raw[4 : 4+rl], raw[4+rl+2:]
}

// highS returns the §5.7 signature with s replaced by n - s.
func highS(t testing.TB) string {
	r, s := vecRS(t)
	var sc secp256k1.ModNScalar
	sc.SetByteSlice(s)
	sc.Negate()
	nb := sc.Bytes()
	hs := nb[:]
	if hs[0]&0x80 != 0 {
		hs = append([]byte{0}, hs...)
	}
	return b64(der(r, hs))
}

// offCurveX returns the hex of the smallest x for which 02||x is not a point.
func offCurveX(t testing.TB) string {
	for x := 1; x < 1000; x++ {
		h := fmt.Sprintf("02%064x", x)
		raw, _ := hex.DecodeString(h)
		if _, err := secp256k1.ParsePubKey(raw); err != nil {
			return h
		}
	}
	t.Fatal("no off-curve x found")
	return ""
}

func proofJSON(pub, sig string) string {
	return `{"pubkey":"` + pub + `","signature":"` + sig + `"}`
}

func TestParseProofStrict(t *testing.T) {
	r, s := vecRS(t)
	one := []byte{1}
	n33 := append([]byte{0}, curveN...)
	valid := proofJSON(vecPub, vecSig)
	if _, err := ParseProof(valid); err != nil {
		t.Fatal(err)
	}
	accept := []struct{ name, line string }{
		{"keys in the other order", `{"signature":"` + vecSig + `","pubkey":"` + vecPub + `"}`},
		{"whitespace", " {\"pubkey\" : \"" + vecPub + "\",\n\"signature\":\"" + vecSig + "\"}\r\n"},
		{"escaped key name", `{"pub\u006bey":"` + vecPub + `","signature":"` + vecSig + `"}`},
		{"escaped value", `{"pubkey":"\u0030` + vecPub[1:] + `","signature":"` + vecSig + `"}`},
		{"r = s = 1 (parses; fails Verify)", proofJSON(vecPub, b64(der(one, one)))},
		{"high S (parses; fails Verify)", proofJSON(vecPub, highS(t))},
		{"r = n-1", proofJSON(vecPub, b64(der(append([]byte{0}, func() []byte {
			m := bytes.Clone(curveN)
			m[31]--
			return m
		}()...), s)))},
	}
	for _, tc := range accept {
		if _, err := ParseProof(tc.line); err != nil {
			t.Errorf("%s: ParseProof(%s) = %v, want ok", tc.name, tc.line, err)
		}
	}

	sigBytes, _ := base64.StdEncoding.DecodeString(vecSig)
	padded := append(bytes.Clone(sigBytes), 0)
	padded[1]++
	longForm := append([]byte{0x30, 0x81, byte(len(sigBytes) - 2)}, sigBytes[2:]...)
	wrongTag := bytes.Clone(sigBytes)
	wrongTag[2] = 0x03
	sTag := bytes.Clone(sigBytes)
	sTag[4+len(r)] = 0x03
	negR := append([]byte{0x80}, r[1:]...)
	overlongR := bytes.Clone(sigBytes)
	overlongR[3] += 2
	shortOuter := bytes.Clone(sigBytes)
	shortOuter[1]--
	big := bytes.Repeat([]byte{0x01}, 33)
	reject := []struct{ name, line string }{
		{"empty", ""},
		{"not JSON", "pubkey"},
		{"array", `["` + vecPub + `","` + vecSig + `"]`},
		{"string", `"` + vecPub + `"`},
		{"trailing data", valid + "x"},
		{"two objects", valid + valid},
		{"duplicate key", `{"pubkey":"` + vecPub + `","pubkey":"` + vecPub + `","signature":"` + vecSig + `"}`},
		{"duplicate key via escape", `{"pubkey":"` + vecPub + `","pub\u006bey":"` + vecPub + `","signature":"` + vecSig + `"}`},
		{"extra key", `{"pubkey":"` + vecPub + `","signature":"` + vecSig + `","nick":"` + vecNick + `"}`},
		{"missing key", `{"pubkey":"` + vecPub + `"}`},
		{"wrong key name", `{"pub_key":"` + vecPub + `","signature":"` + vecSig + `"}`},
		{"upper-case key name", `{"PUBKEY":"` + vecPub + `","signature":"` + vecSig + `"}`},
		{"number instead of string", `{"pubkey":34,"signature":"` + vecSig + `"}`},
		{"null", `{"pubkey":null,"signature":"` + vecSig + `"}`},
		{"bool", `{"pubkey":"` + vecPub + `","signature":true}`},
		{"object value", `{"pubkey":{"k":"` + vecPub + `"},"signature":"` + vecSig + `"}`},
		{"array value", `{"pubkey":["` + vecPub + `"],"signature":"` + vecSig + `"}`},
		{"NaN", `{"pubkey":NaN,"signature":"` + vecSig + `"}`},
		{"Infinity in extra key", `{"pubkey":"` + vecPub + `","signature":"` + vecSig + `","x":Infinity}`},
		{"invalid UTF-8", "{\"pubkey\":\"" + vecPub + "\",\"signature\":\"" + vecSig + "\",\"\xff\":1}"},
		{"upper-case hex", proofJSON(strings.ToUpper(vecPub), vecSig)},
		{"mixed-case hex", proofJSON(vecPub[:10]+"F"+vecPub[11:], vecSig)},
		{"04 prefix, 33 bytes", proofJSON("04"+vecPub[2:], vecSig)},
		{"04 uncompressed", proofJSON(hex.EncodeToString(vecKey(t).PubKey().SerializeUncompressed()), vecSig)},
		{"05 prefix", proofJSON("05"+vecPub[2:], vecSig)},
		{"short pubkey", proofJSON(vecPub[:64], vecSig)},
		{"long pubkey", proofJSON(vecPub+"00", vecSig)},
		{"off-curve point", proofJSON(offCurveX(t), vecSig)},
		{"x >= p", proofJSON("02"+strings.Repeat("f", 64), vecSig)},
		{"pubkey with leading space", proofJSON(" "+vecPub[1:], vecSig)},
		{"base64 without padding", proofJSON(vecPub, strings.TrimRight(vecSig, "="))},
		{"base64 non-zero trailing bits", proofJSON(vecPub, vecSig[:len(vecSig)-3]+"x==")},
		{"base64 with newline", proofJSON(vecPub, vecSig[:40]+`\n`+vecSig[40:])},
		{"base64 with space", proofJSON(vecPub, vecSig[:40]+" "+vecSig[40:])},
		{"base64 url alphabet", proofJSON(vecPub, strings.NewReplacer("+", "-", "/", "_").Replace(vecSig))},
		{"base64 extra padding", proofJSON(vecPub, vecSig+"==")},
		{"empty signature", proofJSON(vecPub, "")},
		{"hex signature", proofJSON(vecPub, hex.EncodeToString(sigBytes))},
		{"DER trailing padding byte", proofJSON(vecPub, b64(padded))},
		{"DER appended byte, lengths unchanged", proofJSON(vecPub, b64(append(bytes.Clone(sigBytes), 0)))},
		{"DER long-form length", proofJSON(vecPub, b64(longForm))},
		{"DER outer length short", proofJSON(vecPub, b64(shortOuter))},
		{"DER wrong sequence tag", proofJSON(vecPub, b64(append([]byte{0x31}, sigBytes[1:]...)))},
		{"DER wrong r tag", proofJSON(vecPub, b64(wrongTag))},
		{"DER wrong s tag", proofJSON(vecPub, b64(sTag))},
		{"DER overlong r length", proofJSON(vecPub, b64(overlongR))},
		{"DER negative r", proofJSON(vecPub, b64(der(negR, s)))},
		{"DER negative s", proofJSON(vecPub, b64(der(r, append([]byte{0x80}, s[1:]...))))},
		{"DER r with superfluous zero", proofJSON(vecPub, b64(der(append([]byte{0}, r...), s)))},
		{"DER s with superfluous zero", proofJSON(vecPub, b64(der(r, append([]byte{0}, s...))))},
		{"DER r = 0", proofJSON(vecPub, b64(der([]byte{0}, s)))},
		{"DER s = 0", proofJSON(vecPub, b64(der(r, []byte{0})))},
		{"DER empty r", proofJSON(vecPub, b64(der(nil, s)))},
		{"DER empty s", proofJSON(vecPub, b64(der(r, nil)))},
		{"DER r = n", proofJSON(vecPub, b64(der(n33, s)))},
		{"DER s = n", proofJSON(vecPub, b64(der(r, n33)))},
		{"DER r > 2^256", proofJSON(vecPub, b64(der(big, s)))},
		{"DER too short", proofJSON(vecPub, b64(der(one, nil)))},
		{"DER r of 33 bytes after the sign byte", proofJSON(vecPub, b64(der(append([]byte{0}, bytes.Repeat([]byte{0x80}, 33)...), s)))},
		{"DER over 72 bytes", proofJSON(vecPub, b64(der(append([]byte{0}, bytes.Repeat([]byte{0x80}, 33)...), append([]byte{0}, bytes.Repeat([]byte{0x80}, 32)...))))},
	}
	for _, tc := range reject {
		_, err := ParseProof(tc.line)
		if !errors.Is(err, ErrMalformed) || CodeOf(err) != CodeMalformed {
			t.Errorf("%s: ParseProof(%s) = %v, want malformed", tc.name, tc.line, err)
		}
	}
}

func TestVerifyHighSAndMalformed(t *testing.T) {
	p, err := ParseProof(proofJSON(vecPub, highS(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = Verify(p, vecChallenge, vecDirID, vecHandshake, vecNick)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "high-S") {
		t.Fatalf("high-S: Verify = %v, want invalid (high-S)", err)
	}
	// r = s = 1 is well formed DER but no signature.
	p, err = ParseProof(proofJSON(vecPub, b64(der([]byte{1}, []byte{1}))))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, vecChallenge, vecDirID, vecHandshake, vecNick); !errors.Is(err, ErrInvalid) {
		t.Fatalf("r=s=1: Verify = %v, want invalid", err)
	}
	// A Proof that did not come from ParseProof is checked again.
	for _, bad := range []Proof{
		{PubKey: strings.ToUpper(vecPub), Signature: vecSig},
		{PubKey: vecPub, Signature: strings.TrimRight(vecSig, "=")},
	} {
		if err := Verify(bad, vecChallenge, vecDirID, vecHandshake, vecNick); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%+v) = %v, want malformed", bad, err)
		}
	}
}

func TestChallenge(t *testing.T) {
	c, err := NewChallenge("test:jm-directory-5222")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\{"challenge":"[0-9a-f]{64}","directory-id":"test:jm-directory-5222"\}$`).MatchString(c.Line()) {
		t.Fatalf("line %s", c.Line())
	}
	c2, _ := NewChallenge("test:jm-directory-5222")
	if c2.Challenge == c.Challenge {
		t.Fatal("two challenges are equal")
	}
	if got, err := ParseChallenge(c.Line()); err != nil || got != c {
		t.Fatalf("ParseChallenge = %+v, %v", got, err)
	}
	for _, id := range []string{"", "Test", "-x", "a b", "a/b"} {
		if _, err := NewChallenge(id); err == nil {
			t.Errorf("NewChallenge(%q) succeeded", id)
		}
	}
	h := strings.Repeat("ab", 32)
	for _, line := range []string{
		`{"challenge":"` + strings.ToUpper(h) + `","directory-id":"x"}`,
		`{"challenge":"` + h[:62] + `","directory-id":"x"}`,
		`{"challenge":"` + h + `","directory_id":"x"}`,
		`{"challenge":"` + h + `","directory-id":"X"}`,
		`{"challenge":"` + h + `","directory-id":""}`,
		`{"challenge":"` + h + `","directory-id":"x","extra":1}`,
		`{"challenge":"` + h + `","directory-id":"x","directory-id":"x"}`,
		`{"challenge":"` + h + `","directory-id":5222}`,
		`{"challenge":"` + h + `"}`,
	} {
		if _, err := ParseChallenge(line); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseChallenge(%s) = %v, want malformed", line, err)
		}
	}
}

func TestResult(t *testing.T) {
	for _, c := range []Code{CodeOK, CodeMalformed, CodeExpired, CodeInvalid, CodePolicy} {
		line := Result(c)
		want := fmt.Sprintf(`{"code":"%s","verified":%t}`, c, c == CodeOK)
		if line != want || c.String() != string(c) || !c.Valid() {
			t.Errorf("Result(%s) = %s, want %s", c, line, want)
		}
		if got, err := ParseResult(line); err != nil || got != c {
			t.Errorf("ParseResult(%s) = %v, %v", line, got, err)
		}
	}
	for _, line := range []string{
		`{"code":"ok","verified":false}`,
		`{"code":"invalid","verified":true}`,
		`{"code":"OK","verified":true}`,
		`{"code":"other","verified":false}`,
		`{"code":"ok","verified":"true"}`,
		`{"code":"ok","verified":1}`,
		`{"code":"ok"}`,
		`{"code":"ok","verified":true,"x":null}`,
		`{"code":"ok","code":"ok","verified":true}`,
		`{"code":["ok"],"verified":true}`,
	} {
		if _, err := ParseResult(line); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseResult(%s) = %v, want malformed", line, err)
		}
	}
	if Code("x").Valid() || CodeOf(nil) != CodeOK || CodeOf(errors.New("x")) != CodeMalformed {
		t.Fatal("Code helpers")
	}
	if CodeOf(fmt.Errorf("wrapped: %w", invalid("x"))) != CodeInvalid {
		t.Fatal("CodeOf does not unwrap")
	}
}

func TestCheckEnvelope(t *testing.T) {
	ok := []string{
		wireProofEnv,
		`{"type":805,"line":"{}"}`,
		`{"line":"x","type":805,"extra":{"a":[1,{"b":2}],"c":{"a":1}}}`,
		`{"type":805,"line":"x","big":1e400}`, // finite literal; NG accepts it too
		`{"type":805,"line":"x","nested":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
	}
	for _, raw := range ok {
		if err := CheckEnvelope([]byte(raw)); err != nil {
			t.Errorf("CheckEnvelope(%.80s) = %v", raw, err)
		}
	}
	bad := []string{
		``,
		`[]`,
		`805`,
		`{"type":805,"type":805,"line":"x"}`,
		`{"type":805,"line":"x","line":"y"}`,
		`{"type":805,"line":"x","ty\u0070e":1}`,
		`{"type":805,"line":"x","extra":{"a":1,"a":1}}`,
		`{"type":805,"line":"x","extra":[{"a":1},{"b":1,"b":2}]}`,
		`{"type":NaN,"line":"x"}`,
		`{"type":805,"line":"x","n":Infinity}`,
		`{"type":805,"line":"x","n":-Infinity}`,
		`{"type":805,"line":"x"} {}`,
		`{"type":805,"line":"x"`,
		`{"type":805,"line":"x",}`,
		`{"type":805 "line":"x"}`,
		"{\"type\":805,\"line\":\"\xc3\"}",
		"\xef\xbb\xbf{\"type\":805,\"line\":\"x\"}",
	}
	for _, raw := range bad {
		if err := CheckEnvelope([]byte(raw)); !errors.Is(err, ErrMalformed) {
			t.Errorf("CheckEnvelope(%q) = %v, want malformed", raw, err)
		}
	}
}

func TestDirectoryID(t *testing.T) {
	for _, s := range []string{"a", "0", "test:jm-directory-5222", wireDirID, "a.", "a_b-c:d.e"} {
		if !ValidDirectoryID(s) {
			t.Errorf("ValidDirectoryID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", ".a", ":a", "_a", "A", "aB", "a b", "a/b", "a\n", "ä"} {
		if ValidDirectoryID(s) {
			t.Errorf("ValidDirectoryID(%q) = true", s)
		}
	}
	host := strings.TrimSuffix(wireDirID, ":5222")
	for in, want := range map[string]string{
		wireDirID:                        wireDirID,
		strings.ToUpper(host) + ":5222":  wireDirID,
		host + ".:5222":                  wireDirID,
		host + ":80":                     host + ":80",
		strings.ToUpper(host) + ".:9999": host + ":9999",
	} {
		got, err := DirectoryIDForOnion(in)
		if err != nil || got != want {
			t.Errorf("DirectoryIDForOnion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	badSum := "a" + host[1:]
	if badSum == host {
		badSum = "b" + host[1:]
	}
	for _, in := range []string{
		"", host, host + ":", host + ":0", host + ":65536", host + ":05222", host + ":+5222",
		host + ": 5222", " " + wireDirID, "example.com:5222", "127.0.0.1:5222", "localhost:5222",
		badSum + ":5222", "NOT-SERVING-ONION", "expyuzz4wqqyqhjn.onion:5222", host + "..:5222",
	} {
		if got, err := DirectoryIDForOnion(in); err == nil {
			t.Errorf("DirectoryIDForOnion(%q) = %q, want error", in, got)
		}
	}
}

func TestValidNick(t *testing.T) {
	for _, s := range []string{vecNick, wireNick, "J5oM7Gg7dGBixDQO", "J0111111111111OO", "J9zzzzzzzzzzzzzz"} {
		if !ValidNick(s) {
			t.Errorf("ValidNick(%q) = false", s)
		}
	}
	for _, s := range []string{"", "J5example", "J52N8GdNkKtMA6T", "J52N8GdNkKtMA6TWx", "K52N8GdNkKtMA6TW", "JX2N8GdNkKtMA6TW",
		"J50N8GdNkKtMA6TW", "J5IN8GdNkKtMA6TW", "J5lN8GdNkKtMA6TW", "J5+N8GdNkKtMA6TW"} {
		if ValidNick(s) {
			t.Errorf("ValidNick(%q) = true", s)
		}
	}
}

func TestSignedMessageDigestCompactSize(t *testing.T) {
	// The compactsize prefix switches to 0xfd at 253 bytes; check the boundary
	// against a direct construction.
	for _, n := range []int{0, 1, 252, 253, 254, 0xffff, 0x10000} {
		msg := bytes.Repeat([]byte{'m'}, n)
		var pre []byte
		switch {
		case n < 0xfd:
			pre = []byte{byte(n)}
		case n <= 0xffff:
			pre = []byte{0xfd, byte(n), byte(n >> 8)}
		default:
			pre = []byte{0xfe, byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
		}
		b := append(append([]byte("\x18Bitcoin Signed Message:\n"), pre...), msg...)
		want := sha256d(b)
		if got := SignedMessageDigest(msg); got != want {
			t.Errorf("len %d: digest mismatch", n)
		}
	}
}

func sha256d(b []byte) [32]byte {
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

func FuzzParseProof(f *testing.F) {
	r, s := vecRS(f)
	f.Add(proofJSON(vecPub, vecSig))
	f.Add(proofJSON(wirePub, "MEQCIErFS9gfRMaF/ZUa2PMkZAnQmn1hsf6usPK1jWJ7DxJaAiA2/BSKaBe/I/AFEBipw3O/PavcufCllEPqYyhMsySqfg=="))
	f.Add(proofJSON(vecPub, highS(f)))
	f.Add(proofJSON(vecPub, b64(der([]byte{1}, []byte{1}))))
	f.Add(proofJSON(vecPub, b64(der(append([]byte{0}, r...), s))))
	f.Add(proofJSON(strings.ToUpper(vecPub), vecSig))
	f.Add(proofJSON(offCurveX(f), vecSig))
	f.Add(proofJSON(vecPub, strings.TrimRight(vecSig, "=")))
	f.Add(`{"pubkey":"` + vecPub + `","pubkey":"` + vecPub + `","signature":"` + vecSig + `"}`)
	f.Add(`{"pubkey":"` + vecPub + `","signature":"` + vecSig + `","x":[{"a":1,"b":NaN}]}`)
	f.Add(`{"signature":"` + vecSig + `","pub\u006bey":"` + vecPub + `"}`)
	f.Add(`{"pubkey":34,"signature":null}`)
	f.Add(`[{}]`)
	f.Fuzz(func(t *testing.T, line string) {
		_ = CheckEnvelope([]byte(line))
		if _, err := parseStrictObject([]byte(line)); err == nil && !json.Valid([]byte(line)) {
			t.Fatalf("strict parser accepted invalid JSON %q", line)
		}
		p, err := ParseProof(line)
		if err != nil {
			if CodeOf(err) != CodeMalformed {
				t.Fatalf("ParseProof(%q): %v is not malformed", line, err)
			}
			return
		}
		q, err := ParseProof(p.Line())
		if err != nil || q != p {
			t.Fatalf("ParseProof(%q) = %+v; its Line %s re-parses to %+v, %v", line, p, p.Line(), q, err)
		}
		if err := Verify(p, vecChallenge, vecDirID, vecHandshake, vecNick); err != nil && CodeOf(err) != CodeInvalid {
			t.Fatalf("Verify of a parsed proof: %v is not invalid", err)
		}
	})
}
