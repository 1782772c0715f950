package liveness_test

import (
	"bufio"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Identities used throughout (§11 of PROTOCOL.md and the brief).
const (
	onionA = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	onionB = "uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion"

	makerLoc = onionA + ":5222"
	dnLoc    = onionB + ":5222"

	nickMaker  = "J59xfsUewpdmrbuM"
	nickTaker  = "J58w4tpYN3zRBwC9"
	nickDN     = "J5CHzCDv77erayr2"
	notServing = wire.NotServing
)

var discard = slog.New(slog.DiscardHandler)

const welcome = "{\"type\":795,\"line\":\"welcome\"}\r\n"

// client is the far end of one registered peer's connection.
type client struct {
	p     *peer.Peer
	cli   net.Conn
	lines chan string // every line received, CRLF included; closed at EOF
}

// harness is a registry and a router over net.Pipe peers. It must be created and used
// inside a synctest bubble so that recv can tell "nothing was sent" from "not yet".
type harness struct {
	t       *testing.T
	ctr     *stats.Counters
	reg     *registry.Registry
	rt      *router.Router
	sw      *liveness.Sweeper
	clients []*client
	nextID  uint64
}

// settings are the joinmarket-ng / joinmarket-rs defaults (PROTOCOL.md §7).
var settings = liveness.Settings{Sweep: 60 * time.Second, Idle: 600 * time.Second, HardEvict: 1500 * time.Second, PongWait: 30 * time.Second}

func newHarness(t *testing.T, dnNick, dnLocation string) *harness {
	t.Helper()
	ctr := &stats.Counters{}
	reg := registry.New(100000)
	rt := router.New(reg, ctr, dnNick, dnLocation)
	return &harness{t: t, ctr: ctr, reg: reg, rt: rt, sw: liveness.New(reg, rt, settings, discard)}
}

// features builds what a handshake with these true features yields.
func features(names ...string) handshake.Features {
	var f handshake.Features
	if len(names) > 0 {
		f.True = slices.Sorted(slices.Values(names))
	}
	for _, n := range names {
		switch n {
		case "ping":
			f.Ping = true
		case "peerlist_features":
			f.PeerlistFeatures = true
		}
	}
	return f
}

func mustLocation(t *testing.T, s string) jm.Location {
	t.Helper()
	loc, err := jm.ParseLocation(s, false)
	if err != nil {
		t.Fatalf("ParseLocation(%q): %v", s, err)
	}
	return loc
}

// add registers a peer and consumes its welcome line.
func (h *harness) add(nick, location string, feats ...string) *client {
	h.t.Helper()
	h.nextID++
	srv, cli := net.Pipe()
	p := peer.New(h.nextID, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second}, &stats.Counters{}, discard)
	p.SetHello(handshake.Hello{Nick: nick, Location: mustLocation(h.t, location), Features: features(feats...)})
	c := &client{p: p, cli: cli, lines: make(chan string, 4096)}
	go func() {
		defer close(c.lines)
		br := bufio.NewReaderSize(cli, 64<<10)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			c.lines <- l
		}
	}()
	h.clients = append(h.clients, c)
	if res, _ := h.reg.Register(p, []byte(welcome)); res != registry.Registered {
		h.t.Fatalf("Register(%s) = %v", nick, res)
	}
	if got := <-c.lines; got != welcome {
		h.t.Fatalf("%s: first line %q, want the welcome", nick, got)
	}
	return c
}

// close shuts every connection and waits for the readers to finish, so the bubble can end.
func (h *harness) close() {
	for _, c := range h.clients {
		c.p.Close(stats.CloseShutdown)
		_ = c.cli.Close()
	}
	for _, c := range h.clients {
		for range c.lines {
		}
	}
}

// recv returns every line c has received since the last call, once all goroutines of the
// bubble are idle.
func (c *client) recv() []string {
	synctest.Wait()
	var out []string
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return out
			}
			out = append(out, l)
		default:
			return out
		}
	}
}

// bubble runs f in a synctest bubble with a fresh harness that is torn down afterwards.
func bubble(t *testing.T, dnNick, dnLocation string, f func(t *testing.T, h *harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, dnNick, dnLocation)
		defer h.close()
		f(t, h)
	})
}

func equalLines(t *testing.T, who string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s received:\n%s\nwant:\n%s", who, quoteAll(got), quoteAll(want))
	}
}

func quoteAll(ls []string) string {
	if len(ls) == 0 {
		return "\t(nothing)"
	}
	s := ""
	for _, l := range ls {
		s += "\t" + strconv.Quote(l) + "\n"
	}
	return s
}
