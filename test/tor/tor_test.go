// Package tor tests the directory end to end over a real, private Tor network started
// by internal/tortest: the server runs in tor_mode=control against the network's onion
// host, and the conformance suite's core scenarios reach it through the Tor client's
// SOCKS5 port. Then the whole Tor network restarts and the same onion must come back.
// Then a second server behind a HiddenServiceDir onion with circuit-ID export checks
// that limits and bans follow the Tor circuit. Last, a third one self-probes its onion
// while the onion host is stopped and started again (reach_test.go). The first server
// also checks that its onion counts as published only once tor uploaded it.
//
// It needs tor and tor-gencert (Debian's tor package); without them it skips, except
// under CI=true, where it fails: CI installs tor.
package tor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/tortest"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// coreScenarios are the conformance tests run through Tor: maker and taker handshakes,
// pubmsg fan-out, privmsg with the location peerlist.
const coreScenarios = "^(TestHandshakeAccepted|TestPubmsgFanout|TestPrivmsgLocationPeerlist)$"

// conformance runs the core scenarios against addr through the SOCKS port, once the
// client has fetched the onion's descriptor. A run that failed because Tor could not
// make a connection ("cannot reach the directory", the conformance client's dial
// failure) is run again after NEWNYM, a few times: a first connection to a fresh onion
// may fail while the client and the service disagree for a moment. Any other failure is
// the directory's and fails the test at once.
func conformance(t *testing.T, n *tortest.Network, addr string) {
	t.Helper()
	if err := n.WaitOnion(addr, time.Minute); err != nil {
		t.Fatalf("%v\nonion host log:\n%s", err, n.LogTail(tortest.Host, 20))
	}
	var out []byte
	var err error
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "test", "-count=1", "-v", "-run", coreScenarios, "./test/conformance/")
		cmd.Dir = testkit.RepoRoot(t)
		cmd.Env = append(os.Environ(), "JM_DIRECTORY_ADDR="+addr, "JM_DIRECTORY_SOCKS="+n.SOCKSAddr())
		out, err = cmd.CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("cannot reach the directory: ")) || attempt == 4 {
			break
		}
		t.Logf("attempt %d: Tor could not reach the onion (%s); NEWNYM and again", attempt, tail(out, 3))
		if err := n.NewNym(); err != nil {
			t.Logf("NEWNYM: %v", err)
		}
	}
	if err != nil {
		t.Fatalf("conformance over Tor: %v\n%s", err, out)
	}
	for _, name := range []string{"TestHandshakeAccepted", "TestPubmsgFanout", "TestPrivmsgLocationPeerlist"} {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("%s did not pass over Tor:\n%s", name, out)
		}
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("a core scenario was skipped over Tor:\n%s", out)
	}
	t.Logf("core scenarios passed over Tor; the clients set aside %d departure notices of earlier tests' peers",
		bytes.Count(out, []byte("ignoring another client's departure notice")))
}

// probeOnion runs jm-directory-ctl probe against the onion through the network's SOCKS
// port: accepted, with the directory's nick (exit 0); and against an onion nobody
// publishes: unreachable (exit 1, one line naming the SOCKS route).
func probeOnion(t *testing.T, n *tortest.Network, ctl, location string) {
	t.Helper()
	var out []byte
	var err error
	for attempt := 1; ; attempt++ {
		out, err = exec.Command(ctl, "probe", location, "--network", "regtest", "--socks", n.SOCKSAddr(), "--json", "--timeout", "60s").Output()
		if err == nil || attempt == 3 {
			break
		}
		t.Logf("probe attempt %d: %v; NEWNYM and again", attempt, err)
		_ = n.NewNym()
	}
	if err != nil {
		t.Fatalf("probe %s over Tor: %v\n%s", location, err, out)
	}
	var res struct {
		Accepted    bool    `json:"accepted"`
		Network     string  `json:"network"`
		Location    string  `json:"location"`
		HandshakeMs float64 `json:"handshake_ms"`
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.Accepted || res.Network != "regtest" || res.Location != location {
		t.Fatalf("probe over Tor: %v %+v\n%s", err, res, out)
	}
	t.Logf("jm-directory-ctl probe over Tor: accepted, handshake %.1f ms", res.HandshakeMs)
	const nobody = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad.onion:5222"
	cmd := exec.Command(ctl, "probe", nobody, "--network", "regtest", "--socks", n.SOCKSAddr(), "--timeout", "20s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "via socks "+n.SOCKSAddr()) {
		t.Fatalf("probe of an onion nobody publishes: %v, stderr %q", err, stderr.String())
	}
}

// tail returns the last lines of out.
func tail(out []byte, lines int) string {
	all := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// waitFile waits for a file to exist with some content and returns it, trimmed.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	var content string
	testkit.EventuallyWithin(t, d, path+" appearing", func() bool {
		b, err := os.ReadFile(path)
		content = strings.TrimSpace(string(b))
		return err == nil && content != ""
	})
	return content
}

// waitLog waits until the server log holds at least count lines containing s. (On a
// failure the test's cleanup prints the log.)
func waitLog(t *testing.T, path, s string, count int, d time.Duration) {
	t.Helper()
	testkit.EventuallyWithin(t, d, fmt.Sprintf("%s reaching %d %q lines", filepath.Base(path), count, s), func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), s) >= count
	})
}

