package onion

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/onionkey"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// fakeTor is a control port that accepts NULL authentication and ADD_ONION; it can
// drop every open connection, as a restarting tor would.
type fakeTor struct {
	ln        net.Listener
	rejectPoW bool
	mu        sync.Mutex
	conns     []net.Conn
	adds      []string
	noUpload  bool     // do not report the descriptor uploaded after ADD_ONION
	socks     string   // the GETINFO net/listeners/socks answer
	events    []string // SETEVENTS commands
	ids       []string // service IDs added
}

func newFake(t *testing.T, rejectPoW bool) *fakeTor {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTor{ln: ln, rejectPoW: rejectPoW}
	t.Cleanup(func() { ln.Close(); f.dropAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeTor) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimSuffix(line, "\r\n")
		var reply string
		switch {
		case cmd == "PROTOCOLINFO 1":
			reply = "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n"
		case cmd == "AUTHENTICATE":
			reply = "250 OK\r\n"
		case strings.HasPrefix(cmd, "SETEVENTS "):
			f.mu.Lock()
			f.events = append(f.events, cmd)
			f.mu.Unlock()
			reply = "250 OK\r\n"
		case cmd == "GETINFO status/bootstrap-phase":
			reply = "250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=45 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\r\n250 OK\r\n"
		case cmd == "GETINFO net/listeners/socks":
			f.mu.Lock()
			reply = "250-net/listeners/socks=" + f.socks + "\r\n250 OK\r\n"
			f.mu.Unlock()
		case strings.HasPrefix(cmd, "ADD_ONION "):
			f.mu.Lock()
			f.adds = append(f.adds, cmd)
			f.mu.Unlock()
			if f.rejectPoW && strings.Contains(cmd, "PoWDefensesEnabled") {
				reply = "513 Invalid argument\r\n"
				break
			}
			blob := strings.Fields(cmd)[1]
			k, err := onionkey.ParseControlBlob(blob)
			if err != nil {
				reply = "513 Invalid key blob\r\n"
				break
			}
			reply = "250-ServiceID=" + k.Onion() + "\r\n250 OK\r\n"
			f.mu.Lock()
			f.ids = append(f.ids, k.Onion())
			if !f.noUpload {
				reply += "650 HS_DESC UPLOADED " + k.Onion() + " UNKNOWN $AAAA\r\n"
			}
			f.mu.Unlock()
		default:
			reply = "510 Unrecognized command\r\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}

func (f *fakeTor) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// event writes an event on every open connection.
func (f *fakeTor) event(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_, _ = c.Write([]byte("650 " + line + "\r\n"))
	}
}

func (f *fakeTor) addCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.adds)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waiting reports whether tor holds the onion and no upload has been reported.
func waiting(s *Service) bool {
	ok, why := s.Health()
	return !ok && strings.HasPrefix(why, "waiting for tor to upload")
}

// TestControlPublishesAndRepublishes: the onion is published with the persistent key,
// the hostname file names it, health follows the control connection, and after tor
// drops the connection the onion is published again with the same key.
func TestControlPublishesAndRepublishes(t *testing.T) {
	f := newFake(t, false)
	dir := t.TempDir()
	opts := Options{Mode: "control", ControlNetwork: "tcp", ControlAddr: f.ln.Addr().String(),
		KeyFile: filepath.Join(dir, "onion", "hs_ed25519_secret_key"), VirtualPort: 5222, PoW: true, DataDir: dir}
	s, err := New(opts, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if ok, reason := s.Health(); ok || reason == "" {
		t.Fatalf("healthy before publishing: %v %q", ok, reason)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, "127.0.0.1:5999") }()
	testkit.Eventually(t, "published", func() bool { ok, _ := s.Health(); return ok })

	loc := s.Location()
	if !strings.HasSuffix(loc, ".onion:5222") || len(loc) != 56+len(".onion:5222") {
		t.Fatalf("location %q", loc)
	}
	b, err := os.ReadFile(filepath.Join(dir, HostnameFile))
	if err != nil || string(b) != loc+"\n" {
		t.Fatalf("hostname file %q %v, want %q", b, err, loc)
	}
	f.mu.Lock()
	first := f.adds[0]
	f.mu.Unlock()
	if !strings.Contains(first, "PoWDefensesEnabled=1") || !strings.HasSuffix(first, "Port=5222,127.0.0.1:5999") || strings.Contains(first, "Detach") {
		t.Fatalf("ADD_ONION %q", first)
	}
	if st := s.Status(); !st.PoW || st.TorVersion != "0.4.9.11" || !st.Published {
		t.Fatalf("status %+v", st)
	}

	f.dropAll()
	testkit.Eventually(t, "unhealthy after the drop", func() bool { ok, _ := s.Health(); return !ok })
	testkit.Eventually(t, "published again", func() bool { ok, _ := s.Health(); return ok && f.addCount() >= 2 })
	f.mu.Lock()
	again := f.adds[1]
	f.mu.Unlock()
	if again != first {
		t.Fatalf("republished with a different command:\n%s\n%s", first, again)
	}

	// A restart loads the same key: same location.
	s2, err := New(opts, quiet())
	if err != nil || s2.Location() != loc {
		t.Fatalf("after restart: %q %v, want %q", s2.Location(), err, loc)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok, reason := s.Health(); ok || reason != "shutting down" {
		t.Fatalf("after stop: %v %q", ok, reason)
	}
}

func TestControlPoWRefusedFallsBack(t *testing.T) {
	f := newFake(t, true)
	dir := t.TempDir()
	s, err := New(Options{Mode: "control", ControlNetwork: "tcp", ControlAddr: f.ln.Addr().String(),
		KeyFile: filepath.Join(dir, "k"), VirtualPort: 5222, PoW: true, DataDir: dir}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, "127.0.0.1:1")
	testkit.Eventually(t, "published", func() bool { ok, _ := s.Health(); return ok })
	if st := s.Status(); st.PoW || f.addCount() != 2 {
		t.Fatalf("status %+v after %d ADD_ONIONs, want PoW off after one retry", st, f.addCount())
	}
}

func TestControlUnreachableIsUnhealthy(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens here
	dir := t.TempDir()
	s, err := New(Options{Mode: "control", ControlNetwork: "tcp", ControlAddr: addr,
		KeyFile: filepath.Join(dir, "k"), VirtualPort: 5222, DataDir: dir}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, "127.0.0.1:1")
	testkit.Eventually(t, "a control error", func() bool { _, r := s.Health(); return strings.HasPrefix(r, "tor control: ") })
}

func TestExternal(t *testing.T) {
	k, err := onionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	hs := t.TempDir()
	os.WriteFile(filepath.Join(hs, "hostname"), []byte(k.Onion()+".onion\n"), 0o600)
	s, err := New(Options{Mode: "external", HiddenServiceDir: hs, VirtualPort: 5222, DataDir: t.TempDir()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if s.Location() != k.Onion()+".onion:5222" {
		t.Fatalf("location %q", s.Location())
	}
	if ok, _ := s.Health(); !ok {
		t.Fatal("external onion not healthy")
	}
	os.WriteFile(filepath.Join(hs, "hostname"), []byte("notanonion.onion\n"), 0o600)
	if _, err := New(Options{Mode: "external", HiddenServiceDir: hs, VirtualPort: 5222}, quiet()); err == nil {
		t.Fatal("bad hostname accepted")
	}
	if _, err := New(Options{Mode: "external", HiddenServiceDir: t.TempDir()}, quiet()); err == nil {
		t.Fatal("missing hostname accepted")
	}
}

// TestLaunchRealTor starts a network-less tor, publishes through its control socket,
// and when tor is killed starts it again and publishes the same onion.
func TestLaunchRealTor(t *testing.T) {
	testkit.NeedTool(t, "tor")
	dir, err := os.MkdirTemp("", "jmo") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var restarts atomic.Int32
	s, err := New(Options{Mode: "launch", TorBinary: "tor", NetworkOff: true,
		KeyFile: filepath.Join(dir, "onion", "hs_ed25519_secret_key"), VirtualPort: 5222, PoW: true, DataDir: dir,
		TorRestarted: func() { restarts.Add(1) }}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, "127.0.0.1:5999") }()
	// Offline, the launched tor holds the onion but never uploads it: not published.
	testkit.Eventually(t, "onion added to the launched tor", func() bool { return waiting(s) })
	if st := s.Status(); !st.PoW || st.TorVersion == "" || st.Published || st.LastUpload != nil {
		t.Fatalf("status %+v", st)
	}
	sock := filepath.Join(dir, TorDir, SOCKSSocket)
	if st := s.Status(); st.SOCKS != "unix:"+sock {
		t.Fatalf("SOCKS %q, want the launched tor's socket", st.SOCKS)
	}
	// (An offline tor opens no listener but its control socket, so the SOCKS socket is
	// not there to see; tor accepted the torrc line, or it would not have started.)
	pidb, err := os.ReadFile(filepath.Join(dir, TorDir, "tor.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "tor exit seen", func() bool { _, why := s.Health(); return why == "tor exited" || strings.HasPrefix(why, "tor control") })
	testkit.Eventually(t, "onion added to the restarted tor", func() bool { return waiting(s) })
	pidb2, _ := os.ReadFile(filepath.Join(dir, TorDir, "tor.pid"))
	if strings.TrimSpace(string(pidb2)) == strconv.Itoa(pid) {
		t.Fatal("same tor pid after the kill")
	}
	if n := restarts.Load(); n != 1 {
		t.Fatalf("TorRestarted called %d times for one restart", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("launch mode did not stop")
	}
}

// TestLaunchExportsCircuitIDs: with ExportCircuitID the launched tor publishes the
// directory's key from a HiddenServiceDir in its torrc, with circuit-ID export and PoW;
// another key in the same data dir replaces the copy.
func TestLaunchExportsCircuitIDs(t *testing.T) {
	testkit.NeedTool(t, "tor")
	dir, err := os.MkdirTemp("", "jmo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func(keyFile string) *Service {
		s, err := New(Options{Mode: "launch", TorBinary: "tor", NetworkOff: true,
			KeyFile: keyFile, VirtualPort: 5222, PoW: true, DataDir: dir, ExportCircuitID: true}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, "127.0.0.1:5999") }()
		testkit.Eventually(t, "served from the torrc", func() bool { return waiting(s) })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := run(filepath.Join(dir, "onion", "hs_ed25519_secret_key"))
	if st := s.Status(); !st.PoW || st.TorVersion == "" {
		t.Fatalf("status %+v", st)
	}
	conf, err := os.ReadFile(filepath.Join(dir, TorDir, "torrc"))
	if err != nil {
		t.Fatal(err)
	}
	hs := filepath.Join(dir, TorDir, HSDir)
	for _, line := range []string{"HiddenServiceDir " + hs, "HiddenServicePort 5222 127.0.0.1:5999",
		"HiddenServiceExportCircuitID haproxy", "HiddenServicePoWDefensesEnabled 1"} {
		if !strings.Contains(string(conf), "\n"+line+"\n") {
			t.Errorf("torrc lacks %q:\n%s", line, conf)
		}
	}
	host, _ := os.ReadFile(filepath.Join(hs, "hostname"))
	if strings.TrimSpace(string(host)) != strings.TrimSuffix(s.Location(), ":5222") {
		t.Fatalf("tor serves %q, the directory is %s", host, s.Location())
	}
	if fi, err := os.Stat(hs); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("hidden service dir: %v %v", fi.Mode(), err)
	}
	// Another key: the copy is replaced and tor serves the new onion.
	other := run(filepath.Join(dir, "other_key"))
	if other.Location() == s.Location() {
		t.Fatal("two keys, one onion")
	}
	host, _ = os.ReadFile(filepath.Join(hs, "hostname"))
	if strings.TrimSpace(string(host)) != strings.TrimSuffix(other.Location(), ":5222") {
		t.Fatalf("after the key change tor serves %q, the directory is %s", host, other.Location())
	}
}

// TestPublishedOnlyAfterUpload: in control mode tor accepting ADD_ONION is not enough;
// the onion is published when tor reports its descriptor uploaded, and meanwhile the
// reason says what is awaited (bootstrap, a failed upload). Events are subscribed
// before ADD_ONION, and the SOCKS port comes from tor.
func TestPublishedOnlyAfterUpload(t *testing.T) {
	f := newFake(t, false)
	f.noUpload = true
	f.socks = `"unix:/run/tor/socks" "127.0.0.1:9050"`
	dir := t.TempDir()
	s, err := New(Options{Mode: "control", ControlNetwork: "tcp", ControlAddr: f.ln.Addr().String(),
		KeyFile: filepath.Join(dir, "k"), VirtualPort: 5222, DataDir: dir}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, "127.0.0.1:1")
	testkit.Eventually(t, "onion added", func() bool { return f.addCount() == 1 && waiting(s) })
	f.mu.Lock()
	events, id := f.events, f.ids[0]
	f.mu.Unlock()
	if len(events) != 1 || events[0] != "SETEVENTS HS_DESC STATUS_CLIENT" {
		t.Fatalf("subscriptions %q", events)
	}
	if _, why := s.Health(); !strings.Contains(why, "bootstrapped 45%: Loading relay descriptors") {
		t.Fatalf("reason %q lacks tor's bootstrap state", why)
	}
	if network, addr, _ := s.SOCKS(); network != "tcp" || addr != "127.0.0.1:9050" {
		t.Fatalf("SOCKS %s %s", network, addr)
	}
	f.event(`STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	f.event("HS_DESC FAILED " + id + " NO_AUTH $BBBB REASON=UPLOAD_REJECTED")
	testkit.Eventually(t, "the failed upload in the reason", func() bool {
		_, why := s.Health()
		return strings.HasSuffix(why, "HSDir; last upload failed: UPLOAD_REJECTED")
	})
	f.event("HS_DESC UPLOADED " + strings.Repeat("a", 56) + " UNKNOWN $CCCC") // another onion's
	f.event("HS_DESC UPLOAD " + id + " UNKNOWN $CCCC")                        // asked, not done
	before := time.Now()
	f.event("HS_DESC UPLOADED " + id + " UNKNOWN $CCCC")
	testkit.Eventually(t, "published after the upload", func() bool { ok, _ := s.Health(); return ok })
	st := s.Status()
	if st.Uploads != 1 || st.LastUpload == nil || st.LastUpload.Before(before) || st.UploadError != "" || st.SOCKS != "127.0.0.1:9050" {
		t.Fatalf("status %+v", st)
	}

	// A new control session: not published again until the new upload.
	f.dropAll()
	testkit.Eventually(t, "waiting again after the reconnection", func() bool { return f.addCount() == 2 && waiting(s) })
}

func TestPickSOCKS(t *testing.T) {
	for in, want := range map[string]string{
		`"127.0.0.1:9050"`:                   "tcp 127.0.0.1:9050",
		`"unix:/run/tor/socks" "[::1]:9150"`: "tcp [::1]:9150",
		`"unix:/run/tor/socks"`:              "unix /run/tor/socks",
		`"unix:/a b/socks" "unix:/c"`:        "unix /a b/socks",
		``:                                   " ",
		`"unterminated`:                      " ",
		`127.0.0.1:9050`:                     "tcp 127.0.0.1:9050",
	} {
		n, a := pickSOCKS(in)
		if got := n + " " + a; got != want {
			t.Errorf("pickSOCKS(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBootstrapSummary(t *testing.T) {
	for in, want := range map[string]string{
		`BOOTSTRAP PROGRESS=45 TAG=x SUMMARY="Loading relay descriptors"`: "bootstrapped 45%: Loading relay descriptors",
		`BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`:                  "",
		`CIRCUIT_ESTABLISHED`: "",
	} {
		if got := bootstrapSummary(in); got != want {
			t.Errorf("bootstrapSummary(%q) = %q, want %q", in, got, want)
		}
	}
}
