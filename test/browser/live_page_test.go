package browser

// Browser route: github.com/chromedp/chromedp, which the module proxy serves with its
// two dependencies (cdproto, go-json-experiment/json); it starts Chromium itself and
// speaks the DevTools protocol over a pipe, so neither chromedriver nor a websocket
// client is needed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/jm"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/ops"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

const (
	// sampleEvery is the ops sampling interval: the page gets an update this often.
	sampleEvery = 200 * time.Millisecond
	// waitFor bounds every wait for a page state (dirtest.Timeout bounds the protocol's).
	// Generous for the race detector on a shared machine; a passing run never comes close.
	waitFor = 15 * time.Second
	// testToken is the bearer token of the token-protected setup.
	testToken = "0123456789abcdef0123"
)

// TestLivePageFollowsPeers opens the live page of an open (loopback) ops surface and
// checks that its numbers follow real peers joining and leaving the directory.
func TestLivePageFollowsPeers(t *testing.T) {
	exe := chromium(t)
	d := startDirectory(t, ops.Options{Addr: "127.0.0.1:0"})
	if d.ops.TokenRequired() {
		t.Fatal("a loopback ops surface requires a token")
	}
	tab := openBrowser(t, exe)
	navigate(t, tab, d.pageURL)

	st := waitState(t, tab, "the empty directory", func(s pageState) bool {
		return s.counts() == "0/0/0" && s.Health == "healthy"
	})
	if st.HealthClass != "ok" || st.Network != "regtest" || st.Version != "v"+server.Version {
		t.Errorf("header: health class %q, network %q, version %q; want ok, regtest, v%s",
			st.HealthClass, st.Network, st.Version, server.Version)
	}
	if st.LoginShown || !st.MainShown {
		t.Errorf("open page: login form shown %v, main shown %v; want false, true", st.LoginShown, st.MainShown)
	}
	if want := []string{"no tor (tor_mode none)"}; !slices.Equal(st.Tor, want) {
		t.Errorf("onion and self-probe panel without tor: %q, want %q", st.Tor, want)
	}
	if st.NickAuth != "verified 0 of 0" {
		t.Errorf("nick auth of the empty directory: %q, want %q", st.NickAuth, "verified 0 of 0")
	}

	var makers []*peer
	for range 3 {
		makers = append(makers, d.join(t, true))
	}
	for range 2 {
		d.join(t, false)
	}
	waitCounts(t, tab, "3 makers and 2 takers connected", "5/3/2")

	// A taker that authenticates its nick (JMP-0005): the page shows the verified share,
	// as the server counts it.
	if _, code := d.dir.Target().JoinAuth(t, dirtest.AuthSpec{}); code != nickauth.CodeOK {
		t.Fatalf("nick authentication: %s, want ok", code)
	}
	na := d.dir.Srv.Status(false).NickAuth
	if na.Verified != 1 || na.Legacy != 5 {
		t.Fatalf("the server counts %d verified and %d legacy peers, want 1 and 5", na.Verified, na.Legacy)
	}
	share := fmt.Sprintf("verified %d of %d", na.Verified, na.Verified+na.Legacy)
	st = waitState(t, tab, "the verified share ("+share+")", func(s pageState) bool { return s.NickAuth == share })
	if st.counts() != "6/3/3" {
		t.Errorf("peers %s with the verified taker, want 6/3/3", st.counts())
	}
	saveScreenshot(t, tab, filepath.Join(os.TempDir(), "live-page.png"))

	makers[0].close()
	makers[1].close()
	st = waitCounts(t, tab, "2 makers gone", "4/1/3")
	if st.NickAuth != "verified 1 of 4" {
		t.Errorf("nick auth after the makers left: %q, want %q", st.NickAuth, "verified 1 of 4")
	}
	if st.Health != "healthy" || st.HealthClass != "ok" {
		t.Errorf("health after the makers left: %q (class %q), want healthy", st.Health, st.HealthClass)
	}

	// Reasons read as their labels: the two departures and a refused handshake.
	conn, err := net.Dial("tcp", d.dir.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dirtest.TryHandshake(conn, jm.NickFromPubKey(make([]byte, 33)), wire.NotServing, "mainnet", nil, dirtest.Timeout); err == nil {
		t.Fatal("a mainnet client was accepted by a regtest directory")
	}
	conn.Close()
	st = waitState(t, tab, "the departures and the rejection by reason", func(s pageState) bool {
		return slices.Contains(s.Reasons, "disconnect: client_closed 2") && slices.Contains(s.Reasons, "rejected: network 1")
	})
	if len(st.Recent) != 2 {
		t.Errorf("recent disconnects %q, want the 2 makers", st.Recent)
	}
	for _, r := range st.Recent {
		if !strings.HasSuffix(r, " maker client_closed") {
			t.Errorf("recent disconnect %q, want a maker's client_closed", r)
		}
	}
	saveScreenshot(t, tab, filepath.Join(t.TempDir(), "live-page-end.png"))
}

// TestLivePageShowsTor: with an onion and a self-probe (fixed states here: the test
// runs without tor), the page's panel shows the onion's publication and last upload and
// the self-probe's failures, last success, latency and last error; when the probe
// recovers, the panel follows.
func TestLivePageShowsTor(t *testing.T) {
	exe := chromium(t)
	d := startDirectory(t, ops.Options{Addr: "127.0.0.1:0"})
	uploaded := time.Now().Add(-3*time.Minute - 20*time.Second)
	succeeded := time.Now().Add(-41*time.Minute - 20*time.Second)
	d.ops.SetOnion(func() onion.Status {
		return onion.Status{Mode: "launch", Onion: "abc.onion", Published: true, PoW: true, TorVersion: "0.4.9.11",
			LastUpload: &uploaded, Uploads: 8}
	})
	var mu sync.Mutex
	sp := selfprobe.Status{Running: true, Probes: 20, Failures: 4, Consecutive: 3, LastSuccess: &succeeded,
		LastError: "no answer within 1m0s: EOF", ConnectMs: 1234, HandshakeMs: 312, UnhealthyAfterSeconds: 1800}
	d.ops.SetSelfProbe(func() selfprobe.Status {
		mu.Lock()
		defer mu.Unlock()
		return sp
	})
	tab := openBrowser(t, exe)
	navigate(t, tab, d.pageURL)

	failing := []string{
		"onion published (tor_mode launch)",
		"last upload 3m ago (8 uploads)",
		"self-probe FAILING: 3 in a row (unhealthy)",
		"last success 41m ago",
		"latency connect 1.2 s, handshake 0.3 s",
		"probes 20, 4 failed, 3 in a row",
		"last error no answer within 1m0s: EOF",
	}
	waitState(t, tab, "the failing self-probe", func(s pageState) bool { return slices.Equal(s.Tor, failing) })
	saveScreenshot(t, tab, filepath.Join(t.TempDir(), "live-page-tor.png"))

	mu.Lock()
	recovered := time.Now().Add(-2*time.Minute - 20*time.Second)
	sp.Probes, sp.Consecutive, sp.LastSuccess, sp.LastError, sp.Healthy = 21, 0, &recovered, "", true
	mu.Unlock()
	ok := append(slices.Clone(failing[:2]),
		"self-probe ok",
		"last success 2m ago",
		"latency connect 1.2 s, handshake 0.3 s",
		"probes 21, 4 failed, 0 in a row",
	)
	waitState(t, tab, "the self-probe recovered", func(s pageState) bool { return slices.Equal(s.Tor, ok) })
}

// TestLivePageNeedsToken opens the live page of a token-protected ops surface: without
// the token it shows the login form and no numbers; with the token in the URL
// fragment, or typed into the form, it shows the live numbers.
func TestLivePageNeedsToken(t *testing.T) {
	exe := chromium(t)
	d := startDirectory(t, ops.Options{Addr: "0.0.0.0:0", Token: testToken})
	if !d.ops.TokenRequired() {
		t.Fatal("a non-loopback ops surface requires no token")
	}
	d.join(t, true)
	d.join(t, true)
	d.join(t, false)

	// Without the token: the login form, and none of the numbers.
	locked := openBrowser(t, exe)
	navigate(t, locked, d.pageURL)
	st := waitState(t, locked, "the login form", func(s pageState) bool { return s.LoginShown })
	if st.MainShown || st.Health != "token required" || st.HealthClass != "bad" {
		t.Errorf("without token: main shown %v, health %q (class %q); want false, %q (bad)",
			st.MainShown, st.Health, st.HealthClass, "token required")
	}
	if st.counts() != "–/–/–" || st.Network != "–" {
		t.Errorf("without token the page shows numbers: peers %s, network %q", st.counts(), st.Network)
	}

	// With the token in the fragment, in a tab of its own (a fragment-only change in
	// the same tab would not reload the page).
	unlocked := newTab(t, locked)
	navigate(t, unlocked, d.pageURL+"#token="+testToken)
	st = waitCounts(t, unlocked, "the token in the URL fragment", "3/2/1")
	if st.LoginShown || !st.MainShown || st.Health != "healthy" || st.Network != "regtest" {
		t.Errorf("with token: login shown %v, main shown %v, health %q, network %q",
			st.LoginShown, st.MainShown, st.Health, st.Network)
	}

	// The login form of the first tab opens the page too.
	if err := chromedp.Do(locked,
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Click(chromedp.CSS("#login button")),
	); err != nil {
		t.Fatalf("submitting the login form: %v", err)
	}
	st = waitCounts(t, locked, "the token typed into the login form", "3/2/1")
	if st.LoginShown || !st.MainShown {
		t.Errorf("after login: login shown %v, main shown %v; want false, true", st.LoginShown, st.MainShown)
	}
	saveScreenshot(t, locked, filepath.Join(t.TempDir(), "live-page-token.png"))
}

// chromium returns the Chromium to drive, or skips (fails under CI=true) without one.
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("JM_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (JM_CHROMIUM, /usr/bin/chromium, chromium, chromium-browser); CI must install it")
	}
	t.Skip("no Chromium found (JM_CHROMIUM, /usr/bin/chromium, chromium, chromium-browser); install Debian's chromium to run")
	return ""
}

