package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// torHeader is the PROXY line tor writes for rendezvous circuit gid
// (HiddenServiceExportCircuitID haproxy).
func torHeader(gid uint32) string {
	return fmt.Sprintf("PROXY TCP6 fc00:dead:beef:4dad::%x:%x ::1 %d 5222\r\n", gid>>16, gid&0xffff, gid&0xffff)
}

// nick pads tag to a well-formed JoinMarket nick (J5, base58, padded with O).
func nick(tag string) string { return ("J5" + tag + "OOOOOOOOOOOOOO")[:16] }

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type circuitDir struct {
	*dirtest.Dir
	t   *testing.T
	log *syncBuffer
}

func startCircuitDir(t *testing.T, adjust func(*config.Config)) circuitDir {
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d := dirtest.Start(t, func(c *config.Config) {
		c.TorProxyProtocol = true
		c.HandshakeTimeout = 2 * time.Second
		if adjust != nil {
			adjust(c)
		}
	}, log)
	return circuitDir{d, t, buf}
}

// dial connects and writes header (if any) and then rest in one write, as tor does.
func (d circuitDir) dial(header, rest string) net.Conn {
	d.t.Helper()
	conn, err := net.DialTimeout("tcp", d.Addr, dirtest.Timeout)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, header+rest); err != nil {
		d.t.Fatal(err)
	}
	return conn
}

// join connects over circuit gid and completes an accepted handshake.
func (d circuitDir) join(gid uint32, nick string) (net.Conn, *bufio.Reader) {
	d.t.Helper()
	conn := d.dial(torHeader(gid), "")
	return conn, dirtest.Handshake(d.t, conn, nick, "NOT-SERVING-ONION", d.Network, nil)
}

// refused asserts that the directory closes conn without sending a byte.
func (d circuitDir) refused(conn net.Conn, what string) {
	d.t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(dirtest.Timeout))
	b := make([]byte, 512)
	n, err := conn.Read(b)
	var ne net.Error
	if n > 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		d.t.Fatalf("%s: read %q, %v; want the connection closed without an answer", what, b[:n], err)
	}
}

// closedAfterLines asserts that the directory closes conn, an accepted peer, soon; lines
// it was sent before the close (a departure notice) are read past.
func (d circuitDir) closedAfterLines(conn net.Conn, what string) {
	d.t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(dirtest.Timeout))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		d.t.Fatalf("%s: the connection was not closed: %v", what, err)
	}
}

// closes waits until the server has counted want closes for why.
func (d circuitDir) closes(why reason.Close, want uint64) {
	d.t.Helper()
	testkit.Eventually(d.t, fmt.Sprintf("%d closes for %q", want, why), func() bool {
		return d.Srv.Status(false).Closes[why.String()] == want
	})
}

func TestProxyHeaderRequired(t *testing.T) {
	d := startCircuitDir(t, nil)
	handshake := func(nick string) string {
		return `{"type": 793, "line": "{\"app-name\": \"joinmarket\", \"directory\": false, \"location-string\": \"NOT-SERVING-ONION\", \"proto-ver\": 5, \"features\": {}, \"nick\": \"` + nick + `\", \"network\": \"regtest\"}"}` + "\r\n"
	}
	// A client that reached the listener without tor's header.
	d.refused(d.dial("", handshake(nick("nope"))), "no header")
	// A version 2 header, an UNKNOWN family is fine, a bad address is not.
	d.refused(d.dial("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c", ""), "v2 header")
	d.refused(d.dial("PROXY TCP6 nonsense ::1 1 5222\r\n", handshake(nick("bad"))), "bad address")
	d.closes(reason.CloseProxyHeader, 3)
	// The header and the handshake arriving in one segment, as from tor.
	conn := d.dial(torHeader(7), "")
	dirtest.Handshake(t, conn, nick("ok7"), "NOT-SERVING-ONION", d.Network, nil)
	conn = d.dial("PROXY UNKNOWN\r\n", "")
	dirtest.Handshake(t, conn, nick("unknown"), "NOT-SERVING-ONION", d.Network, nil)
	if st := d.Srv.Status(false); st.Peers != 2 || st.Circuits.Connected != 1 {
		t.Fatalf("peers %d circuits %+v", st.Peers, st.Circuits)
	}
	// A header that never comes is a handshake timeout.
	slow := d.dial("", "PROXY TCP6 fc00")
	d.refused(slow, "partial header")
	d.closes(reason.CloseHandshakeTimeout, 1)
}

func TestCircuitCaps(t *testing.T) {
	d := startCircuitDir(t, func(c *config.Config) {
		c.CircuitMaxConnections = 2
		c.CircuitMaxPending = 1
	})
	d.join(1, nick("one1"))
	d.join(1, nick("one2"))
	d.refused(d.dial(torHeader(1), ""), "third connection on circuit 1")
	d.join(2, nick("two1"))
	// One connection on circuit 3 still handshaking: a second is refused until it is done.
	pending := d.dial(torHeader(3), "")
	testkit.Eventually(t, "circuit 3 opened by its first connection", func() bool {
		return d.Srv.Status(false).Circuits.Connected == 3
	})
	d.refused(d.dial(torHeader(3), ""), "second handshaking connection on circuit 3")
	dirtest.Handshake(t, pending, nick("three1"), "NOT-SERVING-ONION", d.Network, nil)
	d.join(3, nick("three2"))
	d.closes(reason.CloseCircuitCap, 2)
	if st := d.Srv.Status(false); st.Peers != 5 || st.Circuits.Connected != 3 {
		t.Fatalf("peers %d circuits %+v", st.Peers, st.Circuits)
	}
}

