package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/jm-directory/jm-directory-server/internal/fixtures"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestHandshakeMatchesReference rebuilds every client handshake of the reference
// transcripts from its nick, location and network and compares bytes: key order, spacing
// and escaping must be what a reference client sends.
func TestHandshakeMatchesReference(t *testing.T) {
	n := 0
	for _, sc := range fixtures.Scenarios {
		recs, err := fixtures.Load(sc)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Dir != "c2s" || r.Type != wire.TypeHandshake {
				continue
			}
			var hs struct {
				Nick     string `json:"nick"`
				Location string `json:"location-string"`
				Network  string `json:"network"`
			}
			if err := json.Unmarshal([]byte(r.Line), &hs); err != nil {
				t.Fatal(err)
			}
			got := handshakeLine(hs.Nick, hs.Location, hs.Network)
			if want := r.Raw + "\r\n"; string(got) != want {
				t.Errorf("%s conn %d:\n got %q\nwant %q", sc, r.Conn, got, want)
			}
			n++
		}
	}
	if n < 4 {
		t.Fatalf("only %d handshakes in the fixtures", n)
	}
}

// TestEnvelopeMatchesReference re-encodes every line a reference client sent (pubmsgs,
// privmsgs) and compares bytes.
func TestEnvelopeMatchesReference(t *testing.T) {
	n := 0
	for _, sc := range fixtures.Scenarios {
		recs, err := fixtures.Load(sc)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Dir != "c2s" || (r.Type != wire.TypePubmsg && r.Type != wire.TypePrivmsg) {
				continue
			}
			if got, want := string(appendEnvelope(nil, r.Type, r.Line)), r.Raw+"\r\n"; got != want {
				t.Errorf("%s: got %q want %q", sc, got, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no client pubmsgs or privmsgs in the fixtures")
	}
}

func TestPyQuoted(t *testing.T) {
	for in, want := range map[string]string{
		"plain":          `"plain"`,
		`q"b\`:           `"q\"b\\"`,
		"\n\r\t\b\f":     `"\n\r\t\b\f"`,
		"\x01\x1f\x7f":   `"\u0001\u001f` + "\x7f" + `"`,
		"é":              `"\u00e9"`,
		"€":              `"\u20ac"`,
		"😀":              `"\ud83d\ude00"`,
		"a/b<c>&":        `"a/b<c>&"`,
		"nick!PUBLIC!x ": `"nick!PUBLIC!x "`,
	} {
		if got := string(appendPyQuoted(nil, in)); got != want {
			t.Errorf("%q: got %s want %s", in, got, want)
		}
		// And it decodes back.
		env, err := wire.Decode(appendEnvelope(nil, 687, in)[:len(appendEnvelope(nil, 687, in))-2])
		if err != nil || env.Line != in {
			t.Errorf("%q: decode %q, %v", in, env.Line, err)
		}
	}
}

// decodeLine checks that b is one CRLF-terminated envelope and decodes it.
func decodeLine(t *testing.T, b []byte) wire.Envelope {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("not one CRLF line: %q", b)
	}
	env, err := wire.Decode(b[:len(b)-2])
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	if !bytes.HasPrefix(b, []byte(`{"type": `)) || !bytes.Contains(b, []byte(`, "line": "`)) {
		t.Fatalf("not Python json.dumps style: %q", b)
	}
	return env
}

// checkSigned verifies a privmsg's trailing pubkey and signature as a reference receiver
// does (docs/protocol.md §4.4): signature over the args + "onion-network", nick bound to the key.
func checkSigned(t *testing.T, text string) {
	t.Helper()
	from, _, rest, ok := wire.SplitJM(text)
	if !ok {
		t.Fatalf("not from!to!rest: %q", text)
	}
	f := strings.Split(rest, " ")
	if len(f) < 4 {
		t.Fatalf("too few fields: %q", rest)
	}
	pubHex, sigB64 := f[len(f)-2], f[len(f)-1]
	args := strings.Join(f[1:len(f)-2], " ")
	pub, err := hex.DecodeString(pubHex)
	if err != nil {
		t.Fatal(err)
	}
	if jm.NickFromPubKey(pub) != from {
		t.Fatalf("nick %s does not match key %s", from, pubHex)
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ecdsa.ParseDERSignature(der)
	if err != nil {
		t.Fatal(err)
	}
	h := signedMessageHash(args + hostID)
	if !sig.Verify(h[:], pk) {
		t.Fatalf("signature does not verify: %q", text)
	}
}

func TestLineBuilders(t *testing.T) {
	m, tk := newIdentity(), newIdentity()
	if !jm.ValidNick(m.nick) || !jm.ValidNick(tk.nick) {
		t.Fatalf("invalid nicks %s %s", m.nick, tk.nick)
	}

	env := decodeLine(t, handshakeLine(m.nick, "127.0.0.1:27102", "regtest"))
	if env.Type != wire.TypeHandshake || !strings.HasPrefix(env.Line, `{"app-name": "joinmarket", "directory": false, "location-string": "127.0.0.1:27102", "proto-ver": 5, "features": {}, "nick": "`+m.nick) {
		t.Fatalf("handshake %d %q", env.Type, env.Line)
	}

	env = decodeLine(t, orderbookLine(tk.nick))
	if env.Type != wire.TypePubmsg || env.Line != tk.nick+"!PUBLIC!orderbook" {
		t.Fatalf("orderbook %q", env.Line)
	}

	for _, size := range []int{0, 300, 5000} {
		pre, suf := offerTemplate(m.nick, size)
		b := appendOffer(nil, pre, suf, 1234)
		env = decodeLine(t, b)
		if env.Type != wire.TypePubmsg || !strings.HasPrefix(env.Line, m.nick+"!PUBLIC!sw0reloffer 1234 27300 1000000000 0 0.0002") {
			t.Fatalf("offer %q", env.Line)
		}
		if size > 0 && (len(b)-2 < size-5 || len(b)-2 > size+5) {
			t.Fatalf("size %d: line is %d bytes", size, len(b)-2)
		}
		f := newFanout(fanoutConfig{publishers: 1}, []*peer{{id: m}})
		if pi, seq, ok := f.parseOffer(b); !ok || pi != 0 || seq != 1234 {
			t.Fatalf("parseOffer: %d %d %v", pi, seq, ok)
		}
		// The directory may relay it compactly.
		compact := wire.AppendEnvelope(nil, wire.TypePubmsg, env.Line)
		if pi, seq, ok := f.parseOffer(compact); !ok || pi != 0 || seq != 1234 {
			t.Fatalf("parseOffer compact: %d %d %v", pi, seq, ok)
		}
	}

	env = decodeLine(t, offerReplyLine(m, tk.nick))
	if env.Type != wire.TypePrivmsg || !strings.HasPrefix(env.Line, m.nick+"!"+tk.nick+"!sw0reloffer 0 27300 1000000000 0 0.0002 "+m.pubHex+" ") {
		t.Fatalf("offer reply %q", env.Line)
	}
	checkSigned(t, env.Line)

	rnd := strings.Repeat("0123456789abcdef", 8)
	env = decodeLine(t, fillLine(tk, m.nick, 42, rnd))
	if env.Type != wire.TypePrivmsg || !strings.HasPrefix(env.Line, tk.nick+"!"+m.nick+"!fill 42 1000000 "+rnd[:64]+" P"+rnd[64:]+" "+tk.pubHex+" ") {
		t.Fatalf("fill %q", env.Line)
	}
	checkSigned(t, env.Line)

	env = decodeLine(t, pubkeyLine(m, tk.nick, 42, rnd))
	if env.Type != wire.TypePrivmsg || !strings.HasPrefix(env.Line, m.nick+"!"+tk.nick+"!pubkey 000000000000002a"+rnd[:48]+" ") {
		t.Fatalf("pubkey %q", env.Line)
	}
	checkSigned(t, env.Line)
}

// TestSignatureScheme verifies the worked example of docs/protocol.md §11.5 with our
// signed-message hash: the hash construction is the reference one.
func TestSignatureScheme(t *testing.T) {
	pub, _ := hex.DecodeString("032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e")
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := base64.StdEncoding.DecodeString("MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w==")
	sig, err := ecdsa.ParseDERSignature(der)
	if err != nil {
		t.Fatal(err)
	}
	h := signedMessageHash("0 27300 4000000 0 0.00002" + hostID)
	if !sig.Verify(h[:], pk) {
		t.Fatal("the §11.5 example signature does not verify")
	}
	if jm.NickFromPubKey(pub) != "J59EiPRQrQkXMk5d" {
		t.Fatal("nick")
	}
}
