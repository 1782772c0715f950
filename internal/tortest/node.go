package tortest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
)

type role int

const (
	roleAuthority role = iota // directory authority, also a relay
	roleRelay                 // relay (guard, HSDir, exit to 127.0.0.0/8 only)
	roleClient                // SOCKS port for the test's connections
	roleHost                  // client-only tor that hosts the onion services under test
)

// node is one tor process of the network: its data directory, its ports and, while it
// runs, its process.
type node struct {
	name        string // tor Nickname and directory name
	role        role
	dir         string // DataDirectory
	orPort      int    // routers; picked before the first start, kept afterwards
	dirPort     int    // authorities; likewise
	controlPort int    // 0 until tor wrote it to controlFile; client and host keep theirs
	socksPort   int    // client: 0 until learned over the control port, kept afterwards
	fingerprint string // RSA identity of a router
	v3ident     string // authority certificate's identity

	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	exitErr    error         // cmd.Wait's result, readable once done is closed
	started    time.Time     // launch, or for client and host when their network was enabled
	networkOff bool          // client and host: DisableNetwork in the torrc
	ctl        *torctl.Conn  // authenticated control connection, while it works
	lastKick   time.Time     // last SIGNAL RELOAD sent to speed up directory fetches
}

func (nd *node) torrcPath() string   { return filepath.Join(nd.dir, "torrc") }
func (nd *node) logPath() string     { return filepath.Join(nd.dir, "tor.log") }
func (nd *node) controlFile() string { return filepath.Join(nd.dir, "control-port") }
func (nd *node) cookieFile() string  { return filepath.Join(nd.dir, "control_auth_cookie") }

// running reports whether the process was started and has not exited.
func (nd *node) running() bool {
	if nd.done == nil {
		return false
	}
	select {
	case <-nd.done:
		return false
	default:
		return true
	}
}

// exited reports whether the process was started and has exited by itself.
func (nd *node) exited() bool { return nd.done != nil && !nd.running() }

