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
	"regexp"
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

// TestLivePageIdentityAndOrderbook: the page's header shows who the directory is, as
// the server says (nick, location, network, version, motd, tor mode); the plots have
// labelled time axes and span the data when there is less of it than the window, which
// the 5 min / 1 h toggle sets; the orderbook figures count live offers and makers with
// offers, and its table lists the offers test makers announce, sorted by cjfee on a click.
func TestLivePageIdentityAndOrderbook(t *testing.T) {
	exe := chromium(t)
	d := startDirectory(t, ops.Options{Addr: "127.0.0.1:0"})
	tab := openBrowser(t, exe)
	navigate(t, tab, d.pageURL)

	srv := d.dir.Srv
	want := srv.Status(false)
	if want.Location == "" {
		t.Fatal("the regtest directory advertises no location")
	}
	st := waitState(t, tab, "the identity header", func(s pageState) bool { return s.Nick != "–" && s.Nick != "" })
	if st.Nick != want.Nick || st.Location != want.Location || st.Network != want.Network ||
		st.Version != "v"+want.Version || st.TorMode != "none" {
		t.Errorf("header: nick %q, location %q, network %q, version %q, tor mode %q; want %q, %q, %q, %q, none",
			st.Nick, st.Location, st.Network, st.Version, st.TorMode, want.Nick, want.Location, want.Network, "v"+want.Version)
	}
	if st.MOTD != srv.MOTD() {
		t.Errorf("header motd %q, want %q", st.MOTD, srv.MOTD())
	}
	if wantTor := []string{"no tor (tor_mode none)"}; !slices.Equal(st.Tor, wantTor) {
		t.Errorf("tor state in the header: %q, want %q", st.Tor, wantTor)
	}

	// Makers announce offers as reference makers do (pubmsgs); a taker reads them, so
	// that they are known to have passed the directory.
	tg := d.dir.Target()
	taker := tg.Join(t, dirtest.RefTaker)
	announce := []struct {
		maker int
		body  string
	}{
		{0, "sw0reloffer 0 27300 1000000 0 0.0002"},
		{0, "sw0absoffer 1 100000 50000000 0 250"},
		{1, "sw0reloffer 0 50000 700000000 0 0.00015"},
		{2, "sw0reloffer 0 30000 2000000 500 0.0003"},
	}
	var makers []*dirtest.Client
	for range 3 {
		makers = append(makers, tg.Join(t, dirtest.RefMaker))
	}
	for _, a := range announce {
		m := makers[a.maker]
		m.Pubmsg(a.body)
		taker.ExpectLine(wire.TypePubmsg, m.Nick+"!PUBLIC!"+a.body)
	}
	st = waitState(t, tab, "4 offers from 3 makers in the orderbook table", func(s pageState) bool {
		return s.OBOffers == "4" && s.OBMakers == "3" && len(s.Book) == 4 && s.BookNote == "4 offers from 3 makers"
	})
	doc := srv.Orderbook().Document()
	if len(doc.Offers) != 4 {
		t.Fatalf("the server's orderbook has %d offers, want 4", len(doc.Offers))
	}
	var gotKeys, wantKeys []string
	for _, r := range st.Book {
		gotKeys = append(gotKeys, strings.Join(r[:7], " "))
	}
	for _, o := range doc.Offers {
		wantKeys = append(wantKeys, fmt.Sprintf("%s %d %s %d %d %d %s", o.Counterparty, o.OID, o.OrderType,
			o.MinSize, o.MaxSize, o.TxFee, strings.Trim(string(o.CJFee), `"`)))
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("orderbook table rows\n%q\nwant /orderbook.json's offers\n%q", gotKeys, wantKeys)
	}
	if !strings.HasPrefix(st.OfferMsgs, "offer messages seen: 4") {
		t.Errorf("offer messages %q, want a secondary count of 4", st.OfferMsgs)
	}

	// Sorting by cjfee: relative offers (by fee), then absolute ones; a second click
	// reverses the relative offers' order.
	cjfees := func(s pageState) string {
		var f []string
		for _, r := range s.Book {
			f = append(f, r[6])
		}
		return strings.Join(f, " ")
	}
	click := func(sel string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("clicking %s: %v", sel, err)
		}
	}
	click("#book th[data-key=cjfee]")
	waitState(t, tab, "the offers by cjfee, ascending", func(s pageState) bool {
		return cjfees(s) == "0.00015 0.0002 0.0003 250" && s.CJFeeSort == "ascending"
	})
	click("#book th[data-key=cjfee]")
	st = waitState(t, tab, "the offers by cjfee, descending", func(s pageState) bool {
		return cjfees(s) == "0.0003 0.0002 0.00015 250" && s.CJFeeSort == "descending"
	})
	if st.Book[0][0] != makers[2].Nick || st.Book[2][0] != makers[1].Nick {
		t.Errorf("rows by cjfee, descending: %q, want %s's offer first and %s's third", st.Book, makers[2].Nick, makers[1].Nick)
	}

	// The plots: labelled axes over the data, less than the 5 min window here.
	clockLabel := regexp.MustCompile(`^\d\d:\d\d(:\d\d)?$`)
	spansData := func(s pageState, window string) bool {
		if s.DataSpan < 2 || len(s.Plots) != 2 {
			return false
		}
		for _, p := range s.Plots {
			if p.Window != window || p.Span != fmt.Sprint(s.DataSpan) || p.XTicks == "" || p.YTicks == "" {
				return false
			}
		}
		return true
	}
	st = waitState(t, tab, "plots over at least 2 s of data in the 5 min window", func(s pageState) bool {
		return s.Window == "5 min" && spansData(s, "300")
	})
	for _, p := range st.Plots {
		for _, l := range strings.Fields(p.XTicks) {
			if !clockLabel.MatchString(l) {
				t.Errorf("%s: x tick label %q is not a clock time", p.ID, l)
			}
		}
		if y := strings.Fields(p.YTicks); len(y) != 3 || y[0] != "0" {
			t.Errorf("%s: y tick labels %q, want 0, half and top", p.ID, y)
		}
	}
	click("#window-toggle button[data-window='3600']")
	st = waitState(t, tab, "the 1 h window, still spanning the data", func(s pageState) bool {
		return s.Window == "1 h" && spansData(s, "3600")
	})
	screenshot(t, tab, "live-page-orderbook.png")
	click("#window-toggle button[data-window='300']")
	waitState(t, tab, "the 5 min window again", func(s pageState) bool { return s.Window == "5 min" && spansData(s, "300") })
}

