// Package dirtest is the test kit for real sockets: it starts in-process directory
// servers (Start, New) and speaks to them, or to an external directory, as JoinMarket
// peers do: Join and Handshake for a raw connection, and Clients (client.go) with
// send/expect helpers that check every line a reference client would choke on. Tests
// that drive the router without sockets use internal/peertest instead.
package dirtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Timeout bounds each dial and each handshake of a peer. Generous for the race detector
// on a shared machine; a passing run never comes close.
const Timeout = 10 * time.Second

// Dir is an in-process directory server on a free loopback port.
type Dir struct {
	// Srv is the server.
	Srv *server.Server
	// Addr is the address of its JoinMarket listener.
	Addr string
	// Network is the network it serves, the one its peers must name.
	Network string

	ln   net.Listener
	stop func() error
}

// New creates a directory server with the default settings, a fresh data dir and
// identity, and a listener on a free loopback port, but does not serve yet: see Serve.
// adjust, if not nil, changes the settings first; log nil discards the server's log.
// The server is stopped when the test ends, and an error from Serve fails the test.
func New(t testing.TB, adjust func(*config.Config), log *slog.Logger) *Dir {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Port = 0
	if adjust != nil {
		adjust(&cfg)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, id, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &Dir{Srv: srv, Addr: ln.Addr().String(), Network: cfg.Network, ln: ln}
	d.stop = sync.OnceValue(func() error { ln.Close(); return nil })
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return d
}

// Start is New followed by Serve.
func Start(t testing.TB, adjust func(*config.Config), log *slog.Logger) *Dir {
	t.Helper()
	d := New(t, adjust, log)
	d.Serve(t)
	return d
}

// Serve runs the server's Serve in a goroutine and returns once it is listening. Call it
// at most once.
func (d *Dir) Serve(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	served := make(chan struct{})
	go func() { err = d.Srv.Serve(ctx, d.ln); close(served) }()
	d.stop = sync.OnceValue(func() error {
		cancel()
		<-served
		return err
	})
	testkit.Eventually(t, "the directory listening", func() bool {
		select {
		case <-served:
			t.Fatalf("Serve returned before listening: %v", err)
		default:
		}
		return d.Srv.Listening()
	})
}

// Stop shuts the server down and returns what Serve returned (nil if it never served).
// It is idempotent: later calls, and the one when the test ends, return the same.
func (d *Dir) Stop() error { return d.stop() }

// Join dials the directory and completes an accepted handshake as nick at location on
// the directory's network, announcing features (see Handshake). The connection is
// closed when the test ends.
func (d *Dir) Join(t testing.TB, nick, location string, features map[string]bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", d.Addr, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, Handshake(t, conn, nick, location, d.Network, features)
}

// Handshake sends on conn the handshake (793) of a reference client named nick, serving
// location (or wire.NotServing) on network, with features (nil for none), in that
// client's key order and json.dumps spacing, CRLF-terminated. It fails the test unless
// the directory's next line, within Timeout, is a 795 that accepts the peer, and returns
// the reader holding whatever the directory sent after it.
func Handshake(t testing.TB, conn net.Conn, nick, location, network string, features map[string]bool) *bufio.Reader {
	t.Helper()
	br, err := TryHandshake(conn, nick, location, network, features, Timeout)
	if err != nil {
		t.Fatalf("%s: %v", nick, err)
	}
	return br
}

// TryHandshake is Handshake returning an error instead of failing the test, with its own
// deadline (for connections that may be refused, or go through Tor).
func TryHandshake(conn net.Conn, nick, location, network string, features map[string]bool, timeout time.Duration) (*bufio.Reader, error) {
	hs := handshake.ClientHello{Nick: nick, Location: location, Network: network, Features: features}.Line()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, `{"type": 793, "line": `+string(wire.AppendQuoted(nil, hs))+"}\r\n"); err != nil {
		return nil, fmt.Errorf("sending the handshake: %w", err)
	}
	br := bufio.NewReader(conn)
	raw, err := br.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("waiting for the directory's handshake: %w", err)
	}
	env, err := wire.Decode(bytes.TrimSuffix(raw, []byte("\r\n")))
	if err != nil || env.Type != wire.TypeDNHandshake {
		return nil, fmt.Errorf("reply %q: want a 795 (%v)", raw, err)
	}
	var dn struct {
		Accepted bool `json:"accepted"`
	}
	if err := json.Unmarshal([]byte(env.Line), &dn); err != nil || !dn.Accepted {
		return nil, fmt.Errorf("handshake not accepted: %s (%v)", env.Line, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return br, nil
}

// Logger returns a logger that writes the records at level and above to the test's log.
func Logger(t testing.TB, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
