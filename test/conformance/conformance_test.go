package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

func TestHandshakeAccepted(t *testing.T) {
	tg := directory(t)
	for name, spec := range map[string]dirtest.PeerSpec{"ref maker": dirtest.RefMaker, "ref taker": dirtest.RefTaker, "ng taker": dirtest.NGTaker} {
		t.Run(name, func(t *testing.T) {
			c := tg.Join(t, spec)
			hs := c.DN
			checks := map[string]any{
				"app-name": "joinmarket", "directory": true, "accepted": true,
				"proto-ver-min": float64(5), "proto-ver-max": float64(5), "network": tg.Network,
			}
			for k, want := range checks {
				if hs[k] != want {
					t.Errorf("795 %s = %v, want %v", k, hs[k], want)
				}
			}
			if !jm.ValidNick(c.DNNick()) {
				t.Errorf("directory nick %q is not a JoinMarket nick", c.DNNick())
			}
			f, ok := hs["features"].(map[string]any)
			if !ok || f["ping"] != true || f["peerlist_features"] != true {
				t.Errorf("features = %v", hs["features"])
			}
			if motd, _ := hs["motd"].(string); !strings.Contains(strings.ToLower(motd), "version") {
				t.Errorf("motd %q has no version line", motd)
			}
			if loc := c.DNLocation(); loc != "" {
				if _, err := jm.ParseLocation(loc, tg.Network == "regtest"); err != nil {
					t.Errorf("location-string %q: %v", loc, err)
				}
			}
		})
	}
}

func TestHandshakeRejected(t *testing.T) {
	tg := directory(t)
	other := "mainnet"
	if tg.Network == "mainnet" {
		other = "signet"
	}
	onion := dirtest.NewOnion(t) + ":5222"
	cases := map[string]string{
		"wrong network": dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, other, 5, false, nil),
		"wrong version": dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 4, false, nil),
		"directory":     dirtest.HelloLine(dirtest.NewNick(t), onion, tg.Network, 5, true, nil),
		"bad nick":      dirtest.HelloLine("J5notbase58!!!!!", wire.NotServing, tg.Network, 5, false, nil),
		"short nick":    dirtest.HelloLine("J5abc", wire.NotServing, tg.Network, 5, false, nil),
		"bad location":  dirtest.HelloLine(dirtest.NewNick(t), "nowhere", tg.Network, 5, false, nil),
		"wrong app": strings.Replace(dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false, nil),
			`"joinmarket"`, `"bitcoinmarket"`, 1),
		"not json": "hello",
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			c := tg.Dial(t)
			c.Send(wire.TypeHandshake, line)
			hs := c.RecvDN()
			if hs["accepted"] != false {
				t.Fatalf("accepted = %v", hs["accepted"])
			}
			if motd, _ := hs["motd"].(string); !strings.HasPrefix(motd, "Rejected: ") {
				t.Errorf("motd %q does not give the reason", motd)
			}
			if extra := c.ExpectClosed(); len(extra) > 0 {
				t.Errorf("lines after rejection: %v", extra)
			}
		})
	}
}

func TestBeforeHandshake(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	cases := map[string]string{
		"pubmsg first":   `{"type": 687, "line": "J5a!PUBLIC!orderbook"}` + "\r\n",
		"not json":       "GET / HTTP/1.0\r\n",
		"empty line":     "\r\n",
		"type as string": `{"type": "793", "line": "{}"}` + "\r\n",
		"silence":        "",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c := tg.Dial(t)
			if raw != "" {
				c.SendRaw(raw)
			}
			if got := c.ExpectClosed(); len(got) > 0 {
				t.Fatalf("directory answered %v", got)
			}
		})
	}
}

