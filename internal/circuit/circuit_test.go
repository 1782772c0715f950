package circuit

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/reason"
)

// torHeader is the line tor writes for circuit gid (tor's connection_edge.c and the
// HiddenServiceExportCircuitID manual: "PROXY TCP6 fc00:dead:beef:4dad::ffff:ffff ::1
// 65535 42").
func torHeader(gid uint32, port int) string {
	return fmt.Sprintf("PROXY TCP6 fc00:dead:beef:4dad::%x:%x ::1 %d %d", gid>>16, gid&0xffff, gid&0xffff, port)
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    string // ID.String(); "" = zero ID
		tor     bool
		wantErr bool
	}{
		{"PROXY TCP6 fc00:dead:beef:4dad::ffff:ffff ::1 65535 42", "4294967295", true, false},
		{torHeader(1, 5222), "1", true, false},
		{torHeader(0x12345678, 5222), "305419896", true, false},
		{"PROXY TCP4 192.0.2.7 198.51.100.1 40000 5222", "192.0.2.7", false, false},
		{"PROXY TCP6 2001:db8::1 2001:db8::2 40000 5222", "2001:db8::1", false, false},
		{"PROXY UNKNOWN", "", false, false},
		{"PROXY TCP6 fc00:dead:beef:4dad::0:1 ::1 1", "", false, true},            // missing port
		{"PROXY TCP4 fc00:dead:beef:4dad::0:1 ::1 1 5222", "", false, true},       // family mismatch
		{"PROXY TCP6 fc00:dead:beef:4dad::0:1 ::1 1 5222 extra", "", false, true}, // trailing token
		{"PROXY TCP6 fc00:dead:beef:4dad::0:1 ::1 70000 5222", "", false, true},   // bad port
		{"PROXY TCP6 not-an-address ::1 1 5222", "", false, true},                 // bad address
		{`[{"type":793,"line":"{}"}]`, "", false, true},                           // a client that skipped tor
		{"", "", false, true}, // a v2 header starts with CRLF
		{"PROXYTCP6 fc00:dead:beef:4dad::0:1 ::1 1 5222", "", false, true},                             // no separator
		{"PROXY TCP6 fc00:dead:beef:4dad::0:1 ::1 1 5222" + string(make([]byte, 80)), "", false, true}, // too long
	} {
		id, err := ParseHeader([]byte(tc.line))
		if tc.wantErr {
			if err == nil || !errors.Is(err, ErrHeader) {
				t.Errorf("%q: err %v, want an ErrHeader", tc.line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if id.String() != tc.want || id.Valid() != (tc.want != "") {
			t.Errorf("%q: id %q (valid %v), want %q", tc.line, id, id.Valid(), tc.want)
		}
		if _, ok := id.Tor(); ok != tc.tor {
			t.Errorf("%q: Tor() ok=%v, want %v", tc.line, ok, tc.tor)
		}
	}
	// An IPv4-mapped source is the IPv4 client.
	a, _ := ParseHeader([]byte("PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2"))
	b, _ := ParseHeader([]byte("PROXY TCP4 192.0.2.7 192.0.2.8 3 4"))
	if a != b || !a.Valid() {
		t.Fatalf("mapped %v != %v", a, b)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(torHeader(7, 5222)))
	f.Add([]byte("PROXY UNKNOWN"))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"))
	f.Fuzz(func(t *testing.T, line []byte) {
		id, err := ParseHeader(line)
		if err != nil {
			if id.Valid() || !errors.Is(err, ErrHeader) {
				t.Fatalf("error %v with id %v", err, id)
			}
			return
		}
		if gid, ok := id.Tor(); ok {
			if again, err := ParseHeader([]byte(torHeader(gid, 1))); err != nil || again != id {
				t.Fatalf("gid %d does not round-trip: %v %v", gid, again, err)
			}
		}
	})
}

var lim = Limits{MaxConns: 3, MaxPending: 2, BanAfter: 2, BanFor: time.Minute}

func tor(gid uint32) ID {
	id, err := ParseHeader([]byte(torHeader(gid, 5222)))
	if err != nil {
		panic(err)
	}
	return id
}

func mustOpen(t *testing.T, tb *Table, id ID, now time.Time) *Client {
	t.Helper()
	c, why := tb.Open(id, now, lim)
	if why != reason.CloseNone {
		t.Fatalf("Open(%v) refused: %v", id, why)
	}
	return c
}

func TestCapsPerCircuit(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Unix(1e9, 0)
	a1 := mustOpen(t, tb, tor(1), now)
	b1 := a1.Buckets()
	a2 := mustOpen(t, tb, tor(1), now)
	if a1 != a2 || b1 == nil || b1 != a2.Buckets() {
		t.Fatal("two connections over one circuit do not share a client and its buckets")
	}
	// Two handshaking: a third connection on the circuit is refused, another circuit is not.
	if _, why := tb.Open(tor(1), now, lim); why != reason.CloseCircuitCap {
		t.Fatalf("third pending connection: %v, want circuit cap", why)
	}
	if b := mustOpen(t, tb, tor(2), now); b == a1 {
		t.Fatal("another circuit shares the client")
	}
	tb.Handshaked(a1)
	tb.Handshaked(a2)
	mustOpen(t, tb, tor(1), now) // third connection, handshaking
	if _, why := tb.Open(tor(1), now, lim); why != reason.CloseCircuitCap {
		t.Fatalf("fourth connection: %v, want circuit cap", why)
	}
	if n := tb.Counts(now); n.Connected != 2 || n.Banned != 0 {
		t.Fatalf("counts %+v", n)
	}
	// No identity: never capped, never tracked, buckets of its own.
	x, y := mustOpen(t, tb, ID{}, now), mustOpen(t, tb, ID{}, now)
	if x == y || x.Buckets() == y.Buckets() {
		t.Fatal("connections without identity share state")
	}
	for range 10 {
		mustOpen(t, tb, ID{}, now)
	}
	if tb.Release(x, reason.CloseSpoofing, now, lim) || tb.Release(x, reason.CloseSpoofing, now, lim) {
		t.Fatal("a connection without identity got its circuit banned")
	}
	if n := tb.Counts(now); n.Connected != 2 {
		t.Fatalf("untracked connections counted: %+v", n)
	}
}

func TestStrikesAndBans(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Unix(1e9, 0)
	use := func(id ID, reason reason.Close) bool {
		c := mustOpen(t, tb, id, now)
		tb.Handshaked(c)
		return tb.Release(c, reason, now, lim)
	}
	// Leaving, being rejected or slow is no strike.
	for _, r := range []reason.Close{reason.CloseClientGone, reason.CloseRejected, reason.CloseQueueFull, reason.CloseWriteTimeout, reason.ClosePongTimeout} {
		if use(tor(5), r) || use(tor(5), r) {
			t.Fatalf("%v banned the circuit", r)
		}
	}
	if n := tb.Counts(now); n.Connected != 0 || len(tb.clients) != 0 {
		t.Fatalf("a circuit without connections or strikes is kept: %+v, %d entries", n, len(tb.clients))
	}
	// Two abusive closes ban it; another circuit is untouched.
	if use(tor(5), reason.CloseMalformed) {
		t.Fatal("banned after one strike")
	}
	if !use(tor(5), reason.CloseRateLimit) {
		t.Fatal("not banned after two strikes")
	}
	if _, why := tb.Open(tor(5), now.Add(59*time.Second), lim); why != reason.CloseBanned {
		t.Fatalf("banned circuit: %v", why)
	}
	mustOpen(t, tb, tor(6), now)
	if n := tb.Counts(now); n.Banned != 1 || n.Bans != 1 || n.Connected != 1 {
		t.Fatalf("counts %+v", n)
	}
	// The ban ends after BanFor; strikes start from zero.
	now = now.Add(lim.BanFor)
	if use(tor(5), reason.CloseSpoofing) {
		t.Fatal("banned again after one strike")
	}
	// A strike older than BanFor is forgotten.
	now = now.Add(lim.BanFor + time.Second)
	if use(tor(5), reason.CloseSpoofing) {
		t.Fatal("an expired strike still counted")
	}
	// BanAfter 0 never bans.
	never := lim
	never.BanAfter = 0
	for range 5 {
		c := mustOpen(t, tb, tor(7), now)
		tb.Handshaked(c)
		if tb.Release(c, reason.CloseSpoofing, now, never) {
			t.Fatal("banned with BanAfter 0")
		}
	}
}

func TestBanKeepsOpenConnections(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Unix(1e9, 0)
	good := mustOpen(t, tb, tor(9), now)
	tb.Handshaked(good)
	for range 2 {
		bad := mustOpen(t, tb, tor(9), now)
		tb.Handshaked(bad)
		tb.Release(bad, reason.CloseSpoofing, now, lim)
	}
	if _, why := tb.Open(tor(9), now, lim); why != reason.CloseBanned {
		t.Fatalf("new connection on a banned circuit: %v", why)
	}
	if good.Buckets() == nil {
		t.Fatal("the ban took the open connection's buckets")
	}
	tb.Release(good, reason.CloseClientGone, now, lim)
	if n := tb.Counts(now); n.Banned != 1 || n.Connected != 0 {
		t.Fatalf("after the last connection left: %+v", n)
	}
}

func TestForget(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Unix(1e9, 0)
	open := mustOpen(t, tb, tor(1), now)
	tb.Handshaked(open)
	for _, gid := range []uint32{1, 1, 2} { // circuit 1 banned, circuit 2 one strike
		c := mustOpen(t, tb, tor(gid), now)
		tb.Handshaked(c)
		tb.Release(c, reason.CloseMalformed, now, lim)
	}
	if n := tb.Counts(now); n.Banned != 1 || tb.idle != 1 {
		t.Fatalf("before: %+v idle %d", n, tb.idle)
	}
	tb.Forget()
	if n := tb.Counts(now); n.Banned != 0 || n.Connected != 1 || tb.idle != 0 || len(tb.clients) != 1 {
		t.Fatalf("after: %+v idle %d entries %d", n, tb.idle, len(tb.clients))
	}
	mustOpen(t, tb, tor(1), now) // no longer banned
	c := mustOpen(t, tb, tor(2), now)
	tb.Handshaked(c)
	if tb.Release(c, reason.CloseMalformed, now, lim) {
		t.Fatal("the strike from before Forget still counted")
	}
}

func TestIdleEntriesBounded(t *testing.T) {
	tb := NewTable(4)
	now := time.Unix(1e9, 0)
	one := lim
	one.BanAfter = 1
	for gid := range uint32(10) {
		c := mustOpen(t, tb, tor(gid), now)
		tb.Handshaked(c)
		tb.Release(c, reason.CloseMalformed, now, one)
	}
	n := tb.Counts(now)
	if n.Banned != 4 || n.Bans != 10 || n.Forgotten != 6 || tb.idle != 4 || len(tb.clients) != 4 {
		t.Fatalf("full table: %+v, idle %d, entries %d", n, tb.idle, len(tb.clients))
	}
	// Expired entries are swept to make room, and by Open once a minute.
	now = now.Add(lim.BanFor + time.Second)
	c := mustOpen(t, tb, tor(100), now)
	tb.Handshaked(c)
	tb.Release(c, reason.CloseMalformed, now, one)
	if n := tb.Counts(now); n.Banned != 1 || n.Forgotten != 6 || len(tb.clients) != 1 || tb.idle != 1 {
		t.Fatalf("after expiry: %+v, entries %d, idle %d", n, len(tb.clients), tb.idle)
	}
}

// TestConcurrent runs many connections over a few circuits at once; run it with -race.
func TestConcurrent(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	big := Limits{MaxConns: 1000, MaxPending: 1000, BanAfter: 1000, BanFor: time.Minute}
	c1 := limits.Rates{Messages: 500, Burst: 1000, GetPeerlist: 3, Orderbook: 3} // the defaults
	c2 := c1
	c2.Messages = 1
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			c, why := tb.Open(tor(uint32(i%4)), now, big)
			if why != reason.CloseNone {
				t.Error(why)
				return
			}
			tb.Handshaked(c)
			for j := range 100 {
				r := c1
				if j%2 == 1 {
					r = c2
				}
				c.Buckets().Use(r, now)
				c.Buckets().Allow(limits.Messages, now)
			}
			tb.Release(c, reason.CloseMalformed, now, big)
		}()
	}
	wg.Wait()
	if n := tb.Counts(time.Now()); n.Connected != 0 || n.Bans != 0 {
		t.Fatalf("%+v", n)
	}
	if len(tb.clients) != 4 || tb.idle != 4 {
		t.Fatalf("entries %d idle %d, want the 4 circuits kept for their strikes", len(tb.clients), tb.idle)
	}
}

