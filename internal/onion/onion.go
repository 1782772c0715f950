// Package onion makes the directory reachable as a Tor v3 onion service and keeps it so.
//
//   - control: publish the onion through a tor control port with ADD_ONION and the
//     directory's persistent key; when the control connection drops, reconnect with
//     backoff and publish again (unhealthy meanwhile).
//   - launch: start a private tor with a generated torrc (control socket in the data
//     dir), then as control; a tor that exits is started again. With ExportCircuitID the
//     onion is a HiddenServiceDir in that torrc instead (tor_proxy_protocol).
//   - external: an operator-run tor publishes the onion from its HiddenServiceDir; read
//     its hostname.
//
// In control and launch modes the onion counts as published only once tor reports its
// descriptor uploaded to at least one HSDir (an HS_DESC UPLOADED event): tor accepting
// ADD_ONION says nothing about whether clients can find it. The launched tor starts
// with its network disabled and is let online only once the events are subscribed, so
// no upload can be missed.
//
// The Service also knows a SOCKS port of tor, for the self-probe (internal/selfprobe):
// the one configured, else in launch mode a socket in the launched tor's directory,
// else in control mode the first SOCKS listener tor reports.
//
// The onion is not detached from the control connection: if the directory dies, tor
// withdraws it, so no onion points at a dead directory.
package onion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/onionkey"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
)

// HostnameFile is written in the data dir once the onion is known: "<onion>.onion:<port>".
const HostnameFile = "hostname"

// Options configure a Service.
type Options struct {
	Mode string // control | launch | external

	ControlNetwork string // control: "tcp" or "unix"
	ControlAddr    string // control: host:port or socket path
	Auth           torctl.Auth

	TorBinary  string   // launch
	ExtraTorrc []string // launch: more torrc lines (tests use a private network)
	// NetworkOff (launch only) leaves the launched tor's network disabled: for tests on
	// a machine without Tor; the onion is then never uploaded.
	NetworkOff  bool
	KeyFile     string // control/launch: hs_ed25519_secret_key
	VirtualPort int    // the onion's port (5222)
	PoW         bool   // enable PoW defences when tor supports them
	// ExportCircuitID (launch only): publish from a HiddenServiceDir in the generated
	// torrc with HiddenServiceExportCircuitID haproxy instead of ADD_ONION, which cannot
	// export circuit IDs, so that every connection starts with a PROXY header.
	ExportCircuitID bool
	// TorRestarted (launch only), if set, is called each time the launched tor is
	// started again, before it serves: its circuit numbers start from 1 again.
	TorRestarted func()

	HiddenServiceDir string // external

	// SOCKS is a SOCKS port of tor ("host:port") for the self-probe; "" = discover one
	// (launch: the launched tor's; control: ask tor).
	SOCKS string

	DataDir string // the hostname file; launch: tor's own files under DataDir/tor
}

// Service owns the directory's onion.
type Service struct {
	opts   Options
	log    *slog.Logger
	key    onionkey.Key
	onion  string // "<56 chars>.onion"
	target string // where tor connects, host:port; set by Run
	// torrcPoW: launch with ExportCircuitID, the generated torrc turns PoW on; set
	// before the control loop starts
	torrcPoW bool

	mu        sync.Mutex
	published bool
	reason    string // why not published
	pow       bool   // PoW defences are on
	torVer    string
	held      bool      // control/launch: tor holds the onion; published once uploaded
	uploaded  time.Time // the last HS_DESC UPLOADED for the onion; zero: none yet
	uploads   uint64    // HS_DESC UPLOADED events for the onion (one per HSDir)
	uploadErr string    // the last upload failure tor reported, "" after a success
	bootstrap string    // tor's last bootstrap report, while below 100 %
	socksNet  string    // "tcp" or "unix"; "" while no SOCKS port is known
	socksAddr string
	socksWhy  string    // why no SOCKS port is known
	torStart  time.Time // launch: when the running tor was started
}

