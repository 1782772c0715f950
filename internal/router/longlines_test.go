package router_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Long lines between joinmarket-ng peers: a line over wire.MaxLine (40 000) goes to the
// recipients that speak long lines (ping and peerlist_features, peer.SpeaksLongLines)
// and is withheld from every other one, counted per recipient as
// reason.DropTooLongForRecipient; the sender stays.

// ngFeatures is what a joinmarket-ng client announces.
var ngFeatures = []string{"peerlist_features", "ping"}

// sharedPeer is a registered peer whose drops are counted in the harness's counters, as
// a server's peers all count in the server's (peertest gives every peer counters of its
// own), and the far end of its connection.
type sharedPeer struct {
	P     *peer.Peer
	cli   net.Conn
	lines chan string // every line received, CRLF included; closed at EOF
}

// addShared registers a peer counting in h.Ctr and consumes its welcome. The test
// closes it (close) before its bubble ends.
func addShared(t *testing.T, h *peertest.Harness, id uint64, nick, location string, feats ...string) *sharedPeer {
	t.Helper()
	srv, cli := net.Pipe()
	p := peer.New(id, srv, peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second}, h.Ctr, slog.New(slog.DiscardHandler))
	p.SetHello(handshake.Hello{Nick: nick, Location: peertest.MustLocation(t, location), Features: peertest.Features(feats...)})
	sp := &sharedPeer{P: p, cli: cli, lines: make(chan string, 64)}
	go func() {
		defer close(sp.lines)
		br := bufio.NewReaderSize(cli, 128<<10)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			sp.lines <- l
		}
	}()
	if res, _ := h.Reg.Register(p, []byte(peertest.Welcome)); res != registry.Registered {
		t.Fatalf("Register(%s) = %v", nick, res)
	}
	if got := <-sp.lines; got != peertest.Welcome {
		t.Fatalf("%s: first line %q, want the welcome", nick, got)
	}
	return sp
}

// close shuts the connection and waits for its reader.
func (sp *sharedPeer) close() {
	sp.P.Close(reason.CloseShutdown)
	_ = sp.cli.Close()
	for range sp.lines {
	}
}

// recv returns every line received so far, once the bubble is idle.
func (sp *sharedPeer) recv(t *testing.T) []string {
	t.Helper()
	var out []string
	synctest.Wait()
	for {
		select {
		case l, ok := <-sp.lines:
			if !ok {
				return out
			}
			out = append(out, l)
		default:
			return out
		}
	}
}

// TestPubmsgLongLines: a pubmsg from a joinmarket-ng peer reaches every other peer up to
// 40 000 bytes; from 40 001 to 65 536 bytes only the peers that speak long lines, each
// other recipient counting one line_too_long_for_recipient; over 65 536 nobody (counted
// once, too_long_to_send). The sender is never cut.
func TestPubmsgLongLines(t *testing.T) {
	cases := []struct {
		content int
		toRef   bool // reference recipients get it
		toNG    bool // ng recipients get it
	}{
		{wire.MaxLine, true, true},
		{wire.MaxLine + 1, false, true},
		{48000, false, true},
		{wire.MaxLineNG, false, true},
		{wire.MaxLineNG + 1, false, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.content), func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				sender := addShared(t, h, 101, peertest.NickMaker, peertest.MakerLoc, ngFeatures...)
				ngTaker := addShared(t, h, 102, peertest.NickTaker, peertest.NotServing, ngFeatures...)
				ngMaker := addShared(t, h, 103, "J5ngMaker0000002", peertest.OnionA+":5224", append(ngFeatures, "neutrino_compat")...)
				refTaker := addShared(t, h, 104, peertest.NickOther, peertest.NotServing)
				refMaker := addShared(t, h, 105, "J5refMaker000001", peertest.OnionA+":5223")
				pingOnly := addShared(t, h, 106, "J5pingOnly000001", peertest.NotServing, "ping")
				all := []*sharedPeer{sender, ngTaker, ngMaker, refTaker, refMaker, pingOnly}
				defer func() {
					for _, sp := range all {
						sp.close()
					}
				}()
				ngs, refs := []*sharedPeer{ngTaker, ngMaker}, []*sharedPeer{refTaker, refMaker, pingOnly}

				raw := rawOfContent(peertest.NickMaker+"!PUBLIC!", tc.content)
				want := relay(wire.TypePubmsg, raw)
				if len(want) != tc.content+2 {
					t.Fatalf("test bug: relay is %d bytes, want %d", len(want), tc.content+2)
				}
				n := h.Rt.Pubmsg(sender.P, []byte(raw))

				wantN, withheld, oversize := 0, 0, 0
				for _, rc := range []struct {
					peers []*sharedPeer
					gets  bool
				}{{ngs, tc.toNG}, {refs, tc.toRef}} {
					var wantLines []string
					if rc.gets {
						wantLines = []string{want}
						wantN += len(rc.peers)
					} else if tc.toNG {
						withheld += len(rc.peers)
					}
					for _, sp := range rc.peers {
						peertest.EqualLines(t, sp.P.Nick, sp.recv(t), wantLines)
					}
				}
				if !tc.toNG {
					oversize = 1
				}
				peertest.EqualLines(t, "sender", sender.recv(t), nil)
				if n != wantN {
					t.Errorf("Pubmsg returned %d, want %d", n, wantN)
				}
				if got := h.Ctr.Drops(reason.DropTooLongForRecipient); got != uint64(withheld) {
					t.Errorf("%s = %d, want %d (one per reference recipient)", reason.DropTooLongForRecipient, got, withheld)
				}
				if got := h.Ctr.Drops(reason.DropOversizeOut); got != uint64(oversize) {
					t.Errorf("%s = %d, want %d", reason.DropOversizeOut, got, oversize)
				}
				if got := h.Ctr.Out[stats.MsgPubmsg].Load(); got != uint64(wantN) {
					t.Errorf("Out = %d, want %d", got, wantN)
				}
				if sender.P.Closed() {
					t.Errorf("sender closed: %v", sender.P.Reason())
				}
			})
		})
	}
}

