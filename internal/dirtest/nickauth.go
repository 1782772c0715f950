package dirtest

import (
	"encoding/hex"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// AuthSpec describes a joinmarket-ng client that authenticates its nick (JMP-0005, as
// joinmarket-ng 0.37 clients do): its key (the nick is derived from it), whether it is
// a maker, the directory-id it expects, and what to send instead of a correct proof.
type AuthSpec struct {
	Key         *secp256k1.PrivateKey // nil = a fresh key
	Maker       bool
	Location    string // "" = as PeerSpec
	DirectoryID string // "" = the directory's listen address, lower-cased (what an NG client derives)
	// Proof, when set, is sent as the 805 line instead of the correct proof.
	Proof func(correct nickauth.Proof) string
	// Send, when set, is sent instead of the whole 805 envelope (raw, CRLF appended).
	Send string
	// Silent sends no proof at all.
	Silent bool
}

// NewKey returns a fresh secp256k1 key.
func NewKey(t testing.TB) *secp256k1.PrivateKey {
	t.Helper()
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NickOf is the nick of key k (docs/protocol.md §4.1).
func NickOf(k *secp256k1.PrivateKey) string {
	return jm.NickFromPubKey(k.PubKey().SerializeCompressed())
}

// JoinAuth connects a client offering nick authentication and runs the round: 793 with
// nick_auth, ping and peerlist_features; the 795, which must accept and advertise
// nick_auth; the 803, whose directory-id must be the expected one; the 805; and returns
// the client with the code of the 807 the directory answered.
func (tg *Target) JoinAuth(t *testing.T, s AuthSpec) (*Client, nickauth.Code) {
	t.Helper()
	if s.Key == nil {
		s.Key = NewKey(t)
	}
	spec := PeerSpec{Maker: s.Maker, Nick: NickOf(s.Key), Location: s.Location,
		Features: map[string]bool{"nick_auth": true, "ping": true, "peerlist_features": true}}.Resolve(t)
	c := tg.Dial(t)
	c.Nick, c.Location, c.Features = spec.Nick, spec.Location, spec.Features
	hello := HelloLine(spec.Nick, spec.Location, tg.Network, 5, false, spec.Features)
	c.Send(wire.TypeHandshake, hello)
	dn := c.RecvDN()
	if dn["accepted"] != true {
		t.Fatalf("%s: handshake not accepted: %v", c.Nick, dn["motd"])
	}
	if f, _ := dn["features"].(map[string]any); f["nick_auth"] != true {
		t.Fatalf("%s: the 795 does not advertise nick_auth: %v", c.Nick, dn["features"])
	}
	ch, err := nickauth.ParseChallenge(c.Expect(wire.TypeNickAuthChallenge).Line)
	if err != nil {
		t.Fatalf("%s: challenge: %v", c.Nick, err)
	}
	want := s.DirectoryID
	if want == "" {
		want = tg.Addr
	}
	if ch.DirectoryID != want {
		t.Fatalf("%s: challenge for directory-id %q, want %q", c.Nick, ch.DirectoryID, want)
	}
	proof := nickauth.Prove(s.Key, ch.Challenge, ch.DirectoryID, hello)
	switch {
	case s.Silent:
	case s.Send != "":
		c.SendRaw(s.Send + "\r\n")
	case s.Proof != nil:
		c.Send(wire.TypeNickAuthProof, s.Proof(proof))
	default:
		c.Send(wire.TypeNickAuthProof, proof.Line())
	}
	code, err := nickauth.ParseResult(c.Expect(wire.TypeNickAuthResult).Line)
	if err != nil {
		t.Fatalf("%s: result: %v", c.Nick, err)
	}
	return c, code
}

// PubKeyHex is k's compressed public key in lower-case hex.
func PubKeyHex(k *secp256k1.PrivateKey) string {
	return hex.EncodeToString(k.PubKey().SerializeCompressed())
}
