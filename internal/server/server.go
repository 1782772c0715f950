// Package server is the composition root of the directory node: it is handed connections
// (Accept) or a listener (Serve), runs each connection's handshake under a deadline, then
// its read loop, and wires the registry, router and heartbeat together. It owns no flags
// and reads no environment: it is configured with a config.Config.
//
// Files by concern: server.go (New, Serve, Accept, shutdown), admit.go (PROXY header,
// handshake, owner check, rejection), readloop.go (the read loop; what a message does is
// the router's, internal/router/dispatch.go), status.go (Status, Health, recent
// departures), reload.go (SIGHUP, and the config's translation into the sub-settings of
// the heartbeat, the rate limits and dispatch).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Version is the server version shown in the motd, the logs, /status and build_info in
// /metrics: buildinfo.Version, stamped by scripts/release.sh.
var Version = buildinfo.Version

// Server is one directory node serving one network.
type Server struct {
	cfg     atomic.Pointer[config.Config] // replaced whole by Reload
	log     *slog.Logger
	nick    string
	reg     *registry.Registry
	rt      *router.Router
	book    *orderbook.Book // the offers seen (router), dropped when their maker leaves
	sweeper *liveness.Sweeper
	flusher *peer.Flusher  // writes every peer's queued lines from GOMAXPROCS−1 goroutines
	clients *circuit.Table // per-circuit limits, caps and bans (tor_proxy_protocol)
	ctr     stats.Counters
	started time.Time

	dir atomic.Pointer[dirLines] // current 795 lines

	nextID  atomic.Uint64
	pending pendingPool // connections that have not finished the handshake (pending.go)
	early   earlyCloses // closes before the handshake, for the periodic summary

	summaryEvery time.Duration // period of the early-close summary (summaryEvery; tests shorten it)
	outbound     peer.Outbound // bytes queued to all peers, and their bound

	mu      sync.Mutex              // guards conns and closing
	conns   map[*peer.Peer]struct{} // every open connection
	closing bool
	wg      sync.WaitGroup // connection goroutines and the heartbeat

	listening   atomic.Bool
	recent      recentDisconnects
	checks      atomic.Pointer[[]func() (bool, string)] // more health checks (the onion)
	selfProbe   atomic.Pointer[selfProbeToken]          // the self-probe expected (selfprobe.go)
	authResults *authCounters                           // nick-authentication results (admit.go)
}

// dirLines caches the directory side of the handshake.
type dirLines struct {
	dir        handshake.Directory
	accept     []byte // encoded 795 accepted:true
	acceptAuth []byte // the same advertising nick_auth, for a client running the round
}

// New builds a server from a validated configuration and the directory's identity.
func New(cfg config.Config, id jm.Identity, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Location != "" {
		if _, err := jm.ParseLocation(cfg.Location, true); err != nil {
			return nil, fmt.Errorf("location %q: %w", cfg.Location, err)
		}
	}
	s := &Server{
		log:     log,
		nick:    id.Nick,
		reg:     registry.New(cfg.MaxPeers),
		started: time.Now(),
		conns:   map[*peer.Peer]struct{}{},
		flusher: peer.NewFlusher(0),
		book:    orderbook.New(),
		clients: circuit.NewTable(circuit.DefaultMaxIdle),

		summaryEvery: summaryEvery,
		authResults:  newAuthCounters(),
	}
	s.outbound.SetBound(max(cfg.OutboundTotalBytes, cfg.OutboundQueueBytes))
	s.cfg.Store(&cfg)
	s.rt = router.New(s.reg, &s.ctr, id.Nick, cfg.Location)
	s.rt.SetBackPressure(s.flusher.Help)
	s.rt.SetOrderbook(s.book)
	s.sweeper = liveness.New(s.reg, s.rt, heartbeatOf(&cfg), log)
	s.setDirectory(cfg.Location)
	return s, nil
}

// conf is the configuration in force.
func (s *Server) conf() *config.Config { return s.cfg.Load() }