func TestRateLimitsPerCircuit(t *testing.T) {
	d := startCircuitDir(t, func(c *config.Config) { c.GetPeerlistPerMinute = 1 })
	ask := func(conn net.Conn) {
		if _, err := io.WriteString(conn, `{"type": 791, "line": ""}`+"\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := d.join(4, nick("fourA"))
	b, _ := d.join(4, nick("fourB"))
	c, _ := d.join(5, nick("five"))
	ask(a)
	ask(b) // same circuit: its one GETPEERLIST a minute is spent
	ask(c)
	ctr := d.Srv.Counters()
	testkit.Eventually(t, "3 GETPEERLISTs received, 1 of them dropped by the circuit's cap", func() bool {
		return ctr.DropCounts()[reason.DropGetPeerlistCap.String()] == 1 && ctr.In[stats.MsgGetPeerlist].Load() == 3
	})
}

func TestCircuitBan(t *testing.T) {
	d := startCircuitDir(t, func(c *config.Config) { c.CircuitBanAfter = 2 })
	keep, keepR := d.join(9, nick("keeper"))
	for i := range 2 {
		conn, _ := d.join(9, nick(fmt.Sprintf("abuser%d", i+1)))
		if _, err := io.WriteString(conn, "this is not json\r\n"); err != nil {
			t.Fatal(err)
		}
		d.closedAfterLines(conn, "malformed line") // abuser2 may first hear abuser1's ;D
	}
	d.closes(reason.CloseMalformed, 2)
	// The circuit is released just after the close is counted.
	testkit.Eventually(t, "circuit 9 banned after two malformed lines", func() bool {
		return d.Srv.Status(false).Circuits.Banned == 1
	})
	d.refused(d.dial(torHeader(9), ""), "new connection on the banned circuit")
	d.closes(reason.CloseBanned, 1)
	d.join(10, nick("other")) // another circuit is not affected
	// The circuit's open connection stays.
	if _, err := io.WriteString(keep, `{"type": 791, "line": ""}`+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = keep.SetReadDeadline(time.Now().Add(dirtest.Timeout))
	for {
		line, err := keepR.ReadString('\n')
		if err != nil {
			t.Fatalf("the banned circuit's open connection: %v", err)
		}
		if strings.Contains(line, `"type": 789`) || strings.Contains(line, `"type":789`) {
			break
		}
	}
	st := d.Srv.Status(false)
	if st.Circuits.Banned != 1 || st.Circuits.Bans != 1 {
		t.Fatalf("circuits %+v", st.Circuits)
	}
	// The ban is in force (Status) a moment before its log line is written.
	var log string
	var ban map[string]string
	testkit.Eventually(t, "the ban's log line", func() bool {
		log = d.log.String()
		for _, l := range strings.Split(log, "\n") {
			if rec := logfmt(t, l); rec["msg"] == "circuit banned" {
				ban = rec
			}
		}
		return ban != nil
	})
	if ban["circuit"] != "9" || ban["reason"] != "malformed_line" {
		t.Fatalf("ban log record %v", ban)
	}
	for _, n := range []string{nick("abuser1"), nick("abuser2"), nick("keeper")} {
		if strings.Contains(log, n) {
			t.Fatalf("nick %s reached the info log:\n%s", n, log)
		}
	}
	// After a tor restart the numbers name other clients: the ban is forgotten.
	d.Srv.ForgetCircuits()
	d.join(9, nick("nine"))
}

// logfmt parses one line of slog's text output into its keys and values (quoted values
// unquoted), so tests compare fields rather than substrings.
func logfmt(t *testing.T, line string) map[string]string {
	t.Helper()
	rec := map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimLeft(line, " ") {
		key, rest, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("log line without key=value: %q", line)
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("log value of %s: %v", key, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		rec[key] = val
		line = rest
	}
	return rec
}

// TestFirstByteAfterProxyHeader: behind tor, the first-byte deadline counts from tor's
// PROXY header, which tor writes itself: a client that sends nothing after it is closed
// as silent at first_byte_timeout, while one whose first bytes came with the header, or
// after it, keeps the whole handshake timeout.
func TestFirstByteAfterProxyHeader(t *testing.T) {
	d := startCircuitDir(t, func(c *config.Config) {
		c.FirstByteTimeout = 200 * time.Millisecond
		c.HandshakeTimeout = time.Minute
	})
	together := d.dial(torHeader(11), "{")
	later := d.dial(torHeader(12), "")
	if _, err := io.WriteString(later, "{"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "both heard", func() bool {
		st := d.Srv.Status(false)
		return st.Pending == 2 && st.Silent == 0
	})
	silent := d.dial(torHeader(13), "")
	d.refused(silent, "silent after the header")
	d.closes(reason.CloseSilent, 1)
	rest := `"type": 793, "line": "{\"app-name\": \"joinmarket\", \"directory\": false, \"location-string\": \"NOT-SERVING-ONION\", \"proto-ver\": 5, \"features\": {}, \"nick\": \"%s\", \"network\": \"regtest\"}"}` + "\r\n"
	for i, c := range []net.Conn{together, later} {
		if _, err := fmt.Fprintf(c, rest, nick("fb"+string("AB"[i]))); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(dirtest.Timeout))
		l, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(l, `\"accepted\":true`) {
			t.Fatalf("connection %d, which had spoken: %q, %v; want an accepted 795", i, l, err)
		}
	}
	if n := d.Srv.Status(false).Closes[reason.CloseSilent.String()]; n != 1 {
		t.Fatalf("%d silent closes, want 1", n)
	}
}
