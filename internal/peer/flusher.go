package peer

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Flusher writes queued lines for many peers from a few goroutines, with non-blocking
// vectored writes. It exists for the directory's latency: a broadcast used to start one
// writer goroutine per recipient, and Go's run queues are first in, first out, so a
// peer's read loop woken by the network waited behind up to a thousand writers — a
// runtime trace showed read loops waiting 6.5 ms at p99 and 28 ms at worst for a P. A
// Flusher bounds the goroutines writing broadcasts to GOMAXPROCS−1 (at least one), so a
// P is always left to run read loops and urgent writes at once.
//
// A peer whose socket buffer fills up is handed to its own blocking writer goroutine,
// which applies the write deadline (slow consumers are still cut) and gives the peer
// back when its queue is empty. Peers whose connection is not a socket (tests) always
// use writer goroutines.
type Flusher struct {
	shards   []flushShard
	lag      time.Duration  // Lag; tests shorten it
	wg       sync.WaitGroup // shard goroutines and the writer goroutines of f's peers; see Close
	handoffs atomic.Int64   // full sockets handed to a writer goroutine
}

// flushShard is one flushing goroutine's work list.
type flushShard struct {
	mu      sync.Mutex
	ready   []*Peer // peers with queued lines, in the order they became ready
	spare   []*Peer // recycled backing array for ready
	running bool    // a goroutine is draining ready
	cur     *round  // the round in progress; nil between rounds
	iov     []syscall.Iovec
	_       [64]byte // keep shards' locks on separate cache lines
}

// round is one pass over the peers that were ready when it began. The shard's goroutine
// and any helping broadcasters claim peers one at a time.
type round struct {
	peers []*Peer
	start time.Time
	next  atomic.Int64  // index of the next unclaimed peer
	left  atomic.Int64  // peers not yet finished
	done  chan struct{} // closed when left reaches 0
}

// NewFlusher returns a Flusher with n goroutines at most; n ≤ 0 means GOMAXPROCS−1,
// at least one.
func NewFlusher(n int) *Flusher {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	return &Flusher{shards: make([]flushShard, n), lag: Lag}
}

// add queues p for a flush; the caller has set p.writer.
func (f *Flusher) add(p *Peer) {
	s := &f.shards[p.ID%uint64(len(f.shards))]
	s.mu.Lock()
	s.ready = append(s.ready, p)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		f.wg.Add(1)
		go f.run(s)
	}
}

// run is a shard goroutine, counted in f.wg.
func (f *Flusher) run(s *flushShard) {
	defer f.wg.Done()
	s.run()
}

// Close waits for every goroutine f started: its shard goroutines and the writer
// goroutines of the peers using f (see outq.go). They end by themselves
// once their peers' queues are written or the peers are closed, so close the peers using
// f, and stop whatever sends to them, before calling Close; f must not be given work
// afterwards. The server's shutdown does so; Close is idempotent.
func (f *Flusher) Close() { f.wg.Wait() }

// Lag is how long a flush round may run before broadcasters help with it (see Help).
const Lag = 10 * time.Millisecond

// Help is the directory's backpressure: a broadcaster's read loop calls it after each
// broadcast. If a flush round has been running longer than Lag, the caller writes
// peers of that round itself until none is left to claim. A broadcaster thus reads its
// next line only as fast as the directory delivers (one flushing goroutine could
// otherwise be handed lines faster than it drains them, and the recipients would be cut
// as slow consumers), and under load the directory writes from as many goroutines as
// there are busy broadcasters. Lines queued meanwhile ride in the next round, many to a
// write. Flushing never blocks on a socket, so helping is bounded by one round.
func (f *Flusher) Help() {
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		r := s.cur
		s.mu.Unlock()
		if r != nil && time.Since(r.start) >= f.lag {
			iov := iovPool.Get().(*[]syscall.Iovec)
			s.work(r, iov)
			iovPool.Put(iov)
		}
	}
}

// run drains the shard's peers, round after round, and exits when none is left.
func (s *flushShard) run() {
	for {
		s.mu.Lock()
		batch := s.ready
		if len(batch) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.ready, s.spare = s.spare[:0], nil
		r := &round{peers: batch, start: time.Now(), done: make(chan struct{})}
		r.left.Store(int64(len(batch)))
		s.cur = r
		s.mu.Unlock()
		s.work(r, &s.iov)
		<-r.done // helpers finish the peers they claimed
		s.mu.Lock()
		s.cur = nil
		if s.spare == nil {
			s.spare = batch[:0]
		}
		s.mu.Unlock()
	}
}

// work flushes r's peers until none is left to claim. Peers with more to write go to
// the back of the shard's list, for the next round.
func (s *flushShard) work(r *round, iov *[]syscall.Iovec) {
	for {
		i := r.next.Add(1) - 1
		if i >= int64(len(r.peers)) {
			return
		}
		p := r.peers[i]
		r.peers[i] = nil
		if p.flush(iov) {
			s.mu.Lock()
			s.ready = append(s.ready, p)
			s.mu.Unlock()
		}
		if r.left.Add(-1) == 0 {
			close(r.done)
		}
	}
}