// torrc writes the node's configuration. Every option that differs from tor's defaults
// is here for a reason given next to it.
func (n *Network) torrc(nd *node, votingOffset int) error {
	var b strings.Builder
	a := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	a("# tortest node %s", nd.name)
	// Private addresses allowed everywhere, no per-IP relay limit, short download
	// delays and HS repost periods, and the Testing* options below are accepted.
	a("TestingTorNetwork 1")
	a("DataDirectory %s", nd.dir)
	a("Nickname %s", nd.name)
	// One log, on stdout, which Start points at tor.log (also catches early errors).
	a("Log notice stdout")
	if debug() {
		a("Log info file %s", filepath.Join(nd.dir, "info.log"))
	}
	a("SafeLogging 0")
	a("LogTimeGranularity 1")
	// Exit when the test process is gone, even if it was killed before its cleanup.
	a("__OwningControllerProcess %d", os.Getpid())
	a("ShutdownWaitLength 0")
	if nd.controlPort == 0 {
		a("ControlPort auto")
	} else {
		a("ControlPort 127.0.0.1:%d", nd.controlPort)
	}
	a("ControlPortWriteToFile %s", nd.controlFile())
	// Both authentications: the server under test uses the cookie, the helper the
	// password.
	a("CookieAuthentication 1")
	a("HashedControlPassword %s", n.hashed)
	// Empty GeoIP tables: less memory and start-up time per process.
	a("GeoIPFile %s", n.emptyFile)
	a("GeoIPv6File %s", n.emptyFile)
	// KIST batches cells; on loopback with small messages an onion round trip takes
	// 16-100 ms with it and about 0.5 ms with the plain scheduler.
	a("Schedulers Vanilla")
	a("NumCPUs 1")
	a("AvoidDiskWrites 1")
	// Never MaxMemInQueues: relays count their consensus compression buffers (~100 MB)
	// against it, and a low value makes them kill every circuit each consensus.
	//
	// Our authorities only; never the real network's fallback directories.
	a("UseDefaultFallbackDirs 0")
	for _, au := range n.auths {
		a("DirAuthority %s orport=%d v3ident=%s 127.0.0.1:%d %s", au.name, au.orPort, au.v3ident, au.dirPort, au.fingerprint)
	}
	// With a handful of relays a client never reaches its default share of paths.
	a("PathsNeededToBuildCircuits 0.67")
	// No vanguards-lite: for onion-service circuits tor then does not keep the guard
	// apart from the circuit's last hop, and among six relays it picks the same one
	// for both often enough to stall a bootstrap for a consensus interval or more
	// (the middle relay refuses to extend back to where the circuit came from).
	a("VanguardsLiteEnabled 0")
	switch nd.role {
	case roleAuthority, roleRelay:
		a("ORPort 127.0.0.1:%d", nd.orPort)
		a("Address 127.0.0.1") // no address discovery
		a("SocksPort 0")
		a("ContactInfo %s@tortest.invalid", nd.name)
		// No ORPort self-test (it needs circuits, i.e. a consensus); on authorities
		// it also makes every relay Running at once.
		a("AssumeReachable 1")
		// Exits only to loopback. The microdescriptor policy summary cannot express
		// that, so clients see "no exits" and build internal paths only: all onion
		// services need, and nothing can ever be asked to leave 127.0.0.0/8.
		a("ExitRelay 1")
		a("ExitPolicyRejectPrivate 0")
		a("ExitPolicy accept 127.0.0.0/8:*")
		a("ExitPolicy reject *:*")
		// A relay resolving a name asks loopback, where nothing answers.
		a("ServerDNSResolvConfFile %s", n.resolvConf)
		a("ServerDNSDetectHijacking 0")
		a("ServerDNSTestAddresses")
		a("DirReqStatistics 0")
		// Caches diff each consensus against every older one they keep; with a
		// consensus every 10 s that CPU use would grow for ~20 minutes.
		a("MaxConsensusAgeForDiffs 60")
	}
	if nd.networkOff {
		a("DisableNetwork 1") // until Network.enableNetwork
	}
	switch nd.role {
	case roleClient:
		// ExtendedErrors: onion failures get specific SOCKS5 reply codes.
		if nd.socksPort == 0 {
			a("SocksPort auto ExtendedErrors")
		} else {
			a("SocksPort 127.0.0.1:%d ExtendedErrors", nd.socksPort)
		}
	case roleHost:
		a("SocksPort 0")
	}
	if nd.role == roleAuthority {
		a("DirPort 127.0.0.1:%d", nd.dirPort)
		a("AuthoritativeDirectory 1")
		a("V3AuthoritativeDirectory 1")
		// Flags that otherwise need hours of uptime or a bandwidth history.
		a("TestingDirAuthVoteExit *")
		a("TestingDirAuthVoteGuard *")
		a("TestingDirAuthVoteHSDir *")
		a("TestingMinExitFlagThreshold 0")
		// Stable normally goes to relays above the median uptime (half of a fresh
		// network) and onion circuits want it: guarantee it. Fast likewise, but a
		// guarantee of 0 is ignored; 1 byte/s it is.
		a("AuthDirVoteStableGuaranteeMinUptime 0")
		a("AuthDirVoteStableGuaranteeMTBF 0")
		a("AuthDirFastGuarantee 1")
		// A consensus every votingInterval seconds, valid for two.
		a("TestingV3AuthInitialVotingInterval %d", votingInterval)
		a("TestingV3AuthInitialVoteDelay %d", voteDelay)
		a("TestingV3AuthInitialDistDelay %d", voteDelay)
		a("V3AuthVotingInterval %d", votingInterval)
		a("V3AuthVoteDelay %d", voteDelay)
		a("V3AuthDistDelay %d", voteDelay)
		a("V3AuthNIntervalsValid 2")
		// Where the voting rounds fall: chosen at launch, and moved while the
		// first vote is pending (see Network.steerFirstVote).
		a("TestingV3AuthVotingStartOffset %d", votingOffset)
	}
	return os.WriteFile(nd.torrcPath(), []byte(b.String()), 0o600)
}

