package server

import (
	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/liveness"
)

// Reload applies a new configuration without dropping any peer: motd, rate limits and
// caps (existing connections pick them up at their next line), heartbeat settings, max
// peers, timeouts and queue limits for new connections, and the log level (applied by
// the caller, which owns the logger). Settings that need a restart (network, listen
// addresses, data dir, location, ops token, pprof, nick hiding, log format) are logged
// and left as they are. It returns every difference found.
func (s *Server) Reload(next config.Config) ([]config.Change, error) {
	if err := next.Validate(); err != nil {
		return nil, err
	}
	cur := s.conf()
	changes := config.Diff(*cur, next)
	var restart []string
	for _, c := range changes {
		switch c.Key {
		case "network", "host", "port", "data_dir", "location", "health_check_host", "health_check_port",
			"ops_token", "pprof", "status_hide_nicks", "log_format",
			"tor_mode", "tor_control_host", "tor_control_port", "tor_control_socket", "tor_control_password",
			"tor_cookie_file", "tor_binary", "tor_hidden_service_dir", "tor_onion_key_file", "onion_virtual_port",
			"tor_pow", "tor_proxy_protocol":
			restart = append(restart, c.Key)
		}
	}
	if len(restart) > 0 {
		// Keep what cannot change at run time.
		next.Network, next.Host, next.Port, next.DataDir, next.Location = cur.Network, cur.Host, cur.Port, cur.DataDir, cur.Location
		next.HealthCheckHost, next.HealthCheckPort, next.OpsToken = cur.HealthCheckHost, cur.HealthCheckPort, cur.OpsToken
		next.Pprof, next.HideNicks, next.LogFormat = cur.Pprof, cur.HideNicks, cur.LogFormat
		next.TorMode, next.TorControlHost, next.TorControlPort, next.TorControlSocket = cur.TorMode, cur.TorControlHost, cur.TorControlPort, cur.TorControlSocket
		next.TorControlPassword, next.TorCookieFile, next.TorBinary = cur.TorControlPassword, cur.TorCookieFile, cur.TorBinary
		next.TorHiddenServiceDir, next.TorOnionKeyFile, next.OnionVirtualPort = cur.TorHiddenServiceDir, cur.TorOnionKeyFile, cur.OnionVirtualPort
		next.TorPoW, next.TorProxyProtocol = cur.TorPoW, cur.TorProxyProtocol
		s.log.Warn("reload: these settings need a restart and were not applied", "keys", restart)
	}
	s.cfg.Store(&next)
	s.reg.SetMax(next.MaxPeers)
	s.sweeper.SetSettings(liveness.Settings{
		Sweep:     next.HeartbeatSweepInterval,
		Idle:      next.HeartbeatIdleThreshold,
		HardEvict: next.HeartbeatHardEvict,
		PongWait:  next.HeartbeatPongWait,
	})
	s.setDirectory(s.Location())
	return changes, nil
}

// circuitLimits returns the circuit limits of a configuration.
func circuitLimits(c *config.Config) circuit.Limits {
	return circuit.Limits{MaxConns: c.CircuitMaxConnections, MaxPending: c.CircuitMaxPending,
		BanAfter: c.CircuitBanAfter, BanFor: c.CircuitBanDuration}
}
