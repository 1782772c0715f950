// Clients: scripted JoinMarket peers that speak to a directory over a real socket, the
// way reference and joinmarket-ng clients do, and check every line they receive against
// what a reference client would choke on (docs/protocol.md §2.3, Appendix B).

package dirtest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha3"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Target is a directory under test: an in-process one (Dir.Target), or an external one
// named by the environment (ExternalTarget).
type Target struct {
	Addr     string         // its JoinMarket address
	Network  string         // the network its peers must name
	External bool           // not in-process: shared with others, maybe behind Tor
	Srv      *server.Server // nil when external
	SOCKS    string         // a SOCKS5 proxy (Tor's) to reach an external one through, or ""

	mu    sync.Mutex
	nicks map[string]bool // every nick this test's clients have sent a handshake for
}

// own records that nick belongs to one of this test's clients.
func (tg *Target) own(nick string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.nicks == nil {
		tg.nicks = map[string]bool{}
	}
	tg.nicks[nick] = true
}

// foreign reports whether env is a departure notice that concerns none of this test's
// peers: a peerlist of ";D" entries for nicks this test never used, plus at most the
// directory's own entry. An external directory is shared (with earlier tests of the run,
// earlier runs, other users), and over Tor a departure can reach a peer that joined
// after it; a reference client takes such notices in its stride, and so do these
// clients, but only against an external directory: an in-process one is this test's
// alone, and every line it sends must be expected.
func (tg *Target) foreign(env wire.Envelope, dnNick string) bool {
	if !tg.External || env.Type != wire.TypePeerlist || env.Line == "" {
		return false
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	departures := 0
	for _, e := range strings.Split(env.Line, ",") {
		nick, _, _ := strings.Cut(e, ";")
		switch {
		case strings.HasSuffix(e, ";D") && !tg.nicks[nick]:
			departures++
		case nick == dnNick && !strings.HasSuffix(e, ";D"):
		default:
			return false
		}
	}
	return departures > 0
}

// ExternalTarget returns the directory named by JM_DIRECTORY_ADDR (network
// JM_DIRECTORY_NETWORK, default regtest; reached through the SOCKS5 proxy
// JM_DIRECTORY_SOCKS when set), if any.
func ExternalTarget() (*Target, bool) {
	addr := os.Getenv("JM_DIRECTORY_ADDR")
	if addr == "" {
		return nil, false
	}
	network := os.Getenv("JM_DIRECTORY_NETWORK")
	if network == "" {
		network = "regtest"
	}
	return &Target{Addr: addr, Network: network, External: true, SOCKS: os.Getenv("JM_DIRECTORY_SOCKS")}, true
}

// Target is the directory as a Target for Clients.
func (d *Dir) Target() *Target { return &Target{Addr: d.Addr, Network: d.Network, Srv: d.Srv} }

// NewNick returns a fresh, valid JoinMarket nick (of a new key).
func NewNick(t testing.TB) string {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return jm.NickFromPubKey(k.PubKey().SerializeCompressed())
}

// NewOnion returns a random valid v3 onion host.
func NewOnion(t testing.TB) string {
	var pub [32]byte
	if _, err := rand.Read(pub[:]); err != nil {
		t.Fatal(err)
	}
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub[:])
	h.Write([]byte{3})
	sum := h.Sum(nil)
	raw := append(append(pub[:], sum[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)) + ".onion"
}

// PeerSpec describes a client to connect.
type PeerSpec struct {
	Maker    bool
	Features map[string]bool
	Nick     string // "" = fresh
	Location string // "" = fresh onion for makers, NOT-SERVING-ONION for takers
}

// The four kinds of client in the field: reference (joinmarket-clientserver) makers and
// takers announce no features; joinmarket-ng ones announce ping and peerlist_features.
var (
	RefMaker = PeerSpec{Maker: true}
	RefTaker = PeerSpec{}
	NGMaker  = PeerSpec{Maker: true, Features: map[string]bool{"ping": true, "peerlist_features": true}}
	NGTaker  = PeerSpec{Features: map[string]bool{"ping": true, "peerlist_features": true}}
)

// Client is a scripted JoinMarket peer.
type Client struct {
	t        *testing.T
	tg       *Target
	Conn     net.Conn
	Reader   *bufio.Reader // what the directory sent, buffered
	Nick     string
	Location string
	Features map[string]bool
	DN       map[string]any // the directory's 795 payload, once received
}

// DialWith connects a client to tg with d (through tg.SOCKS when set) without a
// handshake. The connection is closed when the test ends.
func (tg *Target) DialWith(t *testing.T, d *net.Dialer) *Client {
	t.Helper()
	var dialer proxy.Dialer = d
	if socks := tg.SOCKS; socks != "" && tg.External {
		// Through Tor's SOCKS5 port to an onion: a fresh isolation username per
		// connection is not needed, one circuit for all test peers is fine.
		pd, err := proxy.SOCKS5("tcp", socks, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		dialer = pd
	}
	conn, err := dialer.Dial("tcp", tg.Addr)
	if err != nil {
		// test/tor looks for this text: a connection Tor could not make is retried
		// there; any other failure is the directory's.
		t.Fatalf("cannot reach the directory: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Client{t: t, tg: tg, Conn: conn, Reader: bufio.NewReaderSize(conn, 64<<10)}
}

// Dial is DialWith a default dialer.
func (tg *Target) Dial(t *testing.T) *Client { return tg.DialWith(t, &net.Dialer{}) }

// HelloLine is a client handshake in the reference client's exact key order.
func HelloLine(nick, location, network string, protoVer int, directory bool, features map[string]bool) string {
	return handshake.ClientHello{Nick: nick, Location: location, Network: network,
		ProtoVer: protoVer, Directory: directory, Features: features}.Line()
}

// Resolve fills in the nick and location of a spec.
func (s PeerSpec) Resolve(t testing.TB) PeerSpec {
	if s.Nick == "" {
		s.Nick = NewNick(t)
	}
	if s.Location == "" {
		if s.Maker {
			s.Location = NewOnion(t) + ":5222"
		} else {
			s.Location = wire.NotServing
		}
	}
	return s
}

// Join connects a peer and completes an accepted handshake.
func (tg *Target) Join(t *testing.T, s PeerSpec) *Client {
	t.Helper()
	return tg.JoinWith(t, &net.Dialer{}, s)
}

// JoinWith is Join with the dialer d.
func (tg *Target) JoinWith(t *testing.T, d *net.Dialer, s PeerSpec) *Client {
	t.Helper()
	s = s.Resolve(t)
	c := tg.DialWith(t, d)
	c.Nick, c.Location, c.Features = s.Nick, s.Location, s.Features
	c.Send(wire.TypeHandshake, HelloLine(s.Nick, s.Location, tg.Network, 5, false, s.Features))
	hs := c.RecvDN()
	if hs["accepted"] != true {
		t.Fatalf("handshake of %s not accepted: %v", s.Nick, hs["motd"])
	}
	return c
}

// SendRaw writes bytes as they are.
func (c *Client) SendRaw(b string) {
	c.t.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := io.WriteString(c.Conn, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Send writes one envelope the way the reference client does: Python json.dumps style, CRLF.
func (c *Client) Send(typ int, line string) {
	c.t.Helper()
	if typ == wire.TypeHandshake {
		var hs struct{ Nick string }
		if json.Unmarshal([]byte(line), &hs) == nil && hs.Nick != "" {
			c.tg.own(hs.Nick)
		}
	}
	c.SendRaw(fmt.Sprintf(`{"type": %d, "line": %s}`, typ, wire.AppendQuoted(nil, line)) + "\r\n")
}

func (c *Client) Pubmsg(body string) { c.t.Helper(); c.Send(wire.TypePubmsg, c.Nick+"!PUBLIC!"+body) }
func (c *Client) Privmsg(to *Client, body string) {
	c.t.Helper()
	c.Send(wire.TypePrivmsg, c.Nick+"!"+to.Nick+"!"+body)
}

var ErrClosed = errors.New("connection closed")

// Next reads one line, checking that a reference client could consume it.
func (c *Client) Next(timeout time.Duration) (wire.Envelope, error) {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	raw, err := c.Reader.ReadBytes('\n')
	if err != nil {
		if len(raw) > 0 {
			c.t.Fatalf("unterminated bytes before %v: %q", err, raw)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return wire.Envelope{}, err
		}
		return wire.Envelope{}, ErrClosed
	}
	CheckRefSafe(c.t, raw)
	env, _ := wire.Decode(bytes.TrimSuffix(raw, []byte("\r\n")))
	if c.tg.foreign(env, c.DNNick()) {
		c.t.Logf("%s: ignoring another client's departure notice %q", c.Nick, env.Line)
		return c.Next(timeout)
	}
	return env, nil
}

// CheckRefSafe fails the test for any line a reference client would choke on
// (docs/protocol.md §2.3, Appendix B).
func CheckRefSafe(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("line not terminated by CRLF: %q", raw)
	}
	content := raw[:len(raw)-2]
	if len(content) == 0 {
		t.Fatal("empty line sent")
	}
	if len(content) > wire.MaxLine {
		t.Fatalf("line of %d bytes sent (max %d)", len(content), wire.MaxLine)
	}
	if bytes.IndexByte(content, '\n') >= 0 || bytes.IndexByte(content, '\r') >= 0 {
		t.Fatalf("stray line break inside a line: %q", content)
	}
	env, err := wire.Decode(content)
	if err != nil {
		t.Fatalf("invalid envelope sent: %v: %q", err, content)
	}
	if !wire.Sendable(env.Type) {
		t.Fatalf("forbidden type %d sent", env.Type)
	}
	if (env.Type == wire.TypePrivmsg || env.Type == wire.TypePubmsg) && !strings.Contains(env.Line, "!") {
		t.Fatalf("relayed text without '!': %q", env.Line)
	}
}

// Recv returns the next line or fails.
func (c *Client) Recv() wire.Envelope {
	c.t.Helper()
	env, err := c.Next(Timeout)
	if err != nil {
		c.t.Fatalf("%s: waiting for a line: %v", c.Nick, err)
	}
	return env
}

// Expect returns the next line, which must have type typ.
func (c *Client) Expect(typ int) wire.Envelope {
	c.t.Helper()
	env := c.Recv()
	if env.Type != typ {
		c.t.Fatalf("%s: got type %d %q, want type %d", c.Nick, env.Type, env.Line, typ)
	}
	return env
}

// ExpectLine requires the next line to be exactly (typ, line).
func (c *Client) ExpectLine(typ int, line string) {
	c.t.Helper()
	env := c.Expect(typ)
	if env.Line != line {
		c.t.Fatalf("%s: got %q, want %q", c.Nick, env.Line, line)
	}
}

// RecvDN reads the directory handshake.
func (c *Client) RecvDN() map[string]any {
	c.t.Helper()
	env := c.Expect(wire.TypeDNHandshake)
	var m map[string]any
	if err := json.Unmarshal([]byte(env.Line), &m); err != nil {
		c.t.Fatalf("795 line is not JSON: %v", err)
	}
	c.DN = m
	return m
}

// ExpectClosed requires that the directory closes the connection; lines received first
// are returned.
func (c *Client) ExpectClosed() []wire.Envelope {
	c.t.Helper()
	var got []wire.Envelope
	for {
		env, err := c.Next(Timeout)
		if errors.Is(err, ErrClosed) {
			return got
		}
		if err != nil {
			c.t.Fatalf("%s: connection not closed: %v", c.Nick, err)
		}
		got = append(got, env)
	}
}

// ExpectQuiet requires that nothing arrives and the connection stays open for d.
func (c *Client) ExpectQuiet(d time.Duration) {
	c.t.Helper()
	env, err := c.Next(d)
	if err == nil {
		c.t.Fatalf("%s: unexpected line %d %q", c.Nick, env.Type, env.Line)
	}
	if errors.Is(err, ErrClosed) {
		c.t.Fatalf("%s: connection closed", c.Nick)
	}
}

// Sync proves that everything sent to c before now has been delivered: another peer
// privmsgs c a marker, and c reads up to it. Lines before the marker are returned.
func (c *Client) Sync(via *Client) []wire.Envelope {
	c.t.Helper()
	marker := fmt.Sprintf("sync %d", time.Now().UnixNano())
	via.Privmsg(c, marker)
	var got []wire.Envelope
	for {
		env := c.Recv()
		if env.Type == wire.TypePrivmsg && strings.HasSuffix(env.Line, "!"+marker) {
			// The location peerlist follows the marker privmsg when there is something to say.
			if via.Location != wire.NotServing || c.DNLocation() != "" {
				c.Expect(wire.TypePeerlist)
			}
			return got
		}
		got = append(got, env)
	}
}

// DNNick is the directory's nick from its handshake.
func (c *Client) DNNick() string { s, _ := c.DN["nick"].(string); return s }

// DNLocation is the directory's location from its handshake ("" if not advertised).
func (c *Client) DNLocation() string { s, _ := c.DN["location-string"].(string); return s }

// DNEntry is the directory's own peerlist entry as c should see it ("" if unknown).
func (c *Client) DNEntry() string {
	if c.DNLocation() == "" {
		return ""
	}
	e := c.DNNick() + ";" + c.DNLocation()
	if c.Features["peerlist_features"] {
		e += ";F:peerlist_features+ping"
	}
	return e
}

// Entry is c's peerlist entry as seen by a recipient with or without peerlist_features.
func (c *Client) Entry(withF bool) string {
	e := c.Nick + ";" + c.Location
	if withF {
		var fs []string
		for _, k := range []string{"neutrino_compat", "nick_auth", "peerlist_features", "ping"} {
			if c.Features[k] {
				fs = append(fs, k)
			}
		}
		if len(fs) > 0 {
			e += ";F:" + strings.Join(fs, "+")
		}
	}
	return e
}

// LeftNotice is what others should receive when c leaves.
func (c *Client) LeftNotice(dnLoc, dnNick string) string {
	s := c.Nick + ";" + c.Location + ";D"
	if dnLoc != "" {
		s += "," + dnNick + ";" + dnLoc
	}
	return s
}

// SmallRcvBuf is a dialer whose sockets have a tiny receive buffer, so a client that
// stops reading pushes back on the directory quickly.
var SmallRcvBuf = &net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}}
