package conformance

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Long lines between joinmarket-ng peers (docs/protocol-choices.md, framing): an ng
// client (ping and peerlist_features in its handshake) may send lines of up to 65 536
// bytes, and a line over 40 000 bytes reaches the ng peers it is meant for; a reference
// peer never receives it (it would drop the directory), which counts it
// line_too_long_for_recipient, and the sender is not cut.

// ngTxSize is the size of a real joinmarket-ng !tx line that a 40 000-byte limit cut.
const ngTxSize = 48226

// longLine returns an envelope, as a client writes it (reference spacing, CRLF), of
// exactly size content bytes, whose line is from!to!<body>: a "!tx" whose text carries
// escapes, so that a relay that re-encodes instead of copying shows. It returns the
// line's raw JSON string token too.
func longLine(t *testing.T, typ int, from, to string, size int) (envelope, token string) {
	t.Helper()
	head := `"` + from + "!" + to + `!tx \u00e9\/\"`
	frame := len(`{"type": 685, "line": }`)
	fill := size - frame - len(head) - 1
	if fill < 0 {
		t.Fatalf("test bug: %d bytes is too short", size)
	}
	// Base64-like filler, as an encrypted !tx carries.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	body := strings.Repeat(alphabet, fill/len(alphabet)+1)[:fill]
	token = head + body + `"`
	envelope = `{"type": ` + strconv.Itoa(typ) + `, "line": ` + token + "}\r\n"
	if len(envelope) != size+2 {
		t.Fatalf("test bug: envelope is %d bytes, want %d", len(envelope)-2, size)
	}
	return envelope, token
}

// relayed is the compact envelope the directory relays a token in, CRLF included.
func relayed(typ int, token string) string {
	return `{"type":` + strconv.Itoa(typ) + `,"line":` + token + "}\r\n"
}

// readRaw reads the next line c receives, as bytes, without the reference-client checks
// of dirtest's Next (an ng client takes lines over 40 000 bytes).
func readRaw(t *testing.T, c *dirtest.Client) string {
	t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(dirtest.Timeout))
	raw, err := c.Reader.ReadBytes('\n')
	if err != nil {
		t.Fatalf("%s: waiting for a line: %v (got %d bytes)", c.Nick, err, len(raw))
	}
	return string(raw)
}

// expectRaw requires c's next line to be want, byte for byte.
func expectRaw(t *testing.T, c *dirtest.Client, want string) {
	t.Helper()
	if got := readRaw(t, c); got != want {
		n := min(len(got), 80)
		t.Fatalf("%s: got %d bytes %q…, want %d bytes %q…", c.Nick, len(got), got[:n], len(want), want[:min(len(want), 80)])
	}
}

// dropsAs checks the in-process directory's count of one drop reason.
func dropsAs(t *testing.T, tg *dirtest.Target, why reason.Drop, n int) {
	t.Helper()
	if tg.Srv == nil {
		return
	}
	if got := tg.Srv.Status(false).Drops[why.String()]; got != uint64(n) {
		t.Errorf("/status drops %s = %d, want %d", why, got, n)
	}
}

// TestLongPrivmsgNG: an ng sender's 48 226-byte privmsg reaches an ng recipient byte for
// byte, followed by its location peerlist; the same to a reference recipient is dropped
// and counted, with no peerlist either, and that recipient never receives a line over
// 40 000 bytes; the sender stays connected.
func TestLongPrivmsgNG(t *testing.T) {
	tg := directory(t)
	s, ng, ref := tg.Join(t, dirtest.NGMaker), tg.Join(t, dirtest.NGTaker), tg.Join(t, dirtest.RefTaker)

	env, token := longLine(t, wire.TypePrivmsg, s.Nick, ng.Nick, ngTxSize)
	s.SendRaw(env)
	expectRaw(t, ng, relayed(wire.TypePrivmsg, token))
	ng.ExpectLine(wire.TypePeerlist, joinEntries(s.Entry(true), ng.DNEntry()))

	env, _ = longLine(t, wire.TypePrivmsg, s.Nick, ref.Nick, ngTxSize)
	s.SendRaw(env)
	// The sender's next privmsg is the reference recipient's next line: nothing came
	// before it, neither the long line (Next would fail on it) nor its peerlist.
	s.Privmsg(ref, "after")
	ref.ExpectLine(wire.TypePrivmsg, s.Nick+"!"+ref.Nick+"!after")
	ref.ExpectLine(wire.TypePeerlist, joinEntries(s.Entry(false), ref.DNEntry()))
	dropsAs(t, tg, reason.DropTooLongForRecipient, 1)

	// The sender is still connected and relayed.
	s.Privmsg(ng, "still here")
	ng.ExpectLine(wire.TypePrivmsg, s.Nick+"!"+ng.Nick+"!still here")
	if got := s.Sync(ref); len(got) > 0 {
		t.Fatalf("sender received %v", got)
	}
}

