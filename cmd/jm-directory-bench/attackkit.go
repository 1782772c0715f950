package main

// Helpers shared by the attack scenarios (silentflood, byteflood, peerlist): raw
// connections from spread source addresses, a read-rate-limited connection for slow
// victims, a background sampler of the directory's RSS, a byte-rate flag, and the
// classification of a failed join as the victim sees it.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// sourceAddrs returns the loopback source addresses connections are spread over:
// 127.0.0.1 … 127.0.0.n, or nil (the kernel's choice, 127.0.0.1) for n ≤ 1. Each source
// address has its own ephemeral port range towards the directory.
func sourceAddrs(n int) ([]net.IP, error) {
	if n <= 1 {
		return nil, nil
	}
	if n > 254 {
		return nil, fmt.Errorf("--sources %d: at most 254 addresses in 127.0.0.1-127.0.0.254", n)
	}
	out := make([]net.IP, n)
	for i := range out {
		out[i] = net.IPv4(127, 0, 0, byte(i+1)).To4()
	}
	return out, nil
}

// describeSources names the source addresses for the report.
func describeSources(ips []net.IP) string {
	switch len(ips) {
	case 0:
		return "kernel's choice"
	case 1:
		return ips[0].String()
	}
	return ips[0].String() + "-" + ips[len(ips)-1].String()
}

// sourceRing hands out source addresses round robin, to attackers and honest peers
// alike, so that the source address tells the directory nothing.
type sourceRing struct {
	ips  []net.IP
	next atomic.Uint64
}

// pick returns the next source address (nil: the kernel's choice).
func (s *sourceRing) pick() net.IP {
	if len(s.ips) == 0 {
		return nil
	}
	return s.ips[(s.next.Add(1)-1)%uint64(len(s.ips))]
}

// dialRaw opens a TCP connection to addr from src (nil: the kernel's choice) with
// SO_RCVBUF rcvbuf (0: kernel autotuning), giving up after timeout. Nothing is sent.
func dialRaw(ctx context.Context, addr string, src net.IP, rcvbuf int, timeout time.Duration) (net.Conn, error) {
	nd := net.Dialer{Timeout: timeout, KeepAlive: -1}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	if src != nil || rcvbuf > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			if src != nil {
				if err := bindNoPort(c); err != nil {
					return err
				}
			}
			if rcvbuf > 0 {
				return setRcvbuf(c, rcvbuf)
			}
			return nil
		}
	}
	return nd.DialContext(ctx, "tcp", addr)
}

// Outcomes of an honest peer's join, as the peer sees them.
const (
	outcomeRejected = "rejected"           // a 795 with accepted false
	outcomeTimeout  = "timeout"            // no answer (or no connection) in time
	outcomeClosed   = "closed_without_795" // refused, reset or closed before any 795
	outcomeOther    = "other"              // a malformed 795, or a local error
)

// joinOutcome classifies a failed join (dialer.join's error).
func joinOutcome(err error) string {
	var he *hsError
	if !errors.As(err, &he) {
		if errClass(err) == "timeout" {
			return outcomeTimeout
		}
		return outcomeOther
	}
	switch {
	case strings.HasPrefix(he.reason, "rejected: "):
		return outcomeRejected
	case strings.HasPrefix(he.reason, "bad 795"):
		return outcomeOther
	case he.err != nil && errClass(he.err) == "timeout":
		return outcomeTimeout
	case he.err != nil && (errClass(he.err) == "no source port available" || errClass(he.err) == "out of file descriptors"):
		return outcomeOther // our own shortage, not the directory's doing
	}
	return outcomeClosed
}

// pacedConn is a connection whose reads are limited to rate bytes per second (a token
// bucket of burst bytes): a slow reader, for a victim that really drains its socket at a
// given speed. It is used by one reading goroutine; n counts the bytes read.
type pacedConn struct {
	net.Conn
	rate   float64 // bytes/s
	burst  float64 // bytes
	tokens float64
	last   time.Time
	n      atomic.Int64
	// unpaced lifts the limit (from any goroutine): the rest is read as fast as it comes.
	unpaced atomic.Bool
	closed  atomic.Bool
}