// TestPubmsgFanout: a pubmsg reaches every other peer byte for byte, and not its sender.
func TestPubmsgFanout(t *testing.T) {
	tg := directory(t)
	m1, m2, tk := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.NGMaker), tg.Join(t, dirtest.RefTaker)
	offer := "sw0reloffer 0 27300 1000000000 0 0.0002"
	m1.Pubmsg(offer)
	// Unknown commands pass too: the directory never whitelists.
	m1.Pubmsg("futurecmd <with> & \"quotes\" é")
	for _, c := range []*dirtest.Client{m2, tk} {
		c.ExpectLine(wire.TypePubmsg, m1.Nick+"!PUBLIC!"+offer)
		c.ExpectLine(wire.TypePubmsg, m1.Nick+"!PUBLIC!futurecmd <with> & \"quotes\" é")
	}
	if echo := m1.Sync(tk); len(echo) > 0 {
		t.Fatalf("sender received its own pubmsg: %v", echo)
	}
}

// TestSpoofedSender: a pubmsg or privmsg whose "from" is not the connection's nick is
// dropped; repeated spoofing closes the connection.
func TestSpoofedSender(t *testing.T) {
	tg := directory(t)
	a, b, w := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.RefTaker), tg.Join(t, dirtest.RefTaker)
	a.Send(wire.TypePubmsg, b.Nick+"!PUBLIC!sw0reloffer 0 1 2 0 0.1")
	if got := w.Sync(b); len(got) > 0 {
		t.Fatalf("spoofed pubmsg relayed: %v", got)
	}
	a.Send(wire.TypePrivmsg, b.Nick+"!"+w.Nick+"!fill 0 1 pub sig")
	a.Send(wire.TypePrivmsg, b.Nick+"!"+w.Nick+"!fill 0 1 pub sig")
	a.ExpectClosed()
	w.ExpectLine(wire.TypePeerlist, a.LeftNotice(w.DNLocation(), w.DNNick()))
}

// TestPrivmsgLocationPeerlist: a privmsg is forwarded byte for byte and followed by the
// sender's location, with ";F:" only for recipients that advertised peerlist_features.
func TestPrivmsgLocationPeerlist(t *testing.T) {
	tg := directory(t)
	refM, ngM := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.NGMaker)
	refT, ngT := tg.Join(t, dirtest.RefTaker), tg.Join(t, dirtest.NGTaker)
	body := "sw0reloffer 0 27300 4000000 0 0.00002 032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w=="
	cases := []struct {
		name     string
		from, to *dirtest.Client
	}{
		{"ref maker to ref taker", refM, refT},
		{"ng maker to ref taker", ngM, refT},
		{"ng maker to ng taker", ngM, ngT},
		{"ref maker to ng taker", refM, ngT},
		{"ref taker to ref maker", refT, refM},
		{"ng taker to ng maker", ngT, ngM},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.from.Privmsg(c.to, body)
			c.to.ExpectLine(wire.TypePrivmsg, c.from.Nick+"!"+c.to.Nick+"!"+body)
			var entries []string
			if c.from.Location != wire.NotServing {
				entries = append(entries, c.from.Entry(c.to.Features["peerlist_features"]))
			}
			if e := c.to.DNEntry(); e != "" {
				entries = append(entries, e)
			}
			if len(entries) == 0 {
				return
			}
			c.to.ExpectLine(wire.TypePeerlist, strings.Join(entries, ","))
		})
	}
	// A privmsg to an unknown nick or to the directory goes nowhere and costs nothing.
	refT.Send(wire.TypePrivmsg, refT.Nick+"!"+dirtest.NewNick(t)+"!fill 1 2 3")
	refM.Send(wire.TypePrivmsg, refM.Nick+"!"+refM.DNNick()+"!sw0reloffer 0 1 2 0 0.1 pub sig")
	if got := refM.Sync(ngT); len(got) > 0 {
		t.Fatalf("unexpected lines %v", got)
	}
}

