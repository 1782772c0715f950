package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Report limits.
const (
	reportNicks  = 10 // nicks listed per role
	reportRecent = 5  // recent disconnects listed
	reportTop    = 5  // rate-limit violators / offer-heavy peers listed (joinmarket-ng)
)

// statusDoc is a /status body: joinmarket-ng's keys, its optional "offers" and
// "rate_limiter" details, and this server's extras (absent from joinmarket-ng's
// answers, which the report then leaves out).
type statusDoc struct {
	Network           string       `json:"network"`
	UptimeSeconds     float64      `json:"uptime_seconds"`
	ServerStatus      *string      `json:"server_status"`
	MaxPeers          int          `json:"max_peers"`
	Stats             peerStats    `json:"stats"`
	RateLimiter       *rateLimiter `json:"rate_limiter"`
	Offers            *offerStats  `json:"offers"`
	ConnectedPeers    nickList     `json:"connected_peers"`
	PassivePeers      nickList     `json:"passive_peers"`
	ActivePeers       nickList     `json:"active_peers"`
	ActiveConnections int          `json:"active_connections"`

	Version           string            `json:"version"`
	Nick              string            `json:"directory_nick"`
	Location          string            `json:"location"`
	NicksHidden       bool              `json:"nicks_hidden"`
	Handshaking       *int              `json:"handshaking"`
	MessagesReceived  map[string]uint64 `json:"messages_received"`
	MessagesSent      map[string]uint64 `json:"messages_sent"`
	BytesReceived     uint64            `json:"bytes_received"`
	BytesSent         uint64            `json:"bytes_sent"`
	Drops             map[string]uint64 `json:"drops"`
	Disconnects       map[string]uint64 `json:"disconnects"`
	Rejections        map[string]uint64 `json:"rejections"`
	RecentDisconnects []disconnect      `json:"recent_disconnects"`
	OffersSeen        map[string]uint64 `json:"offers_seen"`
	Orderbook         *orderbookState   `json:"orderbook"`
	NickAuth          *nickAuthState    `json:"nick_auth"`
	Onion             *onionState       `json:"onion"`
	SelfProbe         *selfProbeState   `json:"self_probe"`
}

// orderbookState is the "orderbook" object: the live orderbook's counts.
type orderbookState struct {
	Offers    int               `json:"offers"`
	Makers    int               `json:"makers"`
	Bonds     int               `json:"fidelity_bonds"`
	Malformed map[string]uint64 `json:"malformed"`
	OverCap   uint64            `json:"offers_over_cap"`
}

// describe is the report's Orderbook line.
func (o *orderbookState) describe() string {
	s := fmt.Sprintf("%d offers from %d makers, %d fidelity bonds (unverified); malformed: %s",
		o.Offers, o.Makers, o.Bonds, formatCounts(o.Malformed))
	if o.OverCap > 0 {
		s += fmt.Sprintf("; %d over the per-maker cap", o.OverCap)
	}
	return s
}

// onionState is the "onion" object (absent without tor).
type onionState struct {
	Mode        string     `json:"mode"`
	Onion       string     `json:"onion"`
	Published   bool       `json:"published"`
	Reason      string     `json:"reason"`
	PoW         bool       `json:"pow"`
	TorVersion  string     `json:"tor_version"`
	LastUpload  *time.Time `json:"last_upload"` // control and launch modes
	Uploads     uint64     `json:"uploads"`
	UploadError string     `json:"upload_error"` // since the last upload
}

