package ops

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

const tlsTestToken = "0123456789abcdef0123"

// pinnedClient is an HTTPS client that accepts exactly the certificate with fingerprint fp.
func pinnedClient(fp string) *http.Client {
	return &http.Client{Timeout: testkit.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
				return &net.AddrError{Err: "fingerprint " + got + ", want " + fp}
			}
			return nil
		},
	}}}
}

// fetch GETs url with the token and returns the status code and body.
func fetch(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestTLSGenerated: off loopback the listener serves HTTPS with a self-signed ECDSA P-256
// certificate generated into the data dir (key 0600), logs its fingerprint and path at
// INFO, and keeps it across restarts; the token rules are unchanged.
func TestTLSGenerated(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	op, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir, Token: tlsTestToken}, log)
	if err != nil {
		t.Fatal(err)
	}
	info := op.TLS()
	if info == nil || op.Scheme() != "https" || !info.Generated || info.Operator {
		t.Fatalf("TLS = %+v, scheme %s", info, op.Scheme())
	}
	certPath, keyPath := filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile)
	if info.CertFile != certPath || info.KeyFile != keyPath {
		t.Fatalf("files %s %s", info.CertFile, info.KeyFile)
	}
	for path, mode := range map[string]os.FileMode{keyPath: 0o600, certPath: 0o644} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v, mode %v, want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	line := logs.String()
	for _, want := range []string{"level=INFO", `msg="ops TLS certificate generated"`, "cert=" + certPath, "fingerprint_sha256=" + info.Fingerprint} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, tlsTestToken) {
		t.Error("the token was logged")
	}

	pemBytes, _ := os.ReadFile(certPath)
	blk, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.Raw)
	if plain := strings.ReplaceAll(info.Fingerprint, ":", ""); plain != strings.ToUpper(hex.EncodeToString(sum[:])) || len(info.Fingerprint) != 95 {
		t.Fatalf("fingerprint %s is not the certificate's SHA-256", info.Fingerprint)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.NotAfter.Before(time.Now().AddDate(50, 0, 0)) {
		t.Errorf("valid until %v only", leaf.NotAfter)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}

	addr := serveOps(t, op, defaultTimeouts)
	c := pinnedClient(info.Fingerprint)
	if code, body := fetch(t, c, "https://"+addr+"/health", ""); code != 200 || !strings.Contains(body, "healthy") {
		t.Fatalf("/health over TLS: %d %s", code, body)
	}
	if code, _ := fetch(t, c, "https://"+addr+"/status", ""); code != 401 {
		t.Fatalf("/status without token over TLS: %d", code)
	}
	if code, _ := fetch(t, c, "https://"+addr+"/status", tlsTestToken); code != 200 {
		t.Fatalf("/status with token over TLS: %d", code)
	}
	// A --cacert style client verifies the self-signed certificate against itself.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	verifying := &http.Client{Timeout: testkit.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, _ := fetch(t, verifying, "https://"+addr+"/health", ""); code != 200 {
		t.Fatalf("/health verified against the certificate: %d", code)
	}
	// Plain HTTP to the HTTPS listener gets net/http's 400, nothing else.
	if code, body := fetch(t, &http.Client{Timeout: testkit.Timeout}, "http://"+addr+"/health", ""); code != 400 || !strings.Contains(body, "HTTPS server") {
		t.Fatalf("plain HTTP to the TLS listener: %d %q", code, body)
	}

	// A restart reuses the certificate.
	logs.Reset()
	again, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir, Token: tlsTestToken}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.TLS(); got.Fingerprint != info.Fingerprint || got.Generated {
		t.Fatalf("after a restart: %+v, want fingerprint %s, not generated", got, info.Fingerprint)
	}
	if !strings.Contains(logs.String(), `msg="ops TLS certificate" cert=`+certPath+" fingerprint_sha256="+info.Fingerprint) {
		t.Fatalf("restart log: %s", logs.String())
	}
	addr2 := serveOps(t, again, defaultTimeouts)
	if code, _ := fetch(t, c, "https://"+addr2+"/health", ""); code != 200 {
		t.Fatalf("/health after a restart: %d", code)
	}
}