// TestLivePagePlotWindow: with 20 minutes of history, the 5 min window spans its 5
// minutes and the 1 h window the 20 minutes there are, not an hour; tick labels are
// clock times in minutes for such spans.
func TestLivePagePlotWindow(t *testing.T) {
	exe := chromium(t)
	d := startDirectoryWith(t, ops.Options{Addr: "127.0.0.1:0"}, func(op *ops.Ops) {
		now := time.Now().Unix()
		for i := int64(1200); i > 0; i-- {
			op.History().Add(ops.Sample{T: now - i, Peers: int(i % 7), Makers: int(i % 5), Takers: int(i % 3),
				InRate: float64(i % 40), OutRate: float64(i % 25)})
		}
	})
	tab := openBrowser(t, exe)
	navigate(t, tab, d.pageURL)
	spans := func(s pageState, window string, lo, hi int) bool {
		if len(s.Plots) != 2 {
			return false
		}
		for _, p := range s.Plots {
			var span int
			if _, err := fmt.Sscan(p.Span, &span); err != nil || p.Window != window || span < lo || span > hi || p.XTicks == "" {
				return false
			}
		}
		return true
	}
	st := waitState(t, tab, "the last 5 minutes of 20", func(s pageState) bool { return spans(s, "300", 300, 300) })
	hhmm := regexp.MustCompile(`^\d\d:\d\d$`)
	for _, p := range st.Plots {
		if x := strings.Fields(p.XTicks); len(x) < 3 || !hhmm.MatchString(x[0]) {
			t.Errorf("%s over 5 minutes: x tick labels %q, want at least 3 of hh:mm", p.ID, x)
		}
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#window-toggle button[data-window='3600']"))); err != nil {
		t.Fatal(err)
	}
	// The 1 h window spans the 20 minutes of data (and the seconds sampled since).
	waitState(t, tab, "the 20 minutes there are in the 1 h window", func(s pageState) bool {
		return spans(s, "3600", 1199, 1200+int(waitFor/time.Second)) && s.Window == "1 h"
	})
	screenshot(t, tab, "live-page-hour.png")
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
	if st.counts() != "–/–/–" || st.Network != "–" || st.Nick != "–" || st.BookNote != "" {
		t.Errorf("without token the page shows numbers: peers %s, network %q, nick %q, orderbook %q",
			st.counts(), st.Network, st.Nick, st.BookNote)
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
	// The orderbook is fetched with the same token (/orderbook.json requires it too).
	st = waitState(t, unlocked, "the orderbook fetched with the token", func(s pageState) bool {
		return s.BookNote == "0 offers from 0 makers"
	})
	if st.Nick != d.dir.Srv.Nick() {
		t.Errorf("with token: nick %q, want %q", st.Nick, d.dir.Srv.Nick())
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
	return startDirectoryWith(t, opt, nil)
}

// startDirectoryWith is startDirectory calling before, if not nil, on the ops surface
// before it starts sampling (to fill its history, say).
func startDirectoryWith(t *testing.T, opt ops.Options, before func(*ops.Ops)) *directory {
	t.Helper()
	log := dirtest.Logger(t, slog.LevelWarn)
	d := dirtest.Start(t, nil, log)
	op, err := ops.New(d.Srv, opt, log)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(op)
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

	// The identity header.
	Nick     string `json:"nick"`
	Location string `json:"location"`
	MOTD     string `json:"motd"`
	TorMode  string `json:"torMode"`

	// The orderbook's figures and table.
	OBOffers  string     `json:"obOffers"`  // live offers
	OBMakers  string     `json:"obMakers"`  // makers with offers
	OfferMsgs string     `json:"offerMsgs"` // the running count of offer messages
	Book      [][]string `json:"book"`      // the table's body rows, by cell
	BookNote  string     `json:"bookNote"`
	CJFeeSort string     `json:"cjfeeSort"` // the cjfee column's aria-sort

	// The plots, as the page records what it drew on each canvas.
	Plots    []plotState `json:"plots"`
	DataSpan int64       `json:"dataSpan"` // seconds between the page's oldest and newest sample
	Window   string      `json:"window"`   // the pressed window button's label
}

// plotState is what one canvas shows: its axes' tick labels, the seconds its x axis
// spans, and the window chosen.
type plotState struct {
	ID     string `json:"id"`
	XTicks string `json:"xTicks"`
	YTicks string `json:"yTicks"`
	Span   string `json:"span"`
	Window string `json:"window"`
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
    nick: text("id-nick"), location: text("id-location"), motd: el("id-motd") ? el("id-motd").textContent : "",
    torMode: text("id-tor-mode"),
    obOffers: text("ob-offers"), obMakers: text("ob-makers"), offerMsgs: text("offer-msgs"),
    book: el("book") ? [...el("book").tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent.trim())) : [],
    bookNote: text("book-note"),
    cjfeeSort: document.querySelector("#book th[data-key=cjfee]")?.getAttribute("aria-sort") || "",
    plots: [...document.querySelectorAll("canvas")].map((c) => ({id: c.id, xTicks: c.dataset.xTicks || "",
      yTicks: c.dataset.yTicks || "", span: c.dataset.span || "", window: c.dataset.window || ""})),
    dataSpan: typeof samples !== "undefined" && samples.length ? samples[samples.length - 1].t - samples[0].t : 0,
    window: document.querySelector("#window-toggle button[aria-pressed=true]")?.textContent || "",
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

// screenshot saves a PNG of the whole page as name in the test's temporary dir, and
// also in $JM_SCREENSHOT_DIR when that is set, to look at after the run.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	saveScreenshot(t, tab, filepath.Join(t.TempDir(), name))
	if dir := os.Getenv("JM_SCREENSHOT_DIR"); dir != "" {
		saveScreenshot(t, tab, filepath.Join(dir, name))
	}
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
