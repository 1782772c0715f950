// Package onionkey handles Tor v3 onion-service keys: the expanded ed25519 secret key
// tor keeps for a service, the 56-character address derived from it, tor's
// hs_ed25519_secret_key / hs_ed25519_public_key files, the control port's
// "ED25519-V3:" key blob, key files kept in a data dir, and vanity-address search.
//
// It is written by hand on the standard library plus filippo.io/edwards25519 because no
// module reachable from this build implements tor's key formats: crypto/ed25519 only
// works from a 32-byte seed, while tor stores (and mkp224o produces) the 64-byte
// expanded key, which has no seed; deriving its public key needs a plain scalar
// multiplication, which edwards25519 provides.
//
// The expanded key is tor's: SHA-512(seed) with the first 32 bytes clamped as in
// RFC 8032 (the secret scalar, little-endian) followed by 32 bytes used to derive
// signature nonces. Keys found by Search have no seed at all, exactly like mkp224o's.
package onionkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// Sizes of the key material.
const (
	// ExpandedSize is the length of an expanded secret key.
	ExpandedSize = 64
	// PublicSize is the length of a public key.
	PublicSize = ed25519.PublicKeySize
	// SeedSize is the length of a seed for FromSeed.
	SeedSize = ed25519.SeedSize
	// AddressLen is the length of a v3 onion address without ".onion".
	AddressLen = 56
)

// Errors returned (wrapped, with details) by the parsers; test with errors.Is.
var (
	// ErrLength: the input does not have the exact length of the format.
	ErrLength = errors.New("wrong length")
	// ErrHeader: a key file does not start with tor's header for that file.
	ErrHeader = errors.New("wrong header")
	// ErrNotClamped: the secret scalar (the first 32 bytes of an expanded key) is not
	// in the clamped form tor produces, so tor would derive a different public key.
	ErrNotClamped = errors.New("secret scalar is not clamped")
	// ErrControlBlob: a control-port key blob is not "ED25519-V3:" followed by the
	// standard, padded base64 of a 64-byte expanded key.
	ErrControlBlob = errors.New("not an ED25519-V3 control-port key blob")
)

// Key is an onion service's key pair: tor's 64-byte expanded ed25519 secret key and
// the 32-byte public key it determines. The zero Key is not a valid key; obtain one
// from Generate, FromSeed, FromExpanded, a parser, LoadOrCreate, Import or Search.
//
// Key implements fmt.Stringer and fmt.GoStringer showing only the address, so that
// printing a Key never reveals the secret.
type Key struct {
	secret [ExpandedSize]byte
	public [PublicSize]byte
}

// Generate returns a new key from a random seed, as tor does.
func Generate() (Key, error) {
	var seed [SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return Key{}, fmt.Errorf("onionkey: reading randomness: %w", err)
	}
	return FromSeed(seed[:]), nil
}

// FromSeed derives the key of a 32-byte ed25519 seed (RFC 8032): the expanded key is
// SHA-512(seed) with its first half clamped. It panics if len(seed) != SeedSize, like
// ed25519.NewKeyFromSeed.
func FromSeed(seed []byte) Key {
	if len(seed) != SeedSize {
		panic(fmt.Sprintf("onionkey: bad seed length %d, want %d", len(seed), SeedSize))
	}
	var k Key
	k.secret = sha512.Sum512(seed)
	clamp(k.secret[:32])
	k.public = publicOf(&k.secret)
	return k
}

// FromExpanded returns the key of a 64-byte expanded secret key in tor's format. The
// scalar must be clamped (ErrNotClamped otherwise); the public key is computed from it.
func FromExpanded(expanded []byte) (Key, error) {
	if len(expanded) != ExpandedSize {
		return Key{}, fmt.Errorf("onionkey: expanded key: %w: %d bytes, want %d", ErrLength, len(expanded), ExpandedSize)
	}
	if !isClamped(expanded[:32]) {
		return Key{}, fmt.Errorf("onionkey: expanded key: %w", ErrNotClamped)
	}
	var k Key
	copy(k.secret[:], expanded)
	k.public = publicOf(&k.secret)
	return k, nil
}

// clamp applies RFC 8032's clamping to a 32-byte scalar in place.
func clamp(s []byte) {
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
}

// isClamped reports whether the 32-byte scalar s is unchanged by clamp.
func isClamped(s []byte) bool {
	return s[0]&7 == 0 && s[31]&0xc0 == 0x40
}

// publicOf computes the public key of an expanded secret key: scalar × base point.
func publicOf(secret *[ExpandedSize]byte) [PublicSize]byte {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(secret[:32])
	if err != nil { // only on a wrong length, impossible here
		panic("onionkey: " + err.Error())
	}
	var pub [PublicSize]byte
	copy(pub[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return pub
}

// ExpandedSecretKey returns a copy of the 64-byte expanded secret key.
func (k Key) ExpandedSecretKey() []byte {
	b := make([]byte, ExpandedSize)
	copy(b, k.secret[:])
	return b
}

// PublicKey returns a copy of the 32-byte public key.
func (k Key) PublicKey() ed25519.PublicKey {
	b := make([]byte, PublicSize)
	copy(b, k.public[:])
	return b
}

// Equal reports whether k and o are the same key (the same expanded secret key), in
// constant time.
func (k Key) Equal(o Key) bool {
	return subtle.ConstantTimeCompare(k.secret[:], o.secret[:]) == 1
}

// IsZero reports whether k is the zero Key, which is not a usable key.
func (k Key) IsZero() bool {
	return k == Key{}
}

// Onion returns the key's v3 onion address without ".onion": 56 lowercase base32
// characters.
func (k Key) Onion() string {
	return onionOf(&k.public)
}

// String returns a description naming only the onion address, never the secret.
func (k Key) String() string {
	if k.IsZero() {
		return "onionkey.Key(zero)"
	}
	return "onionkey.Key(" + k.Onion() + ".onion)"
}

// GoString is String, so that %#v does not print the secret either.
func (k Key) GoString() string { return k.String() }

// onionVersion is the version byte of v3 addresses.
const onionVersion = 0x03

// onionChecksumPrefix starts the input of the address checksum.
const onionChecksumPrefix = ".onion checksum"

// b32 is base32 (RFC 4648 alphabet) in lowercase without padding, as onion addresses use.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// OnionFromPublic returns the v3 onion address (without ".onion") of a 32-byte ed25519
// public key: base32(pubkey ‖ checksum[:2] ‖ 0x03) with checksum =
// SHA3-256(".onion checksum" ‖ pubkey ‖ 0x03). It panics if len(pub) != PublicSize.
func OnionFromPublic(pub []byte) string {
	if len(pub) != PublicSize {
		panic(fmt.Sprintf("onionkey: bad public key length %d, want %d", len(pub), PublicSize))
	}
	return onionOf((*[PublicSize]byte)(pub))
}

func onionOf(pub *[PublicSize]byte) string {
	var in [len(onionChecksumPrefix) + PublicSize + 1]byte
	copy(in[:], onionChecksumPrefix)
	copy(in[len(onionChecksumPrefix):], pub[:])
	in[len(in)-1] = onionVersion
	sum := sha3.Sum256(in[:])

	var raw [PublicSize + 3]byte
	copy(raw[:], pub[:])
	raw[PublicSize] = sum[0]
	raw[PublicSize+1] = sum[1]
	raw[PublicSize+2] = onionVersion
	return b32.EncodeToString(raw[:])
}
