package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

var discard = slog.New(slog.DiscardHandler)

// features are what every test peer announces.
var features = map[string]bool{"peerlist_features": true}

const (
	makerNick = "J59xfsUewpdmrbuM"
	takerNick = "J55uwMUczBgZV44z"
)

func get(t *testing.T, h http.Handler, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestStatusKeys is the golden test: /status has exactly joinmarket-ng's keys, in its
// order, followed by this server's extras.
func TestStatusKeys(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	d.Join(t, makerNick, "127.0.0.1:27102", features)
	d.Join(t, takerNick, "NOT-SERVING-ONION", features)
	op, err := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := get(t, op.Handler(), "/status", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	keys := topLevelKeys(t, rec.Body.Bytes())
	ng := []string{"network", "uptime_seconds", "server_status", "max_peers", "stats",
		"connected_peers", "passive_peers", "active_peers", "active_connections"}
	extras := []string{"version", "directory_nick", "location", "nicks_hidden", "handshaking", "rate_limiter",
		"messages_received", "messages_sent", "bytes_received", "bytes_sent", "drops", "disconnects",
		"rejections", "recent_disconnects", "offers_seen", "orderbook", "nick_auth"}
	if want := append(ng, extras...); !slices.Equal(keys, want) {
		t.Fatalf("keys:\n got %v\nwant %v", keys, want)
	}
	var st struct {
		Network      string         `json:"network"`
		ServerStatus string         `json:"server_status"`
		MaxPeers     int            `json:"max_peers"`
		Stats        map[string]int `json:"stats"`
		Connected    NickList       `json:"connected_peers"`
		Passive      NickList       `json:"passive_peers"`
		Active       NickList       `json:"active_peers"`
		ActiveConns  int            `json:"active_connections"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"total_peers", "connected_peers", "passive_peers", "active_peers"} {
		if _, ok := st.Stats[k]; !ok {
			t.Errorf("stats lacks %s", k)
		}
	}
	if st.Network != "regtest" || st.ServerStatus != "running" || st.MaxPeers != 10000 ||
		st.Stats["connected_peers"] != 2 || st.Stats["active_peers"] != 1 || st.Stats["passive_peers"] != 1 ||
		st.Stats["peerlist_features_peers"] != 2 || st.ActiveConns != 2 {
		t.Fatalf("values: %+v", st)
	}
	if !slices.Equal(st.Active.Nicks, []string{makerNick}) || !slices.Equal(st.Passive.Nicks, []string{takerNick}) ||
		st.Connected.Total != 2 || len(st.Connected.Nicks) != 2 {
		t.Fatalf("nick lists: %+v %+v %+v", st.Connected, st.Active, st.Passive)
	}

	// Hidden nicks: same keys, empty lists, counts kept.
	hidden, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", HideNicks: true}, discard)
	body := get(t, hidden.Handler(), "/status", "").Body.String()
	if strings.Contains(body, makerNick) || strings.Contains(body, takerNick) {
		t.Fatalf("nicks shown although hidden: %s", body)
	}
	if !slices.Equal(topLevelKeys(t, []byte(body)), keys) || !strings.Contains(body, `"connected_peers":{"total":2,"nicks":[]}`) {
		t.Fatalf("hidden status: %s", body)
	}
}

func topLevelKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v", err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func health(t *testing.T, h http.Handler) (int, HealthResponse) {
	t.Helper()
	rec := get(t, h, "/health", "")
	var hr HealthResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &hr); err != nil {
		t.Fatalf("health body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, hr
}

// TestHealthTransitions: starting, healthy, at capacity, healthy again, shutting down.
func TestHealthTransitions(t *testing.T) {
	d := dirtest.New(t, func(c *config.Config) { c.MaxPeers = 1 }, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if code, hr := health(t, op.Handler()); code != 503 || hr.Status != "unhealthy" || hr.Reason != "not listening" {
		t.Fatalf("before start: %d %+v", code, hr)
	}
	d.Serve(t)
	testkit.Eventually(t, "healthy", func() bool { c, _ := health(t, op.Handler()); return c == 200 })
	if _, hr := health(t, op.Handler()); hr != (HealthResponse{Status: "healthy"}) {
		t.Fatalf("healthy body: %+v", hr)
	}
	c, _ := d.Join(t, makerNick, "127.0.0.1:27102", features)
	if code, hr := health(t, op.Handler()); code != 503 || hr.Reason != "at capacity" {
		t.Fatalf("at capacity: %d %+v", code, hr)
	}
	c.Close()
	testkit.Eventually(t, "healthy after a departure", func() bool { c, _ := health(t, op.Handler()); return c == 200 })

	d.Stop()
	if code, hr := health(t, op.Handler()); code != 503 || hr.Reason != "shutting down" {
		t.Fatalf("after shutdown: %d %+v", code, hr)
	}
}

// TestMetrics: /metrics parses with the Prometheus text parser, carries our families,
// and no nick or onion appears anywhere in it.
func TestMetrics(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	m, _ := d.Join(t, makerNick, "127.0.0.1:27102", features)
	d.Join(t, takerNick, "NOT-SERVING-ONION", features)
	fmt.Fprintf(m, `{"type": 687, "line": "%s!PUBLIC!sw0reloffer 0 27300 1000000 0 0.0002"}`+"\r\n", makerNick)
	testkit.Eventually(t, "the offer relayed", func() bool { return d.Srv.Counters().Relayed() == 1 })

	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	rec := get(t, op.Handler(), "/metrics", "")
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	text := rec.Body.String()
	p := expfmt.NewTextParser(model.LegacyValidation) // strict: classic metric names only
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("unparseable: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		return metric(t, fams, name, labels)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"jm_directory_peers", map[string]string{"role": "maker"}, 1},
		{"jm_directory_peers", map[string]string{"role": "taker"}, 1},
		{"jm_directory_handshakes_total", map[string]string{"result": "accepted"}, 2},
		{"jm_directory_messages_received_total", map[string]string{"type": "pubmsg"}, 1},
		{"jm_directory_messages_sent_total", map[string]string{"type": "pubmsg"}, 1},
		{"jm_directory_messages_sent_total", map[string]string{"type": "dn-handshake"}, 2},
		{"jm_directory_offers_seen_total", map[string]string{"command": "sw0reloffer"}, 1},
		{"jm_directory_relay_latency_seconds", nil, 1},
		{"jm_directory_max_peers", nil, 10000},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, fam := range []string{"jm_directory_disconnects_total", "jm_directory_dropped_messages_total",
		"jm_directory_outbound_queue_bytes", "jm_directory_heartbeat_pings_total", "jm_directory_heartbeat_evictions_total",
		"jm_directory_received_bytes_total", "jm_directory_sent_bytes_total", "go_goroutines"} {
		if _, ok := fams[fam]; !ok {
			t.Errorf("no family %s", fam)
		}
	}
	noSecrets(t, fams, text, []string{"27102"}, []string{makerNick, takerNick, d.Srv.Nick()})
}

// noSecrets checks that no metric label names a peer: no label value contains any of
// numbers (ports, circuit numbers) or names (nicks, addresses), and the text nowhere
// contains names. Numbers are looked for in label values only, since the text's own
// figures (Go runtime gauges, byte counts) may contain any digits.
func noSecrets(t *testing.T, fams map[string]*dto.MetricFamily, text string, numbers, names []string) {
	t.Helper()
	all := append(append([]string(nil), numbers...), names...)
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, secret := range all {
					if strings.Contains(l.GetValue(), secret) || strings.Contains(l.GetName(), secret) {
						t.Errorf("%s{%s=%q} names %q", name, l.GetName(), l.GetValue(), secret)
					}
				}
			}
		}
	}
	for _, secret := range names {
		if strings.Contains(text, secret) {
			t.Errorf("metrics mention %q", secret)
		}
	}
}

// metric returns the value of the first metric of family name whose labels include labels.
func metric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s%v not found", name, labels)
	return 0
}

// TestRejections: handshakes answered accepted:false are counted by reason under one
// label in server.Status, /status ("rejections"), /metrics (code=…) and the live page's
// state, and each rejected connection counts one handshake_rejected disconnect.
func TestRejections(t *testing.T) {
	d := dirtest.Start(t, nil, discard) // regtest
	for _, c := range []struct{ nick, network string }{
		{takerNick, "mainnet"}, {takerNick, "signet"}, {"J5nope", "regtest"},
	} {
		conn, err := net.Dial("tcp", d.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dirtest.TryHandshake(conn, c.nick, "NOT-SERVING-ONION", c.network, nil, dirtest.Timeout)
		conn.Close()
		if err == nil || !strings.Contains(err.Error(), `"accepted":false`) {
			t.Fatalf("%s on %s: %v, want a rejection", c.nick, c.network, err)
		}
	}
	want := map[string]uint64{"network": 2, "nick": 1}
	if got := d.Srv.Status(false).Rejections; !maps.Equal(got, want) {
		t.Errorf("server.Status Rejections = %v, want %v", got, want)
	}
	testkit.Eventually(t, "three rejected connections closed", func() bool {
		return d.Srv.Status(false).Closes["handshake_rejected"] == 3
	})

	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	var st struct {
		Rejections  map[string]uint64 `json:"rejections"`
		Disconnects map[string]uint64 `json:"disconnects"`
	}
	if err := json.Unmarshal(get(t, op.Handler(), "/status", "").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(st.Rejections, want) || st.Disconnects["handshake_rejected"] != 3 {
		t.Errorf("/status rejections %v, disconnects %v", st.Rejections, st.Disconnects)
	}
	var sm sampler
	now := time.Now()
	s, sst := sm.take(d.Srv, now)
	if ls := op.liveState(now, s, sst, false); !maps.Equal(ls.Rejections, want) {
		t.Errorf("live state rejections %v, want %v", ls.Rejections, want)
	}
	fams := parseMetrics(t, op)
	for code, n := range want {
		if got := metric(t, fams, "jm_directory_handshake_rejections_total", map[string]string{"code": code}); got != float64(n) {
			t.Errorf("handshake_rejections_total{code=%q} = %v, want %d", code, got, n)
		}
	}
	if got := metric(t, fams, "jm_directory_handshakes_total", map[string]string{"result": "rejected"}); got != 3 {
		t.Errorf("handshakes_total{result=rejected} = %v, want 3", got)
	}
}

// TestCircuits: with tor_proxy_protocol the rate limiter is keyed by circuit, and
// /status and /metrics count circuits and bans without naming any.
func TestCircuits(t *testing.T) {
	d := dirtest.Start(t, func(c *config.Config) { c.TorProxyProtocol, c.CircuitBanAfter = true, 1 }, discard)
	dial := func(gid int) net.Conn {
		conn, err := net.Dial("tcp", d.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "PROXY TCP6 fc00:dead:beef:4dad::%x:%x ::1 1 5222\r\n", gid>>16, gid&0xffff)
		return conn
	}
	dirtest.Handshake(t, dial(4242), makerNick, "127.0.0.1:27102", d.Network, features)
	bad := dial(4343)
	dirtest.Handshake(t, bad, takerNick, "NOT-SERVING-ONION", d.Network, features)
	fmt.Fprint(bad, "garbage\r\n")
	testkit.Eventually(t, "the ban", func() bool { return d.Srv.Status(false).Circuits.Bans == 1 })

	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	var st struct {
		RateLimiter map[string]any `json:"rate_limiter"`
	}
	if err := json.Unmarshal(get(t, op.Handler(), "/status", "").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"tracked_peers": 1.0, "total_violations": 0.0, "keyed_by": "circuit",
		"circuits": 1.0, "banned_circuits": 1.0, "circuit_bans_total": 1.0}
	if !maps.Equal(st.RateLimiter, want) {
		t.Fatalf("rate_limiter %v, want %v", st.RateLimiter, want)
	}
	text := get(t, op.Handler(), "/metrics", "").Body.String()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"jm_directory_circuits", map[string]string{"state": "connected"}, 1},
		{"jm_directory_circuits", map[string]string{"state": "banned"}, 1},
		{"jm_directory_circuit_bans_total", nil, 1},
		{"jm_directory_circuit_bans_forgotten_total", nil, 0},
		{"jm_directory_disconnects_total", map[string]string{"reason": "malformed_line"}, 1},
	} {
		if got := metric(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	noSecrets(t, fams, text, []string{"4242", "4343"}, []string{"fc00:dead", makerNick, takerNick})
}

// TestOnionState: with an onion, /status ends with its state and /metrics says whether
// it is published; without one neither appears (TestStatusKeys, TestMetrics).
func TestOnionState(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if _, ok := parseMetrics(t, op)["jm_directory_onion_published"]; ok {
		t.Fatal("onion_published without an onion")
	}
	state := onion.Status{Mode: "control", Onion: "abc.onion", Reason: "tor control: EOF", PoW: true, TorVersion: "0.4.9.11"}
	op.SetOnion(func() onion.Status { return state })
	body := get(t, op.Handler(), "/status", "").Body.Bytes()
	if keys := topLevelKeys(t, body); keys[len(keys)-1] != "onion" {
		t.Fatalf("keys %v: want onion last", keys)
	}
	var st struct {
		Onion onion.Status `json:"onion"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Onion != state {
		t.Fatalf("onion %+v (%v), want %+v", st.Onion, err, state)
	}
	if v := metric(t, parseMetrics(t, op), "jm_directory_onion_published", nil); v != 0 {
		t.Fatalf("onion_published %v while not published", v)
	}
	state.Published, state.Reason = true, ""
	if v := metric(t, parseMetrics(t, op), "jm_directory_onion_published", nil); v != 1 {
		t.Fatalf("onion_published %v while published", v)
	}
}

// torSeries are the onion's and the self-probe's metric families, by type; none exists
// without tor.
var torSeries = map[string]dto.MetricType{
	"jm_directory_onion_published":                           dto.MetricType_GAUGE,
	"jm_directory_onion_last_upload_timestamp_seconds":       dto.MetricType_GAUGE,
	"jm_directory_onion_uploads_total":                       dto.MetricType_COUNTER,
	"jm_directory_self_probe_running":                        dto.MetricType_GAUGE,
	"jm_directory_self_probe_healthy":                        dto.MetricType_GAUGE,
	"jm_directory_self_probe_probes_total":                   dto.MetricType_COUNTER,
	"jm_directory_self_probe_failures_total":                 dto.MetricType_COUNTER,
	"jm_directory_self_probe_consecutive_failures":           dto.MetricType_GAUGE,
	"jm_directory_self_probe_last_success_timestamp_seconds": dto.MetricType_GAUGE,
	"jm_directory_self_probe_connect_seconds":                dto.MetricType_GAUGE,
	"jm_directory_self_probe_handshake_seconds":              dto.MetricType_GAUGE,
}

// TestTorState: with tor, /status ends with the onion's state (with its uploads) and
// the self-probe's, the live page's state carries both, and /metrics has their series,
// unlabelled, with the values of the state; timestamps and latencies only once there is
// one. Without tor none of it appears.
func TestTorState(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	fams := parseMetrics(t, op)
	for name := range torSeries {
		if _, ok := fams[name]; ok {
			t.Errorf("%s without tor", name)
		}
	}
	body := get(t, op.Handler(), "/status", "").Body.Bytes()
	if keys := topLevelKeys(t, body); slices.Contains(keys, "onion") || slices.Contains(keys, "self_probe") {
		t.Errorf("/status keys without tor: %v", keys)
	}
	var sm sampler
	now := time.Now()
	s, sst := sm.take(d.Srv, now)
	if ls := op.liveState(now, s, sst, false); ls.Onion != nil || ls.SelfProbe != nil {
		t.Errorf("live state without tor: onion %+v, self-probe %+v", ls.Onion, ls.SelfProbe)
	}

	uploaded := time.Unix(1_700_000_000, 500_000_000).UTC()
	succeeded := time.Unix(1_700_000_100, 250_000_000).UTC()
	attempted := time.Unix(1_700_000_160, 0).UTC()
	on := onion.Status{Mode: "launch", Onion: "abc.onion", Published: true, PoW: true, TorVersion: "0.4.9.11",
		LastUpload: &uploaded, Uploads: 7, UploadError: "UPLOAD_REJECTED", SOCKS: "unix:/data/tor/socks"}
	sp := selfprobe.Status{Running: true, SOCKS: "unix:/data/tor/socks", Probes: 12, Failures: 5, Consecutive: 3,
		LastAttempt: &attempted, LastSuccess: &succeeded, LastError: "no answer within 1m0s: EOF",
		ConnectMs: 1250, HandshakeMs: 312.5, UnhealthyAfterSeconds: 1800, Healthy: false}
	op.SetOnion(func() onion.Status { return on })
	op.SetSelfProbe(func() selfprobe.Status { return sp })

	body = get(t, op.Handler(), "/status", "").Body.Bytes()
	if keys := topLevelKeys(t, body); len(keys) < 2 || !slices.Equal(keys[len(keys)-2:], []string{"onion", "self_probe"}) {
		t.Fatalf("keys %v: want onion and self_probe last", keys)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"onion": on, "self_probe": sp} {
		w, _ := json.Marshal(want)
		if string(raw[key]) != string(w) {
			t.Errorf("/status %s:\n got %s\nwant %s", key, raw[key], w)
		}
	}
	var keyed struct {
		Onion     map[string]any `json:"onion"`
		SelfProbe map[string]any `json:"self_probe"`
	}
	if err := json.Unmarshal(body, &keyed); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"last_upload", "uploads", "upload_error", "socks"} {
		if _, ok := keyed.Onion[k]; !ok {
			t.Errorf("/status onion lacks %q: %v", k, keyed.Onion)
		}
	}
	for _, k := range []string{"running", "probes", "failures", "consecutive_failures", "last_attempt", "last_success",
		"last_error", "connect_ms", "handshake_ms", "unhealthy_after_seconds", "healthy"} {
		if _, ok := keyed.SelfProbe[k]; !ok {
			t.Errorf("/status self_probe lacks %q: %v", k, keyed.SelfProbe)
		}
	}
	if ls := op.liveState(now, s, sst, false); ls.Onion == nil || *ls.Onion != on || ls.SelfProbe == nil || *ls.SelfProbe != sp {
		t.Errorf("live state: onion %+v, self-probe %+v", ls.Onion, ls.SelfProbe)
	}

	check := func(what string, want map[string]float64) {
		t.Helper()
		fams := parseMetrics(t, op)
		for name, typ := range torSeries {
			f, ok := fams[name]
			v, wanted := want[name]
			switch {
			case !ok && wanted:
				t.Errorf("%s: no %s", what, name)
			case ok && !wanted:
				t.Errorf("%s: %s present", what, name)
			case !ok:
			case f.GetType() != typ || len(f.Metric) != 1 || len(f.Metric[0].Label) != 0:
				t.Errorf("%s: %s is %v with %d series, labels %v; want one unlabelled %v", what, name,
					f.GetType(), len(f.Metric), f.Metric[0].Label, typ)
			case metric(t, fams, name, nil) != v:
				t.Errorf("%s: %s = %v, want %v", what, name, metric(t, fams, name, nil), v)
			}
		}
	}
	check("failing self-probe", map[string]float64{
		"jm_directory_onion_published":                           1,
		"jm_directory_onion_last_upload_timestamp_seconds":       1_700_000_000.5,
		"jm_directory_onion_uploads_total":                       7,
		"jm_directory_self_probe_running":                        1,
		"jm_directory_self_probe_healthy":                        0,
		"jm_directory_self_probe_probes_total":                   12,
		"jm_directory_self_probe_failures_total":                 5,
		"jm_directory_self_probe_consecutive_failures":           3,
		"jm_directory_self_probe_last_success_timestamp_seconds": 1_700_000_100.25,
		"jm_directory_self_probe_connect_seconds":                1.25,
		"jm_directory_self_probe_handshake_seconds":              0.3125,
	})

	// Before the first upload and the first success: no timestamps, no latencies.
	on = onion.Status{Mode: "control", Onion: "abc.onion", Reason: "waiting for tor to upload the onion's descriptor to an HSDir"}
	sp = selfprobe.Status{Reason: "onion not published: waiting", Healthy: true}
	check("nothing uploaded nor probed", map[string]float64{
		"jm_directory_onion_published":                 0,
		"jm_directory_onion_uploads_total":             0,
		"jm_directory_self_probe_running":              0,
		"jm_directory_self_probe_healthy":              1,
		"jm_directory_self_probe_probes_total":         0,
		"jm_directory_self_probe_failures_total":       0,
		"jm_directory_self_probe_consecutive_failures": 0,
	})
	body = get(t, op.Handler(), "/status", "").Body.Bytes()
	keyed.Onion, keyed.SelfProbe = nil, nil
	if err := json.Unmarshal(body, &keyed); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"last_upload", "upload_error"} {
		if _, ok := keyed.Onion[k]; ok {
			t.Errorf("/status onion has %q before any upload: %v", k, keyed.Onion)
		}
	}
	for _, k := range []string{"last_attempt", "last_success", "connect_ms", "handshake_ms"} {
		if _, ok := keyed.SelfProbe[k]; ok {
			t.Errorf("/status self_probe has %q before any probe: %v", k, keyed.SelfProbe)
		}
	}
	noSecrets(t, parseMetrics(t, op), get(t, op.Handler(), "/metrics", "").Body.String(), nil, []string{"abc.onion", "/data/tor/socks"})
}

func parseMetrics(t *testing.T, op *Ops) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(get(t, op.Handler(), "/metrics", "").Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestTokenOnNonLoopback: on a non-loopback bind the stream, /status and /metrics need
// the bearer token; /health does not; on loopback nothing does.
func TestTokenOnNonLoopback(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	dir := t.TempDir()
	op, err := New(d.Srv, Options{Addr: "0.0.0.0:8080", DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if !op.TokenRequired() {
		t.Fatal("no token required on 0.0.0.0")
	}
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatalf("token not generated: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if fi, _ := os.Stat(filepath.Join(dir, TokenFile)); fi.Mode().Perm() != 0o600 || len(tok) != 64 {
		t.Fatalf("token file mode %v, length %d", fi.Mode().Perm(), len(tok))
	}
	h := op.Handler()
	for _, path := range []string{"/status", "/metrics", "/events"} {
		if rec := get(t, h, path, ""); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s without token: %d", path, rec.Code)
		}
		if rec := get(t, h, path, "wrong-token-wrong-token"); rec.Code != 401 {
			t.Errorf("%s with a wrong token: %d", path, rec.Code)
		}
	}
	for _, path := range []string{"/status", "/metrics"} {
		if rec := get(t, h, path, tok); rec.Code != 200 {
			t.Errorf("%s with the token: %d", path, rec.Code)
		}
	}
	if rec := get(t, h, "/health", ""); rec.Code != 200 {
		t.Errorf("/health must stay open: %d", rec.Code)
	}
	if rec := get(t, h, "/", ""); rec.Code != 200 || strings.Contains(rec.Body.String(), d.Srv.Nick()) {
		t.Errorf("the page shell must load and hold no data: %d", rec.Code)
	}
	// The same token is used again after a restart.
	again, _ := New(d.Srv, Options{Addr: "10.1.2.3:8080", DataDir: dir}, discard)
	if rec := get(t, again.Handler(), "/status", tok); rec.Code != 200 {
		t.Errorf("stored token not reused: %d", rec.Code)
	}
	// A configured token wins; loopback needs none.
	conf, _ := New(d.Srv, Options{Addr: "[::]:8080", Token: "0123456789abcdef"}, discard)
	if get(t, conf.Handler(), "/status", "0123456789abcdef").Code != 200 || get(t, conf.Handler(), "/status", tok).Code != 401 {
		t.Error("configured token not used")
	}
	open, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if open.TokenRequired() || get(t, open.Handler(), "/status", "").Code != 200 {
		t.Error("loopback must not need a token")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, "[::]:8080": false, ":8080": false, "192.168.1.2:8080": false, "example.com:80": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("%s: %v", addr, got)
		}
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	off, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	if get(t, off.Handler(), "/debug/pprof/", "").Code != 404 {
		t.Error("pprof served without the flag")
	}
	on, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080", Pprof: true}, discard)
	if rec := get(t, on.Handler(), "/debug/pprof/", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof index: %d", rec.Code)
	}
}

// TestEventStream: the first event carries the history; later ones come from Run.
func TestEventStream(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	op.History().Add(Sample{T: 1, Peers: 7})
	ts := httptest.NewServer(op.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go op.Run(ctx, 20*time.Millisecond)

	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(res.Body)
	next := func() LiveState {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var ls LiveState
				if err := json.Unmarshal([]byte(data), &ls); err != nil {
					t.Fatal(err)
				}
				return ls
			}
		}
	}
	first := next()
	if len(first.History) == 0 || first.History[0].Peers != 7 || first.Network != "regtest" || !first.Healthy ||
		first.Now.IsZero() || first.Onion != nil || first.SelfProbe != nil {
		t.Fatalf("first event: %+v", first)
	}
	d.Join(t, makerNick, "127.0.0.1:27102", features)
	for {
		ls := next()
		if ls.History != nil {
			t.Fatal("history repeated in a later event")
		}
		if ls.Peers == 1 && ls.Makers == 1 && ls.Sample.Peers == 1 {
			break
		}
	}
}

func TestHistoryRing(t *testing.T) {
	h := NewHistory(3)
	if len(h.All()) != 0 {
		t.Fatal("not empty")
	}
	for i := int64(1); i <= 5; i++ {
		h.Add(Sample{T: i})
	}
	var ts []int64
	for _, s := range h.All() {
		ts = append(ts, s.T)
	}
	if !slices.Equal(ts, []int64{3, 4, 5}) {
		t.Fatalf("ring = %v", ts)
	}
}

func TestTokenFileProblems(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	if _, err := New(d.Srv, Options{Addr: "0.0.0.0:1"}, discard); err == nil {
		t.Error("no data dir and no token: must fail")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(d.Srv, Options{Addr: "0.0.0.0:1", DataDir: dir}, discard); err == nil {
		t.Error("unusable token file accepted")
	}

}

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestNickAuthVisible: with a legacy peer, a verified maker that reconnects (displacing
// its first connection) and a client whose proof is invalid, /status's nick_auth, the
// live page's state and /metrics count 1 verified and 1 legacy peer, 2 ok and 1 invalid
// rounds, and say it is offered, with the directory-id; neither /metrics nor the INFO log
// names a nick or a public key.
func TestNickAuthVisible(t *testing.T) {
	logs := &syncBuffer{}
	d := dirtest.Start(t, nil, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	tg := d.Target()
	legacy := tg.Join(t, dirtest.RefTaker)
	key, other := dirtest.NewKey(t), dirtest.NewKey(t)
	first, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: key, Maker: true})
	if code != nickauth.CodeOK {
		t.Fatalf("first round: %s, want ok", code)
	}
	if _, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: key, Maker: true}); code != nickauth.CodeOK {
		t.Fatalf("reconnect: %s, want ok", code)
	}
	first.ExpectClosed()
	bad, code := tg.JoinAuth(t, dirtest.AuthSpec{Key: other, Proof: func(p nickauth.Proof) string {
		return nickauth.Proof{PubKey: p.PubKey, Signature: nickauth.Prove(key, strings.Repeat("0", 64), "x", "y").Signature}.Line()
	}})
	if code != nickauth.CodeInvalid {
		t.Fatalf("bad proof: %s, want invalid", code)
	}
	bad.ExpectClosed()
	// The ok of a round is counted once its peer is registered, just after its 807.
	testkit.Eventually(t, "two ok rounds counted", func() bool { return d.Srv.Status(false).NickAuth.Results["ok"] == 2 })

	want := NickAuthStats{Mode: "prefer_verified", DirectoryID: d.Addr, VerifiedPeers: 1, LegacyPeers: 1,
		Results: map[string]uint64{"ok": 2, "malformed": 0, "expired": 0, "invalid": 1, "policy": 0}}
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	body := get(t, op.Handler(), "/status", "").Body.Bytes()
	var raw struct {
		NickAuth map[string]json.RawMessage `json:"nick_auth"`
	}
	var st struct {
		NickAuth NickAuthStats `json:"nick_auth"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(raw.NickAuth)); !slices.Equal(keys,
		[]string{"directory_id", "legacy_peers", "mode", "results", "verified_peers"}) {
		t.Errorf("/status nick_auth keys %v", keys)
	}
	if !nickAuthEqual(st.NickAuth, want) {
		t.Errorf("/status nick_auth %+v, want %+v", st.NickAuth, want)
	}
	var sm sampler
	now := time.Now()
	s, sst := sm.take(d.Srv, now)
	if ls := op.liveState(now, s, sst, false); !nickAuthEqual(ls.NickAuth, want) {
		t.Errorf("live state nick_auth %+v, want %+v", ls.NickAuth, want)
	}

	text := get(t, op.Handler(), "/metrics", "").Body.String()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	checkNickAuthMetrics(t, fams, map[string]float64{"verified": 1, "legacy": 1},
		map[string]float64{"ok": 2, "malformed": 0, "expired": 0, "invalid": 1, "policy": 0}, 1)

	_, port, _ := net.SplitHostPort(d.Addr)
	secrets := []string{dirtest.NickOf(key), dirtest.NickOf(other), legacy.Nick,
		dirtest.PubKeyHex(key), dirtest.PubKeyHex(other), d.Srv.Nick()}
	noSecrets(t, fams, text, []string{port}, secrets)
	log := logs.String()
	if !strings.Contains(log, "nick authentication failed") || !strings.Contains(log, "displaced") {
		t.Fatalf("the INFO log lacks the failed round or the displacement:\n%s", log)
	}
	for _, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("the INFO log names %q:\n%s", secret, log)
		}
	}
}

// TestNickAuthDisabled: with nick_auth_mode disabled, /status has no directory_id and
// /metrics says it is not offered, every peer legacy.
func TestNickAuthDisabled(t *testing.T) {
	d := dirtest.Start(t, func(c *config.Config) { c.NickAuthMode = "disabled" }, discard)
	d.Join(t, takerNick, "NOT-SERVING-ONION", map[string]bool{"nick_auth": true})
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	body := get(t, op.Handler(), "/status", "").Body.String()
	if want := `"nick_auth":{"mode":"disabled","verified_peers":0,"legacy_peers":1,` +
		`"results":{"expired":0,"invalid":0,"malformed":0,"ok":0,"policy":0}}`; !strings.Contains(body, want) {
		t.Errorf("/status: %s\nwant %s", body, want)
	}
	checkNickAuthMetrics(t, parseMetrics(t, op), map[string]float64{"verified": 0, "legacy": 1},
		map[string]float64{"ok": 0, "malformed": 0, "expired": 0, "invalid": 0, "policy": 0}, 0)
}

// nickAuthEqual compares two nick_auth objects.
func nickAuthEqual(a, b NickAuthStats) bool {
	return a.Mode == b.Mode && a.DirectoryID == b.DirectoryID && a.VerifiedPeers == b.VerifiedPeers &&
		a.LegacyPeers == b.LegacyPeers && maps.Equal(a.Results, b.Results)
}

// checkNickAuthMetrics checks the nick-authentication families: exactly the series of
// peers (by kind) and results (by code) given, with their values and types, and the
// offered gauge.
func checkNickAuthMetrics(t *testing.T, fams map[string]*dto.MetricFamily, peers, results map[string]float64, offered float64) {
	t.Helper()
	for _, f := range []struct {
		name, label string
		typ         dto.MetricType
		want        map[string]float64
	}{
		{"jm_directory_nick_auth_peers", "kind", dto.MetricType_GAUGE, peers},
		{"jm_directory_nick_auth_results_total", "code", dto.MetricType_COUNTER, results},
	} {
		fam, ok := fams[f.name]
		if !ok {
			t.Errorf("no family %s", f.name)
			continue
		}
		got := map[string]float64{}
		for _, m := range fam.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != f.label {
				t.Errorf("%s: labels %v, want %s only", f.name, m.GetLabel(), f.label)
				continue
			}
			got[m.GetLabel()[0].GetValue()] = metric(t, fams, f.name, map[string]string{f.label: m.GetLabel()[0].GetValue()})
		}
		if fam.GetType() != f.typ || !maps.Equal(got, f.want) {
			t.Errorf("%s: %v %v, want %v %v", f.name, fam.GetType(), got, f.typ, f.want)
		}
	}
	fam, ok := fams["jm_directory_nick_auth_offered"]
	switch {
	case !ok:
		t.Error("no family jm_directory_nick_auth_offered")
	case fam.GetType() != dto.MetricType_GAUGE || len(fam.GetMetric()) != 1 || len(fam.GetMetric()[0].GetLabel()) != 0:
		t.Errorf("jm_directory_nick_auth_offered: %v", fam)
	case metric(t, fams, "jm_directory_nick_auth_offered", nil) != offered:
		t.Errorf("jm_directory_nick_auth_offered = %v, want %v", metric(t, fams, "jm_directory_nick_auth_offered", nil), offered)
	}
}

// TestLiveStateIdentity: the live state carries who the directory is (the server's nick,
// location, network, version, full motd and tor_mode) and the live orderbook's counts,
// beside the running count of offer messages.
func TestLiveStateIdentity(t *testing.T) {
	d := dirtest.Start(t, func(c *config.Config) { c.MOTD = "hello operators" }, discard)
	op, _ := New(d.Srv, Options{Addr: "127.0.0.1:8080"}, discard)
	tg := d.Target()
	taker := tg.Join(t, dirtest.RefTaker)
	maker := tg.Join(t, dirtest.RefMaker)
	for _, body := range []string{"sw0reloffer 0 27300 1000000 0 0.0002", "sw0absoffer 1 100000 50000000 0 250"} {
		maker.Pubmsg(body)
		taker.ExpectLine(wire.TypePubmsg, maker.Nick+"!PUBLIC!"+body)
	}
	testkit.Eventually(t, "two offers in the book", func() bool { return d.Srv.Orderbook().Stats().Offers == 2 })

	var sm sampler
	now := time.Now()
	s, sst := sm.take(d.Srv, now)
	ls := op.liveState(now, s, sst, false)
	want := Identity{Nick: d.Srv.Nick(), Location: d.Srv.Location(), Network: "regtest", Version: server.Version,
		MOTD: d.Srv.MOTD(), TorMode: "none"}
	if ls.Identity != want || want.Location == "" || !strings.HasPrefix(want.MOTD, "hello operators\n") {
		t.Errorf("live state identity %+v, want %+v", ls.Identity, want)
	}
	if ls.Orderbook.Offers != 2 || ls.Orderbook.Makers != 1 {
		t.Errorf("live state orderbook: %d offers from %d makers, want 2 from 1", ls.Orderbook.Offers, ls.Orderbook.Makers)
	}
	var b struct {
		Identity  map[string]any `json:"identity"`
		Orderbook map[string]any `json:"orderbook"`
	}
	raw, _ := json.Marshal(ls)
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	if b.Identity["tor_mode"] != "none" || b.Identity["nick"] != want.Nick || b.Orderbook["offers"] != 2.0 {
		t.Errorf("live state JSON: identity %v, orderbook %v", b.Identity, b.Orderbook)
	}
}