// TestPrivmsgLongLines: an ng peer's 48 226-byte privmsg reaches an ng recipient byte for
// byte, followed by the location peerlist; to a reference recipient neither the privmsg
// nor the peerlist is sent, and Handle counts one line_too_long_for_recipient. The
// sender stays connected either way.
func TestPrivmsgLongLines(t *testing.T) {
	const content = 48226
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		sender := addShared(t, h, 101, peertest.NickMaker, peertest.MakerLoc, ngFeatures...)
		ng := addShared(t, h, 102, peertest.NickTaker, peertest.NotServing, ngFeatures...)
		ref := addShared(t, h, 103, peertest.NickOther, peertest.NotServing)
		pl := addShared(t, h, 104, "J5plOnly00000001", peertest.NotServing, "peerlist_features")
		defer func() {
			for _, sp := range []*sharedPeer{sender, ng, ref, pl} {
				sp.close()
			}
		}()
		lim, pol := conn(3), router.Policy{SpoofDisconnect: 3}

		// To the ng recipient: the privmsg as sent, then where the sender is.
		raw := rawOfContent(peertest.NickMaker+"!"+peertest.NickTaker+"!", content)
		if got := h.Rt.Privmsg(sender.P, peertest.NickTaker, []byte(raw)); got != reason.DropNone {
			t.Fatalf("Privmsg to an ng recipient = %v, want DropNone", got)
		}
		want := relay(wire.TypePrivmsg, raw)
		if len(want) != content+2 {
			t.Fatalf("test bug: relay is %d bytes", len(want))
		}
		loc := peertest.Peerlist(string(sender.P.EntryFeatures) + "," + peertest.NickDN + ";" + peertest.DNLoc + ";F:peerlist_features+ping")
		peertest.EqualLines(t, "ng recipient", ng.recv(t), []string{want, loc})

		// The same through Handle, as the read loop delivers it.
		e := env(t, wire.TypePrivmsg, raw[1:len(raw)-1])
		if !h.Rt.Handle(sender.P, e, lim, pol, time.Now()) {
			t.Fatal("Handle closed the sender")
		}
		peertest.EqualLines(t, "ng recipient (Handle)", ng.recv(t), []string{want, loc})

		// To reference recipients (no features; peerlist_features alone): nothing at all.
		peerlists := h.Ctr.Out[stats.MsgPeerlist].Load()
		for i, r := range []*sharedPeer{ref, pl} {
			raw := rawOfContent(peertest.NickMaker+"!"+r.P.Nick+"!", content)
			if got := h.Rt.Privmsg(sender.P, r.P.Nick, []byte(raw)); got != reason.DropTooLongForRecipient {
				t.Errorf("Privmsg to %s = %v, want %v", r.P.Nick, got, reason.DropTooLongForRecipient)
			}
			// The router returns the reason and counts nothing itself.
			if got := h.Ctr.Drops(reason.DropTooLongForRecipient); got != uint64(i) {
				t.Errorf("router counted %d, want %d", got, i)
			}
			e := env(t, wire.TypePrivmsg, raw[1:len(raw)-1])
			if !h.Rt.Handle(sender.P, e, lim, pol, time.Now()) {
				t.Fatal("Handle closed the sender")
			}
			if got := h.Ctr.Drops(reason.DropTooLongForRecipient); got != uint64(i+1) {
				t.Errorf("after Handle: %s = %d, want %d", reason.DropTooLongForRecipient, got, i+1)
			}
			peertest.EqualLines(t, r.P.Nick, r.recv(t), nil)
		}
		if got := h.Ctr.Out[stats.MsgPeerlist].Load(); got != peerlists {
			t.Errorf("%d location peerlists sent for withheld privmsgs, want none", got-peerlists)
		}
		if d := h.Ctr.DropCounts(); len(d) != 1 {
			t.Errorf("drops %v, want only %s", d, reason.DropTooLongForRecipient)
		}
		peertest.EqualLines(t, "sender", sender.recv(t), nil)
		if sender.P.Closed() {
			t.Fatalf("sender closed: %v", sender.P.Reason())
		}
	})
}
