// Package ops is the operator HTTP surface of the directory, on its own listener:
// /health and /status (joinmarket-ng's shapes), /metrics (Prometheus), an optional
// /debug/pprof/, and a live page at / fed by a server-sent-event stream at /events.
//
// On a loopback listener everything is open, over plain HTTP. On any other address the
// listener serves HTTPS only (tls.go: the operator's certificate, or a self-signed one
// generated once into the data dir and pinned by its fingerprint), and the page's data
// stream, /status and /metrics require "Authorization: Bearer <token>" — the model of
// the reference wallet daemon's API: a token presented on every request, no cookies.
// /health stays open so container health checks work, and the page itself is a static
// shell that shows nothing until it has the token.
//
// Server and Listener bound what the listener costs, whoever connects: timeouts, an
// 8 KiB header cap and at most MaxConns (64) open connections, so that a flood of ops
// connections cannot take the file descriptors the peer port needs (listener.go).
package ops

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/secretfile"

	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

// TokenFile is the name of the generated bearer token in the data dir.
const TokenFile = "ops-token"

// Options configure the ops surface.
type Options struct {
	Addr      string // listen address; decides whether a token is required
	Token     string // bearer token; "" = generate into DataDir when one is required
	DataDir   string
	HideNicks bool // omit nick lists from /status and the live page
	Pprof     bool // serve /debug/pprof/
	MaxConns  int  // open ops connections at most (Listener); 0 = DefaultMaxConns
	// The operator's PEM certificate (chain) and key for HTTPS off loopback; both or
	// neither. Without them a self-signed one is generated into DataDir (tls.go).
	TLSCert, TLSKey string
}

// Ops serves the operator endpoints for one directory server.
type Ops struct {
	srv     *server.Server
	opt     Options
	log     *slog.Logger
	token   string // "" = open
	reg     *prometheus.Registry
	history *History
	mux     *http.ServeMux
	conns   *connTracker // idle keep-alive connections, closed while Listener is full
	tlsConf *tls.Config  // HTTPS off loopback; nil = plain HTTP
	tlsInfo *TLSInfo     // the certificate served, nil without TLS

	subsMu sync.Mutex               // guards subs
	subs   map[chan []byte]struct{} // live page streams; a lagging one misses updates

	onion     atomic.Pointer[func() onion.Status]     // the onion's state, once there is one
	selfProbe atomic.Pointer[func() selfprobe.Status] // the self-probe's state, once there is one
}

// SetSelfProbe makes /status, /metrics and the live page report the self-probe's state
// from f.
func (o *Ops) SetSelfProbe(f func() selfprobe.Status) { o.selfProbe.Store(&f) }

// selfProbeStatus is the self-probe's state, nil without one (tor_mode none).
func (o *Ops) selfProbeStatus() *selfprobe.Status {
	f := o.selfProbe.Load()
	if f == nil {
		return nil
	}
	st := (*f)()
	return &st
}

// SetOnion makes /status, /metrics and the live page report the onion's state from f.
func (o *Ops) SetOnion(f func() onion.Status) { o.onion.Store(&f) }

// onionStatus is the onion's state, nil without an onion (tor_mode none).
func (o *Ops) onionStatus() *onion.Status {
	f := o.onion.Load()
	if f == nil {
		return nil
	}
	st := (*f)()
	return &st
}

// New builds the ops surface. When Addr is not a loopback address a token is required:
// Options.Token, or the one in <DataDir>/ops-token, created on first start; and Listener
// serves HTTPS with the operator's certificate (Options.TLSCert, TLSKey) or the one in
// <DataDir>/ops-tls.crt, generated on first start. Its fingerprint is logged at INFO.
func New(srv *server.Server, opt Options, log *slog.Logger) (*Ops, error) {
	o := &Ops{srv: srv, opt: opt, log: log, reg: prometheus.NewRegistry(), history: NewHistory(3600),
		subs: map[chan []byte]struct{}{}, conns: newConnTracker()}
	if !IsLoopback(opt.Addr) {
		tok, err := resolveToken(opt.Token, opt.DataDir)
		if err != nil {
			return nil, err
		}
		o.token = tok
		if err := o.setupTLS(); err != nil {
			return nil, err
		}
	} else if opt.TLSCert != "" || opt.TLSKey != "" {
		log.Warn("ops_tls_cert is set, but the ops listener is on loopback: it serves plain HTTP", "addr", opt.Addr)
	}
	o.reg.MustRegister(newCollector(srv, o.onionStatus, o.selfProbeStatus), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.routes()
	return o, nil
}

// TokenRequired reports whether requests must carry the bearer token.
func (o *Ops) TokenRequired() bool { return o.token != "" }

// History is the sampled history behind the live page's plots.
func (o *Ops) History() *History { return o.history }

// Handler is the HTTP handler for every ops endpoint.
func (o *Ops) Handler() http.Handler { return o.mux }

// IsLoopback reports whether a listen address ("host:port") binds only to loopback
// (config.IsLoopback, the one rule for both listeners).
func IsLoopback(addr string) bool { return config.IsLoopback(addr) }

// resolveToken returns the configured token, or the one stored in the data dir
// (creating it with 32 random bytes, mode 0600, when absent).
func resolveToken(configured, dataDir string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if dataDir == "" {
		return "", errors.New("ops: a token is required on a non-loopback address, and there is no data dir to keep one")
	}
	path := filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", fmt.Errorf("ops: %s holds no usable token", path)
		}
		return tok, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("ops: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw[:])
	err := secretfile.WriteNew(path, []byte(tok+"\n"))
	if errors.Is(err, fs.ErrExist) {
		return resolveToken("", dataDir) // created concurrently: use that one
	}
	if err != nil {
		return "", fmt.Errorf("ops: %w", err)
	}
	return tok, nil
}

func (o *Ops) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /health", o.health)
	m.Handle("GET /status", o.auth(http.HandlerFunc(o.status)))
	m.Handle("GET /metrics", o.auth(promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{Registry: o.reg})))
	m.Handle("GET /orderbook.json", o.auth(http.HandlerFunc(o.orderbookJSON)))
	m.Handle("GET /events", o.auth(http.HandlerFunc(o.events)))
	m.HandleFunc("GET /{$}", o.page)
	if o.opt.Pprof {
		// profile, trace and the delta profiles (?seconds=N) extend the server's
		// WriteTimeout by the duration asked for themselves (net/http/pprof).
		m.Handle("GET /debug/pprof/", o.auth(http.HandlerFunc(pprof.Index)))
		m.Handle("GET /debug/pprof/cmdline", o.auth(http.HandlerFunc(pprof.Cmdline)))
		m.Handle("GET /debug/pprof/profile", o.auth(http.HandlerFunc(pprof.Profile)))
		m.Handle("GET /debug/pprof/symbol", o.auth(http.HandlerFunc(pprof.Symbol)))
		m.Handle("GET /debug/pprof/trace", o.auth(http.HandlerFunc(pprof.Trace)))
	}
	o.mux = m
}

// auth requires the bearer token when one is configured.
func (o *Ops) auth(h http.Handler) http.Handler {
	if o.token == "" {
		return h
	}
	want := []byte("Bearer " + o.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jm-directory"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bearer token required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// HealthResponse is the body of /health.
type HealthResponse struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (o *Ops) health(w http.ResponseWriter, _ *http.Request) {
	if ok, reason := o.srv.Health(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, HealthResponse{Status: "unhealthy", Reason: reason})
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "healthy"})
}
