// Command jm-directory-server runs a JoinMarket directory node: the relay that makers and
// takers connect to in order to find each other, hear offers and pass private messages.
//
// With no configuration it serves regtest on 127.0.0.1:5222 over plain TCP, with its
// operator endpoints on 127.0.0.1:8080. See README.md for the settings (flags >
// environment > .env > config.toml > defaults) and the signals (SIGTERM/SIGINT stop,
// SIGUSR1 dumps status, SIGHUP reloads).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/ops"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, so that deferred calls run.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, buildinfo.Line("jm-directory-server"))
		return 0
	}
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	opts := config.Options{Args: args, Environ: os.Environ(), WorkDir: wd, HomeDir: home, Output: stderr}
	cfg, err := config.Load(opts)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "jm-directory-server: invalid configuration:", err)
		return 2
	}
	if cfg.ShowVersion {
		fmt.Fprintln(stdout, buildinfo.Line("jm-directory-server"))
		return 0
	}
	if cfg.CheckConfig {
		fmt.Fprint(stdout, cfg.Describe())
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}

	level := new(slog.LevelVar)
	level.Set(cfg.SlogLevel())
	log := newLogger(cfg.LogFormat, level, stderr)
	warnUnknown(log, "", cfg)
	id, created, err := jm.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		log.Error("cannot load the directory identity", "err", err)
		return 1
	}
	if created {
		log.Info("created a new directory key", "data_dir", cfg.DataDir)
	}
	srv, err := server.New(cfg, id, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		log.Error("cannot listen", "addr", cfg.ListenAddr(), "err", err)
		return 1
	}
	op, err := ops.New(srv, ops.Options{
		Addr: cfg.HealthAddr(), Token: cfg.OpsToken, DataDir: cfg.DataDir,
		HideNicks: cfg.HideNicks, Pprof: cfg.Pprof, TLSCert: cfg.OpsTLSCert, TLSKey: cfg.OpsTLSKey,
	}, log)
	if err != nil {
		log.Error("cannot set up the ops endpoints", "err", err)
		return 1
	}
	opsLn, err := net.Listen("tcp", cfg.HealthAddr())
	if err != nil {
		attrs := []any{"addr", cfg.HealthAddr(), "err", err}
		if errors.Is(err, syscall.EADDRINUSE) {
			attrs = append(attrs, "fix", opsPortHint(cfg))
		}
		log.Error("cannot listen for ops", attrs...)
		return 1
	}
	checkFDBudget(log, cfg, op.MaxFDs())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					reload(opts, srv, level, log)
				} else {
					srv.LogStatus(ctx)
				}
			}
		}
	}()

	// Timeouts, a header cap and at most op.MaxConns() open connections: a flood of ops
	// connections waits in the kernel's backlog instead of taking descriptors.
	httpSrv := op.Server()
	go func() {
		if err := httpSrv.Serve(op.Listener(opsLn)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops listener stopped", "err", err)
		}
	}()
	go op.Run(ctx, time.Second)
	opsAttrs := []any{"addr", opsLn.Addr().String(), "scheme", op.Scheme(), "token_required", op.TokenRequired(), "max_conns", op.MaxConns()}
	if op.TokenRequired() && cfg.OpsToken == "" {
		opsAttrs = append(opsAttrs, "token_file", filepath.Join(cfg.DataDir, ops.TokenFile))
	}
	log.Info("ops endpoints listening", opsAttrs...)

	onionDone := make(chan struct{})
	if cfg.TorMode != "none" {
		opts := onionOptions(cfg)
		opts.TorRestarted = srv.ForgetCircuits
		onionSvc, err := onion.New(opts, log)
		if err != nil {
			log.Error("cannot set up the onion", "err", err)
			return 1
		}
		srv.SetLocation(onionSvc.Location())
		srv.AddHealthCheck(onionSvc.Health)
		op.SetOnion(onionSvc.Status)
		prober := selfprobe.New(selfprobe.Options{
			Network: cfg.Network,
			Onion: func() (string, bool, string) {
				ok, why := onionSvc.Health()
				return onionSvc.Location(), ok, why
			},
			SOCKS:    onionSvc.SOCKS,
			Expect:   srv.ExpectSelfProbe,
			Settings: func() selfprobe.Settings { return selfProbeSettings(srv.Config()) },
			Log:      log.With("component", "self_probe"),
		})
		srv.AddHealthCheck(prober.Health)
		op.SetSelfProbe(prober.Status)
		go prober.Run(ctx)
		go func() {
			defer close(onionDone)
			if err := onionSvc.Run(ctx, torTarget(ln.Addr())); err != nil {
				log.Error("onion service stopped", "err", err)
			}
		}()
	} else {
		close(onionDone)
	}
	srv.AdvertiseListener(ln.Addr())
	entry := srv.Location()
	if entry == "" {
		entry = "(unknown: set LOCATION to this node's onion:5222)"
	}
	log.Info("jm-directory-server listening",
		"addr", ln.Addr().String(), "network", cfg.Network, "nick", srv.Nick(),
		"directory_nodes", entry, "version", server.Version)

	err = srv.Serve(ctx, ln)
	stop()      // Serve may also return on its own (a listener error)
	<-onionDone // a launched tor is stopped before we exit
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(shutCtx)
	if err != nil {
		log.Error("server stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// opsPortHint says what to change when the ops port is taken: it is HEALTH_CHECK_PORT,
// and its default, 8080, is also the port a reference start-dn.py on the same machine
// serves on.
func opsPortHint(cfg config.Config) string {
	h := fmt.Sprintf("the ops port %d is in use: choose another with HEALTH_CHECK_PORT (--health-check-port, health_check_port)", cfg.HealthCheckPort)
	if cfg.HealthCheckPort == config.Default().HealthCheckPort {
		h += "; 8080 is its default and also where a reference start-dn.py on this machine serves"
	}
	return h
}

// fdReserve is the part of the file-descriptor budget for everything that is neither a
// peer nor an ops connection: the listeners, the tor control connection, the data files
// (key, token, onion key), stdio and the Go runtime's own (epoll, pipes).
const fdReserve = 64

// fdBudget is the file descriptors the server may need at once. Each connection is one
// descriptor, so it is: every handshaked peer (max_peers) + every connection still
// handshaking (max_pending_handshakes; one over it is closed at once) + every open ops
// connection (the ops listener's cap, plus the one connection it holds while it waits for
// a slot; the others wait in the kernel's backlog, without a descriptor) + fdReserve.
func fdBudget(maxPeers, maxPending, opsConns int) uint64 {
	return uint64(maxPeers) + uint64(maxPending) + uint64(opsConns) + fdReserve
}

// checkFDBudget logs one WARN when the open-file limit is below fdBudget: then the
// limit, not the configured caps, bounds the peers, and accept fails with "too many open
// files" once it is reached. Go has already raised the soft limit to the hard one.
func checkFDBudget(log *slog.Logger, cfg config.Config, opsConns int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return
	}
	if msg, attrs := fdBudgetWarning(rl.Cur, cfg.MaxPeers, cfg.MaxPendingHandshakes, opsConns); msg != "" {
		log.Warn(msg, attrs...)
	}
}

// fdBudgetWarning is checkFDBudget's decision and message: "" when limit fits the budget.
func fdBudgetWarning(limit uint64, maxPeers, maxPending, opsConns int) (string, []any) {
	need := fdBudget(maxPeers, maxPending, opsConns)
	if limit >= need {
		return "", nil
	}
	return "open-file limit below what the configured caps need", []any{
		"limit", limit, "need", need,
		"max_peers", maxPeers, "max_pending_handshakes", maxPending, "ops_fds", opsConns, "reserve", fdReserve,
		"fix", fmt.Sprintf("raise the hard open-file limit to at least %d (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or lower MAX_PEERS or MAX_PENDING_HANDSHAKES", need),
	}
}

// reload re-reads every configuration source (SIGHUP) and applies what can change
// without a restart. It logs each setting it changed, and once the settings that
// changed in the sources but need a restart (they keep their values); an invalid
// configuration is logged and changes nothing.
func reload(opts config.Options, srv *server.Server, level *slog.LevelVar, log *slog.Logger) {
	opts.Environ = os.Environ()
	next, err := config.Load(opts)
	if err != nil {
		log.Error("reload: invalid configuration, nothing changed", "err", err)
		return
	}
	changes, restart, err := srv.Reload(next)
	if err != nil {
		log.Error("reload: invalid configuration, nothing changed", "err", err)
		return
	}
	level.Set(srv.Config().SlogLevel())
	warnUnknown(log, "reload: ", next)
	for _, c := range changes {
		log.Info("reload: setting changed", "key", c.Key, "old", c.Old, "new", c.New)
	}
	if len(restart) > 0 {
		keys := make([]string, len(restart))
		for i, c := range restart {
			keys[i] = c.Key
		}
		log.Warn("reload: these settings need a restart and were not applied", "keys", keys)
	}
	if len(changes) == 0 && len(restart) == 0 {
		log.Info("reload: no changes")
	}
}

// warnUnknown logs, in one line, the keys in config.toml's [directory_server] and the
// environment variables with this server's prefixes that no setting uses: a typo there
// would otherwise go unnoticed.
func warnUnknown(log *slog.Logger, prefix string, cfg config.Config) {
	if unknown := cfg.UnknownKeys(); len(unknown) > 0 {
		log.Warn(prefix+"unknown settings ignored", "keys", strings.Join(unknown, ", "))
	}
}

func newLogger(format string, level slog.Leveler, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// onionOptions maps the configuration onto the onion service's options.
func onionOptions(cfg config.Config) onion.Options {
	o := onion.Options{
		Mode:             cfg.TorMode,
		ControlNetwork:   "tcp",
		ControlAddr:      net.JoinHostPort(cfg.TorControlHost, strconv.Itoa(cfg.TorControlPort)),
		Auth:             torctl.Auth{Password: cfg.TorControlPassword, CookieFile: cfg.TorCookieFile},
		TorBinary:        cfg.TorBinary,
		KeyFile:          cfg.OnionKeyPath(),
		VirtualPort:      cfg.OnionVirtualPort,
		PoW:              cfg.TorPoW,
		ExportCircuitID:  cfg.TorMode == "launch" && cfg.TorProxyProtocol,
		HiddenServiceDir: cfg.TorHiddenServiceDir,
		DataDir:          cfg.DataDir,
		SOCKS:            cfg.TorSOCKS(),
	}
	if cfg.TorControlSocket != "" {
		o.ControlNetwork, o.ControlAddr = "unix", cfg.TorControlSocket
	}
	return o
}

// selfProbeSettings are the self-probe's settings in cfg.
func selfProbeSettings(cfg config.Config) selfprobe.Settings {
	return selfprobe.Settings{Interval: cfg.SelfProbeInterval, Timeout: cfg.SelfProbeTimeout,
		UnhealthyAfter: cfg.SelfProbeUnhealthyAfter}
}

// torTarget is the address tor should connect to for our listener: a wildcard listen
// address is reached on loopback.
func torTarget(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
