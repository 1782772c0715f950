package conformance

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
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// recvTimeout bounds every wait for a line. Generous: the race detector and a shared
// machine slow things down; a passing run never waits this long.
const recvTimeout = 10 * time.Second

// target is a directory under test.
type target struct {
	addr     string
	network  string
	external bool
	srv      *server.Server // nil when external

	mu    sync.Mutex
	nicks map[string]bool // every nick this test's clients have sent a handshake for
}

// own records that nick belongs to one of this test's clients.
func (tg *target) own(nick string) {
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
func (tg *target) foreign(env wire.Envelope, dnNick string) bool {
	if !tg.external || env.Type != wire.TypePeerlist || env.Line == "" {
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

// external returns the directory named by JM_DIRECTORY_ADDR, if any.
func externalTarget() (*target, bool) {
	addr := os.Getenv("JM_DIRECTORY_ADDR")
	if addr == "" {
		return nil, false
	}
	network := os.Getenv("JM_DIRECTORY_NETWORK")
	if network == "" {
		network = "regtest"
	}
	return &target{addr: addr, network: network, external: true}, true
}

// directory returns the directory to test: JM_DIRECTORY_ADDR when set, otherwise a
// fresh in-process server with default settings.
func directory(t *testing.T) *target {
	t.Helper()
	if tg, ok := externalTarget(); ok {
		return tg
	}
	return startServer(t, nil)
}

// tuned returns an in-process server with adjusted settings; such tests cannot run
// against an external directory and are skipped there.
func tuned(t *testing.T, adjust func(*config.Config)) *target {
	t.Helper()
	if _, ok := externalTarget(); ok {
		t.Skip("needs an in-process directory with custom settings")
	}
	return startServer(t, adjust)
}

func startServer(t *testing.T, adjust func(*config.Config)) *target {
	t.Helper()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	d := dirtest.Start(t, adjust, dirtest.Logger(t, level))
	return &target{addr: d.Addr, network: d.Network, srv: d.Srv}
}

// identity is a fresh JoinMarket nick (with its key) and, for makers, an onion.
type identity struct {
	nick     string
	location string
}

func newNick(t testing.TB) string {
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return jm.NickFromPubKey(k.PubKey().SerializeCompressed())
}

// newOnion returns a random valid v3 onion host.
func newOnion(t testing.TB) string {
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

// peerSpec describes a client to connect.
type peerSpec struct {
	maker    bool
	features map[string]bool
	nick     string // "" = fresh
	location string // "" = fresh onion for makers, NOT-SERVING-ONION for takers
}

var (
	refMaker = peerSpec{maker: true}
	refTaker = peerSpec{}
	ngMaker  = peerSpec{maker: true, features: map[string]bool{"ping": true, "peerlist_features": true}}
	ngTaker  = peerSpec{features: map[string]bool{"ping": true, "peerlist_features": true}}
)

// client is a scripted JoinMarket peer.
type client struct {
	t        *testing.T
	tg       *target
	conn     net.Conn
	br       *bufio.Reader
	nick     string
	location string
	features map[string]bool
	// dn is the directory's 795 payload, once received.
	dn map[string]any
}

func (tg *target) dialWith(t *testing.T, d *net.Dialer) *client {
	t.Helper()
	var dialer proxy.Dialer = d
	if socks := os.Getenv("JM_DIRECTORY_SOCKS"); socks != "" && tg.external {
		// Through Tor's SOCKS5 port to an onion: a fresh isolation username per
		// connection is not needed, one circuit for all test peers is fine.
		pd, err := proxy.SOCKS5("tcp", socks, nil, d)
		if err != nil {
			t.Fatal(err)
		}
		dialer = pd
	}
	conn, err := dialer.Dial("tcp", tg.addr)
	if err != nil {
		// test/tor looks for this text: a connection Tor could not make is retried
		// there; any other failure is the directory's.
		t.Fatalf("cannot reach the directory: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, tg: tg, conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
}

func (tg *target) dial(t *testing.T) *client { return tg.dialWith(t, &net.Dialer{}) }

// handshakeLine is a client handshake in the reference client's exact key order.
func handshakeLine(nick, location, network string, protoVer int, directory bool, features map[string]bool) string {
	return handshake.ClientHello{Nick: nick, Location: location, Network: network,
		ProtoVer: protoVer, Directory: directory, Features: features}.Line()
}

// spec fills in the nick and location of a spec.
func (s peerSpec) resolve(t testing.TB) peerSpec {
	if s.nick == "" {
		s.nick = newNick(t)
	}
	if s.location == "" {
		if s.maker {
			s.location = newOnion(t) + ":5222"
		} else {
			s.location = wire.NotServing
		}
	}
	return s
}

// join connects a peer and completes an accepted handshake.
func (tg *target) join(t *testing.T, s peerSpec) *client {
	t.Helper()
	return tg.joinWith(t, &net.Dialer{}, s)
}

func (tg *target) joinWith(t *testing.T, d *net.Dialer, s peerSpec) *client {
	t.Helper()
	s = s.resolve(t)
	c := tg.dialWith(t, d)
	c.nick, c.location, c.features = s.nick, s.location, s.features
	c.send(wire.TypeHandshake, handshakeLine(s.nick, s.location, tg.network, 5, false, s.features))
	hs := c.recvDN()
	if hs["accepted"] != true {
		t.Fatalf("handshake of %s not accepted: %v", s.nick, hs["motd"])
	}
	return c
}

// sendRaw writes bytes as they are.
func (c *client) sendRaw(b string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(recvTimeout))
	if _, err := io.WriteString(c.conn, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes one envelope the way the reference client does: Python json.dumps style, CRLF.
func (c *client) send(typ int, line string) {
	c.t.Helper()
	if typ == wire.TypeHandshake {
		var hs struct{ Nick string }
		if json.Unmarshal([]byte(line), &hs) == nil && hs.Nick != "" {
			c.tg.own(hs.Nick)
		}
	}
	c.sendRaw(fmt.Sprintf(`{"type": %d, "line": %s}`, typ, wire.AppendQuoted(nil, line)) + "\r\n")
}

func (c *client) pubmsg(body string) { c.t.Helper(); c.send(wire.TypePubmsg, c.nick+"!PUBLIC!"+body) }
func (c *client) privmsg(to *client, body string) {
	c.t.Helper()
	c.send(wire.TypePrivmsg, c.nick+"!"+to.nick+"!"+body)
}

var errClosed = errors.New("connection closed")

// next reads one line, checking that a reference client could consume it.
func (c *client) next(timeout time.Duration) (wire.Envelope, error) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	raw, err := c.br.ReadBytes('\n')
	if err != nil {
		if len(raw) > 0 {
			c.t.Fatalf("unterminated bytes before %v: %q", err, raw)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return wire.Envelope{}, err
		}
		return wire.Envelope{}, errClosed
	}
	checkRefSafe(c.t, raw)
	env, _ := wire.Decode(bytes.TrimSuffix(raw, []byte("\r\n")))
	if c.tg.foreign(env, c.dnNick()) {
		c.t.Logf("%s: ignoring another client's departure notice %q", c.nick, env.Line)
		return c.next(timeout)
	}
	return env, nil
}

// checkRefSafe fails the test for any line a reference client would choke on
// (docs/protocol.md §2.3, Appendix B).
func checkRefSafe(t *testing.T, raw []byte) {
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

// recv returns the next line or fails.
func (c *client) recv() wire.Envelope {
	c.t.Helper()
	env, err := c.next(recvTimeout)
	if err != nil {
		c.t.Fatalf("%s: waiting for a line: %v", c.nick, err)
	}
	return env
}

// expect returns the next line, which must have type typ.
func (c *client) expect(typ int) wire.Envelope {
	c.t.Helper()
	env := c.recv()
	if env.Type != typ {
		c.t.Fatalf("%s: got type %d %q, want type %d", c.nick, env.Type, env.Line, typ)
	}
	return env
}

// expectLine requires the next line to be exactly (typ, line).
func (c *client) expectLine(typ int, line string) {
	c.t.Helper()
	env := c.expect(typ)
	if env.Line != line {
		c.t.Fatalf("%s: got %q, want %q", c.nick, env.Line, line)
	}
}

// recvDN reads the directory handshake.
func (c *client) recvDN() map[string]any {
	c.t.Helper()
	env := c.expect(wire.TypeDNHandshake)
	var m map[string]any
	if err := json.Unmarshal([]byte(env.Line), &m); err != nil {
		c.t.Fatalf("795 line is not JSON: %v", err)
	}
	c.dn = m
	return m
}

// expectClosed requires that the directory closes the connection; lines received first
// are returned.
func (c *client) expectClosed() []wire.Envelope {
	c.t.Helper()
	var got []wire.Envelope
	for {
		env, err := c.next(recvTimeout)
		if errors.Is(err, errClosed) {
			return got
		}
		if err != nil {
			c.t.Fatalf("%s: connection not closed: %v", c.nick, err)
		}
		got = append(got, env)
	}
}

// expectOpen requires that nothing arrives and the connection stays open for d.
func (c *client) expectQuiet(d time.Duration) {
	c.t.Helper()
	env, err := c.next(d)
	if err == nil {
		c.t.Fatalf("%s: unexpected line %d %q", c.nick, env.Type, env.Line)
	}
	if errors.Is(err, errClosed) {
		c.t.Fatalf("%s: connection closed", c.nick)
	}
}

// sync proves that everything sent to c before now has been delivered: another peer
// privmsgs c a marker, and c reads up to it. Lines before the marker are returned.
func (c *client) sync(via *client) []wire.Envelope {
	c.t.Helper()
	marker := fmt.Sprintf("sync %d", time.Now().UnixNano())
	via.privmsg(c, marker)
	var got []wire.Envelope
	for {
		env := c.recv()
		if env.Type == wire.TypePrivmsg && strings.HasSuffix(env.Line, "!"+marker) {
			// The location peerlist follows the marker privmsg when there is something to say.
			if via.location != wire.NotServing || c.dnLocation() != "" {
				c.expect(wire.TypePeerlist)
			}
			return got
		}
		got = append(got, env)
	}
}

// dnNick is the directory's nick from its handshake.
func (c *client) dnNick() string { s, _ := c.dn["nick"].(string); return s }

// dnLocation is the directory's location from its handshake ("" if not advertised).
func (c *client) dnLocation() string { s, _ := c.dn["location-string"].(string); return s }

// dnEntry is the directory's own peerlist entry as c should see it ("" if unknown).
func (c *client) dnEntry() string {
	if c.dnLocation() == "" {
		return ""
	}
	e := c.dnNick() + ";" + c.dnLocation()
	if c.features["peerlist_features"] {
		e += ";F:peerlist_features+ping"
	}
	return e
}

// entry is c's peerlist entry as seen by a recipient with or without peerlist_features.
func (c *client) entry(withF bool) string {
	e := c.nick + ";" + c.location
	if withF {
		var fs []string
		for _, k := range []string{"neutrino_compat", "nick_auth", "peerlist_features", "ping"} {
			if c.features[k] {
				fs = append(fs, k)
			}
		}
		if len(fs) > 0 {
			e += ";F:" + strings.Join(fs, "+")
		}
	}
	return e
}

// leftNotice is what others should receive when c leaves.
func (c *client) leftNotice(dnLoc, dnNick string) string {
	s := c.nick + ";" + c.location + ";D"
	if dnLoc != "" {
		s += "," + dnNick + ";" + dnLoc
	}
	return s
}

// smallRcvBuf is a dialer whose sockets have a tiny receive buffer, so a client that
// stops reading pushes back on the directory quickly.
var smallRcvBuf = &net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}}

// TestForeignDepartures: against a shared (external) directory, departure notices for
// nicks this test never used are set aside, and nothing else is; against an in-process
// directory nothing is.
func TestForeignDepartures(t *testing.T) {
	const dn, mine, other = "J5dirOOOOOOOOOOO", "J5mineOOOOOOOOOO", "J5otherOOOOOOOOO"
	ext := &target{external: true}
	ext.own(mine)
	pl := func(line string) wire.Envelope { return wire.Envelope{Type: wire.TypePeerlist, Line: line} }
	for _, c := range []struct {
		env  wire.Envelope
		want bool
	}{
		{pl(other + ";NOT-SERVING-ONION;D," + dn + ";x.onion:5222"), true},
		{pl(other + ";a.onion:5222;D"), true},
		{pl(mine + ";NOT-SERVING-ONION;D," + dn + ";x.onion:5222"), false},      // ours: expected
		{pl(other + ";a.onion:5222;D," + mine + ";NOT-SERVING-ONION;D"), false}, // mixed
		{pl(other + ";a.onion:5222"), false},                                    // a listing, not a departure
		{pl(dn + ";x.onion:5222"), false},                                       // the directory alone
		{pl(""), false},
		{wire.Envelope{Type: wire.TypePubmsg, Line: other + "!PUBLIC!x;D"}, false},
	} {
		if got := ext.foreign(c.env, dn); got != c.want {
			t.Errorf("foreign(%d %q) = %v, want %v", c.env.Type, c.env.Line, got, c.want)
		}
	}
	if (&target{}).foreign(pl(other+";a.onion:5222;D"), dn) {
		t.Error("an in-process directory's departure notice was set aside")
	}
}
