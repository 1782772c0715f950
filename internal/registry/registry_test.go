package registry_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

const (
	onion    = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	nickA    = "J59xfsUewpdmrbuM"
	nickB    = "J58w4tpYN3zRBwC9"
	nickC    = "J55uwMUczBgZV44z"
	nickD    = "J5At3hY5smi9vYfE"
	readWait = 5 * time.Second // read deadline; never reached when the code works
)

var welcome = []byte(`{"type":795,"line":"welcome"}` + "\r\n")

var (
	makerLoc = jm.Location{Host: onion, Port: 5222}
	takerLoc = jm.Location{}
)

var lim = peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Minute}

// newPeer returns a handshaked peer on a net.Pipe and the client end. Unless the test
// reads the client end itself (read true), everything sent is drained and discarded.
func newPeer(t testing.TB, id uint64, nick string, loc jm.Location, read bool) (*peer.Peer, net.Conn) {
	t.Helper()
	srv, cli := net.Pipe()
	p := peer.New(id, srv, lim, new(stats.Counters), slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.SetHello(handshake.Hello{Nick: nick, Location: loc})
	if !read {
		go func() { _, _ = io.Copy(io.Discard, cli) }()
	}
	t.Cleanup(func() {
		p.Close(reason.CloseShutdown)
		cli.Close()
	})
	return p, cli
}

// ids returns the IDs of ps, sorted: a snapshot's order is unspecified.
func ids(ps []*peer.Peer) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	slices.Sort(out)
	return out
}

func mustRegister(t *testing.T, r *registry.Registry, p *peer.Peer) {
	t.Helper()
	if res, owner := r.Register(p, welcome); res != registry.Registered || owner != nil {
		t.Fatalf("Register(%s) = %v, %v; want Registered", p.Nick, res, owner)
	}
}

func checkCounts(t *testing.T, r *registry.Registry, total, makers, takers int) {
	t.Helper()
	gt, gm, gk := r.Counts()
	if gt != total || gm != makers || gk != takers {
		t.Fatalf("Counts = %d, %d, %d; want %d, %d, %d", gt, gm, gk, total, makers, takers)
	}
}

