package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Nick authentication (JMP-0005, docs/protocol.md §5), over real sockets, against an
// in-process directory on regtest, whose directory-id is its listen address.

func authDir(t *testing.T, adjust func(*config.Config)) *dirtest.Target {
	t.Helper()
	return tuned(t, adjust)
}

// TestNickAuthVerified: in the default mode a client offering nick authentication gets
// the 795 advertising it, an 803 for the directory's own location, and 807 ok; it is
// then an ordinary peer. Reference and NG clients that do not offer it get the 795
// without nick_auth, and no 803.
func TestNickAuthVerified(t *testing.T) {
	tg := authDir(t, nil)
	ref := tg.Join(t, dirtest.RefTaker)
	ng := tg.Join(t, dirtest.NGMaker)
	for _, c := range []*dirtest.Client{ref, ng} {
		if f, _ := c.DN["features"].(map[string]any); f["nick_auth"] != nil || len(f) != 2 {
			t.Fatalf("%s: 795 features %v, want peerlist_features and ping only", c.Nick, f)
		}
	}
	v, code := tg.JoinAuth(t, dirtest.AuthSpec{Maker: true})
	if code != nickauth.CodeOK {
		t.Fatalf("result %s, want ok", code)
	}
	// An ordinary peer now: its pubmsg reaches the others, and theirs reach it.
	v.Pubmsg("!hello verified")
	ref.ExpectLine(wire.TypePubmsg, v.Nick+"!PUBLIC!!hello verified")
	if got := ref.Sync(ng); len(got) > 0 {
		t.Fatalf("the reference client got more: %v", got)
	}
	ng.Pubmsg("!hello")
	v.ExpectLine(wire.TypePubmsg, ng.Nick+"!PUBLIC!!hello")
	st := tg.Srv.Status(false).NickAuth
	if st.Verified != 1 || st.Legacy != 2 || st.Results["ok"] != 1 || st.Mode != "prefer_verified" || st.DirectoryID != tg.Addr {
		t.Fatalf("status %+v", st)
	}
}

// TestNickAuthFailures: each failure gets its 807 code and a close, is counted by code,
// and registers nothing.
func TestNickAuthFailures(t *testing.T) {
	tg := authDir(t, func(c *config.Config) { c.NickAuthTimeout = 500 * time.Millisecond })
	other := dirtest.NewKey(t)
	for _, tc := range []struct {
		name string
		spec dirtest.AuthSpec
		want nickauth.Code
	}{
		{"garbage proof", dirtest.AuthSpec{Proof: func(nickauth.Proof) string { return `{"pubkey":"02"}` }}, nickauth.CodeMalformed},
		{"extra key", dirtest.AuthSpec{Proof: func(p nickauth.Proof) string {
			return strings.TrimSuffix(p.Line(), "}") + `,"kind":"proof"}`
		}}, nickauth.CodeMalformed},
		{"not an 805", dirtest.AuthSpec{Send: `{"type": 791, "line": ""}`}, nickauth.CodeMalformed},
		{"duplicate envelope key", dirtest.AuthSpec{Send: `{"type": 805, "type": 805, "line": "{}"}`}, nickauth.CodeMalformed},
		{"silent", dirtest.AuthSpec{Silent: true}, nickauth.CodeExpired},
		{"another key", dirtest.AuthSpec{Proof: func(p nickauth.Proof) string {
			q := nickauth.Prove(other, strings.Repeat("0", 64), "x", "y")
			return nickauth.Proof{PubKey: q.PubKey, Signature: p.Signature}.Line()
		}}, nickauth.CodeInvalid},
		{"signature of another transcript", dirtest.AuthSpec{Proof: func(p nickauth.Proof) string {
			return nickauth.Proof{PubKey: p.PubKey, Signature: nickauth.Prove(other, strings.Repeat("0", 64), "x", "y").Signature}.Line()
		}}, nickauth.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, code := tg.JoinAuth(t, tc.spec)
			if code != tc.want {
				t.Fatalf("result %s, want %s", code, tc.want)
			}
			c.ExpectClosed()
			if p := tg.Srv.Status(true); len(p.MakerNicks)+len(p.TakerNicks) != 0 {
				t.Fatalf("registered after %s: %v %v", code, p.MakerNicks, p.TakerNicks)
			}
		})
	}
	res := tg.Srv.Status(false).NickAuth.Results
	if res["malformed"] != 4 || res["expired"] != 1 || res["invalid"] != 2 || res["ok"] != 0 {
		t.Fatalf("results %v", res)
	}
	testkit.Eventually(t, "seven nick_auth_failed closes", func() bool {
		return tg.Srv.Status(false).Closes["nick_auth_failed"] == 7
	})
}

// TestNickAuthPolicyWhenFull: a verified client that cannot be registered (the directory
// is full) gets 807 policy.
func TestNickAuthPolicyWhenFull(t *testing.T) {
	tg := authDir(t, func(c *config.Config) { c.MaxPeers = 1 })
	tg.Join(t, dirtest.RefTaker)
	c, code := tg.JoinAuth(t, dirtest.AuthSpec{})
	if code != nickauth.CodePolicy {
		t.Fatalf("result %s, want policy", code)
	}
	c.ExpectClosed()
}

