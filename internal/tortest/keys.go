package tortest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// genKeys creates, in parallel, every router's relay identity (tor --list-fingerprint)
// and each authority's v3 authority identity, signing key and certificate
// (tor-gencert), and records the fingerprints: an authority's two go into its
// DirAuthority line, a relay's into WaitOnion's HSFETCH. RSA key generation is the slow
// part of a first start, so it runs concurrently; and relays that find their keys made
// start in a moment, in time for the first vote.
func (n *Network) genKeys() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	run := func(name string, stdin string, args ...string) {
		defer wg.Done()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String()))
			mu.Unlock()
		}
	}
	for _, nd := range n.routers {
		keys := filepath.Join(nd.dir, "keys")
		if err := os.MkdirAll(keys, 0o700); err != nil {
			return err
		}
		wg.Add(1)
		// Relay keys (RSA and ed25519 identities, onion keys) in the node's data
		// directory, and its fingerprint file. No torrc is read.
		go run(n.torBin, "", "--ignore-missing-torrc", "-f", filepath.Join(nd.dir, "none"),
			"--defaults-torrc", n.emptyFile, "--DataDirectory", nd.dir, "--ORPort", "1",
			"--Nickname", nd.name, "--Log", "err stderr", "--list-fingerprint")
		if nd.role == roleAuthority {
			wg.Add(1)
			// The empty passphrase comes on stdin; the certificate is valid 12 months.
			go run(n.gencertBin, "\n", "--create-identity-key", "--passphrase-fd", "0", "-m", "12",
				"-i", filepath.Join(keys, "authority_identity_key"),
				"-s", filepath.Join(keys, "authority_signing_key"),
				"-c", filepath.Join(keys, "authority_certificate"))
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("key generation: %w", errors.Join(errs...))
	}
	for _, nd := range n.routers {
		b, err := os.ReadFile(filepath.Join(nd.dir, "fingerprint"))
		if err != nil {
			return err
		}
		f := strings.Fields(string(b))
		if len(f) != 2 || !fingerprintRE.MatchString(f[1]) {
			return fmt.Errorf("%s: bad fingerprint file %q", nd.name, b)
		}
		nd.fingerprint = f[1]
		if nd.role != roleAuthority {
			continue
		}
		cert, err := os.ReadFile(filepath.Join(nd.dir, "keys", "authority_certificate"))
		if err != nil {
			return err
		}
		m := certFingerprintRE.FindSubmatch(cert)
		if m == nil {
			return fmt.Errorf("%s: no fingerprint in the authority certificate", nd.name)
		}
		nd.v3ident = string(m[1])
	}
	return nil
}

var (
	fingerprintRE     = regexp.MustCompile(`^[0-9A-F]{40}$`)
	certFingerprintRE = regexp.MustCompile(`(?m)^fingerprint ([0-9A-F]{40})\r?$`)
)

// newPassword returns a random control-port password and its HashedControlPassword
// form.
func newPassword() (password, hashed string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	password = hex.EncodeToString(b)
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	return password, hashPassword(password, salt)
}

// hashPassword is what `tor --hash-password` prints: the OpenPGP iterated and salted
// S2K (RFC 4880, 3.7.1.3) with SHA-1 and count byte 0x60, i.e. 65536 bytes of
// salt‖password repeated and cut, as "16:" + hex(salt ‖ 0x60 ‖ digest).
func hashPassword(password string, salt []byte) string {
	const c = 0x60
	count := (16 + (c & 15)) << ((c >> 4) + 6)
	data := append(append([]byte{}, salt...), password...)
	h := sha1.New()
	for count > 0 {
		k := min(count, len(data))
		h.Write(data[:k])
		count -= k
	}
	out := append(append(append([]byte{}, salt...), c), h.Sum(nil)...)
	return "16:" + strings.ToUpper(hex.EncodeToString(out))
}
