package onion

import (
	"fmt"
	"strings"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/torctl"
)

// Tor events the Service follows on its control connection: descriptor uploads, and
// bootstrap progress for the reason shown while none has happened.
var followedEvents = []string{"HS_DESC", "STATUS_CLIENT"}

// follow subscribes to the events, records tor's SOCKS port when none was configured,
// reads tor's bootstrap state, and in launch mode lets the launched tor online (it
// starts with DisableNetwork, so that no upload happens before the subscription).
func (s *Service) follow(c *torctl.Conn) error {
	id := strings.TrimSuffix(s.onion, ".onion")
	if err := c.SetEvents(func(e torctl.Event) { s.torEvent(id, e) }, followedEvents...); err != nil {
		return fmt.Errorf("SETEVENTS: %w", err)
	}
	if info, err := c.GetInfo("status/bootstrap-phase"); err == nil {
		s.mu.Lock()
		s.bootstrap = bootstrapSummary(strings.TrimPrefix(info["status/bootstrap-phase"], "NOTICE "))
		s.mu.Unlock()
	}
	if s.opts.SOCKS == "" && s.opts.Mode == "control" {
		s.askSOCKS(c)
	}
	if s.opts.Mode == "launch" && !s.opts.NetworkOff {
		rep, err := c.Command("SETCONF DisableNetwork=0")
		if err == nil {
			err = rep.Err()
		}
		if err != nil {
			return fmt.Errorf("SETCONF DisableNetwork=0: %w", err)
		}
	}
	return nil
}

// askSOCKS asks tor for its SOCKS listeners and keeps the first TCP one (else the
// first socket).
func (s *Service) askSOCKS(c *torctl.Conn) {
	info, err := c.GetInfo("net/listeners/socks")
	network, addr, why := "", "", ""
	switch {
	case err != nil:
		why = "cannot ask tor for its SOCKS port: " + err.Error()
	default:
		network, addr = pickSOCKS(info["net/listeners/socks"])
		if network == "" {
			why = "tor has no SocksPort: the self-probe needs one (or set tor_socks_host, tor_socks_port)"
		}
	}
	s.mu.Lock()
	s.socksNet, s.socksAddr, s.socksWhy = network, addr, why
	s.mu.Unlock()
}

// pickSOCKS chooses among the listeners tor reports (quoted, space-separated:
// "127.0.0.1:9050" "unix:/run/tor/socks"): the first TCP one, else the first socket.
func pickSOCKS(list string) (network, addr string) {
	var unix string
	for rest := strings.TrimSpace(list); rest != ""; rest = strings.TrimSpace(rest) {
		var v string
		var err error
		if strings.HasPrefix(rest, `"`) {
			if v, rest, err = torctl.Unquote(rest); err != nil {
				return "", ""
			}
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		if p, ok := strings.CutPrefix(v, "unix:"); ok {
			if unix == "" {
				unix = p
			}
			continue
		}
		if v != "" {
			return "tcp", v
		}
	}
	if unix != "" {
		return "unix", unix
	}
	return "", ""
}

// added records that tor holds the onion: published once an upload is reported, or at
// once if one was reported after since (an upload that came before ADD_ONION's reply
// was read, or, for the launched tor's torrc service, before this control connection).
func (s *Service) added(version string, pow bool, since time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held, s.torVer, s.pow = true, version, pow
	if !since.IsZero() && s.uploaded.After(since) {
		s.published, s.reason = true, ""
		return true
	}
	s.published, s.reason = false, s.waitingLocked()
	return false
}

// waitingLocked is the reason given while tor holds the onion but has not reported an
// upload.
func (s *Service) waitingLocked() string {
	r := "waiting for tor to upload the onion's descriptor to an HSDir"
	if s.bootstrap != "" {
		r += " (tor " + s.bootstrap + ")"
	}
	if s.uploadErr != "" {
		r += "; last upload failed: " + s.uploadErr
	}
	return r
}

// torEvent handles one event for the onion whose service ID is id.
func (s *Service) torEvent(id string, e torctl.Event) {
	f := strings.Fields(e.Text)
	switch e.Type {
	case "HS_DESC":
		// Action HSAddress AuthType HsDir [DescriptorID] [REASON=…] …
		if len(f) < 2 || f[1] != id {
			return
		}
		switch f[0] {
		case "UPLOADED":
			s.mu.Lock()
			first := s.held && !s.published
			s.uploaded, s.uploadErr = time.Now(), ""
			s.uploads++
			if s.held {
				s.published, s.reason = true, ""
			}
			pow, ver := s.pow, s.torVer
			s.mu.Unlock()
			if first {
				s.log.Info("onion published", "location", s.Location(), "tor_version", ver, "pow", pow)
			}
		case "FAILED":
			why := "unknown reason"
			for _, kv := range f[2:] {
				if r, ok := strings.CutPrefix(kv, "REASON="); ok {
					why = r
				}
			}
			s.mu.Lock()
			s.uploadErr = why
			if s.held && !s.published {
				s.reason = s.waitingLocked()
			}
			s.mu.Unlock()
		}
	case "STATUS_CLIENT":
		// Severity BOOTSTRAP PROGRESS=… TAG=… SUMMARY="…"
		if len(f) < 2 || f[1] != "BOOTSTRAP" {
			return
		}
		_, rest, _ := strings.Cut(e.Text, " ")
		b := bootstrapSummary(rest)
		s.mu.Lock()
		s.bootstrap = b
		if s.held && !s.published {
			s.reason = s.waitingLocked()
		}
		s.mu.Unlock()
	}
}

// bootstrapSummary turns `BOOTSTRAP PROGRESS=45 TAG=… SUMMARY="…"` into
// "bootstrapped 45%: …", and "" once bootstrapping is done (or if it cannot tell).
func bootstrapSummary(s string) string {
	rest, ok := strings.CutPrefix(s, "BOOTSTRAP ")
	if !ok {
		return ""
	}
	kv, err := torctl.KeyValues(rest)
	if err != nil || kv["PROGRESS"] == "" || kv["PROGRESS"] == "100" {
		return ""
	}
	return "bootstrapped " + kv["PROGRESS"] + "%: " + kv["SUMMARY"]
}
