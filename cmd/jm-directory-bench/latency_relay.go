package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// The latency scenario's reference: the same round trips through relay.go's relay, with
// the one piece of routing a privmsg needs. relay.go's relay forwards every line to every
// other connection; a privmsg would then be a broadcast to the ~1 000 background peers,
// two per round trip, and at one round trip per millisecond that is twenty times the
// background itself. So privRelay sends a privmsg whose recipient is a joined nick to
// that connection only (in order with everything else queued for it), and forwards every
// other line exactly as relay.go does, through relay.go's hooks.

// privRelay is relay.go's relay plus privmsg routing by recipient nick.
type privRelay struct {
	*relay
	nmu   sync.RWMutex
	nicks map[string]*relayConn // joined nick → its connection; under nmu
}

// newPrivRelay starts a privRelay on ln (arguments as newRelay's).
func newPrivRelay(ln net.Listener, network string, queueBytes int, wto time.Duration, sockBuf int) *privRelay {
	pr := &privRelay{relay: makeRelay(ln, network, queueBytes, wto, sockBuf), nicks: map[string]*relayConn{}}
	pr.joined, pr.left, pr.route = pr.join, pr.leave, pr.privDest
	pr.start()
	return pr
}

// join registers the nick of rc's handshake line.
func (pr *privRelay) join(rc *relayConn, hello []byte) {
	if rc.nick = helloNick(hello); rc.nick == "" {
		return
	}
	pr.nmu.Lock()
	pr.nicks[rc.nick] = rc
	pr.nmu.Unlock()
}

// leave forgets rc's nick, unless another connection has taken it since.
func (pr *privRelay) leave(rc *relayConn) {
	if rc.nick == "" {
		return
	}
	pr.nmu.Lock()
	if pr.nicks[rc.nick] == rc {
		delete(pr.nicks, rc.nick)
	}
	pr.nmu.Unlock()
}

// helloNick is the nick of a 793 line, "" if there is none.
func helloNick(line []byte) string {
	env, err := wire.Decode(bytes.TrimRight(line, "\r\n"))
	if err != nil {
		return ""
	}
	var h struct {
		Nick string `json:"nick"`
	}
	if json.Unmarshal([]byte(env.Line), &h) != nil {
		return ""
	}
	return h.Nick
}

// privPrefixes are the two spellings of a privmsg envelope's start: the reference
// client's (this tool's) and the compact one.
var privPrefixes = [...]string{`{"type": 685, "line": "`, `{"type":685,"line":"`}

// privDest is the joined connection a privmsg line ("<from>!<to>!…") is addressed to, or
// nil for any other line.
func (pr *privRelay) privDest(line []byte) *relayConn {
	for _, p := range privPrefixes {
		if !bytes.HasPrefix(line, []byte(p)) {
			continue
		}
		rest := line[len(p):]
		if len(rest) < 34 || rest[16] != '!' || rest[33] != '!' {
			return nil
		}
		pr.nmu.RLock()
		rc := pr.nicks[string(rest[17:33])]
		pr.nmu.RUnlock()
		return rc
	}
	return nil
}

// serveLatencyRelay is the child process of a latency run with --relay-process
// ("latency --serve-relay ADDR"): it serves a privRelay on ADDR, writes the address it
// listens on as the first line of out, and runs until in ends (the parent closed it or
// exited) or ctx is done. Its report (written after the address line) says what the
// relay accepted, forwarded and cut.
func serveLatencyRelay(ctx context.Context, addr, network string, in io.Reader, out io.Writer) (*report, error) {
	addr, err := loopbackAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// The directory's defaults: 8 MiB queues, 30 s write deadline, kernel-tuned buffers.
	r := newPrivRelay(ln, network, 8<<20, 30*time.Second, 0)
	if _, err := fmt.Fprintln(out, r.Addr()); err != nil {
		r.Close()
		return nil, err
	}
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, in); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	r.Close()
	rep := newReport("latency-relay")
	rep.add("accepted", r.accepted.Load(), "connections")
	rep.add("forwarded_chunks", r.chunks.Load(), "")
	rep.add("cut", r.cut.Load(), "connections (write deadline missed)")
	return rep, nil
}

// relayChildEnv is set in the environment of the relay's child process.
const relayChildEnv = "JM_DIRECTORY_BENCH_RELAY_CHILD"

// latencyRelay is a running reference relay: its address, and stop, which ends it and
// returns how many connections it cut for a missed write deadline.
type latencyRelay struct {
	addr  string
	where string // "process" or "in-process"
	stop  func() (cut int64, err error)
}

// startLatencyRelay starts the reference relay: a child process of this executable when
// o.relayProcess (so that, like the directory, it has a Go runtime and threads of its
// own, not the load generator's), else inside this process.
//
// A process never starts a relay process from inside a test binary (which would run its
// tests instead of serving, and each of them start more) or from a relay process: it runs
// the relay in-process then.
func startLatencyRelay(o *latencyOptions) (*latencyRelay, error) {
	if !o.relayProcess || testing.Testing() || os.Getenv(relayChildEnv) != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		r := newPrivRelay(ln, o.network, 8<<20, 30*time.Second, 0)
		return &latencyRelay{addr: r.Addr(), where: "in-process", stop: func() (int64, error) {
			r.Close()
			return r.cut.Load(), nil
		}}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "latency", "--serve-relay", "127.0.0.1:0", "--network", o.network, "--json", "--quiet")
	cmd.Env = append(os.Environ(), relayChildEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lr, err := attachRelay(in, out, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	lr.where = "process"
	return lr, nil
}

// attachRelay is the parent's side of serveLatencyRelay over its stdin (in) and stdout
// (out); wait waits for the child to end.
func attachRelay(in io.WriteCloser, out io.Reader, wait func() error) (*latencyRelay, error) {
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		in.Close()
		werr := wait()
		return nil, fmt.Errorf("relay process: no address (%v; %v)", err, werr)
	}
	addr, err := loopbackAddr(strings.TrimSpace(line))
	if err != nil {
		in.Close()
		_ = wait()
		return nil, fmt.Errorf("relay process: %w", err)
	}
	return &latencyRelay{addr: addr, stop: func() (int64, error) {
		in.Close()
		rest, _ := io.ReadAll(br)
		if err := wait(); err != nil {
			return -1, fmt.Errorf("relay process: %w", err)
		}
		var m struct {
			Cut *int64 `json:"cut"`
		}
		if err := json.Unmarshal(rest, &m); err != nil || m.Cut == nil {
			return -1, fmt.Errorf("relay process: unreadable report %q", rest)
		}
		return *m.Cut, nil
	}}, nil
}
