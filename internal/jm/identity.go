package jm

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/jm-directory/jm-directory-server/internal/secretfile"
)

// identityFile is the name of the directory's key file inside its data dir.
const identityFile = "directory-nick.key"

// ErrKeyPermissions: the directory's key file is accessible by group or others. Nothing
// is read from it; the operator should chmod 600 it (the error says so). The rule is
// secretfile.CheckPrivate's, as for the onion key.
var ErrKeyPermissions = secretfile.ErrPermissions

// identityKeyHexLen is the length of the hex-encoded 32-byte private key.
const identityKeyHexLen = 64

// Identity is the directory's own secp256k1 key and the nick derived from it.
type Identity struct {
	Key  *secp256k1.PrivateKey
	Nick string
}

// newIdentity returns the Identity for key.
func newIdentity(key *secp256k1.PrivateKey) Identity {
	return Identity{Key: key, Nick: NickFromPubKey(key.PubKey().SerializeCompressed())}
}

// LoadOrCreateIdentity reads <dataDir>/directory-nick.key (64 lower-case hex
// chars and an optional trailing newline, encoding a 32-byte secp256k1 private
// key in 1..n-1) or, if it does not exist, creates dataDir (mode 0700) and the
// file with a fresh random key.
//
// A new file has mode 0600 and is written atomically: a temporary file in
// dataDir is written and fsynced, then hard-linked to the final name, which
// never replaces an existing file. If another process created the file
// first, its key wins and is read back. A present but malformed file is an
// error naming the path and is never modified. So is a file that is not a regular file
// or is accessible by group or others: the key is then refused, as the onion key is
// (the error wraps ErrKeyPermissions and says to run chmod 600 on it), since whoever can
// read it can run a directory under this one's nick.
//
// created is true when this call made a new key.
func LoadOrCreateIdentity(dataDir string) (id Identity, created bool, err error) {
	path := filepath.Join(dataDir, identityFile)
	id, err = readIdentity(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, err
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Identity{}, false, fmt.Errorf("jm: create data dir: %w", err)
	}
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return Identity{}, false, fmt.Errorf("jm: generate identity key: %w", err)
	}
	won, err := writeNewKeyFile(path, key)
	if err != nil {
		return Identity{}, false, err
	}
	if !won {
		// A concurrent creator's file is in place; use its key.
		key.Zero()
		id, err = readIdentity(path)
		if err != nil {
			return Identity{}, false, err
		}
		return id, false, nil
	}
	return newIdentity(key), true, nil
}

// readIdentity reads and parses the key file at path. A missing file yields
// an error wrapping fs.ErrNotExist.
func readIdentity(path string) (Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Identity{}, err
		}
		return Identity{}, fmt.Errorf("jm: read identity: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Identity{}, fmt.Errorf("jm: read identity %s: %w", path, err)
	}
	if err := secretfile.CheckPrivate(path, fi); err != nil {
		return Identity{}, fmt.Errorf("jm: identity %w", err)
	}
	// One byte more than the longest valid content, to detect trailing data.
	var buf [identityKeyHexLen + 2]byte
	n, err := io.ReadFull(f, buf[:])
	defer clear(buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Identity{}, fmt.Errorf("jm: read identity %s: %w", path, err)
	}
	key, err := parseKeyFile(buf[:n])
	if err != nil {
		return Identity{}, fmt.Errorf("jm: malformed identity file %s: %w", path, err)
	}
	return newIdentity(key), nil
}

// parseKeyFile parses the contents of a key file.
func parseKeyFile(b []byte) (*secp256k1.PrivateKey, error) {
	if len(b) == identityKeyHexLen+1 && b[identityKeyHexLen] == '\n' {
		b = b[:identityKeyHexLen]
	}
	if len(b) != identityKeyHexLen {
		return nil, errors.New("want 64 lower-case hex characters and an optional newline")
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, errors.New("want 64 lower-case hex characters and an optional newline")
		}
	}
	var raw [32]byte
	defer clear(raw[:])
	if _, err := hex.Decode(raw[:], b); err != nil {
		return nil, err
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetBytes(&raw); overflow != 0 || s.IsZero() {
		return nil, errors.New("key is not in the secp256k1 range 1..n-1")
	}
	return secp256k1.NewPrivateKey(&s), nil
}

// writeNewKeyFile writes key to path (secretfile.WriteNew: mode 0600, atomic, never
// over an existing file). It reports won=false (and no error) if path already existed.
func writeNewKeyFile(path string, key *secp256k1.PrivateKey) (won bool, err error) {
	var content [identityKeyHexLen + 1]byte
	defer clear(content[:])
	raw := key.Key.Bytes()
	defer clear(raw[:])
	hex.Encode(content[:identityKeyHexLen], raw[:])
	content[identityKeyHexLen] = '\n'

	err = secretfile.WriteNew(path, content[:])
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jm: create identity: %w", err)
	}
	return true, nil
}