// TestGetPeerlist: makers only, ";F:" for capable requesters, chunked under 40 000 bytes,
// always at least one reply.
func TestGetPeerlist(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.GetPeerlistPerMinute = 2; c.RateLimitDisconnectThreshold = 0 })
	req := tg.Join(t, dirtest.NGTaker)
	plain := tg.Join(t, dirtest.RefTaker)

	// Only takers: the reply holds at most the directory's own entry.
	req.Send(wire.TypeGetPeerlist, "")
	if got := req.Expect(wire.TypePeerlist).Line; got != req.DNEntry() {
		t.Fatalf("peerlist with no makers = %q, want %q", got, req.DNEntry())
	}

	const makers = 420 // ~105 bytes per entry with features: more than one 40 000-byte line
	want := map[string]bool{}
	var ms []*dirtest.Client
	for i := 0; i < makers; i++ {
		m := tg.Join(t, dirtest.NGMaker)
		ms = append(ms, m)
		want[m.Entry(true)] = true
	}
	req.Send(wire.TypeGetPeerlist, "")
	lines := 0
	seen := map[string]bool{}
	for len(seen) < makers+1 {
		env := req.Expect(wire.TypePeerlist)
		lines++
		for _, e := range strings.Split(env.Line, ",") {
			if seen[e] {
				t.Fatalf("entry listed twice: %s", e)
			}
			seen[e] = true
			if e != req.DNEntry() && !want[e] {
				t.Fatalf("unexpected entry %q (takers must not be listed)", e)
			}
		}
	}
	if lines < 2 {
		t.Fatalf("%d makers fit in %d line(s): chunking not exercised", makers, lines)
	}
	// A requester without peerlist_features gets plain entries.
	plain.Send(wire.TypeGetPeerlist, "")
	env := plain.Expect(wire.TypePeerlist)
	if strings.Contains(env.Line, ";F:") {
		t.Fatalf("F: sent to a requester without peerlist_features: %.200s", env.Line)
	}
	plain.Sync(ms[0]) // the other chunks
	// Over the per-connection cap, requests are dropped.
	req.Send(wire.TypeGetPeerlist, "")
	req.Send(wire.TypeGetPeerlist, "")
	if got := req.Sync(ms[1]); len(got) != 0 {
		t.Fatalf("getpeerlist over the cap answered: %d lines", len(got))
	}
}

// TestDisconnectNotices: everyone hears ";D" when a maker or a taker leaves.
func TestDisconnectNotices(t *testing.T) {
	tg := directory(t)
	m, tk, w := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.RefTaker), tg.Join(t, dirtest.NGTaker)
	m.Conn.Close()
	w.ExpectLine(wire.TypePeerlist, m.LeftNotice(w.DNLocation(), w.DNNick()))
	tk.ExpectLine(wire.TypePeerlist, m.LeftNotice(tk.DNLocation(), tk.DNNick()))
	tk.Conn.Close()
	w.ExpectLine(wire.TypePeerlist, tk.LeftNotice(w.DNLocation(), w.DNNick()))
}