// describe is the report's Onion line: "published, tor_mode launch, PoW on, tor
// 0.4.9.11, last upload 3m ago", or while tor has not uploaded the descriptor yet
// "not published, tor_mode launch, no upload yet: <reason>". tor_mode external has no
// upload part: the operator's tor does not tell.
func (o *onionState) describe(now time.Time) string {
	s := "not published"
	if o.Published {
		s = "published"
	}
	waiting := !o.Published && o.LastUpload == nil && o.Mode != "external"
	if o.Reason != "" && !waiting {
		s += " (" + o.Reason + ")"
	}
	s += ", tor_mode " + o.Mode
	if o.PoW {
		s += ", PoW on"
	}
	if o.TorVersion != "" {
		s += ", tor " + o.TorVersion
	}
	switch {
	case o.LastUpload != nil:
		s += ", last upload " + formatAgo(now.Sub(*o.LastUpload)) + " ago"
		if o.UploadError != "" {
			s += " (a later one failed: " + o.UploadError + ")"
		}
	case waiting:
		why := o.Reason
		if why == "" {
			why = o.UploadError
		}
		if why == "" {
			why = "tor has not reported it"
		}
		s += ", no upload yet: " + why
	}
	return s
}

// nickAuthState is the "nick_auth" object (this server's; absent from joinmarket-ng's
// answers).
type nickAuthState struct {
	Mode          string            `json:"mode"`
	DirectoryID   string            `json:"directory_id"` // "" = not offered
	VerifiedPeers int               `json:"verified_peers"`
	LegacyPeers   int               `json:"legacy_peers"`
	Results       map[string]uint64 `json:"results"` // by 807 code
}

// describe is the report's Nick auth line: "prefer_verified, directory-id <id>; 3
// verified, 12 legacy peers; results: ok 5, invalid 1", or "disabled", or "not offered:
// no directory-id" (a mode other than disabled, but no directory-id known).
func (n *nickAuthState) describe() string {
	switch {
	case n.Mode == "disabled":
		return "disabled"
	case n.DirectoryID == "":
		return "not offered: no directory-id"
	}
	return fmt.Sprintf("%s, directory-id %s; %d verified, %d legacy peers; results: %s",
		n.Mode, n.DirectoryID, n.VerifiedPeers, n.LegacyPeers, formatCounts(n.Results))
}

// selfProbeState is the "self_probe" object (absent without tor).
type selfProbeState struct {
	Running     bool       `json:"running"`
	Reason      string     `json:"reason"`
	Probes      uint64     `json:"probes"`
	Failures    uint64     `json:"failures"`
	Consecutive int        `json:"consecutive_failures"`
	LastSuccess *time.Time `json:"last_success"`
	LastError   string     `json:"last_error"`
	ConnectMs   float64    `json:"connect_ms"`
	HandshakeMs float64    `json:"handshake_ms"`
}

// describe is the report's Self-probe line: "ok 4m ago (connect 1.2 s, handshake
// 0.3 s), 12 probes, 0 failed", "FAILING: 3 in a row, last error: …; last success 41m
// ago", "not running: <reason>" or "no probe made yet".
func (p *selfProbeState) describe(now time.Time) string {
	if !p.Running {
		why := p.Reason
		if why == "" {
			why = "no reason given"
		}
		return "not running: " + why
	}
	counts := fmt.Sprintf("%d probes, %d failed", p.Probes, p.Failures)
	switch {
	case p.Consecutive > 0:
		last := "never succeeded"
		if p.LastSuccess != nil {
			last = "last success " + formatAgo(now.Sub(*p.LastSuccess)) + " ago"
		}
		s := fmt.Sprintf("FAILING: %d in a row", p.Consecutive)
		if p.LastError != "" {
			s += ", last error: " + p.LastError
		}
		return s + "; " + last + ", " + counts
	case p.LastSuccess != nil:
		return fmt.Sprintf("ok %s ago (connect %.1f s, handshake %.1f s), %s", formatAgo(now.Sub(*p.LastSuccess)),
			p.ConnectMs/1000, p.HandshakeMs/1000, counts)
	}
	return "no probe made yet"
}

// peerStats is the "stats" object.
type peerStats struct {
	TotalPeers            int `json:"total_peers"`
	ConnectedPeers        int `json:"connected_peers"`
	PassivePeers          int `json:"passive_peers"`
	ActivePeers           int `json:"active_peers"`
	NeutrinoCompatPeers   int `json:"neutrino_compat_peers"`
	PeerlistFeaturesPeers int `json:"peerlist_features_peers"`
	PushEncryptedPeers    int `json:"push_encrypted_peers"`
}

