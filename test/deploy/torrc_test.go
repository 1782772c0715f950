package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

const torrcPath = "deploy/docker/tor/conf/torrc"

// torOption is one "Key value" line of a torrc.
type torOption struct {
	Key, Value string
	Line       int
	Commented  bool // the line before it is a comment
}

// parseTorrc reads torrc lines: "#" comments, blank lines and "Key value" options; a
// trailing backslash continues a line.
func parseTorrc(text string) ([]torOption, error) {
	var opts []torOption
	prevComment := false
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "":
			prevComment = false
			continue
		case strings.HasPrefix(line, "#"):
			prevComment = true
			continue
		}
		key, value, _ := strings.Cut(line, " ")
		if strings.ContainsAny(key, "\t") {
			key, value, _ = strings.Cut(line, "\t")
		}
		if key == "" {
			return nil, fmt.Errorf("line %d: no option name", n)
		}
		opts = append(opts, torOption{Key: key, Value: strings.TrimSpace(value), Line: n, Commented: prevComment})
		prevComment = false
	}
	return opts, nil
}

// torrcOptions parses the committed torrc.
func torrcOptions(t *testing.T) []torOption {
	t.Helper()
	opts, err := parseTorrc(readRepoFile(t, torrcPath))
	if err != nil {
		t.Fatalf("%s: %v", torrcPath, err)
	}
	return opts
}

// torrcValues returns every value of the option key (case-insensitive, as tor reads it).
func torrcValues(opts []torOption, key string) []string {
	var out []string
	for _, o := range opts {
		if strings.EqualFold(o.Key, key) {
			out = append(out, o.Value)
		}
	}
	return out
}

// hiddenServicePort splits torrc's single "HiddenServicePort VIRT TARGET".
func hiddenServicePort(t *testing.T, opts []torOption) (virt, host, port string) {
	t.Helper()
	vals := torrcValues(opts, "HiddenServicePort")
	if len(vals) != 1 {
		t.Fatalf("torrc: want exactly one HiddenServicePort, have %q", vals)
	}
	f := strings.Fields(vals[0])
	if len(f) != 2 {
		t.Fatalf("torrc: HiddenServicePort %q: want \"VIRTPORT HOST:PORT\"", vals[0])
	}
	i := strings.LastIndex(f[1], ":")
	if i < 0 {
		t.Fatalf("torrc: HiddenServicePort target %q has no port", f[1])
	}
	return f[0], f[1][:i], f[1][i+1:]
}

