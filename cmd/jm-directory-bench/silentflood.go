package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// The silentflood scenario: connections that connect and never send a byte, enough of
// them to fill whatever the directory reserves for connections still handshaking, then
// more at a steady rate, while honest peers (reference handshake, half makers, half
// takers) try to join. The victims' view: does an honest handshake still get its
// accepted 795 within --within of starting to connect?

func init() {
	attacks["silentflood"] = attack{
		usage: "--silent 5000 --silent-rate 100 --duration 30s --join-rate 10  silent connections vs. honest joins",
		setup: setupSilentflood,
	}
}

// silentOptions are the silentflood scenario's flags.
type silentOptions struct {
	*common
	silent     int           // silent connections opened before the flood
	silentRate float64       // new silent connections per second during the flood
	duration   time.Duration // how long the flood (and the honest joins) last
	joinRate   float64       // honest joins per second during the flood
	within     time.Duration // an honest handshake must be accepted this soon
	target     float64       // fraction of honest handshakes that must be accepted in time
	sources    int           // spread every connection over 127.0.0.1 … 127.0.0.N
}

func setupSilentflood(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
	c.register(fs, false)
	// An honest peer waits this long for its 795 (connect included); the target is
	// --within, and a later answer is reported as late.
	c.timeout = 10 * time.Second
	fs.Lookup("timeout").DefValue = "10s"
	o := &silentOptions{common: c, silentRate: 100, joinRate: 10}
	fs.IntVar(&o.silent, "silent", 5000, "silent connections opened before the flood")
	fs.Var((*rateFlag)(&o.silentRate), "silent-rate", "new silent connections per second during the flood, e.g. 100/s")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long the flood and the honest joins last")
	fs.Var((*rateFlag)(&o.joinRate), "join-rate", "honest joins per second during the flood (half makers, half takers)")
	fs.DurationVar(&o.within, "within", 5*time.Second, "an honest handshake counts as accepted when its 795 arrives this soon after it starts to connect")
	fs.Float64Var(&o.target, "target", 0.99, "fraction of honest handshakes that must be accepted within --within")
	fs.IntVar(&o.sources, "sources", 4, "spread all connections (silent and honest alike) over source addresses 127.0.0.1 … 127.0.0.N")
	return func() (*report, error) { return runSilentflood(ctx, o) }
}

// silentResult is what a silentflood run observed.
type silentResult struct {
	sources     string
	initialOpen time.Duration // time to open the first --silent connections

	silentOpened, silentOpenFailed int64
	silentOpenFailures             map[string]int64 // by error class
	silentClosed                   int64            // ended by the server before we closed them
	silentCloseAges                []time.Duration  // connect → server's close, for each closed one
	silentBytes                    int64            // bytes the server sent on silent connections

	attempted                             int64
	accepted, late                        int64 // accepted within --within, accepted later
	rejected, timeouts, closed, otherFail int64
	failures                              map[string]int64 // by reason (the motd of a rejection, …)
	latencies                             []time.Duration  // connect start → accepted 795
	honestCut                             int64            // accepted, then cut before we closed
}

