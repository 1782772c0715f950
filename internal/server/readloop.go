// The read loop of an accepted peer: per-line limits and what each received message
// does, until the peer leaves.

package server

import (
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// connLimits is a connection's abuse accounting; only its reader goroutine uses it. The
// token buckets and the violation count belong to the connection's circuit (its own
// when it has no circuit identity); spoofing is counted per connection.
type connLimits struct {
	b      *limits.Buckets
	cfg    *config.Config // the configuration the buckets were last brought up to date with
	spoofs int
}

// admit takes a token from a bucket and reports whether the message may proceed. A
// refused message is dropped and counted with why, and is a violation of the
// circuit: past the configured number of them the connection is cut.
func (s *Server) admit(p *peer.Peer, lim *connLimits, which limits.Bucket, why reason.Drop, now time.Time) bool {
	if lim.b.Allow(which, now) {
		return true
	}
	s.ctr.Drop(why)
	s.ctr.RateViolate.Add(1)
	n := lim.b.Violation()
	if th := lim.cfg.RateLimitDisconnectThreshold; th > 0 && n >= int64(th) {
		p.Close(reason.CloseRateLimit)
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
			p.Close(reason.CloseMalformed)
			return
		}
		s.ctr.In[stats.TypeOf(env.Type)].Add(1)
		s.ctr.BytesIn.Add(uint64(len(line)))
		c := s.conf()
		if c != lim.cfg {
			lim.b.Use(ratesOf(c), now)
			lim.cfg = c
		}
		if !s.admit(p, &lim, limits.Messages, reason.DropRateLimited, now) {
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
			s.ctr.Drop(reason.DropMalformedJM)
			return true
		}
		if from != p.Nick {
			s.ctr.Drop(reason.DropSpoofed)
			lim.spoofs++
			if lim.spoofs >= lim.cfg.SpoofDisconnectThreshold {
				p.Close(reason.CloseSpoofing)
				return false
			}
			return true
		}
		if env.Type == wire.TypePrivmsg {
			if r := s.rt.Privmsg(p, to, env.RawLine()); r != reason.DropNone {
				s.ctr.Drop(r)
			} else {
				s.ctr.RelayLatency.Observe(int64(time.Since(now)))
			}
			return true
		}
		switch cmd := wire.FirstCommand(rest); cmd {
		case "orderbook":
			if !s.admit(p, lim, limits.Orderbook, reason.DropOrderbookCap, now) {
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
		if !s.admit(p, lim, limits.GetPeerlist, reason.DropGetPeerlistCap, now) {
			return !p.Closed()
		}
		s.rt.GetPeerlist(p)
	case wire.TypePong:
		p.Pong()
	case wire.TypeDisconnect:
		p.Close(reason.ClosePeerRequested)
		return false
	default:
		// Late handshakes, client pings (answering would mean sending 799), local-only
		// types, nick-auth messages this directory does not offer, unknown types.
		s.ctr.Drop(reason.DropIgnoredType)
	}
	return true
}

// leave unregisters a closed peer and tells everyone else it has gone.
func (s *Server) leave(p *peer.Peer) {
	defer p.MarkLeft()
	why := p.Reason()
	s.ctr.Close(why)
	if !s.reg.Remove(p) {
		return
	}
	s.recent.add(Disconnect{Time: time.Now(), Role: p.Role(), Reason: why})
	if !s.stopping() {
		s.rt.Left(p)
	}
	p.Log.Info("peer left", "role", p.Role(), "reason", why.String())
}
