package main

import (
	"log/slog"
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