// TestDuplicateNick: a live owner keeps its nick; a dead one is replaced promptly.
func TestDuplicateNick(t *testing.T) {
	fresh := func(t *testing.T) *dirtest.Target {
		return tuned(t, func(c *config.Config) { c.NickCheckTimeout = 500 * time.Millisecond })
	}
	// Live owners answer at once, so these also run against an external directory.
	live := func(t *testing.T) *dirtest.Target {
		if tg, ok := dirtest.ExternalTarget(); ok {
			return tg
		}
		return fresh(t)
	}
	t.Run("live ping owner keeps nick", func(t *testing.T) {
		tg := live(t)
		owner := tg.Join(t, dirtest.NGMaker)
		done := make(chan struct{})
		go func() { // answer the directory's ping
			defer close(done)
			if raw, err := owner.Reader.ReadString('\n'); err == nil && strings.HasPrefix(raw, `{"type":798,`) {
				_, _ = owner.Conn.Write([]byte(`{"type": 799, "line": ""}` + "\r\n"))
			}
		}()
		dup := tg.Dial(t)
		dup.Send(wire.TypeHandshake, dirtest.HelloLine(owner.Nick, owner.Location, tg.Network, 5, false, owner.Features))
		<-done
		if hs := dup.RecvDN(); hs["accepted"] != false || !strings.Contains(fmt.Sprint(hs["motd"]), "duplicate") {
			t.Fatalf("duplicate accepted: %v", hs)
		}
		dup.ExpectClosed()
		w := tg.Join(t, dirtest.RefTaker)
		w.Pubmsg("orderbook")
		owner.ExpectLine(wire.TypePubmsg, w.Nick+"!PUBLIC!orderbook")
	})
	t.Run("live legacy maker answers the probe", func(t *testing.T) {
		tg := live(t)
		owner := tg.Join(t, dirtest.RefMaker)
		done := make(chan struct{})
		go func() { // a reference maker answers !orderbook with its offers by privmsg
			defer close(done)
			raw, err := owner.Reader.ReadString('\n')
			env, derr := wire.Decode([]byte(strings.TrimSuffix(raw, "\r\n")))
			if err == nil && derr == nil && env.Type == wire.TypePubmsg && strings.HasSuffix(env.Line, "!PUBLIC!orderbook") {
				from, _, _, _ := wire.SplitJM(env.Line)
				line := fmt.Sprintf(`{"type": 685, "line": "%s!%s!sw0reloffer 0 1 2 0 0.1 pub sig"}`+"\r\n", owner.Nick, from)
				_, _ = owner.Conn.Write([]byte(line))
			}
		}()
		dup := tg.Dial(t)
		dup.Send(wire.TypeHandshake, dirtest.HelloLine(owner.Nick, owner.Location, tg.Network, 5, false, nil))
		<-done
		if hs := dup.RecvDN(); hs["accepted"] != false {
			t.Fatalf("duplicate accepted: %v", hs)
		}
	})
	for name, spec := range map[string]dirtest.PeerSpec{"dead ping owner": dirtest.NGTaker, "dead legacy maker": dirtest.RefMaker} {
		t.Run(name, func(t *testing.T) {
			tg := fresh(t)
			witness := tg.Join(t, dirtest.RefTaker)
			owner := tg.Join(t, spec) // never reads nor answers again
			start := time.Now()
			s := spec
			s.Nick, s.Location = owner.Nick, owner.Location
			again := tg.Join(t, s)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("reclaim took %v", d)
			}
			witness.ExpectLine(wire.TypePeerlist, owner.LeftNotice(witness.DNLocation(), witness.DNNick()))
			owner.ExpectClosed()
			again.Pubmsg("orderbook")
			witness.ExpectLine(wire.TypePubmsg, again.Nick+"!PUBLIC!orderbook")
		})
	}
	t.Run("legacy taker owner with open stream keeps nick", func(t *testing.T) {
		tg := fresh(t)
		owner := tg.Join(t, dirtest.RefTaker)
		dup := tg.Dial(t)
		dup.Send(wire.TypeHandshake, dirtest.HelloLine(owner.Nick, owner.Location, tg.Network, 5, false, nil))
		if hs := dup.RecvDN(); hs["accepted"] != false {
			t.Fatalf("duplicate accepted: %v", hs)
		}
		w := tg.Join(t, dirtest.RefMaker)
		w.Pubmsg("sw0reloffer 0 1 2 0 0.1")
		// The owner received the probe (harmless for a taker), then the offer.
		for {
			env := owner.Recv()
			if env.Type == wire.TypePubmsg && strings.HasPrefix(env.Line, w.Nick) {
				break
			}
		}
	})
}

