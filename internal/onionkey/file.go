package onionkey

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/jm-directory/jm-directory-server/internal/secretfile"
)

var (
	// ErrPermissions: an existing key file is accessible by group or others. Nothing is
	// read from it; the operator should chmod 600 it (the error says so).
	ErrPermissions = secretfile.ErrPermissions
	// ErrKeyMismatch: Import's destination already holds a different key.
	ErrKeyMismatch = errors.New("destination already holds a different key")
)

// maxImportSize bounds what Import reads from its source.
const maxImportSize = 64 << 10

// Load reads an existing key file in tor's hs_ed25519_secret_key format, with the checks
// of LoadOrCreate: it must be a regular file, not accessible by group or others
// (ErrPermissions), and valid (ParseSecretFile). A missing file is an error wrapping
// fs.ErrNotExist.
func Load(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	if err := secretfile.CheckPrivate(path, fi); err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, SecretFileSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	k, err := ParseSecretFile(b)
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %s is not a valid tor v3 secret key file (left untouched): %w", path, unwrapPrefix(err))
	}
	return k, nil
}

// LoadOrCreate returns the key stored at path in tor's hs_ed25519_secret_key format,
// creating it if path does not exist: a new random key is written atomically (see
// WriteSecretFile) with mode 0600, creating the directory with mode 0700 if needed.
// created reports whether the key is new.
//
// An existing file is never replaced: if it is not a valid key, or is accessible by
// group or others (ErrPermissions), LoadOrCreate returns an error and leaves it alone.
// If another process creates the file concurrently, its key is returned.
func LoadOrCreate(path string) (k Key, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = Generate(); err != nil {
		return Key{}, false, err
	}
	err = WriteSecretFile(path, k)
	if errors.Is(err, fs.ErrExist) { // lost a race: use the winner's key
		k, err = Load(path)
		return k, false, err
	}
	if err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

// Import copies an onion key into dst (in tor's hs_ed25519_secret_key format, written
// as LoadOrCreate writes a new key) and returns it. src holds either a tor or mkp224o
// hs_ed25519_secret_key file or a control-port key blob ("ED25519-V3:...", optionally
// as tor's "PrivateKey=ED25519-V3:..." reply line, surrounding white space allowed).
//
// dst is never overwritten: if it already holds the same key, that key is returned; if
// it holds a different key, the error wraps ErrKeyMismatch; if it is not a valid key,
// the error is Load's.
func Import(src, dst string) (Key, error) {
	k, err := readImport(src)
	if err != nil {
		return Key{}, err
	}
	for range 2 { // twice: a concurrent writer may create dst between the two steps
		old, err := Load(dst)
		switch {
		case err == nil:
			if !old.Equal(k) {
				return Key{}, fmt.Errorf("onionkey: %s already holds a different key (%s.onion, importing %s.onion); not overwriting it: %w",
					dst, old.Onion(), k.Onion(), ErrKeyMismatch)
			}
			return old, nil
		case !errors.Is(err, fs.ErrNotExist):
			return Key{}, err
		}
		err = WriteSecretFile(dst, k)
		if !errors.Is(err, fs.ErrExist) {
			if err != nil {
				return Key{}, err
			}
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("onionkey: %s keeps appearing and disappearing", dst)
}

// readImport reads Import's source in either format.
func readImport(src string) (Key, error) {
	f, err := os.Open(src)
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImportSize+1))
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %w", err)
	}
	var k Key
	if text := strings.TrimSpace(string(b)); strings.HasPrefix(text, ControlBlobPrefix) || strings.HasPrefix(text, "PrivateKey="+ControlBlobPrefix) {
		k, err = ParseControlBlob(strings.TrimPrefix(text, "PrivateKey="))
	} else if bytes.HasPrefix(b, []byte("== ed25519v1-")) {
		k, err = ParseSecretFile(b)
	} else {
		return Key{}, fmt.Errorf("onionkey: %s is neither a tor %s file nor an %s control-port key blob", src, SecretFileName, ControlBlobPrefix)
	}
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: %s: %w", src, unwrapPrefix(err))
	}
	return k, nil
}

// WriteSecretFile writes k to path in tor's hs_ed25519_secret_key format with mode 0600,
// creating the directory (mode 0700) if it is missing, atomically (secretfile.WriteNew).
// It never replaces an existing file: if path exists, the error wraps fs.ErrExist.
func WriteSecretFile(path string, k Key) error {
	if k.IsZero() {
		return errors.New("onionkey: refusing to write the zero key")
	}
	err := secretfile.WriteNew(path, k.SecretFile())
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("onionkey: %s already exists; not overwriting it: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("onionkey: %w", err)
	}
	return nil
}
