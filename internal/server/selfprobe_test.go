package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/probe"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestSelfProbeIsNoPeer: the self-probe's handshake is answered and its GETPEERLIST
// served, but it is never registered: the peer counts do not move, no one hears of it
// (no ";D" when it goes), it is counted as a self_probe close and not an early one, and
// its nick is expected once only.
func TestSelfProbeIsNoPeer(t *testing.T) {
	d := dirtest.Start(t, nil, nil)
	tg := d.Target()
	maker := tg.Join(t, dirtest.RefMaker)
	watcher := tg.Join(t, dirtest.RefTaker)

	nick := probe.NewNick()
	seen, done := d.Srv.ExpectSelfProbe(nick)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	res, err := probe.Probe(ctx, d.Addr, probe.Options{Network: d.Network, Nick: nick, Quiet: 200 * time.Millisecond})
	if err != nil || !res.Accepted || res.Makers != 1 || res.Nick != d.Srv.Nick() {
		t.Fatalf("self-probe: %+v %v", res, err)
	}
	if !seen() {
		t.Fatal("the server did not see the self-probe's handshake")
	}
	testkit.Eventually(t, "the self-probe's close counted", func() bool {
		return d.Srv.Status(false).Closes["self_probe"] == 1
	})
	st := d.Srv.Status(false)
	if st.Peers != 2 || st.Takers != 1 || st.Closes["client_closed"] != 0 {
		t.Fatalf("peers %d takers %d closes %v: the self-probe was counted as a peer", st.Peers, st.Takers, st.Closes)
	}
	// Everything sent to the watcher before now arrives before the marker: no departure
	// notice, nothing naming the probe.
	for _, env := range watcher.Sync(maker) {
		if strings.Contains(env.Line, nick) || (env.Type == wire.TypePeerlist && strings.Contains(env.Line, ";D")) {
			t.Fatalf("the watcher heard of the self-probe: %d %q", env.Type, env.Line)
		}
	}

	// While its connection is open after the 795 it is not handshaking either.
	nick2 := probe.NewNick()
	_, done2 := d.Srv.ExpectSelfProbe(nick2)
	defer done2()
	raw := tg.Dial(t)
	raw.Send(wire.TypeHandshake, dirtest.HelloLine(nick2, wire.NotServing, d.Network, 5, false, nil))
	if hs := raw.RecvDN(); hs["accepted"] != true {
		t.Fatalf("self-probe handshake: %v", hs)
	}
	if st := d.Srv.Status(false); st.Pending != 0 || st.Peers != 2 {
		t.Fatalf("with the self-probe's connection open: pending %d, peers %d", st.Pending, st.Peers)
	}
	raw.Conn.Close()
	testkit.Eventually(t, "the second self-probe's close counted", func() bool {
		return d.Srv.Status(false).Closes["self_probe"] == 2
	})

	// The nick is good for one connection: a second one with it is an ordinary taker.
	again := tg.Join(t, dirtest.PeerSpec{Nick: nick})
	testkit.Eventually(t, "the second connection registered", func() bool { return d.Srv.Status(false).Takers == 2 })
	again.Conn.Close()
	testkit.Eventually(t, "it left", func() bool { return d.Srv.Status(false).Takers == 1 })
	if got := d.Srv.Status(false).Closes["self_probe"]; got != 2 {
		t.Fatalf("self_probe closes %d after an ordinary taker with the nick", got)
	}
}
