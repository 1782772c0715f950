// Package tortest starts a private Tor network of real tor processes on 127.0.0.1 for
// tests: three directory authorities (also relays), a few relays, an onion-service host
// and a client. Nothing leaves loopback: the network has its own authorities and no
// fallback directories, exits accept 127.0.0.0/8 only, and relays resolve names at
// 127.0.0.1.
//
//	n := tortest.Start(t)                   // ready: client and host bootstrapped
//	c, _ := n.Control(tortest.Host)         // ADD_ONION ... on the onion host
//	proxy.SOCKS5("tcp", n.SOCKSAddr(), ...) // reach the onion through the client
//
// Start skips the test when tor or tor-gencert is missing (fails under CI=true) and
// registers a cleanup that stops every tor it started (and every tor exits by itself
// once the test process is gone). A first start takes about 12-16 s on a 2-core machine
// (key generation, the first consensus, then the client's bootstrap); Restart, which
// keeps keys, data directories and ports, about 3 s. It is for tests only, and a
// Network's methods must be called from the test's goroutine.
//
// With TORTEST_DEBUG=1 every tor also logs at info level (info.log next to tor.log in
// its data directory), and the network's directory is kept after the test.
package tortest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
)

// debug reports whether TORTEST_DEBUG is set: every tor then also writes an info-level
// log (info.log in its data directory) and the network's directory is kept.
func debug() bool { return os.Getenv("TORTEST_DEBUG") != "" }

// Names of the two non-router nodes, for LogTail and Control. Routers are auth0…auth2
// and relay0….
const (
	Client = "client" // has the SOCKS port
	Host   = "host"   // hosts onion services: ADD_ONION, or SETCONF HiddenServiceDir
)

// Option changes how Start builds the network.
type Option func(*config)

type config struct {
	relays  int
	timeout time.Duration
}

// Relays sets how many relays run besides the three authorities (default 3, at least
// 2: an onion service and its client need five distinct relays between them).
func Relays(k int) Option { return func(c *config) { c.relays = max(k, 2) } }

// Timeout bounds each Start and Restart until ready (default 2 minutes; a start takes
// 10-20 s, the rest is for a loaded CI runner).
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// Network is a running (or stopped) private Tor network. Its ports and keys stay the
// same over Stop and Restart.
type Network struct {
	t          testing.TB
	cfg        config
	dir        string
	torBin     string
	gencertBin string
	emptyFile  string // empty torrc defaults and GeoIP tables
	resolvConf string // "nameserver 127.0.0.1" for the relays
	password   string // every control port's password
	hashed     string

	nodes   []*node // authorities, relays, client, host
	routers []*node // authorities and relays
	auths   []*node
	client  *node
	host    *node

	validAfter int64 // Unix time the authorities' pending first consensus becomes valid
}

