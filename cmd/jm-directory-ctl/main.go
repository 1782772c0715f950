// Command jm-directory-ctl queries a running directory server's operator endpoints: it is
// joinmarket-ng's jm-directory-ctl for this server, suitable as a Docker HEALTHCHECK.
//
//	jm-directory-ctl [--host H] [--port P] [--log-level|-l L] [--token T] [--data-dir D]
//	    [--tls-fingerprint HEX | --cacert FILE] {health,status} [--json]
//
//	jm-directory-ctl --version
//
//	jm-directory-ctl [options] orderbook [--json]
//
//	jm-directory-ctl vanity PREFIX [--out FILE] [--workers N] [--data-dir D]
//
//	jm-directory-ctl probe HOST:PORT [--network N] [--socks HOST:PORT] [--timeout D] [--json]
//
//	jm-directory-ctl import SOURCE... [--data-dir D] [--dry-run] [--tor-mode M] [--motd T] [--json]
//
// "health" asks GET /health and exits 0 iff the server is healthy. "status" asks GET
// /status (with the bearer token the server requires on a non-loopback ops listener) and
// prints a report, or the server's JSON with --json; it exits 0 iff the request succeeded
// and the server is healthy. "orderbook" asks GET /orderbook.json and prints the live
// orderbook as a table (orderbook.go). "vanity" searches, on every core, for an onion address
// starting with PREFIX and writes its key in tor's hs_ed25519_secret_key format (see
// vanity.go). "probe" checks any JoinMarket directory as a client meets it (probe.go).
// Every failure is explained in one line on stderr.
//
// Exit codes: 0 success, 1 unhealthy or any request failure (also: no command given),
// 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/buildinfo"
)

// prog prefixes every line written to stderr.
const prog = "jm-directory-ctl"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole command without os.Exit: it parses args, resolves settings through
// env (os.Getenv in production) and returns the exit code.
func run(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, buildinfo.Line(prog))
		return 0
	}
	if o, rest, ok := vanityCommand(args, env); ok {
		return runVanityMain(rest, o, env, stdout, stderr)
	}
	if rest, ok := probeCommand(args, env); ok {
		return runProbeMain(rest, stdout, stderr)
	}
	if o, rest, ok := importCommand(args, env); ok {
		return runImport(rest, o, env, stdout, stderr)
	}
	args, orderbook := orderbookArgs(args, env)
	o, cmd, err := parseArgs(args, env)
	switch {
	case errors.Is(err, errHelp):
		printAllUsage(stdout, o)
		return 0
	case errors.Is(err, errNoCommand):
		printAllUsage(stderr, o)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}

	lg := &logger{w: stderr, level: o.level}
	c := newClient(o, lg)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	switch cmd {
	case "health":
		return runHealth(ctx, c, o.json, stdout, stderr)
	default: // "status": parseArgs accepts nothing else
		tok := resolveToken(o, env)
		lg.debugf("%s", tok.describe())
		c.token = tok.token
		if orderbook {
			return runOrderbook(ctx, c, tok, o.json, stdout, stderr)
		}
		return runStatus(ctx, c, tok, o.json, stdout, stderr)
	}
}

// runHealth implements "health".
func runHealth(ctx context.Context, c *client, asJSON bool, stdout, stderr io.Writer) int {
	h, err := c.Health(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	if asJSON {
		if h.Raw == nil {
			fmt.Fprintf(stderr, "%s: %s answered %s without JSON\n", prog, c.url("/health"), h.HTTPStatus)
			return 1
		}
		writeJSON(stdout, h.Raw)
	} else {
		fmt.Fprintf(stdout, "Server status: %s\n", h.describe())
	}
	if !h.Healthy {
		return 1
	}
	return 0
}

// runStatus implements "status": /status for the report, then /health for the verdict.
func runStatus(ctx context.Context, c *client, tok tokenInfo, asJSON bool, stdout, stderr io.Writer) int {
	raw, st, err := c.Status(ctx)
	if errors.Is(err, errUnauthorized) {
		fmt.Fprintf(stderr, "%s: %s\n", prog, tok.unauthorized())
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	h, herr := c.Health(ctx)
	if asJSON {
		writeJSON(stdout, raw)
	} else {
		var hp *health
		if herr == nil {
			hp = &h
		}
		writeReport(stdout, st, hp, time.Now())
	}
	switch {
	case herr != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, herr)
		return 1
	case !h.Healthy:
		fmt.Fprintf(stderr, "%s: server is %s\n", prog, h.describe())
		return 1
	}
	return 0
}

// logger writes diagnostics to stderr; only DEBUG adds any output today.
type logger struct {
	w     io.Writer
	level level
}

// debugf writes one line at DEBUG.
func (l *logger) debugf(format string, args ...any) {
	if l == nil || l.level > levelDebug {
		return
	}
	fmt.Fprintf(l.w, "%s: debug: %s\n", prog, strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}