// New prepares the onion: it loads (or creates) the key, or reads an external tor's
// hostname, so the location is known before anything is published.
func New(opts Options, log *slog.Logger) (*Service, error) {
	s := &Service{opts: opts, log: log, reason: "onion not published yet",
		socksWhy: "tor's SOCKS port not known yet"}
	if opts.SOCKS != "" {
		s.socksNet, s.socksAddr, s.socksWhy = "tcp", opts.SOCKS, ""
	} else if opts.Mode == "external" {
		s.socksWhy = "no SOCKS port of tor configured (tor_socks_host, tor_socks_port)"
	}
	switch opts.Mode {
	case "control", "launch":
		k, created, err := onionkey.LoadOrCreate(opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("onion key %s: %w", opts.KeyFile, err)
		}
		if created {
			log.Info("created a new onion key", "file", opts.KeyFile)
		}
		s.key, s.onion = k, k.Onion()+".onion"
	case "external":
		b, err := os.ReadFile(filepath.Join(opts.HiddenServiceDir, "hostname"))
		if err != nil {
			return nil, fmt.Errorf("tor_mode=external: cannot read the onion's hostname: %w", err)
		}
		host := strings.TrimSpace(string(b))
		if !jm.ValidOnionV3(host) {
			return nil, fmt.Errorf("tor_mode=external: %s/hostname holds %q, not a v3 onion address", opts.HiddenServiceDir, host)
		}
		s.onion = host
		s.published, s.reason = true, ""
	default:
		return nil, fmt.Errorf("onion: unknown mode %q", opts.Mode)
	}
	return s, nil
}

// Location is the directory's location-string: "<onion>.onion:<virtual port>".
func (s *Service) Location() string { return fmt.Sprintf("%s:%d", s.onion, s.opts.VirtualPort) }

// Health reports whether the onion is published, and if not, why.
func (s *Service) Health() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published, s.reason
}

// Status describes the onion for /status.
type Status struct {
	Mode       string `json:"mode"`
	Onion      string `json:"onion"`
	Published  bool   `json:"published"`
	Reason     string `json:"reason,omitempty"`
	PoW        bool   `json:"pow"`
	TorVersion string `json:"tor_version,omitempty"`
	// LastUpload is when tor last reported the descriptor uploaded to an HSDir
	// (control and launch modes; nil before the first upload, and in external mode,
	// where the operator's tor does not tell).
	LastUpload *time.Time `json:"last_upload,omitempty"`
	// Uploads counts HS_DESC UPLOADED events (one per HSDir per upload round).
	Uploads uint64 `json:"uploads,omitempty"`
	// UploadError is tor's last upload failure since the last success.
	UploadError string `json:"upload_error,omitempty"`
	// SOCKS is the SOCKS port of tor the self-probe dials through ("unix:/path" for a
	// socket), "" when none is known.
	SOCKS string `json:"socks,omitempty"`
}

// Status returns the onion's current state.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Mode: s.opts.Mode, Onion: s.onion, Published: s.published, Reason: s.reason, PoW: s.pow, TorVersion: s.torVer,
		Uploads: s.uploads, UploadError: s.uploadErr}
	if !s.uploaded.IsZero() {
		t := s.uploaded
		st.LastUpload = &t
	}
	switch s.socksNet {
	case "unix":
		st.SOCKS = "unix:" + s.socksAddr
	case "tcp":
		st.SOCKS = s.socksAddr
	}
	return st
}

// SOCKS returns a SOCKS port of tor to dial onions through (network "tcp" or "unix"),
// or why none is known.
func (s *Service) SOCKS() (network, addr, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socksNet, s.socksAddr, s.socksWhy
}

func (s *Service) setState(published bool, reason string) {
	s.mu.Lock()
	s.published, s.reason = published, reason
	if !published {
		s.held = false
	}
	s.mu.Unlock()
}

