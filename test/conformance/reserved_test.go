package conformance

import (
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestReservedNick: no peer may register the directory's own nick, as a maker or a
// taker; the handshake is refused reserved_nick and the directory's entry in peerlists
// stays its own.
func TestReservedNick(t *testing.T) {
	tg := directory(t)
	witness := tg.Join(t, dirtest.RefTaker)
	dn := witness.DNNick()
	if dn == "" {
		t.Fatal("the directory named no nick in its 795")
	}
	for name, loc := range map[string]string{"maker": dirtest.NewOnion(t) + ":5222", "taker": wire.NotServing} {
		t.Run(name, func(t *testing.T) {
			c := tg.Dial(t)
			c.Send(wire.TypeHandshake, dirtest.HelloLine(dn, loc, tg.Network, 5, false, nil))
			hs := c.RecvDN()
			if hs["accepted"] != false {
				t.Fatalf("a peer under the directory's nick was accepted: %v", hs)
			}
			if motd, _ := hs["motd"].(string); !strings.HasPrefix(motd, "Rejected: reserved_nick: ") {
				t.Errorf("motd %q, want a reserved_nick rejection", motd)
			}
			if extra := c.ExpectClosed(); len(extra) > 0 {
				t.Errorf("lines after rejection: %v", extra)
			}
		})
	}
	// The peerlist names nobody under the directory's nick but the directory itself.
	witness.Send(wire.TypeGetPeerlist, "")
	for _, entry := range strings.Split(witness.Expect(wire.TypePeerlist).Line, ",") {
		if strings.HasPrefix(entry, dn+";") && entry != witness.DNEntry() {
			t.Errorf("peerlist entry %q under the directory's nick", entry)
		}
	}
}
