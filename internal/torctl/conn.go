package torctl

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Conn is an authenticated-or-not control connection. Commands are serialised: one
// command and its reply at a time.
type Conn struct {
	mu      sync.Mutex
	c       net.Conn
	r       *bufio.Reader
	timeout time.Duration // per command
	onEvent func(Event)   // set by SetEvents; nil: an event is a protocol error
}

// Event is an asynchronous event (a 650 reply): its type and the rest of its first
// line, e.g. Type "HS_DESC", Text "UPLOADED abc… NO_AUTH $F… …".
type Event struct {
	Type string
	Text string
}

// SetEvents subscribes to events (SETEVENTS) and has handle called, in the goroutine
// reading the connection, for each one that arrives while a command waits for its
// reply or while Wait runs. handle must not block or send commands.
func (c *Conn) SetEvents(handle func(Event), events ...string) error {
	c.mu.Lock()
	c.onEvent = handle
	c.mu.Unlock()
	rep, err := c.Command("SETEVENTS " + strings.Join(events, " "))
	if err != nil {
		return err
	}
	return rep.Err()
}

// event hands an event reply to the handler; false if there is none.
func (c *Conn) event(rep Reply) bool {
	if c.onEvent == nil {
		return false
	}
	typ, text, _ := strings.Cut(rep.Lines[0].Text, " ")
	c.onEvent(Event{Type: typ, Text: text})
	return true
}

// Dial connects to a control port: network "tcp" with host:port, or "unix" with a
// socket path.
func Dial(ctx context.Context, network, addr string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// NewConn wraps an established connection.
func NewConn(c net.Conn) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 4096), timeout: 30 * time.Second}
}

// Close closes the connection. Onions added without the Detach flag go with it.
func (c *Conn) Close() error { return c.c.Close() }

// Command sends one command line (without CRLF) and reads its reply. A reply with a
// non-2xx status is returned with a nil error; see Reply.Err.
func (c *Conn) Command(line string) (Reply, error) {
	if strings.ContainsAny(line, "\r\n") {
		return Reply{}, errors.New("torctl: a command must be one line")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	defer c.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return Reply{}, err
	}
	for {
		rep, err := ReadReply(c.r)
		if err != nil {
			return Reply{}, err
		}
		if rep.Code != 650 {
			return rep, nil
		}
		if !c.event(rep) {
			return Reply{}, protoErr("unexpected asynchronous event %q", rep.Lines[0].Text)
		}
	}
}

// Wait blocks until the connection closes (tor exits or drops it) or ctx ends, handing
// events to the SetEvents handler meanwhile. Use it only when no command is in flight:
// the directory sends nothing after publishing.
func (c *Conn) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetReadDeadline(time.Now()) })
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		rep, err := ReadReply(c.r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if rep.Code != 650 {
			return protoErr("unsolicited reply %d", rep.Code)
		}
		c.event(rep)
	}
}

// ProtocolInfo is tor's answer to PROTOCOLINFO.
type ProtocolInfo struct {
	Methods    []string // NULL, HASHEDPASSWORD, COOKIE, SAFECOOKIE
	CookieFile string
	Version    string // tor's version, e.g. "0.4.9.11"
}

// ProtocolInfo asks which authentication methods tor accepts.
func (c *Conn) ProtocolInfo() (ProtocolInfo, error) {
	rep, err := c.Command("PROTOCOLINFO 1")
	if err != nil {
		return ProtocolInfo{}, err
	}
	if err := rep.Err(); err != nil {
		return ProtocolInfo{}, err
	}
	var pi ProtocolInfo
	for _, l := range rep.Lines {
		word, rest, _ := strings.Cut(l.Text, " ")
		switch word {
		case "AUTH":
			kv, err := KeyValues(rest)
			if err != nil {
				return ProtocolInfo{}, err
			}
			if m := kv["METHODS"]; m != "" {
				pi.Methods = strings.Split(m, ",")
			}
			pi.CookieFile = kv["COOKIEFILE"]
		case "VERSION":
			kv, err := KeyValues(rest)
			if err != nil {
				return ProtocolInfo{}, err
			}
			pi.Version = kv["Tor"]
		}
	}
	if len(pi.Methods) == 0 {
		return ProtocolInfo{}, protoErr("PROTOCOLINFO names no authentication method")
	}
	return pi, nil
}

// Auth is what the operator configured for authentication.
type Auth struct {
	Password   string // for HASHEDPASSWORD
	CookieFile string // overrides the path tor reports
}

// Safe-cookie HMAC keys (control-spec, AUTHCHALLENGE).
const (
	serverHashKey = "Tor safe cookie authentication server-to-controller hash"
	clientHashKey = "Tor safe cookie authentication controller-to-server hash"
)

// Authenticate runs PROTOCOLINFO and authenticates with the best method both sides
// support: SAFECOOKIE, then COOKIE, then a password, then none. It returns the
// PROTOCOLINFO answer (tor's version is in it).
func (c *Conn) Authenticate(a Auth) (ProtocolInfo, error) {
	pi, err := c.ProtocolInfo()
	if err != nil {
		return pi, err
	}
	cookiePath := pi.CookieFile
	if a.CookieFile != "" {
		cookiePath = a.CookieFile
	}
	has := func(m string) bool { return slices.Contains(pi.Methods, m) }
	switch {
	case has("SAFECOOKIE") && cookiePath != "" && a.Password == "":
		err = c.safeCookie(cookiePath)
	case has("COOKIE") && cookiePath != "" && a.Password == "":
		var cookie []byte
		if cookie, err = readCookie(cookiePath); err == nil {
			err = c.authenticate(hex.EncodeToString(cookie))
		}
	case has("HASHEDPASSWORD") && a.Password != "":
		err = c.authenticate(Quote(a.Password))
	case has("NULL"):
		err = c.authenticate("")
	case has("HASHEDPASSWORD"):
		err = errors.New("tor wants a control password: set tor_control_password")
	default:
		err = fmt.Errorf("no usable authentication method (tor offers %s)", strings.Join(pi.Methods, ","))
	}
	return pi, err
}