// writeHostname records the location in <data dir>/hostname for operators and scripts.
func (s *Service) writeHostname() error {
	path := filepath.Join(s.opts.DataDir, HostnameFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.Location()+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Backoff bounds between reconnection attempts.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// retry is the backoff between attempts: minBackoff, doubling up to maxBackoff, and back
// to minBackoff after an attempt that lasted over a minute (it was up for a while).
type retry struct{ next time.Duration }

// delay returns the wait after an attempt that ran for ranFor.
func (r *retry) delay(ranFor time.Duration) time.Duration {
	if r.next == 0 || ranFor > time.Minute {
		r.next = minBackoff
	}
	d := r.next
	r.next = min(r.next*2, maxBackoff)
	return d
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Run publishes the onion and keeps it published until ctx ends. target is the
// directory's listener as tor should reach it (host:port).
func (s *Service) Run(ctx context.Context, target string) error {
	s.target = target
	if err := s.writeHostname(); err != nil {
		s.log.Warn("cannot write the hostname file", "err", err)
	}
	switch s.opts.Mode {
	case "external":
		s.log.Info("onion from the operator's tor", "location", s.Location(), "hidden_service_dir", s.opts.HiddenServiceDir)
		<-ctx.Done()
		return nil
	case "launch":
		return s.runLaunch(ctx)
	}
	return s.controlLoop(ctx, s.opts.ControlNetwork, s.opts.ControlAddr, s.opts.Auth)
}

// controlLoop connects, publishes and waits, again and again, with backoff.
func (s *Service) controlLoop(ctx context.Context, network, addr string, auth torctl.Auth) error {
	var r retry
	for ctx.Err() == nil {
		start := time.Now()
		err := s.publishOnce(ctx, network, addr, auth)
		if ctx.Err() != nil {
			break
		}
		reason := "tor control connection lost"
		if err != nil {
			reason = "tor control: " + err.Error()
		}
		s.setState(false, reason)
		d := r.delay(time.Since(start))
		s.log.Warn("onion not published", "err", err, "retry_in", d.String())
		sleep(ctx, d)
	}
	s.setState(false, "shutting down")
	return nil
}

// publishOnce runs one control session: authenticate, ADD_ONION, wait for the
// connection to end.
func (s *Service) publishOnce(ctx context.Context, network, addr string, auth torctl.Auth) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := torctl.Dial(dctx, network, addr)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	pi, err := c.Authenticate(auth)
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	subscribed := time.Now() // an upload reported after this is of this session's onion
	if err := s.follow(c); err != nil {
		return err
	}
	if s.opts.ExportCircuitID {
		return s.watchTorrcService(ctx, c, pi.Version)
	}
	o := torctl.Onion{KeyBlob: s.key.ControlBlob(), VirtualPort: s.opts.VirtualPort, Target: s.target,
		PoW: s.opts.PoW && torctl.VersionAtLeast(pi.Version, powSince)}
	id, err := c.AddOnion(o)
	var te *torctl.Error
	if err != nil && o.PoW && errors.As(err, &te) && te.Code >= 510 && te.Code < 560 && !strings.Contains(te.Msg, "collision") {
		s.log.Warn("tor refused proof-of-work defences; publishing without them", "tor_version", pi.Version, "err", err)
		o.PoW = false
		id, err = c.AddOnion(o)
	}
	if err != nil {
		return fmt.Errorf("ADD_ONION: %w", err)
	}
	if id+".onion" != s.onion {
		_ = c.DelOnion(id)
		return fmt.Errorf("tor published %s.onion, but the key is %s", id, s.onion)
	}
	if s.opts.PoW && !o.PoW {
		s.log.Warn("proof-of-work defences are off: tor is older than "+powSince, "tor_version", pi.Version)
	}
	if s.added(pi.Version, o.PoW, subscribed) {
		s.log.Info("onion published", "location", s.Location(), "tor_version", pi.Version, "pow", o.PoW)
	} else {
		s.log.Info("onion added to tor; waiting for its descriptor upload", "location", s.Location())
	}
	return c.Wait(ctx)
}

// powSince is the first tor release whose ADD_ONION takes PoW parameters.
const powSince = "0.4.8.1"