func TestOverTor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Tor network (about 30 s in all)")
	}
	start := time.Now()
	n := tortest.Start(t)
	t.Logf("Tor network ready in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tor logs:\n%s", n.Logs(15))
		}
	})
	work, err := os.MkdirTemp("", "jmtor") // short paths: tor's unix sockets
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })

	bin := filepath.Join(work, "jm-directory-server")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", work+"/", "./cmd/jm-directory-server", "./cmd/jm-directory-ctl")
	build.Dir = testkit.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	hsHost, hsPort, err := net.SplitHostPort(n.HostControlAddr())
	if err != nil {
		t.Fatal(err)
	}
	// The onion host offline: tor accepts ADD_ONION but cannot upload the descriptor.
	hostCtl, err := n.Control(tortest.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer hostCtl.Close()
	setConf(t, hostCtl, "DisableNetwork=1")
	socksHost, socksPort, _ := net.SplitHostPort(n.SOCKSAddr())

	data := filepath.Join(work, "data")
	logPath := filepath.Join(work, "server.log")
	t.Cleanup(runServer(t, bin, logPath, "server",
		"DATA_DIR="+data, "PORT=0", "HEALTH_CHECK_PORT=0", "LOG_LEVEL=INFO",
		"TOR_MODE=control", "TOR_CONTROL_HOST="+hsHost, "TOR_CONTROL_PORT="+hsPort,
		"TOR_COOKIE_FILE="+n.HostCookieFile(), "TOR_SOCKS_HOST="+socksHost, "TOR_SOCKS_PORT="+socksPort,
		"SELF_PROBE_INTERVAL=3s"))

	location := waitFile(t, filepath.Join(data, "hostname"), 30*time.Second)
	if !strings.HasSuffix(location, ".onion:5222") {
		t.Fatalf("hostname file: %q", location)
	}
	// Published means uploaded: while tor cannot upload, the onion is not published.
	ops := opsAddr(t, logPath)
	waitLog(t, logPath, "onion added to tor; waiting for its descriptor upload", 1, 30*time.Second)
	if h := getHealth(t, ops); h.Code != http.StatusServiceUnavailable || !strings.HasPrefix(h.Reason, "waiting for tor to upload") {
		t.Fatalf("/health with the onion added but the host offline: %+v", h)
	}
	if st := getStatus(t, ops); st.Onion.Published || st.Onion.LastUpload != nil {
		t.Fatalf("onion status before any upload: %+v", *st.Onion)
	}
	setConf(t, hostCtl, "DisableNetwork=0")
	waitLog(t, logPath, "onion published", 1, 60*time.Second)
	testkit.EventuallyWithin(t, 10*time.Second, "/health healthy after the upload", func() bool {
		return getHealth(t, ops).Code == http.StatusOK
	})
	if st := getStatus(t, ops); !st.Onion.Published || st.Onion.LastUpload == nil || st.Onion.Uploads == 0 {
		t.Fatalf("onion status after the upload: %+v", *st.Onion)
	}
	t.Logf("published %s after %v", location, time.Since(start).Round(time.Millisecond))
	conformance(t, n, location)
	t.Logf("core scenarios passed over Tor after %v", time.Since(start).Round(time.Millisecond))
	probeOnion(t, n, filepath.Join(work, "jm-directory-ctl"), location)
	nickAuthOverTor(t, n, location)
	t.Logf("nick authentication over Tor with the directory-id derived from the onion: ok")
	st := waitSelfProbe(t, n, ops, time.Time{}, 90*time.Second)
	t.Logf("self-probe through Tor (control mode) succeeded: connect %.0f ms", st.SelfProbe.ConnectMs)

	// Restart the whole Tor network: the control connection drops, the server
	// reconnects and publishes the same onion with its persistent key.
	n.Stop()
	waitLog(t, logPath, "onion not published", 1, 30*time.Second)
	restart := time.Now()
	n.Restart()
	t.Logf("Tor network ready again in %v", time.Since(restart).Round(time.Millisecond))
	waitLog(t, logPath, "onion published", 2, 90*time.Second)
	if again := waitFile(t, filepath.Join(data, "hostname"), time.Second); again != location {
		t.Fatalf("after the restart the onion is %s, was %s", again, location)
	}
	conformance(t, n, location)
	t.Logf("reconnected and passed again after %v", time.Since(start).Round(time.Millisecond))

	circuits(t, n, bin, work)
	t.Logf("per-circuit bans checked after %v", time.Since(start).Round(time.Millisecond))

	selfProbeAcrossHostRestart(t, n, bin, work)
	t.Logf("self-probe across an onion host restart checked after %v", time.Since(start).Round(time.Millisecond))
}

