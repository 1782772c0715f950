// Package peertest is a test harness: registered peers over net.Pipe inside a
// testing/synctest bubble, for the router and liveness tests.
package peertest

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
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Identities used throughout (§11 of docs/protocol.md).
const (
	// OnionA is the onion a maker serves.
	OnionA = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	// OnionB is the directory's onion.
	OnionB = "uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion"

	// MakerLoc is a maker's location: OnionA on the default port.
	MakerLoc = OnionA + ":5222"
	// DNLoc is the directory's location: OnionB on the default port.
	DNLoc = OnionB + ":5222"

	// NickMaker is a maker's nick.
	NickMaker = "J59xfsUewpdmrbuM"
	// NickTaker is a taker's nick.
	NickTaker = "J58w4tpYN3zRBwC9"
	// NickOther is a third peer's nick.
	NickOther = "J55uwMUczBgZV44z"
	// NickDN is the directory's nick.
	NickDN = "J5CHzCDv77erayr2"
	// NotServing is the location of a peer that serves no onion.
	NotServing = wire.NotServing
)

// Welcome is the line every peer receives on registering.
const Welcome = "{\"type\":795,\"line\":\"welcome\"}\r\n"

var discard = slog.New(slog.DiscardHandler)

// Client is the far end of one registered peer's connection.
type Client struct {
	// P is the registered peer, the directory's end of the connection.
	P     *peer.Peer
	cli   net.Conn
	lines chan string // every line received, CRLF included; closed at EOF
}

// Harness is a registry and a router over net.Pipe peers. It must be created and used
// inside a synctest bubble so that Recv can tell "nothing was sent" from "not yet".
type Harness struct {
	// Ctr are the counters the router updates.
	Ctr *stats.Counters
	// Reg is the registry the peers are added to.
	Reg *registry.Registry
	// Rt is the router over Reg.
	Rt *router.Router

	t       *testing.T
	clients []*Client
	nextID  uint64
}

// New returns a harness whose router speaks as directory dnNick at dnLocation.
func New(t *testing.T, dnNick, dnLocation string) *Harness {
	t.Helper()
	ctr := &stats.Counters{}
	reg := registry.New(100000)
	return &Harness{t: t, Ctr: ctr, Reg: reg, Rt: router.New(reg, ctr, dnNick, dnLocation)}
}

// Features builds what a handshake with these true features yields.
func Features(names ...string) handshake.Features {
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

// MustLocation parses s as a location, failing the test if it is not one.
func MustLocation(t *testing.T, s string) jm.Location {
	t.Helper()
	loc, err := jm.ParseLocation(s, false)
	if err != nil {
		t.Fatalf("ParseLocation(%q): %v", s, err)
	}
	return loc
}

// Add registers a peer and consumes its welcome line.
func (h *Harness) Add(nick, location string, feats ...string) *Client {
	h.t.Helper()
	h.nextID++
	srv, cli := net.Pipe()
	p := peer.New(h.nextID, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second}, &stats.Counters{}, discard)
	p.SetHello(handshake.Hello{Nick: nick, Location: MustLocation(h.t, location), Features: Features(feats...)})
	c := &Client{P: p, cli: cli, lines: make(chan string, 4096)}
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
	if res, _ := h.Reg.Register(p, []byte(Welcome)); res != registry.Registered {
		h.t.Fatalf("Register(%s) = %v", nick, res)
	}
	if got := <-c.lines; got != Welcome {
		h.t.Fatalf("%s: first line %q, want the welcome", nick, got)
	}
	return c
}

// Close shuts every connection and waits for the readers to finish, so the bubble can end.
func (h *Harness) Close() {
	for _, c := range h.clients {
		c.P.Close(reason.CloseShutdown)
		_ = c.cli.Close()
	}
	for _, c := range h.clients {
		for range c.lines {
		}
	}
}

// Recv returns every line c has received since the last call, once all goroutines of the
// bubble are idle.
func (c *Client) Recv() []string {
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

// Lines is every line c receives, CRLF included, as it arrives; it is closed at EOF.
// What is read from it is not returned by Recv.
func (c *Client) Lines() <-chan string { return c.lines }

// Envelope is the compact encoding the directory sends.
func Envelope(typ int, line string) string {
	return string(wire.AppendEnvelope(nil, typ, line))
}

// Peerlist is the peerlist envelope the directory sends for line.
func Peerlist(line string) string { return Envelope(wire.TypePeerlist, line) }

// Bubble runs f in a synctest bubble with a fresh harness that is torn down afterwards.
func Bubble(t *testing.T, dnNick, dnLocation string, f func(t *testing.T, h *Harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		h := New(t, dnNick, dnLocation)
		defer h.Close()
		f(t, h)
	})
}

// EqualLines reports an error if got is not want, naming who received it.
func EqualLines(t *testing.T, who string, got, want []string) {
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

// DiscardConn is a net.Conn whose writes succeed at once and go nowhere, for benchmarks
// that measure the directory's own work rather than the kernel's. Reads are not supported.
type DiscardConn struct{ net.Conn }

// Write discards b.
func (DiscardConn) Write(b []byte) (int, error) { return len(b), nil }

// Close does nothing.
func (DiscardConn) Close() error { return nil }

// SetWriteDeadline does nothing.
func (DiscardConn) SetWriteDeadline(time.Time) error { return nil }
