// Package server is the composition root of the directory node: it is handed connections
// (Accept) or a listener (Serve), runs each connection's handshake under a deadline, then
// its read loop, and wires the registry, router and heartbeat together. It owns no flags
// and reads no environment: it is configured with a config.Config.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Version is the server version shown in the motd and logs.
var Version = "0.1.0-dev"

// Server is one directory node serving one network.
type Server struct {
	cfg     atomic.Pointer[config.Config] // replaced whole by Reload
	log     *slog.Logger
	nick    string
	reg     *registry.Registry
	rt      *router.Router
	sweeper *liveness.Sweeper
	flusher *peer.Flusher  // writes every peer's queued lines from GOMAXPROCS−1 goroutines
	clients *circuit.Table // per-circuit limits, caps and bans (tor_proxy_protocol)
	ctr     stats.Counters
	started time.Time

	dir atomic.Pointer[dirLines] // current 795 lines

	nextID  atomic.Uint64
	pending atomic.Int64 // connections that have not finished the handshake

	mu      sync.Mutex              // guards conns and closing
	conns   map[*peer.Peer]struct{} // every open connection
	closing bool
	wg      sync.WaitGroup // connection goroutines and the heartbeat

	listening atomic.Bool
	recent    recentDisconnects
	checks    atomic.Pointer[[]func() (bool, string)] // more health checks (the onion)
}

// dirLines caches the directory side of the handshake.
type dirLines struct {
	dir    handshake.Directory
	accept []byte // encoded 795 accepted:true
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
		clients: circuit.NewTable(circuit.DefaultMaxIdle),
	}
	s.cfg.Store(&cfg)
	s.rt = router.New(s.reg, &s.ctr, id.Nick, cfg.Location)
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
	s.dir.Store(&dirLines{dir: d, accept: wire.AppendEnvelope(nil, wire.TypeDNHandshake, d.Accept())})
}

