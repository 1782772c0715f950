package onionkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/jm"
)

// RFC 8032 section 7.1, test 1: the seed and its public key are the RFC's. The expanded
// key (SHA-512 of the seed, clamped) and the address were computed separately with
// Python's hashlib (sha512, sha3_256) and base64/base32 modules; the address is also
// the one tor's own unit tests derive from this public key.
const (
	rfcSeedHex     = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPublicHex   = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfcExpandedB64 = "MHyDhk8oM8tCei7xwAoBPP3/J2jZgMCjpSDwBpBN6U+bTwr+KAt0aneGhOdUQlAgV7dHOgPwj5b1o46Sh+Afjw=="
	rfcOnion       = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcKey is the RFC 8032 test 1 key.
func rfcKey(t testing.TB) Key {
	t.Helper()
	return FromSeed(mustHex(t, rfcSeedHex))
}

// onionByHand is a second, independent derivation of an address from a public key,
// with the standard library's upper-case base32.
func onionByHand(pub []byte) string {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{3})
	sum := h.Sum(nil)
	raw := append(append(append([]byte{}, pub...), sum[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw))
}

func TestKnownAnswer(t *testing.T) {
	t.Parallel()
	k := rfcKey(t)
	if got := hex.EncodeToString(k.PublicKey()); got != rfcPublicHex {
		t.Errorf("public key %s, want %s", got, rfcPublicHex)
	}
	if got := base64.StdEncoding.EncodeToString(k.ExpandedSecretKey()); got != rfcExpandedB64 {
		t.Errorf("expanded key %s, want %s", got, rfcExpandedB64)
	}
	if got := k.Onion(); got != rfcOnion {
		t.Errorf("Onion() = %s, want %s", got, rfcOnion)
	}
	if got := OnionFromPublic(mustHex(t, rfcPublicHex)); got != rfcOnion {
		t.Errorf("OnionFromPublic = %s, want %s", got, rfcOnion)
	}
	if got := k.ControlBlob(); got != "ED25519-V3:"+rfcExpandedB64 {
		t.Errorf("ControlBlob() = %s", got)
	}
	if !jm.ValidOnionV3(k.Onion() + ".onion") {
		t.Errorf("jm.ValidOnionV3 rejects %s.onion", k.Onion())
	}
	// From the expanded key alone (no seed), the same public key.
	k2, err := FromExpanded(k.ExpandedSecretKey())
	if err != nil || !k2.Equal(k) || !bytes.Equal(k2.PublicKey(), k.PublicKey()) {
		t.Errorf("FromExpanded: %v, %v", k2, err)
	}
}

// TestTwoRoutes: for random seeds, the scalar multiplication route agrees with
// crypto/ed25519's, the address with the hand-made derivation and with jm's validator.
func TestTwoRoutes(t *testing.T) {
	t.Parallel()
	for range 32 {
		seed := make([]byte, SeedSize)
		rand.Read(seed)
		k := FromSeed(seed)
		want := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		if !want.Equal(k.PublicKey()) {
			t.Fatalf("seed %x: public key %x, crypto/ed25519 says %x", seed, k.PublicKey(), want)
		}
		on := k.Onion()
		if len(on) != AddressLen || on != onionByHand(want) {
			t.Fatalf("seed %x: Onion() = %s, by hand %s", seed, on, onionByHand(want))
		}
		if !jm.ValidOnionV3(on+".onion") || !jm.ValidOnionV3(strings.ToUpper(on)+".onion") {
			t.Fatalf("jm.ValidOnionV3 rejects %s", on)
		}
		// The validator is not trivially true: one changed character breaks the checksum.
		bad := []byte(on)
		bad[10] = map[bool]byte{true: 'b', false: 'a'}[bad[10] == 'a']
		if jm.ValidOnionV3(string(bad) + ".onion") {
			t.Fatalf("jm.ValidOnionV3 accepts %s", bad)
		}
	}
	k, err := Generate()
	if err != nil || k.IsZero() {
		t.Fatal(err)
	}
	if k2, _ := Generate(); k2.Equal(k) {
		t.Fatal("Generate returned the same key twice")
	}
}

func TestPanics(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"FromSeed(31 bytes)":        func() { FromSeed(make([]byte, 31)) },
		"OnionFromPublic(33 bytes)": func() { OnionFromPublic(make([]byte, 33)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestNoSecretInFormatting: printing a Key shows the address only.
func TestNoSecretInFormatting(t *testing.T) {
	t.Parallel()
	k := rfcKey(t)
	s := fmt.Sprintf("%v %+v %#v %s", k, k, k, k)
	b64 := base64.StdEncoding.EncodeToString(k.ExpandedSecretKey())
	if strings.Contains(s, b64[:20]) || strings.Contains(s, hex.EncodeToString(k.ExpandedSecretKey()[:8])) ||
		strings.Contains(s, "48 124") /* decimal bytes of the secret */ || !strings.Contains(s, rfcOnion+".onion") {
		t.Errorf("formatted key: %s", s)
	}
	if got := (Key{}).String(); got != "onionkey.Key(zero)" {
		t.Errorf("zero key: %s", got)
	}
}

func TestFormatsRoundTrip(t *testing.T) {
	t.Parallel()
	k, _ := Generate()

	sf := k.SecretFile()
	if len(sf) != 96 || string(sf[:32]) != "== ed25519v1-secret: type0 ==\x00\x00\x00" || !bytes.Equal(sf[32:], k.ExpandedSecretKey()) {
		t.Fatalf("SecretFile() = %q", sf)
	}
	k2, err := ParseSecretFile(sf)
	if err != nil || !k2.Equal(k) || k2.Onion() != k.Onion() {
		t.Fatalf("ParseSecretFile: %v, %v", k2, err)
	}

	pf := k.PublicFile()
	if len(pf) != 64 || string(pf[:32]) != "== ed25519v1-public: type0 ==\x00\x00\x00" || !bytes.Equal(pf[32:], k.PublicKey()) {
		t.Fatalf("PublicFile() = %q", pf)
	}
	pub, err := ParsePublicFile(pf)
	if err != nil || !pub.Equal(k.PublicKey()) {
		t.Fatalf("ParsePublicFile: %x, %v", pub, err)
	}

	blob := k.ControlBlob()
	if len(blob) != 99 || !strings.HasPrefix(blob, "ED25519-V3:") || !strings.HasSuffix(blob, "==") {
		t.Fatalf("ControlBlob() = %q", blob)
	}
	k3, err := ParseControlBlob(blob)
	if err != nil || !k3.Equal(k) {
		t.Fatalf("ParseControlBlob: %v, %v", k3, err)
	}
}

func TestParseSecretFileRejects(t *testing.T) {
	t.Parallel()
	good := rfcKey(t).SecretFile()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrLength},
		{"header only", good[:32], ErrLength},
		{"one byte short", good[:95], ErrLength},
		{"one byte long", append(bytes.Clone(good), 0), ErrLength},
		{"trailing newline", append(bytes.Clone(good), '\n'), ErrLength},
		{"control blob", []byte(rfcKey(t).ControlBlob()), ErrLength},
		{"public header", mod(func(b []byte) []byte { copy(b, publicHeader); return b }), ErrHeader},
		{"type1", mod(func(b []byte) []byte { b[27] = '1'; return b }), ErrHeader},
		{"non-NUL padding", mod(func(b []byte) []byte { b[31] = ' '; return b }), ErrHeader},
		{"zeros", make([]byte, 96), ErrHeader},
		{"low bits set", mod(func(b []byte) []byte { b[32] |= 1; return b }), ErrNotClamped},
		{"bit 255 set", mod(func(b []byte) []byte { b[63] |= 0x80; return b }), ErrNotClamped},
		{"bit 254 clear", mod(func(b []byte) []byte { b[63] &^= 0x40; return b }), ErrNotClamped},
	} {
		k, err := ParseSecretFile(c.in)
		if !errors.Is(err, c.want) || !k.IsZero() {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		} else if !strings.HasPrefix(err.Error(), "onionkey: hs_ed25519_secret_key: ") {
			t.Errorf("%s: message %q", c.name, err)
		}
	}
	if _, err := ParsePublicFile(good[:64]); !errors.Is(err, ErrHeader) {
		t.Errorf("public file with the secret header: %v", err)
	}
	if _, err := ParsePublicFile(rfcKey(t).PublicFile()[:63]); !errors.Is(err, ErrLength) {
		t.Errorf("short public file: %v", err)
	}
}

func TestParseControlBlobRejects(t *testing.T) {
	t.Parallel()
	good := rfcKey(t).ControlBlob()
	enc := strings.TrimPrefix(good, "ED25519-V3:")
	unclamped := rfcKey(t).ExpandedSecretKey()
	unclamped[0] |= 4
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrControlBlob},
		{"no prefix", enc, ErrControlBlob},
		{"lowercase prefix", "ed25519-v3:" + enc, ErrControlBlob},
		{"RSA", "RSA1024:" + enc, ErrControlBlob},
		{"leading space", " " + good, ErrControlBlob},
		{"trailing newline", good + "\n", ErrControlBlob},
		{"no padding", strings.TrimRight(good, "="), ErrControlBlob},
		{"short", good[:len(good)-4], ErrControlBlob},
		{"long", good + "AAAA", ErrControlBlob},
		{"bad character", good[:20] + "!" + good[21:], ErrControlBlob},
		{"URL alphabet", "ED25519-V3:" + base64.URLEncoding.EncodeToString(rfcKey(t).ExpandedSecretKey()), ErrControlBlob},
		{"newline inside", good[:40] + "\n" + good[41:], ErrControlBlob},
		{"non-canonical padding bits", good[:len(good)-3] + "x==", ErrControlBlob},
		{"48 bytes", "ED25519-V3:" + base64.StdEncoding.EncodeToString(make([]byte, 48)) + strings.Repeat("A", 24), ErrControlBlob},
		{"unclamped", "ED25519-V3:" + base64.StdEncoding.EncodeToString(unclamped), ErrNotClamped},
	} {
		k, err := ParseControlBlob(c.in)
		if !errors.Is(err, c.want) || !k.IsZero() {
			t.Errorf("%s (%q): %v, want %v", c.name, c.in, err, c.want)
		}
	}
	if _, err := FromExpanded(make([]byte, 63)); !errors.Is(err, ErrLength) {
		t.Errorf("FromExpanded(63 bytes): %v", err)
	}
}
