package handshake_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/fixtures"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/reason"
)

const (
	makerOnion = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	dirOnion   = "uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion"
	nick1      = "J59xfsUewpdmrbuM"
)

var (
	mainnet = handshake.Policy{Network: "mainnet"}
	regtest = handshake.Policy{Network: "regtest", AllowLocal: true}
)

// docs/protocol.md §11.1–§11.3, the decoded "line" of each client 793.
const (
	sec11Maker    = `{"app-name": "joinmarket", "directory": false, "location-string": "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222", "proto-ver": 5, "features": {}, "nick": "J59EiPRQrQkXMk5d", "network": "mainnet"}`
	sec11Taker    = `{"app-name": "joinmarket", "directory": false, "location-string": "NOT-SERVING-ONION", "proto-ver": 5, "features": {}, "nick": "J5ADox6oD453KSSf", "network": "mainnet"}`
	sec11NG       = `{"app-name": "joinmarket", "directory": false, "location-string": "NOT-SERVING-ONION", "proto-ver": 5, "features": {"nick_auth": true, "peerlist_features": true, "ping": true}, "nick": "J554XN9CktYtikWE", "network": "mainnet"}`
	sec11WrongNet = `{"app-name": "joinmarket", "directory": false, "location-string": "NOT-SERVING-ONION", "proto-ver": 5, "features": {}, "nick": "J5ADox6oD453KSSf", "network": "signet"}`
)

// hs builds a client handshake line from a valid mainnet maker handshake. Each key of
// set replaces (or adds) that field with the given raw JSON; a nil value deletes it.
func hs(set map[string]any) string {
	fields := []struct {
		k string
		v any
	}{
		{"app-name", `"joinmarket"`},
		{"directory", `false`},
		{"location-string", `"` + makerOnion + `:5222"`},
		{"proto-ver", `5`},
		{"features", `{}`},
		{"nick", `"` + nick1 + `"`},
		{"network", `"mainnet"`},
	}
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	emit := func(k string, v any) {
		if v == nil {
			return
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteString(": ")
		b.WriteString(v.(string))
	}
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f.k] = true
		if v, ok := set[f.k]; ok {
			emit(f.k, v)
			continue
		}
		emit(f.k, f.v)
	}
	extra := make([]string, 0, len(set))
	for k := range set {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		emit(k, set[k])
	}
	b.WriteByte('}')
	return b.String()
}

