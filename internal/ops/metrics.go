package ops

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

// client_golang is pinned at v1.23.2 (prometheus/common v0.66.1): later versions need
// github.com/pandatix/go-abnf, which the module proxy here does not serve.

// collector exports the server's counters at scrape time, so the hot path pays for
// nothing but its own atomic counters. No nick or onion is ever a label: every label
// value comes from a fixed set (roles, message types, reasons, rejection codes, offer
// commands, orderbook command kinds, nick-authentication peer kinds and result codes). The onion and self-probe series have no labels at all, and are absent
// without tor.
type collector struct {
	srv       *server.Server
	onion     func() *onion.Status     // nil result: no onion
	selfProbe func() *selfprobe.Status // nil result: no self-probe

	peers, handshaking, maxPeers, uptime, queueBytes, queueMax, build *prometheus.Desc
	handshakes, rejections, msgsIn, msgsOut, bytesIn, bytesOut        *prometheus.Desc
	drops, disconnects, violations, pings, probes, evictions          *prometheus.Desc
	offers, latency, circuits, bans, forgotten, onionUp               *prometheus.Desc
	bookOffers, bookMakers, bookBonds, bookMalformed, bookOverCap     *prometheus.Desc
	onionLastUpload, onionUploads                                     *prometheus.Desc
	authPeers, authResults, authOffered                               *prometheus.Desc
	spRunning, spHealthy, spProbes, spFailures, spConsecutive         *prometheus.Desc
	spLastSuccess, spConnect, spHandshake                             *prometheus.Desc
}

