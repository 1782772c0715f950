package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/ops"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

const (
	makerNick = "J59xfsUewpdmrbuM"
	makerLoc  = "127.0.0.1:27102"
	takerNick = "J55uwMUczBgZV44z"
	takerLoc  = "NOT-SERVING-ONION"
	testToken = "0123456789abcdef0123"
)

var discard = slog.New(slog.DiscardHandler)

// serveOps serves the ops endpoints over HTTP on a loopback port and returns that port.
// opt.Addr decides whether a token is required, not where it listens.
func serveOps(t *testing.T, srv *server.Server, opt ops.Options) string {
	t.Helper()
	op, err := ops.New(srv, opt, discard)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(op.Handler())
	t.Cleanup(hs.Close)
	return portOf(t, hs.Listener.Addr())
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// environ is a fake environment; HOME always points into the test's temp dir so that
// the real ~/.joinmarket-ng is never read.
func environ(t *testing.T, kv ...string) func(string) string {
	m := map[string]string{"HOME": t.TempDir()}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// ctl runs the command in-process.
func ctl(env func(string) string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// oneLine checks that s is exactly one line and returns it.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("want exactly one line, got %q", s)
	}
	return strings.TrimSuffix(s, "\n")
}

// TestLive runs health and status against a live directory with a maker and a taker.
func TestLive(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	port := serveOps(t, l.Srv, ops.Options{Addr: "127.0.0.1:0"})
	l.Join(t, makerNick, makerLoc, nil)
	l.Join(t, takerNick, takerLoc, nil)
	env := environ(t)

	t.Run("health", func(t *testing.T) {
		code, out, errs := ctl(env, "--port", port, "health")
		if code != 0 || out != "Server status: healthy\n" || errs != "" {
			t.Fatalf("health: exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("health --json", func(t *testing.T) {
		code, out, errs := ctl(env, "--port", port, "health", "--json")
		var h map[string]any
		if code != 0 || errs != "" || json.Unmarshal([]byte(out), &h) != nil || h["status"] != "healthy" {
			t.Fatalf("health --json: exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("status", func(t *testing.T) {
		code, out, errs := ctl(env, "--port", port, "status")
		t.Logf("status output:\n%s", out)
		if code != 0 || errs != "" {
			t.Fatalf("status: exit %d, stderr %q\n%s", code, errs, out)
		}
		for _, re := range []string{
			`(?m)^Network: +regtest$`,
			`(?m)^Status: +running +\(uptime \d+s, \d+\.\d s\)$`,
			`(?m)^Health: +healthy$`,
			`(?m)^Version: +` + regexp.QuoteMeta(server.Version) + `$`,
			`(?m)^Directory nick: +` + regexp.QuoteMeta(l.Srv.Nick()) + `  location 127\.0\.0\.1:\d+$`,
			`(?m)^Peers: +2 / 10000 connected, 0 handshaking$`,
			`(?m)^  Makers: +1 +` + makerNick + `$`,
			`(?m)^  Takers: +1 +` + takerNick + `$`,
			`(?m)^Traffic: +received 2 lines \(\d+ B\), sent \d+ lines \(\d+(\.\d)? (B|KiB)\)$`,
			`(?m)^Nick auth: +prefer_verified, directory-id ` + regexp.QuoteMeta(l.Addr) + `; 0 verified, 2 legacy peers; results: none$`,
			`(?m)^Offers seen: +none$`,
			`(?m)^Rate limiting: +0 violations, 2 tracked connections$`,
			`(?m)^Drops: +none$`,
			`(?m)^Disconnects: +none$`,
			`(?m)^Rejections: +none$`,
			`(?m)^Recent: +none$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("status output does not match %s", re)
			}
		}
	})
	t.Run("status --json", func(t *testing.T) {
		// --json is accepted before the command too.
		for _, args := range [][]string{{"--port", port, "status", "--json"}, {"--json", "--port", port, "status"}} {
			code, out, errs := ctl(env, args...)
			if code != 0 || errs != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("%v: not JSON: %v\n%s", args, err, out)
			}
			for _, k := range []string{"network", "uptime_seconds", "server_status", "max_peers", "stats",
				"connected_peers", "passive_peers", "active_peers", "active_connections"} {
				if _, ok := m[k]; !ok {
					t.Errorf("%v: no %q key", args, k)
				}
			}
			var st ops.StatusResponse
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatal(err)
			}
			if st.ConnectedPeers.Total != 2 || st.ActivePeers.Total != 1 || st.PassivePeers.Total != 1 ||
				!reflect.DeepEqual(st.ActivePeers.Nicks, []string{makerNick}) ||
				!reflect.DeepEqual(st.PassivePeers.Nicks, []string{takerNick}) {
				t.Errorf("%v: unexpected peers: %+v %+v %+v", args, st.ConnectedPeers, st.ActivePeers, st.PassivePeers)
			}
		}
	})
	t.Run("debug", func(t *testing.T) {
		code, _, errs := ctl(env, "-l", "DEBUG", "--port", port, "status")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, want := range []string{
			"GET http://127.0.0.1:" + port + "/status",
			"GET http://127.0.0.1:" + port + "/status: HTTP 200 OK",
			"GET http://127.0.0.1:" + port + "/health: HTTP 200 OK",
			"no bearer token",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("debug output lacks %q:\n%s", want, errs)
			}
		}
		for _, lv := range []string{"INFO", "warning", "ERROR"} {
			if code, _, errs := ctl(env, "--log-level", lv, "--port", port, "health"); code != 0 || errs != "" {
				t.Errorf("--log-level %s: exit %d, stderr %q", lv, code, errs)
			}
		}
	})
	t.Run("host and port from the environment", func(t *testing.T) {
		for _, kv := range [][]string{
			{"HEALTH_CHECK_PORT", port},
			{"DIRECTORY_SERVER__HEALTH_CHECK_PORT", port, "HEALTH_CHECK_PORT", "1"},
			{"HEALTH_CHECK_HOST", "localhost", "HEALTH_CHECK_PORT", port},
			// (0.0.0.0, a wildcard, means HTTPS: TestTLS.)
			{"DIRECTORY_SERVER__HEALTH_CHECK_HOST", "127.0.0.1", "HEALTH_CHECK_HOST", "192.0.2.1", "HEALTH_CHECK_PORT", port},
		} {
			if code, out, errs := ctl(environ(t, kv...), "health"); code != 0 {
				t.Errorf("env %v: exit %d, stdout %q, stderr %q", kv, code, out, errs)
			}
		}
		// Flags beat the environment, before or after the command.
		env := environ(t, "HEALTH_CHECK_PORT", "1", "HEALTH_CHECK_HOST", "192.0.2.1")
		for _, args := range [][]string{{"--host", "127.0.0.1", "--port", port, "health"}, {"health", "--host=127.0.0.1", "--port=" + port}} {
			if code, out, errs := ctl(env, args...); code != 0 {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
			}
		}
	})
}

// TestUnhealthyAtCapacity: a directory holding max_peers peers is unhealthy.
func TestUnhealthyAtCapacity(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, func(c *config.Config) { c.MaxPeers = 2 }, discard)
	port := serveOps(t, l.Srv, ops.Options{Addr: "127.0.0.1:0"})
	env := environ(t)
	if code, out, errs := ctl(env, "--port", port, "health"); code != 0 {
		t.Fatalf("before any peer: exit %d, %q %q", code, out, errs)
	}
	l.Join(t, makerNick, makerLoc, nil)
	l.Join(t, takerNick, takerLoc, nil)

	code, out, errs := ctl(env, "--port", port, "health")
	if code != 1 || out != "Server status: unhealthy (at capacity)\n" || errs != "" {
		t.Fatalf("health: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = ctl(env, "--port", port, "health", "--json")
	if code != 1 || !strings.Contains(out, `"reason": "at capacity"`) {
		t.Fatalf("health --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// status answers but the verdict is unhealthy: report on stdout, reason on stderr.
	code, out, errs = ctl(env, "--port", port, "status")
	if code != 1 || !regexp.MustCompile(`(?m)^Peers: +2 / 2 connected, 0 handshaking$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Health: +unhealthy \(at capacity\)$`).MatchString(out) {
		t.Fatalf("status: exit %d, stdout:\n%s", code, out)
	}
	if line := oneLine(t, errs); line != "jm-directory-ctl: server is unhealthy (at capacity)" {
		t.Errorf("stderr %q", line)
	}
}

// TestUnhealthyShuttingDown: once the server's context is cancelled it is unhealthy. The
// report also lists the handshakes refused before, by reason.
func TestUnhealthyShuttingDown(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	port := serveOps(t, l.Srv, ops.Options{Addr: "127.0.0.1:0"})
	l.Join(t, makerNick, makerLoc, nil)
	l.Join(t, takerNick, takerLoc, nil)
	for _, network := range []string{"mainnet", "signet"} { // the directory serves regtest
		conn, err := net.Dial("tcp", l.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dirtest.TryHandshake(conn, "J5xhGSWE7VrxM7sO", takerLoc, network, nil, dirtest.Timeout)
		conn.Close()
		if err == nil || !strings.Contains(err.Error(), `Rejected: network: `) {
			t.Fatalf("a %s client: %v, want a network rejection", network, err)
		}
	}
	// Rejected connections are counted as closed once the server has drained them.
	testkit.Eventually(t, "two rejected connections closed", func() bool {
		return l.Srv.Counters().Closes(reason.CloseRejected) == 2
	})
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	env := environ(t)
	code, out, errs := ctl(env, "--port", port, "health")
	if code != 1 || out != "Server status: unhealthy (shutting down)\n" || errs != "" {
		t.Fatalf("health: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = ctl(env, "--port", port, "status")
	t.Logf("status output after shutdown:\n%s", out)
	if code != 1 || !regexp.MustCompile(`(?m)^Status: +stopping `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Disconnects: +handshake_rejected 2, shutdown 2$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Rejections: +network 2$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Recent: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+s ago\)  (maker|taker)  shutdown$`).MatchString(out) {
		t.Fatalf("status: exit %d, stdout:\n%s", code, out)
	}
	if line := oneLine(t, errs); line != "jm-directory-ctl: server is unhealthy (shutting down)" {
		t.Errorf("stderr %q", line)
	}
}

// TestUnreachable: nothing listening → exit 1 and one line on stderr.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, ln.Addr())
	ln.Close()
	env := environ(t)
	for _, cmd := range []string{"health", "status"} {
		code, out, errs := ctl(env, "--port", port, cmd)
		line := oneLine(t, errs)
		want := "jm-directory-ctl: cannot reach http://127.0.0.1:" + port + "/" + cmd + ": "
		if code != 1 || out != "" || !strings.HasPrefix(line, want) || !strings.Contains(line, "refused") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
		}
	}
}

// TestTimeout: a listener that never answers fails within --timeout.
func TestTimeout(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hs.Close)
	port := portOf(t, hs.Listener.Addr())
	code, out, errs := ctl(environ(t), "--port", port, "--timeout", "100ms", "health")
	line := oneLine(t, errs)
	if code != 1 || out != "" || line != "jm-directory-ctl: cannot reach http://127.0.0.1:"+port+"/health: timed out after 100ms" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestToken covers a token-protected /status: every way of passing the token.
func TestToken(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	port := serveOps(t, l.Srv, ops.Options{Addr: "0.0.0.0:0", Token: testToken})

	// The server generates a token into its data dir when none is configured.
	genDir := t.TempDir()
	genPort := serveOps(t, l.Srv, ops.Options{Addr: "0.0.0.0:0", DataDir: genDir})
	// The same, in the default data dir under $HOME.
	home := t.TempDir()
	homePort := serveOps(t, l.Srv, ops.Options{Addr: "0.0.0.0:0", DataDir: filepath.Join(home, ".joinmarket-ng")})

	tokDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tokDir, tokenFile), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const unauthorized = "jm-directory-ctl: unauthorized: pass --token or set OPS_TOKEN (the server's ops-token file)"

	// /health never needs the token.
	if code, out, errs := ctl(environ(t), "--port", port, "health"); code != 0 {
		t.Fatalf("health: exit %d, %q %q", code, out, errs)
	}
	code, out, errs := ctl(environ(t), "--port", port, "status")
	if code != 1 || out != "" || oneLine(t, errs) != unauthorized {
		t.Fatalf("status without token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = ctl(environ(t), "--port", port, "--token", "wrong-token-0123456789", "status")
	if line := oneLine(t, errs); code != 1 || line != "jm-directory-ctl: unauthorized: the server rejected the token from --token; pass --token or set OPS_TOKEN (the server's ops-token file)" {
		t.Fatalf("wrong token: exit %d, stderr %q", code, errs)
	}

	for _, c := range []struct {
		name string
		port string
		env  func(string) string
		args []string
	}{
		{"--token", port, environ(t), []string{"--token", testToken}},
		{"--token after the command", port, environ(t), []string{"status", "--token", testToken}},
		{"OPS_TOKEN", port, environ(t, "OPS_TOKEN", testToken), nil},
		{"DIRECTORY_SERVER__OPS_TOKEN", port, environ(t, "DIRECTORY_SERVER__OPS_TOKEN", testToken), nil},
		{"--token beats OPS_TOKEN", port, environ(t, "OPS_TOKEN", "wrong"), []string{"--token", testToken}},
		{"--data-dir", port, environ(t), []string{"--data-dir", tokDir}},
		{"DATA_DIR", port, environ(t, "DATA_DIR", tokDir), nil},
		{"JOINMARKET_DATA_DIR", port, environ(t, "JOINMARKET_DATA_DIR", tokDir), nil},
		{"generated token file", genPort, environ(t, "DATA_DIR", genDir), nil},
		{"default data dir", homePort, environ(t, "HOME", home), nil},
	} {
		args := append([]string{"--port", c.port}, c.args...)
		if !strings.Contains(strings.Join(args, " "), "status") {
			args = append(args, "status")
		}
		code, out, errs := ctl(c.env, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "Status:         running") {
			t.Errorf("%s: exit %d, stderr %q\n%s", c.name, code, errs, out)
		}
	}

	// An unreadable token file is named in the unauthorized line.
	badDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(badDir, tokenFile), 0o700); err != nil { // a directory: unreadable as a file
		t.Fatal(err)
	}
	code, _, errs = ctl(environ(t, "DATA_DIR", badDir), "--port", port, "status")
	if line := oneLine(t, errs); code != 1 || !strings.HasPrefix(line, "jm-directory-ctl: unauthorized: read "+filepath.Join(badDir, tokenFile)) {
		t.Fatalf("unreadable token file: exit %d, stderr %q", code, errs)
	}
}

// TestUsage covers the command line itself.
func TestUsage(t *testing.T) {
	t.Parallel()
	env := environ(t)
	code, out, errs := ctl(env)
	if code != 1 || out != "" || !strings.HasPrefix(errs, "Usage: jm-directory-ctl ") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"health", "-h"}, {"--port", "1", "status", "--help"}} {
		code, out, errs := ctl(env, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage: jm-directory-ctl ") || !strings.Contains(out, "{health,status}") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	code, out, errs = ctl(env, "frobnicate")
	if line := oneLine(t, errs); code != 2 || out != "" || line != `jm-directory-ctl: unknown command "frobnicate": want health, status, vanity, probe or import (see -h)` {
		t.Errorf("unknown command: exit %d, stderr %q", code, errs)
	}
	for _, args := range [][]string{
		{"--port", "0", "health"},
		{"--port", "http", "health"},
		{"--host", "", "health"},
		{"--host", "a/b", "health"},
		{"-l", "LOUD", "health"},
		{"--timeout", "0s", "health"},
		{"--bogus", "health"},
		{"health", "--bogus"},
		{"health", "extra"},
	} {
		code, out, errs := ctl(env, args...)
		if line := oneLine(t, errs); code != 2 || out != "" || !strings.HasPrefix(line, "jm-directory-ctl: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	// An unknown log level in the server's environment is ignored, not fatal.
	if o, _, err := parseArgs([]string{"health"}, environ(t, "LOG_LEVEL", "NOISY")); err != nil || o.level != levelInfo {
		t.Errorf("LOG_LEVEL=NOISY: %v, level %v", err, o.level)
	}
	if o, _, err := parseArgs([]string{"health"}, environ(t, "LOGGING__LEVEL", "trace")); err != nil || o.level != levelDebug {
		t.Errorf("LOGGING__LEVEL=trace: %v, level %v", err, o.level)
	}
}

// TestBadAnswers: answers that are not a directory's.
func TestBadAnswers(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>not json</html>") })
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // joinmarket-ng's HTML 503 before start-up
		io.WriteString(w, "<html>Service Unavailable</html>")
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	port := portOf(t, hs.Listener.Addr())
	env := environ(t)

	code, out, errs := ctl(env, "--port", port, "status")
	if line := oneLine(t, errs); code != 1 || out != "" || !strings.HasPrefix(line, "jm-directory-ctl: http://127.0.0.1:"+port+"/status: invalid JSON: ") {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = ctl(env, "--port", port, "status", "--json")
	if code != 1 || out != "" || !strings.Contains(errs, "invalid JSON") {
		t.Errorf("status --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = ctl(env, "--port", port, "health")
	if code != 1 || out != "Server status: unhealthy (HTTP 503 Service Unavailable)\n" || errs != "" {
		t.Errorf("health: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// Something else entirely: a 404 everywhere.
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	oport := portOf(t, other.Listener.Addr())
	for _, cmd := range []string{"health", "status"} {
		code, out, errs := ctl(env, "--port", oport, cmd)
		if line := oneLine(t, errs); code != 1 || out != "" || line != "jm-directory-ctl: http://127.0.0.1:"+oport+"/"+cmd+": unexpected HTTP 404 Not Found" {
			t.Errorf("%s on a 404 server: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
		}
	}
}

// fakeOps serves status as /status and a healthy /health; it returns the port.
func fakeOps(t *testing.T, status string) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, status) })
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"status": "healthy"}`) })
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return portOf(t, hs.Listener.Addr())
}

// TestJoinmarketNGStatus: a joinmarket-ng /status (no extras, its offers and rate-limiter
// details) is reported too.
func TestJoinmarketNGStatus(t *testing.T) {
	t.Parallel()
	const ng = `{"network": "mainnet", "uptime_seconds": 3600.5, "server_status": "running", "max_peers": 10000,
 "stats": {"total_peers": 10, "connected_peers": 10, "passive_peers": 3, "active_peers": 7,
           "neutrino_compat_peers": 2, "peerlist_features_peers": 9, "push_encrypted_peers": 0},
 "rate_limiter": {"tracked_peers": 5, "total_violations": 10, "top_violators": [["a1b2c3", 7], ["d4e5f6", 3]]},
 "offers": {"total_offers": 15, "peers_with_offers": 5, "peers_many_offers": [["J5maker1", 4]]},
 "connected_peers": {"total": 10, "nicks": ["J5a", "J5b"]},
 "passive_peers": {"total": 3, "nicks": ["J5t1", "J5t2", "J5t3"]},
 "active_peers": {"total": 7, "nicks": ["J5m1", "J5m2", "J5m3", "J5m4", "J5m5", "J5m6", "J5m7", "J5m8", "J5m9", "J5m10", "J5m11", "J5m12"]},
 "active_connections": 10}`
	code, out, errs := ctl(environ(t), "--port", fakeOps(t, ng), "status")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := `Network:        mainnet
Status:         running   (uptime 1h 00m 00s, 3600.5 s)
Health:         healthy
Peers:          10 / 10000 connected, 10 active connections
  Makers:       7   J5m1, J5m2, J5m3, J5m4, J5m5, J5m6, J5m7, J5m8, J5m9, J5m10, ... and 2 more
  Takers:       3   J5t1, J5t2, J5t3
Features:       peerlist_features 9, neutrino_compat 2, push_encrypted 0
Offers:         15 from 5 peers
                J5maker1: 4 offers
Rate limiting:  10 violations, 5 tracked connections
                a1b2c3: 7 violations
                d4e5f6: 3 violations
`
	if out != want {
		t.Errorf("report:\n%s\nwant:\n%s", out, want)
	}
}

// TestCircuitKeyedStatus: with tor_proxy_protocol the report counts circuits; with an
// onion it describes it.
func TestCircuitKeyedStatus(t *testing.T) {
	t.Parallel()
	const st = `{"network": "mainnet", "uptime_seconds": 1, "server_status": "running", "max_peers": 10000,
 "stats": {"total_peers": 0, "connected_peers": 0, "passive_peers": 0, "active_peers": 0},
 "connected_peers": {"total": 0, "nicks": []}, "passive_peers": {"total": 0, "nicks": []},
 "active_peers": {"total": 0, "nicks": []}, "active_connections": 0,
 "rate_limiter": {"tracked_peers": 3, "total_violations": 4, "keyed_by": "circuit", "circuits": 3,
                  "banned_circuits": 1, "circuit_bans_total": 2},
 "onion": {"mode": "launch", "onion": "abc.onion", "published": true, "pow": true, "tor_version": "0.4.9.11"}}`
	code, out, errs := ctl(environ(t), "--port", fakeOps(t, st), "status")
	for _, want := range []string{"Rate limiting:  4 violations, 3 tracked circuits, 1 banned (2 bans)\n",
		"Onion:          published, tor_mode launch, PoW on, tor 0.4.9.11\n"} {
		if code != 0 || errs != "" || !strings.Contains(out, want) {
			t.Fatalf("exit %d, stderr %q, output:\n%s\nwant a line %q", code, errs, out, want)
		}
	}
}

// TestTorReport: the Onion line tells the last upload, or why there is none yet, and
// the Self-probe line follows it: ok, failing or not running.
func TestTorReport(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) string { return `"` + now.Add(-ago).Format(time.RFC3339Nano) + `"` }
	const head = `{"network": "mainnet", "uptime_seconds": 1, "server_status": "running", "max_peers": 10000,
 "stats": {}, "connected_peers": {"total": 0, "nicks": []}, "passive_peers": {"total": 0, "nicks": []},
 "active_peers": {"total": 0, "nicks": []}, "active_connections": 0`
	for _, c := range []struct {
		name, onion, selfProbe string
		want                   []string // consecutive lines
	}{{
		name: "ok",
		onion: `{"mode": "launch", "onion": "abc.onion", "published": true, "pow": true, "tor_version": "0.4.9.11",
			"last_upload": ` + at(3*time.Minute+10*time.Second) + `, "uploads": 8, "socks": "unix:/d/tor/socks"}`,
		selfProbe: `{"running": true, "socks": "unix:/d/tor/socks", "probes": 12, "failures": 0, "consecutive_failures": 0,
			"last_attempt": ` + at(4*time.Minute) + `, "last_success": ` + at(4*time.Minute+5*time.Second) + `,
			"connect_ms": 1234.5, "handshake_ms": 301, "unhealthy_after_seconds": 1800, "healthy": true}`,
		want: []string{
			"Onion:          published, tor_mode launch, PoW on, tor 0.4.9.11, last upload 3m ago",
			"Self-probe:     ok 4m ago (connect 1.2 s, handshake 0.3 s), 12 probes, 0 failed",
		},
	}, {
		name: "failing",
		onion: `{"mode": "control", "onion": "abc.onion", "published": true, "pow": false,
			"last_upload": ` + at(50*time.Minute) + `, "uploads": 3, "upload_error": "UPLOAD_REJECTED"}`,
		selfProbe: `{"running": true, "probes": 20, "failures": 4, "consecutive_failures": 3,
			"last_success": ` + at(41*time.Minute+30*time.Second) + `, "last_error": "no answer within 1m0s: EOF",
			"connect_ms": 900, "handshake_ms": 200, "unhealthy_after_seconds": 1800, "healthy": false}`,
		want: []string{
			"Onion:          published, tor_mode control, last upload 50m ago (a later one failed: UPLOAD_REJECTED)",
			"Self-probe:     FAILING: 3 in a row, last error: no answer within 1m0s: EOF; last success 41m ago, 20 probes, 4 failed",
		},
	}, {
		name:  "failing from the start",
		onion: `{"mode": "external", "onion": "abc.onion", "published": true, "pow": false}`,
		selfProbe: `{"running": true, "probes": 2, "failures": 2, "consecutive_failures": 2,
			"last_error": "socks connect: host unreachable", "unhealthy_after_seconds": 1800, "healthy": true}`,
		want: []string{
			"Onion:          published, tor_mode external",
			"Self-probe:     FAILING: 2 in a row, last error: socks connect: host unreachable; never succeeded, 2 probes, 2 failed",
		},
	}, {
		name: "waiting for the upload",
		onion: `{"mode": "launch", "onion": "abc.onion", "published": false, "pow": true, "tor_version": "0.4.9.11",
			"reason": "waiting for tor to upload the onion's descriptor to an HSDir (tor bootstrapping 45 %)"}`,
		selfProbe: `{"running": false, "reason": "onion not published: waiting for tor to upload the onion's descriptor to an HSDir",
			"probes": 0, "failures": 0, "consecutive_failures": 0, "unhealthy_after_seconds": 1800, "healthy": true}`,
		want: []string{
			"Onion:          not published, tor_mode launch, PoW on, tor 0.4.9.11, no upload yet: " +
				"waiting for tor to upload the onion's descriptor to an HSDir (tor bootstrapping 45 %)",
			"Self-probe:     not running: onion not published: waiting for tor to upload the onion's descriptor to an HSDir",
		},
	}, {
		name: "tor lost after an upload",
		onion: `{"mode": "control", "onion": "abc.onion", "published": false, "pow": false, "reason": "tor control: EOF",
			"last_upload": ` + at(2*time.Hour+5*time.Minute) + `, "uploads": 6}`,
		selfProbe: `{"running": true, "probes": 0, "failures": 0, "consecutive_failures": 0, "healthy": true}`,
		want: []string{
			"Onion:          not published (tor control: EOF), tor_mode control, last upload 2h ago",
			"Self-probe:     no probe made yet",
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			st, err := decodeStatus([]byte(head + `, "onion": ` + c.onion + `, "self_probe": ` + c.selfProbe + `}`))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			writeReport(&b, st, &health{Healthy: true, Status: "healthy"}, now)
			if want := "\n" + strings.Join(c.want, "\n") + "\n"; !strings.Contains(b.String(), want) {
				t.Errorf("report:\n%s\nwant the lines:\n%s", b.String(), want[1:])
			}
		})
	}
}

// TestTorStatusLive: the report of a real ops surface with an onion and a self-probe,
// and --json passes the server's self_probe through.
func TestTorStatusLive(t *testing.T) {
	t.Parallel()
	d := dirtest.Start(t, nil, discard)
	op, err := ops.New(d.Srv, ops.Options{Addr: "127.0.0.1:8080"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	uploaded := time.Now().Add(-3*time.Minute - 30*time.Second)
	succeeded := time.Now().Add(-4*time.Minute - 30*time.Second)
	op.SetOnion(func() onion.Status {
		return onion.Status{Mode: "launch", Onion: "abc.onion", Published: true, PoW: true, TorVersion: "0.4.9.11",
			LastUpload: &uploaded, Uploads: 8}
	})
	op.SetSelfProbe(func() selfprobe.Status {
		return selfprobe.Status{Running: true, Probes: 12, Consecutive: 0, LastAttempt: &succeeded, LastSuccess: &succeeded,
			ConnectMs: 1234, HandshakeMs: 312, UnhealthyAfterSeconds: 1800, Healthy: true}
	})
	hs := httptest.NewServer(op.Handler())
	t.Cleanup(hs.Close)
	port := portOf(t, hs.Listener.Addr())

	code, out, errs := ctl(environ(t), "--port", port, "status")
	want := "\nOnion:          published, tor_mode launch, PoW on, tor 0.4.9.11, last upload 3m ago\n" +
		"Self-probe:     ok 4m ago (connect 1.2 s, handshake 0.3 s), 12 probes, 0 failed\n"
	if code != 0 || errs != "" || !strings.Contains(out, want) {
		t.Fatalf("exit %d, stderr %q, output:\n%s\nwant the lines:\n%s", code, errs, out, want[1:])
	}
	code, out, errs = ctl(environ(t), "--port", port, "status", "--json")
	var doc struct {
		SelfProbe *selfprobe.Status `json:"self_probe"`
	}
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || errs != "" || err != nil || doc.SelfProbe == nil ||
		doc.SelfProbe.Probes != 12 || doc.SelfProbe.HandshakeMs != 312 {
		t.Fatalf("--json: exit %d, stderr %q, err %v, self_probe %+v", code, errs, err, doc.SelfProbe)
	}
}

// TestNickAuthReport: the Nick auth line of a live directory with a verified maker, a
// legacy taker and a failed round, and of a directory where it is disabled or not
// offered.
func TestNickAuthReport(t *testing.T) {
	t.Parallel()
	d := dirtest.Start(t, nil, discard)
	port := serveOps(t, d.Srv, ops.Options{Addr: "127.0.0.1:0"})
	tg := d.Target()
	tg.Join(t, dirtest.RefTaker)
	if _, code := tg.JoinAuth(t, dirtest.AuthSpec{Maker: true}); code != nickauth.CodeOK {
		t.Fatalf("round: %s, want ok", code)
	}
	if _, code := tg.JoinAuth(t, dirtest.AuthSpec{Proof: func(nickauth.Proof) string { return "{}" }}); code != nickauth.CodeMalformed {
		t.Fatalf("round: %s, want malformed", code)
	}
	// The ok of a round is counted once its peer is registered, just after its 807.
	testkit.Eventually(t, "the ok counted", func() bool { return d.Srv.Status(false).NickAuth.Results["ok"] == 1 })
	code, out, errs := ctl(environ(t), "--port", port, "status")
	want := "\nFeatures:       peerlist_features 1, neutrino_compat 0, push_encrypted 0\n" +
		"Nick auth:      prefer_verified, directory-id " + d.Addr + "; 1 verified, 1 legacy peers; results: malformed 1, ok 1\n"
	if code != 0 || errs != "" || !strings.Contains(out, want) {
		t.Fatalf("exit %d, stderr %q, output:\n%s\nwant the lines:\n%s", code, errs, out, want[1:])
	}

	const head = `{"network": "mainnet", "uptime_seconds": 1, "server_status": "running", "max_peers": 10000,
 "stats": {}, "connected_peers": {"total": 0, "nicks": []}, "passive_peers": {"total": 0, "nicks": []},
 "active_peers": {"total": 0, "nicks": []}, "active_connections": 0, "nick_auth": `
	for na, want := range map[string]string{
		`{"mode": "disabled", "verified_peers": 0, "legacy_peers": 4, "results": {"ok": 0}}`:        "disabled",
		`{"mode": "prefer_verified", "verified_peers": 0, "legacy_peers": 4, "results": {"ok": 0}}`: "not offered: no directory-id",
		`{"mode": "require_verified", "directory_id": "abc.onion:5222", "verified_peers": 3, "legacy_peers": 0,
		  "results": {"ok": 5, "malformed": 0, "expired": 2, "invalid": 1, "policy": 0}}`: "require_verified, directory-id abc.onion:5222; " +
			"3 verified, 0 legacy peers; results: ok 5, expired 2, invalid 1",
	} {
		st, err := decodeStatus([]byte(head + na + "}"))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		writeReport(&b, st, &health{Healthy: true, Status: "healthy"}, time.Now())
		if line := "\nNick auth:      " + want + "\n"; !strings.Contains(b.String(), line) {
			t.Errorf("report:\n%s\nwant the line:\n%s", b.String(), line[1:])
		}
	}
}

// TestStatusDocCoversOps: every key of the server's /status is known to the report, and
// the token file name is the server's.
func TestStatusDocCoversOps(t *testing.T) {
	t.Parallel()
	if tokenFile != ops.TokenFile {
		t.Errorf("tokenFile = %q, ops.TokenFile = %q", tokenFile, ops.TokenFile)
	}
	keys := func(typ reflect.Type) map[string]bool {
		m := map[string]bool{}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			m[name] = true
		}
		return m
	}
	have := keys(reflect.TypeFor[statusDoc]())
	for k := range keys(reflect.TypeFor[ops.StatusResponse]()) {
		if !have[k] {
			t.Errorf("/status key %q is not in statusDoc", k)
		}
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1234: "1.2 KiB",
		56 * 1024: "56 KiB", 1258291: "1.2 MiB", 5 << 30: "5.0 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0: "0s", 3.9: "3s", 123: "2m 03s", 3723.4: "1h 02m 03s", 90061: "1d 01h 01m 01s", -1: "0s"} {
		if got := formatUptime(in); got != want {
			t.Errorf("formatUptime(%v) = %q, want %q", in, got, want)
		}
	}
	if got := formatCounts(map[string]uint64{"b": 3, "a": 3, "c": 10, "z": 0}); got != "c 10, a 3, b 3" {
		t.Errorf("formatCounts = %q", got)
	}
	if got := formatNicks(nickList{Total: 4, Nicks: []string{"J5a"}}, true); got != "4   (hidden)" {
		t.Errorf("hidden nicks: %q", got)
	}
}
