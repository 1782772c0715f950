// Command jm-directory-bench is a load generator for JoinMarket directory nodes. It
// simulates reference JoinMarket peers (makers and takers) over plain TCP against any
// directory's regtest/TCP mode — this repository's server or another implementation — and
// measures what the directory does under load.
//
// Usage:
//
//	jm-directory-bench <scenario> [flags]
//
// Scenarios:
//
//	idle       connect and handshake N peers, hold them, report handshakes/s and server RSS
//	fanout     K of N peers publish offers; count every delivery
//	latency    privmsg round trips between two peers under a background fan-out
//	orderbook  a taker's !orderbook against M makers: time to a full orderbook
//	churn      peers join and leave at a rate; every observer must get every ;D notice
//	ceiling    fanout against a minimal built-in TCP relay (what the machine can do at all)
//	relay      run that relay standalone
//	sched      goroutine scheduling latency, by kind, from the directory's runtime trace
//
// Every scenario prints progress to stderr once a second and a table (or, with --json, one
// JSON object) to stdout. The exit status is 1 when a correctness check fails (a line or a
// notice unaccounted for) or the scenario cannot run, 2 for bad usage.
//
// Peers speak like the reference client: {"type": 687, "line": "…"} envelopes with CRLF,
// the 793 handshake keys in the reference order with features {}, offers as
// "<nick>!PUBLIC!sw0reloffer <oid> 27300 <maxsize> 0 0.0002", privmsgs signed with the
// peer's key. Only loopback addresses (127.0.0.0/8) are ever dialled or listened on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: jm-directory-bench <scenario> [flags]

scenarios:
  idle       --peers N [--makers 0.5] [--concurrency 256] [--server-pid PID] [--hold 5s]
  fanout     --peers 1000 --publishers K --duration 10s [--rate R] [--size B]
  latency    --peers 1000 --bg-rate 100000 --samples 2000
  orderbook  --makers 1000
  churn      --peers 200 --rate 50/s --duration 10s
  ceiling    (fanout flags) fan-out against a minimal built-in relay
  relay      --listen 127.0.0.1:PORT  run the built-in relay standalone
  sched      TRACE  scheduling latency by goroutine kind, from a trace taken with
             curl -o TRACE 'http://HEALTH_HOST:PORT/debug/pprof/trace?seconds=5' (--pprof)