// TestTLSKeyWithoutCert: a key left without its certificate (a crash between the two
// writes) gets a certificate; a certificate without its key is refused, as is a pair
// that does not match.
func TestTLSKeyWithoutCert(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	dir := t.TempDir()
	first, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, TLSKeyFile))
	_ = os.Remove(filepath.Join(dir, TLSCertFile))
	second, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !second.TLS().Generated || second.TLS().Fingerprint == first.TLS().Fingerprint {
		t.Fatalf("certificate not made again: %+v", second.TLS())
	}
	if k, _ := os.ReadFile(filepath.Join(dir, TLSKeyFile)); !bytes.Equal(k, key) {
		t.Fatal("the key was replaced")
	}

	_ = os.Remove(filepath.Join(dir, TLSKeyFile))
	if _, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir}, discard); err == nil || !strings.Contains(err.Error(), "without its key") {
		t.Fatalf("certificate without key: %v", err)
	}

	other := t.TempDir()
	if _, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: other}, discard); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(filepath.Join(other, TLSCertFile))
	_ = os.WriteFile(filepath.Join(dir, TLSKeyFile), key, 0o600)
	_ = os.WriteFile(filepath.Join(dir, TLSCertFile), cert, 0o644)
	if _, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir}, discard); err == nil || !strings.Contains(err.Error(), "remove both") {
		t.Fatalf("mismatched pair: %v", err)
	}
}

// writeCA makes a CA and a leaf for 127.0.0.1 signed by it into dir, and returns the
// CA certificate and the paths of the leaf's certificate and key.
func writeCA(t *testing.T, dir string) (ca *x509.Certificate, certPath, keyPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ops"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certPath, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, certPath, keyPath
}

// TestTLSOperatorCert: the operator's certificate is served (and verifies against its
// CA), and nothing is generated into the data dir.
func TestTLSOperatorCert(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	dir := t.TempDir()
	ca, certPath, keyPath := writeCA(t, t.TempDir())
	op, err := New(d.Srv, Options{Addr: "192.0.2.1:8080", DataDir: dir, Token: tlsTestToken, TLSCert: certPath, TLSKey: keyPath}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if info := op.TLS(); !info.Operator || info.Generated || info.CertFile != certPath {
		t.Fatalf("TLS = %+v", info)
	}
	if _, err := os.Stat(filepath.Join(dir, TLSKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key was generated beside the operator's: %v", err)
	}
	addr := serveOps(t, op, defaultTimeouts)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	c := &http.Client{Timeout: testkit.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, _ := fetch(t, c, "https://"+addr+"/status", tlsTestToken); code != 200 {
		t.Fatalf("/status with the operator's certificate: %d", code)
	}
	if code, _ := fetch(t, pinnedClient(op.TLS().Fingerprint), "https://"+addr+"/health", ""); code != 200 {
		t.Fatalf("/health pinned to the operator's leaf: %d", code)
	}

	if _, err := New(d.Srv, Options{Addr: "192.0.2.1:8080", DataDir: dir, TLSCert: certPath}, discard); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
	if _, err := New(d.Srv, Options{Addr: "192.0.2.1:8080", DataDir: dir, TLSCert: certPath, TLSKey: certPath}, discard); err == nil {
		t.Fatal("a certificate as its own key was accepted")
	}
}

// TestLoopbackPlain: on loopback the listener stays plain HTTP, even with a certificate
// configured (and says so).
func TestLoopbackPlain(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	dir := t.TempDir()
	_, certPath, keyPath := writeCA(t, t.TempDir())
	var logs bytes.Buffer
	op, err := New(d.Srv, Options{Addr: "127.0.0.1:8080", DataDir: dir, TLSCert: certPath, TLSKey: keyPath}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if op.TLS() != nil || op.Scheme() != "http" {
		t.Fatalf("TLS on loopback: %+v", op.TLS())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "plain HTTP") {
		t.Errorf("no warning about the unused certificate: %s", logs.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("data dir written on loopback: %v", entries)
	}
	addr := serveOps(t, op, defaultTimeouts)
	if code, _ := fetch(t, &http.Client{Timeout: testkit.Timeout}, "http://"+addr+"/status", ""); code != 200 {
		t.Fatalf("plain /status on loopback: %d", code)
	}
}

// TestTLSEviction: over TLS the full listener still closes an idle keep-alive connection
// for a newcomer.
func TestTLSEviction(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: t.TempDir(), MaxConns: 2}, discard)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOps(t, op, timeouts{readHeader: long, read: long, write: long, idle: long})
	conf := &tls.Config{InsecureSkipVerify: true}
	dialTLS := func() *tls.Conn {
		c, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := dialTLS()
	askHealth(t, a)
	abr := bufio.NewReader(a)
	if res, err := answer(a, abr, testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("first request: %v %v", res, err)
	}
	b := dialTLS()
	askHealth(t, b)
	if res, err := answer(b, bufio.NewReader(b), testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("second request: %v %v", res, err)
	}
	c := dialTLS() // the handshake completes once a slot is free: an idle one is closed
	askHealth(t, c)
	if res, err := answer(c, bufio.NewReader(c), testkit.Timeout); err != nil || res.StatusCode != 200 {
		t.Fatalf("waiting connection: %v %v", res, err)
	}
	if n := op.conns.evictions(); n < 1 {
		t.Fatalf("evictions = %d, want at least 1", n)
	}
}
