package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/onionkey"
)

var onionLine = regexp.MustCompile(`^[a-z2-7]{56}\.onion\n$`)

// checkVanityKey checks a successful run: one address on stdout, matching the key file.
func checkVanityKey(t *testing.T, out, stdout, prefix string) onionkey.Key {
	t.Helper()
	if !onionLine.MatchString(stdout) || !strings.HasPrefix(stdout, prefix) {
		t.Fatalf("stdout %q: want one address starting with %q", stdout, prefix)
	}
	k, err := onionkey.Load(out) // also checks mode 0600 and tor's format
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Onion() + ".onion\n"; got != stdout {
		t.Fatalf("the key file is for %s, stdout says %s", got, stdout)
	}
	if !jm.ValidOnionV3(strings.TrimSpace(stdout)) {
		t.Fatalf("%s is not a valid v3 address", stdout)
	}
	return k
}

func TestVanity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	out := filepath.Join(dir, "keys", "found") // the directory is created

	code, stdout, stderr := ctl(environ(t), "--data-dir", data, "vanity", "J", "--out", out, "--workers", "2")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkVanityKey(t, out, stdout, "j")
	for _, want := range []string{
		filepath.Join(data, "onion", "hs_ed25519_secret_key"),
		"TOR_ONION_KEY_FILE=" + out,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Flags before the prefix; a two-character prefix.
	out2 := filepath.Join(dir, "second")
	code, stdout, stderr = ctl(environ(t), "vanity", "--workers", "1", "--out", out2, "7q")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkVanityKey(t, out2, stdout, "7q")
	if !strings.Contains(stderr, "<data dir>") && !strings.Contains(stderr, filepath.Join(".joinmarket-ng", "onion", "hs_ed25519_secret_key")) {
		t.Errorf("stderr does not say where the server reads the key:\n%s", stderr)
	}
}

// TestVanityDefaultOut: without --out, the key goes to ./hs_ed25519_secret_key.
func TestVanityDefaultOut(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, stdout, stderr := ctl(environ(t), "vanity", "a")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkVanityKey(t, filepath.Join(dir, "hs_ed25519_secret_key"), stdout, "a")
}

func TestVanityRefusesOverwrite(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "hs_ed25519_secret_key")
	if err := os.WriteFile(out, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ctl(environ(t), "vanity", "a", "--out", out)
	if line := oneLine(t, stderr); code != 1 || stdout != "" || !strings.Contains(line, "refusing to overwrite") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Errorf("file changed to %q", b)
	}
	// An --out in a path through a regular file cannot be written: refused up front.
	code, _, stderr = ctl(environ(t), "vanity", "a", "--out", filepath.Join(out, "key"))
	if code != 1 || !strings.Contains(stderr, "not a directory") {
		t.Errorf("--out under a file: exit %d, stderr %q", code, stderr)
	}
}

func TestVanityUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "key")
	for _, args := range [][]string{
		{"vanity"},
		{"vanity", "--out", out},
		{"vanity", "jm0", "--out", out},
		{"vanity", "jm-dir", "--out", out},
		{"vanity", "", "--out", out},
		{"vanity", "abcdefghijklm", "--out", out},
		{"vanity", "ab", "cd", "--out", out},
		{"vanity", "ab", "--workers", "-1", "--out", out},
		{"vanity", "ab", "--workers", "many", "--out", out},
		{"vanity", "ab", "--workers", "1025", "--out", out},
		{"vanity", "ab", "--bogus", "--out", out},
		{"vanity", "ab", "--out", ""},
	} {
		code, stdout, stderr := ctl(environ(t), args...)
		if line := oneLine(t, stderr); code != 2 || stdout != "" || !strings.HasPrefix(line, "jm-directory-ctl: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	if code, _, stderr := ctl(environ(t), "vanity", "jm1", "--out", out); !strings.Contains(stderr, "a-z and 2-7") || code != 2 {
		t.Errorf("bad character: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a usage error wrote a key")
	}
}

func TestVanityHelp(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := ctl(environ(t), "vanity", "-h")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: jm-directory-ctl vanity PREFIX") {
		t.Errorf("vanity -h: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"-h"}, {"health", "--help"}} {
		code, stdout, _ := ctl(environ(t), args...)
		if code != 0 || !strings.Contains(stdout, "jm-directory-ctl vanity PREFIX [--out FILE] [--workers N]") {
			t.Errorf("%v: exit %d, the usage lacks vanity:\n%s", args, code, stdout)
		}
	}
}

// TestVanityInterrupted: Ctrl-C (the context ending) stops the search; nothing is
// written and the exit status is 1.
func TestVanityInterrupted(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "key")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	var so, se bytes.Buffer
	start := time.Now()
	code := runVanity(ctx, []string{"abcdefghijkl", "--out", out, "--workers", "1"}, defaults(environ(t)), environ(t), &so, &se)
	if code != 1 || so.Len() != 0 || !strings.Contains(se.String(), "interrupted; no key written") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, so.String(), se.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an interrupted search wrote a key")
	}
}

func TestVanityFormatting(t *testing.T) {
	t.Parallel()
	if got, want := progressLine(1_200_000, 6666666666*time.Nanosecond, 33554432),
		"tried 1.2M keys, 180k/s, expected 33.6M, ETA 3m00s"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if got, want := progressLine(40_000_000, 10*time.Second, 33554432),
		"tried 40.0M keys, 4.0M/s, expected 33.6M, past the expected count, keep waiting"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if got, want := progressLine(0, 0, 32), "tried 0 keys, 0/s, expected 32, ETA unknown"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	for n, want := range map[float64]string{
		0: "0", 950: "950", 999.6: "1.0k", 1000: "1.0k", 180_000: "180k", 99_960: "100k",
		1_234_567: "1.2M", 33_554_432: "33.6M", 999_600: "1.0M", 1.1e18: "1.1E", 1e21: "1000E",
	} {
		if got := count(n); got != want {
			t.Errorf("count(%v) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[float64]string{
		0: "0s", 45.4: "45s", 185: "3m05s", 3600: "1h00m", 7620: "2h07m", 86400*12 + 3*3600: "12d03h",
		86400 * 365 * 10: "10 years", 1e30: "more than a century",
	} {
		if got := duration(s); got != want {
			t.Errorf("duration(%v) = %q, want %q", s, got, want)
		}
	}
}