common flags: --addr 127.0.0.1:5222 --network regtest --json --concurrency 256 --timeout 30s
'jm-directory-bench <scenario> -h' lists a scenario's flags.
`

// common holds the flags every scenario shares.
type common struct {
	addr        string
	network     string
	json        bool
	concurrency int
	timeout     time.Duration // connect + handshake, per peer
	makers      float64       // fraction of makers among generated peers
	quiet       bool
	cpuprofile  string
	rcvbuf      int       // SO_RCVBUF of every simulated peer; 0 = kernel autotuning
	progress    io.Writer // nil: no progress
	fdBudget    uint64    // soft RLIMIT_NOFILE after raising it
}

func (c *common) register(fs *flag.FlagSet, withMakers bool) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5222", "directory `host:port` (loopback only)")
	fs.StringVar(&c.network, "network", "regtest", "network name sent in the handshake")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&c.concurrency, "concurrency", 256, "handshakes in flight at most")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "connect + handshake timeout per peer")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.IntVar(&c.rcvbuf, "rcvbuf", 0, "SO_RCVBUF `bytes` for every simulated peer (0 = kernel autotuning); bounds kernel memory at very high fan-out")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write this tool's own CPU profile to `file`")
	if withMakers {
		fs.Float64Var(&c.makers, "makers", 0.5, "fraction of peers that are makers (serve 127.0.0.1:<port>)")
	}
}

// dialer returns a dialer for the directory with the given initial read buffer.
func (c *common) dialer(bufSize int) *dialer {
	return &dialer{addr: c.addr, network: c.network, timeout: c.timeout, bufSize: bufSize, rcvbuf: c.rcvbuf}
}

// checkBudget fails early when n connections (plus slack) exceed the fd limit.
func (c *common) checkBudget(n int) error {
	if c.fdBudget != 0 && uint64(n)+64 > c.fdBudget {
		return fmt.Errorf("%d connections exceed this process's file descriptor limit (%d)", n, c.fdBudget)
	}
	return nil
}

// loopbackAddr checks that hostport names an address in 127.0.0.0/8 ("localhost" is
// taken as 127.0.0.1) and returns it normalised.
func loopbackAddr(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host).To4()
	if ip == nil || ip[0] != 127 {
		return "", fmt.Errorf("%q is not a 127.0.0.0/8 address: this tool only talks to loopback", hostport)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("bad port in %q", hostport)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// rateFlag parses "50", "50/s".
type rateFlag float64

func (r *rateFlag) String() string { return strconv.FormatFloat(float64(*r), 'f', -1, 64) }
func (r *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v < 0 {
		return errors.New("want a rate like 50 or 50/s")
	}
	*r = rateFlag(v)
	return nil
}

// run is main without os.Exit.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage+attackUsage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	budget, err := raiseNofile()
	if err != nil {
		fmt.Fprintln(stderr, "jm-directory-bench: cannot raise the open-file limit:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	name, rest := args[0], args[1:]
	if name == "worker" {
		// Hidden: a child process of "idle", driven over stdin/stdout.
		if err := runWorker(ctx, stdin, stdout, budget); err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench worker:", err)
			return 1
		}
		return 0
	}

	fs := flag.NewFlagSet("jm-directory-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{fdBudget: budget}
	var scenario func() (*report, error)
	switch name {
	case "idle":
		c.register(fs, true)
		o := idleOptions{common: c}
		fs.IntVar(&o.peers, "peers", 1000, "peers to connect")
		fs.IntVar(&o.serverPID, "server-pid", 0, "directory process id, to report its RSS (VmRSS)")
		fs.DurationVar(&o.hold, "hold", 5*time.Second, "keep every peer connected this long after the RSS reading")
		fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait this long after the last handshake before reading RSS")
		fs.IntVar(&o.workers, "workers", 0, "worker processes (0 = one per --per-worker peers; 1 = this process only when N fits)")
		fs.IntVar(&o.perWorker, "per-worker", 9000, "peers per worker process when --workers is 0")
		fs.IntVar(&o.sourceBase, "source-base", 2, "worker i dials from 127.0.0.(source-base+i)")
		scenario = func() (*report, error) { o.launch = execLauncher; return runIdle(ctx, &o) }
	case "fanout", "ceiling":
		c.register(fs, true)
		var cfg fanoutConfig
		var r rateFlag
		fanoutFlags(fs, &cfg, &r)
		var relayBuf int
		if name == "ceiling" {
			fs.IntVar(&relayBuf, "relay-sockbuf", relaySockBuf, "in-process relay: SO_SNDBUF/SO_RCVBUF `bytes` of its connections (0 = kernel autotuning)")
		}
		scenario = func() (*report, error) {
			cfg.rate = float64(r)
			if name == "fanout" {
				return runFanoutScenario(ctx, c, cfg, "fanout", nil)
			}
			explicit := false
			fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "addr" })
			return runCeiling(ctx, c, cfg, explicit, relayBuf)
		}
	case "latency":
		c.register(fs, true)
		o := latencyOptions{common: c}
		fs.IntVar(&o.peers, "peers", 1000, "background peers")
		fs.IntVar(&o.publishers, "publishers", 10, "background publishers")
		fs.Float64Var(&o.bgRate, "bg-rate", 100000, "background deliveries per second in total (lines received by all peers); 0 = none")
		fs.IntVar(&o.samples, "samples", 2000, "round trips to measure")
		fs.DurationVar(&o.interval, "interval", time.Millisecond, "pause between round trips (one is in flight at a time)")
		fs.DurationVar(&o.warmup, "warmup", time.Second, "background traffic before the first sample")
		fs.DurationVar(&o.replyTimeout, "reply-timeout", 5*time.Second, "a round trip slower than this counts as lost")
		fs.DurationVar(&o.drain, "drain", 5*time.Second, "after the background stops, wait at most this long without progress")
		fs.BoolVar(&o.relay, "relay", true, "also run the round trips through a minimal reference relay (the ceiling's, with privmsg routing) with the same peers, publishers and background, "+
			"and report its p50/p99 and our p99 as a ratio of its (p99_ratio; goal p99_ratio_ok: ≤ 1.5×). The goal is reported only: the exit status stays 1 for correctness failures alone")
		fs.BoolVar(&o.relayProcess, "relay-process", true, "run the reference relay in a child process of its own, as the directory runs (false: inside this process)")
		fs.IntVar(&o.block, "block", 200, "round trips per block: directory and relay blocks alternate, each with its own background switched on")
		fs.DurationVar(&o.blockWarmup, "block-warmup", 200*time.Millisecond, "background traffic before each block after a target's first (which gets --warmup)")
		fs.StringVar(&o.serveRelay, "serve-relay", "", "internal (the --relay-process child): serve the reference relay on `host:port` until stdin ends")
		o.stdin, o.stdout = stdin, stdout
		scenario = func() (*report, error) { return runLatency(ctx, &o) }
	case "orderbook":
		c.register(fs, false)
		o := orderbookOptions{common: c}
		fs.IntVar(&o.makers, "makers", 1000, "makers connected")
		fs.DurationVar(&o.wait, "wait", 30*time.Second, "give up waiting for the orderbook after this long")
		scenario = func() (*report, error) { return runOrderbook(ctx, &o) }
	case "churn":
		c.register(fs, true)
		o := churnOptions{common: c, rate: 50}
		fs.IntVar(&o.peers, "peers", 200, "observers that stay connected")
		fs.Var((*rateFlag)(&o.rate), "rate", "new peers per second (each joins and leaves), e.g. 50/s")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long new peers keep coming")
		fs.DurationVar(&o.dwell, "dwell", 0, "how long each new peer stays after its handshake")
		fs.DurationVar(&o.drain, "drain", 5*time.Second, "wait at most this long for outstanding notices")
		scenario = func() (*report, error) { return runChurn(ctx, &o) }
	case "relay":
		var listen, network string
		var queue, sockBuf int
		var wto time.Duration
		fs.StringVar(&listen, "listen", "127.0.0.1:5223", "listen `host:port` (loopback only)")
		fs.StringVar(&network, "network", "regtest", "network named in the canned 795")
		fs.IntVar(&queue, "queue-bytes", 8<<20, "per-connection outbound queue; forwarding to a full one waits")
		fs.DurationVar(&wto, "write-timeout", 30*time.Second, "per-write deadline; a connection missing it is cut")
		fs.IntVar(&sockBuf, "sockbuf", relaySockBuf, "SO_SNDBUF/SO_RCVBUF `bytes` of accepted connections (0 = kernel autotuning)")
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		addr, err := loopbackAddr(listen)
		if err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench:", err)
			return 2
		}
		if err := serveRelay(ctx, addr, network, queue, wto, sockBuf, stderr); err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench relay:", err)
			return 1
		}
		return 0
	case "sched":
		var asJSON bool
		fs.BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
		fs.Bool("quiet", false, "accepted for symmetry with the scenarios (sched prints no progress)")
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		file := fs.Arg(0)
		if fs.NArg() > 0 { // flags may follow the file
			if err := fs.Parse(fs.Args()[1:]); err != nil {
				return 2
			}
		}
		if file == "" || fs.NArg() != 0 {
			fmt.Fprintln(stderr, "jm-directory-bench sched: want one trace file")
			return 2
		}
		rep, err := runSched(file)
		if err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench sched:", err)
			return 1
		}
		if asJSON {
			err = rep.writeJSON(stdout)
		} else {
			err = rep.writeTable(stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench:", err)
			return 1
		}
		return 0
	default:
		a, ok := attacks[name]
		if !ok {
			fmt.Fprintf(stderr, "jm-directory-bench: unknown scenario %q\n\n%s%s", name, usage, attackUsage())
			return 2
		}
		scenario = a.setup(ctx, fs, c)
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jm-directory-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	addr, err := loopbackAddr(c.addr)
	if err != nil {
		fmt.Fprintln(stderr, "jm-directory-bench:", err)
		return 2
	}
	c.addr = addr
	if !c.quiet {
		c.progress = stderr
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "jm-directory-bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := scenario()
	if err != nil {
		fmt.Fprintf(stderr, "jm-directory-bench %s: %v\n", name, err)
		return 1
	}
	if c.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "jm-directory-bench:", err)
		return 1
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

// fanoutFlags registers the flags of fanout and ceiling.
func fanoutFlags(fs *flag.FlagSet, cfg *fanoutConfig, r *rateFlag) {
	fs.IntVar(&cfg.peers, "peers", 1000, "peers connected (publishers included)")
	fs.IntVar(&cfg.publishers, "publishers", 10, "peers that publish offers")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long the publishers publish")
	fs.Var(r, "rate", "offers per second per publisher (0 = as fast as the socket takes them)")
	fs.IntVar(&cfg.size, "size", 0, "pad each offer line to about this many bytes (0 = natural, ~80)")
	fs.DurationVar(&cfg.drain, "drain", 5*time.Second, "after publishing, wait at most this long without progress for outstanding lines")
	fs.DurationVar(&cfg.writeTimeout, "write-timeout", 5*time.Second, "publisher write deadline: a write blocked longer is counted and retried; at the end of --duration the publisher gives up")
}
