package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/ops"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// serveOpsTLS serves the ops endpoints as the server does (op.Server on op.Listener) on
// a loopback port, so that an off-loopback opt.Addr gives HTTPS. It returns the port and
// the ops surface.
func serveOpsTLS(t *testing.T, srv *server.Server, opt ops.Options) (string, *ops.Ops) {
	t.Helper()
	op, err := ops.New(srv, opt, discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := op.Server()
	done := make(chan error, 1)
	go func() { done <- hs.Serve(op.Listener(ln)) }()
	t.Cleanup(func() {
		_ = hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return portOf(t, ln.Addr()), op
}

// TestTLS: jm-directory-ctl against an HTTPS ops listener (HEALTH_CHECK_HOST 0.0.0.0,
// reached on loopback): pinned by --tls-fingerprint, by default from the data dir's
// generated certificate (the Docker HEALTHCHECK: no flags), or verified with --cacert;
// a wrong pin is refused in one line.
func TestTLS(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	l.Join(t, makerNick, makerLoc, nil)
	dir := t.TempDir()
	port, op := serveOpsTLS(t, l.Srv, ops.Options{Addr: "0.0.0.0:8080", DataDir: dir})
	fp := op.TLS().Fingerprint
	wild := []string{"--host", "0.0.0.0", "--port", port}
	env := environ(t)

	t.Run("status with a pinned fingerprint", func(t *testing.T) {
		code, out, errs := ctl(env, append(wild, "--data-dir", dir, "--tls-fingerprint", fp, "status")...)
		if code != 0 || errs != "" {
			t.Fatalf("status: exit %d, stderr %q\n%s", code, errs, out)
		}
		for _, re := range []string{`(?m)^Health: +healthy$`, `(?m)^  Makers: +1 +` + makerNick + `$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("status output does not match %s:\n%s", re, out)
			}
		}
		// The plain-hex form, any case, and the pin forcing HTTPS on a loopback host.
		plain := strings.ToLower(strings.ReplaceAll(fp, ":", ""))
		code, out, errs = ctl(env, "--host", "127.0.0.1", "--port", port, "--tls-fingerprint", plain, "--token", readTok(t, dir), "status", "--json")
		if code != 0 || errs != "" || !strings.Contains(out, `"network": "regtest"`) {
			t.Fatalf("status --json, plain hex pin: exit %d, stderr %q\n%s", code, errs, out)
		}
	})
	t.Run("default pin from the data dir", func(t *testing.T) {
		// The image's HEALTHCHECK: HEALTH_CHECK_HOST and DATA_DIR from the environment.
		denv := environ(t, "HEALTH_CHECK_HOST", "0.0.0.0", "HEALTH_CHECK_PORT", port, "DATA_DIR", dir)
		if code, out, errs := ctl(denv, "health"); code != 0 || out != "Server status: healthy\n" || errs != "" {
			t.Fatalf("health: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if code, out, errs := ctl(denv, "status"); code != 0 || errs != "" {
			t.Fatalf("status: exit %d, stderr %q\n%s", code, errs, out)
		}
		code, _, errs := ctl(denv, "-l", "DEBUG", "health")
		if code != 0 || !strings.Contains(errs, "TLS: pinning SHA-256 "+fp+" from "+filepath.Join(dir, tlsCertFile)) {
			t.Fatalf("debug log: exit %d\n%s", code, errs)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		wrong := strings.Repeat("AB:", 31) + "AB"
		code, out, errs := ctl(env, append(wild, "--tls-fingerprint", wrong, "health")...)
		line := oneLine(t, errs)
		want := "jm-directory-ctl: https://127.0.0.1:" + port + "/health: TLS certificate mismatch: the server's SHA-256 fingerprint is " + fp + ", --tls-fingerprint pins " + wrong
		if code != 1 || out != "" || line != want {
			t.Fatalf("exit %d, stdout %q, stderr\n got %q\nwant %q", code, out, line, want)
		}
		// A stale certificate in the data dir: the file is named.
		stale := t.TempDir()
		if _, err := ops.New(l.Srv, ops.Options{Addr: "0.0.0.0:8080", DataDir: stale}, discard); err != nil {
			t.Fatal(err)
		}
		code, _, errs = ctl(env, "--host", "0.0.0.0", "--port", port, "--data-dir", stale, "health")
		if line := oneLine(t, errs); code != 1 || !strings.HasSuffix(line, filepath.Join(stale, tlsCertFile)+" pins "+readFP(t, stale)) {
			t.Fatalf("stale pin: exit %d, %q", code, line)
		}
	})
	t.Run("no pin, no CA", func(t *testing.T) {
		code, _, errs := ctl(env, append(wild, "--data-dir", t.TempDir(), "health")...)
		line := oneLine(t, errs)
		if code != 1 || !strings.Contains(line, "certificate") || !strings.HasSuffix(line, "pin the server's certificate with --tls-fingerprint (the server logs it at start) or trust its CA with --cacert") {
			t.Fatalf("exit %d, %q", code, line)
		}
	})
	t.Run("--cacert", func(t *testing.T) {
		// The generated certificate, trusted as its own CA (names are checked: 127.0.0.1).
		code, out, errs := ctl(env, append(wild, "--data-dir", t.TempDir(), "--cacert", filepath.Join(dir, tlsCertFile), "health")...)
		if code != 0 || errs != "" {
			t.Fatalf("--cacert: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		// The operator's certificate, from a CA.
		certDir := t.TempDir()
		caFile, certFile, keyFile := writeTestCA(t, certDir)
		oport, _ := serveOpsTLS(t, l.Srv, ops.Options{Addr: "0.0.0.0:8080", Token: testToken, TLSCert: certFile, TLSKey: keyFile})
		code, out, errs = ctl(env, "--host", "0.0.0.0", "--port", oport, "--cacert", caFile, "--token", testToken, "status")
		if code != 0 || errs != "" {
			t.Fatalf("--cacert with a CA: exit %d, stderr %q\n%s", code, errs, out)
		}
		// By default ctl pins the operator's certificate the server's own OPS_TLS_CERT names.
		oenv := environ(t, "OPS_TLS_CERT", certFile, "OPS_TOKEN", testToken)
		if code, out, errs := ctl(oenv, "--host", "0.0.0.0", "--port", oport, "status"); code != 0 || errs != "" {
			t.Fatalf("OPS_TLS_CERT pin: exit %d, stderr %q\n%s", code, errs, out)
		}
		// The wrong CA is refused with the hint.
		code, _, errs = ctl(env, "--host", "0.0.0.0", "--port", oport, "--cacert", filepath.Join(dir, tlsCertFile), "health")
		if line := oneLine(t, errs); code != 1 || !strings.Contains(line, "x509") || !strings.Contains(line, "--tls-fingerprint") {
			t.Fatalf("wrong CA: exit %d, %q", code, line)
		}
	})
	t.Run("scheme mismatches", func(t *testing.T) {
		// Plain HTTP to the HTTPS listener: told so.
		code, _, errs := ctl(env, "--host", "127.0.0.1", "--port", port, "health")
		if line := oneLine(t, errs); code != 1 || !strings.Contains(line, "the ops listener serves HTTPS") {
			t.Fatalf("plain to HTTPS: exit %d, %q", code, line)
		}
		// HTTPS to a plain (loopback) listener: told so.
		pport := serveOps(t, l.Srv, ops.Options{Addr: "127.0.0.1:0"})
		code, _, errs = ctl(env, "--port", pport, "--tls-fingerprint", fp, "health")
		if line := oneLine(t, errs); code != 1 || !strings.Contains(line, "answered plain HTTP") {
			t.Fatalf("HTTPS to plain: exit %d, %q", code, line)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--tls-fingerprint", "AB:CD", "health"},
			{"--tls-fingerprint", fp, "--cacert", filepath.Join(dir, tlsCertFile), "health"},
			{"--cacert", filepath.Join(dir, "missing.pem"), "health"},
			{"--cacert", filepath.Join(dir, ops.TokenFile), "health"},
		} {
			code, _, errs := ctl(env, args...)
			if line := oneLine(t, errs); code != 2 || !strings.HasPrefix(line, "jm-directory-ctl: --") {
				t.Errorf("%v: exit %d, %q", args, code, line)
			}
		}
	})
}

// TestTLSConstants: the file name and fingerprint form are the server's.
func TestTLSConstants(t *testing.T) {
	if tlsCertFile != ops.TLSCertFile {
		t.Errorf("tlsCertFile = %q, ops.TLSCertFile = %q", tlsCertFile, ops.TLSCertFile)
	}
	der := []byte("any bytes")
	pin, err := parseFingerprint(ops.Fingerprint(der))
	if err != nil || formatFingerprint(pin) != ops.Fingerprint(der) {
		t.Errorf("fingerprint forms differ: %v %s %s", err, formatFingerprint(pin), ops.Fingerprint(der))
	}
}

func readTok(t *testing.T, dir string) string {
	t.Helper()
	tok, err := readToken(filepath.Join(dir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func readFP(t *testing.T, dir string) string {
	t.Helper()
	der, err := leafOf(filepath.Join(dir, tlsCertFile))
	if err != nil {
		t.Fatal(err)
	}
	return ops.Fingerprint(der)
}

// writeTestCA writes a CA certificate, and a certificate for 127.0.0.1 it signed with
// its key, into dir.
func writeTestCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ops"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ops.crt"), filepath.Join(dir, "ops.key")
	for path, blk := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
