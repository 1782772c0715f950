package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/onionkey"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// lockedBuffer collects tor's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// torWritesHiddenServiceDir runs the real tor, without network, with one onion service
// in dir (created with mode 0700), waits until tor has written its hostname file, and
// stops tor: dir is then a HiddenServiceDir exactly as tor leaves one.
func torWritesHiddenServiceDir(t *testing.T, dir string) {
	t.Helper()
	torPath := testkit.NeedTool(t, "tor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	torrc := filepath.Join(work, "torrc")
	empty := filepath.Join(work, "defaults")
	conf := fmt.Sprintf("DataDirectory %q\nSocksPort 0\nDisableNetwork 1\nHiddenServiceDir %q\nHiddenServicePort 5222 127.0.0.1:5222\n",
		filepath.Join(work, "data"), dir)
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, torPath, "-f", torrc, "--defaults-torrc", empty)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	written := func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "hostname"))
		return err == nil && bytes.HasSuffix(b, []byte(".onion\n"))
	}
	var exitErr error
	ok := testkit.Poll(testkit.Timeout, func() bool {
		select {
		case exitErr = <-exited:
			exited <- exitErr
			return true // stop polling; reported below
		default:
		}
		return written()
	})
	if !written() {
		t.Fatalf("tor wrote no hostname (polled: %v, exited: %v):\n%s", ok, exitErr, out)
	}
}

// TestImportTorHiddenServiceDir imports a HiddenServiceDir written by a real tor, named
// by a reference joinmarket.cfg and given directly: the onion of the imported key is the
// one tor derived, a dry run writes nothing, a repeat is accepted, a different key in the
// destination is refused and left alone.
func TestImportTorHiddenServiceDir(t *testing.T) {
	t.Parallel()
	jm := t.TempDir()
	hs := filepath.Join(jm, "hidserv")
	torWritesHiddenServiceDir(t, hs)
	hostname := hostnameOf(t, hs)
	cfgPath := referenceCfg(t, jm, hs, strings.TrimSuffix(hostname, ".onion"))
	match := "Hostname:  matches " + filepath.Join(hs, "hostname") + " (" + hostname + ")"

	data := filepath.Join(t.TempDir(), "data")
	code, out, errs := ctl(environ(t), "import", "--dry-run", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("dry run: exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out, match, "(0600, would be written)")
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the dry run wrote into the data dir (%v)", err)
	}

	code, out, errs = ctl(environ(t), "import", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	wantLines(t, out, match, "Onion key: "+hostname+" → ", "(0600, written)", "Note: directory_nodes lists "+hostname+":5222")
	cfg, k := loadImported(t, data)
	if got := k.Onion() + ".onion"; got != hostname {
		t.Fatalf("the imported key is %s, tor's hostname says %s", got, hostname)
	}
	if cfg.Network != "mainnet" || cfg.TorMode != "launch" {
		t.Errorf("imported config: network %q, tor_mode %q", cfg.Network, cfg.TorMode)
	}

	code, out, errs = ctl(environ(t), "import", cfgPath, "--data-dir", data)
	if code != 0 {
		t.Fatalf("repeat: exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, "(0600, already there)", "already holds these settings")

	// The HiddenServiceDir itself, into a data dir that already has another onion.
	other, err := onionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	busy := t.TempDir()
	dest := filepath.Join(busy, "onion", onionkey.SecretFileName)
	if err := onionkey.WriteSecretFile(dest, other); err != nil {
		t.Fatal(err)
	}
	code, _, errs = ctl(environ(t), "import", hs, "--data-dir", busy)
	if code != 1 || !strings.Contains(errs, "already holds a different key") {
		t.Fatalf("different key: exit %d, stderr %q", code, errs)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, other.SecretFile()) {
		t.Fatal("the existing key was changed")
	}

	fresh := filepath.Join(t.TempDir(), "data")
	code, out, errs = ctl(environ(t), "import", hs, "--data-dir", fresh)
	if code != 0 {
		t.Fatalf("HiddenServiceDir: exit %d, stderr %q", code, errs)
	}
	wantLines(t, out, match)
	if _, k2 := loadImported(t, fresh); !k2.Equal(k) {
		t.Fatal("the HiddenServiceDir and the joinmarket.cfg gave different keys")
	}
}