func TestRegisterWelcomeFirst(t *testing.T) {
	r := registry.New(10)
	p, cli := newPeer(t, 1, nickA, makerLoc, true)
	mustRegister(t, r, p)
	if !p.Send([]byte("later\r\n")) {
		t.Fatal("Send = false")
	}
	_ = cli.SetReadDeadline(time.Now().Add(readWait))
	br := bufio.NewReader(cli)
	for _, want := range []string{string(welcome), "later\r\n"} {
		got, err := br.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if got := r.Lookup(nickA); got != p {
		t.Fatalf("Lookup = %v, want the peer", got)
	}
	checkCounts(t, r, 1, 1, 0)
}

// Even with a broadcaster sending to every peer in the snapshot as fast as it can, a
// newly registered peer receives its welcome before any broadcast.
func TestRegisterWelcomeFirstUnderBroadcast(t *testing.T) {
	r := registry.New(100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range r.Snapshot() {
				p.Send([]byte("bcast\r\n"))
			}
		}
	})
	const n = 30
	type client struct {
		cli net.Conn
		br  *bufio.Reader
	}
	clients := make([]client, n)
	for i := range n {
		p, cli := newPeer(t, uint64(i+1), jm.NickFromPubKey([]byte{byte(i)}), takerLoc, true)
		_ = cli.SetReadDeadline(time.Now().Add(readWait))
		clients[i] = client{cli, bufio.NewReader(cli)}
		mustRegister(t, r, p)
		// Read one line now, so that the pipe keeps moving.
		got, err := clients[i].br.ReadString('\n')
		if err != nil || got != string(welcome) {
			t.Fatalf("peer %d: first line %q, %v; want the welcome", i, got, err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestRegisterDuplicate(t *testing.T) {
	r := registry.New(10)
	owner, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, owner)
	dup, _ := newPeer(t, 2, nickA, takerLoc, true)
	res, got := r.Register(dup, welcome)
	if res != registry.Duplicate || got != owner {
		t.Fatalf("Register = %v, %v; want Duplicate, owner", res, got)
	}
	if q := dup.QueuedBytes(); q != 0 {
		t.Errorf("duplicate was sent the welcome (%d bytes queued)", q)
	}
	if dup.Reason() != reason.CloseNone {
		t.Errorf("duplicate closed: %v", dup.Reason())
	}
	if r.Lookup(nickA) != owner {
		t.Error("owner replaced")
	}
	checkCounts(t, r, 1, 1, 0)
}

func TestRegisterFull(t *testing.T) {
	r := registry.New(2)
	if r.Max() != 2 {
		t.Fatalf("Max = %d", r.Max())
	}
	a, _ := newPeer(t, 1, nickA, makerLoc, false)
	b, _ := newPeer(t, 2, nickB, takerLoc, false)
	c, _ := newPeer(t, 3, nickC, takerLoc, true)
	mustRegister(t, r, a)
	mustRegister(t, r, b)
	if res, owner := r.Register(c, welcome); res != registry.Full || owner != nil {
		t.Fatalf("Register at max = %v, %v; want Full, nil", res, owner)
	}
	if c.QueuedBytes() != 0 || r.Lookup(nickC) != nil {
		t.Error("refused peer was welcomed or registered")
	}
	// A duplicate at capacity is reported as a duplicate, with its owner.
	dupA, _ := newPeer(t, 4, nickA, makerLoc, true)
	if res, owner := r.Register(dupA, welcome); res != registry.Duplicate || owner != a {
		t.Fatalf("duplicate at max = %v, %v; want Duplicate, a", res, owner)
	}

	r.SetMax(3)
	if r.Max() != 3 {
		t.Fatalf("Max = %d after SetMax(3)", r.Max())
	}
	mustRegister(t, r, c)
	checkCounts(t, r, 3, 1, 2)

	// Lowering the cap keeps existing peers but admits nobody new.
	r.SetMax(1)
	checkCounts(t, r, 3, 1, 2)
	d, _ := newPeer(t, 5, nickD, takerLoc, true)
	if res, _ := r.Register(d, welcome); res != registry.Full {
		t.Fatalf("Register after SetMax(1) = %v, want Full", res)
	}
	if !r.Remove(b) || !r.Remove(c) {
		t.Fatal("Remove failed")
	}
	if res, _ := r.Register(d, welcome); res != registry.Full { // 1 peer, max 1
		t.Fatalf("Register with 1 of 1 = %v, want Full", res)
	}
	r.Remove(a)
	mustRegister(t, r, d)

	r0 := registry.New(0)
	if res, _ := r0.Register(a, welcome); res != registry.Full {
		t.Fatalf("Register in New(0) = %v, want Full", res)
	}
}

func TestRegisterGone(t *testing.T) {
	r := registry.New(10)
	p, _ := newPeer(t, 1, nickA, makerLoc, false)
	p.Close(reason.CloseClientGone)
	if res, owner := r.Register(p, welcome); res != registry.Gone || owner != nil {
		t.Fatalf("Register(closed) = %v, %v; want Gone, nil", res, owner)
	}
	if r.Lookup(nickA) != nil {
		t.Error("closed peer registered")
	}
	if len(r.Snapshot()) != 0 {
		t.Error("closed peer in snapshot")
	}
	checkCounts(t, r, 0, 0, 0)
	// The nick is still free.
	q, _ := newPeer(t, 2, nickA, takerLoc, false)
	mustRegister(t, r, q)
}

func TestCheck(t *testing.T) {
	r := registry.New(10)
	owner, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, owner)
	newcomer, _ := newPeer(t, 2, nickA, takerLoc, true)

	if !r.BeginCheck(owner) {
		t.Fatal("BeginCheck(owner) = false")
	}
	if r.BeginCheck(owner) {
		t.Fatal("second BeginCheck = true while a check runs")
	}
	if res, got := r.Register(newcomer, welcome); res != registry.Checking || got != owner {
		t.Fatalf("Register during check = %v, %v; want Checking, owner", res, got)
	}
	// Other nicks are unaffected.
	other, _ := newPeer(t, 3, nickB, takerLoc, false)
	mustRegister(t, r, other)

	r.EndCheck(owner, false)
	if res, got := r.Register(newcomer, welcome); res != registry.Duplicate || got != owner {
		t.Fatalf("Register after EndCheck = %v, %v; want Duplicate, owner", res, got)
	}
	if !r.BeginCheck(owner) {
		t.Fatal("BeginCheck after EndCheck = false")
	}
	r.EndCheck(owner, false)

	// Peers that do not own their nick cannot be checked.
	if r.BeginCheck(newcomer) {
		t.Error("BeginCheck(non-owner with the same nick) = true")
	}
	unregistered, _ := newPeer(t, 4, nickC, takerLoc, false)
	if r.BeginCheck(unregistered) {
		t.Error("BeginCheck(unregistered) = true")
	}
	r.Remove(owner)
	if r.BeginCheck(owner) {
		t.Error("BeginCheck(removed owner) = true")
	}
	// With the owner gone the newcomer registers.
	mustRegister(t, r, newcomer)
}

// fakeClock is a settable clock for the check cooldown.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestCheckCooldown: once the owner proved alive, claims on its nick are Proven (refused
// without a check) and no check can start, for CheckCooldown; then checks resume. A
// failed check leaves no cooldown.
func TestCheckCooldown(t *testing.T) {
	r := registry.New(10)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	registry.SetClock(r, clock.now)
	owner, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, owner)
	claim := func() registry.Result {
		t.Helper()
		p, _ := newPeer(t, 99, nickA, takerLoc, true)
		res, got := r.Register(p, welcome)
		if got != owner {
			t.Fatalf("Register = %v with owner %v; want the owner", res, got)
		}
		return res
	}

	if !r.BeginCheck(owner) {
		t.Fatal("first BeginCheck = false")
	}
	r.EndCheck(owner, true)
	if res := claim(); res != registry.Proven {
		t.Fatalf("claim right after the owner answered = %v, want Proven", res)
	}
	clock.add(registry.CheckCooldown - time.Millisecond)
	if r.BeginCheck(owner) {
		t.Fatal("BeginCheck within the cooldown = true")
	}
	if res := claim(); res != registry.Proven {
		t.Fatalf("claim at the end of the cooldown = %v, want Proven", res)
	}
	clock.add(time.Millisecond)
	if res := claim(); res != registry.Duplicate {
		t.Fatalf("claim after the cooldown = %v, want Duplicate", res)
	}
	if !r.BeginCheck(owner) {
		t.Fatal("BeginCheck after the cooldown = false")
	}
	if res := claim(); res != registry.Checking {
		t.Fatalf("claim during the check = %v, want Checking", res)
	}
	r.EndCheck(owner, false) // not proven: no cooldown
	if res := claim(); res != registry.Duplicate {
		t.Fatalf("claim after a failed check = %v, want Duplicate", res)
	}
	if !r.BeginCheck(owner) {
		t.Fatal("BeginCheck after a failed check = false")
	}
	r.EndCheck(owner, true)

	// Other nicks are not affected by this one's cooldown.
	other, _ := newPeer(t, 2, nickB, takerLoc, false)
	mustRegister(t, r, other)
	if !r.BeginCheck(other) {
		t.Fatal("BeginCheck(other nick) = false")
	}
	r.EndCheck(other, true)

	// The owner leaves: its cooldown goes with it, and a claim registers at once.
	r.Remove(owner)
	p, _ := newPeer(t, 3, nickA, takerLoc, false)
	mustRegister(t, r, p)
	if !r.BeginCheck(p) {
		t.Fatal("BeginCheck(new owner) = false: the old owner's cooldown stuck to the nick")
	}
	r.EndCheck(owner, true) // a stale end for the old owner changes nothing
	if res, _ := r.Register(owner, welcome); res != registry.Checking {
		t.Fatalf("claim during the new owner's check = %v, want Checking", res)
	}
	r.EndCheck(p, false)
}