// Serve accepts connections from ln until ctx ends, then stops: it closes the listener
// and every connection and waits for their goroutines. It returns nil after a shutdown
// requested through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.AdvertiseListener(ln.Addr())
	s.listening.Store(true)
	defer s.listening.Store(false)
	hbCtx, stopHB := context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweeper.Run(hbCtx)
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
		p.Close(stats.CloseShutdown)
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
	p := peer.New(id, conn, peer.Limits{QueueBytes: cfg.OutboundQueueBytes, WriteTimeout: cfg.WriteTimeout}, &s.ctr, log)
	p.UseFlusher(s.flusher)
	if !s.track(p) {
		conn.Close()
		return
	}
	// The connection counts as handshaking (s.pending, and its circuit's pending count
	// once it has a circuit) until endHandshake: when it is registered, just before its
	// 795 is queued, so a client that sees its answer can rely on the counts; or when it
	// is refused.
	var cl *circuit.Client
	handshaking := true
	endHandshake := func() {
		if !handshaking {
			return
		}
		handshaking = false
		s.pending.Add(-1)
		if cl != nil {
			s.clients.Handshaked(cl)
		}
	}
	// refuse ends a connection that was never accepted.
	refuse := func(reason stats.CloseReason) {
		endHandshake()
		p.Close(reason)
		s.ctr.Close(p.Reason())
		s.untrack(p)
		log.Debug("closed before handshake", "reason", p.Reason().String())
	}
	if n := s.pending.Add(1); n > int64(cfg.MaxPendingHandshakes) {
		refuse(stats.ClosePendingCap)
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(cfg.HandshakeTimeout))
	lr := wire.NewLineReader(conn, cfg.MaxLineLength)
	var cid circuit.ID
	if cfg.TorProxyProtocol {
		var ok bool
		if cid, ok = s.proxyHeader(p, lr); !ok {
			refuse(p.Reason())
			return
		}
	}
	opened, why := s.clients.Open(cid, time.Now(), circuitLimits(cfg))
	if why != stats.CloseNone {
		refuse(why)
		return
	}
	cl = opened
	if !s.handshake(p, lr, func() { endHandshake(); s.ctr.Accepted.Add(1) }) {
		refuse(p.Reason())
		s.release(cl, p.Reason())
		return
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

// proxyHeader reads and parses the PROXY v1 line tor writes before the client's bytes.
// A connection without one is closed: with tor_proxy_protocol on, every connection must
// come through tor.
func (s *Server) proxyHeader(p *peer.Peer, lr *wire.LineReader) (circuit.ID, bool) {
	line, err := lr.ReadLine()
	if err != nil {
		reason := closeReason(p, err, true) // a timeout, the client gone, …
		if reason == stats.CloseLineTooLong {
			reason = stats.CloseProxyHeader
		}
		p.Close(reason)
		return circuit.ID{}, false
	}
	id, err := circuit.ParseHeader(line)
	if err != nil {
		p.Log.Debug("bad proxy header", "err", err)
		p.Close(stats.CloseProxyHeader)
		return circuit.ID{}, false
	}
	p.Log.Debug("proxy header", "circuit", id.String())
	return id, true
}

// ForgetCircuits drops every circuit strike and ban, for when tor has restarted and
// numbers its circuits from 1 again.
func (s *Server) ForgetCircuits() {
	s.clients.Forget()
	s.log.Info("tor restarted: circuit strikes and bans forgotten")
}

// release ends a connection on its circuit and logs a ban it imposed (with the
// circuit, never the nick).
func (s *Server) release(cl *circuit.Client, reason stats.CloseReason) {
	lim := circuitLimits(s.conf())
	if s.clients.Release(cl, reason, time.Now(), lim) {
		s.log.Warn("circuit banned", "circuit", cl.ID().String(), "reason", reason.String(), "for", lim.BanFor)
	}
}

// closeReason maps a read error to a close reason, unless the peer was already closed
// with one (evicted, cut as a slow consumer, shutdown…).
func closeReason(p *peer.Peer, err error, handshaking bool) stats.CloseReason {
	if r := p.Reason(); r != stats.CloseNone {
		return r
	}
	switch {
	case errors.Is(err, wire.ErrLineTooLong):
		return stats.CloseLineTooLong
	case errors.Is(err, net.ErrClosed):
		return stats.CloseReadError
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return stats.CloseClientGone
	}
	var ne net.Error
	if handshaking && errors.As(err, &ne) && ne.Timeout() {
		return stats.CloseHandshakeTimeout
	}
	return stats.CloseReadError
}

// handshake reads and answers the handshake line, under the read deadline Accept set.
// On success the peer is registered; lr may already hold later lines. admitted runs
// once the peer is sure to be registered, before its 795 is queued (see
// registry.RegisterThen).
func (s *Server) handshake(p *peer.Peer, lr *wire.LineReader, admitted func()) bool {
	conn := p.Conn()
	line, err := lr.ReadLine()
	if err != nil {
		p.Close(closeReason(p, err, true))
		return false
	}
	env, err := wire.Decode(line)
	if err != nil {
		p.Log.Debug("malformed handshake line", "err", err)
		p.Close(stats.CloseMalformed)
		return false
	}
	if env.Type != wire.TypeHandshake {
		p.Close(stats.CloseNotHandshake)
		return false
	}
	s.ctr.In[stats.MsgHandshake].Add(1)
	s.ctr.BytesIn.Add(uint64(len(line)))
	hello, rej := handshake.Parse(env.Line, handshake.Policy{
		Network: s.conf().Network, AllowLocal: s.conf().Network == "regtest",
	})
	if rej != nil {
		s.rejectHandshake(p, rej)
		return false
	}
	p.SetHello(hello)
	p.Touch(time.Now())
	for attempt := 0; ; attempt++ {
		res, owner := s.reg.RegisterThen(p, s.dir.Load().accept, admitted)
		switch res {
		case registry.Registered:
			_ = conn.SetReadDeadline(time.Time{})
			s.ctr.Sent(stats.MsgDNHandshake, 1, len(s.dir.Load().accept))
			return true
		case registry.Gone:
			return false
		case registry.Full:
			s.rejectHandshake(p, &handshake.Rejection{Code: handshake.CodeCapacity,
				Detail: fmt.Sprintf("maximum peers reached (%d)", s.reg.Max())})
			return false
		case registry.Checking:
			s.rejectHandshake(p, &handshake.Rejection{Code: handshake.CodeDuplicate,
				Detail: "nick already registered (owner being checked)"})
			return false
		case registry.Duplicate:
			if attempt > 0 || s.ownerAlive(owner) {
				s.rejectHandshake(p, &handshake.Rejection{Code: handshake.CodeDuplicate,
					Detail: "nick already registered by a live peer"})
				return false
			}
		}
	}
}

// ownerAlive checks whether the current owner of a nick a newcomer claims is alive: it
// pings a ping-capable owner, sends a non-ping maker the legacy orderbook probe (which
// reference makers answer), and writes the same harmless probe to a non-ping taker. Any
// line from the owner within NickCheckTimeout proves it alive. A ping-capable peer or a
// maker that stays silent is cut and its nick freed; a non-ping taker cannot answer, so
// it keeps the nick unless its connection fails meanwhile (see docs/protocol-choices.md).
func (s *Server) ownerAlive(owner *peer.Peer) bool {
	if !s.reg.BeginCheck(owner) {
		return s.reg.Lookup(owner.Nick) != nil
	}
	defer s.reg.EndCheck(owner.Nick)
	answered := owner.AwaitAnswer()
	if owner.Features.Ping {
		s.rt.Ping(owner)
	} else {
		s.rt.Probe(owner)
	}
	timer := time.NewTimer(s.conf().NickCheckTimeout)
	defer timer.Stop()
	select {
	case <-answered:
		return true
	case <-owner.Done():
	case <-timer.C:
		if !owner.Features.Ping && !owner.Maker() {
			return true
		}
		owner.Log.Info("nick owner did not answer; replacing it")
		owner.Close(stats.CloseReplaced)
	}
	// Wait until the old owner is unregistered and its departure announced.
	select {
	case <-owner.Left():
	case <-time.After(5 * time.Second):
	}
	return false
}

// rejectHandshake answers accepted:false with the reason in the motd, then closes
// gracefully: half-close, drain briefly, close — so that unread client bytes cannot
// turn the close into a reset that destroys the answer.
func (s *Server) rejectHandshake(p *peer.Peer, rej *handshake.Rejection) {
	p.Log.Info("handshake rejected", "reason", rej.Code.String())
	s.ctr.Rejected[int(rej.Code)%len(s.ctr.Rejected)].Add(1)
	line := wire.AppendEnvelope(nil, wire.TypeDNHandshake, s.dir.Load().dir.Reject(rej))
	s.ctr.Sent(stats.MsgDNHandshake, 1, len(line))
	conn := p.Conn()
	if err := p.WriteNow(line); err == nil {
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 512)
			for total := 0; total < 1<<16; {
				n, err := conn.Read(buf)
				total += n
				if err != nil {
					break
				}
			}
		}
	}
	p.Close(stats.CloseRejected)
}

