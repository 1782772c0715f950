package conformance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/fixtures"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestFixtureReplay plays every client line of each reference-wire transcript against
// the directory, in transcript order, and checks that what the directory sends each
// connection has the same shapes as what the reference directory sent (directory nick
// and location, the order of lines and of peerlist entries aside).
//
// One deliberate difference is allowed: the reference directory broadcasts a ";D" notice
// for a client it rejected at the handshake (it never joined); this directory only
// announces the departure of peers it accepted (docs/protocol-choices.md).
func TestFixtureReplay(t *testing.T) {
	for _, sc := range fixtures.Scenarios {
		t.Run(sc, func(t *testing.T) {
			recs, err := fixtures.Load(sc)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := fixtures.Directory(sc)
			if err != nil {
				t.Fatal(err)
			}
			replay(t, directory(t), recs, ref.Nick, ref.Location)
		})
	}
}

func replay(t *testing.T, tg *dirtest.Target, recs []fixtures.Record, refNick, refLoc string) {
	conns := map[int]*dirtest.Client{}
	nickOf := map[int]string{}
	accepted := map[string]bool{}
	want, got := map[int][]string{}, map[int][]string{}
	var ourNick, ourLoc string
	skipped := 0

	for _, r := range recs {
		switch {
		case r.Event == "open":
			conns[r.Conn] = tg.Dial(t)
		case r.Event == "close":
			conns[r.Conn].Conn.Close()
		case r.Dir == "c2s":
			c := conns[r.Conn]
			if r.Type == wire.TypeHandshake {
				var hs struct {
					Nick string `json:"nick"`
				}
				_ = json.Unmarshal([]byte(r.Line), &hs)
				nickOf[r.Conn], c.Nick = hs.Nick, hs.Nick
			}
			c.SendRaw(r.Raw + "\r\n")
		case r.Dir == "s2c":
			if r.Type == wire.TypeDNHandshake && strings.Contains(r.Line, `"accepted": true`) {
				accepted[nickOf[r.Conn]] = true
			}
			if r.Type == wire.TypePeerlist && announcesStranger(r.Line, accepted) {
				skipped++
				continue
			}
			want[r.Conn] = append(want[r.Conn], shape(t, r.Type, r.Line, refNick, refLoc))
			env := conns[r.Conn].Recv()
			if env.Type == wire.TypeDNHandshake && ourNick == "" {
				var hs map[string]any
				_ = json.Unmarshal([]byte(env.Line), &hs)
				ourNick, _ = hs["nick"].(string)
				ourLoc, _ = hs["location-string"].(string)
			}
			got[r.Conn] = append(got[r.Conn], shape(t, env.Type, env.Line, ourNick, ourLoc))
		}
	}
	for conn, w := range want {
		g := got[conn]
		sort.Strings(w)
		sort.Strings(g)
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("conn %d (%s):\nreference sent:\n  %s\nwe sent:\n  %s", conn, nickOf[conn],
				strings.Join(w, "\n  "), strings.Join(g, "\n  "))
		}
	}
	if len(want) == 0 {
		t.Fatal("transcript had no directory lines")
	}
	t.Logf("%d connections compared; %d reference notices for never-accepted clients skipped", len(want), skipped)
}

// announcesStranger reports whether a peerlist announces the departure of a nick the
// directory never accepted.
func announcesStranger(line string, accepted map[string]bool) bool {
	for _, e := range strings.Split(line, ",") {
		f := strings.Split(e, ";")
		if len(f) == 3 && f[2] == "D" && !accepted[f[0]] {
			return true
		}
	}
	return false
}

// shape reduces a directory line to what must match across implementations.
func shape(t *testing.T, typ int, line, dnNick, dnLoc string) string {
	switch typ {
	case wire.TypeDNHandshake:
		var hs map[string]any
		if err := json.Unmarshal([]byte(line), &hs); err != nil {
			t.Fatalf("795 not JSON: %v", err)
		}
		for _, k := range []string{"app-name", "directory", "proto-ver-min", "proto-ver-max", "features", "accepted", "nick", "network", "motd"} {
			if _, ok := hs[k]; !ok {
				return "795 missing " + k
			}
		}
		_, featObj := hs["features"].(map[string]any)
		_, motdStr := hs["motd"].(string)
		nick := hs["nick"]
		if nick == dnNick {
			nick = "<dn>"
		}
		return fmt.Sprintf("795 app=%v directory=%v ver=%v..%v features-object=%v accepted=%v nick=%v network=%v motd-string=%v",
			hs["app-name"], hs["directory"], hs["proto-ver-min"], hs["proto-ver-max"], featObj, hs["accepted"], nick, hs["network"], motdStr)
	case wire.TypePeerlist:
		entries := strings.Split(line, ",")
		for i, e := range entries {
			if dnLoc != "" {
				e = strings.ReplaceAll(e, dnLoc, "<dnloc>")
			}
			entries[i] = strings.ReplaceAll(e, dnNick, "<dn>")
		}
		sort.Strings(entries)
		return "789 " + strings.Join(entries, ",")
	}
	return fmt.Sprintf("%d %s", typ, line)
}
