// Command jm-directory-server runs a JoinMarket directory node: the relay that makers and
// takers connect to in order to find each other, hear offers and pass private messages.
//
// With no configuration it serves regtest on 127.0.0.1:5222 over plain TCP. See README.md
// for the settings (flags > environment > .env > config.toml > defaults).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, so that deferred calls run.
func run(args []string, stdout, stderr io.Writer) int {
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	cfg, err := config.Load(config.Options{
		Args: args, Environ: os.Environ(), WorkDir: wd, HomeDir: home, Output: stderr,
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "jm-directory-server: invalid configuration:", err)
		return 2
	}
	if cfg.ShowVersion {
		fmt.Fprintln(stdout, "jm-directory-server", server.Version)
		return 0
	}
	if cfg.CheckConfig {
		fmt.Fprint(stdout, cfg.Describe())
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}

	log := newLogger(cfg, stderr)
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
				srv.LogStatus(ctx)
			}
		}
	}()

	srv.AdvertiseListener(ln.Addr())
	entry := srv.Location()
	if entry == "" {
		entry = "(unknown: set LOCATION to this node's onion:5222)"
	}
	log.Info("jm-directory-server listening",
		"addr", ln.Addr().String(), "network", cfg.Network, "nick", srv.Nick(),
		"directory_nodes", entry, "version", server.Version)

	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("server stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
