package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
)

// buildServer compiles the command once per test binary.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jm-directory-server")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// logLines streams the server's stderr lines into a channel.
func logLines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

func waitLog(t *testing.T, ch <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("log ended before %v", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no log line matching %v", re)
		}
	}
}

// TestLifecycle runs the real binary with no configuration but an empty home and free
// ports: it must announce its address and directory_nodes entry, dump status on SIGUSR1,
// reload config.toml on SIGHUP without dropping peers, and exit 0 within 5 s of SIGTERM
// with peers connected.
func TestLifecycle(t *testing.T) {
	bin := buildServer(t)
	home := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "PORT=0", "HEALTH_CHECK_PORT=0", "PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logs := logLines(stderr)

	m := waitLog(t, logs, regexp.MustCompile(`msg="jm-directory-server listening" addr=(\S+) network=regtest nick=(J5\w{14}) directory_nodes=(\S+)`))
	addr, entry := m[1], m[3]
	if entry != addr {
		t.Errorf("directory_nodes entry %q, want the listen address %q", entry, addr)
	}
	if _, err := os.Stat(filepath.Join(home, ".joinmarket-ng", "directory-nick.key")); err != nil {
		t.Errorf("key not created in the default data dir: %v", err)
	}

	// The server runs in its own process here: a Target for its address.
	tg := &dirtest.Target{Addr: addr, Network: "regtest"}
	tg.Join(t, dirtest.PeerSpec{Nick: "J55uwMUczBgZV44z"})

	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	st := waitLog(t, logs, regexp.MustCompile(`msg=status network=regtest .*connected=(\d+) .*passive=(\d+) active=(\d+)`))
	if st[1] != "1" || st[2] != "1" || st[3] != "0" {
		t.Errorf("status counts connected=%s passive=%s active=%s, want 1 1 0", st[1], st[2], st[3])
	}

	// SIGHUP: a new motd and heartbeat setting from config.toml apply without dropping the peer.
	toml := "[directory_server]\nmotd = \"Reloaded motd\"\nheartbeat_sweep_interval = 30\n"
	if err := os.WriteFile(filepath.Join(home, ".joinmarket-ng", "config.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, regexp.MustCompile(`msg="reload: setting changed" key=heartbeat_sweep_interval old=60s new=30s`))
	if motd, _ := tg.Join(t, dirtest.PeerSpec{Nick: "J58w4tpYN3zRBwC9"}).DN["motd"].(string); !strings.HasPrefix(motd, "Reloaded motd\n") {
		t.Fatalf("motd after reload: %q", motd)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if st := waitLog(t, logs, regexp.MustCompile(`msg=status network=regtest .*connected=(\d+)`)); st[1] != "2" {
		t.Errorf("after reload connected=%s, want 2 (no peer dropped)", st[1])
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range logs { // drain so the process never blocks on stderr
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("shutdown took %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestInvalidConfig: one clear line naming the key and accepted values, non-zero exit.
func TestInvalidConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("MAX_PEERS", "lots")
	var out, errOut strings.Builder
	code := run(nil, &out, &errOut)
	if code == 0 {
		t.Fatal("exit 0 on invalid configuration")
	}
	msg := strings.TrimSpace(errOut.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "MAX_PEERS") || !strings.Contains(msg, "accepted values") {
		t.Fatalf("error message %q", msg)
	}
}

// TestCheckConfig prints the effective configuration and exits 0.
func TestCheckConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("NETWORK", "signet")
	var out, errOut strings.Builder
	if code := run([]string{"--check-config", "--port", "6000"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{`network = "signet"  (environment)`, `port = 6000  (flag)`, "configuration OK"} {
		if !hasLine(out.String(), want) {
			t.Errorf("output lacks the line %q:\n%s", want, out.String())
		}
	}
}

// hasLine reports whether text holds want as one whole line (not as part of a longer
// one: "port = 6000" must not match "health_check_port = 6000").
func hasLine(text, want string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == want {
			return true
		}
	}
	return false
}

// When the ops port is taken the server stops with one line naming HEALTH_CHECK_PORT
// and, for the default 8080, the reference start-dn.py that also serves there.
func TestOpsPortTaken(t *testing.T) {
	if h := opsPortHint(config.Default()); !strings.Contains(h, "HEALTH_CHECK_PORT") || !strings.Contains(h, "start-dn.py") {
		t.Errorf("hint for the default port: %q", h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var stderr strings.Builder
	code := run([]string{"--data-dir", t.TempDir(), "--port", "0", "--health-check-port", port}, &strings.Builder{}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "cannot listen for ops") ||
		!strings.Contains(stderr.String(), "choose another with HEALTH_CHECK_PORT") {
		t.Fatalf("exit %d, log:\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "start-dn.py") {
		t.Errorf("the start-dn.py remark for a port other than 8080:\n%s", stderr.String())
	}
}