// TestTorrcOptions checks that the torrc has every option the deployment relies on, with
// the expected values, once each, and a comment above each.
func TestTorrcOptions(t *testing.T) {
	opts := torrcOptions(t)
	want := []struct{ key, value string }{
		{"SocksPort", ""},     // any value; TestComposeSelfProbeSOCKS checks it
		{"DataDirectory", ""}, // any value; checked below
		{"HiddenServiceDir", ""},
		{"HiddenServiceVersion", "3"},
		{"HiddenServiceMaxStreams", ""},
		{"HiddenServiceMaxStreamsCloseCircuit", "1"},
		{"HiddenServiceEnableIntroDoSDefense", "1"},
		{"HiddenServiceEnableIntroDoSRatePerSec", ""},
		{"HiddenServiceEnableIntroDoSBurstPerSec", ""},
		{"HiddenServicePoWDefensesEnabled", "1"},
		{"HiddenServicePoWQueueRate", ""},
		{"HiddenServicePoWQueueBurst", ""},
	}
	for _, w := range want {
		vals := torrcValues(opts, w.key)
		switch {
		case len(vals) != 1:
			t.Errorf("torrc: %s appears %d times, want once", w.key, len(vals))
		case w.value != "" && vals[0] != w.value:
			t.Errorf("torrc: %s %s, want %s", w.key, vals[0], w.value)
		}
	}

	num := func(key string, lo, hi int) int {
		vals := torrcValues(opts, key)
		if len(vals) != 1 {
			return 0
		}
		var n int
		if _, err := fmt.Sscan(vals[0], &n); err != nil || n < lo || n > hi {
			t.Errorf("torrc: %s %q, want an integer in %d..%d", key, vals[0], lo, hi)
		}
		return n
	}
	// Streams per circuit: a directory peer needs one; leave a little room, not hundreds.
	num("HiddenServiceMaxStreams", 1, 64)
	rate := num("HiddenServiceEnableIntroDoSRatePerSec", 1, 10000)
	if burst := num("HiddenServiceEnableIntroDoSBurstPerSec", 1, 100000); burst < rate {
		t.Errorf("torrc: intro DoS burst %d < rate %d", burst, rate)
	}
	qrate := num("HiddenServicePoWQueueRate", 1, 10000)
	if qburst := num("HiddenServicePoWQueueBurst", 1, 100000); qburst < qrate {
		t.Errorf("torrc: PoW queue burst %d < rate %d", qburst, qrate)
	}

	virt, _, port := hiddenServicePort(t, opts)
	if virt != "5222" || port != "5222" {
		t.Errorf("torrc: HiddenServicePort %s -> port %s, want 5222 -> 5222", virt, port)
	}

	// Only the onion: no control port or socket, no SOCKS, no relaying.
	for _, key := range []string{"ControlPort", "ControlSocket", "ORPort", "DirPort", "SocksListenAddress"} {
		for _, v := range torrcValues(opts, key) {
			if v != "0" {
				t.Errorf("torrc: %s %s: this tor needs none", key, v)
			}
		}
	}

	// The HiddenServiceDir lies inside the DataDirectory: compose mounts one host
	// directory (./tor/data) for both.
	dd, hs := torrcValues(opts, "DataDirectory"), torrcValues(opts, "HiddenServiceDir")
	if len(dd) == 1 && len(hs) == 1 && !strings.HasPrefix(path.Clean(hs[0]), path.Clean(dd[0])+"/") {
		t.Errorf("torrc: HiddenServiceDir %s is not inside DataDirectory %s", hs[0], dd[0])
	}
	// HiddenService* options apply to the HiddenServiceDir before them.
	hsDirLine := 0
	for _, o := range opts {
		if strings.EqualFold(o.Key, "HiddenServiceDir") {
			hsDirLine = o.Line
		}
	}
	for _, o := range opts {
		if strings.HasPrefix(strings.ToLower(o.Key), "hiddenservice") && o.Line < hsDirLine {
			t.Errorf("torrc line %d: %s comes before HiddenServiceDir", o.Line, o.Key)
		}
		if !o.Commented {
			t.Errorf("torrc line %d: %s has no comment line above it saying what it is for", o.Line, o.Key)
		}
	}
}