// joinEntries is a location peerlist: the sender's entry, then the directory's if known.
func joinEntries(sender, dn string) string {
	if dn == "" {
		return sender
	}
	return sender + "," + dn
}

// TestLongPubmsgNG: a 48 000-byte pubmsg from an ng peer reaches the ng peers only, byte
// for byte; each reference peer is spared it and counted once; the sender stays.
func TestLongPubmsgNG(t *testing.T) {
	tg := directory(t)
	s := tg.Join(t, dirtest.NGMaker)
	ngs := []*dirtest.Client{tg.Join(t, dirtest.NGTaker), tg.Join(t, dirtest.NGMaker)}
	refs := []*dirtest.Client{tg.Join(t, dirtest.RefTaker), tg.Join(t, dirtest.RefMaker)}

	env, token := longLine(t, wire.TypePubmsg, s.Nick, wire.Public, 48000)
	s.SendRaw(env)
	s.Pubmsg("after")
	for _, c := range ngs {
		expectRaw(t, c, relayed(wire.TypePubmsg, token))
		c.ExpectLine(wire.TypePubmsg, s.Nick+"!PUBLIC!after")
	}
	for _, c := range refs {
		c.ExpectLine(wire.TypePubmsg, s.Nick+"!PUBLIC!after")
	}
	dropsAs(t, tg, reason.DropTooLongForRecipient, len(refs))
	if got := s.Sync(ngs[0]); len(got) > 0 {
		t.Fatalf("sender received %v", got)
	}
}

// TestLongLineLimits: the input limits. A reference client that sends a 48 226-byte
// line is cut (line_too_long) as before; an ng client may send 65 536 bytes but is cut
// at 65 537; the limit is raised only after the handshake. Others see the ;D notices.
func TestLongLineLimits(t *testing.T) {
	tg := directory(t)
	w := tg.Join(t, dirtest.NGTaker)
	cuts := 0
	cut := func(c *dirtest.Client, line string) {
		t.Helper()
		c.SendRaw(line)
		if got := c.ExpectClosed(); len(got) > 0 {
			t.Errorf("%s: received %v before the close", c.Nick, got)
		}
		w.ExpectLine(wire.TypePeerlist, c.LeftNotice(w.DNLocation(), w.DNNick()))
		cuts++
		if tg.Srv != nil {
			closedAs(t, tg, reason.CloseLineTooLong, cuts)
		}
	}

	t.Run("reference client, 48 226 bytes", func(t *testing.T) {
		c := tg.Join(t, dirtest.RefMaker)
		env, _ := longLine(t, wire.TypePubmsg, c.Nick, wire.Public, ngTxSize)
		cut(c, env)
	})
	t.Run("reference client with ping only, 48 226 bytes", func(t *testing.T) {
		c := tg.Join(t, dirtest.PeerSpec{Features: map[string]bool{"ping": true}})
		env, _ := longLine(t, wire.TypePubmsg, c.Nick, wire.Public, ngTxSize)
		cut(c, env)
	})
	t.Run("ng client, 65 537 bytes", func(t *testing.T) {
		c := tg.Join(t, dirtest.NGMaker)
		env, _ := longLine(t, wire.TypePubmsg, c.Nick, wire.Public, wire.MaxLineNG+1)
		cut(c, env)
	})
	t.Run("ng client, 65 536 bytes", func(t *testing.T) {
		c := tg.Join(t, dirtest.NGMaker)
		env, token := longLine(t, wire.TypePubmsg, c.Nick, wire.Public, wire.MaxLineNG)
		c.SendRaw(env)
		expectRaw(t, w, relayed(wire.TypePubmsg, token))
		if got := c.Sync(w); len(got) > 0 {
			t.Fatalf("sender received %v", got)
		}
	})
	t.Run("ng handshake line over max_line_length", func(t *testing.T) {
		c := tg.Dial(t)
		hello := dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false,
			map[string]bool{"ping": true, "peerlist_features": true})
		// Padding after the object keeps the envelope valid JSON; the line is long.
		pad := strings.Repeat(" ", wire.MaxLine)
		c.SendRaw(`{"type": 793, "line": ` + string(wire.AppendQuoted(nil, hello)) + pad + "}\r\n")
		if got := c.ExpectClosed(); len(got) > 0 {
			t.Errorf("answered an over-long handshake: %v", got)
		}
	})
}
