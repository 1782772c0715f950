package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// TestReloadLog: SIGHUP's log names each applied change once, as changed, and the
// settings that need a restart once, as not applied; never a refused one as changed.
func TestReloadLog(t *testing.T) {
	home := t.TempDir()
	opts := config.Options{HomeDir: home}
	cfg, err := config.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, nil))
	srv, err := server.New(cfg, id, log)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)

	toml := "[directory_server]\nnetwork = \"signet\"\nmotd = \"new motd\"\n"
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "config.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	reload(opts, srv, level, log)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		`level=INFO msg="reload: setting changed" key=motd old="\"JoinMarket directory node (Go)\"" new="\"new motd\""`,
		`level=WARN msg="reload: these settings need a restart and were not applied" keys=[network]`,
	}
	if len(lines) != len(want) {
		t.Fatalf("log:\n%s\nwant %d lines", out.String(), len(want))
	}
	for i, l := range lines {
		if _, rest, _ := strings.Cut(l, " "); rest != want[i] { // drop time=…
			t.Errorf("line %d: %s\nwant: %s", i, rest, want[i])
		}
	}
	if got := srv.Config(); got.Network != "regtest" || got.MOTD != "new motd" {
		t.Errorf("in force: network %q motd %q", got.Network, got.MOTD)
	}

	// The same sources again: nothing changes, and the refused setting is still named.
	out.Reset()
	reload(opts, srv, level, log)
	if got := strings.TrimSpace(out.String()); strings.Contains(got, "setting changed") || !strings.Contains(got, "keys=[network]") {
		t.Errorf("second reload logged:\n%s", got)
	}
}

// TestUnknownKeysWarned: at start, one WARN line lists the config.toml keys and the
// prefixed environment variables that no setting uses. The listen port is taken, so run
// returns right after the warning.
func TestUnknownKeysWarned(t *testing.T) {
	home := t.TempDir()
	dataDir := filepath.Join(home, ".joinmarket-ng")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	toml := "[directory_server]\nmax_peerz = 5\nmotd = \"hi\"\n"
	if err := os.WriteFile(filepath.Join(dataDir, "config.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	t.Setenv("HOME", home)
	t.Setenv("PORT", port)
	t.Setenv("DIRECTORY_SERVER__PROT", "6000")
	t.Setenv("LOGGING__LEVLE", "DEBUG")
	var out, errOut strings.Builder
	if code := run(nil, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1 (port taken): %s", code, errOut.String())
	}
	want := `level=WARN msg="unknown settings ignored" keys="directory_server.max_peerz (config.toml), DIRECTORY_SERVER__PROT (environment), LOGGING__LEVLE (environment)"`
	var warns []string
	for _, l := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(l, "level=WARN") {
			_, rest, _ := strings.Cut(l, " ") // drop time=…
			warns = append(warns, rest)
		}
	}
	if len(warns) != 1 || warns[0] != want {
		t.Fatalf("WARN lines %q\nwant one: %s\nlog:\n%s", warns, want, errOut.String())
	}
}