// runSilentflood runs the scenario.
func runSilentflood(ctx context.Context, o *silentOptions) (*report, error) {
	if o.silent < 0 || o.silentRate < 0 || o.joinRate <= 0 || o.duration <= 0 || o.within <= 0 || o.target < 0 || o.target > 1 {
		return nil, errors.New("need --silent ≥ 0, --silent-rate ≥ 0, --join-rate > 0, --duration > 0, --within > 0, 0 ≤ --target ≤ 1")
	}
	nFlood := scheduled(o.silentRate, o.duration) // silent connections during the flood
	nSilent := o.silent + nFlood
	nHonest := scheduled(o.joinRate, o.duration)
	if err := o.checkBudget(nSilent + nHonest); err != nil {
		return nil, err
	}
	ips, err := sourceAddrs(o.sources)
	if err != nil {
		return nil, err
	}
	ring := &sourceRing{ips: ips}

	// Honest identities, alternately makers and takers, made before the clock starts.
	specs := make([]spec, nHonest)
	for i := range specs {
		specs[i].id = newIdentity()
		specs[i].location = wire.NotServing
		if i%2 == 0 {
			specs[i].location = makerLocation(i)
		}
	}

	res := &silentResult{sources: describeSources(ips), silentOpenFailures: map[string]int64{}, failures: map[string]int64{}}
	var (
		mu       sync.Mutex // res's maps and slices, conns
		conns    []net.Conn // every open connection, silent and honest, to close at the end
		closing  atomic.Bool
		watchers sync.WaitGroup
		inflight sync.WaitGroup // dials and joins
		opened   atomic.Int64
		closedN  atomic.Int64
		attempts atomic.Int64
		okN      atomic.Int64
	)
	// watch reads a connection until it ends; an end before ours is the server's close.
	watch := func(c net.Conn, openedAt time.Time, silent bool) {
		defer watchers.Done()
		buf := make([]byte, 512)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err == nil {
				continue
			}
			age := time.Since(openedAt)
			mu.Lock()
			if silent {
				res.silentBytes += n
			}
			if !closing.Load() {
				if silent {
					res.silentClosed++
					res.silentCloseAges = append(res.silentCloseAges, age)
					closedN.Add(1)
				} else {
					res.honestCut++
				}
			}
			mu.Unlock()
			return
		}
	}
	keep := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closing.Load() {
			return false
		}
		conns = append(conns, c)
		return true
	}
	openSilent := func() {
		c, err := dialRaw(ctx, o.addr, ring.pick(), 0, o.timeout)
		if err != nil {
			mu.Lock()
			res.silentOpenFailed++
			res.silentOpenFailures[errClass(err)]++
			mu.Unlock()
			return
		}
		at := time.Now()
		if !keep(c) {
			c.Close()
			return
		}
		opened.Add(1)
		watchers.Add(1)
		go watch(c, at, true)
	}
	joinHonest := func(s spec) {
		attempts.Add(1)
		d := o.dialer(1024)
		d.source = ring.pick()
		t0 := time.Now()
		p, err := d.join(ctx, s.id, s.location)
		lat := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		res.attempted++
		if err != nil {
			res.failures[failReason(err)]++
			switch joinOutcome(err) {
			case outcomeRejected:
				res.rejected++
			case outcomeTimeout:
				res.timeouts++
			case outcomeClosed:
				res.closed++
			default:
				res.otherFail++
			}
			return
		}
		res.latencies = append(res.latencies, lat)
		if lat <= o.within {
			res.accepted++
			okN.Add(1)
		} else {
			res.late++
		}
		if closing.Load() {
			p.conn.Close()
			return
		}
		conns = append(conns, p.conn)
		watchers.Add(1)
		go watch(p.conn, time.Now(), false)
	}
	shutdown := func() {
		inflight.Wait()
		mu.Lock()
		closing.Store(true)
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		watchers.Wait()
	}

	phase := "opening silent connections"
	var phaseMu sync.Mutex
	pr := startProgress(o.progress, "silentflood", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: silent open=%d closed-by-server=%d honest attempted=%d accepted-in-time=%d",
			phase, opened.Load()-closedN.Load(), closedN.Load(), attempts.Load(), okN.Load())
	})
	defer pr.stop()

	// Phase 1: the initial silent connections, as fast as --concurrency allows.
	t0 := time.Now()
	sem := make(chan struct{}, max(o.concurrency, 1))
	for i := 0; i < o.silent && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		inflight.Add(1)
		go func() {
			defer func() { <-sem; inflight.Done() }()
			openSilent()
		}()
	}
	inflight.Wait()
	res.initialOpen = time.Since(t0)

	// Phase 2: the flood at --silent-rate and the honest joins at --join-rate.
	phaseMu.Lock()
	phase = "flood"
	phaseMu.Unlock()
	start := time.Now()
	// Number k of a schedule is due at k/rate; every one is launched, late if this
	// process falls behind.
	var silentLaunched, honestLaunched int
	for (silentLaunched < nFlood || honestLaunched < nHonest) && ctx.Err() == nil {
		elapsed := time.Since(start)
		for due := int(o.silentRate*elapsed.Seconds()) + 1; silentLaunched < min(due, nFlood); silentLaunched++ {
			inflight.Add(1)
			go func() { defer inflight.Done(); openSilent() }()
		}
		for due := int(o.joinRate*elapsed.Seconds()) + 1; honestLaunched < min(due, nHonest); honestLaunched++ {
			s := specs[honestLaunched]
			inflight.Add(1)
			go func() { defer inflight.Done(); joinHonest(s) }()
		}
		// The pacing of the two schedules: wake at the next due connection.
		next := time.Duration(math.MaxInt64)
		if silentLaunched < nFlood {
			next = nextDue(o.silentRate, silentLaunched)
		}
		if honestLaunched < nHonest {
			next = min(next, nextDue(o.joinRate, honestLaunched))
		}
		if next == math.MaxInt64 {
			break
		}
		if err := sleepCtx(ctx, max(next-time.Since(start), 200*time.Microsecond)); err != nil {
			break
		}
	}
	// The flood lasts --duration (the silent connections stay open), then the last joins
	// get their --timeout.
	_ = sleepCtx(ctx, o.duration-time.Since(start))
	phaseMu.Lock()
	phase = "waiting for the last joins"
	phaseMu.Unlock()
	shutdown()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.silentOpened = opened.Load()
	return buildSilentReport(o, res), nil
}