// Close closes the connection and ends a Read waiting for tokens.
func (c *pacedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// minPacedRead is the smallest read a paced connection waits for tokens to make (unless
// the caller's buffer is smaller): fewer, larger reads at the same average rate.
const minPacedRead = 4096

func newPacedConn(c net.Conn, rate float64, burst int) *pacedConn {
	burst = max(burst, minPacedRead)
	return &pacedConn{Conn: c, rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// Read waits until the bucket holds enough tokens, then reads at most that many bytes.
func (c *pacedConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	want := float64(min(len(b), minPacedRead))
	for !c.unpaced.Load() {
		now := time.Now()
		c.tokens = min(c.burst, c.tokens+c.rate*now.Sub(c.last).Seconds())
		c.last = now
		if c.tokens >= want {
			break
		}
		// This is the rate limit itself: wait for the bucket to refill (in short steps,
		// so that Close ends a long wait).
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		time.Sleep(min(time.Duration((want-c.tokens)/c.rate*float64(time.Second)), 20*time.Millisecond))
	}
	if c.unpaced.Load() {
		n, err := c.Conn.Read(b)
		c.n.Add(int64(n))
		return n, err
	}
	n, err := c.Conn.Read(b[:min(len(b), int(c.tokens))])
	c.tokens -= float64(n)
	c.n.Add(int64(n))
	return n, err
}

// rssSampler reads a process's VmRSS every interval in the background and keeps the
// peak.
type rssSampler struct {
	peak    atomic.Int64
	samples atomic.Int64
	err     atomic.Value // first error (string), if any
	stop    chan struct{}
	done    sync.WaitGroup
}

// startRSS starts sampling pid every interval (one reading at once).
func startRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	sample := func() {
		v, err := readRSS(pid)
		if err != nil {
			s.err.CompareAndSwap(nil, err.Error())
			return
		}
		s.samples.Add(1)
		for {
			p := s.peak.Load()
			if v <= p || s.peak.CompareAndSwap(p, v) {
				return
			}
		}
	}
	sample()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return s
}

// finish stops sampling (after one last reading) and returns the peak, or the first
// error when no reading succeeded.
func (s *rssSampler) finish() (int64, error) {
	close(s.stop)
	s.done.Wait()
	if s.samples.Load() == 0 {
		msg, _ := s.err.Load().(string)
		return 0, errors.New(msg)
	}
	return s.peak.Load(), nil
}

// mib is bytes in MiB, rounded to 0.001.
func mib(b int64) float64 { return round3(float64(b) / (1 << 20)) }

// byteRate is a flag of bytes per second: "200KB/s", "200k", "1.5MiB/s", "204800".
// K/KB and M/MB are powers of 1000, KiB and MiB powers of 1024.
type byteRate float64

func (r *byteRate) String() string { return strconv.FormatFloat(float64(*r), 'f', -1, 64) }

func (r *byteRate) Set(s string) error {
	v, err := parseBytes(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if err != nil || v <= 0 {
		return errors.New("want a byte rate like 200KB/s, 1MiB/s or 204800")
	}
	*r = byteRate(v)
	return nil
}

// byteSize is a flag of bytes: "64KiB", "100MB", "65536" (same units as byteRate).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(strings.TrimSpace(s))
	if err != nil || v < 0 || v > math.MaxInt64/2 {
		return errors.New("want a size like 64KiB, 100MB or 65536")
	}
	*b = byteSize(v)
	return nil
}

// parseBytes parses a number with an optional unit suffix (case-insensitive): k, kb,
// m, mb, g, gb (powers of 1000), kib, mib, gib (powers of 1024), b.
func parseBytes(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}}
	ls := strings.ToLower(s)
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(ls, u.suffix) {
			ls, mult = strings.TrimSpace(strings.TrimSuffix(ls, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(ls, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("not a number")
	}
	return v * mult, nil
}

// pct is 100·n/d rounded to 0.001 (0 when d is 0).
func pct(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return round3(100 * float64(n) / float64(d))
}

// cutInfo records whether and when a connection was ended by the other side.
type cutInfo struct {
	mu    sync.Mutex
	cut   bool
	at    time.Time
	class string // errClass of the read error
}

// set records a cut (the first one only).
func (c *cutInfo) set(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cut {
		c.cut, c.at, c.class = true, time.Now(), errClass(err)
	}
}

// get returns what set recorded.
func (c *cutInfo) get() (cut bool, at time.Time, class string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut, c.at, c.class
}