// testTorrc writes a copy of the committed torrc under dir: DataDirectory and
// HiddenServiceDir moved into dir (same layout), a host name in HiddenServicePort
// replaced by 127.0.0.1 (tor resolves names while parsing, and this machine has no
// Docker DNS; the committed file uses an address anyway), plus extra lines. It returns
// the copy's path and the new HiddenServiceDir.
func testTorrc(t *testing.T, dir string, extra ...string) (torrc, hsDir string) {
	t.Helper()
	opts := torrcOptions(t)
	dataDir := torrcValues(opts, "DataDirectory")[0]
	newData := filepath.Join(dir, "tor", "data")
	var b strings.Builder
	for _, o := range opts {
		v := o.Value
		switch strings.ToLower(o.Key) {
		case "datadirectory":
			v = newData
		case "hiddenservicedir":
			rel := strings.TrimPrefix(path.Clean(v), path.Clean(dataDir)+"/")
			hsDir = filepath.Join(newData, filepath.FromSlash(rel))
			v = hsDir
		case "hiddenserviceport":
			f := strings.Fields(v)
			if len(f) == 2 {
				i := strings.LastIndex(f[1], ":")
				if _, err := netip.ParseAddr(f[1][:max(i, 0)]); i > 0 && err != nil {
					f[1] = "127.0.0.1" + f[1][i:]
				}
				v = f[0] + " " + f[1]
			}
		}
		fmt.Fprintf(&b, "%s %s\n", o.Key, v)
	}
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	// As setup.sh does: tor makes HiddenServiceDir but not its parents.
	if err := os.MkdirAll(hsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	torrc = filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return torrc, hsDir
}

// needTor returns tor's path; without tor it skips, or fails under CI (.ci/run installs it).
func needTor(t *testing.T) string {
	t.Helper()
	return testkit.NeedTool(t, "tor")
}

// verifyTorrc runs tor --verify-config on a torrc and returns its output and error.
func verifyTorrc(t *testing.T, bin, torrc string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--verify-config", "-f", torrc, "--defaults-torrc", os.DevNull).CombinedOutput()
	return string(out), err
}

// TestTorVerifyConfig runs tor --verify-config on the torrc (paths moved to a temporary
// directory). Any warning fails the test, except tor's note that it runs as root.
func TestTorVerifyConfig(t *testing.T) {
	bin := needTor(t)

	// First make sure a broken torrc is caught, so that a pass below means something.
	bad, _ := testTorrc(t, t.TempDir(), "HiddenServiceNoSuchOption 1")
	if out, err := verifyTorrc(t, bin, bad); err == nil {
		t.Fatalf("tor --verify-config accepted an unknown option; cannot validate with it:\n%s", out)
	}

	torrc, _ := testTorrc(t, t.TempDir())
	out, err := verifyTorrc(t, bin, torrc)
	if err != nil || !strings.Contains(out, "Configuration was valid") {
		t.Fatalf("tor --verify-config rejects the torrc (%v):\n%s", err, out)
	}
	for line := range strings.Lines(out) {
		if (strings.Contains(line, "[warn]") || strings.Contains(line, "[err]")) &&
			!strings.Contains(line, "You are running Tor as root") {
			t.Errorf("tor --verify-config: %s", strings.TrimSpace(line))
		}
	}
}

// TestTorWritesHostname starts tor offline (DisableNetwork) on the torrc and the
// directories setup.sh makes, as uid 1000 when the test runs as root, and checks that tor
// writes a v3 onion hostname there that uid 1000 (the directory container) can read.
func TestTorWritesHostname(t *testing.T) {
	bin := needTor(t)
	dir := t.TempDir()
	asUID1000 := os.Geteuid() == 0
	if asUID1000 {
		// uid 1000 must reach dir; t.TempDir's parents are 0700.
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := runSetup(t, dir, nil); err != nil {
			t.Fatalf("setup.sh: %v\n%s", err, out)
		}
	}
	torrc, hsDir := testTorrc(t, dir, "DisableNetwork 1")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", torrc, "--defaults-torrc", os.DevNull)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if asUID1000 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()

	hostname := filepath.Join(hsDir, "hostname")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(hostname); err == nil && fi.Size() > 0 {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("tor exited (%v) without writing %s:\n%s", err, hostname, out.String())
		case <-ctx.Done():
			t.Fatalf("tor wrote no %s in 15 s:\n%s", hostname, out.String())
		case <-tick.C:
		}
	}
	b, err := os.ReadFile(hostname)
	if err != nil {
		t.Fatal(err)
	}
	if onion := strings.TrimSpace(string(b)); !jm.ValidOnionV3(onion) {
		t.Errorf("%s holds %q, not a v3 onion", hostname, onion)
	}
	if asUID1000 {
		fi, err := os.Stat(hostname)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 {
			t.Errorf("%s is owned by uid %d, want 1000 (readable by the directory container)", hostname, st.Uid)
		}
	}
}
