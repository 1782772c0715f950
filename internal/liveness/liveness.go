// Package liveness finds peers that are gone without closing their connection
// (docs/protocol.md §7): every sweep interval, peers idle past the idle threshold are probed —
// with a 798 ping if they advertised "ping", with the legacy "<dn>!PUBLIC!orderbook"
// pubmsg if they are makers without ping — and peers that leave a ping unanswered for the
// pong wait, or stay silent past the hard-evict threshold, are cut.
//
// Reference takers and ob-watchers never send anything while idle and cannot be probed,
// so they are never evicted for idleness alone: they stay while their stream is open.
package liveness

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/router"
)

// Settings are the heartbeat parameters (joinmarket-ng names in comments).
type Settings struct {
	Sweep     time.Duration // heartbeat_sweep_interval
	Idle      time.Duration // heartbeat_idle_threshold
	HardEvict time.Duration // heartbeat_hard_evict
	PongWait  time.Duration // heartbeat_pong_wait
}

// Result counts what one sweep did.
type Result struct {
	Pinged, Probed, Evicted int
}

// Sweeper runs the heartbeat over a registry.
type Sweeper struct {
	reg *registry.Registry
	rt  *router.Router
	log *slog.Logger
	set atomic.Pointer[Settings]
}

// New returns a sweeper.
func New(reg *registry.Registry, rt *router.Router, s Settings, log *slog.Logger) *Sweeper {
	sw := &Sweeper{reg: reg, rt: rt, log: log}
	sw.SetSettings(s)
	return sw
}

// SetSettings replaces the parameters; the next sweep uses them.
func (s *Sweeper) SetSettings(set Settings) { s.set.Store(&set) }

// Settings returns the current parameters.
func (s *Sweeper) Settings() Settings { return *s.set.Load() }

// Sweep runs one pass at time now.
func (s *Sweeper) Sweep(now time.Time) Result {
	set := s.Settings()
	var res Result
	for _, p := range s.reg.Snapshot() {
		if p.Closed() { // already cut; its reader is unregistering it
			continue
		}
		if sent, ok := p.PingPending(); ok {
			if now.Sub(sent) >= set.PongWait {
				s.evict(p, reason.ClosePongTimeout)
				res.Evicted++
			}
			continue
		}
		idle := now.Sub(p.LastSeen())
		switch {
		case idle >= set.HardEvict && (p.Features.Ping || p.Maker()):
			s.evict(p, reason.CloseHardEvict)
			res.Evicted++
		case idle < set.Idle:
		case p.Features.Ping:
			p.MarkPing(now)
			s.rt.Ping(p)
			res.Pinged++
		case p.Maker():
			s.rt.Probe(p)
			res.Probed++
		}
	}
	return res
}

// ExpirePongs cuts every peer whose ping has been unanswered for the pong wait at now.
func (s *Sweeper) ExpirePongs(now time.Time) int {
	wait := s.Settings().PongWait
	n := 0
	for _, p := range s.reg.Snapshot() {
		if sent, ok := p.PingPending(); ok && !p.Closed() && now.Sub(sent) >= wait {
			s.evict(p, reason.ClosePongTimeout)
			n++
		}
	}
	return n
}

func (s *Sweeper) evict(p *peer.Peer, r reason.Close) {
	p.Log.Debug("evicting", "reason", r.String())
	p.Close(r)
}

// Run sweeps every sweep interval until ctx ends. After a sweep that sent pings it checks
// for missing pongs once the pong wait has passed, so a dead peer is cut after about
// idle + pong wait rather than waiting for the next sweep.
func (s *Sweeper) Run(ctx context.Context) {
	timer := time.NewTimer(s.Settings().Sweep)
	defer timer.Stop()
	var pongCheck <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-pongCheck:
			pongCheck = nil
			if n := s.ExpirePongs(time.Now()); n > 0 {
				s.log.Info("heartbeat: pong timeouts", "evicted", n)
			}
		case <-timer.C:
			res := s.Sweep(time.Now())
			if res.Evicted > 0 || res.Pinged > 0 || res.Probed > 0 {
				s.log.Debug("heartbeat sweep", "pinged", res.Pinged, "probed", res.Probed, "evicted", res.Evicted)
			}
			if res.Pinged > 0 && pongCheck == nil {
				pongCheck = time.After(s.Settings().PongWait)
			}
			timer.Reset(s.Settings().Sweep)
		}
	}
}
