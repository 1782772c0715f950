// Package probe checks a JoinMarket directory the way a client meets it: it connects
// (over TCP, or through a SOCKS proxy for an onion), performs a full handshake as a
// throw-away taker, asks for the peerlist, and reports what the directory answered. It
// speaks to any directory — this server, the reference start-dn.py, joinmarket-ng's —
// and sends only what a reference taker sends.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Options configure a probe.
type Options struct {
	// Network is the network the probe's handshake names (a directory refuses any
	// other; its refusal names its own).
	Network string
	// Dial opens the connection; nil = plain TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Quiet is how long the peerlist may pause before it is taken as complete (a
	// directory sends it as one or more 789 lines, with no end marker); 0 = 1 s.
	Quiet time.Duration
	// Nick is the taker nick the probe hands over; "" = a fresh random one.
	Nick string
}

// NewNick returns a fresh taker nick of a throw-away key: the probe never signs, so a
// random 33-byte string in the shape of a compressed key does.
func NewNick() string {
	var k [33]byte
	_, _ = rand.Read(k[1:])
	k[0] = 2
	return jm.NickFromPubKey(k[:])
}

// SOCKSDialer returns a Dial that connects through the SOCKS5 proxy at addr (network
// "tcp" or "unix"), with the host name resolved by the proxy (tor resolves .onion).
// A non-empty isolation is sent as the SOCKS username: tor gives each username its own
// circuits (IsolateSOCKSAuth, on by default).
func SOCKSDialer(network, addr, isolation string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	var auth *proxy.Auth
	if isolation != "" {
		auth = &proxy.Auth{User: isolation, Password: "x"}
	}
	d, err := proxy.SOCKS5(network, addr, auth, proxy.Direct)
	if err != nil {
		return nil, err
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, errors.New("probe: the SOCKS5 dialer cannot take a context")
	}
	return cd.DialContext, nil
}

// Result is what a directory answered.
type Result struct {
	Addr        string   `json:"addr"`
	Accepted    bool     `json:"accepted"`
	Rejection   string   `json:"rejection,omitempty"` // the motd of an accepted:false answer
	Nick        string   `json:"nick"`                // the directory's nick
	Network     string   `json:"network"`             // the directory's network
	Location    string   `json:"location,omitempty"`  // the location-string it advertises
	MOTD        string   `json:"motd"`
	Version     string   `json:"version,omitempty"` // the motd's version line, when it has one
	Features    []string `json:"features"`          // the features it advertises as true, sorted
	HandshakeMs float64  `json:"handshake_ms"`      // from connected to the 795
	ConnectMs   float64  `json:"connect_ms"`
	// Makers is the number of distinct makers (serving peers other than the directory)
	// in the peerlist; -1 when the peerlist was not asked for (rejected) or never came.
	Makers int `json:"makers"`
	// PeerlistLines is the number of 789 lines of the answer to GETPEERLIST.
	PeerlistLines int `json:"peerlist_lines"`
}

// maxLine bounds a line read from the directory (joinmarket-ng relays up to 65 536).
const maxLine = 1 << 17

// Probe checks the directory at addr ("host:port"). It returns an error when the
// directory could not be reached or did not answer the handshake; a refusal is a Result
// with Accepted false. ctx bounds the whole probe.
func Probe(ctx context.Context, addr string, o Options) (Result, error) {
	res := Result{Addr: addr, Makers: -1}
	dial := o.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	quiet := o.Quiet
	if quiet <= 0 {
		quiet = time.Second
	}
	start := time.Now()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return res, fmt.Errorf("cannot reach %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	connected := time.Now()
	res.ConnectMs = ms(connected.Sub(start))

	// A reference taker's 793: its keys in the reference's order, features {}.
	nick := o.Nick
	if nick == "" {
		nick = NewNick()
	}
	hello := handshake.ClientHello{Nick: nick, Location: wire.NotServing, Network: o.Network}.Line()
	if _, err := conn.Write(wire.AppendEnvelope(nil, wire.TypeHandshake, hello)); err != nil {
		return res, fmt.Errorf("sending the handshake: %w", err)
	}
	lr := wire.NewLineReader(conn, maxLine)
	var dn dnHello
	for {
		env, err := next(lr)
		if err != nil {
			return res, fmt.Errorf("waiting for the directory's handshake: %w", err)
		}
		if env.Type != wire.TypeDNHandshake {
			continue
		}
		if err := json.Unmarshal([]byte(env.Line), &dn); err != nil {
			return res, fmt.Errorf("the directory's handshake is not JSON: %w", err)
		}
		break
	}
	res.HandshakeMs = ms(time.Since(connected))
	res.Accepted, res.Nick, res.Network, res.Location, res.MOTD = dn.Accepted, dn.Nick, dn.Network, dn.Location, dn.MOTD
	for name, v := range dn.Features {
		if b, ok := v.(bool); ok && b {
			res.Features = append(res.Features, name)
		}
	}
	sort.Strings(res.Features)
	for _, l := range strings.Split(dn.MOTD, "\n") {
		if strings.Contains(strings.ToLower(l), "version") {
			res.Version = strings.TrimSpace(l)
		}
	}
	if !dn.Accepted {
		res.Rejection = dn.MOTD
		return res, nil
	}

	if _, err := conn.Write(wire.AppendEnvelope(nil, wire.TypeGetPeerlist, "")); err != nil {
		return res, fmt.Errorf("asking for the peerlist: %w", err)
	}
	makers := map[string]bool{}
	for {
		if res.PeerlistLines > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(quiet))
		}
		env, err := next(lr)
		if err != nil {
			var ne net.Error
			if res.PeerlistLines > 0 && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				break // the pause after the last line
			}
			return res, fmt.Errorf("waiting for the peerlist: %w", err)
		}
		if env.Type != wire.TypePeerlist {
			continue
		}
		// Another peer's departure ("nick;location;D", with the directory's entry) can
		// arrive among the answer's lines: it is not part of the answer.
		entries := strings.Split(env.Line, ",")
		departure := false
		for _, e := range entries {
			departure = departure || strings.HasSuffix(e, ";D")
		}
		if departure {
			continue
		}
		res.PeerlistLines++
		for _, e := range entries {
			f := strings.Split(e, ";")
			if len(f) < 2 || f[0] == dn.Nick || f[1] == wire.NotServing {
				continue
			}
			makers[f[0]] = true
		}
	}
	res.Makers = len(makers)
	return res, nil
}

// dnHello is the part of a directory's 795 the probe reports.
type dnHello struct {
	Accepted bool           `json:"accepted"`
	Nick     string         `json:"nick"`
	Network  string         `json:"network"`
	Location string         `json:"location-string"`
	MOTD     string         `json:"motd"`
	Features map[string]any `json:"features"`
}

// next reads and decodes the next line.
func next(lr *wire.LineReader) (wire.Envelope, error) {
	line, err := lr.ReadLine()
	if err != nil {
		return wire.Envelope{}, err
	}
	return wire.Decode(line)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
