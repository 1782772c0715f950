// Package tor tests the directory end to end over a real, private Tor network: the
// server runs in tor_mode=control against the onion host of ../shared/tools/tor-testnet,
// and the conformance suite's core scenarios reach it through the Tor client's SOCKS5
// port. Then the whole Tor network restarts and the same onion must come back. Last, a
// second server behind a HiddenServiceDir onion with circuit-ID export checks that
// limits and bans follow the Tor circuit.
//
// It needs tor (Debian's package) and tor-testnet; without them it skips, except under
// CI=true, where it fails: CI installs tor.
package tor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/testdir"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// coreScenarios are the conformance tests run through Tor: maker and taker handshakes,
// pubmsg fan-out, privmsg with the location peerlist.
const coreScenarios = "^(TestHandshakeAccepted|TestPubmsgFanout|TestPrivmsgLocationPeerlist)$"

func prerequisites(t *testing.T) (testnet string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (CI must install it)", what)
		}
		t.Skipf("%s is missing", what)
	}
	if _, err := exec.LookPath("tor"); err != nil {
		missing("tor")
	}
	testnet = os.Getenv("TOR_TESTNET")
	if testnet == "" {
		testnet = filepath.Join(repoRoot(t), "..", "shared", "tools", "tor-testnet")
	}
	if _, err := os.Stat(testnet); err != nil {
		missing("tor-testnet (" + testnet + ")")
	}
	return testnet
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// network is a running tor-testnet.
type network struct {
	t    *testing.T
	bin  string
	dir  string
	vars map[string]string
}

func (n *network) run(args ...string) string {
	n.t.Helper()
	cmd := exec.Command(n.bin, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("TOR_TESTNET_OWNER_PID=%d", os.Getpid()))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		n.t.Fatalf("tor-testnet %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func (n *network) start() {
	n.t.Helper()
	out := n.run("start", n.dir)
	n.vars = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			n.vars[k] = strings.Trim(v, "'")
		}
	}
	for _, k := range []string{"TOR_SOCKS_PORT", "TOR_CONTROL_PORT", "TOR_CONTROL_PASSWORD", "TOR_HS_CONTROL_PORT", "TOR_HS_CONTROL_COOKIE_FILE"} {
		if n.vars[k] == "" {
			n.t.Fatalf("tor-testnet start printed no %s:\n%s", k, out)
		}
	}
}

// newnym makes the client forget failed descriptor and intro-point lookups.
func (n *network) newnym() {
	c, err := torctl.Dial(context.Background(), "tcp", "127.0.0.1:"+n.vars["TOR_CONTROL_PORT"])
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.Authenticate(torctl.Auth{Password: n.vars["TOR_CONTROL_PASSWORD"]}); err == nil {
		_, _ = c.Command("SIGNAL NEWNYM")
	}
}

// conformance runs the core scenarios against addr through the SOCKS port, retrying
// while the onion is not reachable yet.
func conformance(t *testing.T, n *network, addr string) {
	t.Helper()
	socks := "127.0.0.1:" + n.vars["TOR_SOCKS_PORT"]
	var out []byte
	var err error
	for attempt := 1; attempt <= 6; attempt++ {
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "test", "-count=1", "-v", "-run", coreScenarios, "./test/conformance/")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "JM_DIRECTORY_ADDR="+addr, "JM_DIRECTORY_SOCKS="+socks)
		out, err = cmd.CombinedOutput()
		if err == nil {
			break
		}
		t.Logf("attempt %d through Tor failed (%v); retrying after NEWNYM", attempt, err)
		n.newnym()
		time.Sleep(3 * time.Second)
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
}

// waitFile waits for a file to exist and returns its content.
func waitFile(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %v", path, d)
	return ""
}