// Nick is the directory's own nick.
func (s *Server) Nick() string { return s.nick }

// Location is the directory's advertised location-string ("" while unknown).
func (s *Server) Location() string { return s.rt.Self().Location }

// Orderbook is the live orderbook: the offers makers announce or send the directory.
func (s *Server) Orderbook() *orderbook.Book { return s.book }

// Counters exposes the server's counters.
func (s *Server) Counters() *stats.Counters { return &s.ctr }

// MOTD is the full message of the day: the operator's text and a version line.
func (s *Server) MOTD() string {
	return s.conf().MOTD + "\njm-directory-server version: " + Version
}

// SetLocation changes the directory's advertised location-string.
func (s *Server) SetLocation(loc string) {
	s.rt.SetSelf(s.nick, loc)
	s.setDirectory(loc)
}

func (s *Server) setDirectory(loc string) {
	d := handshake.Directory{Nick: s.nick, Network: s.conf().Network, Location: loc, MOTD: s.MOTD()}
	s.dir.Store(&dirLines{dir: d, accept: wire.AppendEnvelope(nil, wire.TypeDNHandshake, d.Accept()),
		acceptAuth: wire.AppendEnvelope(nil, wire.TypeDNHandshake, d.AcceptNickAuth())})
}

// Serve accepts connections from ln until ctx ends, then stops: it closes the listener
// and every connection and waits for their goroutines. It returns nil after a shutdown
// requested through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.AdvertiseListener(ln.Addr())
	if err := s.checkNickAuth(); err != nil {
		ln.Close()
		return err
	}
	s.listening.Store(true)
	defer s.listening.Store(false)
	hbCtx, stopHB := context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweeper.Run(hbCtx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.logEarlyCloses(hbCtx, s.summaryEvery)
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	var backoff time.Duration
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Out of descriptors or a similar passing condition: wait and retry rather
			// than stop serving everybody.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.Accept(c)
		}()
	}
	stopHB()
	s.shutdown()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// AdvertiseListener derives the advertised location-string from the listen address on
// regtest (plain TCP) when none is configured. Serve calls it; calling it earlier lets the
// caller log the address clients should use.
func (s *Server) AdvertiseListener(a net.Addr) {
	if s.conf().Location == "" && s.conf().Network == "regtest" && s.Location() == "" {
		s.SetLocation(localLocation(a))
	}
}

// localLocation is the regtest location-string for a plain-TCP listener.
func localLocation(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() || !ta.IP.IsLoopback() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(ta.Port))
}

// shutdown closes every connection, then waits for every goroutine the server started:
// the accept, read-loop and heartbeat goroutines (s.wg), then the router's ";D" window
// timer, then the flusher's shard and writer goroutines. Closing the connections ends
// them all: reads and writes fail at once, and the longest other wait is a nick check's
// (NickCheckTimeout, then at most 5 s for the old owner's departure). So the wait has no
// deadline of its own; a warning is logged if it takes longer than 4 s.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	all := make([]*peer.Peer, 0, len(s.conns))
	for p := range s.conns {
		all = append(all, p)
	}
	s.mu.Unlock()
	for _, p := range all {
		p.Close(reason.CloseShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()       // nothing reads, sends or departs any more
		s.rt.Close()      // no departure window left open
		s.flusher.Close() // every peer is closed: its goroutines end
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(4 * time.Second):
		s.log.Warn("shutdown: goroutines still running after 4s; waiting for them")
	}
	<-done
}

// Listening reports whether Serve is accepting connections.
func (s *Server) Listening() bool { return s.listening.Load() }

func (s *Server) track(p *peer.Peer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[p] = struct{}{}
	return true
}

func (s *Server) untrack(p *peer.Peer) {
	s.mu.Lock()
	delete(s.conns, p)
	s.mu.Unlock()
}

