package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jm-directory/jm-directory-server/internal/config"
)

// tlsCertFile is the server's generated ops certificate in its data dir (ops.TLSCertFile).
const tlsCertFile = "ops-tls.crt"

// envTLSCert names the server's own ops_tls_cert setting: when the operator's certificate
// is in use, its leaf is what to pin by default.
var envTLSCert = []string{"DIRECTORY_SERVER__OPS_TLS_CERT", "OPS_TLS_CERT"}

// trust is how the ops listener's HTTPS certificate is checked.
type trust struct {
	pin     []byte         // SHA-256 of the leaf's DER; nil = verify the chain and name
	pinFrom string         // "--tls-fingerprint" or the certificate file pinned
	roots   *x509.CertPool // --cacert; nil (without a pin) = the system's roots
	note    string         // for the debug log: why no default pin was taken
}

// resolveTLS decides the scheme and the trust: HTTPS when the host is not loopback (the
// server serves HTTPS there, wildcard listen addresses included) or when --tls-fingerprint
// or --cacert is given. --tls-fingerprint pins the leaf; --cacert verifies normally;
// without either, the server's certificate file is pinned: $OPS_TLS_CERT (the operator's,
// as the server reads it) or <data dir>/ops-tls.crt (the generated one), else the
// system's roots verify it.
func (o *options) resolveTLS(env func(string) string) error {
	fp, ca := strings.TrimSpace(o.tlsFingerprint), strings.TrimSpace(o.caCert)
	switch {
	case fp != "" && ca != "":
		return errors.New("--tls-fingerprint and --cacert: give one of them")
	case fp != "":
		pin, err := parseFingerprint(fp)
		if err != nil {
			return err
		}
		o.trust = trust{pin: pin, pinFrom: "--tls-fingerprint"}
	case ca != "":
		b, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("--cacert: %s holds no PEM certificate", ca)
		}
		o.trust = trust{roots: pool}
	}
	o.https = fp != "" || ca != "" || !config.IsLoopback(o.host)
	if !o.https || fp != "" || ca != "" {
		return nil
	}
	path, name := firstEnv(env, envTLSCert)
	if path == "" {
		if dir := dataDir(o, env); dir != "" {
			path = filepath.Join(dir, tlsCertFile)
		}
	}
	if path == "" {
		o.trust.note = "no certificate to pin (no --tls-fingerprint, --cacert, OPS_TLS_CERT or data dir): the system's roots verify it"
		return nil
	}
	der, err := leafOf(path)
	if err != nil {
		if name != "" {
			return fmt.Errorf("%s: %v", name, err) // the operator's own setting: say it is wrong
		}
		o.trust.note = "no certificate pinned (" + err.Error() + "): the system's roots verify it"
		return nil
	}
	sum := sha256.Sum256(der)
	o.trust = trust{pin: sum[:], pinFrom: path}
	return nil
}

// leafOf reads the first PEM certificate of a file.
func leafOf(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, nil
		}
	}
}

// parseFingerprint reads a SHA-256 fingerprint: 64 hex digits, with or without colons,
// any case.
func parseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("--tls-fingerprint: want a SHA-256 fingerprint, 64 hex digits with or without colons (AB:CD:…), got %q", s)
	}
	return b, nil
}

// formatFingerprint is the server's form (ops.Fingerprint): upper-case hex pairs joined
// by colons.
func formatFingerprint(sum []byte) string {
	h := strings.ToUpper(hex.EncodeToString(sum))
	parts := make([]string, 0, len(h)/2)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// clientConfig is the TLS configuration of the requests. A pin checks the leaf's SHA-256
// only (no chain, name or expiry: the generated certificate is self-signed and pinned).
func (t trust) clientConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: t.roots}
	if t.pin != nil {
		c.InsecureSkipVerify = true // replaced by the pin in VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if string(sum[:]) != string(t.pin) {
				return &pinError{got: formatFingerprint(sum[:]), want: formatFingerprint(t.pin), from: t.pinFrom}
			}
			return nil
		}
	}
	return c
}

// describe says, for the debug log, how the certificate is checked.
func (t trust) describe() string {
	switch {
	case t.pin != nil:
		return "pinning SHA-256 " + formatFingerprint(t.pin) + " from " + t.pinFrom
	case t.roots != nil:
		return "verifying against --cacert"
	case t.note != "":
		return t.note
	}
	return "verifying against the system's roots"
}

// pinError is a server certificate whose fingerprint is not the pinned one.
type pinError struct{ got, want, from string }

func (e *pinError) Error() string {
	return "TLS certificate mismatch: the server's SHA-256 fingerprint is " + e.got + ", " + e.from + " pins " + e.want
}

// tlsHint says what to do about a failed TLS handshake, "" for other errors.
func tlsHint(err error) string {
	var (
		rh  tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		inv x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &rh), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the ops listener answered plain HTTP (it serves HTTPS only off loopback): check --host, or leave out --tls-fingerprint and --cacert"
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &inv):
		return "pin the server's certificate with --tls-fingerprint (the server logs it at start) or trust its CA with --cacert"
	}
	return ""
}