func jstr(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// features builds a features object of n true entries named f00, f01, ….
func features(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"f%02d": true`, i)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func TestParseFixtures(t *testing.T) {
	recs, err := fixtures.Load("handshake")
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		hello    string
		accepted *bool
	}
	conns := map[int]*pair{}
	for _, r := range recs {
		switch {
		case r.Dir == "c2s" && r.Type == 793:
			if conns[r.Conn] == nil {
				conns[r.Conn] = &pair{}
			}
			conns[r.Conn].hello = r.Line
		case r.Dir == "s2c" && r.Type == 795:
			var ans struct{ Accepted bool }
			if err := json.Unmarshal([]byte(r.Line), &ans); err != nil {
				t.Fatalf("conn %d: bad 795 %q: %v", r.Conn, r.Line, err)
			}
			if conns[r.Conn] == nil {
				conns[r.Conn] = &pair{}
			}
			conns[r.Conn].accepted = &ans.Accepted
		}
	}
	if len(conns) < 4 {
		t.Fatalf("fixture has %d handshaking connections, want at least 4", len(conns))
	}
	accepted := 0
	for conn, p := range conns {
		if p.hello == "" || p.accepted == nil {
			t.Fatalf("conn %d: missing 793 or 795 in fixture", conn)
		}
		var in struct {
			Nick     string `json:"nick"`
			Location string `json:"location-string"`
		}
		if err := json.Unmarshal([]byte(p.hello), &in); err != nil {
			t.Fatal(err)
		}
		h, rej := handshake.Parse(p.hello, regtest)
		if *p.accepted {
			accepted++
			if rej != nil {
				t.Errorf("conn %d: reference directory accepted %s, Parse rejected: %v", conn, p.hello, rej)
				continue
			}
			if h.Nick != in.Nick {
				t.Errorf("conn %d: Nick = %q, want %q", conn, h.Nick, in.Nick)
			}
			if got := h.Location.String(); got != in.Location {
				t.Errorf("conn %d: Location = %q, want %q", conn, got, in.Location)
			}
			if h.Features.Ping || h.Features.PeerlistFeatures || len(h.Features.True) != 0 {
				t.Errorf("conn %d: reference client sent {} features, got %+v", conn, h.Features)
			}
		} else if rej == nil || rej.Code != reason.RejectNetwork {
			// The only rejection in the transcript is the wrong-network client.
			t.Errorf("conn %d: reference directory rejected %s; Parse gave %v, want a network rejection", conn, p.hello, rej)
		}
	}
	if accepted != 3 {
		t.Errorf("fixture has %d accepted handshakes, want 3", accepted)
	}
}

func TestParseProtocolExamples(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		nick     string
		loc      jm.Location
		maker    bool
		features handshake.Features
	}{
		{"11.1 maker", sec11Maker, "J59EiPRQrQkXMk5d", jm.Location{Host: makerOnion, Port: 5222}, true, handshake.Features{}},
		{"11.2 REF taker", sec11Taker, "J5ADox6oD453KSSf", jm.Location{}, false, handshake.Features{}},
		{"11.2 NG taker", sec11NG, "J554XN9CktYtikWE", jm.Location{}, false, handshake.Features{
			Ping: true, PeerlistFeatures: true, True: []string{"nick_auth", "peerlist_features", "ping"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rej := handshake.Parse(tc.line, mainnet)
			if rej != nil {
				t.Fatalf("rejected: %v", rej)
			}
			if h.Nick != tc.nick {
				t.Errorf("Nick = %q, want %q", h.Nick, tc.nick)
			}
			if h.Location != tc.loc {
				t.Errorf("Location = %+v, want %+v", h.Location, tc.loc)
			}
			if h.Location.Serving() != tc.maker {
				t.Errorf("Serving = %v, want %v", h.Location.Serving(), tc.maker)
			}
			if h.Features.Ping != tc.features.Ping || h.Features.PeerlistFeatures != tc.features.PeerlistFeatures ||
				!slices.Equal(h.Features.True, tc.features.True) {
				t.Errorf("Features = %+v, want %+v", h.Features, tc.features)
			}
		})
	}
	t.Run("11.3 wrong network", func(t *testing.T) {
		_, rej := handshake.Parse(sec11WrongNet, mainnet)
		if rej == nil || rej.Code != reason.RejectNetwork {
			t.Fatalf("Parse = %v, want a network rejection", rej)
		}
		// The same line is fine for a signet directory.
		if _, rej := handshake.Parse(sec11WrongNet, handshake.Policy{Network: "signet"}); rej != nil {
			t.Fatalf("signet directory rejected it: %v", rej)
		}
	})
}

func TestParseAccepts(t *testing.T) {
	long := strings.Repeat("é", 256) // 512 bytes of UTF-8, 1536 bytes of \u escapes
	tests := []struct {
		name   string
		line   string
		policy handshake.Policy
		check  func(t *testing.T, h handshake.Hello)
	}{
		{"app-name upper case", hs(map[string]any{"app-name": `"JoinMarket"`}), mainnet, nil},
		{"app-name all caps", hs(map[string]any{"app-name": `"JOINMARKET"`}), mainnet, nil},
		{"network case-insensitive", hs(map[string]any{"network": `"MainNet"`}), mainnet, nil},
		{"policy network case-insensitive", hs(nil), handshake.Policy{Network: "MAINNET"}, nil},
		{"another nick than the reserved one", hs(nil), handshake.Policy{Network: "mainnet", Reserved: "J58w4tpYN3zRBwC9"}, nil},
		{"directory null", hs(map[string]any{"directory": `null`}), mainnet, nil},
		{"directory absent", hs(map[string]any{"directory": nil}), mainnet, nil},
		{"features absent", hs(map[string]any{"features": nil}), mainnet, nil},
		{"features null", hs(map[string]any{"features": `null`}), mainnet, nil},
		{"whitespace everywhere", " { \"app-name\" : \"joinmarket\" , \"proto-ver\" :\t5 , \"directory\" : false ,\n" +
			"\"location-string\":\"NOT-SERVING-ONION\",\"nick\":\"J59xfsUewpdmrbuM\",\"network\":\"mainnet\",\"features\":{ } } ", mainnet, nil},
		{"extra keys ignored", hs(map[string]any{"zzz": `[1, {"a": 2}]`}), mainnet, nil},
		{"onion upper case stored lower", hs(map[string]any{"location-string": jstr(strings.ToUpper(strings.TrimSuffix(makerOnion, ".onion")) + ".ONION:5222")}), mainnet,
			func(t *testing.T, h handshake.Hello) {
				if h.Location.Host != makerOnion || h.Location.Port != 5222 {
					t.Errorf("Location = %+v", h.Location)
				}
			}},
		{"not serving", hs(map[string]any{"location-string": `"NOT-SERVING-ONION"`}), mainnet,
			func(t *testing.T, h handshake.Hello) {
				if h.Location.Serving() {
					t.Errorf("Location = %+v, want not serving", h.Location)
				}
			}},
		{"127.0.0.1 with AllowLocal", hs(map[string]any{"location-string": `"127.0.0.1:27102"`}), handshake.Policy{Network: "mainnet", AllowLocal: true},
			func(t *testing.T, h handshake.Hello) {
				if h.Location != (jm.Location{Host: "127.0.0.1", Port: 27102}) {
					t.Errorf("Location = %+v", h.Location)
				}
			}},
		{"localhost with AllowLocal", hs(map[string]any{"location-string": `"LocalHost:80"`}), handshake.Policy{Network: "mainnet", AllowLocal: true},
			func(t *testing.T, h handshake.Hello) {
				if h.Location != (jm.Location{Host: "localhost", Port: 80}) {
					t.Errorf("Location = %+v", h.Location)
				}
			}},
		{"longest valid location (68 bytes)", hs(map[string]any{"location-string": `"` + makerOnion + `:65535"`}), mainnet, nil},
		{"32 features", hs(map[string]any{"features": features(32)}), mainnet,
			func(t *testing.T, h handshake.Hello) {
				if len(h.Features.True) != 32 {
					t.Errorf("len(True) = %d, want 32", len(h.Features.True))
				}
			}},
		{"64-byte feature key", hs(map[string]any{"features": `{"` + strings.Repeat("k", 64) + `": true}`}), mainnet, nil},
		{"512-byte string feature", hs(map[string]any{"features": `{"fidelity_bond": "` + strings.Repeat("A", 512) + `"}`}), mainnet,
			func(t *testing.T, h handshake.Hello) {
				if len(h.Features.True) != 0 {
					t.Errorf("True = %v, want none", h.Features.True)
				}
			}},
		{"512-byte escaped string feature", hs(map[string]any{"features": `{"x": ` + strings.ReplaceAll(jstr(long), "é", `\u00e9`) + `}`}), mainnet, nil},
		{"scalar feature values", hs(map[string]any{"features": `{"a": 1, "b": -2.5e3, "c": false, "d": null, "e": ""}`}), mainnet, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rej := handshake.Parse(tc.line, tc.policy)
			if rej != nil {
				t.Fatalf("Parse(%s) rejected: %v", tc.line, rej)
			}
			if !jm.ValidNick(h.Nick) {
				t.Errorf("Nick %q is not valid", h.Nick)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	badOnion := []byte(makerOnion)
	badOnion[10] ^= 1 // breaks the checksum
	tests := []struct {
		name   string
		line   string
		policy handshake.Policy
		code   reason.Reject
	}{
		// Not an object of the right shape.
		{"not JSON", "hello", mainnet, reason.RejectMalformed},
		{"empty", "", mainnet, reason.RejectMalformed},
		{"truncated", sec11Maker[:len(sec11Maker)-1], mainnet, reason.RejectMalformed},
		{"trailing garbage", sec11Maker + " x", mainnet, reason.RejectMalformed},
		{"array", "[" + sec11Maker + "]", mainnet, reason.RejectMalformed},
		{"null", "null", mainnet, reason.RejectMalformed},
		{"number", "5", mainnet, reason.RejectMalformed},
		{"string", jstr(sec11Maker), mainnet, reason.RejectMalformed},
		{"empty object", "{}", mainnet, reason.RejectMalformed},
		{"app-name missing", hs(map[string]any{"app-name": nil}), mainnet, reason.RejectMalformed},
		{"app-name number", hs(map[string]any{"app-name": `1`}), mainnet, reason.RejectMalformed},
		{"app-name too long", hs(map[string]any{"app-name": jstr(strings.Repeat("j", 65))}), mainnet, reason.RejectMalformed},
		{"proto-ver missing", hs(map[string]any{"proto-ver": nil}), mainnet, reason.RejectMalformed},
		{"proto-ver string", hs(map[string]any{"proto-ver": `"5"`}), mainnet, reason.RejectMalformed},
		{"proto-ver 5.0", hs(map[string]any{"proto-ver": `5.0`}), mainnet, reason.RejectMalformed},
		{"proto-ver 5e0", hs(map[string]any{"proto-ver": `5e0`}), mainnet, reason.RejectMalformed},
		{"proto-ver null", hs(map[string]any{"proto-ver": `null`}), mainnet, reason.RejectMalformed},
		{"proto-ver true", hs(map[string]any{"proto-ver": `true`}), mainnet, reason.RejectMalformed},
		{"proto-ver huge", hs(map[string]any{"proto-ver": `50000000000000000000`}), mainnet, reason.RejectMalformed},
		{"directory string", hs(map[string]any{"directory": `"false"`}), mainnet, reason.RejectMalformed},
		{"directory number", hs(map[string]any{"directory": `0`}), mainnet, reason.RejectMalformed},
		{"network missing", hs(map[string]any{"network": nil}), mainnet, reason.RejectMalformed},
		{"network number", hs(map[string]any{"network": `1`}), mainnet, reason.RejectMalformed},
		{"nick missing", hs(map[string]any{"nick": nil}), mainnet, reason.RejectMalformed},
		{"nick number", hs(map[string]any{"nick": `59`}), mainnet, reason.RejectMalformed},
		{"nick array", hs(map[string]any{"nick": `["J59xfsUewpdmrbuM"]`}), mainnet, reason.RejectMalformed},

		{"app-name other", hs(map[string]any{"app-name": `"bitcoin"`}), mainnet, reason.RejectAppName},
		{"app-name empty", hs(map[string]any{"app-name": `""`}), mainnet, reason.RejectAppName},
		{"app-name with space", hs(map[string]any{"app-name": `"joinmarket "`}), mainnet, reason.RejectAppName},

		{"version 4", hs(map[string]any{"proto-ver": `4`}), mainnet, reason.RejectVersion},
		{"version 6", hs(map[string]any{"proto-ver": `6`}), mainnet, reason.RejectVersion},
		{"version 0", hs(map[string]any{"proto-ver": `0`}), mainnet, reason.RejectVersion},
		{"version -5", hs(map[string]any{"proto-ver": `-5`}), mainnet, reason.RejectVersion},

		{"directory true", hs(map[string]any{"directory": `true`}), mainnet, reason.RejectDirectory},

		{"network testnet", hs(map[string]any{"network": `"testnet"`}), mainnet, reason.RejectNetwork},
		{"network regtest on mainnet", hs(nil), regtest, reason.RejectNetwork},
		{"network empty", hs(map[string]any{"network": `""`}), mainnet, reason.RejectNetwork},
		{"network with space", hs(map[string]any{"network": `"mainnet "`}), mainnet, reason.RejectNetwork},

		{"nick empty", hs(map[string]any{"nick": `""`}), mainnet, reason.RejectNick},
		{"nick 15 chars", hs(map[string]any{"nick": jstr(nick1[:15])}), mainnet, reason.RejectNick},
		{"nick 17 chars", hs(map[string]any{"nick": jstr(nick1 + "M")}), mainnet, reason.RejectNick},
		{"nick J4", hs(map[string]any{"nick": jstr("J4" + nick1[2:])}), mainnet, reason.RejectNick},
		{"nick lower j", hs(map[string]any{"nick": jstr("j" + nick1[1:])}), mainnet, reason.RejectNick},
		{"nick non-base58 0", hs(map[string]any{"nick": jstr(nick1[:15] + "0")}), mainnet, reason.RejectNick},
		{"nick non-base58 l", hs(map[string]any{"nick": jstr(nick1[:15] + "l")}), mainnet, reason.RejectNick},
		{"nick all padding", hs(map[string]any{"nick": `"J5OOOOOOOOOOOOOO"`}), mainnet, reason.RejectNick},
		{"nick value too large", hs(map[string]any{"nick": `"J5zzzzzzzzzzzzzz"`}), mainnet, reason.RejectNick},
		{"nick with separator", hs(map[string]any{"nick": `"J59xfsUewpd!rbuM"`}), mainnet, reason.RejectNick},
		{"nick too long for str", hs(map[string]any{"nick": jstr(strings.Repeat("J5", 33))}), mainnet, reason.RejectMalformed},

		{"nick is the directory's", hs(nil), handshake.Policy{Network: "mainnet", Reserved: nick1}, reason.RejectReservedNick},
		{"directory's nick as a taker", hs(map[string]any{"location-string": `"NOT-SERVING-ONION"`}), handshake.Policy{Network: "mainnet", Reserved: nick1}, reason.RejectReservedNick},

		{"location missing", hs(map[string]any{"location-string": nil}), mainnet, reason.RejectLocation},
		{"location number", hs(map[string]any{"location-string": `5222`}), mainnet, reason.RejectLocation},
		{"location empty", hs(map[string]any{"location-string": `""`}), mainnet, reason.RejectLocation},
		{"location empty regtest", hs(map[string]any{"location-string": `""`, "network": `"regtest"`}), regtest, reason.RejectLocation},
		{"location garbled", hs(map[string]any{"location-string": `"not a location"`}), mainnet, reason.RejectLocation},
		{"location port only", hs(map[string]any{"location-string": `"9050"`}), mainnet, reason.RejectLocation},
		{"location no port", hs(map[string]any{"location-string": jstr(makerOnion)}), mainnet, reason.RejectLocation},
		{"location port 0", hs(map[string]any{"location-string": jstr(makerOnion + ":0")}), mainnet, reason.RejectLocation},
		{"location port 65536", hs(map[string]any{"location-string": jstr(makerOnion + ":65536")}), mainnet, reason.RejectLocation},
		{"location port leading zero", hs(map[string]any{"location-string": jstr(makerOnion + ":05222")}), mainnet, reason.RejectLocation},
		{"location bad checksum", hs(map[string]any{"location-string": jstr(string(badOnion) + ":5222")}), mainnet, reason.RejectLocation},
		{"location v2 onion", hs(map[string]any{"location-string": `"expyuzz4wqqyqhjn.onion:80"`}), mainnet, reason.RejectLocation},
		{"location dns host", hs(map[string]any{"location-string": `"example.com:5222"`}), mainnet, reason.RejectLocation},
		{"location 127.0.0.1 on mainnet", hs(map[string]any{"location-string": `"127.0.0.1:27102"`}), mainnet, reason.RejectLocation},
		{"location localhost on mainnet", hs(map[string]any{"location-string": `"localhost:27102"`}), mainnet, reason.RejectLocation},
		{"location other IP with AllowLocal", hs(map[string]any{"location-string": `"10.0.0.1:27102"`, "network": `"regtest"`}), regtest, reason.RejectLocation},
		{"location not-serving lower case", hs(map[string]any{"location-string": `"not-serving-onion"`}), mainnet, reason.RejectLocation},
		{"location over 72 bytes", hs(map[string]any{"location-string": jstr(makerOnion + ":5222" + strings.Repeat(" ", 6))}), mainnet, reason.RejectLocation},

		{"features array", hs(map[string]any{"features": `["ping"]`}), mainnet, reason.RejectFeatures},
		{"features string", hs(map[string]any{"features": `"ping"`}), mainnet, reason.RejectFeatures},
		{"features true", hs(map[string]any{"features": `true`}), mainnet, reason.RejectFeatures},
		{"features number", hs(map[string]any{"features": `1`}), mainnet, reason.RejectFeatures},
		{"feature object value", hs(map[string]any{"features": `{"ping": {"v": true}}`}), mainnet, reason.RejectFeatures},
		{"feature empty object value", hs(map[string]any{"features": `{"ping": {}}`}), mainnet, reason.RejectFeatures},
		{"feature array value", hs(map[string]any{"features": `{"ping": [true]}`}), mainnet, reason.RejectFeatures},
		{"33 features", hs(map[string]any{"features": features(33)}), mainnet, reason.RejectFeatures},
		{"feature key with comma", hs(map[string]any{"features": `{"a,b": true}`}), mainnet, reason.RejectFeatures},
		{"feature key with plus", hs(map[string]any{"features": `{"a+b": true}`}), mainnet, reason.RejectFeatures},
		{"feature key with semicolon", hs(map[string]any{"features": `{"a;b": true}`}), mainnet, reason.RejectFeatures},
		{"feature key upper case", hs(map[string]any{"features": `{"A": true}`}), mainnet, reason.RejectFeatures},
		{"feature key empty", hs(map[string]any{"features": `{"": true}`}), mainnet, reason.RejectFeatures},
		{"feature key dash", hs(map[string]any{"features": `{"nick-auth": true}`}), mainnet, reason.RejectFeatures},
		{"feature key non-ASCII", hs(map[string]any{"features": `{"pïng": true}`}), mainnet, reason.RejectFeatures},
		{"feature key 65 bytes", hs(map[string]any{"features": `{"` + strings.Repeat("k", 65) + `": true}`}), mainnet, reason.RejectFeatures},
		{"feature key bad even with false value", hs(map[string]any{"features": `{"A": false}`}), mainnet, reason.RejectFeatures},
		{"feature string 513 bytes", hs(map[string]any{"features": `{"fidelity_bond": "` + strings.Repeat("A", 513) + `"}`}), mainnet, reason.RejectFeatures},
		{"feature escaped string 514 bytes", hs(map[string]any{"features": `{"x": "` + strings.Repeat(`\u00e9`, 257) + `"}`}), mainnet, reason.RejectFeatures},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rej := handshake.Parse(tc.line, tc.policy)
			if rej == nil {
				t.Fatalf("Parse(%s) accepted %+v, want %v", tc.line, h, tc.code)
			}
			if rej.Code != tc.code {
				t.Fatalf("Parse(%s) = %v, want code %v", tc.line, rej, tc.code)
			}
			if rej.Detail == "" {
				t.Error("empty Detail")
			}
			if !strings.HasPrefix(rej.Error(), tc.code.String()+": ") {
				t.Errorf("Error() = %q, want prefix %q", rej.Error(), tc.code.String()+": ")
			}
			if h.Nick != "" || h.Location != (jm.Location{}) || h.Features.True != nil {
				t.Errorf("rejected Parse returned a non-zero Hello %+v", h)
			}
		})
	}
}

// The rules are checked in a fixed order; the first failing one names the rejection.
func TestParseRejectOrder(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]any
		code reason.Reject
	}{
		{"app-name before version", map[string]any{"app-name": `"x"`, "proto-ver": `4`}, reason.RejectAppName},
		{"version before directory", map[string]any{"proto-ver": `4`, "directory": `true`}, reason.RejectVersion},
		{"directory before network", map[string]any{"directory": `true`, "network": `"testnet"`}, reason.RejectDirectory},
		{"network before nick", map[string]any{"network": `"testnet"`, "nick": `"x"`}, reason.RejectNetwork},
		{"nick before location", map[string]any{"nick": `"x"`, "location-string": `""`}, reason.RejectNick},
		{"location before features", map[string]any{"location-string": `""`, "features": `[]`}, reason.RejectLocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := handshake.Parse(hs(tc.set), mainnet)
			if rej == nil || rej.Code != tc.code {
				t.Fatalf("Parse = %v, want code %v", rej, tc.code)
			}
		})
	}
}

func TestParseFeatures(t *testing.T) {
	tests := []struct {
		name     string
		features string
		ping     bool
		peerlist bool
		trues    []string
	}{
		{"empty", `{}`, false, false, nil},
		{"both true", `{"ping": true, "peerlist_features": true}`, true, true, []string{"peerlist_features", "ping"}},
		{"ping only", `{"ping": true}`, true, false, []string{"ping"}},
		{"peerlist only", `{"peerlist_features": true}`, false, true, []string{"peerlist_features"}},
		{"string true is not true", `{"ping": "true", "peerlist_features": "true"}`, false, false, nil},
		{"number 1 is not true", `{"ping": 1, "peerlist_features": 1}`, false, false, nil},
		{"false", `{"ping": false, "peerlist_features": false}`, false, false, nil},
		{"null", `{"ping": null}`, false, false, nil},
		{"sorted", `{"zeta": true, "ping": true, "alpha": true, "no": false, "peerlist_features": true, "s": "x", "n": 7, "nick_auth": true}`,
			true, true, []string{"alpha", "nick_auth", "peerlist_features", "ping", "zeta"}},
		{"duplicate key, last wins", `{"ping": true, "ping": false}`, false, false, nil},
		{"duplicate key, true once", `{"ping": false, "ping": true}`, true, false, []string{"ping"}},
		{"digits and underscore", `{"_0": true, "9a_b": true}`, false, false, []string{"9a_b", "_0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, rej := handshake.Parse(hs(map[string]any{"features": tc.features}), mainnet)
			if rej != nil {
				t.Fatalf("rejected: %v", rej)
			}
			f := h.Features
			if f.Ping != tc.ping || f.PeerlistFeatures != tc.peerlist {
				t.Errorf("Ping, PeerlistFeatures = %v, %v; want %v, %v", f.Ping, f.PeerlistFeatures, tc.ping, tc.peerlist)
			}
			if !slices.Equal(f.True, tc.trues) {
				t.Errorf("True = %q, want %q", f.True, tc.trues)
			}
		})
	}
}

// topKeys returns the top-level keys of a JSON object in document order.
func topKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object (%v, %v)", line, tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); err == nil {
		t.Fatalf("%s: trailing data", line)
	}
	return keys
}

type dnReply struct {
	AppName     string          `json:"app-name"`
	Directory   bool            `json:"directory"`
	Location    *string         `json:"location-string"`
	ProtoVerMin int             `json:"proto-ver-min"`
	ProtoVerMax int             `json:"proto-ver-max"`
	Features    json.RawMessage `json:"features"`
	Accepted    bool            `json:"accepted"`
	Nick        string          `json:"nick"`
	Network     string          `json:"network"`
	MOTD        string          `json:"motd"`
}

func TestDirectoryAccept(t *testing.T) {
	// Byte-exact: the RS directory line of docs/protocol.md §11.1.
	d := handshake.Directory{
		Nick: "J58qZTosNQ6beAwN", Network: "mainnet", Location: dirOnion + ":5222",
		MOTD: "DIRECTORY NODE: " + dirOnion + ":5222\nJOINMARKET VERSION: joinmarket-rs/0.3.0-alpha\n",
	}
	want := `{"app-name":"joinmarket","directory":true,"location-string":"uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222","proto-ver-min":5,"proto-ver-max":5,"features":{"peerlist_features":true,"ping":true},"accepted":true,"nick":"J58qZTosNQ6beAwN","network":"mainnet","motd":"DIRECTORY NODE: uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222\nJOINMARKET VERSION: joinmarket-rs/0.3.0-alpha\n"}`
	if got := d.Accept(); got != want {
		t.Fatalf("Accept() =\n%s\nwant\n%s", got, want)
	}

	tests := []struct {
		name string
		dir  handshake.Directory
		keys []string
	}{
		{"with location", handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "regtest", Location: "127.0.0.1:27101", MOTD: "hi"},
			[]string{"app-name", "directory", "location-string", "proto-ver-min", "proto-ver-max", "features", "accepted", "nick", "network", "motd"}},
		{"without location", handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "mainnet", MOTD: "<b>Tom & Jerry</b> \"quoted\"\n\\ é \u2028"},
			[]string{"app-name", "directory", "proto-ver-min", "proto-ver-max", "features", "accepted", "nick", "network", "motd"}},
		{"empty motd", handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "signet"},
			[]string{"app-name", "directory", "proto-ver-min", "proto-ver-max", "features", "accepted", "nick", "network", "motd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.dir.Accept()
			if !json.Valid([]byte(line)) {
				t.Fatalf("invalid JSON: %s", line)
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Errorf("line contains a raw line break: %q", line)
			}
			if got := topKeys(t, line); !slices.Equal(got, tc.keys) {
				t.Errorf("keys = %q, want %q", got, tc.keys)
			}
			var r dnReply
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			if r.AppName != "joinmarket" || !r.Directory || r.ProtoVerMin != 5 || r.ProtoVerMax != 5 || !r.Accepted ||
				r.Nick != tc.dir.Nick || r.Network != tc.dir.Network || r.MOTD != tc.dir.MOTD {
				t.Errorf("reply = %+v", r)
			}
			if string(r.Features) != `{"peerlist_features":true,"ping":true}` {
				t.Errorf("features = %s", r.Features)
			}
			if tc.dir.Location == "" && r.Location != nil {
				t.Errorf("location-string = %q, want absent", *r.Location)
			}
			if tc.dir.Location != "" && (r.Location == nil || *r.Location != tc.dir.Location) {
				t.Errorf("location-string = %v, want %q", r.Location, tc.dir.Location)
			}
			for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
				if strings.Contains(line, esc) {
					t.Errorf("line HTML-escapes: %s", line)
				}
			}
		})
	}
	t.Run("html kept literal", func(t *testing.T) {
		line := handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "mainnet", MOTD: "<a&b>"}.Accept()
		if !strings.HasSuffix(line, `"motd":"<a&b>"}`) {
			t.Errorf("Accept() = %s", line)
		}
	})
}

func TestDirectoryReject(t *testing.T) {
	d := handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "mainnet", Location: dirOnion + ":5222", MOTD: "welcome <home>"}
	_, rej := handshake.Parse(sec11WrongNet, mainnet)
	if rej == nil {
		t.Fatal("wrong network accepted")
	}
	line := d.Reject(rej)
	want := `{"app-name":"joinmarket","directory":true,"location-string":"` + dirOnion + `:5222","proto-ver-min":5,"proto-ver-max":5,` +
		`"features":{"peerlist_features":true,"ping":true},"accepted":false,"nick":"J58qZTosNQ6beAwN","network":"mainnet",` +
		`"motd":"Rejected: network: this directory serves mainnet, not \"signet\""}`
	if line != want {
		t.Fatalf("Reject() =\n%s\nwant\n%s", line, want)
	}

	tests := []*handshake.Rejection{
		{Code: reason.RejectDuplicate, Detail: "nick already registered by a live peer"},
		{Code: reason.RejectCapacity, Detail: "maximum peers reached (10)"},
		{Code: reason.RejectMalformed, Detail: "<script>&\"\\\n"},
		{Code: 0, Detail: ""},
	}
	for _, rej := range tests {
		t.Run(rej.Code.String(), func(t *testing.T) {
			line := d.Reject(rej)
			var r dnReply
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("invalid JSON %s: %v", line, err)
			}
			if r.Accepted {
				t.Error("accepted = true")
			}
			if want := "Rejected: " + rej.Code.String() + ": " + rej.Detail; r.MOTD != want {
				t.Errorf("motd = %q, want %q", r.MOTD, want)
			}
			if strings.Contains(r.MOTD, d.MOTD) {
				t.Errorf("rejection leaks the welcome motd: %q", r.MOTD)
			}
			if !strings.HasPrefix(r.MOTD, "Rejected: ") {
				t.Errorf("motd = %q", r.MOTD)
			}
			if got, want := topKeys(t, line), []string{"app-name", "directory", "location-string", "proto-ver-min", "proto-ver-max", "features", "accepted", "nick", "network", "motd"}; !slices.Equal(got, want) {
				t.Errorf("keys = %q, want %q", got, want)
			}
			if strings.Contains(line, `\u003c`) || strings.Contains(line, `\u0026`) {
				t.Errorf("line HTML-escapes: %s", line)
			}
		})
	}
}

// Every rejection Parse produces can be sent back as a valid 795 whose motd fits a line.
func TestRejectDetailsSendable(t *testing.T) {
	lines := []string{
		hs(map[string]any{"network": jstr(strings.Repeat("\xff", 64))}),
		hs(map[string]any{"network": jstr(strings.Repeat("é", 32))}),
		hs(map[string]any{"location-string": jstr(strings.Repeat("\x00", 72))}),
		"\xff\xfe",
	}
	d := handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "mainnet"}
	for _, l := range lines {
		_, rej := handshake.Parse(l, mainnet)
		if rej == nil {
			t.Fatalf("Parse(%q) accepted", l)
		}
		out := d.Reject(rej)
		if !json.Valid([]byte(out)) || len(out) > 1000 {
			t.Errorf("Reject(%v) = %q", rej, out)
		}
	}
}

// TestSeedCorpusParse: every client handshake line of the transcripts, with and without
// local locations allowed, is a seed of FuzzParse in testdata/fuzz/FuzzParse.
func TestSeedCorpusParse(t *testing.T) {
	recs, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]any
	for _, r := range recs {
		if r.Dir == "c2s" && r.Type == 793 {
			seeds = append(seeds, []any{r.Line, true}, []any{r.Line, false})
		}
	}
	fixtures.CheckCorpus(t, "FuzzParse", seeds)
}

// FuzzParse starts from the transcripts' handshake lines (testdata/fuzz/FuzzParse) and
// the section 11 examples and edge cases added here.
func FuzzParse(f *testing.F) {
	for _, l := range []string{sec11Maker, sec11Taker, sec11NG, sec11WrongNet} {
		f.Add(l, false)
	}
	f.Add(hs(map[string]any{"features": `{"ping": true, "fidelity_bond": "AAAA", "x": 1}`}), false)
	f.Add(hs(map[string]any{"location-string": `"localhost:1"`}), true)
	f.Add(`{"app-name": "joinmarket"}`, false)
	f.Add(`[]`, false)
	d := handshake.Directory{Nick: "J58qZTosNQ6beAwN", Network: "regtest"}
	f.Fuzz(func(t *testing.T, line string, local bool) {
		for _, network := range []string{"regtest", "mainnet"} {
			p := handshake.Policy{Network: network, AllowLocal: local}
			h, rej := handshake.Parse(line, p)
			if rej != nil {
				if rej.Code < reason.RejectMalformed || rej.Code > reason.RejectFeatures {
					t.Fatalf("Parse returned code %d", rej.Code)
				}
				if out := d.Reject(rej); !json.Valid([]byte(out)) {
					t.Fatalf("Reject produced invalid JSON %q", out)
				}
				continue
			}
			if !jm.ValidNick(h.Nick) {
				t.Fatalf("accepted invalid nick %q", h.Nick)
			}
			loc := h.Location.String()
			again, err := jm.ParseLocation(loc, local)
			if err != nil || again != h.Location {
				t.Fatalf("Location %q does not re-parse: %+v, %v", loc, again, err)
			}
			if !local && h.Location.Serving() && !jm.ValidOnionV3(h.Location.Host) {
				t.Fatalf("accepted non-onion host %q without AllowLocal", h.Location.Host)
			}
			feat := h.Features
			if !slices.IsSorted(feat.True) {
				t.Fatalf("True not sorted: %q", feat.True)
			}
			if len(feat.True) > 32 {
				t.Fatalf("%d true features", len(feat.True))
			}
			if feat.Ping != slices.Contains(feat.True, "ping") || feat.PeerlistFeatures != slices.Contains(feat.True, "peerlist_features") {
				t.Fatalf("flags disagree with True: %+v", feat)
			}
			for _, k := range feat.True {
				if k == "" || len(k) > 64 || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
					t.Fatalf("accepted feature key %q", k)
				}
			}
			// Accepted handshakes are JSON objects announcing that nick.
			var m map[string]json.RawMessage
			var nick string
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("accepted %q, which is not a JSON object: %v", line, err)
			}
			if err := json.Unmarshal(m["nick"], &nick); err != nil || nick != h.Nick {
				t.Fatalf("accepted %q as nick %q, but its nick decodes to %q, %v", line, h.Nick, nick, err)
			}
		}
	})
}

// TestClientHelloLine: the sending side renders exactly what the reference clients sent
// in the fixtures and in docs/protocol.md §11.2, and Parse reads it back.
func TestClientHelloLine(t *testing.T) {
	recs, err := fixtures.Load("handshake")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Dir != "c2s" || r.Type != 793 {
			continue
		}
		var hs struct {
			Location string `json:"location-string"`
			Nick     string `json:"nick"`
			Network  string `json:"network"`
		}
		if err := json.Unmarshal([]byte(r.Line), &hs); err != nil {
			t.Fatal(err)
		}
		got := handshake.ClientHello{Nick: hs.Nick, Location: hs.Location, Network: hs.Network}.Line()
		if got != r.Line {
			t.Fatalf("got  %s\nwant %s", got, r.Line)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d fixture handshakes", n)
	}
	ng := handshake.ClientHello{Nick: "J554XN9CktYtikWE", Location: "NOT-SERVING-ONION", Network: "mainnet",
		Features: map[string]bool{"ping": true, "nick_auth": true, "peerlist_features": true}}.Line()
	want := `{"app-name": "joinmarket", "directory": false, "location-string": "NOT-SERVING-ONION", "proto-ver": 5, "features": {"nick_auth": true, "peerlist_features": true, "ping": true}, "nick": "J554XN9CktYtikWE", "network": "mainnet"}`
	if ng != want {
		t.Fatalf("got  %s\nwant %s", ng, want)
	}
	if _, rej := handshake.Parse(ng, handshake.Policy{Network: "mainnet"}); rej != nil {
		t.Fatal(rej)
	}
}
