// Admission: the steps Accept takes a new connection through before it is a peer —
// tor's PROXY header, the handshake line, the owner check for a claimed nick, the
// rejection — and the circuit release and close reasons that go with them.

package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// proxyHeader reads and parses the PROXY v1 line tor writes before the client's bytes.
// A connection without one is closed: with tor_proxy_protocol on, every connection must
// come through tor.
func (s *Server) proxyHeader(p *peer.Peer, lr *wire.LineReader) (circuit.ID, bool) {
	line, err := lr.ReadLine()
	if err != nil {
		why := closeReason(p, err, true) // a timeout, the client gone, …
		if why == reason.CloseLineTooLong {
			why = reason.CloseProxyHeader
		}
		p.Close(why)
		return circuit.ID{}, false
	}
	id, err := circuit.ParseHeader(line)
	if err != nil {
		p.Log.Debug("bad proxy header", "err", err)
		p.Close(reason.CloseProxyHeader)
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
func (s *Server) release(cl *circuit.Client, why reason.Close) {
	lim := circuitLimits(s.conf())
	if s.clients.Release(cl, why, time.Now(), lim) {
		s.log.Warn("circuit banned", "circuit", cl.ID().String(), "reason", why.String(), "for", lim.BanFor)
	}
}

// closeReason maps a read error to a close reason, unless the peer was already closed
// with one (evicted, cut as a slow consumer, shutdown…).
func closeReason(p *peer.Peer, err error, handshaking bool) reason.Close {
	if r := p.Reason(); r != reason.CloseNone {
		return r
	}
	switch {
	case errors.Is(err, wire.ErrLineTooLong):
		return reason.CloseLineTooLong
	case errors.Is(err, net.ErrClosed):
		return reason.CloseReadError
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reason.CloseClientGone
	}
	var ne net.Error
	if handshaking && errors.As(err, &ne) && ne.Timeout() {
		return reason.CloseHandshakeTimeout
	}
	return reason.CloseReadError
}

// handshakeSteps are Accept's hooks into the handshake: read runs once the line has
// arrived; admitted once the peer is sure to be registered, before its 795 is queued
// (see registry.RegisterThen); notPeer when the connection is the directory's own
// self-probe, which stops counting as handshaking without ever being a peer.
type handshakeSteps struct{ read, admitted, notPeer func() }

// handshake reads and answers the handshake line, under the read deadline Accept set.
// On success the peer is registered; lr may already hold later lines.
func (s *Server) handshake(p *peer.Peer, lr *wire.LineReader, steps handshakeSteps) bool {
	conn := p.Conn()
	line, err := lr.ReadLine()
	if err != nil {
		p.Close(closeReason(p, err, true))
		return false
	}
	steps.read()
	env, err := wire.Decode(line)
	if err != nil {
		p.Log.Debug("malformed handshake line", "err", err)
		p.Close(reason.CloseMalformed)
		return false
	}
	if env.Type != wire.TypeHandshake {
		p.Close(reason.CloseNotHandshake)
		return false
	}
	s.ctr.In[stats.MsgHandshake].Add(1)
	s.ctr.BytesIn.Add(uint64(len(line)))
	hello, rej := handshake.Parse(env.Line, handshake.Policy{
		Network: s.conf().Network, AllowLocal: s.conf().Network == "regtest", Reserved: s.nick,
	})
	if rej != nil {
		s.rejectHandshake(p, rej)
		return false
	}
	p.SetHello(hello)
	if s.isSelfProbe(hello) {
		steps.notPeer()
		s.serveSelfProbe(p, lr)
		return false
	}
	p.Touch(time.Now())
	for attempt := 0; ; attempt++ {
		res, owner := s.reg.RegisterThen(p, s.dir.Load().accept, steps.admitted)
		switch res {
		case registry.Registered:
			_ = conn.SetReadDeadline(time.Time{})
			s.ctr.Sent(stats.MsgDNHandshake, 1, len(s.dir.Load().accept))
			return true
		case registry.Gone:
			return false
		case registry.Full:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectCapacity,
				Detail: fmt.Sprintf("maximum peers reached (%d)", s.reg.Max())})
			return false
		case registry.Checking:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
				Detail: "nick already registered (owner being checked)"})
			return false
		case registry.Proven:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
				Detail: "nick already registered by a peer that proved alive just now"})
			return false
		case registry.Duplicate:
			if attempt > 0 || s.ownerAlive(owner) {
				s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
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
//
// The registry lets one check per nick run at a time and none start for
// registry.CheckCooldown after the owner proved alive, so a storm of claims costs the
// owner at most one probe per cooldown. A claim that cannot start a check is answered
// from the registry: the owner is alive as long as the nick is still held.
func (s *Server) ownerAlive(owner *peer.Peer) bool {
	if !s.reg.BeginCheck(owner) {
		return s.reg.Lookup(owner.Nick) != nil
	}
	alive := false
	defer func() { s.reg.EndCheck(owner, alive) }()
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
		alive = true
		return true
	case <-owner.Done():
	case <-timer.C:
		if !owner.Features.Ping && !owner.Maker() {
			alive = true // kept, as if alive: see above
			return true
		}
		owner.Log.Info("nick owner did not answer; replacing it")
		owner.Close(reason.CloseReplaced)
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
	s.ctr.Reject(rej.Code)
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
	p.Close(reason.CloseRejected)
}