func (c *Conn) authenticate(arg string) error {
	line := "AUTHENTICATE"
	if arg != "" {
		line += " " + arg
	}
	rep, err := c.Command(line)
	if err != nil {
		return err
	}
	return rep.Err()
}

func readCookie(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read tor's control cookie: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("control cookie %s has %d bytes, want 32", path, len(b))
	}
	return b, nil
}

func (c *Conn) safeCookie(path string) error {
	cookie, err := readCookie(path)
	if err != nil {
		return err
	}
	clientNonce := make([]byte, 32)
	if _, err := rand.Read(clientNonce); err != nil {
		return err
	}
	rep, err := c.Command("AUTHCHALLENGE SAFECOOKIE " + hex.EncodeToString(clientNonce))
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	text := strings.TrimPrefix(rep.Lines[len(rep.Lines)-1].Text, "AUTHCHALLENGE ")
	kv, err := KeyValues(text)
	if err != nil {
		return err
	}
	serverHash, err1 := hex.DecodeString(kv["SERVERHASH"])
	serverNonce, err2 := hex.DecodeString(kv["SERVERNONCE"])
	if err1 != nil || err2 != nil || len(serverHash) != 32 || len(serverNonce) != 32 {
		return protoErr("bad AUTHCHALLENGE reply %q", text)
	}
	msg := slices.Concat(cookie, clientNonce, serverNonce)
	if !hmac.Equal(serverHash, mac(serverHashKey, msg)) {
		return errors.New("tor's safe-cookie proof does not match the cookie: wrong cookie file, or not the tor we meant to reach")
	}
	return c.authenticate(hex.EncodeToString(mac(clientHashKey, msg)))
}

func mac(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}

// GetInfo asks for one or more GETINFO keys.
func (c *Conn) GetInfo(keys ...string) (map[string]string, error) {
	rep, err := c.Command("GETINFO " + strings.Join(keys, " "))
	if err != nil {
		return nil, err
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range rep.Lines {
		k, v, ok := strings.Cut(l.Text, "=")
		if !ok {
			continue // the final "OK"
		}
		if l.Data != nil {
			v = strings.Join(l.Data, "\n")
		}
		out[k] = v
	}
	return out, nil
}

// Onion describes an ADD_ONION request.
type Onion struct {
	KeyBlob     string // "ED25519-V3:<base64>"
	VirtualPort int
	Target      string // host:port tor connects to
	Detach      bool   // keep the service after this connection closes
	PoW         bool   // enable proof-of-work defences (tor ≥ 0.4.8)
	PoWRate     int    // PoWQueueRate; 0 = tor's default
	PoWBurst    int    // PoWQueueBurst; 0 = tor's default
}

// AddOnion publishes an onion service with the given key and returns its service ID
// (the address without ".onion").
func (c *Conn) AddOnion(o Onion) (string, error) {
	if strings.ContainsAny(o.KeyBlob, " \r\n") || strings.ContainsAny(o.Target, " \r\n") {
		return "", errors.New("torctl: bad key blob or target")
	}
	var b strings.Builder
	b.WriteString("ADD_ONION ")
	b.WriteString(o.KeyBlob)
	flags := []string{"DiscardPK"}
	if o.Detach {
		flags = append(flags, "Detach")
	}
	b.WriteString(" Flags=" + strings.Join(flags, ","))
	if o.PoW {
		b.WriteString(" PoWDefensesEnabled=1")
		if o.PoWRate > 0 {
			b.WriteString(" PoWQueueRate=" + strconv.Itoa(o.PoWRate))
		}
		if o.PoWBurst > 0 {
			b.WriteString(" PoWQueueBurst=" + strconv.Itoa(o.PoWBurst))
		}
	}
	fmt.Fprintf(&b, " Port=%d,%s", o.VirtualPort, o.Target)
	rep, err := c.Command(b.String())
	if err != nil {
		return "", err
	}
	if err := rep.Err(); err != nil {
		return "", err
	}
	for _, l := range rep.Lines {
		if id, ok := strings.CutPrefix(l.Text, "ServiceID="); ok {
			return id, nil
		}
	}
	return "", protoErr("ADD_ONION reply without ServiceID")
}

// DelOnion removes an onion service added by this or (with Detach) another connection.
func (c *Conn) DelOnion(serviceID string) error {
	rep, err := c.Command("DEL_ONION " + serviceID)
	if err != nil {
		return err
	}
	return rep.Err()
}

// VersionAtLeast reports whether tor version v (e.g. "0.4.8.9" or "0.4.9.11 (git-…)")
// is at least want (e.g. "0.4.8.1").
func VersionAtLeast(v, want string) bool {
	parse := func(s string) []int {
		s, _, _ = strings.Cut(s, " ")
		s, _, _ = strings.Cut(s, "-")
		var out []int
		for _, p := range strings.Split(s, ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	a, b := parse(v), parse(want)
	if a == nil || b == nil {
		return false
	}
	return slices.Compare(a, b) >= 0
}