// TestCheckStateBounded: the owner-check state grows with the owners that were checked,
// never with the claims, and is gone once they leave; an end for an owner that left
// makes no entry.
func TestCheckStateBounded(t *testing.T) {
	r := registry.New(10)
	owner, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, owner)
	for i := range 1000 {
		claimant, _ := newPeer(t, uint64(2+i), nickA, takerLoc, true)
		res, got := r.Register(claimant, welcome)
		if res == registry.Registered {
			t.Fatal("claim registered")
		}
		if r.BeginCheck(got) {
			r.EndCheck(got, true)
		}
		if r.BeginCheck(claimant) { // claimants are not registered: no state for them
			t.Fatal("BeginCheck(claimant) = true")
		}
	}
	if n := registry.CheckEntries(r); n != 1 {
		t.Fatalf("%d check entries after 1000 claims on one owner, want 1", n)
	}
	if !r.Remove(owner) {
		t.Fatal("Remove(owner) = false")
	}
	if n := registry.CheckEntries(r); n != 0 {
		t.Fatalf("%d check entries after the owner left, want 0", n)
	}

	// A check in flight when the owner leaves ends without leaving state behind.
	o2, _ := newPeer(t, 5000, nickB, makerLoc, false)
	mustRegister(t, r, o2)
	if !r.BeginCheck(o2) {
		t.Fatal("BeginCheck(o2) = false")
	}
	r.Remove(o2)
	r.EndCheck(o2, true)
	if n := registry.CheckEntries(r); n != 0 {
		t.Fatalf("%d check entries after a check outlived its owner, want 0", n)
	}
}

