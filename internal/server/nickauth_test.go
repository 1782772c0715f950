package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// signetNoLocation is a signet directory on loopback without tor and without a location:
// it knows no directory-id of its own.
func signetNoLocation(mode string) func(*config.Config) {
	return func(c *config.Config) { c.Network, c.NickAuthMode = "signet", mode }
}

// TestNickAuthNeedsDirectoryID: require_verified with no directory-id refuses to serve,
// with the setting to fix in the error; prefer_verified serves without offering nick
// authentication and says why in one WARN; an explicit nick_auth_directory_id is used
// as it is.
func TestNickAuthNeedsDirectoryID(t *testing.T) {
	cfg := config.Default()
	signetNoLocation("require_verified")(&cfg)
	cfg.DataDir, cfg.Port = t.TempDir(), 0
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, id, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "nick_auth_directory_id") {
		t.Fatalf("require_verified without a directory-id: Serve returned %v", err)
	}

	var logs bytes.Buffer
	d := dirtest.Start(t, signetNoLocation("prefer_verified"), slog.New(slog.NewTextHandler(&logs, nil)))
	if got := d.Srv.NickAuthID(); got != "" {
		t.Fatalf("directory-id %q without a location", got)
	}
	if n := strings.Count(logs.String(), "nick authentication is not offered: no directory-id"); n != 1 {
		t.Fatalf("%d WARN lines about the missing directory-id:\n%s", n, logs.String())
	}
	c := d.Target().Join(t, dirtest.PeerSpec{Features: map[string]bool{"nick_auth": true}})
	if f, _ := c.DN["features"].(map[string]any); f["nick_auth"] != nil {
		t.Fatalf("nick_auth advertised without a directory-id: %v", f)
	}

	d2 := dirtest.Start(t, func(c *config.Config) { c.NickAuthDirectoryID = "test:jm-directory-5222" }, nil)
	if _, code := d2.Target().JoinAuth(t, dirtest.AuthSpec{DirectoryID: "test:jm-directory-5222"}); code != "ok" {
		t.Fatalf("explicit directory-id: %s", code)
	}
}