// rateLimiter is the "rate_limiter" object; joinmarket-ng adds the tracked count and
// the top violators as [connection, count] pairs, this server what it keys limits by
// and its circuit counts.
type rateLimiter struct {
	TrackedPeers    *int    `json:"tracked_peers"`
	TotalViolations uint64  `json:"total_violations"`
	TopViolators    [][]any `json:"top_violators"`
	KeyedBy         string  `json:"keyed_by"`
	BannedCircuits  int     `json:"banned_circuits"`
	CircuitBans     uint64  `json:"circuit_bans_total"`
}

// offerStats is joinmarket-ng's "offers" object.
type offerStats struct {
	TotalOffers     int     `json:"total_offers"`
	PeersWithOffers int     `json:"peers_with_offers"`
	PeersManyOffers [][]any `json:"peers_many_offers"`
}

// nickList is a count and (unless hidden) the nicks.
type nickList struct {
	Total int      `json:"total"`
	Nicks []string `json:"nicks"`
}

// disconnect is one entry of "recent_disconnects".
type disconnect struct {
	Time   time.Time `json:"time"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
}

// decodeStatus parses a /status body; it must be an object with "server_status".
func decodeStatus(b []byte) (*statusDoc, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		if json.Valid(b) {
			return nil, errors.New("invalid JSON: not an object")
		}
		var v any
		return nil, fmt.Errorf("invalid JSON: %v", json.Unmarshal(b, &v))
	}
	var st statusDoc
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if st.ServerStatus == nil {
		return nil, errors.New(`invalid JSON: not a directory status (no "server_status")`)
	}
	return &st, nil
}

// writeReport prints the human-readable status; h is nil when /health gave no answer.
func writeReport(w io.Writer, st *statusDoc, h *health, now time.Time) {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-16s%s\n", label, fmt.Sprintf(format, args...))
	}
	more := func(format string, args ...any) { // a continuation line
		fmt.Fprintf(&b, "%16s%s\n", "", fmt.Sprintf(format, args...))
	}

	line("Network:", "%s", st.Network)
	line("Status:", "%s   (uptime %s, %.1f s)", *st.ServerStatus, formatUptime(st.UptimeSeconds), st.UptimeSeconds)
	if h != nil {
		line("Health:", "%s", h.describe())
	} else {
		line("Health:", "unknown")
	}
	if st.Version != "" {
		line("Version:", "%s", st.Version)
	}
	if st.Nick != "" {
		loc := ""
		if st.Location != "" {
			loc = "  location " + st.Location
		}
		line("Directory nick:", "%s%s", st.Nick, loc)
	}
	if st.Onion != nil {
		line("Onion:", "%s", st.Onion.describe(now))
	}
	if st.SelfProbe != nil {
		line("Self-probe:", "%s", st.SelfProbe.describe(now))
	}

	peers := fmt.Sprintf("%d / %d connected", st.ConnectedPeers.Total, st.MaxPeers)
	if st.Handshaking != nil {
		peers += fmt.Sprintf(", %d handshaking", *st.Handshaking)
	} else {
		peers += fmt.Sprintf(", %d active connections", st.ActiveConnections)
	}
	line("Peers:", "%s", peers)
	line("  Makers:", "%s", formatNicks(st.ActivePeers, st.NicksHidden))
	line("  Takers:", "%s", formatNicks(st.PassivePeers, st.NicksHidden))
	line("Features:", "peerlist_features %d, neutrino_compat %d, push_encrypted %d",
		st.Stats.PeerlistFeaturesPeers, st.Stats.NeutrinoCompatPeers, st.Stats.PushEncryptedPeers)
	if st.NickAuth != nil {
		line("Nick auth:", "%s", st.NickAuth.describe())
	}

	if st.MessagesReceived != nil || st.MessagesSent != nil {
		line("Traffic:", "received %d lines (%s), sent %d lines (%s)",
			sum(st.MessagesReceived), formatBytes(st.BytesReceived), sum(st.MessagesSent), formatBytes(st.BytesSent))
	}
	if st.OffersSeen != nil {
		line("Offers seen:", "%s", formatCounts(st.OffersSeen))
	}
	if st.Orderbook != nil {
		line("Orderbook:", "%s", st.Orderbook.describe())
	}
	if o := st.Offers; o != nil {
		line("Offers:", "%d from %d peers", o.TotalOffers, o.PeersWithOffers)
		for i, p := range o.PeersManyOffers {
			if i == reportTop {
				more("... and %d more peers with >2 offers", len(o.PeersManyOffers)-i)
				break
			}
			more("%s", formatPair(p, "offers"))
		}
	}
	if rl := st.RateLimiter; rl != nil {
		s := fmt.Sprintf("%d violations", rl.TotalViolations)
		if rl.TrackedPeers != nil {
			what := "connections"
			if rl.KeyedBy == "circuit" {
				what = "circuits"
			}
			s += fmt.Sprintf(", %d tracked %s", *rl.TrackedPeers, what)
		}
		if rl.KeyedBy == "circuit" {
			s += fmt.Sprintf(", %d banned (%d bans)", rl.BannedCircuits, rl.CircuitBans)
		}
		line("Rate limiting:", "%s", s)
		for i, v := range rl.TopViolators {
			if i == reportTop {
				break
			}
			more("%s", formatPair(v, "violations"))
		}
	}
	if st.Drops != nil {
		line("Drops:", "%s", formatCounts(st.Drops))
	}
	if st.Disconnects != nil {
		line("Disconnects:", "%s", formatCounts(st.Disconnects))
	}
	if st.Rejections != nil {
		line("Rejections:", "%s", formatCounts(st.Rejections))
	}
	if st.RecentDisconnects != nil {
		if len(st.RecentDisconnects) == 0 {
			line("Recent:", "none")
		}
		for i, d := range st.RecentDisconnects {
			if i == reportRecent {
				break
			}
			label := ""
			if i == 0 {
				label = "Recent:"
			}
			line(label, "%s (%s ago)  %-5s  %s", d.Time.Local().Format("2006-01-02 15:04:05"),
				formatAgo(now.Sub(d.Time)), d.Role, d.Reason)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// formatNicks is "<count>   nick, nick, ... and N more", or "(hidden)".
func formatNicks(l nickList, hidden bool) string {
	s := fmt.Sprintf("%-4d", l.Total)
	switch {
	case hidden:
		return s + "(hidden)"
	case len(l.Nicks) == 0:
		return strings.TrimSpace(s)
	case len(l.Nicks) <= reportNicks:
		return s + strings.Join(l.Nicks, ", ")
	}
	return s + strings.Join(l.Nicks[:reportNicks], ", ") + fmt.Sprintf(", ... and %d more", len(l.Nicks)-reportNicks)
}

// formatCounts lists a count map, largest first: "a 10, b 3", or "none".
func formatCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// formatPair formats a joinmarket-ng [name, count] pair as "name: count <unit>".
func formatPair(p []any, unit string) string {
	if len(p) != 2 {
		return fmt.Sprint(p...)
	}
	return fmt.Sprintf("%v: %v %s", p[0], p[1], unit)
}

// sum adds a count map's values.
func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// formatBytes is a byte count in binary units: "512 B", "1.2 KiB", "56 KiB".
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 9.95 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// formatUptime is "3s", "2m 03s", "1h 02m 03s" or "2d 01h 02m 03s".
func formatUptime(sec float64) string {
	if math.IsNaN(sec) || sec < 0 {
		sec = 0
	}
	s := int64(math.Min(sec, math.MaxInt64/2))
	d, h, m := s/86400, s/3600%24, s/60%60
	s %= 60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %02dh %02dm %02ds", d, h, m, s)
	case h > 0:
		return fmt.Sprintf("%dh %02dm %02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// formatAgo is a short age: "4s", "3m", "2h", "5d".
func formatAgo(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}