// scheduled is how many of a schedule of rate per second fall within d: ⌈rate·d⌉.
func scheduled(rate float64, d time.Duration) int {
	return int(math.Ceil(rate*d.Seconds() - 1e-9))
}

// nextDue is when, from the start of a schedule of rate per second, number n is due
// (n/rate); never for rate 0.
func nextDue(rate float64, n int) time.Duration {
	if rate <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(float64(n) / rate * float64(time.Second))
}

// buildSilentReport reports a silentflood run and checks the target.
func buildSilentReport(o *silentOptions, r *silentResult) *report {
	rep := newReport("silentflood")
	rep.add("target", fmt.Sprintf("≥ %g %% of honest handshakes accepted within %v; no accepted honest peer cut", 100*o.target, o.within), "")
	rep.add("source_addresses", r.sources, "")
	rep.add("silent_initial", o.silent, "connections")
	rep.add("silent_rate", o.silentRate, "connections/s")
	rep.addMs("flood_duration", o.duration)
	rep.add("join_rate", o.joinRate, "honest joins/s")
	rep.addMs("initial_open", r.initialOpen)
	rep.add("silent_opened", r.silentOpened, "")
	rep.add("silent_open_failed", r.silentOpenFailed, "")
	rep.add("silent_open_failures", r.silentOpenFailures, "")
	rep.add("silent_closed_by_server", r.silentClosed, "")
	rep.add("silent_open_at_end", r.silentOpened-r.silentClosed, "")
	rep.add("silent_bytes_from_server", r.silentBytes, "")
	rep.addLatencies("silent_close_age", r.silentCloseAges)
	rep.add("honest_attempted", r.attempted, "")
	rep.add("honest_accepted", r.accepted, fmt.Sprintf("(within %v)", o.within))
	rep.add("honest_accepted_pct", pct(r.accepted, r.attempted), "%")
	rep.add("honest_accepted_late", r.late, "")
	rep.add("honest_rejected", r.rejected, "(795 accepted:false)")
	rep.add("honest_closed_without_795", r.closed, "(refused, reset or closed)")
	rep.add("honest_timeouts", r.timeouts, fmt.Sprintf("(nothing within %v)", o.timeout))
	rep.add("honest_other_failures", r.otherFail, "")
	rep.add("honest_failures", r.failures, "")
	rep.addLatencies("handshake", r.latencies)
	rep.add("honest_cut_after_join", r.honestCut, "")
	need := int64(math.Ceil(o.target*float64(r.attempted) - 1e-9))
	switch {
	case r.attempted == 0:
		rep.fail("no honest handshake was attempted")
	case r.accepted < need:
		rep.fail("%d of %d honest handshakes (%.1f %%) accepted within %v, want ≥ %d (%g %%): %d late, %d rejected, %d closed without a 795, %d timeouts, %d other",
			r.accepted, r.attempted, pct(r.accepted, r.attempted), o.within, need, 100*o.target, r.late, r.rejected, r.closed, r.timeouts, r.otherFail)
	}
	if r.honestCut > 0 {
		rep.fail("%d accepted honest peers were cut during the flood", r.honestCut)
	}
	return rep
}
