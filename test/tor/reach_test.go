package tor

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/probe"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
	"github.com/jm-directory/jm-directory-server/internal/tortest"
)

// opsAddrRE finds the ops listener's address in a server log.
var opsAddrRE = regexp.MustCompile(`msg="ops endpoints listening" addr=(\S+)`)

// opsAddr waits for the server to log its ops listener and returns its address.
func opsAddr(t *testing.T, logPath string) string {
	t.Helper()
	var addr string
	testkit.EventuallyWithin(t, 30*time.Second, "the ops listener in "+filepath.Base(logPath), func() bool {
		b, _ := os.ReadFile(logPath)
		if m := opsAddrRE.FindSubmatch(b); m != nil {
			addr = string(m[1])
		}
		return addr != ""
	})
	return addr
}

// health is /health's answer.
type health struct {
	Code   int
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func getHealth(t *testing.T, ops string) health {
	t.Helper()
	var h health
	h.Code = getJSON(t, ops, "/health", &h)
	return h
}

// reachStatus is the part of /status this file checks.
type reachStatus struct {
	Stats struct {
		TotalPeers int `json:"total_peers"`
	} `json:"stats"`
	Disconnects map[string]uint64 `json:"disconnects"`
	Onion       *struct {
		Published  bool       `json:"published"`
		Reason     string     `json:"reason"`
		LastUpload *time.Time `json:"last_upload"`
		Uploads    uint64     `json:"uploads"`
	} `json:"onion"`
	SelfProbe *struct {
		Running     bool       `json:"running"`
		Reason      string     `json:"reason"`
		Probes      uint64     `json:"probes"`
		Consecutive int        `json:"consecutive_failures"`
		LastSuccess *time.Time `json:"last_success"`
		LastError   string     `json:"last_error"`
		ConnectMs   float64    `json:"connect_ms"`
	} `json:"self_probe"`
}

func getStatus(t *testing.T, ops string) reachStatus {
	t.Helper()
	var st reachStatus
	if code := getJSON(t, ops, "/status", &st); code != http.StatusOK {
		t.Fatalf("/status: HTTP %d", code)
	}
	if st.Onion == nil || st.SelfProbe == nil {
		t.Fatalf("/status has no onion or self_probe: %+v", st)
	}
	return st
}

// getJSON asks the ops listener for path and decodes the JSON answer into v.
func getJSON(t *testing.T, ops, path string, v any) int {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + ops + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// setConf sends SETCONF to a tor of the network.
func setConf(t *testing.T, ctl *torctl.Conn, args string) {
	t.Helper()
	r, err := ctl.Command("SETCONF " + args)
	if err == nil {
		err = r.Err()
	}
	if err != nil {
		t.Fatalf("SETCONF %s: %v", args, err)
	}
}

// waitSelfProbe waits until the self-probe has succeeded after since, sending NEWNYM to
// the client tor every 20 s meanwhile: after the onion host restarts, the client's
// cached descriptor names dead introduction points, and tor asks the same HSDirs again
// only after 15 minutes unless told to forget (a user's tor would recover by itself,
// later than a test can wait).
func waitSelfProbe(t *testing.T, n *tortest.Network, ops string, since time.Time, d time.Duration) reachStatus {
	t.Helper()
	var st reachStatus
	nudged := time.Now()
	if !testkit.Poll(d, func() bool {
		st = getStatus(t, ops)
		if sp := st.SelfProbe; sp.LastSuccess != nil && sp.LastSuccess.After(since) {
			return true
		}
		if time.Since(nudged) > 20*time.Second {
			nudged = time.Now()
			if err := n.NewNym(); err != nil {
				t.Logf("NEWNYM: %v", err)
			}
		}
		return false
	}) {
		t.Fatalf("no successful self-probe within %v: %+v", d, *st.SelfProbe)
	}
	return st
}

// selfProbeAcrossHostRestart runs a server in tor_mode=external behind a HiddenServiceDir
// onion on the network's onion host, self-probing through the client's SOCKS port
// every 2 s and unhealthy after 8 s without a success. Its self-probe succeeds; when
// the onion host is stopped it fails and /health turns unhealthy with the self-probe's
// reason; when the host is back, it succeeds again and /health recovers. The probes
// are never counted as peers.
func selfProbeAcrossHostRestart(t *testing.T, n *tortest.Network, bin, work string) {
	t.Helper()
	port := freePort(t)
	hsDir := filepath.Join(work, "hs3")
	onion := serveHiddenService(t, n, hsDir, port, "")

	logPath := filepath.Join(work, "server3.log")
	socksHost, socksPort, _ := net.SplitHostPort(n.SOCKSAddr())
	stop := runServer(t, bin, logPath, "server (external, self-probe)",
		"DATA_DIR="+filepath.Join(work, "data3"), fmt.Sprintf("PORT=%d", port),
		"HEALTH_CHECK_PORT=0", "LOG_LEVEL=DEBUG", "TOR_MODE=external", "TOR_HIDDEN_SERVICE_DIR="+hsDir,
		"TOR_SOCKS_HOST="+socksHost, "TOR_SOCKS_PORT="+socksPort,
		"SELF_PROBE_INTERVAL=2s", "SELF_PROBE_TIMEOUT=30s", "SELF_PROBE_UNHEALTHY_AFTER=8s")
	defer stop()
	ops := opsAddr(t, logPath)
	if err := n.WaitOnion(onion, time.Minute); err != nil {
		t.Fatalf("%v\nonion host log:\n%s", err, n.LogTail(tortest.Host, 20))
	}
	start := time.Now()
	st := waitSelfProbe(t, n, ops, time.Time{}, 90*time.Second)
	if h := getHealth(t, ops); h.Code != http.StatusOK {
		t.Fatalf("/health after a successful self-probe: %+v", h)
	}
	t.Logf("self-probe through Tor succeeded (connect %.0f ms) after %v", st.SelfProbe.ConnectMs, time.Since(start).Round(time.Millisecond))

	n.StopHost()
	stopped := time.Now()
	var h health
	testkit.EventuallyWithin(t, 90*time.Second, "/health unhealthy for the self-probe with the onion host stopped", func() bool {
		h = getHealth(t, ops)
		return h.Code == http.StatusServiceUnavailable && strings.Contains(h.Reason, "no successful self-probe")
	})
	if sp := getStatus(t, ops).SelfProbe; sp.LastSuccess == nil || time.Since(*sp.LastSuccess) < 8*time.Second {
		t.Fatalf("unhealthy before self_probe_unhealthy_after (8s) since the last success: %+v", *sp)
	}
	t.Logf("with the onion host stopped: unhealthy after %v: %q", time.Since(stopped).Round(time.Millisecond), h.Reason)
	// The probe under way when the host stopped fails by its timeout (30 s) at the latest.
	testkit.EventuallyWithin(t, 60*time.Second, "a failed self-probe recorded", func() bool {
		st = getStatus(t, ops)
		return st.SelfProbe.Consecutive > 0 && st.SelfProbe.LastError != ""
	})
	t.Logf("self-probe failing: %q", st.SelfProbe.LastError)

	n.StartHost()
	serveHiddenService(t, n, hsDir, port, "")
	restarted := time.Now()
	waitSelfProbe(t, n, ops, restarted, 3*time.Minute)
	testkit.EventuallyWithin(t, 10*time.Second, "/health healthy again", func() bool {
		return getHealth(t, ops).Code == http.StatusOK
	})
	t.Logf("self-probe recovered %v after the onion host restarted", time.Since(restarted).Round(time.Millisecond))
	st = getStatus(t, ops)
	// (A probe that tor failed may still have opened a connection that never spoke: that
	// is an early close, client_closed, not a peer.)
	b, _ := os.ReadFile(logPath)
	if joined := strings.Count(string(b), `msg="peer joined"`); st.Stats.TotalPeers != 0 || st.Disconnects["self_probe"] == 0 || joined != 0 {
		t.Fatalf("the self-probes were counted as peers: total_peers %d, %d joined, disconnects %v", st.Stats.TotalPeers, joined, st.Disconnects)
	}
}

// nickAuthOverTor authenticates a nick over Tor as a joinmarket-ng client does: it
// derives the directory-id from the onion endpoint it dials (lower-cased onion:port)
// and must get 807 ok from the directory, whose default directory-id is its own
// location.
func nickAuthOverTor(t *testing.T, n *tortest.Network, location string) {
	t.Helper()
	id, err := nickauth.DirectoryIDForOnion(location)
	if err != nil {
		t.Fatal(err)
	}
	tg := &dirtest.Target{Addr: location, Network: "regtest", External: true, SOCKS: n.SOCKSAddr()}
	// The onion answered just before; a connection Tor fails is retried after NEWNYM.
	if err := n.Retry(60*time.Second, func() error {
		d, err := probe.SOCKSDialer("tcp", n.SOCKSAddr(), "")
		if err != nil {
			return err
		}
		c, err := d(t.Context(), "tcp", location)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("reaching %s over Tor: %v", location, err)
	}
	c, code := tg.JoinAuth(t, dirtest.AuthSpec{DirectoryID: id})
	if code != nickauth.CodeOK {
		t.Fatalf("nick authentication over Tor: %s", code)
	}
	c.Conn.Close()
}

// freePort returns a loopback TCP port nothing listens on (for a server tor forwards to).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serveHiddenService has the onion host serve a HiddenServiceDir onion from hsDir,
// forwarding its port 5222 to 127.0.0.1:port, with more options (SETCONF syntax) when
// given, and returns the onion once tor wrote its hostname.
func serveHiddenService(t *testing.T, n *tortest.Network, hsDir string, port int, more string) string {
	t.Helper()
	ctl, err := n.Control(tortest.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	args := fmt.Sprintf("HiddenServiceDir=%s HiddenServicePort=%s", torctl.Quote(hsDir), torctl.Quote(fmt.Sprintf("5222 127.0.0.1:%d", port)))
	if more != "" {
		args += " " + more
	}
	setConf(t, ctl, args)
	return waitFile(t, filepath.Join(hsDir, "hostname"), 30*time.Second)
}

// runServer starts the server binary with env added to the test's environment, its
// output in logPath. stop interrupts it and waits for it, logging its log (as name) if
// the test failed.
func runServer(t *testing.T, bin, logPath, name string, env ...string) (stop func()) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), env...)
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	}
}
