package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// claimResult is what the directory answered one handshake claim.
type claimResult struct {
	accepted bool
	motd     string
	took     time.Duration
	err      error
}

// claim dials addr and sends the 793 of a reference client (features as given) named
// nick at loc, and returns the directory's 795. It reports failures as errors, not
// through t: it runs in goroutines of its own.
func claim(addr, network, nick, loc string, features map[string]bool) claimResult {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, dirtest.Timeout)
	if err != nil {
		return claimResult{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(dirtest.Timeout))
	hs := handshake.ClientHello{Nick: nick, Location: loc, Network: network, Features: features}.Line()
	if _, err := io.WriteString(conn, `{"type": 793, "line": `+string(wire.AppendQuoted(nil, hs))+"}\r\n"); err != nil {
		return claimResult{err: err}
	}
	raw, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return claimResult{err: fmt.Errorf("no 795: %w", err)}
	}
	env, err := wire.Decode(bytes.TrimRight(raw, "\r\n"))
	if err != nil || env.Type != wire.TypeDNHandshake {
		return claimResult{err: fmt.Errorf("answer %q is not a 795 (%v)", raw, err)}
	}
	var dn struct {
		Accepted bool   `json:"accepted"`
		MOTD     string `json:"motd"`
	}
	if err := json.Unmarshal([]byte(env.Line), &dn); err != nil {
		return claimResult{err: err}
	}
	return claimResult{accepted: dn.Accepted, motd: dn.MOTD, took: time.Since(start)}
}

// liveOwner answers every check the directory makes of it, as a live client does: a 798
// with a 799 (ping-capable), the legacy "<directory>!PUBLIC!orderbook" probe with a
// privmsg offer to the directory (reference maker). It counts both until it reads a
// privmsg ending in marker, and then returns.
func liveOwner(owner *dirtest.Client, marker string, probes *atomic.Int64) <-chan error {
	done := make(chan error, 1)
	dn := owner.DNNick()
	go func() {
		defer close(done)
		for {
			raw, err := owner.Reader.ReadBytes('\n')
			if err != nil {
				done <- err
				return
			}
			env, err := wire.Decode(bytes.TrimRight(raw, "\r\n"))
			if err != nil {
				done <- err
				return
			}
			var answer string
			switch {
			case env.Type == wire.TypePing:
				answer = `{"type": 799, "line": ""}`
			case env.Type == wire.TypePubmsg && env.Line == dn+"!PUBLIC!orderbook":
				answer = fmt.Sprintf(`{"type": 685, "line": "%s!%s!sw0reloffer 0 27300 1000000 0 0.0002 pub sig"}`, owner.Nick, dn)
			case env.Type == wire.TypePrivmsg && strings.HasSuffix(env.Line, "!"+marker):
				return
			default:
				continue
			}
			probes.Add(1)
			if _, err := io.WriteString(owner.Conn, answer+"\r\n"); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// TestClaimStormOneProbe: many claims on a live owner's nick, all at once, make the
// directory check the owner once: one check in flight, then none for the cooldown. Every
// claim is refused duplicate_nick; the owner keeps its nick. Once the owner leaves, a
// claim is accepted at once.
func TestClaimStormOneProbe(t *testing.T) {
	for name, spec := range map[string]dirtest.PeerSpec{"legacy maker": dirtest.RefMaker, "ping-capable maker": dirtest.NGMaker} {
		t.Run(name, func(t *testing.T) {
			// A long nick check: a claim that waited for a check that never came back
			// would show in its time.
			d := dirtest.Start(t, func(c *config.Config) { c.NickCheckTimeout = 30 * time.Second }, nil)
			tg := d.Target()
			witness := tg.Join(t, dirtest.RefTaker)
			owner := tg.Join(t, spec)
			const marker = "end of the storm"
			var probes atomic.Int64
			ownerDone := liveOwner(owner, marker, &probes)

			// Waves of concurrent claims, each wave after the previous one was answered:
			// claims that meet a check in flight, and claims that come after it.
			const waves, perWave, claims = 6, 10, 6 * 10
			start := time.Now()
			results := make([]claimResult, claims)
			for w := range waves {
				var wg sync.WaitGroup
				for i := w * perWave; i < (w+1)*perWave; i++ {
					wg.Go(func() { results[i] = claim(d.Addr, d.Network, owner.Nick, owner.Location, owner.Features) })
				}
				wg.Wait()
			}
			stormTook := time.Since(start)
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("claim %d: %v", i, r.err)
				}
				if r.accepted || !strings.HasPrefix(r.motd, "Rejected: duplicate_nick: ") {
					t.Fatalf("claim %d: accepted=%v motd %q; want a duplicate_nick rejection", i, r.accepted, r.motd)
				}
			}
			if stormTook >= registry.CheckCooldown {
				t.Skipf("the storm took %v, longer than the cooldown: the machine is too slow to tell", stormTook)
			}
			// Everything the directory sent the owner before the marker has arrived once
			// the owner reads the marker.
			witness.Privmsg(owner, marker)
			if err := <-ownerDone; err != nil {
				t.Fatalf("owner: %v", err)
			}
			if n := probes.Load(); n != 1 {
				t.Fatalf("the owner was checked %d times by %d claims within %v; want once", n, claims, stormTook)
			}
			ctr := d.Srv.Counters()
			if n := ctr.Pings.Load() + ctr.Probes.Load(); n != 1 {
				t.Errorf("the directory counts %d pings and probes, want 1", n)
			}
			if n := ctr.Rejects(reason.RejectDuplicate); n != claims {
				t.Errorf("%d duplicate_nick rejections counted, want %d", n, claims)
			}

			// The owner still holds its nick: a privmsg to it arrives.
			witness.Privmsg(owner, "still yours")
			for env := owner.Recv(); env.Type != wire.TypePrivmsg || !strings.HasSuffix(env.Line, "!still yours"); env = owner.Recv() {
			}

			// The owner leaves; its cooldown goes with it and a claim succeeds at once.
			owner.Conn.Close()
			witness.ExpectLine(wire.TypePeerlist, owner.LeftNotice(witness.DNLocation(), witness.DNNick()))
			r := claim(d.Addr, d.Network, owner.Nick, owner.Location, owner.Features)
			if r.err != nil || !r.accepted {
				t.Fatalf("claim after the owner left: accepted=%v motd %q err %v", r.accepted, r.motd, r.err)
			}
			if r.took > 5*time.Second {
				t.Errorf("claim after the owner left took %v", r.took)
			}
		})
	}
}