func TestBucketsShared(t *testing.T) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Unix(1e9, 0)
	cfg := limits.Rates{Messages: 0.001, Burst: 3, GetPeerlist: 3, Orderbook: 3}
	a, b := mustOpen(t, tb, tor(3), now), mustOpen(t, tb, tor(3), now)
	a.Buckets().Use(cfg, now)
	b.Buckets().Use(cfg, now)
	got := 0
	for range 3 {
		for _, c := range []*Client{a, b} {
			if c.Buckets().Allow(limits.Messages, now) {
				got++
			}
		}
	}
	if got != 3 {
		t.Fatalf("two connections over one circuit got %d tokens from a burst of 3", got)
	}
	if a.Buckets().Violation() != 1 || b.Buckets().Violation() != 2 {
		t.Fatal("violations are not counted per circuit")
	}
	// A reload that raises the burst applies to the shared bucket.
	more := cfg
	more.Burst = 10
	a.Buckets().Use(more, now)
	if !b.Buckets().Allow(limits.Messages, now.Add(time.Hour)) {
		t.Fatal("the new burst did not reach the other connection")
	}
}

func TestTorGID(t *testing.T) {
	id := IDFromAddr(netip.MustParseAddr("fc00:dead:beef:4dad::aabb:ccdd"))
	if gid, ok := id.Tor(); !ok || gid != 0xaabbccdd {
		t.Fatalf("gid %x %v", gid, ok)
	}
	if _, ok := IDFromAddr(netip.MustParseAddr("fc00:dead:beef:4dae::1")).Tor(); ok {
		t.Fatal("an address outside tor's prefix gave a circuit")
	}
}

func BenchmarkParseHeader(b *testing.B) {
	line := []byte(torHeader(123456, 5222))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenRelease is one connection's work: parse its header, open, handshake, release.
func BenchmarkOpenRelease(b *testing.B) {
	tb := NewTable(DefaultMaxIdle)
	now := time.Now()
	big := Limits{MaxConns: 1 << 30, MaxPending: 1 << 30, BanAfter: 3, BanFor: time.Minute}
	for i := range uint32(10000) { // other circuits connected meanwhile
		tb.Open(tor(i), now, big)
	}
	b.ReportAllocs()
	var gid uint32
	for b.Loop() {
		gid++
		c, _ := tb.Open(tor(20000+gid%1000), now, big)
		tb.Handshaked(c)
		tb.Release(c, reason.CloseClientGone, now, big)
	}
}