// directory is an in-process directory with its ops surface on an httptest server.
type directory struct {
	dir     *dirtest.Dir
	ops     *ops.Ops
	pageURL string // the live page
}

func startDirectory(t *testing.T, opt ops.Options) *directory {
	t.Helper()
	log := dirtest.Logger(t, slog.LevelWarn)
	d := dirtest.Start(t, nil, log)
	op, err := ops.New(d.Srv, opt, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(op.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections() // the page's event stream never ends by itself
		hs.Close()
	})
	ran := make(chan struct{})
	go func() { op.Run(t.Context(), sampleEvery); close(ran) }()
	t.Cleanup(func() { <-ran })
	return &directory{dir: d, ops: op, pageURL: hs.URL + "/"}
}

// peer is a JoinMarket peer connected to the directory over TCP.
type peer struct {
	nick    string
	conn    net.Conn
	drained chan struct{}
}

// join connects a maker (serving a 127.0.0.1 location, as on regtest) or a taker
// (NOT-SERVING-ONION), completes the handshake as the reference client does and keeps
// reading whatever the directory sends, until the peer is closed.
func (d *directory) join(t *testing.T, maker bool) *peer {
	t.Helper()
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	nick := jm.NickFromPubKey(k.PubKey().SerializeCompressed())
	location := wire.NotServing
	if maker {
		// A real port for the maker's location; the directory never dials it here.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		location = l.Addr().String()
	}
	conn, br := d.dir.Join(t, nick, location, nil)
	p := &peer{nick: nick, conn: conn, drained: make(chan struct{})}
	t.Cleanup(p.close)
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(p.drained)
	}()
	return p
}

