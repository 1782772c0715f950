package peer_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"go.uber.org/goleak"
)

// TestFlusherDeliversInOrder: broadcasts from several senders to several socket peers go
// through one flusher; while one reader is late its socket fills, the rest of its queue
// goes to a writer goroutine, and every line still arrives once, in each sender's order.
//
// With lag 0 every sender also helps with every round in progress, so peers are flushed
// by several goroutines at once.
func TestFlusherDeliversInOrder(t *testing.T) {
	for _, lag := range []time.Duration{peer.Lag, 0} {
		t.Run(fmt.Sprint("lag=", lag), func(t *testing.T) { testFlusherDeliversInOrder(t, lag) })
	}
}

func testFlusherDeliversInOrder(t *testing.T, lag time.Duration) {
	f := peer.NewFlusher(1)
	f.SetLag(lag)
	handoffs := f.Handoffs()
	const peers, senders, perSender = 4, 3, 400
	body := strings.Repeat("f", 900)
	type side struct {
		p   *peer.Peer
		rd  *bufio.Reader
		ctr *stats.Counters
	}
	sides := make([]side, peers)
	for i := range sides {
		srv, cli := tcpPair(t)
		if i == 0 { // the late reader: small buffers so its socket fills
			_ = srv.SetWriteBuffer(32 << 10)
			_ = cli.SetReadBuffer(32 << 10)
		}
		ctr := new(stats.Counters)
		p := peer.New(uint64(i), srv, peer.Limits{QueueBytes: 64 << 20, WriteTimeout: 10 * time.Second}, ctr, slog.New(slog.DiscardHandler))
		p.UseFlusher(f)
		t.Cleanup(func() { p.Close(reason.CloseShutdown) })
		sides[i] = side{p: p, rd: bufio.NewReader(cli), ctr: ctr}
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perSender {
				l := []byte(fmt.Sprintf("%d %04d %s\r\n", s, n, body))
				for _, sd := range sides {
					if !sd.p.Send(l) {
						t.Errorf("send %d/%d refused", s, n)
						return
					}
				}
				f.Help()
			}
		}()
	}
	// Peer 0's reader starts late: only once the flusher has handed a full socket to a
	// writer goroutine. Peer 0's fills for certain while nobody reads it (its buffers
	// are fixed at 32 KiB, the senders queue about 1 MB for it), so the wait ends.
	errs := make(chan error, peers)
	for i, sd := range sides {
		go func() {
			if i == 0 && !testkit.Poll(testkit.Timeout, func() bool { return f.Handoffs() > handoffs }) {
				errs <- fmt.Errorf("peer 0: no socket was handed to a writer goroutine within %v while nobody read it", testkit.Timeout)
				return
			}
			next := make([]int, senders)
			for range senders * perSender {
				l, err := sd.rd.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("peer %d: %v after %v", i, err, next)
					return
				}
				var s, n int
				if _, err := fmt.Sscanf(l, "%d %d", &s, &n); err != nil || s >= senders {
					errs <- fmt.Errorf("peer %d: bad line %.40q", i, l)
					return
				}
				if n != next[s] {
					errs <- fmt.Errorf("peer %d: sender %d line %d arrived, want %d", i, s, n, next[s])
					return
				}
				next[s]++
			}
			errs <- nil
		}()
	}
	for range peers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if f.Handoffs() == handoffs {
		t.Error("the late reader's socket never filled: the hand-off to a writer goroutine was not exercised")
	}
	for i, sd := range sides {
		// The reader may see the last bytes before the goroutine that wrote them has
		// taken them off the peer's queue count.
		testkit.Eventually(t, fmt.Sprintf("peer %d's queue count reaching 0", i), func() bool { return sd.p.QueuedBytes() == 0 })
		if sd.p.Closed() {
			t.Errorf("peer %d closed: %v", i, sd.p.Reason())
		}
	}
}

