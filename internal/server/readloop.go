// The read loop of an accepted peer: it reads, decodes and counts each line, takes the
// message token, and hands the message to the router (internal/router/dispatch.go),
// until the peer leaves.

package server

import (
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// readLoop handles every line of a handshaked peer until the connection ends.
func (s *Server) readLoop(p *peer.Peer, lr *wire.LineReader, b *limits.Buckets) {
	lim := router.ConnLimits{Buckets: b}
	var cfg *config.Config // the configuration the buckets and pol were last brought up to date with
	var pol router.Policy
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
		if c := s.conf(); c != cfg {
			lim.Buckets.Use(ratesOf(c), now)
			pol = policyOf(c)
			cfg = c
		}
		if !s.rt.Admit(p, &lim, limits.Messages, reason.DropRateLimited, pol, now) {
			if p.Closed() {
				return
			}
			continue
		}
		if !s.rt.Handle(p, &env, &lim, pol, now) {
			return
		}
	}
}

// leave unregisters a closed peer and tells everyone else it has gone.
func (s *Server) leave(p *peer.Peer) {
	defer p.MarkLeft()
	s.book.Leave(p.Nick, p.ID) // also when displaced: the entry is the connection's, not the nick's
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