const (
	votingInterval = 10 // seconds between consensuses; tor's testing minimum
	voteDelay      = 2  // V3AuthVoteDelay and V3AuthDistDelay; tor's minimum
)

// votingOffset returns the TestingV3AuthVotingStartOffset that makes validAfter (Unix
// seconds) the start of a voting round. Tor's rounds start at multiples of the
// interval since midnight UTC, plus the offset; a day is a whole number of intervals.
func votingOffset(validAfter int64) int { return int(validAfter % votingInterval) }

// launch starts the node's tor in the foreground (so it is our child to wait for),
// appending its output to tor.log.
func (n *Network) launch(nd *node) error {
	_ = os.Remove(nd.controlFile())
	if nd.role != roleClient && nd.role != roleHost {
		nd.controlPort = 0 // routers take a new control port each launch
	}
	logf, err := os.OpenFile(nd.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "---- tortest: launching %s at %s\n", nd.name, time.Now().Format(time.TimeOnly))
	// In the test's process group: a Ctrl-C in the terminal stops tor with the test.
	cmd := exec.Command(n.torBin, "-f", nd.torrcPath(), "--defaults-torrc", n.emptyFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", nd.name, err)
	}
	nd.cmd, nd.done, nd.exitErr, nd.started, nd.ctl = cmd, make(chan struct{}), nil, time.Now(), nil
	done := nd.done
	go func() {
		err := cmd.Wait()
		nd.exitErr = err
		close(done)
	}()
	return nil
}

// control returns an authenticated control connection to the node, dialling one if
// needed; nil while tor has not opened its control port yet.
func (n *Network) control(nd *node) *torctl.Conn {
	if nd.ctl != nil {
		return nd.ctl
	}
	if nd.controlPort == 0 {
		b, err := os.ReadFile(nd.controlFile())
		if err != nil {
			return nil
		}
		// "PORT=127.0.0.1:NNNN"
		_, port, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		p, err := strconv.Atoi(port)
		if !ok || err != nil || p <= 0 {
			return nil
		}
		nd.controlPort = p
	}
	c, err := n.dialControl(nd)
	if err != nil {
		return nil
	}
	nd.ctl = c
	return c
}

func (n *Network) dialControl(nd *node) (*torctl.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := torctl.Dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(nd.controlPort)))
	if err != nil {
		return nil, err
	}
	if _, err := c.Authenticate(torctl.Auth{Password: n.password}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// getInfo asks the node for one GETINFO key, dropping the control connection on any
// error so the next call dials afresh.
func (n *Network) getInfo(nd *node, key string) (string, error) {
	c := n.control(nd)
	if c == nil {
		return "", errors.New("control port not open yet")
	}
	m, err := c.GetInfo(key)
	if err != nil {
		nd.closeControl()
		return "", err
	}
	return m[key], nil
}

func (nd *node) closeControl() {
	if nd.ctl != nil {
		nd.ctl.Close()
		nd.ctl = nil
	}
}

// stopNodes sends SIGTERM to every running node and waits for them to exit; those
// that have not within the bound get SIGKILL, and are returned.
func stopNodes(nodes []*node) (killed []string, err error) {
	var live []*node
	for _, nd := range nodes {
		nd.closeControl()
		if nd.running() {
			_ = nd.cmd.Process.Signal(syscall.SIGTERM) // tor exits promptly on TERM
			live = append(live, nd)
		}
	}
	allExited := func() bool {
		for _, nd := range live {
			if nd.running() {
				return false
			}
		}
		return true
	}
	if testkit.Poll(15*time.Second, allExited) {
		return nil, nil
	}
	for _, nd := range live {
		if nd.running() {
			killed = append(killed, nd.name)
			_ = nd.cmd.Process.Kill()
		}
	}
	if !testkit.Poll(10*time.Second, allExited) {
		return killed, fmt.Errorf("tor processes %v survived SIGKILL for 10s", killed)
	}
	return killed, nil
}

// tail returns the last lines of the node's log.
func (nd *node) tail(lines int) string {
	b, err := os.ReadFile(nd.logPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
