package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	id, _, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, id, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hello(nick, loc string) string {
	hs := fmt.Sprintf(`{"app-name": "joinmarket", "directory": false, "location-string": %q, "proto-ver": 5, "features": {}, "nick": %q, "network": "regtest"}`, loc, nick)
	return string(wire.AppendEnvelope(nil, wire.TypeHandshake, hs))
}

// TestAcceptOverPipe drives the server with net.Pipe: the server is handed connections.
func TestAcceptOverPipe(t *testing.T) {
	s := newServer(t)
	s.SetLocation("127.0.0.1:5222")
	type cl struct {
		conn net.Conn
		br   *bufio.Reader
	}
	join := func(nick, loc string) cl {
		a, b := net.Pipe()
		go s.Accept(b)
		t.Cleanup(func() { a.Close() })
		c := cl{a, bufio.NewReader(a)}
		go io.WriteString(a, hello(nick, loc))
		_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := c.br.ReadString('\n')
		if err != nil || !strings.Contains(line, `\"accepted\":true`) {
			t.Fatalf("handshake: %v %q", err, line)
		}
		return c
	}
	m := join("J59xfsUewpdmrbuM", "127.0.0.1:27102")
	tk := join("J55uwMUczBgZV44z", wire.NotServing)

	// Admission's bookkeeping is complete before the 795 is queued.
	st := s.Status(true)
	if st.Peers != 2 || st.Makers != 1 || st.Takers != 1 || st.Pending != 0 {
		t.Fatalf("status %+v", st)
	}
	if len(st.MakerNicks) != 1 || st.MakerNicks[0] != "J59xfsUewpdmrbuM" || st.TakerNicks[0] != "J55uwMUczBgZV44z" {
		t.Fatalf("nicks %v %v", st.MakerNicks, st.TakerNicks)
	}
	if s.Status(false).MakerNicks != nil {
		t.Fatal("nick lists returned without asking")
	}

	go io.WriteString(m.conn, string(wire.AppendEnvelope(nil, wire.TypePubmsg, "J59xfsUewpdmrbuM!PUBLIC!cancel 0")))
	line, err := tk.br.ReadString('\n')
	if err != nil || line != `{"type":687,"line":"J59xfsUewpdmrbuM!PUBLIC!cancel 0"}`+"\r\n" {
		t.Fatalf("relay: %v %q", err, line)
	}
	m.conn.Close()
	line, err = tk.br.ReadString('\n')
	if err != nil || line != `{"type":789,"line":"J59xfsUewpdmrbuM;127.0.0.1:27102;D,`+s.Nick()+`;127.0.0.1:5222"}`+"\r\n" {
		t.Fatalf("departure: %v %q", err, line)
	}
	if got := s.Counters().Closes(reason.CloseClientGone); got != 1 {
		t.Fatalf("client-gone closes = %d", got)
	}
}

func TestCloseReason(t *testing.T) {
	s := newServer(t)
	a, b := net.Pipe()
	defer a.Close()
	p := peer.New(1, b, peer.Limits{QueueBytes: 1 << 16, WriteTimeout: time.Second}, s.Counters(), s.log)
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		err         error
		handshaking bool
		want        reason.Close
	}{
		{io.EOF, false, reason.CloseClientGone},
		{io.ErrUnexpectedEOF, true, reason.CloseClientGone},
		{wire.ErrLineTooLong, false, reason.CloseLineTooLong},
		{timeout, true, reason.CloseHandshakeTimeout},
		{timeout, false, reason.CloseReadError},
		{errors.New("connection reset"), false, reason.CloseReadError},
	}
	for _, c := range cases {
		if got := closeReason(p, c.err, c.handshaking); got != c.want {
			t.Errorf("%v (handshaking %v): %v, want %v", c.err, c.handshaking, got, c.want)
		}
	}
	// A reason already set (eviction, write timeout) wins over the read error it causes.
	p.Close(reason.CloseWriteTimeout)
	if got := closeReason(p, io.EOF, false); got != reason.CloseWriteTimeout {
		t.Errorf("got %v", got)
	}
}

func TestLocalLocation(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5222": "127.0.0.1:5222",
		"0.0.0.0:6000":   "127.0.0.1:6000",
		"[::]:7000":      "127.0.0.1:7000",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := localLocation(a); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestNewRejectsBadLocation(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Location = "example.com:5222"
	id, _, _ := jm.LoadOrCreateIdentity(cfg.DataDir)
	if _, err := New(cfg, id, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("a non-onion, non-local location was accepted")
	}
}

// TestReload: reloadable settings apply at once; restart-only ones are reported and kept.
func TestReload(t *testing.T) {
	s := newServer(t)
	next := *s.conf()
	next.MOTD = "new motd"
	next.MaxPeers = 7
	next.MessageRateLimit = 42
	next.HeartbeatSweepInterval = 5 * time.Second
	next.Port = 9999        // needs a restart
	next.Network = "signet" // needs a restart
	changes, restart, err := s.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, c := range append(changes, restart...) {
		keys[c.Key] = true
	}
	for _, k := range []string{"motd", "max_peers", "message_rate_limit", "heartbeat_sweep_interval", "port", "network"} {
		if !keys[k] {
			t.Errorf("change of %s not reported: %v %v", k, changes, restart)
		}
	}
	applied := map[string]bool{}
	for _, c := range changes {
		applied[c.Key] = true
	}
	for _, c := range restart {
		if applied[c.Key] {
			t.Errorf("%s reported both as changed and as needing a restart", c.Key)
		}
	}
	if applied["port"] || applied["network"] || !applied["motd"] || len(restart) != 2 {
		t.Errorf("changes %v, restart %v: want port and network (only) refused", changes, restart)
	}
	if got := s.Config(); got.MOTD != "new motd" || got.Network != "regtest" {
		t.Errorf("Config() after reload: motd %q network %q", got.MOTD, got.Network)
	}
	c := s.conf()
	if c.MOTD != "new motd" || c.MessageRateLimit != 42 || s.reg.Max() != 7 || s.sweeper.Settings().Sweep != 5*time.Second {
		t.Errorf("reloadable settings not applied: %+v", c)
	}
	if c.Port != config.Default().Port || c.Network != "regtest" {
		t.Errorf("restart-only settings applied: port %d network %s", c.Port, c.Network)
	}
	if !strings.Contains(string(s.dir.Load().accept), "new motd") {
		t.Error("the 795 does not carry the new motd")
	}
	bad := next
	bad.MaxPeers = 0
	if _, _, err := s.Reload(bad); err == nil || s.reg.Max() != 7 {
		t.Errorf("invalid reload applied: %v", err)
	}
}