// TestHeartbeat: ping-capable peers get 798 and are cut if they do not answer; legacy
// makers get the orderbook probe; legacy takers are never evicted for being idle.
func TestHeartbeat(t *testing.T) {
	tg := tuned(t, func(c *config.Config) {
		c.HeartbeatSweepInterval = 100 * time.Millisecond
		c.HeartbeatIdleThreshold = 300 * time.Millisecond
		c.HeartbeatPongWait = 300 * time.Millisecond
		c.HeartbeatHardEvict = 900 * time.Millisecond
	})
	witness := tg.Join(t, dirtest.RefTaker)
	answers := tg.Join(t, dirtest.NGTaker)
	silent := tg.Join(t, dirtest.NGMaker)
	legacy := tg.Join(t, dirtest.RefMaker)
	idleTaker := tg.Join(t, dirtest.RefTaker)

	// The answering peer is pinged repeatedly and stays (departure notices may interleave).
	pings := make(chan int, 100)
	go func() { // plain I/O: t.Fatal is not allowed off the test goroutine
		n := 0
		for {
			raw, err := answers.Reader.ReadString('\n')
			if err != nil {
				close(pings)
				return
			}
			if strings.HasPrefix(raw, `{"type":798,`) {
				n++
				pings <- n
				if _, err := answers.Conn.Write([]byte(`{"type": 799, "line": ""}` + "\r\n")); err != nil {
					close(pings)
					return
				}
			}
		}
	}()
	for i := 1; i <= 3; i++ {
		if n, ok := <-pings; !ok || n != i {
			t.Fatalf("answering peer: ping %d missing (connection closed: %v)", i, !ok)
		}
	}
	// The silent one is pinged and cut.
	silent.ExpectLine(wire.TypePing, "")
	silent.ExpectClosed()
	// The legacy maker is probed with <dn>!PUBLIC!orderbook and, silent, evicted at hard-evict.
	legacy.ExpectLine(wire.TypePubmsg, legacy.DNNick()+"!PUBLIC!orderbook")
	legacy.ExpectClosed()
	// Meanwhile the idle legacy taker heard only the departures, never a probe.
	got := map[string]bool{}
	for len(got) < 2 {
		env := idleTaker.Expect(wire.TypePeerlist)
		got[env.Line] = true
	}
	if !got[silent.LeftNotice(idleTaker.DNLocation(), idleTaker.DNNick())] || !got[legacy.LeftNotice(idleTaker.DNLocation(), idleTaker.DNNick())] {
		t.Fatalf("departure notices: %v", got)
	}
	idleTaker.ExpectQuiet(1200 * time.Millisecond) // well past hard-evict
	idleTaker.Pubmsg("orderbook")
	for {
		env := witness.Recv()
		if env.Type == wire.TypePubmsg {
			if env.Line != idleTaker.Nick+"!PUBLIC!orderbook" {
				t.Fatalf("witness got %q", env.Line)
			}
			break
		}
	}
}

// TestRateLimit: over the token bucket, lines are dropped and counted; past the
// violation threshold the sender is cut; others are unaffected.
func TestRateLimit(t *testing.T) {
	tg := tuned(t, func(c *config.Config) {
		c.MessageRateLimit = 1
		c.MessageBurstLimit = 5
		c.RateLimitDisconnectThreshold = 10
	})
	flood, rx := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.RefTaker)
	for i := 0; i < 40; i++ { // the directory may cut us before the last write
		_, _ = fmt.Fprintf(flood.Conn, `{"type": 687, "line": "%s!PUBLIC!cancel %d"}`+"\r\n", flood.Nick, i)
	}
	flood.ExpectClosed()
	n := 0
	for {
		env := rx.Recv()
		if env.Type == wire.TypePeerlist {
			if env.Line != flood.LeftNotice(rx.DNLocation(), rx.DNNick()) {
				t.Fatalf("unexpected peerlist %q", env.Line)
			}
			break
		}
		n++
	}
	if n < 5 || n > 7 {
		t.Fatalf("relayed %d of 40 lines with burst 5 at 1/s", n)
	}
	if got := tg.Srv.Counters().RateViolate.Load(); got < 10 {
		t.Fatalf("violations counted: %d", got)
	}
}

// TestOrderbookCap: !orderbook requests beyond the per-connection cap are dropped.
func TestOrderbookCap(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.OrderbookPerMinute = 2 })
	tk, m := tg.Join(t, dirtest.RefTaker), tg.Join(t, dirtest.RefMaker)
	for i := 0; i < 4; i++ {
		tk.Pubmsg("orderbook")
	}
	got := m.Sync(tk)
	if len(got) != 2 {
		t.Fatalf("%d orderbook requests relayed, want 2", len(got))
	}
}