// connLimits is a connection's abuse accounting; only its reader goroutine uses it. The
// token buckets and the violation count belong to the connection's circuit (its own
// when it has no circuit identity); spoofing is counted per connection.
type connLimits struct {
	b      *limits.Buckets
	cfg    *config.Config // the configuration the buckets were last brought up to date with
	spoofs int
}

// admit takes a token from a bucket and reports whether the message may proceed. A
// refused message is dropped and counted with reason, and is a violation of the
// circuit: past the configured number of them the connection is cut.
func (s *Server) admit(p *peer.Peer, lim *connLimits, which limits.Bucket, reason stats.DropReason, now time.Time) bool {
	if lim.b.Allow(which, now) {
		return true
	}
	s.ctr.Drop(reason)
	s.ctr.RateViolate.Add(1)
	n := lim.b.Violation()
	if th := lim.cfg.RateLimitDisconnectThreshold; th > 0 && n >= int64(th) {
		p.Close(stats.CloseRateLimit)
	}
	return false
}

// readLoop handles every line of a handshaked peer until the connection ends.
func (s *Server) readLoop(p *peer.Peer, lr *wire.LineReader, b *limits.Buckets) {
	lim := connLimits{b: b}
	for {
		line, err := lr.ReadLine()
		if err != nil {
			p.Close(closeReason(p, err, false))
			return
		}
		now := time.Now()
		p.Touch(now)
		p.Answered()
		env, err := wire.Decode(line)
		if err != nil {
			p.Log.Debug("malformed line", "err", err)
			p.Close(stats.CloseMalformed)
			return
		}
		s.ctr.In[stats.TypeOf(env.Type)].Add(1)
		s.ctr.BytesIn.Add(uint64(len(line)))
		c := s.conf()
		if c != lim.cfg {
			lim.b.Use(ratesOf(c), now)
			lim.cfg = c
		}
		if !s.admit(p, &lim, limits.Messages, stats.DropRateLimited, now) {
			if p.Closed() {
				return
			}
			continue
		}
		if !s.handle(p, &env, &lim, now) {
			return
		}
	}
}

