// Package handshake parses and validates the client handshake (type 793) and builds the
// directory's answer (type 795), docs/protocol.md §3. It is pure: no I/O, no clock.
package handshake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// AppName is the application name every JoinMarket peer announces.
const AppName = "joinmarket"

// Networks a directory can serve.
var Networks = []string{"mainnet", "testnet", "signet", "regtest"}

// Field caps, as joinmarket-rs enforces them (docs/protocol.md §3.6, §8).
const (
	maxStringField  = 64
	maxLocation     = 72
	maxFeatures     = 32
	maxFeatureKey   = 64
	maxFeatureValue = 512
)

// Rejection is a typed reason for answering accepted:false.
type Rejection struct {
	Code   reason.Reject
	Detail string // human-readable, safe to send to the client
}

func (r *Rejection) Error() string { return r.Code.String() + ": " + r.Detail }

func reject(c reason.Reject, format string, args ...any) *Rejection {
	return &Rejection{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Features is what a peer advertised in its handshake.
type Features struct {
	Ping             bool     // answers 798 with 799
	PeerlistFeatures bool     // understands ";F:" peerlist suffixes
	NickAuth         bool     // offers nick authentication (JMP-0005, docs/protocol.md §5)
	True             []string // names of every feature whose value is JSON true, sorted
}

// Hello is an accepted client handshake.
type Hello struct {
	Nick     string
	Location jm.Location
	Features Features
}

// Policy is what the directory requires of a client handshake.
type Policy struct {
	Network    string // the one network served
	AllowLocal bool   // accept 127.0.0.1:port / localhost:port locations (regtest)
	// Reserved is the directory's own nick, which no peer may take: a peer under it would
	// be listed in peerlists beside the directory's own entry, at the peer's location.
	Reserved string
}

// Parse validates the "line" of a client's 793 against the policy.
func Parse(line string, p Policy) (Hello, *Rejection) {
	var h Hello
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil || m == nil {
		return h, reject(reason.RejectMalformed, "handshake is not a JSON object")
	}
	appName, ok := str(m, "app-name", maxStringField)
	if !ok {
		return h, reject(reason.RejectMalformed, "app-name must be a string")
	}
	if !strings.EqualFold(appName, AppName) {
		return h, reject(reason.RejectAppName, "app-name must be %q", AppName)
	}
	ver, ok := integer(m["proto-ver"])
	if !ok {
		return h, reject(reason.RejectMalformed, "proto-ver must be an integer")
	}
	if ver != jm.ProtocolVersion {
		return h, reject(reason.RejectVersion, "protocol version %d not supported (this directory speaks %d..%d)", ver, jm.ProtocolVersion, jm.ProtocolVersion)
	}
	if raw, present := m["directory"]; present {
		switch string(bytes.TrimSpace(raw)) {
		case "false", "null":
		case "true":
			return h, reject(reason.RejectDirectory, "directories cannot connect as peers")
		default:
			return h, reject(reason.RejectMalformed, "directory must be a boolean")
		}
	}
	network, ok := str(m, "network", maxStringField)
	if !ok {
		return h, reject(reason.RejectMalformed, "network must be a string")
	}
	if !strings.EqualFold(network, p.Network) {
		return h, reject(reason.RejectNetwork, "this directory serves %s, not %s", p.Network, clip(network))
	}
	nick, ok := str(m, "nick", maxStringField)
	if !ok {
		return h, reject(reason.RejectMalformed, "nick must be a string")
	}
	if !jm.ValidNick(nick) {
		return h, reject(reason.RejectNick, "nick is not a JoinMarket nick (J5 + 14 base58 characters)")
	}
	if p.Reserved != "" && nick == p.Reserved {
		return h, reject(reason.RejectReservedNick, "nick is the directory's own")
	}
	locStr, ok := str(m, "location-string", maxLocation)
	if !ok {
		return h, reject(reason.RejectLocation, "location-string must be a string of at most %d bytes", maxLocation)
	}
	loc, err := jm.ParseLocation(locStr, p.AllowLocal)
	if err != nil {
		return h, reject(reason.RejectLocation, "location-string: %v", err)
	}
	feat, rej := parseFeatures(m["features"])
	if rej != nil {
		return h, rej
	}
	return Hello{Nick: nick, Location: loc, Features: feat}, nil
}

func parseFeatures(raw json.RawMessage) (Features, *Rejection) {
	var f Features
	if raw == nil || string(bytes.TrimSpace(raw)) == "null" {
		return f, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return f, reject(reason.RejectFeatures, "features must be an object")
	}
	if len(m) > maxFeatures {
		return f, reject(reason.RejectFeatures, "at most %d features", maxFeatures)
	}
	for k, v := range m {
		if !validFeatureKey(k) {
			return f, reject(reason.RejectFeatures, "feature names are 1..%d characters of [a-z0-9_]", maxFeatureKey)
		}
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && (v[0] == '{' || v[0] == '['):
			return f, reject(reason.RejectFeatures, "feature values cannot be objects or arrays")
		case len(v) > 0 && v[0] == '"':
			var s string
			if json.Unmarshal(v, &s) != nil || len(s) > maxFeatureValue {
				return f, reject(reason.RejectFeatures, "feature string values are at most %d bytes", maxFeatureValue)
			}
		case string(v) == "true":
			f.True = append(f.True, k)
			switch k {
			case "ping":
				f.Ping = true
			case "peerlist_features":
				f.PeerlistFeatures = true
			case "nick_auth":
				f.NickAuth = true
			}
		}
	}
	sort.Strings(f.True)
	return f, nil
}

func validFeatureKey(k string) bool {
	if len(k) == 0 || len(k) > maxFeatureKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// str reads a JSON string field of at most max bytes.
func str(m map[string]json.RawMessage, key string, max int) (string, bool) {
	raw, ok := m[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	if len(s) > max {
		return "", false
	}
	return s, true
}

// integer reads a JSON integer (no fraction, no exponent), as the reference requires.
func integer(raw json.RawMessage) (int, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' {
		return 0, false
	}
	return n, true
}

func clip(s string) string {
	if len(s) > 16 {
		return strconv.Quote(s[:16] + "…")
	}
	return strconv.Quote(s)
}

// Directory is the directory's side of the handshake.
type Directory struct {
	Nick     string // the directory's own nick
	Network  string
	Location string // own "onion:port" (or host:port on regtest); "" when not known
	MOTD     string // full motd text sent on acceptance
}

// dnFeatures is the feature set the directory advertises, keys sorted as
// joinmarket-ng's directory sends them.
type dnFeatures struct {
	NickAuth         bool `json:"nick_auth,omitempty"`
	PeerlistFeatures bool `json:"peerlist_features"`
	Ping             bool `json:"ping"`
}

// dnHandshake is the 795 payload; field order is the reference's, with joinmarket-rs's
// extra location-string after "directory".
type dnHandshake struct {
	AppName     string     `json:"app-name"`
	Directory   bool       `json:"directory"`
	Location    string     `json:"location-string,omitempty"`
	ProtoVerMin int        `json:"proto-ver-min"`
	ProtoVerMax int        `json:"proto-ver-max"`
	Features    dnFeatures `json:"features"`
	Accepted    bool       `json:"accepted"`
	Nick        string     `json:"nick"`
	Network     string     `json:"network"`
	MOTD        string     `json:"motd"`
}

func (d Directory) encode(accepted bool, motd string) string {
	return d.encodeWith(accepted, motd, false)
}

func (d Directory) encodeWith(accepted bool, motd string, nickAuth bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(dnHandshake{
		AppName: AppName, Directory: true, Location: d.Location,
		ProtoVerMin: jm.ProtocolVersion, ProtoVerMax: jm.ProtocolVersion,
		Features: dnFeatures{NickAuth: nickAuth, PeerlistFeatures: true, Ping: true},
		Accepted: accepted, Nick: d.Nick, Network: d.Network, MOTD: motd,
	})
	if err != nil { // only strings and bools: cannot fail
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Accept returns the "line" of the 795 accepting a client.
func (d Directory) Accept() string { return d.encode(true, d.MOTD) }

// AcceptNickAuth returns the "line" of the 795 accepting a client that offered nick
// authentication, advertising it too ("nick_auth": true among the features): the
// challenge follows (docs/protocol.md §5.2).
func (d Directory) AcceptNickAuth() string { return d.encodeWith(true, d.MOTD, true) }

// Reject returns the "line" of the 795 refusing a client, with the reason as motd.
func (d Directory) Reject(r *Rejection) string {
	return d.encode(false, "Rejected: "+r.Error())
}

// ClientHello is what a client announces in its 793. It is the sending side of Parse,
// for load generators and tests that must speak exactly like a real client.
type ClientHello struct {
	Nick, Location, Network string
	ProtoVer                int // 0 means jm.ProtocolVersion
	Directory               bool
	Features                map[string]bool
}

// Line renders the 793 "line" as a reference client does (docs/protocol.md §3.2, §11.1): keys
// in the order app-name, directory, location-string, proto-ver, features, nick, network,
// with Python json.dumps spacing and features sorted by name.
func (h ClientHello) Line() string {
	ver := h.ProtoVer
	if ver == 0 {
		ver = jm.ProtocolVersion
	}
	b := make([]byte, 0, 224)
	b = append(b, `{"app-name": "joinmarket", "directory": `...)
	b = strconv.AppendBool(b, h.Directory)
	b = append(b, `, "location-string": `...)
	b = wire.AppendQuoted(b, h.Location)
	b = append(b, `, "proto-ver": `...)
	b = strconv.AppendInt(b, int64(ver), 10)
	b = append(b, `, "features": {`...)
	names := make([]string, 0, len(h.Features))
	for k := range h.Features {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = wire.AppendQuoted(b, k)
		b = append(b, ": "...)
		b = strconv.AppendBool(b, h.Features[k])
	}
	b = append(b, `}, "nick": `...)
	b = wire.AppendQuoted(b, h.Nick)
	b = append(b, `, "network": `...)
	b = wire.AppendQuoted(b, h.Network)
	return string(append(b, '}'))
}
