package ops

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxConns is the cap on open ops connections when Options.MaxConns is 0. The ops
// surface is for one operator, a health checker and a Prometheus scraper: 64 is plenty
// for them and a negligible share of the process's file descriptors.
const DefaultMaxConns = 64

// The ops HTTP server's limits (see Server).
const (
	// ReadHeaderTimeout bounds a request's headers, counted from its first byte (from
	// the connection's start for the first request): a silent connection is closed after it.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request (headers and body). It does not limit
	// a long answer: net/http clears the read deadline once the request is read.
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds writing a response, counted from the end of the request. The
	// event stream renews it for every event; pprof's profile and trace extend it by the
	// duration asked for.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection that sends no next request.
	IdleTimeout = 30 * time.Second
	// MaxHeaderBytes caps a request's headers (net/http's default is 1 MiB).
	MaxHeaderBytes = 8 << 10
)

// silentGrace is how long a new connection may go without a request before the full
// listener may close it for a newcomer: time for a client's request, sent with the
// connection, to be read (an eviction then would reset it). It also paces evictions in
// a flood of silent connections: the cap every silentGrace (1 280/s at 64).
const silentGrace = 50 * time.Millisecond

// timeouts are the server's limits; tests shorten them.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultTimeouts = timeouts{readHeader: ReadHeaderTimeout, read: ReadTimeout, write: WriteTimeout, idle: IdleTimeout}

// MaxConns is the effective cap on open ops connections.
func (o *Ops) MaxConns() int {
	if o.opt.MaxConns > 0 {
		return o.opt.MaxConns
	}
	return DefaultMaxConns
}

// MaxFDs is the most file descriptors the ops connections take at once: MaxConns, plus
// the connection Listener has accepted and holds while it waits for a slot.
func (o *Ops) MaxFDs() int { return o.MaxConns() + 1 }

// Server returns the HTTP server for the ops endpoints, with the timeouts and header
// cap above. Serve it on Listener(ln): the two share the bookkeeping that closes idle
// keep-alive connections while the listener is full.
func (o *Ops) Server() *http.Server { return o.newServer(defaultTimeouts) }

func (o *Ops) newServer(t timeouts) *http.Server {
	return &http.Server{
		Handler:           o.mux,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         o.conns.state,
		// Its own complaints (TLS handshakes that fail: scanners, plain-HTTP clients on
		// the HTTPS listener) at DEBUG, not on stderr.
		ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelDebug),
	}
}

// Listener wraps ln so that at most MaxConns ops connections are open at once. When
// one more arrives and every slot is taken, a connection that can go without loss is
// closed for it: the one idle longest between keep-alive requests or, without one, the
// oldest that has sent no complete request for silentGrace (as the peer port's handshake
// pool evicts its oldest silent connection). While the newcomer waits, a connection that
// finishes a request is closed instead of kept alive. Only connections running a handler
// (a request being answered, the live page's stream) keep their slot regardless. Until
// the newcomer has a slot Accept is not called again: further connections wait in the
// kernel's accept backlog and hold no file descriptor of this process (over the backlog
// the kernel drops their SYNs), so the ops listener holds at most MaxFDs descriptors and
// a flood of ops connections cannot take those the peer port needs.
//
// It is golang.org/x/net/netutil.LimitListener with that eviction added. Eviction needs
// to know that a connection is waiting, so this Accept accepts first and then takes a
// slot (LimitListener takes the slot first and cannot tell a waiting connection from
// none), at the price of the one descriptor of the connection it holds while it waits.
// Eviction keeps a flood of silent or one-request keep-alive connections from holding
// every slot until their timeouts, so a health check on a fresh connection still gets
// through. A connection whose next request arrives just as it is closed sees what an
// idle timeout would show it, which a keep-alive client handles by retrying.
//
// Off loopback the connections are TLS (tls.NewListener over the capped listener): the
// handshake runs in the server's connection goroutine under its header timeout, and a
// connection that has not completed it counts as silent.
func (o *Ops) Listener(ln net.Listener) net.Listener {
	n := o.MaxConns()
	var l net.Listener = &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{}), conns: o.conns}
	if o.tlsConf != nil {
		l = tls.NewListener(l, o.tlsConf)
	}
	return l
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one token per open connection
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
	conns     *connTracker
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return &limitConn{Conn: c, release: l.release}, nil
	default:
	}
	// Every slot is taken: make room if a connection can go, else look again every
	// silentGrace (a young silent connection ages, a request ends and leaves an idle one).
	l.conns.setFull(true)
	defer l.conns.setFull(false)
	var retry <-chan time.Time
	if !l.conns.evict(time.Now()) {
		t := time.NewTicker(silentGrace)
		defer t.Stop()
		retry = t.C
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: l.release}, nil
		case now := <-retry:
			l.conns.evict(now)
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

func (l *limitListener) release() { <-l.slots }

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// connTracker knows which ops connections are idle between keep-alive requests and
// which have not completed a request yet (http.Server's ConnState hook: StateIdle,
// StateNew; a connection turns StateActive once it has sent a request's headers), and
// closes them while the listener is full.
type connTracker struct {
	mu      sync.Mutex
	idle    map[net.Conn]time.Time // idle since
	silent  map[net.Conn]time.Time // accepted at, no complete request yet
	full    bool                   // a connection is waiting for a slot
	evicted int                    // connections closed because the listener was full
}

func newConnTracker() *connTracker {
	return &connTracker{idle: map[net.Conn]time.Time{}, silent: map[net.Conn]time.Time{}}
}

func (t *connTracker) state(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	delete(t.idle, c)
	delete(t.silent, c)
	switch {
	case s == http.StateNew:
		t.silent[c] = time.Now()
	case s == http.StateIdle && t.full:
		t.evicted++
		t.mu.Unlock()
		// The response is flushed before the state turns idle: nothing of it is lost.
		_ = closeNow(c)
		return
	case s == http.StateIdle:
		t.idle[c] = time.Now()
	}
	t.mu.Unlock()
}

// setFull records whether a connection waits for a slot.
func (t *connTracker) setFull(full bool) {
	t.mu.Lock()
	t.full = full
	t.mu.Unlock()
}

// evict closes the connection idle longest or, without one, the oldest that has been
// silent for silentGrace, and reports whether there was one.
func (t *connTracker) evict(now time.Time) bool {
	t.mu.Lock()
	victim := oldest(t.idle, now)
	if victim == nil {
		victim = oldest(t.silent, now.Add(-silentGrace))
	}
	if victim != nil {
		delete(t.idle, victim)
		delete(t.silent, victim)
		t.evicted++
	}
	t.mu.Unlock()
	if victim == nil {
		return false
	}
	_ = closeNow(victim)
	return true
}

// oldest is the connection with the earliest time in m not after limit, nil when
// there is none.
func oldest(m map[net.Conn]time.Time, limit time.Time) net.Conn {
	var victim net.Conn
	var since time.Time
	for c, at := range m {
		if !at.After(limit) && (victim == nil || at.Before(since)) {
			victim, since = c, at
		}
	}
	return victim
}

// evictions is how many idle connections were closed because the listener was full.
func (t *connTracker) evictions() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}

// isFull reports whether a connection is waiting for a slot.
func (t *connTracker) isFull() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.full
}