// handle acts on one message; it returns false when the peer has been closed.
func (s *Server) handle(p *peer.Peer, env *wire.Envelope, lim *connLimits, now time.Time) bool {
	switch env.Type {
	case wire.TypePubmsg, wire.TypePrivmsg:
		from, to, rest, ok := wire.SplitJM(env.Line)
		if !ok || (env.Type == wire.TypePubmsg && to != wire.Public) {
			s.ctr.Drop(stats.DropMalformedJM)
			return true
		}
		if from != p.Nick {
			s.ctr.Drop(stats.DropSpoofed)
			lim.spoofs++
			if lim.spoofs >= lim.cfg.SpoofDisconnectThreshold {
				p.Close(stats.CloseSpoofing)
				return false
			}
			return true
		}
		if env.Type == wire.TypePrivmsg {
			if r := s.rt.Privmsg(p, to, env.RawLine()); r != stats.DropNone {
				s.ctr.Drop(r)
			} else {
				s.ctr.RelayLatency.Observe(int64(time.Since(now)))
			}
			return true
		}
		switch cmd := wire.FirstCommand(rest); cmd {
		case "orderbook":
			if !s.admit(p, lim, limits.Orderbook, stats.DropOrderbookCap, now) {
				return !p.Closed()
			}
		default:
			if i := stats.OfferIndex(cmd); i >= 0 {
				s.ctr.OffersSeen[i].Add(1)
			}
		}
		s.rt.Pubmsg(p, env.RawLine())
		s.ctr.RelayLatency.Observe(int64(time.Since(now)))
		s.flusher.Help() // a broadcaster reads on only as fast as its lines go out
	case wire.TypeGetPeerlist:
		if !s.admit(p, lim, limits.GetPeerlist, stats.DropGetPeerlistCap, now) {
			return !p.Closed()
		}
		s.rt.GetPeerlist(p)
	case wire.TypePong:
		p.Pong()
	case wire.TypeDisconnect:
		p.Close(stats.ClosePeerRequested)
		return false
	default:
		// Late handshakes, client pings (answering would mean sending 799), local-only
		// types, nick-auth messages this directory does not offer, unknown types.
		s.ctr.Drop(stats.DropIgnoredType)
	}
	return true
}

