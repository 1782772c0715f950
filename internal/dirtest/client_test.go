package dirtest

import (
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestForeignDepartures: against a shared (external) directory, departure notices for
// nicks this test never used are set aside, and nothing else is; against an in-process
// directory nothing is.
func TestForeignDepartures(t *testing.T) {
	const dn, mine, other = "J5dirOOOOOOOOOOO", "J5mineOOOOOOOOOO", "J5otherOOOOOOOOO"
	ext := &Target{External: true}
	ext.own(mine)
	pl := func(line string) wire.Envelope { return wire.Envelope{Type: wire.TypePeerlist, Line: line} }
	for _, c := range []struct {
		env  wire.Envelope
		want bool
	}{
		{pl(other + ";NOT-SERVING-ONION;D," + dn + ";x.onion:5222"), true},
		{pl(other + ";a.onion:5222;D"), true},
		{pl(mine + ";NOT-SERVING-ONION;D," + dn + ";x.onion:5222"), false},      // ours: expected
		{pl(other + ";a.onion:5222;D," + mine + ";NOT-SERVING-ONION;D"), false}, // mixed
		{pl(other + ";a.onion:5222"), false},                                    // a listing, not a departure
		{pl(dn + ";x.onion:5222"), false},                                       // the directory alone
		{pl(""), false},
		{wire.Envelope{Type: wire.TypePubmsg, Line: other + "!PUBLIC!x;D"}, false},
	} {
		if got := ext.foreign(c.env, dn); got != c.want {
			t.Errorf("foreign(%d %q) = %v, want %v", c.env.Type, c.env.Line, got, c.want)
		}
	}
	if (&Target{}).foreign(pl(other+";a.onion:5222;D"), dn) {
		t.Error("an in-process directory's departure notice was set aside")
	}
}