func TestRemove(t *testing.T) {
	r := registry.New(10)
	old, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, old)
	checkCounts(t, r, 1, 1, 0)
	if !r.Remove(old) {
		t.Fatal("Remove(owner) = false")
	}
	if r.Remove(old) {
		t.Fatal("second Remove = true")
	}
	if r.Lookup(nickA) != nil {
		t.Fatal("Lookup after Remove != nil")
	}
	checkCounts(t, r, 0, 0, 0)

	// A new peer takes the nick; the old, stale peer must not remove it.
	cur, _ := newPeer(t, 2, nickA, takerLoc, false)
	mustRegister(t, r, cur)
	if r.Remove(old) {
		t.Fatal("Remove(stale peer) = true")
	}
	if r.Lookup(nickA) != cur {
		t.Fatal("stale Remove removed the current owner")
	}
	checkCounts(t, r, 1, 0, 1)
	if got := ids(r.Snapshot()); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("Snapshot = %v, want [2]", got)
	}

	never, _ := newPeer(t, 3, nickB, takerLoc, false)
	if r.Remove(never) {
		t.Error("Remove(never registered) = true")
	}
}

func TestSnapshot(t *testing.T) {
	r := registry.New(10)
	if s := r.Snapshot(); len(s) != 0 {
		t.Fatalf("empty registry Snapshot = %v", ids(s))
	}
	p5, _ := newPeer(t, 5, nickA, makerLoc, false)
	p1, _ := newPeer(t, 1, nickB, takerLoc, false)
	p3, _ := newPeer(t, 3, nickC, makerLoc, false)
	p2, _ := newPeer(t, 2, nickD, takerLoc, false)
	for _, p := range []*peer.Peer{p5, p1, p3} {
		mustRegister(t, r, p)
	}
	s1 := r.Snapshot()
	if got := ids(s1); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("Snapshot = %v, want [1 3 5]", got)
	}
	if again := r.Snapshot(); len(again) != len(s1) || &again[0] != &s1[0] {
		t.Error("unchanged registry rebuilt its snapshot")
	}

	mustRegister(t, r, p2)
	s2 := r.Snapshot()
	if got := ids(s2); !slices.Equal(got, []uint64{1, 2, 3, 5}) {
		t.Fatalf("Snapshot after add = %v, want [1 2 3 5]", got)
	}
	if got := ids(s1); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("earlier snapshot changed to %v", got)
	}

	r.Remove(p3)
	s3 := r.Snapshot()
	if got := ids(s3); !slices.Equal(got, []uint64{1, 2, 5}) {
		t.Fatalf("Snapshot after remove = %v, want [1 2 5]", got)
	}
	if got := ids(s2); !slices.Equal(got, []uint64{1, 2, 3, 5}) {
		t.Fatalf("earlier snapshot changed to %v", got)
	}
	if got := ids(s1); !slices.Equal(got, []uint64{1, 3, 5}) {
		t.Fatalf("earliest snapshot changed to %v", got)
	}
	// Failed registrations and removals leave the snapshot alone.
	dup, _ := newPeer(t, 9, nickA, takerLoc, false)
	r.Register(dup, welcome)
	r.Remove(p3)
	if got := ids(r.Snapshot()); !slices.Equal(got, []uint64{1, 2, 5}) {
		t.Fatalf("Snapshot = %v, want [1 2 5]", got)
	}
	checkCounts(t, r, 3, 1, 2)
}

