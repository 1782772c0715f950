package onionkey

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe for tor's output and the test reading it.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// TestTorAgrees runs the real tor (if installed) with two onion services and no
// network: one whose key we wrote, one whose key tor generates. Tor must derive the
// address we derive from our file, and we must read tor's file and derive tor's address.
// This is what proves the file formats and the derivation match tor's.
func TestTorAgrees(t *testing.T) {
	torPath := testkit.NeedTool(t, "tor")
	t.Parallel()
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours")
	theirs := filepath.Join(dir, "theirs")
	for _, d := range []string{ours, theirs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	k, err := Search(context.Background(), "jm", 1, nil) // a searched key: no seed at all
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile(filepath.Join(ours, SecretFileName), k); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	torrc := filepath.Join(dir, "torrc")
	conf := fmt.Sprintf(`DataDirectory %q
SocksPort 0
ControlPort 0
DisableNetwork 1
RunAsDaemon 0
Log notice stderr
HiddenServiceDir %q
HiddenServicePort 5222 127.0.0.1:1
HiddenServiceDir %q
HiddenServicePort 5222 127.0.0.1:1
`, filepath.Join(dir, "data"), ours, theirs)
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, torPath, "-f", torrc, "--defaults-torrc", empty)
	out := &syncBuffer{mu: make(chan struct{}, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()

	hostname := func(d string) string {
		b, err := os.ReadFile(filepath.Join(d, "hostname"))
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return "" // not (completely) written yet
		}
		return strings.TrimSpace(string(b))
	}
	var hOurs, hTheirs string
	for hOurs == "" || hTheirs == "" {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("tor exited (%v) without writing both hostnames:\n%s", err, out)
		case <-ctx.Done():
			t.Fatalf("tor wrote no hostname within 10s:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
		hOurs, hTheirs = hostname(ours), hostname(theirs)
	}

	if want := k.Onion() + ".onion"; hOurs != want {
		t.Errorf("tor derived %s from our key file, we derive %s", hOurs, want)
	}
	if pub, _ := os.ReadFile(filepath.Join(ours, PublicFileName)); !bytes.Equal(pub, k.PublicFile()) {
		t.Errorf("tor's public key file %q, ours %q", pub, k.PublicFile())
	}
	if b, _ := os.ReadFile(filepath.Join(ours, SecretFileName)); !bytes.Equal(b, k.SecretFile()) {
		t.Error("tor rewrote our secret key file")
	}

	b, err := os.ReadFile(filepath.Join(theirs, SecretFileName))
	if err != nil {
		t.Fatal(err)
	}
	tk, err := ParseSecretFile(b)
	if err != nil {
		t.Fatalf("tor's own key file: %v", err)
	}
	if got := tk.Onion() + ".onion"; got != hTheirs {
		t.Errorf("from tor's key file we derive %s, tor says %s", got, hTheirs)
	}
	if pub, _ := os.ReadFile(filepath.Join(theirs, PublicFileName)); !bytes.Equal(pub, tk.PublicFile()) {
		t.Errorf("tor's public key file %q, ours %q", pub, tk.PublicFile())
	}
	if l, err := Load(filepath.Join(theirs, SecretFileName)); err != nil || !l.Equal(tk) {
		t.Errorf("Load of tor's key file: %v", err)
	}
}