func TestMaxPeers(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.MaxPeers = 2 })
	a := tg.Join(t, dirtest.RefMaker)
	tg.Join(t, dirtest.RefTaker)
	c := tg.Dial(t)
	c.Send(wire.TypeHandshake, dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false, nil))
	hs := c.RecvDN()
	if hs["accepted"] != false || !strings.Contains(fmt.Sprint(hs["motd"]), "capacity") {
		t.Fatalf("over capacity: %v", hs)
	}
	c.ExpectClosed()
	a.Conn.Close()
	// A slot is free again once a peer leaves: as soon as the directory has seen a go.
	testkit.EventuallyWithin(t, dirtest.Timeout, "the directory unregistering the peer that left", func() bool {
		return tg.Srv.Status(false).Peers == 1
	})
	d := tg.Dial(t)
	d.Send(wire.TypeHandshake, dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false, nil))
	if hs := d.RecvDN(); hs["accepted"] != true {
		t.Fatalf("refused with a slot free: %v", hs)
	}
}

func TestPendingHandshakeCap(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.MaxPendingHandshakes = 2 })
	a := tg.Dial(t) // handshaking: half a line each, then silence
	a.SendRaw("{")
	testkit.EventuallyWithin(t, dirtest.Timeout, "the first pending handshake", func() bool {
		return tg.Srv.Status(false).Pending == 1
	})
	b := tg.Dial(t)
	b.SendRaw("{")
	testkit.EventuallyWithin(t, dirtest.Timeout, "two pending handshakes, both heard", func() bool {
		st := tg.Srv.Status(false)
		return st.Pending == 2 && st.Silent == 0
	})
	// The pool is full of connections that have sent something: a newcomer takes the
	// oldest one's place, and is accepted.
	c := tg.Dial(t)
	c.SendRaw(`{"type": 793, "line": ` + string(wire.AppendQuoted(nil, dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false, nil))) + "}\r\n")
	if env, err := c.Next(dirtest.Timeout); err != nil || env.Type != wire.TypeDNHandshake || !strings.Contains(env.Line, `"accepted":true`) {
		t.Fatalf("newcomer to a full pool: got %d %q, %v; want an accepted 795", env.Type, env.Line, err)
	}
	a.ExpectClosed()
	closedAs(t, tg, reason.ClosePendingCap, 1)
	finishHandshake(t, tg, b) // b was left alone
}

// closedAs waits until the server has counted n closes as why (a client sees its
// connection closed a moment before the server counts it).
func closedAs(t *testing.T, tg *dirtest.Target, why reason.Close, n int) {
	t.Helper()
	testkit.EventuallyWithin(t, dirtest.Timeout, fmt.Sprintf("%d closes counted as %s", n, why), func() bool {
		return tg.Srv.Counters().CloseCounts()[why.String()] == uint64(n)
	})
}

// finishHandshake sends the rest of a handshake whose first byte, "{", c already sent,
// and checks that it is accepted: the connection was kept open meanwhile.
func finishHandshake(t *testing.T, tg *dirtest.Target, c *dirtest.Client) {
	t.Helper()
	c.SendRaw(`"type": 793, "line": ` + string(wire.AppendQuoted(nil, dirtest.HelloLine(dirtest.NewNick(t), wire.NotServing, tg.Network, 5, false, nil))) + "}\r\n")
	if env, err := c.Next(dirtest.Timeout); err != nil || env.Type != wire.TypeDNHandshake || !strings.Contains(env.Line, `"accepted":true`) {
		t.Fatalf("finishing a started handshake: got %d %q, %v; want an accepted 795", env.Type, env.Line, err)
	}
}