// circuits checks per-circuit identity over real Tor: a second server runs in
// tor_mode=external with tor_proxy_protocol behind a HiddenServiceDir onion on the onion
// host with HiddenServiceExportCircuitID haproxy (set with SETCONF, as an operator's
// torrc would). Connections over one circuit (one SOCKS isolation username) share an
// identity: an abusive one gets the circuit banned (circuit_ban_after=1), and a new
// connection over it is refused, while the circuit's open connection stays and another
// circuit is served.
func circuits(t *testing.T, n *tortest.Network, bin, work string) {
	t.Helper()
	port := freePort(t)
	hsDir := filepath.Join(work, "hs")
	onion := serveHiddenService(t, n, hsDir, port, "HiddenServiceExportCircuitID=haproxy")

	logPath := filepath.Join(work, "server2.log")
	stop := runServer(t, bin, logPath, "server (external, proxy protocol)",
		"DATA_DIR="+filepath.Join(work, "data2"), fmt.Sprintf("PORT=%d", port),
		"HEALTH_CHECK_PORT=0", "LOG_LEVEL=DEBUG", "TOR_MODE=external", "TOR_HIDDEN_SERVICE_DIR="+hsDir,
		"TOR_PROXY_PROTOCOL=true", "CIRCUIT_BAN_AFTER=1")
	defer stop()
	addr := onion + ":5222"
	dial := func(circuit string) (net.Conn, error) {
		d, err := proxy.SOCKS5("tcp", n.SOCKSAddr(), &proxy.Auth{User: circuit, Password: "x"}, proxy.Direct)
		if err != nil {
			return nil, err
		}
		return d.Dial("tcp", addr)
	}
	// The first connection waits for the descriptor to be published and fetched, and
	// is retried (after NEWNYM) while Tor fails it.
	if err := n.WaitOnion(onion, time.Minute); err != nil {
		t.Fatalf("%v\nonion host log:\n%s", err, n.LogTail(tortest.Host, 20))
	}
	var keep net.Conn
	var keepR *bufio.Reader
	err := n.Retry(90*time.Second, func() error {
		c, err := dial("circuit-a")
		if err != nil {
			return err
		}
		if keepR, err = joinOver(c, "J5circuitAkeepOO"); err != nil {
			c.Close()
			return err
		}
		keep = c
		return nil
	})
	if err != nil {
		t.Fatalf("joining %s over Tor: %v", addr, err)
	}
	defer keep.Close()
	gidA := lastCircuit(t, logPath)

	// A second connection over circuit a misbehaves: the circuit is banned.
	bad, err := dial("circuit-a")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := joinOver(bad, "J5circuitAbadOOO"); err != nil {
		t.Fatal(err)
	}
	if got := lastCircuit(t, logPath); got != gidA {
		t.Fatalf("two connections with one SOCKS username came over circuits %s and %s", gidA, got)
	}
	if _, err := io.WriteString(bad, "not json\r\n"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, `msg="circuit banned" circuit=`+gidA+" ", 1, 20*time.Second)

	// A new connection over circuit a is closed before any answer.
	again, err := dial("circuit-a")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := joinOver(again, "J5circuitAagainO"); err == nil {
		t.Fatal("a connection over the banned circuit was accepted")
	}
	waitLog(t, logPath, `reason=circuit_banned`, 1, 10*time.Second)

	// Another circuit is served, and circuit a's open connection still is.
	other, err := dial("circuit-b")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := joinOver(other, "J5circuitBOOOOOO"); err != nil {
		t.Fatalf("another circuit: %v", err)
	}
	if gidB := lastCircuit(t, logPath); gidB == gidA {
		t.Fatalf("two SOCKS usernames came over one circuit %s", gidA)
	}
	if _, err := io.WriteString(keep, `{"type": 791, "line": ""}`+"\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = keep.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		line, err := keepR.ReadBytes('\n')
		if err != nil {
			t.Fatalf("the banned circuit's open connection: %v", err)
		}
		if env, err := wire.Decode(bytes.TrimRight(line, "\r\n")); err == nil && env.Type == wire.TypePeerlist {
			break
		}
	}
}

// joinOver joins as a taker named nick and waits for an accepting 795.
func joinOver(conn net.Conn, nick string) (*bufio.Reader, error) {
	return dirtest.TryHandshake(conn, nick, "NOT-SERVING-ONION", "regtest", nil, 30*time.Second)
}

// lastCircuit returns the circuit named by the server's last "proxy header" log line.
func lastCircuit(t *testing.T, logPath string) string {
	t.Helper()
	b, _ := os.ReadFile(logPath)
	var id string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `msg="proxy header"`) {
			_, id, _ = strings.Cut(line, " circuit=")
			id, _, _ = strings.Cut(id, " ")
		}
	}
	if id == "" {
		t.Fatalf("the server logged no proxy header with a circuit:\n%s", b)
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			t.Fatalf("circuit %q is not tor's numeric circuit ID: the header's source is outside fc00:dead:beef:4dad::/96", id)
		}
	}
	return id
}