func TestOverTor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Tor network (about a minute)")
	}
	testnet := prerequisites(t)
	work, err := os.MkdirTemp("", "jmtor") // short paths: tor's unix sockets
	if err != nil {
		t.Fatal(err)
	}
	n := &network{t: t, bin: testnet, dir: filepath.Join(work, "tn")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tor-testnet status:\n%s", statusOrErr(n))
		}
		_ = exec.Command(n.bin, "stop", n.dir).Run()
		_ = os.RemoveAll(work)
	})
	start := time.Now()
	n.start()
	t.Logf("Tor network ready in %v", time.Since(start).Round(time.Millisecond))

	bin := filepath.Join(work, "jm-directory-server")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/jm-directory-server")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(work, "data")
	logPath := filepath.Join(work, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), "DATA_DIR="+data, "PORT=0", "HEALTH_CHECK_PORT=0", "LOG_LEVEL=INFO",
		"TOR_MODE=control", "TOR_CONTROL_PORT="+n.vars["TOR_HS_CONTROL_PORT"],
		"TOR_COOKIE_FILE="+n.vars["TOR_HS_CONTROL_COOKIE_FILE"])
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server log:\n%s", b)
		}
	})

	location := waitFile(t, filepath.Join(data, "hostname"), 30*time.Second)
	if !strings.HasSuffix(location, ".onion:5222") {
		t.Fatalf("hostname file: %q", location)
	}
	waitLog(t, logPath, "onion published", 1, 30*time.Second)
	t.Logf("published %s after %v", location, time.Since(start).Round(time.Millisecond))
	conformance(t, n, location)
	t.Logf("core scenarios passed over Tor after %v", time.Since(start).Round(time.Millisecond))

	// Restart the whole Tor network: the control connection drops, the server
	// reconnects and publishes the same onion with its persistent key.
	n.run("stop", n.dir)
	waitLog(t, logPath, "onion not published", 1, 30*time.Second)
	n.start()
	waitLog(t, logPath, "onion published", 2, 90*time.Second)
	if again := waitFile(t, filepath.Join(data, "hostname"), time.Second); again != location {
		t.Fatalf("after the restart the onion is %s, was %s", again, location)
	}
	conformance(t, n, location)
	t.Logf("reconnected and passed again after %v", time.Since(start).Round(time.Millisecond))

	circuits(t, n, bin, work)
	t.Logf("per-circuit bans checked after %v", time.Since(start).Round(time.Millisecond))
}

// circuits checks per-circuit identity over real Tor: a second server runs in
// tor_mode=external with tor_proxy_protocol behind a HiddenServiceDir onion on the onion
// host with HiddenServiceExportCircuitID haproxy (set with SETCONF, as an operator's
// torrc would). Connections over one circuit (one SOCKS isolation username) share an
// identity: an abusive one gets the circuit banned (circuit_ban_after=1), and a new
// connection over it is refused, while the circuit's open connection stays and another
// circuit is served.
func circuits(t *testing.T, n *network, bin, work string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	hsDir := filepath.Join(work, "hs")
	ctl, err := torctl.Dial(context.Background(), "tcp", "127.0.0.1:"+n.vars["TOR_HS_CONTROL_PORT"])
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if _, err := ctl.Authenticate(torctl.Auth{Password: n.vars["TOR_CONTROL_PASSWORD"]}); err != nil {
		t.Fatal(err)
	}
	if r, err := ctl.Command(fmt.Sprintf("SETCONF HiddenServiceDir=%s HiddenServicePort=%s HiddenServiceExportCircuitID=haproxy",
		torctl.Quote(hsDir), torctl.Quote(fmt.Sprintf("5222 127.0.0.1:%d", port)))); err != nil {
		t.Fatalf("SETCONF hidden service: %v %v", r, err)
	}
	onion := waitFile(t, filepath.Join(hsDir, "hostname"), 30*time.Second)

	logPath := filepath.Join(work, "server2.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), "DATA_DIR="+filepath.Join(work, "data2"), fmt.Sprintf("PORT=%d", port),
		"HEALTH_CHECK_PORT=0", "LOG_LEVEL=DEBUG", "TOR_MODE=external", "TOR_HIDDEN_SERVICE_DIR="+hsDir,
		"TOR_PROXY_PROTOCOL=true", "CIRCUIT_BAN_AFTER=1")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server (external, proxy protocol) log:\n%s", b)
		}
	}()
	addr := onion + ":5222"
	socks := "127.0.0.1:" + n.vars["TOR_SOCKS_PORT"]
	dial := func(circuit string) (net.Conn, error) {
		d, err := proxy.SOCKS5("tcp", socks, &proxy.Auth{User: circuit, Password: "x"}, proxy.Direct)
		if err != nil {
			return nil, err
		}
		return d.Dial("tcp", addr)
	}
	// The first connection waits for the descriptor to propagate.
	var keep net.Conn
	var keepR *bufio.Reader
	for attempt := 1; ; attempt++ {
		keep, err = dial("circuit-a")
		if err == nil {
			keepR, err = joinOver(keep, "J5circuitAkeepOO")
			if err == nil {
				break
			}
			keep.Close()
		}
		if attempt == 8 {
			t.Fatalf("joining %s over Tor: %v", addr, err)
		}
		t.Logf("attempt %d to reach the external onion failed (%v); retrying after NEWNYM", attempt, err)
		n.newnym()
		time.Sleep(3 * time.Second)
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
	waitLog(t, logPath, `reason="circuit banned"`, 1, 10*time.Second)

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
	return testdir.TryHandshake(conn, nick, "NOT-SERVING-ONION", "regtest", nil, 30*time.Second)
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

func statusOrErr(n *network) string {
	out, err := exec.Command(n.bin, "status", n.dir).CombinedOutput()
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// waitLog waits until the server log holds at least count lines containing s.
func waitLog(t *testing.T, path, s string, count int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), s) >= count {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("server log has fewer than %d %q lines after %v:\n%s", count, s, d, b)
}
