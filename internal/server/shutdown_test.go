package server_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestShutdownLeavesNoGoroutine: a server that has accepted peers, fanned out a pubmsg
// (flusher shards), forwarded a privmsg (the urgent path) and announced a departure (the
// ";D" window's timer) has, once Serve returns, no goroutine left: shutdown waited for
// the connections' goroutines, stopped the router's timer and closed the flusher.
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	d := dirtest.Start(t, nil, nil)
	const maker, taker, leaver = "J59xfsUewpdmrbuM", "J55uwMUczBgZV44z", "J58w4tpYN3zRBwC9"
	mc, mr := d.Join(t, maker, "127.0.0.1:27102", nil)
	tc, tr := d.Join(t, taker, wire.NotServing, nil)
	lc, lr := d.Join(t, leaver, wire.NotServing, nil)
	expect := func(who string, c net.Conn, r *bufio.Reader, want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(testkit.Timeout))
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: waiting for %q: %v", who, want, err)
			}
			if strings.Contains(l, want) {
				return
			}
		}
	}
	send := func(c net.Conn, typ int, line string) {
		t.Helper()
		if _, err := c.Write(wire.AppendEnvelope(nil, typ, line)); err != nil {
			t.Fatal(err)
		}
	}

	send(mc, wire.TypePubmsg, maker+"!PUBLIC!cancel 0")
	expect("taker", tc, tr, maker+"!PUBLIC!cancel 0")
	expect("leaver", lc, lr, maker+"!PUBLIC!cancel 0")
	send(tc, wire.TypePrivmsg, taker+"!"+maker+"!fill 0")
	expect("maker", mc, mr, taker+"!"+maker+"!fill 0")
	lc.Close()
	expect("maker", mc, mr, leaver+";NOT-SERVING-ONION;D")
	expect("taker", tc, tr, leaver+";NOT-SERVING-ONION;D")

	if err := d.Stop(); err != nil { // the departure window is most likely still open
		t.Fatalf("Serve: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}
