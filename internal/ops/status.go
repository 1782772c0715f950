package ops

import (
	"net/http"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// StatusResponse is the body of /status. The keys up to ActiveConnections are
// joinmarket-ng's, in its order and with its meaning (passive = takers,
// NOT-SERVING-ONION; active = makers); the rest are this server's extras.
type StatusResponse struct {
	Network           string    `json:"network"`
	UptimeSeconds     float64   `json:"uptime_seconds"`
	ServerStatus      string    `json:"server_status"` // "running" or "stopping"
	MaxPeers          int       `json:"max_peers"`
	Stats             PeerStats `json:"stats"`
	ConnectedPeers    NickList  `json:"connected_peers"`
	PassivePeers      NickList  `json:"passive_peers"`
	ActivePeers       NickList  `json:"active_peers"`
	ActiveConnections int       `json:"active_connections"` // handshaked peers + connections still handshaking

	Version           string              `json:"version"`
	Nick              string              `json:"directory_nick"`
	Location          string              `json:"location,omitempty"`
	NicksHidden       bool                `json:"nicks_hidden"`
	Handshaking       int                 `json:"handshaking"`
	RateLimiter       RateLimiterStats    `json:"rate_limiter"`
	MessagesReceived  map[string]uint64   `json:"messages_received"` // by type
	MessagesSent      map[string]uint64   `json:"messages_sent"`     // by type
	BytesReceived     uint64              `json:"bytes_received"`
	BytesSent         uint64              `json:"bytes_sent"`
	Drops             map[string]uint64   `json:"drops"`       // by reason
	Disconnects       map[string]uint64   `json:"disconnects"` // by reason
	Rejections        map[string]uint64   `json:"rejections"`  // handshakes answered accepted:false, by reason
	RecentDisconnects []server.Disconnect `json:"recent_disconnects"`
	OffersSeen        map[string]uint64   `json:"offers_seen"` // offer pubmsgs by command
	Orderbook         OrderbookStats      `json:"orderbook"`   // the live orderbook (/orderbook.json)
	NickAuth          NickAuthStats       `json:"nick_auth"`
	Onion             *onion.Status       `json:"onion,omitempty"`      // absent without tor
	SelfProbe         *selfprobe.Status   `json:"self_probe,omitempty"` // absent without tor
}

// PeerStats is joinmarket-ng's "stats" object.
type PeerStats struct {
	TotalPeers            int `json:"total_peers"` // including connections still handshaking
	ConnectedPeers        int `json:"connected_peers"`
	PassivePeers          int `json:"passive_peers"`
	ActivePeers           int `json:"active_peers"`
	NeutrinoCompatPeers   int `json:"neutrino_compat_peers"`
	PeerlistFeaturesPeers int `json:"peerlist_features_peers"`
	PushEncryptedPeers    int `json:"push_encrypted_peers"`
}

// NickAuthStats is the "nick_auth" object: nick authentication (JMP-0005,
// docs/protocol.md §5). DirectoryID is absent when it is not offered (mode disabled, or
// no directory-id known); VerifiedPeers and LegacyPeers split the registered peers into
// those that proved their nick and those that did not; Results counts the rounds by
// their 807 code, every code always present.
type NickAuthStats struct {
	Mode          string            `json:"mode"` // disabled, prefer_verified or require_verified
	DirectoryID   string            `json:"directory_id,omitempty"`
	VerifiedPeers int               `json:"verified_peers"`
	LegacyPeers   int               `json:"legacy_peers"`
	Results       map[string]uint64 `json:"results"` // by code: ok, malformed, expired, invalid, policy
}

// nickAuthStats converts the server's view.
func nickAuthStats(na server.NickAuthStatus) NickAuthStats {
	return NickAuthStats{Mode: na.Mode, DirectoryID: na.DirectoryID, VerifiedPeers: na.Verified,
		LegacyPeers: na.Legacy, Results: na.Results}
}

// NickList is a count and (unless hidden) the nicks.
type NickList struct {
	Total int      `json:"total"`
	Nicks []string `json:"nicks"`
}

// RateLimiterStats summarises rate limiting. tracked_peers and total_violations are
// joinmarket-ng's; the rest are this server's.
type RateLimiterStats struct {
	TrackedPeers    int    `json:"tracked_peers"` // holders of token buckets: connections, or circuits
	TotalViolations uint64 `json:"total_violations"`
	KeyedBy         string `json:"keyed_by"` // "connection", or "circuit" with tor_proxy_protocol
	Circuits        int    `json:"circuits"` // circuits with an open connection
	BannedCircuits  int    `json:"banned_circuits"`
	CircuitBans     uint64 `json:"circuit_bans_total"`
}

// Status builds the /status body.
func (o *Ops) Status() StatusResponse {
	st := o.srv.Status(!o.opt.HideNicks)
	feat := o.srv.FeatureCounts()
	nicks := func(n []string) []string {
		if n == nil {
			return []string{}
		}
		return n
	}
	all := append(append([]string{}, st.MakerNicks...), st.TakerNicks...)
	if o.opt.HideNicks {
		all = nil
	}
	status := "running"
	if st.Stopping {
		status = "stopping"
	}
	return StatusResponse{
		Network:       st.Network,
		UptimeSeconds: st.Uptime.Round(time.Millisecond).Seconds(),
		ServerStatus:  status,
		MaxPeers:      st.MaxPeers,
		Stats: PeerStats{
			TotalPeers: st.Peers + st.Pending, ConnectedPeers: st.Peers,
			PassivePeers: st.Takers, ActivePeers: st.Makers,
			NeutrinoCompatPeers: feat["neutrino_compat"], PeerlistFeaturesPeers: feat["peerlist_features"],
			PushEncryptedPeers: feat["push_encrypted"],
		},
		ConnectedPeers:    NickList{Total: st.Peers, Nicks: nicks(all)},
		PassivePeers:      NickList{Total: st.Takers, Nicks: nicks(st.TakerNicks)},
		ActivePeers:       NickList{Total: st.Makers, Nicks: nicks(st.MakerNicks)},
		ActiveConnections: st.Peers + st.Pending,

		Version: st.Version, Nick: st.Nick, Location: st.Location, NicksHidden: o.opt.HideNicks,
		Handshaking:       st.Pending,
		RateLimiter:       rateLimiter(st),
		MessagesReceived:  st.In,
		MessagesSent:      st.Out,
		BytesReceived:     st.BytesIn,
		BytesSent:         st.BytesOut,
		Drops:             st.Drops,
		Disconnects:       st.Closes,
		Rejections:        st.Rejections,
		RecentDisconnects: st.Recent,
		OffersSeen:        st.Offers,
		Orderbook:         st.Orderbook,
		NickAuth:          nickAuthStats(st.NickAuth),
		Onion:             o.onionStatus(),
		SelfProbe:         o.selfProbeStatus(),
	}
}

func rateLimiter(st server.Status) RateLimiterStats {
	r := RateLimiterStats{TrackedPeers: st.Peers + st.Pending, TotalViolations: st.RateViolations, KeyedBy: "connection",
		Circuits: st.Circuits.Connected, BannedCircuits: st.Circuits.Banned, CircuitBans: st.Circuits.Bans}
	if st.ProxyProtocol {
		r.KeyedBy, r.TrackedPeers = "circuit", st.Circuits.Connected
	}
	return r
}

func (o *Ops) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, o.Status())
}
