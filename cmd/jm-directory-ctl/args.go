package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults; the host and port match the server's health_check_host/health_check_port.
const (
	defaultHost    = "127.0.0.1"
	defaultPort    = "8080"
	defaultTimeout = 5 * time.Second
	// tokenFile is the server's generated bearer token in its data dir (ops.TokenFile).
	tokenFile = "ops-token"
)

// Environment variables, highest priority first (the server's own order).
var (
	envHost     = []string{"DIRECTORY_SERVER__HEALTH_CHECK_HOST", "HEALTH_CHECK_HOST"}
	envPort     = []string{"DIRECTORY_SERVER__HEALTH_CHECK_PORT", "HEALTH_CHECK_PORT"}
	envLogLevel = []string{"DIRECTORY_SERVER__LOG_LEVEL", "LOGGING__LEVEL", "LOG_LEVEL"}
	envToken    = []string{"DIRECTORY_SERVER__OPS_TOKEN", "OPS_TOKEN"}
	envDataDir  = []string{"DATA_DIR", "JOINMARKET_DATA_DIR"}
)

var (
	// errHelp: -h/--help was given.
	errHelp = errors.New("help requested")
	// errNoCommand: no command was given.
	errNoCommand = errors.New("no command given")
)

// level is a log level; lower is more verbose.
type level int

// Log levels.
const (
	levelDebug level = iota
	levelInfo
	levelWarning
	levelError
)

// parseLevel reads a log level name (any case, with joinmarket-ng's aliases).
func parseLevel(s string) (level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE", "DEBUG":
		return levelDebug, nil
	case "INFO", "SUCCESS":
		return levelInfo, nil
	case "WARNING", "WARN":
		return levelWarning, nil
	case "ERROR", "CRITICAL":
		return levelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: want DEBUG, INFO, WARNING or ERROR", s)
}

// options are the parsed command line with environment defaults applied.
type options struct {
	host     string
	port     string // validated into portNum
	logLevel string
	token    string
	dataDir  string
	json     bool
	timeout  time.Duration
	// HTTPS: --tls-fingerprint pins the certificate, --cacert verifies it (tls.go).
	tlsFingerprint string
	caCert         string

	level level
	https bool  // talk HTTPS: the host is not loopback, or a pin or CA was given
	trust trust // how the HTTPS certificate is checked
}

// firstEnv returns the first non-empty (trimmed) variable among names, and its name.
func firstEnv(env func(string) string, names []string) (value, name string) {
	for _, n := range names {
		if v := strings.TrimSpace(env(n)); v != "" {
			return v, n
		}
	}
	return "", ""
}

// defaults returns the options before any flag: built-in defaults overridden by env.
func defaults(env func(string) string) *options {
	o := &options{host: defaultHost, port: defaultPort, logLevel: "INFO", timeout: defaultTimeout}
	if v, _ := firstEnv(env, envHost); v != "" {
		o.host = v
	}
	if v, _ := firstEnv(env, envPort); v != "" {
		o.port = v
	}
	// The server's log level variables are a default only: a value this command does not
	// know must not break a health check.
	if v, _ := firstEnv(env, envLogLevel); v != "" {
		if _, err := parseLevel(v); err == nil {
			o.logLevel = v
		}
	}
	return o
}

// flagSet binds every option to a new flag set. Both the global position (before the
// command) and the command's position accept every flag; the current values are the
// defaults, so binding a second set does not undo what the first parsed.
func flagSet(name string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.host, "host", o.host, "")
	fs.StringVar(&o.port, "port", o.port, "")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "")
	fs.StringVar(&o.logLevel, "l", o.logLevel, "")
	fs.StringVar(&o.token, "token", o.token, "")
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "")
	fs.BoolVar(&o.json, "json", o.json, "")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "")
	fs.StringVar(&o.tlsFingerprint, "tls-fingerprint", o.tlsFingerprint, "")
	fs.StringVar(&o.caCert, "cacert", o.caCert, "")
	return fs
}

// parseArgs parses the command line. The options are returned even with an error, for
// the usage text.
func parseArgs(args []string, env func(string) string) (*options, string, error) {
	o := defaults(env)
	fs := flagSet(prog, o)
	if err := fs.Parse(args); err != nil {
		return o, "", flagError(err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return o, "", errNoCommand
	}
	cmd := rest[0]
	if cmd != "health" && cmd != "status" {
		return o, "", fmt.Errorf("unknown command %q: want health, status, vanity, probe or import (see -h)", cmd)
	}
	sub := flagSet(prog+" "+cmd, o)
	if err := sub.Parse(rest[1:]); err != nil {
		return o, cmd, flagError(err)
	}
	if extra := sub.Args(); len(extra) > 0 {
		return o, cmd, fmt.Errorf("unexpected argument %q after %s (see -h)", extra[0], cmd)
	}
	if err := o.validate(); err != nil {
		return o, cmd, err
	}
	return o, cmd, o.resolveTLS(env)
}

// flagError turns a flag package error into errHelp or a one-line usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	return fmt.Errorf("%v (see -h)", err)
}

// validate checks the options and fills the derived fields.
func (o *options) validate() error {
	lv, err := parseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	o.level = lv
	o.host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(o.host), "["), "]")
	if o.host == "" || strings.ContainsAny(o.host, "/?#@ \t\r\n") {
		return fmt.Errorf("--host: invalid host %q", o.host)
	}
	n, err := strconv.Atoi(strings.TrimSpace(o.port))
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("--port: invalid port %q: want 1..65535", o.port)
	}
	o.port = strconv.Itoa(n)
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout: want a positive duration, got %v", o.timeout)
	}
	return nil
}