func TestCounts(t *testing.T) {
	r := registry.New(10)
	checkCounts(t, r, 0, 0, 0)
	m1, _ := newPeer(t, 1, nickA, makerLoc, false)
	m2, _ := newPeer(t, 2, nickB, jm.Location{Host: "127.0.0.1", Port: 27103}, false)
	t1, _ := newPeer(t, 3, nickC, takerLoc, false)
	mustRegister(t, r, m1)
	checkCounts(t, r, 1, 1, 0)
	mustRegister(t, r, t1)
	checkCounts(t, r, 2, 1, 1)
	mustRegister(t, r, m2)
	checkCounts(t, r, 3, 2, 1)
	r.Remove(m1)
	checkCounts(t, r, 2, 1, 1)
	r.Remove(t1)
	checkCounts(t, r, 1, 1, 0)
	r.Remove(m1) // already gone: no double decrement
	checkCounts(t, r, 1, 1, 0)
	r.Remove(m2)
	checkCounts(t, r, 0, 0, 0)
}

// Many goroutines register, check and remove overlapping nicks while others read; run
// with -race. Afterwards the registry must be consistent.
func TestConcurrent(t *testing.T) {
	r := registry.New(1000)
	const workers, rounds, nicks = 8, 50, 16
	nickOf := func(i int) string { return jm.NickFromPubKey([]byte(fmt.Sprint(i % nicks))) }
	peers := make([][]*peer.Peer, workers)
	for w := range workers {
		for i := range rounds {
			loc := takerLoc
			if i%3 == 0 {
				loc = makerLoc
			}
			p, _ := newPeer(t, uint64(w*rounds+i+1), nickOf(w*7+i), loc, false)
			peers[w] = append(peers[w], p)
		}
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := r.Snapshot()
				if got := ids(s); len(slices.Compact(got)) != len(s) {
					t.Error("a peer appears twice in a snapshot")
					return
				}
				total, makers, takers := r.Counts()
				if total != makers+takers || makers < 0 || takers < 0 || total > nicks {
					t.Errorf("Counts = %d, %d, %d", total, makers, takers)
					return
				}
				r.Lookup(nickOf(0))
			}
		})
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i, p := range peers[w] {
				res, owner := r.Register(p, welcome)
				switch res {
				case registry.Registered:
				case registry.Duplicate, registry.Checking, registry.Proven:
				default:
					t.Errorf("Register = %v", res)
				}
				if res != registry.Registered {
					if owner == nil || owner.Nick != p.Nick {
						t.Errorf("%v with owner %v", res, owner)
					}
					if r.BeginCheck(owner) {
						r.EndCheck(owner, i%4 == 1)
					}
				}
				if i%2 == 0 {
					r.Remove(p)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	snap := r.Snapshot()
	total, makers, takers := r.Counts()
	if total != len(snap) {
		t.Fatalf("Counts total %d, snapshot %d", total, len(snap))
	}
	wantMakers := 0
	seen := map[string]bool{}
	for _, p := range snap {
		if seen[p.Nick] {
			t.Fatalf("nick %s twice in snapshot", p.Nick)
		}
		seen[p.Nick] = true
		if r.Lookup(p.Nick) != p {
			t.Fatalf("snapshot peer %d is not the owner of %s", p.ID, p.Nick)
		}
		if p.Maker() {
			wantMakers++
		}
	}
	if makers != wantMakers || takers != total-wantMakers {
		t.Fatalf("Counts = %d, %d, %d; snapshot has %d makers", total, makers, takers, wantMakers)
	}
	// Everything can be removed again, leaving an empty registry.
	for _, p := range snap {
		if !r.Remove(p) {
			t.Fatalf("Remove(%d) = false", p.ID)
		}
	}
	checkCounts(t, r, 0, 0, 0)
	if len(r.Snapshot()) != 0 {
		t.Fatal("snapshot not empty")
	}
	if n := registry.CheckEntries(r); n != 0 {
		t.Fatalf("%d owner-check entries left in an empty registry", n)
	}
}

// TestRegisterThen: admitted runs exactly once, after every check has passed and before
// the welcome is queued (so admission bookkeeping is complete before the peer can see its
// answer); a refused or closed peer never runs it.
func TestRegisterThen(t *testing.T) {
	r := registry.New(1)
	a, _ := newPeer(t, 1, nickA, makerLoc, true)
	calls := 0
	res, _ := r.RegisterThen(a, welcome, func() {
		calls++
		if q := a.QueuedBytes(); q != 0 {
			t.Errorf("admitted ran with %d bytes already queued", q)
		}
	})
	if res != registry.Registered || calls != 1 {
		t.Fatalf("RegisterThen = %v after %d calls", res, calls)
	}
	never := func() { t.Error("admitted ran for a peer that was not registered") }
	dup, _ := newPeer(t, 2, nickA, makerLoc, true)
	if res, _ := r.RegisterThen(dup, welcome, never); res != registry.Duplicate {
		t.Fatalf("duplicate: %v", res)
	}
	full, _ := newPeer(t, 3, nickB, takerLoc, true)
	if res, _ := r.RegisterThen(full, welcome, never); res != registry.Full {
		t.Fatalf("full: %v", res)
	}
	r.SetMax(2)
	gone, _ := newPeer(t, 4, nickC, takerLoc, true)
	gone.Close(reason.CloseClientGone)
	if res, _ := r.RegisterThen(gone, welcome, never); res != registry.Gone {
		t.Fatalf("closed: %v", res)
	}
}

// TestRegisterVerified: the ownership rules of nick authentication (docs/protocol.md
// §5.6). A verified newcomer displaces a legacy owner, and a verified owner with the
// same key, in one step (the nick is never free, the count never over max); a verified
// owner with another key is a Conflict; a legacy claim on a verified owner is
// VerifiedOwner (never Duplicate: no owner check); Remove of the displaced peer then
// does nothing.
func TestRegisterVerified(t *testing.T) {
	r := registry.New(1)
	legacy, _ := newPeer(t, 1, nickA, makerLoc, false)
	mustRegister(t, r, legacy)
	v1, _ := newPeer(t, 2, nickA, makerLoc, false)
	v1.VerifiedKey = "02aa"
	if res, old := r.Register(v1, welcome); res != registry.Displaced || old != legacy {
		t.Fatalf("verified over legacy = %v, %v; want Displaced, legacy", res, old)
	}
	if r.Lookup(nickA) != v1 || r.Remove(legacy) {
		t.Fatal("the displaced legacy peer is still registered")
	}
	if v, total := r.Verified(); v != 1 || total != 1 {
		t.Fatalf("Verified = %d of %d", v, total)
	}
	v2, _ := newPeer(t, 3, nickA, makerLoc, false)
	v2.VerifiedKey = "02aa"
	if res, old := r.Register(v2, welcome); res != registry.Displaced || old != v1 {
		t.Fatalf("same key again = %v, %v; want Displaced, v1", res, old)
	}
	other, _ := newPeer(t, 4, nickA, makerLoc, true)
	other.VerifiedKey = "03bb"
	if res, owner := r.Register(other, welcome); res != registry.Conflict || owner != v2 || other.QueuedBytes() != 0 {
		t.Fatalf("another key = %v, %v; want Conflict, v2, nothing sent", res, owner)
	}
	claim, _ := newPeer(t, 5, nickA, takerLoc, true)
	if res, owner := r.Register(claim, welcome); res != registry.VerifiedOwner || owner != v2 {
		t.Fatalf("legacy claim = %v, %v; want VerifiedOwner, v2", res, owner)
	}
	checkCounts(t, r, 1, 1, 0)
	if !r.Remove(v2) {
		t.Fatal("Remove(v2)")
	}
	if v, total := r.Verified(); v != 0 || total != 0 {
		t.Fatalf("Verified after Remove = %d of %d", v, total)
	}
}