// TestNickAuthDisplacement: a verified owner that connects again with the same key
// takes its nick back at once; the old connection is closed and everyone else hears of
// it (;D), the new one does not. A verified client takes its nick from a legacy holder
// at once too, and a legacy claim on a verified owner's nick is refused at once.
func TestNickAuthDisplacement(t *testing.T) {
	tg := authDir(t, nil)
	watcher := tg.Join(t, dirtest.NGTaker)
	key := dirtest.NewKey(t)
	first, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: key, Maker: true})
	if code != nickauth.CodeOK {
		t.Fatal(code)
	}
	start := time.Now()
	second, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: key, Maker: true})
	if code != nickauth.CodeOK {
		t.Fatalf("reconnection: %s", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("reconnection took %v", d)
	}
	first.ExpectClosed()
	env := watcher.Expect(wire.TypePeerlist)
	if !strings.HasPrefix(env.Line, first.Nick+";"+first.Location+";D") {
		t.Fatalf("watcher got %q, want the departure of %s", env.Line, first.Nick)
	}
	// The new owner does not hear of its own departure, and is a working peer.
	for _, e := range second.Sync(watcher) {
		if strings.Contains(e.Line, ";D") {
			t.Fatalf("the new owner got %q", e.Line)
		}
	}
	testkit.Eventually(t, "one displaced close", func() bool {
		return tg.Srv.Status(false).Closes["displaced_by_verified_owner"] == 1
	})

	// A legacy claim on the verified nick: refused at once, the owner untouched.
	legacy := tg.Dial(t)
	legacy.Send(wire.TypeHandshake, dirtest.HelloLine(second.Nick, dirtest.NewOnion(t)+":5222", tg.Network, 5, false, nil))
	if dn := legacy.RecvDN(); dn["accepted"] != false || !strings.Contains(dn["motd"].(string), "duplicate_nick") {
		t.Fatalf("legacy claim on a verified nick: %v", dn)
	}
	second.Pubmsg("!still here")
	watcher.ExpectLine(wire.TypePubmsg, second.Nick+"!PUBLIC!!still here")

	// A legacy holder of a nick gives it up at once to the verified key behind it.
	key2 := dirtest.NewKey(t)
	holder := tg.Join(t, dirtest.PeerSpec{Nick: dirtest.NickOf(key2)})
	start = time.Now()
	if _, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: key2}); code != nickauth.CodeOK {
		t.Fatalf("verified over legacy: %s", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("taking the nick from a legacy holder took %v (no owner check should run)", d)
	}
	holder.ExpectClosed()
	testkit.Eventually(t, "two verified peers", func() bool { return tg.Srv.Status(false).NickAuth.Verified == 2 })
}

// TestNickAuthRequired: in require_verified mode a client that does not offer nick
// authentication is refused with nick_auth_required; one that does is served.
func TestNickAuthRequired(t *testing.T) {
	tg := authDir(t, func(c *config.Config) { c.NickAuthMode = "require_verified" })
	for _, spec := range []dirtest.PeerSpec{dirtest.RefTaker, dirtest.NGMaker} {
		c := tg.Dial(t)
		spec = spec.Resolve(t)
		c.Send(wire.TypeHandshake, dirtest.HelloLine(spec.Nick, spec.Location, tg.Network, 5, false, spec.Features))
		dn := c.RecvDN()
		if dn["accepted"] != false || !strings.Contains(dn["motd"].(string), "nick_auth_required") {
			t.Fatalf("require_verified, client without nick_auth: %v", dn)
		}
		c.ExpectClosed()
	}
	if _, code := tg.JoinAuth(t, dirtest.AuthSpec{}); code != nickauth.CodeOK {
		t.Fatalf("require_verified, authenticating client: %s", code)
	}
	if got := tg.Srv.Status(false).Rejections["nick_auth_required"]; got != 2 {
		t.Fatalf("nick_auth_required rejections %d", got)
	}
}

// TestNickAuthDisabled: with nick_auth_mode disabled a client offering it gets the
// legacy handshake: no nick_auth in the 795, no 803.
func TestNickAuthDisabled(t *testing.T) {
	tg := authDir(t, func(c *config.Config) { c.NickAuthMode = "disabled" })
	spec := dirtest.PeerSpec{Features: map[string]bool{"nick_auth": true, "ping": true, "peerlist_features": true}}
	c := tg.Join(t, spec)
	if f, _ := c.DN["features"].(map[string]any); f["nick_auth"] != nil {
		t.Fatalf("disabled, 795 features %v", f)
	}
	other := tg.Join(t, dirtest.RefTaker)
	if got := c.Sync(other); len(got) > 0 {
		t.Fatalf("disabled: got %v", got)
	}
}

// TestNickAuthOutOfOrder: an 803, 805 or 807 after the handshake closes the connection
// (as joinmarket-ng does).
func TestNickAuthOutOfOrder(t *testing.T) {
	tg := authDir(t, nil)
	for _, typ := range []int{wire.TypeNickAuthChallenge, wire.TypeNickAuthProof, wire.TypeNickAuthResult} {
		c := tg.Join(t, dirtest.NGTaker)
		c.Send(typ, "{}")
		c.ExpectClosed()
	}
	v, _ := tg.JoinAuth(t, dirtest.AuthSpec{})
	v.Send(wire.TypeNickAuthProof, "{}")
	v.ExpectClosed()
	testkit.Eventually(t, "four out-of-order closes", func() bool {
		return tg.Srv.Status(false).Closes["nick_auth_out_of_order"] == 4
	})
}