// printUsage writes the help text, showing the defaults in effect.
func printUsage(w io.Writer, o *options) {
	if o == nil {
		o = &options{host: defaultHost, port: defaultPort, logLevel: "INFO", timeout: defaultTimeout}
	}
	fmt.Fprintf(w, `Usage: %[1]s [options] {health,status} [--json] | vanity PREFIX | probe HOST:PORT | import SOURCE...

Query a JoinMarket directory server's operator endpoints.

Commands:
  health               Check server health: exit 0 iff healthy
  status               Get server status: exit 0 iff it answered and is healthy
  probe HOST:PORT      Handshake with any directory as a taker: exit 0 iff accepted
                       (probe -h for its options)
  import SOURCE...     Take over another directory's settings and onion key
                       (import -h for its options)

Options (accepted before or after the command):
  --cacert FILE        verify the ops listener's HTTPS certificate against the CA
                       certificate(s) in FILE (chain, names and expiry checked)
  --data-dir DIR       data dir holding the server's %[2]s and %[7]s files
                       (default: $DATA_DIR, $JOINMARKET_DATA_DIR or ~/.joinmarket-ng)
  -h, --help           show this help
  --host HOST          ops listener host (default: %[3]s; env
                       DIRECTORY_SERVER__HEALTH_CHECK_HOST, HEALTH_CHECK_HOST)
  --json               print the server's JSON instead of text
  -l, --log-level L    DEBUG, INFO, WARNING or ERROR; DEBUG shows each request
                       (default: %[4]s; env DIRECTORY_SERVER__LOG_LEVEL, LOGGING__LEVEL, LOG_LEVEL)
  --port PORT          ops listener port (default: %[5]s; env
                       DIRECTORY_SERVER__HEALTH_CHECK_PORT, HEALTH_CHECK_PORT)
  --timeout DURATION   time limit for the whole command (default: %[6]v)
  --tls-fingerprint FP pin the ops listener's HTTPS certificate by its SHA-256
                       fingerprint, as the server logs it at start (AB:CD:… or plain
                       hex); names, chain and expiry are not checked
  --token TOKEN        bearer token for status (default: $OPS_TOKEN, else
                       <data dir>/%[2]s); needed when the ops listener is not loopback

HTTPS: the server serves its ops endpoints over HTTPS when its HEALTH_CHECK_HOST is
not loopback (0.0.0.0 included), plain HTTP on loopback. This command uses HTTPS when
--host is not loopback (a wildcard host is dialled on loopback, still over HTTPS) or
when --tls-fingerprint or --cacert is given. Without either it pins the certificate
file the server uses: $OPS_TLS_CERT (the operator's), else <data dir>/%[7]s
(generated by the server); without such a file the system's roots verify it.

Exit status: 0 success, 1 unhealthy or request failed, 2 usage error.
`, prog, tokenFile, o.host, o.logLevel, o.port, o.timeout, tlsCertFile)
}

// tokenInfo is the bearer token for /status and where it came from.
type tokenInfo struct {
	token   string
	source  string // "--token", an environment variable, or the token file's path
	path    string // the token file looked at, if any
	fileErr error  // why the token file could not be used, if it exists
}

// resolveToken finds the token: --token, else the environment, else <data dir>/ops-token.
func resolveToken(o *options, env func(string) string) tokenInfo {
	if t := strings.TrimSpace(o.token); t != "" {
		return tokenInfo{token: t, source: "--token"}
	}
	if v, name := firstEnv(env, envToken); v != "" {
		return tokenInfo{token: v, source: name}
	}
	dir := dataDir(o, env)
	if dir == "" {
		return tokenInfo{}
	}
	path := filepath.Join(dir, tokenFile)
	tok, err := readToken(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return tokenInfo{path: path}
		}
		return tokenInfo{path: path, fileErr: err}
	}
	return tokenInfo{token: tok, source: path, path: path}
}

// dataDir is --data-dir, else $DATA_DIR, else $JOINMARKET_DATA_DIR, else
// $HOME/.joinmarket-ng ("" without a home).
func dataDir(o *options, env func(string) string) string {
	home := strings.TrimSpace(env("HOME"))
	dir := strings.TrimSpace(o.dataDir)
	if dir == "" {
		dir, _ = firstEnv(env, envDataDir)
	}
	if dir == "" {
		if home == "" {
			return ""
		}
		return filepath.Join(home, ".joinmarket-ng")
	}
	if home != "" && (dir == "~" || strings.HasPrefix(dir, "~/")) {
		dir = filepath.Join(home, dir[1:])
	}
	return dir
}

// readToken reads a token file: the first line, trimmed; an empty file is an error.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%s holds no token", path)
	}
	return tok, nil
}

// describe says, for the debug log, which token is used (never the token itself).
func (t tokenInfo) describe() string {
	switch {
	case t.token != "":
		return "bearer token from " + t.source
	case t.fileErr != nil:
		return "no bearer token: " + t.fileErr.Error()
	case t.path != "":
		return "no bearer token (no --token, no OPS_TOKEN, no " + t.path + ")"
	}
	return "no bearer token (no --token, no OPS_TOKEN, no data dir)"
}

// unauthorized is the one-line explanation of a 401 from /status.
func (t tokenInfo) unauthorized() string {
	const hint = "pass --token or set OPS_TOKEN (the server's ops-token file)"
	switch {
	case t.token != "":
		return "unauthorized: the server rejected the token from " + t.source + "; " + hint
	case t.fileErr != nil:
		return "unauthorized: " + t.fileErr.Error() + "; " + hint
	}
	return "unauthorized: " + hint
}
