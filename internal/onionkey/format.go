package onionkey

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
)

// Tor's key file names in a HiddenServiceDir.
const (
	// SecretFileName is the file holding the expanded secret key.
	SecretFileName = "hs_ed25519_secret_key"
	// PublicFileName is the file holding the public key.
	PublicFileName = "hs_ed25519_public_key"
)

// Tor's key files are a 32-byte header (a tag padded with NULs) followed by the key.
const (
	fileHeaderSize = 32
	secretTag      = "== ed25519v1-secret: type0 =="
	publicTag      = "== ed25519v1-public: type0 =="
	// SecretFileSize is the exact size of an hs_ed25519_secret_key file.
	SecretFileSize = fileHeaderSize + ExpandedSize
	// PublicFileSize is the exact size of an hs_ed25519_public_key file.
	PublicFileSize = fileHeaderSize + PublicSize
)

// header returns tag padded with NULs to fileHeaderSize bytes.
func header(tag string) []byte {
	h := make([]byte, fileHeaderSize)
	copy(h, tag)
	return h
}

var (
	secretHeader = header(secretTag)
	publicHeader = header(publicTag)
)

// SecretFile returns the key in tor's hs_ed25519_secret_key format: the 32-byte header
// "== ed25519v1-secret: type0 ==\0\0\0" followed by the 64-byte expanded secret key.
func (k Key) SecretFile() []byte {
	b := make([]byte, 0, SecretFileSize)
	b = append(b, secretHeader...)
	return append(b, k.secret[:]...)
}

// PublicFile returns the public key in tor's hs_ed25519_public_key format: the 32-byte
// header "== ed25519v1-public: type0 ==\0\0\0" followed by the 32-byte public key.
func (k Key) PublicFile() []byte {
	b := make([]byte, 0, PublicFileSize)
	b = append(b, publicHeader...)
	return append(b, k.public[:]...)
}

// ParseSecretFile parses the contents of a tor hs_ed25519_secret_key file (as tor and
// mkp224o write it). It is strict: exactly SecretFileSize bytes (ErrLength), tor's exact
// header (ErrHeader), and a clamped scalar (ErrNotClamped).
func ParseSecretFile(b []byte) (Key, error) {
	if err := checkFile(b, secretHeader, SecretFileSize, "secret"); err != nil {
		return Key{}, err
	}
	k, err := FromExpanded(b[fileHeaderSize:])
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %s: %w", SecretFileName, unwrapPrefix(err))
	}
	return k, nil
}

// ParsePublicFile parses the contents of a tor hs_ed25519_public_key file, as strictly
// as ParseSecretFile. Whether the key is a valid curve point is not checked.
func ParsePublicFile(b []byte) (ed25519.PublicKey, error) {
	if err := checkFile(b, publicHeader, PublicFileSize, "public"); err != nil {
		return nil, err
	}
	return bytes.Clone(b[fileHeaderSize:]), nil
}

// checkFile checks the length and header of a key file.
func checkFile(b, hdr []byte, size int, kind string) error {
	name := SecretFileName
	if kind == "public" {
		name = PublicFileName
	}
	if len(b) != size {
		return fmt.Errorf("onionkey: %s: %w: %d bytes, want %d", name, ErrLength, len(b), size)
	}
	if !bytes.Equal(b[:fileHeaderSize], hdr) {
		if bytes.HasPrefix(b, []byte("== ed25519v1-")) {
			return fmt.Errorf("onionkey: %s: %w: %q, want %q (not a %s key file)",
				name, ErrHeader, bytes.TrimRight(b[:fileHeaderSize], "\x00"), hdr[:len(hdr)-3], kind)
		}
		return fmt.Errorf("onionkey: %s: %w: not a tor ed25519 %s key file", name, ErrHeader, kind)
	}
	return nil
}

// unwrapPrefix strips the "onionkey: " of a nested error message, to avoid repeating it.
func unwrapPrefix(err error) error {
	return prefixless{err}
}

type prefixless struct{ err error }

func (p prefixless) Error() string { return strings.TrimPrefix(p.err.Error(), "onionkey: ") }
func (p prefixless) Unwrap() error { return p.err }

// ControlBlobPrefix starts a control-port key blob.
const ControlBlobPrefix = "ED25519-V3:"

// controlBlobLen is the length of a control blob: the prefix and 88 base64 characters.
var controlBlobLen = len(ControlBlobPrefix) + base64.StdEncoding.EncodedLen(ExpandedSize)

// ControlBlob returns the key as tor's control port takes it in ADD_ONION (and returns
// it without DiscardPK): "ED25519-V3:" followed by the standard base64, with padding, of
// the 64-byte expanded secret key.
func (k Key) ControlBlob() string {
	return ControlBlobPrefix + base64.StdEncoding.EncodeToString(k.secret[:])
}

// ParseControlBlob parses a control-port key blob as ControlBlob writes it. It is
// strict (errors wrap ErrControlBlob): the exact "ED25519-V3:" prefix, then exactly 88
// characters of canonical, padded standard base64 of 64 bytes, with nothing around them;
// the scalar must be clamped (ErrNotClamped).
func ParseControlBlob(s string) (Key, error) {
	enc, ok := strings.CutPrefix(s, ControlBlobPrefix)
	if !ok {
		return Key{}, fmt.Errorf("onionkey: %w: missing %q prefix", ErrControlBlob, ControlBlobPrefix)
	}
	if len(s) != controlBlobLen {
		return Key{}, fmt.Errorf("onionkey: %w: %d base64 characters, want %d", ErrControlBlob, len(enc), controlBlobLen-len(ControlBlobPrefix))
	}
	// The decoder skips CR and LF anywhere; the format has none.
	if strings.ContainsAny(enc, "\r\n") {
		return Key{}, fmt.Errorf("onionkey: %w: line break inside", ErrControlBlob)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil || len(raw) != ExpandedSize {
		return Key{}, fmt.Errorf("onionkey: %w: bad base64", ErrControlBlob)
	}
	return FromExpanded(raw)
}