// leave unregisters a closed peer and tells everyone else it has gone.
func (s *Server) leave(p *peer.Peer) {
	defer p.MarkLeft()
	reason := p.Reason()
	s.ctr.Close(reason)
	if !s.reg.Remove(p) {
		return
	}
	s.recent.add(Disconnect{Time: time.Now(), Role: p.Role(), Reason: reason.String()})
	if !s.stopping() {
		s.rt.Left(p)
	}
	p.Log.Info("peer left", "role", p.Role(), "reason", reason.String())
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Disconnect is one departure of a handshaked peer. It names no nick.
type Disconnect struct {
	Time   time.Time `json:"time"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
}

// recentDisconnects keeps the last few departures for operators.
type recentDisconnects struct {
	mu   sync.Mutex
	ring [100]Disconnect
	n    int // total ever added
}

func (r *recentDisconnects) add(d Disconnect) {
	r.mu.Lock()
	r.ring[r.n%len(r.ring)] = d
	r.n++
	r.mu.Unlock()
}

// last returns up to k departures, newest first.
func (r *recentDisconnects) last(k int) []Disconnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	k = min(k, r.n, len(r.ring))
	out := make([]Disconnect, 0, k)
	for i := 1; i <= k; i++ {
		out = append(out, r.ring[(r.n-i)%len(r.ring)])
	}
	return out
}

// Health reports whether the server can serve peers and, if not, why.
func (s *Server) Health() (ok bool, reason string) {
	total, _, _ := s.reg.Counts()
	switch {
	case s.stopping():
		return false, "shutting down"
	case !s.listening.Load():
		return false, "not listening"
	case total >= s.reg.Max():
		return false, "at capacity"
	}
	if cs := s.checks.Load(); cs != nil {
		for _, check := range *cs {
			if ok, reason := check(); !ok {
				return false, reason
			}
		}
	}
	return true, ""
}

// AddHealthCheck adds a condition Health reports on, such as "the onion is published".
func (s *Server) AddHealthCheck(check func() (ok bool, reason string)) {
	for {
		old := s.checks.Load()
		var next []func() (bool, string)
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, check)
		if s.checks.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Status is a point-in-time view of the server.
type Status struct {
	Version  string
	Network  string
	Nick     string
	Location string
	Started  time.Time
	Uptime   time.Duration
	Stopping bool
	Peers    int // handshaked peers
	Makers   int // serving an onion ("active")
	Takers   int // NOT-SERVING-ONION ("passive")
	Pending  int // connections still handshaking
	MaxPeers int

	Closes, Drops     map[string]uint64 // by reason
	In, Out           map[string]uint64 // lines by message type
	BytesIn, BytesOut uint64
	Received, Relayed uint64
	RateViolations    uint64
	ProxyProtocol     bool              // limits are keyed on the PROXY header's circuit
	Circuits          circuit.Counts    // circuits seen through PROXY headers
	Offers            map[string]uint64 // offer pubmsgs seen, by command
	Recent            []Disconnect      // newest first

	// Nick lists, sorted; filled only when asked for.
	MakerNicks, TakerNicks []string
}

// Status returns the current status; nick lists only when withNicks is set.
func (s *Server) Status(withNicks bool) Status {
	total, makers, takers := s.reg.Counts()
	st := Status{
		Version: Version, Network: s.conf().Network, Nick: s.nick, Location: s.Location(),
		Started: s.started, Uptime: time.Since(s.started), Stopping: s.stopping(),
		Peers: total, Makers: makers, Takers: takers,
		Pending: int(s.pending.Load()), MaxPeers: s.reg.Max(),
		Closes: s.ctr.CloseCounts(), Drops: s.ctr.DropCounts(),
		In: map[string]uint64{}, Out: map[string]uint64{},
		BytesIn: s.ctr.BytesIn.Load(), BytesOut: s.ctr.BytesOut.Load(),
		Received: s.ctr.Received(), Relayed: s.ctr.Relayed(),
		RateViolations: s.ctr.RateViolate.Load(),
		ProxyProtocol:  s.conf().TorProxyProtocol,
		Circuits:       s.clients.Counts(time.Now()),
		Offers:         map[string]uint64{},
		Recent:         s.recent.last(20),
	}
	for t := stats.MsgType(0); t < stats.NumMsgTypes; t++ {
		if v := s.ctr.In[t].Load(); v > 0 {
			st.In[t.String()] = v
		}
		if v := s.ctr.Out[t].Load(); v > 0 {
			st.Out[t.String()] = v
		}
	}
	for i, c := range stats.OfferCommands {
		if v := s.ctr.OffersSeen[i].Load(); v > 0 {
			st.Offers[c] = v
		}
	}
	if withNicks {
		for _, p := range s.reg.Snapshot() {
			if p.Maker() {
				st.MakerNicks = append(st.MakerNicks, p.Nick)
			} else {
				st.TakerNicks = append(st.TakerNicks, p.Nick)
			}
		}
		sort.Strings(st.MakerNicks)
		sort.Strings(st.TakerNicks)
	}
	return st
}

// knownFeatures are the handshake features counted by FeatureCounts (a bounded set:
// clients may advertise any name).
var knownFeatures = []string{"neutrino_compat", "nick_auth", "peerlist_features", "ping", "push_encrypted"}

// FeatureCounts counts the registered peers advertising each known feature.
func (s *Server) FeatureCounts() map[string]int {
	m := make(map[string]int, len(knownFeatures))
	for _, f := range knownFeatures {
		m[f] = 0
	}
	for _, p := range s.reg.Snapshot() {
		for _, f := range p.Features.True {
			if _, ok := m[f]; ok {
				m[f]++
			}
		}
	}
	return m
}

// QueuedBytes sums the outbound queues of every registered peer.
func (s *Server) QueuedBytes() (total, max int) {
	for _, p := range s.reg.Snapshot() {
		q := p.QueuedBytes()
		total += q
		if q > max {
			max = q
		}
	}
	return total, max
}

// LogStatus writes the status to the log (SIGUSR1): counts at INFO, nick lists at DEBUG.
func (s *Server) LogStatus(ctx context.Context) {
	debug := s.log.Enabled(ctx, slog.LevelDebug)
	st := s.Status(debug)
	s.log.Info("status",
		"network", st.Network,
		"uptime", st.Uptime.Round(time.Second).String(),
		"connected", st.Peers, "max_peers", st.MaxPeers,
		"passive", st.Takers, "active", st.Makers,
		"handshaking", st.Pending,
		"received", st.Received, "relayed", st.Relayed)
	if debug {
		s.log.Debug("status nicks", "active", st.MakerNicks, "passive", st.TakerNicks)
	}
}