// close disconnects the peer (idempotent).
func (p *peer) close() {
	p.conn.Close()
	<-p.drained
}

// openBrowser starts a headless Chromium with a fresh profile and returns the context
// of its first tab. The flags keep Chromium off the network it would otherwise try.
func openBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "jm-live-page-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1000),
	)
	// A bound on the whole browser session, so that nothing can hang the test run.
	root, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for Chromium to exit
		stop()
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Do(tab); err != nil { // launch now, so a failure is reported as one
		t.Fatalf("starting %s: %v", exe, err)
	}
	return tab
}

// newTab opens another tab in the same browser.
func newTab(t *testing.T, tab context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(tab)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return ctx
}

func navigate(t *testing.T, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

// pageState is what the live page shows, read from its DOM.
type pageState struct {
	Total       string   `json:"total"`
	Makers      string   `json:"makers"`
	Takers      string   `json:"takers"`
	Health      string   `json:"health"`
	HealthClass string   `json:"healthClass"`
	Network     string   `json:"network"`
	Version     string   `json:"version"`
	LoginShown  bool     `json:"loginShown"`
	MainShown   bool     `json:"mainShown"`
	Reasons     []string `json:"reasons"`  // rows of the by-reason table, cells joined by a space
	Recent      []string `json:"recent"`   // rows of the recent-disconnects table
	Tor         []string `json:"tor"`      // rows of the onion and self-probe panel
	NickAuth    string   `json:"nickAuth"` // the verified share of the peers, e.g. "verified 1 of 6"
}

// counts is "total/makers/takers" as the page shows them.
func (s pageState) counts() string { return s.Total + "/" + s.Makers + "/" + s.Takers }

const readState = `(() => {
  const el = (id) => document.getElementById(id);
  const text = (id) => el(id) ? el(id).textContent.trim() : "";
  const shown = (id) => !!el(id) && getComputedStyle(el(id)).display !== "none";
  const rows = (id) => el(id) ? [...el(id).rows].map((r) => [...r.cells].map((c) => c.textContent.trim()).join(" ").trim()) : [];
  return {
    total: text("peers-total"), makers: text("peers-makers"), takers: text("peers-takers"),
    health: text("health"), healthClass: el("health") ? el("health").className : "",
    network: text("network"), version: text("version"),
    loginShown: shown("login"), mainShown: shown("main"),
    reasons: rows("reasons"), recent: rows("recent"), tor: rows("tor"), nickAuth: text("nick-auth"),
  };
})()`

// waitState polls the page's DOM until ok holds, failing the test after waitFor with the
// last state seen.
func waitState(t *testing.T, tab context.Context, what string, ok func(pageState) bool) pageState {
	t.Helper()
	start := time.Now()
	var last pageState
	var lastErr error
	found := testkit.Poll(waitFor, func() bool {
		// One read may take at most the rest of the wait and a second: a hung tab
		// cannot hold the test up for longer than that.
		ctx, cancel := context.WithTimeout(tab, max(waitFor-time.Since(start), 0)+time.Second)
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readState))
		cancel()
		if err != nil {
			lastErr = err
			if errors.Is(tab.Err(), context.Canceled) || errors.Is(tab.Err(), context.DeadlineExceeded) {
				t.Fatalf("waiting for %s: browser gone: %v", what, err)
			}
			return false
		}
		last, lastErr = st, nil
		return ok(st)
	})
	if !found {
		t.Fatalf("page never showed %s within %v; last state %+v (read error: %v)", what, waitFor, last, lastErr)
	}
	t.Logf("page shows %s after %v: peers %s, health %q", what, time.Since(start).Round(time.Millisecond), last.counts(), last.Health)
	return last
}

// waitCounts waits until the page shows total/makers/takers, e.g. "5/3/2".
func waitCounts(t *testing.T, tab context.Context, what, counts string) pageState {
	t.Helper()
	return waitState(t, tab, what+" ("+counts+")", func(s pageState) bool { return s.counts() == counts })
}

// saveScreenshot writes a PNG of the whole page to path.
func saveScreenshot(t *testing.T, tab context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("writing the screenshot: %v", err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
