package ops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/secretfile"
)

// The generated certificate of the ops listener and its key, in the data dir. The key is
// written once with mode 0600 (secretfile), the certificate beside it with mode 0644.
const (
	TLSCertFile = "ops-tls.crt"
	TLSKeyFile  = "ops-tls.key"
)

// generatedYears is how long a generated certificate is valid: it is pinned by its
// fingerprint, never renewed, so it must not expire while the data dir lives.
const generatedYears = 100

// TLSInfo describes the certificate the ops listener serves off loopback.
type TLSInfo struct {
	CertFile    string    // the certificate's path; "" for an ephemeral one (no data dir)
	KeyFile     string    // its key's path; "" for an ephemeral one
	Fingerprint string    // Fingerprint of the leaf certificate
	NotAfter    time.Time // the leaf's expiry
	Operator    bool      // the operator's certificate (ops_tls_cert), not a generated one
	Generated   bool      // generated at this start (a new fingerprint)
}

// Fingerprint is the SHA-256 of a DER certificate as upper-case hex pairs joined by
// colons ("AB:CD:…", 95 characters): the form of "openssl x509 -noout -fingerprint
// -sha256", logged at start and accepted (with or without the colons, any case) by
// jm-directory-ctl --tls-fingerprint.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// TLS is the ops listener's certificate, nil when it serves plain HTTP (on loopback).
func (o *Ops) TLS() *TLSInfo { return o.tlsInfo }

// Scheme is "https" when the ops listener serves TLS, else "http".
func (o *Ops) Scheme() string {
	if o.tlsConf != nil {
		return "https"
	}
	return "http"
}

// setupTLS loads the operator's certificate (Options.TLSCert and TLSKey) or the one
// generated into the data dir (creating it on first start), and logs its fingerprint.
func (o *Ops) setupTLS() error {
	var (
		cert tls.Certificate
		info TLSInfo
		err  error
	)
	switch {
	case o.opt.TLSCert != "" || o.opt.TLSKey != "":
		cert, info, err = loadOperatorCert(o.opt.TLSCert, o.opt.TLSKey)
	case o.opt.DataDir == "":
		cert, info, err = newCert(o.opt.Addr)
		o.log.Warn("ops TLS: no data dir to keep a certificate in: serving an ephemeral one, its fingerprint changes at every start",
			"fingerprint_sha256", info.Fingerprint)
	default:
		cert, info, err = generatedCert(o.opt.DataDir, o.opt.Addr)
	}
	if err != nil {
		return fmt.Errorf("ops TLS: %w", err)
	}
	o.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: the listener's connection bookkeeping follows HTTP/1.1's
		// per-connection states (listener.go).
		NextProtos: []string{"http/1.1"},
	}
	o.tlsInfo = &info
	if info.CertFile != "" {
		msg := "ops TLS certificate"
		if info.Generated {
			msg = "ops TLS certificate generated"
		}
		o.log.Info(msg, "cert", info.CertFile, "fingerprint_sha256", info.Fingerprint,
			"operator", info.Operator, "not_after", info.NotAfter.UTC().Format(time.RFC3339))
	}
	if time.Now().After(info.NotAfter) {
		o.log.Warn("ops TLS certificate has expired: clients that verify it (--cacert) refuse it; a pinned fingerprint still works",
			"cert", info.CertFile, "not_after", info.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// loadOperatorCert loads the operator's PEM certificate (chain) and key.
func loadOperatorCert(certFile, keyFile string) (tls.Certificate, TLSInfo, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, TLSInfo{}, errors.New("ops_tls_cert and ops_tls_key go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, TLSInfo{}, fmt.Errorf("ops_tls_cert %s, ops_tls_key %s: %w", certFile, keyFile, err)
	}
	info, err := leafInfo(&cert)
	info.CertFile, info.KeyFile, info.Operator = certFile, keyFile, true
	return cert, info, err
}

// generatedCert loads <dataDir>/ops-tls.crt and its key, generating both on first start
// (the key first: a certificate is made again for a key left alone by a crash).
func generatedCert(dataDir, addr string) (tls.Certificate, TLSInfo, error) {
	certPath, keyPath := filepath.Join(dataDir, TLSCertFile), filepath.Join(dataDir, TLSKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Lstat(certPath); err == nil {
			return tls.Certificate{}, TLSInfo{}, fmt.Errorf("%s exists without its key %s: remove it to generate a new pair", certPath, keyPath)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := secretfile.WriteNew(keyPath, keyPEM); errors.Is(err, fs.ErrExist) {
			return generatedCert(dataDir, addr) // created concurrently: use that one
		} else if err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
	case err != nil:
		return tls.Certificate{}, TLSInfo{}, err
	}
	generated := false
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := parseKey(keyPEM)
		if err != nil {
			return tls.Certificate{}, TLSInfo{}, fmt.Errorf("%s: %w", keyPath, err)
		}
		der, err := selfSigned(key, addr)
		if err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := secretfile.WriteNew(certPath, certPEM); errors.Is(err, fs.ErrExist) {
			return generatedCert(dataDir, addr)
		} else if err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
		// Public: readable by whoever pins it (jm-directory-ctl as another user).
		if err := os.Chmod(certPath, 0o644); err != nil {
			return tls.Certificate{}, TLSInfo{}, err
		}
		generated = true
	} else if err != nil {
		return tls.Certificate{}, TLSInfo{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, TLSInfo{}, fmt.Errorf("%s, %s: %w (remove both to generate a new pair)", certPath, keyPath, err)
	}
	info, err := leafInfo(&cert)
	info.CertFile, info.KeyFile, info.Generated = certPath, keyPath, generated
	return cert, info, err
}

// newCert is a self-signed certificate and key kept in memory only.
func newCert(addr string) (tls.Certificate, TLSInfo, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, TLSInfo{}, err
	}
	der, err := selfSigned(key, addr)
	if err != nil {
		return tls.Certificate{}, TLSInfo{}, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	info, err := leafInfo(&cert)
	info.Generated = true
	return cert, info, err
}

// parseKey reads a PEM PKCS #8 ECDSA key.
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block (remove it to generate a new pair)")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, not ECDSA (remove it to generate a new pair)", k)
	}
	return ek, nil
}

// selfSigned makes the generated certificate: ECDSA P-256, valid for generatedYears,
// for localhost, 127.0.0.1, ::1, the listen host unless it is a wildcard, and this
// machine's host name. jm-directory-ctl pins it by fingerprint, which ignores the names;
// they serve clients that trust it as a CA (--cacert, curl --cacert).
func selfSigned(key *ecdsa.PrivateKey, addr string) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "jm-directory-server ops"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(generatedYears, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	addName := func(h string) {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
			return
		}
		if h != "" && h != "localhost" && !strings.ContainsAny(h, " /") {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	addName(host)
	if hn, err := os.Hostname(); err == nil && hn != host {
		addName(hn)
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

// leafInfo parses cert's leaf (setting cert.Leaf) and describes it.
func leafInfo(cert *tls.Certificate) (TLSInfo, error) {
	if len(cert.Certificate) == 0 {
		return TLSInfo{}, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return TLSInfo{}, err
	}
	cert.Leaf = leaf
	return TLSInfo{Fingerprint: Fingerprint(leaf.Raw), NotAfter: leaf.NotAfter}, nil
}

// closeNow closes c at once: a TLS connection's socket is closed without the
// close_notify alert, whose write could wait up to 5 s on a peer that does not read
// (the listener evicts from its accept loop).
func closeNow(c net.Conn) error {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn().Close()
	}
	return c.Close()
}