// TestSilentConnectionsEvictedFirst: when the handshake pool is full, the oldest silent
// connection makes room, not one that has started its handshake; a silent flood cannot
// keep an honest client out.
func TestSilentConnectionsEvictedFirst(t *testing.T) {
	tg := tuned(t, func(c *config.Config) { c.MaxPendingHandshakes = 3 })
	talker := tg.Dial(t)
	talker.SendRaw("{")
	testkit.EventuallyWithin(t, dirtest.Timeout, "the talker pending and heard", func() bool {
		st := tg.Srv.Status(false)
		return st.Pending == 1 && st.Silent == 0
	})
	silent1 := tg.Dial(t)
	testkit.EventuallyWithin(t, dirtest.Timeout, "two pending", func() bool { return tg.Srv.Status(false).Pending == 2 })
	silent2 := tg.Dial(t)
	testkit.EventuallyWithin(t, dirtest.Timeout, "three pending", func() bool { return tg.Srv.Status(false).Pending == 3 })
	silent := []*dirtest.Client{silent1, silent2}
	for i := range 3 {
		tg.Join(t, dirtest.RefTaker) // the pool is full: the oldest silent connection makes room
		silent[i].ExpectClosed()
		closedAs(t, tg, reason.ClosePendingEvicted, i+1)
		silent = append(silent, tg.Dial(t)) // fill the pool again
		testkit.EventuallyWithin(t, dirtest.Timeout, "three pending", func() bool { return tg.Srv.Status(false).Pending == 3 })
	}
	if n := tg.Srv.Counters().CloseCounts()[reason.ClosePendingCap.String()]; n != 0 {
		t.Errorf("%d connections that had spoken were evicted while silent ones were there", n)
	}
	finishHandshake(t, tg, talker)
}

// TestFirstByteDeadline: a connection that sends nothing is closed after
// first_byte_timeout as silent_connection, while one that has started its handshake
// keeps the whole handshake_timeout.
func TestFirstByteDeadline(t *testing.T) {
	tg := tuned(t, func(c *config.Config) {
		c.FirstByteTimeout = 200 * time.Millisecond
		c.HandshakeTimeout = time.Minute
	})
	talker := tg.Dial(t)
	talker.SendRaw("{")
	testkit.EventuallyWithin(t, dirtest.Timeout, "the talker heard", func() bool {
		st := tg.Srv.Status(false)
		return st.Pending == 1 && st.Silent == 0
	})
	silent := tg.Dial(t)
	silent.ExpectClosed()
	closedAs(t, tg, reason.CloseSilent, 1)
	if n := tg.Srv.Counters().CloseCounts()[reason.CloseHandshakeTimeout.String()]; n != 0 {
		t.Fatalf("%d closes as %s, want none", n, reason.CloseHandshakeTimeout)
	}
	finishHandshake(t, tg, talker)
}

// TestBadLinesAfterHandshake: every kind of malformed input closes that connection, and
// the others are told it left.
func TestBadLinesAfterHandshake(t *testing.T) {
	tg := directory(t)
	w := tg.Join(t, dirtest.RefTaker)
	cases := map[string]string{
		"oversize":         `{"type": 687, "line": "` + strings.Repeat("x", wire.MaxLine) + `"}` + "\r\n",
		"endless":          strings.Repeat("y", wire.MaxLine+10),
		"not json":         "hello\r\n",
		"empty line":       "\r\n",
		"type string":      `{"type": "687", "line": "a!PUBLIC!b"}` + "\r\n",
		"type float":       `{"type": 687.0, "line": "a!PUBLIC!b"}` + "\r\n",
		"line not string":  `{"type": 687, "line": 5}` + "\r\n",
		"lone surrogate":   `{"type": 687, "line": "\ud800"}` + "\r\n",
		"deep nesting":     `{"type": 687, "line": "", "x": ` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + "}\r\n",
		"peer disconnect":  `{"type": 801, "line": ""}` + "\r\n",
		"invalid utf8":     "{\"type\": 687, \"line\": \"\xff\"}\r\n",
		"missing line key": `{"type": 687}` + "\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c := tg.Join(t, dirtest.RefMaker)
			c.SendRaw(raw)
			c.ExpectClosed()
			w.ExpectLine(wire.TypePeerlist, c.LeftNotice(w.DNLocation(), w.DNNick()))
		})
	}
	// A line of exactly 40 000 bytes is fine and relayed intact.
	a := tg.Join(t, dirtest.RefMaker)
	prefix := a.Nick + "!PUBLIC!x "
	body := strings.Repeat("z", wire.MaxLine-len(`{"type": 687, "line": ""}`)-len(prefix))
	a.SendRaw(`{"type": 687, "line": "` + prefix + body + `"}` + "\r\n")
	w.ExpectLine(wire.TypePubmsg, prefix+body)
}