// TestFlusherSlowConsumerStillCut: a peer that stops reading is handed from the flusher
// to a writer goroutine, whose write deadline cuts it; the others keep receiving.
func TestFlusherSlowConsumerStillCut(t *testing.T) {
	f := peer.NewFlusher(1)
	srvA, _ := tcpPair(t) // never read
	srvB, cliB := tcpPair(t)
	_ = srvA.SetWriteBuffer(4096)
	lim := peer.Limits{QueueBytes: 64 << 20, WriteTimeout: 200 * time.Millisecond}
	a := peer.New(1, srvA, lim, new(stats.Counters), slog.New(slog.DiscardHandler))
	b := peer.New(2, srvB, lim, new(stats.Counters), slog.New(slog.DiscardHandler))
	a.UseFlusher(f)
	b.UseFlusher(f)
	defer a.Close(reason.CloseShutdown)
	defer b.Close(reason.CloseShutdown)

	l := []byte(strings.Repeat("s", 4000) + "\r\n")
	const n = 500 // 2 MB: far more than A's socket buffers hold
	go func() {
		rd := bufio.NewReader(cliB)
		for range n {
			if _, err := rd.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	for range n {
		a.Send(l)
		b.Send(l)
	}
	waitClosed(t, a.Done(), "slow consumer A")
	if r := a.Reason(); r != reason.CloseWriteTimeout {
		t.Fatalf("A closed with %v, want %v", r, reason.CloseWriteTimeout)
	}
	// B's reader takes all n lines: its queue empties (Close would empty it too, hence
	// the check below).
	testkit.Eventually(t, "B's queue draining", func() bool { return b.QueuedBytes() == 0 })
	if b.Closed() || b.QueuedBytes() != 0 {
		t.Fatalf("B: closed=%v queued=%d; want everything delivered", b.Closed(), b.QueuedBytes())
	}
}

// TestFlusherWriteError: a peer whose connection broke is closed with a write error by
// the flusher, and the flusher goes on with the others.
func TestFlusherWriteError(t *testing.T) {
	f := peer.NewFlusher(1)
	srvA, cliA := tcpPair(t)
	srvB, cliB := tcpPair(t)
	_ = cliA.SetLinger(0)
	cliA.Close()        // RST
	awaitReset(t, srvA) // from now on every write to A fails
	lim := peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Second}
	a := peer.New(1, srvA, lim, new(stats.Counters), slog.New(slog.DiscardHandler))
	b := peer.New(2, srvB, lim, new(stats.Counters), slog.New(slog.DiscardHandler))
	a.UseFlusher(f)
	b.UseFlusher(f)
	defer b.Close(reason.CloseShutdown)
	for i := range 50 {
		a.Send(line(fmt.Sprintf("x%d", i)))
		b.Send(line(fmt.Sprintf("x%d", i)))
	}
	waitClosed(t, a.Done(), "A after RST")
	if r := a.Reason(); r != reason.CloseWriteError {
		t.Fatalf("A closed with %v, want write error", r)
	}
	got := readLines(t, cliB, 50)
	if got[0] != "x0\r\n" || got[49] != "x49\r\n" {
		t.Fatalf("B got %q … %q", got[0], got[49])
	}
}

// TestFlusherCloseWaitsForWriters: Close waits for a writer goroutine the flusher handed a
// full socket to, and returns once its peer is closed; nothing the flusher started is
// left running.
func TestFlusherCloseWaitsForWriters(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := peer.NewFlusher(1)
	srv, _ := tcpPair(t) // never read
	_ = srv.SetWriteBuffer(4096)
	p := peer.New(1, srv, peer.Limits{QueueBytes: 64 << 20, WriteTimeout: time.Minute}, new(stats.Counters), slog.New(slog.DiscardHandler))
	p.UseFlusher(f)
	l := []byte(strings.Repeat("w", 4000) + "\r\n")
	for range 500 { // 2 MB: far more than the socket buffers hold
		p.Send(l)
	}
	testkit.Eventually(t, "the full socket handed to a writer goroutine", func() bool { return f.Handoffs() > 0 })
	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	// The writer goroutine is blocked in a write for up to a minute: Close must not
	// return meanwhile. (A bounded check that something does not happen, not a wait.)
	select {
	case <-closed:
		t.Fatal("Close returned while a writer goroutine was blocked in a write")
	case <-time.After(50 * time.Millisecond):
	}
	p.Close(reason.CloseShutdown) // the write fails, the writer goroutine ends
	select {
	case <-closed:
	case <-time.After(testkit.Timeout):
		t.Fatalf("Close did not return within %v of the peer's close", testkit.Timeout)
	}
	goleak.VerifyNone(t, ignore)
}

// TestFlusherCloseLeavesNoGoroutine: after broadcasts and urgent lines to socket peers
// through a flusher, closing the peers and then the flusher leaves no goroutine behind.
func TestFlusherCloseLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	f := peer.NewFlusher(2)
	const peers, n = 6, 300
	ps := make([]*peer.Peer, peers)
	read := make(chan error, peers)
	for i := range ps {
		srv, cli := tcpPair(t)
		ps[i] = peer.New(uint64(i), srv, peer.Limits{QueueBytes: 64 << 20, WriteTimeout: 10 * time.Second}, new(stats.Counters), slog.New(slog.DiscardHandler))
		ps[i].UseFlusher(f)
		go func() {
			rd := bufio.NewReader(cli)
			for range 2 * n {
				if _, err := rd.ReadString('\n'); err != nil {
					read <- err
					return
				}
			}
			read <- nil
		}()
	}
	l := []byte(strings.Repeat("c", 500) + "\r\n")
	for range n {
		for _, p := range ps {
			p.Send(l)
			p.SendUrgent(l)
		}
		f.Help()
	}
	for range peers {
		select {
		case err := <-read:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(testkit.Timeout):
			t.Fatalf("lines not delivered within %v", testkit.Timeout)
		}
	}
	for _, p := range ps {
		p.Close(reason.CloseShutdown)
	}
	f.Close()
	f.Close() // idempotent
	goleak.VerifyNone(t, ignore)
}
