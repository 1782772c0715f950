package server

import (
	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Reload puts a new configuration in force without dropping any peer, as config.Apply
// works it out: the settings a reload applies take their new values, and the ones that
// need a restart keep their current values. Existing connections pick up the rate
// limits and thresholds at their next line; caps, timeouts and queue limits apply to new
// connections; the motd, max peers and heartbeat settings apply at once. The log level
// is the caller's to apply (it owns the logger): see Config. Reload does not log: it
// returns the changes it applied and those it refused because they need a restart. An
// invalid configuration changes nothing.
func (s *Server) Reload(next config.Config) (changes, restart []config.Change, err error) {
	if err := next.Validate(); err != nil {
		return nil, nil, err
	}
	applied, changes, restart := config.Apply(*s.conf(), next)
	s.cfg.Store(&applied)
	s.reg.SetMax(applied.MaxPeers)
	s.outbound.SetBound(max(applied.OutboundTotalBytes, applied.OutboundQueueBytes))
	s.sweeper.SetSettings(heartbeatOf(&applied))
	s.setDirectory(s.Location())
	return changes, restart, nil
}

// Config returns the configuration in force: the one New was given, as changed by
// Reload.
func (s *Server) Config() config.Config { return *s.conf() }

// heartbeatOf returns the heartbeat settings of a configuration.
func heartbeatOf(c *config.Config) liveness.Settings {
	return liveness.Settings{
		Sweep:     c.HeartbeatSweepInterval,
		Idle:      c.HeartbeatIdleThreshold,
		HardEvict: c.HeartbeatHardEvict,
		PongWait:  c.HeartbeatPongWait,
	}
}

// circuitLimits returns the circuit limits of a configuration.
func circuitLimits(c *config.Config) circuit.Limits {
	return circuit.Limits{MaxConns: c.CircuitMaxConnections, MaxPending: c.CircuitMaxPending,
		BanAfter: c.CircuitBanAfter, BanFor: c.CircuitBanDuration}
}

// ratesOf returns the per-client rate limits of a configuration.
func ratesOf(c *config.Config) limits.Rates {
	return limits.Rates{Messages: c.MessageRateLimit, Burst: c.MessageBurstLimit,
		GetPeerlist: c.GetPeerlistPerMinute, Orderbook: c.OrderbookPerMinute,
		Bytes: c.MessageByteRate, ByteBurst: max(c.MessageByteBurst, c.MaxLineLength, wire.MaxLineNG)}
}

// policyOf is what the router's dispatch needs of the configuration.
func policyOf(c *config.Config) router.Policy {
	return router.Policy{RateLimitDisconnect: c.RateLimitDisconnectThreshold, SpoofDisconnect: c.SpoofDisconnectThreshold}
}
