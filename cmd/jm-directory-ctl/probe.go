package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/probe"
)

// probeCmd checks any JoinMarket directory, as a client would: a full handshake as a
// throw-away taker, then GETPEERLIST (internal/probe).
const probeCmd = "probe"

// probeOptions are the probe command's arguments.
type probeOptions struct {
	addr    string
	network string
	socks   string
	timeout time.Duration
	quiet   time.Duration
	json    bool
}

// probeCommand reports whether args name the probe command (after any global flags),
// and returns what follows it.
func probeCommand(args []string, env func(string) string) ([]string, bool) {
	fs := flagSet(prog, defaults(env))
	if fs.Parse(args) != nil {
		return nil, false
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != probeCmd {
		return nil, false
	}
	return rest[1:], true
}

const probeUsage = `Usage: %[1]s probe HOST:PORT [--network mainnet] [--socks 127.0.0.1:9050] [--timeout 60s] [--json]

Check a JoinMarket directory (this server, a reference start-dn.py, joinmarket-ng's) as a
client meets it: connect — through the SOCKS proxy of a tor for a .onion, over plain TCP
otherwise — perform a full handshake as a throw-away taker, ask for the peerlist, and print
whether it accepted, its nick, motd, version line, features, network, handshake time and
the makers it listed. A refusal names the directory's own network.

Exit status: 0 accepted, 1 refused or unreachable, 2 usage error.
`

// parseProbe reads HOST:PORT and the flags, which may come before or after it.
func parseProbe(args []string) (probeOptions, error) {
	p := probeOptions{network: "mainnet", socks: "127.0.0.1:9050", timeout: 60 * time.Second, quiet: time.Second}
	fs := flag.NewFlagSet(prog+" "+probeCmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&p.network, "network", p.network, "")
	fs.StringVar(&p.socks, "socks", p.socks, "")
	fs.DurationVar(&p.timeout, "timeout", p.timeout, "")
	fs.DurationVar(&p.quiet, "peerlist-quiet", p.quiet, "")
	fs.BoolVar(&p.json, "json", false, "")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return p, flagError(err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) != 1 {
		return p, errors.New("probe: want one HOST:PORT (see probe -h)")
	}
	p.addr = positional[0]
	if _, port, err := net.SplitHostPort(p.addr); err != nil || port == "" {
		return p, fmt.Errorf("probe: %q is not HOST:PORT", p.addr)
	}
	if p.timeout <= 0 || p.quiet <= 0 {
		return p, errors.New("probe: --timeout and --peerlist-quiet must be positive")
	}
	return p, nil
}

// runProbeMain runs the probe command until it is done or interrupted.
func runProbeMain(args []string, stdout, stderr io.Writer) int {
	p, err := parseProbe(args)
	if errors.Is(err, errHelp) {
		fmt.Fprintf(stdout, probeUsage, prog)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return runProbe(ctx, p, stdout, stderr)
}

// runProbe probes and reports.
func runProbe(ctx context.Context, p probeOptions, stdout, stderr io.Writer) int {
	o := probe.Options{Network: p.network, Quiet: p.quiet}
	host, _, _ := net.SplitHostPort(p.addr)
	via := "tcp"
	if strings.HasSuffix(strings.ToLower(host), ".onion") {
		d, err := probe.SOCKSDialer("tcp", p.socks, "")
		if err != nil {
			fmt.Fprintf(stderr, "%s: probe: --socks %s: %v\n", prog, p.socks, err)
			return 2
		}
		o.Dial = d
		via = "socks " + p.socks
	}
	res, err := probe.Probe(ctx, p.addr, o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: probe %s (via %s): %v\n", prog, p.addr, via, err)
		return 1
	}
	if p.json {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeProbe(stdout, res, via)
	}
	if !res.Accepted {
		return 1
	}
	return 0
}

// writeProbe prints a probe's result for a person.
func writeProbe(w io.Writer, r probe.Result, via string) {
	if r.Accepted {
		fmt.Fprintf(w, "Accepted:   yes\n")
	} else {
		fmt.Fprintf(w, "Accepted:   no: %s\n", r.Rejection)
	}
	fmt.Fprintf(w, "Directory:  %s (via %s)\n", r.Addr, via)
	fmt.Fprintf(w, "Nick:       %s\n", r.Nick)
	fmt.Fprintf(w, "Network:    %s\n", r.Network)
	if r.Location != "" {
		fmt.Fprintf(w, "Location:   %s\n", r.Location)
	}
	fmt.Fprintf(w, "Features:   %s\n", strings.Join(r.Features, ", "))
	if r.Version != "" {
		fmt.Fprintf(w, "Version:    %s\n", r.Version)
	}
	for i, l := range strings.Split(r.MOTD, "\n") {
		if i == 0 {
			fmt.Fprintf(w, "MOTD:       %s\n", l)
		} else {
			fmt.Fprintf(w, "            %s\n", l)
		}
	}
	fmt.Fprintf(w, "Connect:    %.1f ms\nHandshake:  %.1f ms\n", r.ConnectMs, r.HandshakeMs)
	if r.Makers >= 0 {
		fmt.Fprintf(w, "Makers:     %d listed (%d peerlist lines)\n", r.Makers, r.PeerlistLines)
	}
}
