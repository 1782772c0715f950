package torctl

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

func parse(t *testing.T, s string) (Reply, error) {
	t.Helper()
	return ReadReply(bufio.NewReader(strings.NewReader(s)))
}

func TestReadReply(t *testing.T) {
	rep, err := parse(t, "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/run/tor/control.authcookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n")
	if err != nil || rep.Code != 250 || len(rep.Lines) != 4 || rep.Lines[3].Text != "OK" {
		t.Fatalf("%+v %v", rep, err)
	}
	rep, err = parse(t, "250+config-text=\r\nSocksPort 0\r\n..dotted\r\n.\r\n250 OK\r\n")
	if err != nil || len(rep.Lines) != 2 || strings.Join(rep.Lines[0].Data, "|") != "SocksPort 0|.dotted" {
		t.Fatalf("data block: %+v %v", rep, err)
	}
	rep, err = parse(t, "552 Unrecognized key \"x\"\r\n")
	var te *Error
	if err != nil || !errors.As(rep.Err(), &te) || te.Code != 552 || te.Msg != `Unrecognized key "x"` {
		t.Fatalf("error reply: %+v %v", rep, err)
	}
}

func TestReadReplyRejects(t *testing.T) {
	for name, in := range map[string]string{
		"bare LF":        "250 OK\n",
		"short":          "25\r\n",
		"bad code":       "2x0 OK\r\n",
		"code 7xx":       "750 OK\r\n",
		"bad separator":  "250*OK\r\n",
		"code changes":   "250-a\r\n251 OK\r\n",
		"NUL":            "250 O\x00K\r\n",
		"stray CR":       "250 O\rK\r\n",
		"eof mid reply":  "250-a\r\n",
		"eof in data":    "250+a=\r\nx\r\n",
		"too long":       "250 " + strings.Repeat("x", MaxLineBytes+1) + "\r\n",
		"too many lines": strings.Repeat("250-x\r\n", MaxReplyLines+1) + "250 OK\r\n",
	} {
		if _, err := parse(t, in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKeyValues(t *testing.T) {
	kv, err := KeyValues(`METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/a \"b\"\\c" FLAG`)
	if err != nil || kv["METHODS"] != "COOKIE,SAFECOOKIE" || kv["COOKIEFILE"] != `/a "b"\c` {
		t.Fatalf("%q %v", kv, err)
	}
	if _, ok := kv["FLAG"]; !ok {
		t.Fatal("bare word lost")
	}
	if _, err := KeyValues(`A="unterminated`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
	for _, s := range []string{"", `pa"ss word\`, "x\ny"} {
		v, rest, err := Unquote(Quote(s))
		if err != nil || v != s || rest != "" {
			t.Fatalf("Quote/Unquote %q: %q %q %v", s, v, rest, err)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		v, want string
		ok      bool
	}{
		{"0.4.9.11", "0.4.8.1", true},
		{"0.4.8.1", "0.4.8.1", true},
		{"0.4.7.16", "0.4.8.1", false},
		{"0.4.8.10 (git-abc)", "0.4.8.2", true},
		{"0.4.8.1-alpha", "0.4.8.1", true},
		{"garbage", "0.4.8.1", false},
	} {
		if got := VersionAtLeast(c.v, c.want); got != c.ok {
			t.Errorf("VersionAtLeast(%q, %q) = %v", c.v, c.want, got)
		}
	}
}

// fakeTor answers control commands with handle on one accepted connection; it records
// every command line.
type fakeTor struct {
	ln       net.Listener
	commands chan string
}

func startFake(t *testing.T, handle func(cmd string, w *bufio.Writer) bool) *fakeTor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTor{ln: ln, commands: make(chan string, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimSuffix(line, "\r\n")
			f.commands <- cmd
			if !handle(cmd, w) {
				w.Flush()
				return
			}
			w.Flush()
		}
	}()
	return f
}

func dialFake(t *testing.T, f *fakeTor) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), "tcp", f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSafeCookie: the client proves the cookie and checks tor's proof; a tor that does
// not know the cookie is refused.
func TestSafeCookie(t *testing.T) {
	cookie := make([]byte, 32)
	_, _ = rand.Read(cookie)
	path := filepath.Join(t.TempDir(), "control_auth_cookie")
	if err := os.WriteFile(path, cookie, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, honest := range []bool{true, false} {
		serverNonce := make([]byte, 32)
		_, _ = rand.Read(serverNonce)
		var clientNonce []byte
		authed := make(chan bool, 1)
		f := startFake(t, func(cmd string, w *bufio.Writer) bool {
			switch {
			case cmd == "PROTOCOLINFO 1":
				w.WriteString("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE,HASHEDPASSWORD COOKIEFILE=" + Quote(path) + "\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n")
			case strings.HasPrefix(cmd, "AUTHCHALLENGE SAFECOOKIE "):
				clientNonce, _ = hex.DecodeString(strings.TrimPrefix(cmd, "AUTHCHALLENGE SAFECOOKIE "))
				key := cookie
				if !honest {
					key = make([]byte, 32)
				}
				sh := mac(serverHashKey, append(append(append([]byte{}, key...), clientNonce...), serverNonce...))
				w.WriteString("250 AUTHCHALLENGE SERVERHASH=" + hex.EncodeToString(sh) + " SERVERNONCE=" + hex.EncodeToString(serverNonce) + "\r\n")
			case strings.HasPrefix(cmd, "AUTHENTICATE "):
				want := mac(clientHashKey, append(append(append([]byte{}, cookie...), clientNonce...), serverNonce...))
				ok := strings.TrimPrefix(cmd, "AUTHENTICATE ") == hex.EncodeToString(want)
				authed <- ok
				if ok {
					w.WriteString("250 OK\r\n")
				} else {
					w.WriteString("515 Authentication failed\r\n")
				}
			default:
				w.WriteString("510 Unrecognized command\r\n")
			}
			return true
		})
		c := dialFake(t, f)
		pi, err := c.Authenticate(Auth{})
		if honest {
			if err != nil || pi.Version != "0.4.9.11" {
				t.Fatalf("honest tor: %v %+v", err, pi)
			}
			if !<-authed {
				t.Fatal("tor rejected our proof")
			}
		} else if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("dishonest tor accepted: %v", err)
		}
	}
}

func TestPasswordAndNull(t *testing.T) {
	for _, tc := range []struct {
		methods, password, want string
		fails                   bool
	}{
		{"HASHEDPASSWORD", `pa"ss`, `AUTHENTICATE "pa\"ss"`, false},
		{"NULL", "", "AUTHENTICATE", false},
		{"HASHEDPASSWORD", "", "", true},
	} {
		f := startFake(t, func(cmd string, w *bufio.Writer) bool {
			if cmd == "PROTOCOLINFO 1" {
				w.WriteString("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=" + tc.methods + "\r\n250 OK\r\n")
			} else {
				w.WriteString("250 OK\r\n")
			}
			return true
		})
		c := dialFake(t, f)
		_, err := c.Authenticate(Auth{Password: tc.password})
		if tc.fails {
			if err == nil {
				t.Fatalf("%s without password: no error", tc.methods)
			}
			continue
		}
		<-f.commands // PROTOCOLINFO
		if got := <-f.commands; err != nil || got != tc.want {
			t.Fatalf("%s: sent %q (%v), want %q", tc.methods, got, err, tc.want)
		}
	}
}

func TestAddOnionCommand(t *testing.T) {
	f := startFake(t, func(cmd string, w *bufio.Writer) bool {
		switch {
		case strings.HasPrefix(cmd, "ADD_ONION "):
			w.WriteString("250-ServiceID=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd\r\n250 OK\r\n")
		case strings.HasPrefix(cmd, "DEL_ONION "):
			w.WriteString("552 Unknown Onion Service id\r\n")
		}
		return true
	})
	c := dialFake(t, f)
	id, err := c.AddOnion(Onion{KeyBlob: "ED25519-V3:QUJD", VirtualPort: 5222, Target: "127.0.0.1:40000", PoW: true, PoWRate: 250, PoWBurst: 2500})
	if err != nil || !strings.HasPrefix(id, "abcdefgh") {
		t.Fatalf("%q %v", id, err)
	}
	want := "ADD_ONION ED25519-V3:QUJD Flags=DiscardPK PoWDefensesEnabled=1 PoWQueueRate=250 PoWQueueBurst=2500 Port=5222,127.0.0.1:40000"
	if got := <-f.commands; got != want {
		t.Fatalf("sent %q\nwant %q", got, want)
	}
	var te *Error
	if err := c.DelOnion("nope"); !errors.As(err, &te) || te.Code != 552 {
		t.Fatalf("DEL_ONION error: %v", err)
	}
	if _, err := c.AddOnion(Onion{KeyBlob: "ED25519-V3:x y", VirtualPort: 1, Target: "a:1"}); err == nil {
		t.Fatal("blob with a space accepted")
	}
	if _, err := c.Command("GETINFO a\r\nSIGNAL HALT"); err == nil {
		t.Fatal("command injection accepted")
	}
}

// TestWaitSeesClose: Wait returns when tor closes the connection, and at once when ctx
// ends.
func TestWaitSeesClose(t *testing.T) {
	f := startFake(t, func(cmd string, w *bufio.Writer) bool { return false })
	c := dialFake(t, f)
	go c.c.Write([]byte("GETINFO version\r\n"))
	<-f.commands
	done := make(chan error, 1)
	go func() { done <- c.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait returned nil on close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not see the close")
	}

	// A tor that stays silent: Wait blocks reading until ctx ends.
	f2 := startFake(t, func(cmd string, w *bufio.Writer) bool { return true })
	c2 := dialFake(t, f2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done2 := make(chan error, 1)
	go func() { done2 <- c2.Wait(ctx) }()
	// Cancel once Wait is under way: it holds the connection's lock for as long as it
	// reads.
	testkit.Eventually(t, "Wait taking the connection", func() bool {
		if c2.mu.TryLock() {
			c2.mu.Unlock()
			return false
		}
		return true
	})
	select {
	case err := <-done2:
		t.Fatalf("Wait returned %v before ctx ended, with the connection open", err)
	default:
	}
	cancel()
	select {
	case err := <-done2:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel: %v", err)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("Wait did not return after ctx ended")
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n",
		"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=SAFECOOKIE COOKIEFILE=\"/x\"\r\n250 OK\r\n",
		"250+a=\r\nb\r\n.\r\n250 OK\r\n",
		"650 HS_DESC UPLOADED x\r\n",
		"515 Authentication failed\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ReadReply(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			return
		}
		if len(rep.Lines) == 0 || rep.Code < 100 || rep.Code > 699 || len(rep.Lines) > MaxReplyLines {
			t.Fatalf("accepted a malformed reply: %+v", rep)
		}
		for _, l := range rep.Lines {
			if l.Code != rep.Code || strings.ContainsAny(l.Text, "\r\x00") {
				t.Fatalf("bad line %+v", l)
			}
		}
		_, _ = KeyValues(rep.Lines[len(rep.Lines)-1].Text)
	})
}

// TestEvents: after SetEvents, an event that arrives before a command's reply goes to the
// handler and the command still gets its reply; events during Wait go to the handler;
// without SetEvents an event is a protocol error.
func TestEvents(t *testing.T) {
	f := startFake(t, func(cmd string, w *bufio.Writer) bool {
		switch {
		case strings.HasPrefix(cmd, "SETEVENTS"):
			w.WriteString("250 OK\r\n")
		case cmd == "GETINFO version":
			w.WriteString("650 HS_DESC UPLOAD abc UNKNOWN $F\r\n650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50\r\n250-version=0.4.9.1\r\n250 OK\r\n")
		case cmd == "SIGNAL DUMP":
			w.WriteString("250 OK\r\n650 HS_DESC UPLOADED abc UNKNOWN $F\r\n")
		}
		return true
	})
	c := dialFake(t, f)
	events := make(chan Event, 10)
	if err := c.SetEvents(func(e Event) { events <- e }, "HS_DESC", "STATUS_CLIENT"); err != nil {
		t.Fatal(err)
	}
	if got := <-f.commands; got != "SETEVENTS HS_DESC STATUS_CLIENT" {
		t.Fatalf("sent %q", got)
	}
	info, err := c.GetInfo("version")
	if err != nil || info["version"] != "0.4.9.1" {
		t.Fatalf("GETINFO with events before its reply: %v %v", info, err)
	}
	for _, want := range []Event{{"HS_DESC", "UPLOAD abc UNKNOWN $F"}, {"STATUS_CLIENT", "NOTICE BOOTSTRAP PROGRESS=50"}} {
		if got := <-events; got != want {
			t.Fatalf("event %+v, want %+v", got, want)
		}
	}
	if _, err := c.Command("SIGNAL DUMP"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Wait(ctx) }()
	select {
	case got := <-events:
		if got != (Event{"HS_DESC", "UPLOADED abc UNKNOWN $F"}) {
			t.Fatalf("event during Wait: %+v", got)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("no event during Wait")
	}
	cancel()
	<-done

	f2 := startFake(t, func(cmd string, w *bufio.Writer) bool {
		w.WriteString("650 HS_DESC UPLOADED abc\r\n250 OK\r\n")
		return true
	})
	if _, err := dialFake(t, f2).Command("GETINFO version"); err == nil {
		t.Fatal("an event without SetEvents was accepted")
	}
}
