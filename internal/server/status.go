// Status and health: the point-in-time view /status, /health, jm-directory-ctl and
// SIGUSR1 report, and the ring of recent departures.

package server

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

// Disconnect is one departure of a handshaked peer. It names no nick. Reason stays
// typed; JSON carries its label.
type Disconnect struct {
	Time   time.Time    `json:"time"`
	Role   string       `json:"role"`
	Reason reason.Close `json:"reason"`
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
	Silent   int // of those, the ones that have not sent a byte yet
	MaxPeers int

	Closes, Drops     map[string]uint64 // by reason label
	Rejections        map[string]uint64 // handshakes answered accepted:false, by reason label
	In, Out           map[string]uint64 // lines by message type
	BytesIn, BytesOut uint64
	Received, Relayed uint64
	RateViolations    uint64
	ProxyProtocol     bool              // limits are keyed on the PROXY header's circuit
	Circuits          circuit.Counts    // circuits seen through PROXY headers
	Offers            map[string]uint64 // offer pubmsgs seen, by command
	Orderbook         orderbook.Stats   // the live orderbook's counts
	Recent            []Disconnect      // newest first

	// Nick authentication (JMP-0005): the mode in force, the directory-id ("" = not
	// offered), registered peers that proved their nick and those that did not, and the
	// rounds' results by code (ok, malformed, expired, invalid, policy).
	NickAuth NickAuthStatus

	// Nick lists, sorted; filled only when asked for.
	MakerNicks, TakerNicks []string
}

// NickAuthStatus is the nick-authentication part of Status.
type NickAuthStatus struct {
	Mode        string            `json:"mode"`
	DirectoryID string            `json:"directory_id,omitempty"`
	Verified    int               `json:"verified_peers"`
	Legacy      int               `json:"legacy_peers"`
	Results     map[string]uint64 `json:"results"`
}

// Status returns the current status; nick lists only when withNicks is set.
func (s *Server) Status(withNicks bool) Status {
	total, makers, takers := s.reg.Counts()
	st := Status{
		Version: Version, Network: s.conf().Network, Nick: s.nick, Location: s.Location(),
		Started: s.started, Uptime: time.Since(s.started), Stopping: s.stopping(),
		Peers: total, Makers: makers, Takers: takers,
		Pending: s.pending.Len(), Silent: s.pending.Silent(), MaxPeers: s.reg.Max(),
		Closes: s.ctr.CloseCounts(), Drops: s.ctr.DropCounts(), Rejections: s.ctr.RejectCounts(),
		In: map[string]uint64{}, Out: map[string]uint64{},
		BytesIn: s.ctr.BytesIn.Load(), BytesOut: s.ctr.BytesOut.Load(),
		Received: s.ctr.Received(), Relayed: s.ctr.Relayed(),
		RateViolations: s.ctr.RateViolate.Load(),
		ProxyProtocol:  s.conf().TorProxyProtocol,
		Circuits:       s.clients.Counts(time.Now()),
		Offers:         map[string]uint64{},
		Orderbook:      s.book.Stats(),
		Recent:         s.recent.last(20),
	}
	verified, registered := s.reg.Verified()
	st.NickAuth = NickAuthStatus{Mode: s.conf().NickAuthMode, DirectoryID: s.NickAuthID(),
		Verified: verified, Legacy: registered - verified, Results: s.authResults.snapshot()}
	if st.NickAuth.Mode == "disabled" {
		st.NickAuth.DirectoryID = ""
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