// Accept handles one connection: it reads the PROXY header when tor_proxy_protocol is
// on, admits the connection on its circuit, runs the handshake and, once the peer is
// accepted, starts a fresh goroutine for the peer's read loop and returns. The
// handshake's deep call stack (JSON decoding, validation) stays behind in this
// goroutine, so an idle peer's goroutine keeps only the small stack its read loop
// needs: stacks are most of a peer's memory. Callers run Accept in a goroutine of their
// own.
func (s *Server) Accept(conn net.Conn) {
	id := s.nextID.Add(1)
	log := s.log.With("conn", id)
	cfg := s.conf()
	p := peer.New(id, conn, peer.Limits{QueueBytes: cfg.OutboundQueueBytes, WriteTimeout: cfg.WriteTimeout,
		LagBytes: min(cfg.OutboundLagBytes, cfg.OutboundQueueBytes), Total: &s.outbound}, &s.ctr, log)
	p.UseFlusher(s.flusher)
	if !s.track(p) {
		conn.Close()
		return
	}
	// The connection counts as handshaking (in s.pending, and in its circuit's pending
	// count once it has a circuit) until endHandshake: when it is registered, just
	// before its 795 is queued, so a client that sees its answer can rely on the counts;
	// or when it is refused.
	start := time.Now()
	pc := &pendingConn{p: p}
	var cl *circuit.Client
	handshaking := true
	endHandshake := func() {
		if !handshaking {
			return
		}
		handshaking = false
		s.pending.remove(pc)
		if cl != nil {
			s.clients.Handshaked(cl)
		}
	}
	// refuse ends a connection that was never accepted.
	refuse := func(why reason.Close) {
		endHandshake()
		p.Close(why)
		s.ctr.Close(p.Reason())
		s.untrack(p)
		if why != reason.CloseSelfProbe { // not a client: no early close
			s.early.add(p.Reason())
		}
		log.Debug("closed before handshake", "reason", p.Reason().String())
	}
	if victim, why := s.pending.add(pc, cfg.MaxPendingHandshakes); victim != nil {
		victim.p.Close(why) // its own goroutine sees the close and counts it
	}
	fb := &firstByteReader{conn: conn, pc: pc, handshake: start.Add(cfg.HandshakeTimeout)}
	_ = conn.SetReadDeadline(earliest(start.Add(cfg.FirstByteTimeout), fb.handshake))
	lr := wire.NewLineReader(fb, cfg.MaxLineLength)
	var cid circuit.ID
	if cfg.TorProxyProtocol {
		var ok bool
		if cid, ok = s.proxyHeader(p, lr); !ok {
			refuse(p.Reason())
			return
		}
		fb.restart(lr.Buffered(), cfg.FirstByteTimeout)
	}
	opened, why := s.clients.Open(cid, time.Now(), circuitLimits(cfg))
	if why != reason.CloseNone {
		refuse(why)
		return
	}
	cl = opened
	steps := handshakeSteps{
		read:     func() { pc.read.Store(true) },
		admitted: func() { endHandshake(); s.ctr.Accepted.Add(1) },
		notPeer:  endHandshake,
		awaitProof: func(on bool) {
			var t int64
			if on {
				t = time.Now().UnixNano()
			}
			pc.proofSince.Store(t)
		},
	}
	if !s.handshake(p, lr, steps) {
		refuse(p.Reason())
		s.release(cl, p.Reason())
		return
	}
	lr.SetReader(conn) // the first-byte watch is over
	if p.LongLines() { // a joinmarket-ng client: its !tx may pass 40 000 bytes (wire.MaxLineNG)
		lr.SetMax(max(cfg.MaxLineLength, wire.MaxLineNG))
	}
	log.Info("peer joined", "role", p.Role())
	log.Debug("peer joined", "nick", p.Nick, "location", p.Location.String())
	s.wg.Add(1) // this goroutine is still counted when Accept runs under Serve
	go func() {
		defer s.wg.Done()
		defer s.untrack(p)
		s.readLoop(p, lr, cl.Buckets())
		s.leave(p)
		s.release(cl, p.Reason())
	}()
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