// TestIgnoredTypes: types the directory does not act on are ignored, never echoed.
func TestIgnoredTypes(t *testing.T) {
	tg := directory(t)
	c, w := tg.Join(t, dirtest.NGTaker), tg.Join(t, dirtest.RefMaker)
	for _, typ := range []int{785, 787, 797, 798, 999, wire.TypeHandshake, wire.TypeDNHandshake, wire.TypePeerlist} {
		c.Send(typ, "hello")
	}
	c.Send(wire.TypePubmsg, "no separator")
	c.Send(wire.TypePubmsg, c.Nick+"!NOTPUBLIC!x")
	if got := c.Sync(w); len(got) > 0 {
		t.Fatalf("answered ignored types: %v", got)
	}
	if got := w.Sync(c); len(got) > 0 {
		t.Fatalf("relayed malformed text: %v", got)
	}
}

// TestSlowConsumerIsolation: a peer that stops reading is cut with a ;D notice and delays
// nobody else.
func TestSlowConsumerIsolation(t *testing.T) {
	tg := tuned(t, func(c *config.Config) {
		// Room for the whole burst (a slow test reader must not count as slow); the peer
		// that stops reading is cut by the write deadline.
		c.OutboundQueueBytes = 1 << 20
		c.WriteTimeout = time.Second
		c.MessageRateLimit = 1e6
		c.MessageBurstLimit = 1e6
		c.MessageByteRate = 1e9
		c.MessageByteBurst = 1 << 30
	})
	pub := tg.Join(t, dirtest.RefMaker)
	fast := tg.Join(t, dirtest.RefTaker)
	slow := tg.JoinWith(t, dirtest.SmallRcvBuf, dirtest.RefTaker) // never reads again
	// More than the kernel can buffer for the stalled socket (tcp_wmem max is 4 MiB by default).
	const n = 20000
	body := strings.Repeat("o", 300)
	// The publisher sends in chunks and waits until the fast reader has them all, so the
	// fast reader (slowed by the race detector) never falls far behind; the stalled one
	// falls behind by everything.
	const chunk = 500
	progress := make(chan int, n/chunk+1)
	go func() { // plain writes: t.Fatal is not allowed off the test goroutine
		for i := 0; i < n; i++ {
			if i > 0 && i%chunk == 0 {
				if _, ok := <-progress; !ok {
					return
				}
			}
			line := fmt.Sprintf(`{"type": 687, "line": "%s!PUBLIC!sw0reloffer %d %s"}`+"\r\n", pub.Nick, i, body)
			if _, err := pub.Conn.Write([]byte(line)); err != nil {
				return
			}
		}
	}()
	defer close(progress)
	slowGone := slow.LeftNotice(fast.DNLocation(), fast.DNNick())
	got, sawSlowCut := 0, false
	for got < n || !sawSlowCut {
		env, err := fast.Next(dirtest.Timeout)
		if err != nil {
			t.Fatalf("fast reader: %v after %d lines (slow cut: %v; closes %v; drops %v)", err, got, sawSlowCut,
				tg.Srv.Counters().CloseCounts(), tg.Srv.Counters().DropCounts())
		}
		switch {
		case env.Type == wire.TypePeerlist && env.Line == slowGone:
			sawSlowCut = true
		case env.Type == wire.TypePubmsg:
			want := fmt.Sprintf("%s!PUBLIC!sw0reloffer %d %s", pub.Nick, got, body)
			if env.Line != want {
				t.Fatalf("line %d out of order or altered: %.60s", got, env.Line)
			}
			got++
			if got%chunk == 0 {
				progress <- got
			}
		default:
			t.Fatalf("unexpected %d %q", env.Type, env.Line)
		}
	}
	// Usually the write deadline cuts it; a queue that fills first is the same verdict.
	ctr := tg.Srv.Counters()
	if r := ctr.Closes(reason.CloseWriteTimeout) + ctr.Closes(reason.CloseQueueFull); r != 1 {
		t.Fatalf("slow-consumer closes (write_timeout + queue_full) = %d", r)
	}
}