// Start builds and starts a network and returns once it is usable for onion services:
// the client and the onion host are bootstrapped 100 %, hold a live consensus and see
// every relay with the flags onion services need (Running Valid Guard Fast Stable
// HSDir). It fails the test, with the tor log tails that matter, if that does not
// happen within the timeout. The network is stopped when the test ends.
func Start(t testing.TB, opts ...Option) *Network {
	t.Helper()
	torBin := testkit.NeedTool(t, "tor")
	gencertBin := testkit.NeedTool(t, "tor-gencert")
	cfg := config{relays: 3, timeout: 2 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	// Short paths: tor's limits on socket paths, and readable log headers.
	dir, err := os.MkdirTemp("", "jmtor")
	if err != nil {
		t.Fatal(err)
	}
	n := &Network{t: t, cfg: cfg, dir: dir, torBin: torBin, gencertBin: gencertBin,
		emptyFile: filepath.Join(dir, "empty"), resolvConf: filepath.Join(dir, "resolv.conf")}
	t.Cleanup(func() {
		n.Stop()
		if t.Failed() || debug() {
			t.Logf("tortest: kept %s for inspection", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	n.password, n.hashed = newPassword()
	add := func(name string, r role) *node {
		nd := &node{name: name, role: r, dir: filepath.Join(dir, name)}
		n.nodes = append(n.nodes, nd)
		return nd
	}
	for i := range 3 {
		n.auths = append(n.auths, add(fmt.Sprintf("auth%d", i), roleAuthority))
	}
	for i := range cfg.relays {
		add(fmt.Sprintf("relay%d", i), roleRelay)
	}
	n.routers = n.nodes[:len(n.nodes):len(n.nodes)]
	n.client, n.host = add(Client, roleClient), add(Host, roleHost)
	for _, nd := range n.nodes {
		if err := os.MkdirAll(nd.dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(n.emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.resolvConf, []byte("nameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := n.genKeys(); err != nil {
		t.Fatalf("tortest: %v", err)
	}
	t.Logf("tortest: keys in %v", time.Since(t0).Round(time.Millisecond))
	// The routers' ports go into every torrc (DirAuthority lines), so they are chosen
	// here, just before the launch. Another process may take one in between: then
	// choose again.
	for attempt := 1; ; attempt++ {
		if err := n.pickRouterPorts(); err != nil {
			t.Fatal(err)
		}
		err := n.up()
		if err == nil {
			break
		}
		if errors.Is(err, errPortTaken) && attempt < 3 {
			t.Logf("tortest: %v; choosing other ports", err)
			n.Stop()
			continue
		}
		t.Fatalf("tortest: start: %v", err)
	}
	return n
}

// pickRouterPorts chooses free loopback ports for the routers' ORPorts and the
// authorities' DirPorts: the kernel's choice for listeners on port 0, all held open
// together so they differ, then closed for tor to bind.
func (n *Network) pickRouterPorts() error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	port := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		ls = append(ls, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	for _, nd := range n.routers {
		if nd.orPort, err = port(); err != nil {
			return err
		}
		if nd.role == roleAuthority {
			if nd.dirPort, err = port(); err != nil {
				return err
			}
		}
	}
	return nil
}

var errPortTaken = errors.New("a port chosen for the network was taken")

// Bounds of the phases of up; the whole is bounded by config.timeout.
const (
	routerBootstrapBound = 15 * time.Second // waiting for relays before the client goes online
	kickAfter            = 3 * time.Second  // a node not bootstrapped this long after it went online…
	kickEvery            = 4 * time.Second  // …gets SIGNAL RELOAD this often
)

// up launches every node and waits until the network is ready.
//
// Phase 1: the routers start, and so do the client and the onion host but with
// DisableNetwork (they would ask for a consensus before there is one and back off).
// The authorities vote as soon as they all hold every router's descriptor (see
// steerFirstVote), and serve the first consensus four seconds later. Phase 2: the
// relays, which asked for that consensus before it existed and backed off too, are
// nudged with SIGNAL RELOAD (tor resets its download schedules on HUP) until they are
// bootstrapped, since they are the directory caches the client will ask for
// microdescriptors. Phase 3: the client and the onion host get their network and
// bootstrap.
func (n *Network) up() error {
	t0 := time.Now()
	deadline := t0.Add(n.cfg.timeout)
	n.validAfter = t0.Unix() + firstVoteLead
	offset := votingOffset(n.validAfter)
	n.client.networkOff, n.host.networkOff = true, true
	for _, nd := range n.nodes {
		if err := n.torrc(nd, offset); err != nil {
			return err
		}
	}
	for _, nd := range n.nodes {
		if err := n.launch(nd); err != nil {
			return err
		}
	}

	var failed error
	moves := 0
	if !testkit.Poll(time.Until(deadline), func() bool {
		if failed = n.exitedEarly(n.nodes); failed != nil {
			return true
		}
		if n.consensusServed() {
			return true
		}
		var moved bool
		moved, failed = n.steerFirstVote()
		if moved {
			moves++
		}
		return failed != nil
	}) {
		return n.failure(fmt.Sprintf("the authorities did not all serve a live consensus within %v", n.cfg.timeout), n.auths...)
	}
	if failed != nil {
		return failed
	}
	tConsensus := time.Since(t0)

	var pending []string
	testkit.Poll(min(routerBootstrapBound, time.Until(deadline)), func() bool {
		pending = pending[:0]
		for _, nd := range n.routers {
			if p, _ := n.bootstrap(nd); p < 100 {
				pending = append(pending, nd.name)
				n.kick(nd, p)
			}
		}
		return len(pending) == 0
	})
	tRouters := time.Since(t0)

	var status string
	ok := testkit.Poll(time.Until(deadline), func() bool {
		if failed = n.exitedEarly(n.nodes); failed != nil {
			return true
		}
		for _, nd := range []*node{n.client, n.host} {
			if nd.networkOff {
				n.enableNetwork(nd)
			}
		}
		cok, cstatus := n.ready(n.client)
		hok, hstatus := n.ready(n.host)
		status = "client: " + cstatus + "; host: " + hstatus
		return cok && hok
	})
	if failed != nil {
		return failed
	}
	if !ok {
		return n.failure(fmt.Sprintf("not ready within %v: %s", n.cfg.timeout, status), n.client, n.host, n.auths[0])
	}
	socks, err := n.getInfo(n.client, "net/listeners/socks")
	if err != nil {
		return n.failure("GETINFO net/listeners/socks: "+err.Error(), n.client)
	}
	_, p, _ := strings.Cut(strings.Trim(socks, `"`), ":")
	if n.client.socksPort, err = strconv.Atoi(p); err != nil {
		return n.failure(fmt.Sprintf("client SOCKS listeners %q", socks), n.client)
	}
	// From now on the client's and host's ports are fixed: in their torrcs for a
	// RELOAD and for Restart, where the server under test expects them again.
	for _, nd := range []*node{n.client, n.host} {
		if err := n.torrc(nd, offset); err != nil {
			return err
		}
	}
	more := ""
	if len(pending) > 0 {
		more = fmt.Sprintf(" (not bootstrapped yet: %s)", strings.Join(pending, " "))
	}
	n.t.Logf("tortest: ready in %v: consensus after %v (first vote moved %d times), routers bootstrapped after %v%s",
		time.Since(t0).Round(time.Millisecond), tConsensus.Round(time.Millisecond), moves, tRouters.Round(time.Millisecond), more)
	return nil
}

// Leads of the first vote, in seconds: the authorities vote 2*voteDelay seconds before
// the consensus they vote on becomes valid.
const (
	// firstVoteLead places the first consensus at launch: the vote comes six seconds
	// after launch unless steerFirstVote moves it.
	firstVoteLead = votingInterval
	// readyVoteLead places it once every authority holds every descriptor: the vote
	// two seconds later. (Tor takes the offset as a time within the next interval
	// from its own clock second; two seconds keep a second's skew harmless.)
	readyVoteLead = 2*voteDelay + 2
)

// steerFirstVote moves the authorities' first vote to when it can include every
// router. Authorities vote at a fixed time in each round; a vote held before a router
// has uploaded its descriptor leaves it out of the consensus, and the network then
// needs the next round, a voting interval later (on a loaded machine a relay may take
// seconds to start). So the first vote is placed late at launch, brought forward as
// soon as every authority holds every descriptor, and put off again while one is
// missing. It moves the round by setting TestingV3AuthVotingStartOffset on every
// authority (tor reschedules its voting when that changes), and reports whether it did.
func (n *Network) steerFirstVote() (bool, error) {
	now := time.Now()
	voteAt := time.Unix(n.validAfter-2*voteDelay, 0)
	if !now.Before(voteAt) {
		return false, nil // voting; if a router missed it, the next round has it
	}
	all := n.authoritiesHaveAllDescriptors()
	var target int64
	switch {
	case all && n.validAfter > now.Unix()+readyVoteLead:
		target = now.Unix() + readyVoteLead
	case !all && voteAt.Sub(now) < 1500*time.Millisecond:
		target = now.Unix() + votingInterval
	default:
		return false, nil
	}
	for _, au := range n.auths {
		if n.control(au) == nil {
			return false, nil // not up yet: all or none, so try at the next poll
		}
	}
	for _, au := range n.auths {
		r, err := n.control(au).Command(fmt.Sprintf("SETCONF TestingV3AuthVotingStartOffset=%d", votingOffset(target)))
		if err == nil {
			err = r.Err()
		}
		if err != nil {
			au.closeControl()
			return false, n.failure(fmt.Sprintf("moving the vote on %s: %v", au.name, err), au)
		}
	}
	n.validAfter = target
	return true, nil
}

// authoritiesHaveAllDescriptors reports whether every authority holds a server
// descriptor of every router.
func (n *Network) authoritiesHaveAllDescriptors() bool {
	for _, au := range n.auths {
		descs, err := n.getInfo(au, "desc/all-recent")
		if err != nil {
			return false
		}
		have := map[string]bool{}
		for _, line := range strings.Split(descs, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "router" {
				have[f[1]] = true
			}
		}
		for _, nd := range n.routers {
			if !have[nd.name] {
				return false
			}
		}
	}
	return true
}

// exitedEarly returns an error naming the first node that has exited.
func (n *Network) exitedEarly(nodes []*node) error {
	for _, nd := range nodes {
		if nd.exited() {
			err := n.failure(fmt.Sprintf("%s exited (%v)", nd.name, nd.exitErr), nd)
			if b, _ := os.ReadFile(nd.logPath()); strings.Contains(string(b), "Address already in use") {
				return fmt.Errorf("%w: %v", errPortTaken, err)
			}
			return err
		}
	}
	return nil
}

// failure is an error with the log tails of the nodes that tell why.
func (n *Network) failure(msg string, nodes ...*node) error {
	var b strings.Builder
	b.WriteString(msg)
	for _, nd := range nodes {
		fmt.Fprintf(&b, "\n--- %s, end of %s:\n%s", nd.name, nd.logPath(), nd.tail(25))
	}
	return errors.New(b.String())
}

// consensusServed reports whether every authority serves a live consensus on its
// DirPort (404 until the first one is signed; after a restart, possibly an expired
// one). They publish it up to a second apart, and a relay nudged to fetch it should
// not get a 404 from the last one.
func (n *Network) consensusServed() bool {
	for _, au := range n.auths {
		if until, ok := servedConsensus(au.dirPort); !ok || !until.After(time.Now()) {
			return false
		}
	}
	return true
}

var validUntilRE = regexp.MustCompile(`(?m)^valid-until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$`)

// servedConsensus asks a DirPort for the microdescriptor consensus and returns its
// valid-until time.
func servedConsensus(dirPort int) (time.Time, bool) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(dirPort)), 2*time.Second)
	if err != nil {
		return time.Time{}, false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET /tor/status-vote/current/consensus-microdesc HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return time.Time{}, false
	}
	body, err := io.ReadAll(io.LimitReader(c, 4<<20))
	if err != nil || !strings.HasPrefix(string(body), "HTTP/1.0 200") {
		return time.Time{}, false
	}
	m := validUntilRE.FindSubmatch(body)
	if m == nil {
		return time.Time{}, false
	}
	until, err := time.Parse(time.DateTime, string(m[1]))
	return until, err == nil
}

var progressRE = regexp.MustCompile(`PROGRESS=(\d+)`)

// bootstrap returns the node's bootstrap progress (0 while its control port is not
// reachable) and tor's description of the phase.
func (n *Network) bootstrap(nd *node) (int, string) {
	phase, err := n.getInfo(nd, "status/bootstrap-phase")
	if err != nil {
		return 0, "control port: " + err.Error()
	}
	m := progressRE.FindStringSubmatch(phase)
	if m == nil {
		return 0, phase
	}
	p, _ := strconv.Atoi(m[1])
	return p, phase
}

// enableNetwork lets the client or host go online: its torrc loses DisableNetwork and
// it reloads it. Sent over the control port, once that is open; tried again at the next
// poll on failure.
func (n *Network) enableNetwork(nd *node) {
	c := n.control(nd)
	if c == nil {
		return
	}
	nd.networkOff = false
	if err := n.torrc(nd, votingOffset(n.validAfter)); err != nil {
		nd.networkOff = true
		return
	}
	if r, err := c.Command("SIGNAL RELOAD"); err != nil || r.Err() != nil {
		nd.networkOff = true
		nd.closeControl()
		return
	}
	nd.started = time.Now() // for kick: its directory fetches start now
}

// kick sends SIGNAL RELOAD, at most every kickEvery, to a non-authority still waiting
// for directory information (bootstrap below 75 %, "enough_dirinfo"): tor resets its
// directory download back-off on HUP and fetches at once. Never later, while it builds
// its first circuits: a HUP there only gets in the way.
func (n *Network) kick(nd *node, progress int) {
	if nd.role == roleAuthority || progress >= 75 || time.Since(nd.started) < kickAfter || time.Since(nd.lastKick) < kickEvery {
		return
	}
	if c := n.control(nd); c != nil {
		if _, err := c.Command("SIGNAL RELOAD"); err != nil {
			nd.closeControl()
		}
		nd.lastKick = time.Now()
	}
}

// neededFlags are the flags every relay must carry, in the client's and the host's
// consensus, for the network to count as ready: onion-service circuits (guards, HSDirs,
// intro and rendezvous points) want them, and the client and the host must agree on
// the HSDir ring.
var neededFlags = []string{"Running", "Valid", "Guard", "Fast", "Stable", "HSDir"}

// ready reports whether nd (client or host) is usable, and if not, what it lacks.
func (n *Network) ready(nd *node) (bool, string) {
	if nd.networkOff {
		return false, "network not enabled yet"
	}
	p, phase := n.bootstrap(nd)
	if p < 100 {
		n.kick(nd, p)
		return false, fmt.Sprintf("bootstrapped %d%% (%s)", p, phase)
	}
	vu, err := n.getInfo(nd, "consensus/valid-until")
	if err != nil {
		return false, "consensus/valid-until: " + err.Error()
	}
	if until, err := time.Parse(time.DateTime, vu); err != nil || !until.After(time.Now()) {
		return false, fmt.Sprintf("no live consensus (valid until %q)", vu)
	}
	ns, err := n.getInfo(nd, "ns/all")
	if err != nil {
		return false, "ns/all: " + err.Error()
	}
	usable, lacking := usableRouters(ns)
	if usable < len(n.routers) {
		return false, fmt.Sprintf("%d of %d relays usable %v", usable, len(n.routers), lacking)
	}
	return true, "ready"
}

// usableRouters counts the relays in a network-status document ("r …" then "s Flag…"
// lines) that have every needed flag, and says what the others lack.
func usableRouters(ns string) (usable int, lacking []string) {
	nick := "?"
	for _, line := range strings.Split(ns, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "r":
			nick = f[1]
		case len(f) > 0 && f[0] == "s":
			var miss []string
			for _, want := range neededFlags {
				found := false
				for _, have := range f[1:] {
					found = found || have == want
				}
				if !found {
					miss = append(miss, want)
				}
			}
			if len(miss) == 0 {
				usable++
			} else {
				lacking = append(lacking, nick+" lacks "+strings.Join(miss, ","))
			}
		}
	}
	return usable, lacking
}

// Stop stops every tor of the network (SIGTERM, SIGKILL after a bound) and waits for
// them to exit. Stopping a stopped network does nothing.
func (n *Network) Stop() {
	n.t.Helper()
	killed, err := stopNodes(n.nodes)
	if len(killed) > 0 {
		n.t.Logf("tortest: %v ignored SIGTERM and were killed", killed)
	}
	if err != nil {
		n.t.Errorf("tortest: %v", err)
	}
}

// Restart stops every tor, then starts the same network again: same keys, data
// directories and ports (the client's SOCKS and control ports and the host's control
// port included), and waits until it is ready as Start does.
func (n *Network) Restart() {
	n.t.Helper()
	n.Stop()
	if err := n.up(); err != nil {
		n.t.Fatalf("tortest: restart: %v", err)
	}
}

// StopHost stops the onion host's tor (SIGTERM, SIGKILL after a bound): the onion
// services it serves go with it, and its control connections drop; the rest of the
// network keeps running. Stopping a stopped host does nothing.
func (n *Network) StopHost() {
	n.t.Helper()
	killed, err := stopNodes([]*node{n.host})
	if len(killed) > 0 {
		n.t.Logf("tortest: %v ignored SIGTERM and was killed", killed)
	}
	if err != nil {
		n.t.Errorf("tortest: %v", err)
	}
}

// StartHost starts the onion host's tor again after StopHost, with the same ports,
// keys and data directory, and waits until it is ready. Onion services added over its
// control port (ADD_ONION, SETCONF) are not in its torrc and must be added again.
func (n *Network) StartHost() {
	n.t.Helper()
	if n.host.running() {
		n.t.Fatal("tortest: StartHost: the host is running")
	}
	if err := n.launch(n.host); err != nil {
		n.t.Fatalf("tortest: StartHost: %v", err)
	}
	var status string
	var failed error
	ok := testkit.Poll(n.cfg.timeout, func() bool {
		if failed = n.exitedEarly([]*node{n.host}); failed != nil {
			return true
		}
		var ready bool
		ready, status = n.ready(n.host)
		return ready
	})
	switch {
	case failed != nil:
		n.t.Fatalf("tortest: StartHost: %v", failed)
	case !ok:
		n.t.Fatalf("tortest: StartHost: %v", n.failure(fmt.Sprintf("the host was not ready within %v: %s", n.cfg.timeout, status), n.host))
	}
}

// SOCKSAddr is the client's SOCKS5 port, host:port. Tor isolates streams by SOCKS
// username: one username, one circuit.
func (n *Network) SOCKSAddr() string { return hostPort(n.client.socksPort) }

// ControlAddr is the client's control port, host:port (password: Password).
func (n *Network) ControlAddr() string { return hostPort(n.client.controlPort) }

// HostControlAddr is the onion host's control port, host:port: password Password, or
// the cookie in HostCookieFile.
func (n *Network) HostControlAddr() string { return hostPort(n.host.controlPort) }

// HostCookieFile is the onion host's control cookie.
func (n *Network) HostCookieFile() string { return n.host.cookieFile() }

// Password is the control password of every tor in the network.
func (n *Network) Password() string { return n.password }

// Dir is the network's directory: one data directory (with torrc and tor.log) per node.
func (n *Network) Dir() string { return n.dir }

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func (n *Network) node(name string) *node {
	for _, nd := range n.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

// Control returns a new control connection to the named node (Client, Host, or a
// router), authenticated with the password. The caller closes it.
func (n *Network) Control(name string) (*torctl.Conn, error) {
	nd := n.node(name)
	if nd == nil {
		return nil, fmt.Errorf("tortest: no node %q", name)
	}
	return n.dialControl(nd)
}

// LogTail returns the last lines of the named node's tor log.
func (n *Network) LogTail(name string, lines int) string {
	nd := n.node(name)
	if nd == nil {
		return fmt.Sprintf("(no node %q)", name)
	}
	return nd.tail(lines)
}

// Logs returns the last lines of every node's log, for a failure message.
func (n *Network) Logs(lines int) string {
	var b strings.Builder
	for _, nd := range n.nodes {
		fmt.Fprintf(&b, "--- %s:\n%s\n", nd.name, nd.tail(lines))
	}
	return b.String()
}

// newnymBound bounds NewNym: tor applies at most one NEWNYM per 10 s and delays the
// others.
const newnymBound = 20 * time.Second

// NewNym sends SIGNAL NEWNYM to the client and returns once tor has applied it (it
// reports that with a SIGNAL event; a NEWNYM within 10 s of the last is delayed). The
// client then forgets its cached onion descriptors and failed HSDir and intro-point
// lookups, and builds new circuits: what a retry after a failed onion connection needs.
func (n *Network) NewNym() error {
	e, err := n.dialEvents(n.client, "SIGNAL")
	if err != nil {
		return err
	}
	defer e.close()
	deadline := time.Now().Add(newnymBound)
	if err := e.command("SIGNAL NEWNYM"); err != nil {
		return fmt.Errorf("tortest: SIGNAL NEWNYM: %w", err)
	}
	for {
		ev, err := e.next(deadline)
		if err != nil {
			return fmt.Errorf("tortest: waiting for tor to apply NEWNYM: %w", err)
		}
		if ev == "SIGNAL NEWNYM" {
			return nil
		}
	}
}

// WaitOnion waits until the onion service onion ("xyz", "xyz.onion" or
// "xyz.onion:port") has published its descriptor: the client fetches it (HSFETCH)
// from every relay of the network until one has it, and keeps it in its cache for the
// connections that follow. The fetches name their HSDirs, so unlike a SOCKS connection
// to a not-yet-published onion they leave no failed lookup behind that would make tor
// avoid those HSDirs for a while.
func (n *Network) WaitOnion(onion string, d time.Duration) error {
	id, _, _ := strings.Cut(onion, ".onion")
	var servers []string
	for _, nd := range n.routers {
		servers = append(servers, "SERVER=$"+nd.fingerprint)
	}
	var e *eventConn
	defer func() {
		if e != nil {
			e.close()
		}
	}()
	last := "no fetch yet"
	if testkit.Poll(d, func() bool {
		if e == nil {
			var err error
			if e, err = n.dialEvents(n.client, "HS_DESC"); err != nil {
				last = err.Error()
				return false
			}
		}
		got, status, err := e.fetch(id, servers)
		if err != nil {
			e.close()
			e, last = nil, err.Error()
			return false
		}
		last = status
		return got
	}) {
		return nil
	}
	return fmt.Errorf("tortest: the descriptor of %s.onion was not published within %v (last fetch: %s)", id, d, last)
}

// fetch asks the named HSDirs for the onion's descriptor and waits for each one's
// answer (HS_DESC RECEIVED or FAILED events).
func (e *eventConn) fetch(id string, servers []string) (got bool, status string, err error) {
	deadline := time.Now().Add(10 * time.Second)
	if err := e.command("HSFETCH " + id + " " + strings.Join(servers, " ")); err != nil {
		return false, "", fmt.Errorf("HSFETCH: %w", err)
	}
	var reasons []string
	for answers := 0; answers < len(servers); {
		ev, err := e.next(deadline)
		if err != nil {
			return false, "", err
		}
		f := strings.Fields(ev)
		if len(f) < 3 || f[0] != "HS_DESC" || f[2] != id {
			continue
		}
		switch f[1] {
		case "RECEIVED":
			return true, "received", nil
		case "FAILED":
			answers++
			reasons = append(reasons, f[len(f)-1])
		}
	}
	return false, "failed: " + strings.Join(reasons, " "), nil
}

// eventConn is a raw control connection that also receives events (torctl.Conn treats
// an event as a protocol error).
type eventConn struct {
	c      net.Conn
	r      *bufio.Reader
	events []string // first lines of events read while waiting for a reply
}

// dialEvents opens an authenticated control connection to nd subscribed to events.
func (n *Network) dialEvents(nd *node, events string) (*eventConn, error) {
	c, err := net.DialTimeout("tcp", hostPort(nd.controlPort), 5*time.Second)
	if err != nil {
		return nil, err
	}
	e := &eventConn{c: c, r: bufio.NewReader(c)}
	for _, line := range []string{"AUTHENTICATE " + torctl.Quote(n.password), "SETEVENTS " + events} {
		if err := e.command(line); err != nil {
			c.Close()
			return nil, fmt.Errorf("tortest: %s: %w", strings.Fields(line)[0], err)
		}
	}
	return e, nil
}

func (e *eventConn) close() { e.c.Close() }

// command sends a command and returns its reply's error, queueing events that arrive
// before the reply.
func (e *eventConn) command(line string) error {
	_ = e.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(e.c, line+"\r\n"); err != nil {
		return err
	}
	for {
		rep, err := torctl.ReadReply(e.r)
		if err != nil {
			return err
		}
		if rep.Code != 650 {
			return rep.Err()
		}
		e.events = append(e.events, rep.Lines[0].Text)
	}
}

// next returns the first line of the next event, waiting at most until deadline.
func (e *eventConn) next(deadline time.Time) (string, error) {
	if len(e.events) > 0 {
		ev := e.events[0]
		e.events = e.events[1:]
		return ev, nil
	}
	_ = e.c.SetDeadline(deadline)
	rep, err := torctl.ReadReply(e.r)
	if err != nil {
		return "", err
	}
	if rep.Code != 650 {
		return "", fmt.Errorf("unexpected reply %d outside a command", rep.Code)
	}
	return rep.Lines[0].Text, nil
}

// Retry calls try until it succeeds, starting no attempt after d has passed, and
// returns the last error. After a failed attempt it sends NEWNYM (see NewNym) and tries
// again as soon as tor has applied it: a first connection to a fresh onion may fail
// while the client and the service disagree for a moment, and tor would not ask the
// same HSDirs or intro points again for a while by itself.
func (n *Network) Retry(d time.Duration, try func() error) error {
	n.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	attempt := 0
	testkit.Poll(d, func() bool {
		if attempt > 0 && !time.Now().Before(deadline) {
			return true // give up
		}
		attempt++
		if err = try(); err == nil {
			return true
		}
		n.t.Logf("tortest: attempt %d failed: %v; NEWNYM and again", attempt, err)
		if nerr := n.NewNym(); nerr != nil {
			n.t.Logf("tortest: %v", nerr)
		}
		return false
	})
	return err
}
