package config

import (
	"strings"
	"testing"
)

// TestOpsTLSPair: ops_tls_cert and ops_tls_key are paths, set together or not at all,
// from every source (flag, environment), and need a restart (apply_test.go).
func TestOpsTLSPair(t *testing.T) {
	c := Default()
	c.OpsTLSCert = "/etc/ops/cert.pem"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("certificate without key: %v", err)
	}
	c.OpsTLSCert, c.OpsTLSKey = "", "/etc/ops/key.pem"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("key without certificate: %v", err)
	}
	c.OpsTLSCert = "/etc/ops/cert.pem"
	if err := c.Validate(); err != nil {
		t.Fatalf("both: %v", err)
	}

	home := t.TempDir()
	got, err := Load(Options{Args: []string{"--ops-tls-cert", " /a/cert.pem "}, Environ: []string{"DIRECTORY_SERVER__OPS_TLS_KEY=/a/key.pem"}, WorkDir: home, HomeDir: home})
	if err != nil {
		t.Fatal(err)
	}
	if got.OpsTLSCert != "/a/cert.pem" || got.OpsTLSKey != "/a/key.pem" {
		t.Fatalf("loaded %q %q", got.OpsTLSCert, got.OpsTLSKey)
	}
	if _, err := Load(Options{Environ: []string{"OPS_TLS_KEY=/a/key.pem"}, WorkDir: home, HomeDir: home}); err == nil {
		t.Fatal("Load accepted a key without its certificate")
	}
}