func newCollector(srv *server.Server, onionStatus func() *onion.Status, selfProbeStatus func() *selfprobe.Status) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("jm_directory_"+name, help, labels, nil)
	}
	return &collector{
		srv:         srv,
		onion:       onionStatus,
		selfProbe:   selfProbeStatus,
		peers:       d("peers", "Handshaked peers by role (maker = serving an onion, taker = not serving).", "role"),
		handshaking: d("handshaking_connections", "Connections that have not finished the handshake."),
		maxPeers:    d("max_peers", "Configured maximum number of peers."),
		uptime:      d("uptime_seconds", "Seconds since the server started."),
		queueBytes:  d("outbound_queue_bytes", "Bytes queued to all peers and not yet written."),
		queueMax:    d("outbound_queue_max_bytes", "Bytes queued to the most backed-up peer."),
		build:       d("build_info", "Build information.", "version"),
		handshakes:  d("handshakes_total", "Handshakes answered, by result.", "result"),
		rejections:  d("handshake_rejections_total", "Handshakes answered accepted:false, by reason code.", "code"),
		msgsIn:      d("messages_received_total", "Lines received, by message type.", "type"),
		msgsOut:     d("messages_sent_total", "Lines queued to peers, by message type.", "type"),
		bytesIn:     d("received_bytes_total", "Bytes of lines received."),
		bytesOut:    d("sent_bytes_total", "Bytes of lines queued to peers."),
		drops:       d("dropped_messages_total", "Messages not relayed, by reason.", "reason"),
		disconnects: d("disconnects_total", "Connections closed, by reason.", "reason"),
		violations:  d("rate_limit_violations_total", "Messages refused by a rate limit or cap (per circuit with tor_proxy_protocol, else per connection)."),
		pings:       d("heartbeat_pings_total", "798 pings sent to idle ping-capable peers."),
		probes:      d("heartbeat_probes_total", "Legacy !orderbook probes sent to idle makers without ping."),
		evictions:   d("heartbeat_evictions_total", "Peers cut by the heartbeat, by reason.", "reason"),
		offers:      d("offers_seen_total", "Offer pubmsgs relayed, by command.", "command"),
		bookOffers:  d("orderbook_offers", "Live offers in the orderbook (/orderbook.json)."),
		bookMakers:  d("orderbook_makers", "Makers with at least one live offer in the orderbook."),
		bookBonds:   d("orderbook_fidelity_bonds", "Makers whose fidelity bond proof the orderbook holds (unverified)."),
		bookMalformed: d("orderbook_malformed_total", "Offer, cancel and tbond commands skipped by the orderbook as malformed "+
			"(they were relayed all the same), by kind.", "kind"),
		bookOverCap: d("orderbook_offers_over_cap_total", "New offers skipped because their maker already had the "+
			"orderbook's per-maker cap of offers."),
		latency:   d("relay_latency_seconds", "Time from reading a pubmsg or privmsg to having queued it to every recipient."),
		circuits:  d("circuits", "Tor circuits named by PROXY headers: connected (with an open connection) and banned now.", "state"),
		bans:      d("circuit_bans_total", "Circuit bans imposed."),
		forgotten: d("circuit_bans_forgotten_total", "Circuits without a connection dropped, with their strikes or ban, because the table was full."),
		authPeers: d("nick_auth_peers", "Handshaked peers by nick authentication (JMP-0005): verified "+
			"(proved the key behind their nick) and legacy (did not).", "kind"),
		authResults: d("nick_auth_results_total", "Nick-authentication rounds by the code of the 807 result "+
			"(ok, malformed, expired, invalid, policy).", "code"),
		authOffered: d("nick_auth_offered", "1 while nick authentication is offered to clients that ask for it "+
			"(a mode other than disabled and a directory-id known), else 0."),
		onionUp: d("onion_published", "1 while the onion is published, else 0: in tor_mode control and launch once tor "+
			"reported its descriptor uploaded to an HSDir, in external once tor's hostname file was read; absent without tor."),
		onionLastUpload: d("onion_last_upload_timestamp_seconds", "Unix time tor last reported the onion's descriptor "+
			"uploaded to an HSDir (tor_mode control and launch); absent before the first upload and without tor."),
		onionUploads: d("onion_uploads_total", "Uploads of the onion's descriptor to an HSDir that tor reported "+
			"(one per HSDir); absent without tor."),
		spRunning: d("self_probe_running", "1 while self-probes of the onion through tor are being made, else 0 "+
			"(onion not published, no SOCKS port, probes off); absent without tor."),
		spHealthy:     d("self_probe_healthy", "0 once no self-probe has succeeded for self_probe_unhealthy_after, else 1; absent without tor."),
		spProbes:      d("self_probe_probes_total", "Self-probes made (dial through tor, handshake, peerlist); absent without tor."),
		spFailures:    d("self_probe_failures_total", "Self-probes that failed; absent without tor."),
		spConsecutive: d("self_probe_consecutive_failures", "Self-probes failed since the last success; absent without tor."),
		spLastSuccess: d("self_probe_last_success_timestamp_seconds", "Unix time of the last successful self-probe; "+
			"absent before the first and without tor."),
		spConnect: d("self_probe_connect_seconds", "Time the last successful self-probe took to connect to the onion "+
			"through tor; absent before the first success and without tor."),
		spHandshake: d("self_probe_handshake_seconds", "Time the last successful self-probe took from connected to the "+
			"directory's handshake answer; absent before the first success and without tor."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	st := c.srv.Status(false)
	ctr := c.srv.Counters()

	gauge(c.peers, float64(st.Makers), "maker")
	gauge(c.peers, float64(st.Takers), "taker")
	gauge(c.handshaking, float64(st.Pending))
	gauge(c.maxPeers, float64(st.MaxPeers))
	gauge(c.uptime, st.Uptime.Seconds())
	total, largest := c.srv.QueuedBytes()
	gauge(c.queueBytes, float64(total))
	gauge(c.queueMax, float64(largest))
	gauge(c.build, 1, st.Version)

	var rejected uint64
	for r := reason.Reject(1); r < reason.NumRejects; r++ {
		if v := ctr.Rejects(r); v > 0 {
			rejected += v
			counter(c.rejections, v, r.String())
		}
	}
	counter(c.handshakes, ctr.Accepted.Load(), "accepted")
	counter(c.handshakes, rejected, "rejected")

	for t := stats.MsgType(0); t < stats.NumMsgTypes; t++ {
		counter(c.msgsIn, ctr.In[t].Load(), t.String())
		counter(c.msgsOut, ctr.Out[t].Load(), t.String())
	}
	counter(c.bytesIn, ctr.BytesIn.Load())
	counter(c.bytesOut, ctr.BytesOut.Load())
	for r := reason.Drop(1); r < reason.NumDrops; r++ {
		counter(c.drops, ctr.Drops(r), r.String())
	}
	for r := reason.Close(1); r < reason.NumCloses; r++ {
		counter(c.disconnects, ctr.Closes(r), r.String())
	}
	counter(c.violations, ctr.RateViolate.Load())
	counter(c.pings, ctr.Pings.Load())
	counter(c.probes, ctr.Probes.Load())
	counter(c.evictions, ctr.Closes(reason.ClosePongTimeout), reason.ClosePongTimeout.String())
	counter(c.evictions, ctr.Closes(reason.CloseHardEvict), reason.CloseHardEvict.String())
	for i, cmd := range stats.OfferCommands {
		counter(c.offers, ctr.OffersSeen[i].Load(), cmd)
	}

	ob := st.Orderbook
	gauge(c.bookOffers, float64(ob.Offers))
	gauge(c.bookMakers, float64(ob.Makers))
	gauge(c.bookBonds, float64(ob.Bonds))
	for k := orderbook.Kind(0); k < orderbook.NumKinds; k++ {
		counter(c.bookMalformed, ob.Malformed[k.String()], k.String())
	}
	counter(c.bookOverCap, ob.OverCap)

	gauge(c.circuits, float64(st.Circuits.Connected), "connected")
	gauge(c.circuits, float64(st.Circuits.Banned), "banned")
	counter(c.bans, st.Circuits.Bans)
	counter(c.forgotten, st.Circuits.Forgotten)

	na := st.NickAuth
	gauge(c.authPeers, float64(na.Verified), "verified")
	gauge(c.authPeers, float64(na.Legacy), "legacy")
	for _, code := range nickAuthCodes {
		counter(c.authResults, na.Results[code.String()], code.String())
	}
	gauge(c.authOffered, boolGauge(na.DirectoryID != ""))

	if on := c.onion(); on != nil {
		gauge(c.onionUp, boolGauge(on.Published))
		if on.LastUpload != nil {
			gauge(c.onionLastUpload, unixSeconds(*on.LastUpload))
		}
		counter(c.onionUploads, on.Uploads)
	}
	if sp := c.selfProbe(); sp != nil {
		gauge(c.spRunning, boolGauge(sp.Running))
		gauge(c.spHealthy, boolGauge(sp.Healthy))
		counter(c.spProbes, sp.Probes)
		counter(c.spFailures, sp.Failures)
		gauge(c.spConsecutive, float64(sp.Consecutive))
		if sp.LastSuccess != nil {
			gauge(c.spLastSuccess, unixSeconds(*sp.LastSuccess))
			gauge(c.spConnect, sp.ConnectMs/1000)
			gauge(c.spHandshake, sp.HandshakeMs/1000)
		}
	}

	cum, count, sum := ctr.RelayLatency.Snapshot()
	buckets := make(map[float64]uint64, len(cum))
	for i, b := range stats.LatencyBounds {
		buckets[b] = cum[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, count, sum, buckets)
}

// nickAuthCodes are the label values of jm_directory_nick_auth_results_total: every
// 807 result code, each exported from the start.
var nickAuthCodes = []nickauth.Code{nickauth.CodeOK, nickauth.CodeMalformed, nickauth.CodeExpired,
	nickauth.CodeInvalid, nickauth.CodePolicy}

// boolGauge is 1 for true, 0 for false.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as Unix seconds, with fractions (summed, not divided, so that whole
// and binary fractions of seconds come out exact).
func unixSeconds(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }
