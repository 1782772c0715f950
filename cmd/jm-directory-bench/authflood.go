package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// The authflood scenario: what a stranger can make the directory hold or do through nick
// authentication (JMP-0005, docs/protocol.md §5), beside honest peers joining.
//
//   - Stallers offer nick_auth, receive the 795 and the 803 challenge, and never answer:
//     the directory holds each in its handshake pool until nick_auth_timeout (an 807
//     "expired") or until it evicts it for a newcomer. --stallers are opened first (enough
//     to fill the pool at its default size), then --stall-rate more per second.
//   - Forgers answer the challenge at once with a syntactically valid but wrong 805, at
//     --forgers new connections per second: each costs the directory a verification, an
//     807 "invalid" and a close. --forge says how the proof is wrong.
//
// Honest peers join at --join-rate, alternately joinmarket-ng clients that authenticate
// their nick (793 with nick_auth, ping and peerlist_features; the 795; the 803; a correct
// 805 signed with a real secp256k1 key; an 807 "ok") and reference clients (a plain 793,
// features {}, and an accepted 795). The victims' view: how many honest joins complete
// within --within, their latency, and whether any joined honest peer is cut later. The
// attacker's view: how long the directory held each staller and how it let it go, and
// the 807 codes the forgers got.

func init() {
	attacks["authflood"] = attack{
		usage: "--stallers 2500 --stall-rate 100 --forgers 200 --duration 30s --join-rate 10  nick-auth stallers and forged proofs vs. honest joins",
		setup: setupAuthflood,
	}
}

// Ways a forger's proof is wrong (--forge).
const (
	forgeTranscript = "transcript" // the nick's own key, signing another challenge: a full verification
	forgeKey        = "key"        // another key than the nick's, over the right transcript
	forgeMixed      = "mixed"      // alternately
)

// authfloodOptions are the authflood scenario's flags.
type authfloodOptions struct {
	*common
	stallers    int           // stallers opened before the flood
	stallRate   float64       // new stallers per second during the flood
	forgeRate   float64       // new forgers per second during the flood
	forge       string        // how a forged proof is wrong: transcript, key or mixed
	maxForging  int           // forgers in flight at most
	duration    time.Duration // how long the flood (and the honest joins) last
	joinRate    float64       // honest joins per second during the flood
	within      time.Duration // an honest join must complete this soon
	target      float64       // fraction of honest joins that must complete in time
	sources     int           // spread every connection over 127.0.0.1 … 127.0.0.N
	directoryID string        // the directory-id honest ng clients expect; "" = --addr
}

func setupAuthflood(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
	c.register(fs, false)
	// An honest peer waits this long for its answer (connect included); the target is
	// --within, and a later answer is reported as late.
	c.timeout = 10 * time.Second
	fs.Lookup("timeout").DefValue = "10s"
	o := &authfloodOptions{common: c, stallRate: 100, forgeRate: 200, joinRate: 10}
	fs.IntVar(&o.stallers, "stallers", 2500, "stallers opened before the flood (the default fills a default 2 048-connection handshake pool)")
	fs.Var((*rateFlag)(&o.stallRate), "stall-rate", "new stallers per second during the flood, e.g. 100/s")
	fs.Var((*rateFlag)(&o.forgeRate), "forgers", "new forgers per second during the flood, each answering its challenge with a wrong proof at once, e.g. 200/s")
	fs.StringVar(&o.forge, "forge", forgeTranscript, "how a forged proof is wrong: transcript (the nick's key over another challenge: the directory verifies the signature), key (another key than the nick's), mixed")
	fs.IntVar(&o.maxForging, "max-forging", 2000, "forgers in flight at most; a forger due while this many are in flight is skipped and counted")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long the flood and the honest joins last")
	fs.Var((*rateFlag)(&o.joinRate), "join-rate", "honest joins per second during the flood (alternately joinmarket-ng clients that authenticate and reference clients)")
	fs.DurationVar(&o.within, "within", 5*time.Second, "an honest join counts when it completes (807 ok, or an accepted 795 for a reference client) this soon after it starts to connect")
	fs.Float64Var(&o.target, "target", 0.99, "fraction of honest joins that must complete within --within")
	fs.IntVar(&o.sources, "sources", 4, "spread all connections (attackers and honest alike) over source addresses 127.0.0.1 … 127.0.0.N")
	fs.StringVar(&o.directoryID, "directory-id", "", "the directory-id honest joinmarket-ng clients expect in the 803 (default: --addr, what the directory uses on regtest)")
	return func() (*report, error) { return runAuthflood(ctx, o) }
}

// authFeatures are what a joinmarket-ng client offering nick authentication announces.
var authFeatures = map[string]bool{"nick_auth": true, "peerlist_features": true, "ping": true}

// authHello is the 793 line of a joinmarket-ng client offering nick authentication: the
// line dialer.joinWith sends with authFeatures, which the proof's transcript covers.
func authHello(nick, location, network string) string {
	return handshake.ClientHello{Nick: nick, Location: location, Network: network, Features: authFeatures}.Line()
}

// authOpen connects from src, joins offering nick authentication (dialer.joinWith with
// authFeatures: the 793 of authHello, the 795 checked), checks that the 795 advertises
// nick_auth and reads the 803. The connection's deadline is deadline; on error it is
// closed, and the error is an *hsError whose reason groups it ("no 803: timeout", "795
// without nick_auth", …).
func authOpen(ctx context.Context, addr, network string, src net.IP, deadline time.Time, id identity, location string) (*peer, nickauth.Challenge, error) {
	d := &dialer{addr: addr, network: network, source: src, timeout: time.Until(deadline), bufSize: 2048}
	p, line, err := d.joinWith(ctx, id, location, authFeatures)
	if err != nil {
		return nil, nickauth.Challenge{}, err
	}
	_ = p.conn.SetDeadline(deadline)
	fail := func(err error) (*peer, nickauth.Challenge, error) {
		p.conn.Close()
		return nil, nickauth.Challenge{}, err
	}
	env, _ := wire.Decode(line) // joinWith's checkDNHandshake decoded it
	var dn struct {
		Features map[string]any `json:"features"`
	}
	if json.Unmarshal([]byte(env.Line), &dn) != nil || dn.Features["nick_auth"] != true {
		return fail(&hsError{reason: "795 without nick_auth"})
	}
	line, err = p.readLine()
	if err != nil {
		return fail(&hsError{reason: "no 803: " + errClass(err), err: err})
	}
	env, err = wire.Decode(line)
	if err != nil || env.Type != nickauth.TypeChallenge {
		return fail(&hsError{reason: "bad 803: not a challenge"})
	}
	ch, err := nickauth.ParseChallenge(env.Line)
	if err != nil {
		return fail(&hsError{reason: "bad 803: malformed", err: err})
	}
	return p, ch, nil
}

// authProve sends proof as the 805 and reads the 807, returning its code. The connection
// keeps its deadline. Errors are *hsError ("no 807: closed by server", "bad 807").
func authProve(p *peer, proof nickauth.Proof) (nickauth.Code, error) {
	if _, err := p.conn.Write(appendEnvelope(nil, nickauth.TypeProof, proof.Line())); err != nil {
		return "", &hsError{reason: "send 805: " + errClass(err), err: err}
	}
	line, err := p.readLine()
	if err != nil {
		return "", &hsError{reason: "no 807: " + errClass(err), err: err}
	}
	return parse807(line)
}

// parse807 decodes an 807 line and returns its code.
func parse807(line []byte) (nickauth.Code, error) {
	env, err := wire.Decode(line)
	if err != nil || env.Type != nickauth.TypeResult {
		return "", &hsError{reason: "bad 807: not a result"}
	}
	code, err := nickauth.ParseResult(env.Line)
	if err != nil {
		return "", &hsError{reason: "bad 807: malformed", err: err}
	}
	return code, nil
}

// forgedProof returns a syntactically valid proof that must not verify for the client
// id that sent hello and got ch: signed by id's key over another challenge (transcript),
// or by other's key over the right transcript (key).
func forgedProof(kind string, id, other identity, ch nickauth.Challenge, hello string) nickauth.Proof {
	if kind == forgeKey {
		return nickauth.Prove(other.key, ch.Challenge, ch.DirectoryID, hello)
	}
	wrong := sha256.Sum256([]byte(ch.Challenge))
	return nickauth.Prove(id.key, hex.EncodeToString(wrong[:]), ch.DirectoryID, hello)
}

// Outcome of an honest joinmarket-ng join whose round ended with an 807 other than ok.
const outcomeAuthFailed = "807_not_ok"

// authResult is what an authflood run observed.
type authResult struct {
	sources     string
	directoryID string
	initialOpen time.Duration // time to open the first --stallers

	stallAttempted, stallOpened int64
	stallFailures               map[string]int64 // stallers that got no 803, by reason
	stallEnds                   map[string]int64 // how the server let an opened staller go
	stallHeld                   []time.Duration  // 803 → the server's close, for each one it closed
	stallOpenAtEnd              int64

	forgeLaunched, forgeSkipped int64
	forgeCodes                  map[string]int64 // 807 codes the forgers got
	forgeFailures               map[string]int64 // forgers that got no 807, by reason
	forgeClosedAfter807         int64            // the server closed after its 807, as it must
	forgeRounds                 []time.Duration  // connect → 807

	attempted, ngAttempted, refAttempted  int64
	accepted, ngAccepted, refAccepted     int64 // completed within --within
	late                                  int64 // completed later
	rejected, timeouts, closed, otherFail int64
	authFailed                            int64 // ng: an 807 other than ok
	failures                              map[string]int64
	latencies, ngLatencies, refLatencies  []time.Duration // connect start → 807 ok / accepted 795
	honestCut                             int64           // joined, then cut before we closed
}

// runAuthflood runs the scenario.
func runAuthflood(ctx context.Context, o *authfloodOptions) (*report, error) {
	if o.stallers < 0 || o.stallRate < 0 || o.forgeRate < 0 || o.joinRate <= 0 || o.duration <= 0 || o.within <= 0 ||
		o.target < 0 || o.target > 1 || o.maxForging < 1 {
		return nil, errors.New("need --stallers ≥ 0, --stall-rate ≥ 0, --forgers ≥ 0, --join-rate > 0, --duration > 0, --within > 0, 0 ≤ --target ≤ 1, --max-forging ≥ 1")
	}
	switch o.forge {
	case forgeTranscript, forgeKey, forgeMixed:
	default:
		return nil, fmt.Errorf("--forge %q: want transcript, key or mixed", o.forge)
	}
	dirID := o.directoryID
	if dirID == "" {
		dirID = strings.ToLower(o.addr)
	}
	nStallFlood := scheduled(o.stallRate, o.duration)
	nForge := scheduled(o.forgeRate, o.duration)
	nHonest := scheduled(o.joinRate, o.duration)
	// Stallers the directory evicts are closed on our side too: what we hold at once is
	// about the pool, but never more than every staller.
	if err := o.checkBudget(o.stallers + nHonest + min(o.maxForging, nForge) + min(nStallFlood, 4096)); err != nil {
		return nil, err
	}
	ips, err := sourceAddrs(o.sources)
	if err != nil {
		return nil, err
	}
	ring := &sourceRing{ips: ips}

	// Identities, made before the clock starts: honest ones (even: ng, odd: reference;
	// makers and takers alternating within each kind), and a pool the attackers share.
	honest := make([]spec, nHonest)
	for i := range honest {
		honest[i].id = newIdentity()
		honest[i].location = wire.NotServing
		if i%4 < 2 {
			honest[i].location = makerLocation(i)
		}
	}
	// Honest peer k starts at a random moment of its slot [k, k+1)/rate: honest clients
	// arrive independently of the flood, never in step with it (attacker number j is due
	// exactly at j/rate, and with round rates an honest join would otherwise start in
	// the same instant as an attacker's connection every time).
	honestAt := make([]time.Duration, nHonest)
	for k := range honestAt {
		honestAt[k] = time.Duration((float64(k) + rand.Float64()) / o.joinRate * float64(time.Second))
	}
	pool := make([]identity, 64)
	for i := range pool {
		pool[i] = newIdentity()
	}
	var poolNext atomic.Uint64
	attacker := func() identity { return pool[(poolNext.Add(1)-1)%uint64(len(pool))] }

	res := &authResult{sources: describeSources(ips), directoryID: dirID, stallFailures: map[string]int64{},
		stallEnds: map[string]int64{}, forgeCodes: map[string]int64{}, forgeFailures: map[string]int64{},
		failures: map[string]int64{}}
	var (
		mu       sync.Mutex // res's maps, slices and counts, conns
		conns    []net.Conn // every open staller and honest connection, to close at the end
		closing  atomic.Bool
		watchers sync.WaitGroup
		inflight sync.WaitGroup // stallers opening, forgers, honest joins
		stalling atomic.Int64   // stallers open now
		forging  atomic.Int64   // forgers in flight now
		forged   atomic.Int64   // 807s the forgers got
		attempts atomic.Int64
		okN      atomic.Int64
	)
	keep := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closing.Load() {
			return false
		}
		conns = append(conns, c)
		return true
	}
	// stall opens one staller and holds it until the directory lets it go.
	stall := func() {
		id := attacker()
		deadline := time.Now().Add(o.timeout)
		p, _, err := authOpen(ctx, o.addr, o.network, ring.pick(), deadline, id, wire.NotServing)
		mu.Lock()
		res.stallAttempted++
		if err != nil {
			res.stallFailures[failReason(err)]++
			mu.Unlock()
			return
		}
		res.stallOpened++
		mu.Unlock()
		challenged := time.Now()
		_ = p.conn.SetDeadline(time.Time{})
		if !keep(p.conn) {
			p.conn.Close()
			return
		}
		stalling.Add(1)
		watchers.Go(func() {
			defer stalling.Add(-1)
			end := ""
			for {
				err := p.readChunk(func(line []byte) {
					if code, err := parse807(line); err == nil && end == "" {
						end = "807 " + code.String()
					}
				})
				if err == nil {
					continue
				}
				mu.Lock()
				if closing.Load() { // our close at the end (closing is set under mu)
					res.stallOpenAtEnd++
					mu.Unlock()
					return
				}
				if end == "" {
					end = "closed without 807 (" + errClass(err) + ")"
				}
				res.stallEnds[end]++
				res.stallHeld = append(res.stallHeld, time.Since(challenged))
				mu.Unlock()
				return
			}
		})
	}
	// forge makes one forger: the round at once, with a wrong proof.
	var forgeN atomic.Uint64
	forge := func() {
		defer forging.Add(-1)
		kind := o.forge
		if kind == forgeMixed {
			kind = [2]string{forgeTranscript, forgeKey}[forgeN.Add(1)%2]
		}
		id, other := attacker(), attacker()
		hello := authHello(id.nick, wire.NotServing, o.network)
		t0 := time.Now()
		p, ch, err := authOpen(ctx, o.addr, o.network, ring.pick(), t0.Add(o.timeout), id, wire.NotServing)
		if err != nil {
			mu.Lock()
			res.forgeFailures[failReason(err)]++
			mu.Unlock()
			return
		}
		defer p.conn.Close()
		code, err := authProve(p, forgedProof(kind, id, other, ch, hello))
		if err != nil {
			mu.Lock()
			res.forgeFailures[failReason(err)]++
			mu.Unlock()
			return
		}
		round := time.Since(t0)
		forged.Add(1)
		// The directory closes after its 807: wait for that (within the deadline).
		closed := false
		for {
			if _, err := p.readLine(); err != nil {
				closed = errClass(err) == "closed by server" || errClass(err) == "reset by server"
				break
			}
		}
		mu.Lock()
		res.forgeCodes[code.String()]++
		res.forgeRounds = append(res.forgeRounds, round)
		if closed {
			res.forgeClosedAfter807++
		}
		mu.Unlock()
	}
	// watchHonest reads a joined honest peer until it ends, answering pings; an end
	// before ours is the server's cut.
	watchHonest := func(p *peer) {
		defer watchers.Done()
		pong := appendEnvelope(nil, wire.TypePong, "")
		for {
			err := p.readChunk(func(line []byte) {
				if env, err := wire.Decode(line); err == nil && env.Type == wire.TypePing {
					_, _ = p.write(pong, 5*time.Second)
				}
			})
			if err == nil {
				continue
			}
			if !closing.Load() {
				mu.Lock()
				res.honestCut++
				mu.Unlock()
			}
			return
		}
	}
	// joinHonest joins honest peer i: an authenticating ng client when i is even, a
	// reference client when odd.
	joinHonest := func(i int, s spec) {
		attempts.Add(1)
		ng := i%2 == 0
		t0 := time.Now()
		var p *peer
		var err error
		if ng {
			p, err = joinNG(ctx, o.addr, ring.pick(), t0.Add(o.timeout), s, o.network, dirID)
		} else {
			d := o.dialer(1024)
			d.source = ring.pick()
			p, err = d.join(ctx, s.id, s.location)
		}
		lat := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		res.attempted++
		if ng {
			res.ngAttempted++
		} else {
			res.refAttempted++
		}
		if err != nil {
			res.failures[failReason(err)]++
			switch authOutcome(err) {
			case outcomeRejected:
				res.rejected++
			case outcomeTimeout:
				res.timeouts++
			case outcomeClosed:
				res.closed++
			case outcomeAuthFailed:
				res.authFailed++
			default:
				res.otherFail++
			}
			return
		}
		res.latencies = append(res.latencies, lat)
		if ng {
			res.ngLatencies = append(res.ngLatencies, lat)
		} else {
			res.refLatencies = append(res.refLatencies, lat)
		}
		if lat <= o.within {
			res.accepted++
			okN.Add(1)
			if ng {
				res.ngAccepted++
			} else {
				res.refAccepted++
			}
		} else {
			res.late++
		}
		if closing.Load() {
			p.conn.Close()
			return
		}
		conns = append(conns, p.conn)
		watchers.Add(1)
		go watchHonest(p)
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

	phase := "opening stallers"
	var phaseMu sync.Mutex
	pr := startProgress(o.progress, "authflood", func() string {
		phaseMu.Lock()
		defer phaseMu.Unlock()
		return fmt.Sprintf("%s: stallers held=%d forged-807s=%d honest attempted=%d completed-in-time=%d",
			phase, stalling.Load(), forged.Load(), attempts.Load(), okN.Load())
	})
	defer pr.stop()

	// Phase 1: the initial stallers, as fast as --concurrency allows.
	t0 := time.Now()
	sem := make(chan struct{}, max(o.concurrency, 1))
	for i := 0; i < o.stallers && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		inflight.Go(func() {
			defer func() { <-sem }()
			stall()
		})
	}
	inflight.Wait()
	res.initialOpen = time.Since(t0)

	// Phase 2: stallers, forgers and honest joins, each on its schedule (number k of an
	// attacker's schedule is due at k/rate, honest ones within their slot; every one is
	// launched, late if this process falls behind, except forgers over --max-forging).
	phaseMu.Lock()
	phase = "flood"
	phaseMu.Unlock()
	start := time.Now()
	var stallLaunched, forgeDue, honestLaunched int
	for (stallLaunched < nStallFlood || forgeDue < nForge || honestLaunched < nHonest) && ctx.Err() == nil {
		elapsed := time.Since(start).Seconds()
		for due := int(o.stallRate*elapsed) + 1; stallLaunched < min(due, nStallFlood); stallLaunched++ {
			inflight.Go(stall)
		}
		for due := int(o.forgeRate*elapsed) + 1; forgeDue < min(due, nForge); forgeDue++ {
			if forging.Load() >= int64(o.maxForging) {
				res.forgeSkipped++
				continue
			}
			forging.Add(1)
			res.forgeLaunched++
			inflight.Go(forge)
		}
		for ; honestLaunched < nHonest && honestAt[honestLaunched] <= time.Since(start); honestLaunched++ {
			i, s := honestLaunched, honest[honestLaunched]
			inflight.Go(func() { joinHonest(i, s) })
		}
		next := time.Duration(math.MaxInt64)
		if stallLaunched < nStallFlood {
			next = nextDue(o.stallRate, stallLaunched)
		}
		if forgeDue < nForge {
			next = min(next, nextDue(o.forgeRate, forgeDue))
		}
		if honestLaunched < nHonest {
			next = min(next, honestAt[honestLaunched])
		}
		if next == math.MaxInt64 {
			break
		}
		if err := sleepCtx(ctx, max(next-time.Since(start), 200*time.Microsecond)); err != nil {
			break
		}
	}
	// The flood lasts --duration (the stallers stay open), then the last joins and
	// forgers get their --timeout.
	_ = sleepCtx(ctx, o.duration-time.Since(start))
	phaseMu.Lock()
	phase = "waiting for the last joins"
	phaseMu.Unlock()
	shutdown()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return buildAuthfloodReport(o, res), nil
}

// joinNG joins one honest joinmarket-ng client that authenticates its nick: the round of
// authOpen, a check that the challenge names the directory-id it expects, its correct
// proof, and an 807 that must be ok. On success the connection has no deadline.
func joinNG(ctx context.Context, addr string, src net.IP, deadline time.Time, s spec, network, dirID string) (*peer, error) {
	hello := authHello(s.id.nick, s.location, network)
	p, ch, err := authOpen(ctx, addr, network, src, deadline, s.id, s.location)
	if err != nil {
		return nil, err
	}
	if ch.DirectoryID != dirID {
		p.conn.Close()
		return nil, &hsError{reason: fmt.Sprintf("bad 803: directory-id %q, expected %q", ch.DirectoryID, dirID)}
	}
	code, err := authProve(p, nickauth.Prove(s.id.key, ch.Challenge, ch.DirectoryID, hello))
	if err != nil {
		p.conn.Close()
		return nil, err
	}
	if code != nickauth.CodeOK {
		p.conn.Close()
		return nil, &hsError{reason: "807 " + code.String()}
	}
	_ = p.conn.SetDeadline(time.Time{})
	return p, nil
}

// authOutcome classifies a failed honest join: joinOutcome's classes, and
// outcomeAuthFailed for an 807 other than ok.
func authOutcome(err error) string {
	var he *hsError
	if errors.As(err, &he) && strings.HasPrefix(he.reason, "807 ") {
		return outcomeAuthFailed
	}
	if errors.As(err, &he) && (strings.HasPrefix(he.reason, "bad 80") || he.reason == "795 without nick_auth") {
		return outcomeOther
	}
	return joinOutcome(err)
}

// buildAuthfloodReport reports an authflood run and checks the target.
func buildAuthfloodReport(o *authfloodOptions, r *authResult) *report {
	rep := newReport("authflood")
	rep.add("target", fmt.Sprintf("≥ %g %% of honest joins complete within %v (ng: 807 ok; reference: accepted 795); no joined honest peer cut", 100*o.target, o.within), "")
	rep.add("source_addresses", r.sources, "")
	rep.add("directory_id", r.directoryID, "")
	rep.add("stallers_initial", o.stallers, "connections")
	rep.add("stall_rate", o.stallRate, "connections/s")
	rep.add("forge_rate", o.forgeRate, "connections/s")
	rep.add("forge_kind", o.forge, "")
	rep.addMs("flood_duration", o.duration)
	rep.add("join_rate", o.joinRate, "honest joins/s")
	rep.addMs("initial_open", r.initialOpen)

	rep.add("stallers_attempted", r.stallAttempted, "")
	rep.add("stallers_challenged", r.stallOpened, "(got their 803)")
	rep.add("staller_failures", r.stallFailures, "")
	rep.add("stallers_let_go", r.stallEnds, "")
	rep.add("stallers_held_at_end", r.stallOpenAtEnd, "")
	rep.addLatencies("staller_held", r.stallHeld)

	var forgeGot int64
	for _, n := range r.forgeCodes {
		forgeGot += n
	}
	rep.add("forgers_launched", r.forgeLaunched, "")
	rep.add("forgers_skipped", r.forgeSkipped, fmt.Sprintf("(over --max-forging %d in flight)", o.maxForging))
	rep.add("forgers_answered", forgeGot, "(got an 807)")
	rep.add("forger_807_codes", r.forgeCodes, "")
	rep.add("forger_failures", r.forgeFailures, "")
	rep.add("forgers_closed_after_807", r.forgeClosedAfter807, "")
	rep.addLatencies("forger_round", r.forgeRounds)

	rep.add("honest_attempted", r.attempted, "")
	rep.add("honest_ng_attempted", r.ngAttempted, "")
	rep.add("honest_ref_attempted", r.refAttempted, "")
	rep.add("honest_accepted", r.accepted, fmt.Sprintf("(within %v)", o.within))
	rep.add("honest_ng_verified", r.ngAccepted, fmt.Sprintf("(807 ok within %v)", o.within))
	rep.add("honest_ref_accepted", r.refAccepted, fmt.Sprintf("(accepted 795 within %v)", o.within))
	rep.add("honest_accepted_pct", pct(r.accepted, r.attempted), "%")
	rep.add("honest_accepted_late", r.late, "")
	rep.add("honest_rejected", r.rejected, "(795 accepted:false)")
	rep.add("honest_auth_failed", r.authFailed, "(ng: 807 not ok)")
	rep.add("honest_closed_without_answer", r.closed, "(refused, reset or closed)")
	rep.add("honest_timeouts", r.timeouts, fmt.Sprintf("(nothing within %v)", o.timeout))
	rep.add("honest_other_failures", r.otherFail, "")
	rep.add("honest_failures", r.failures, "")
	rep.addLatencies("join", r.latencies)
	rep.addLatencies("ng_join", r.ngLatencies)
	rep.addLatencies("ref_join", r.refLatencies)
	rep.add("honest_cut_after_join", r.honestCut, "")

	need := int64(math.Ceil(o.target*float64(r.attempted) - 1e-9))
	verdict := "yes"
	switch {
	case r.attempted == 0:
		verdict = "NO"
		rep.fail("no honest join was attempted")
	case r.accepted < need:
		verdict = "NO"
		rep.fail("%d of %d honest joins (%.1f %%) completed within %v, want ≥ %d (%g %%): %d late, %d rejected, %d 807 not ok, %d closed without an answer, %d timeouts, %d other",
			r.accepted, r.attempted, pct(r.accepted, r.attempted), o.within, need, 100*o.target, r.late, r.rejected, r.authFailed, r.closed, r.timeouts, r.otherFail)
	}
	rep.add("pass", fmt.Sprintf("%s: ≥ %g %% of honest joins within %v", verdict, 100*o.target, o.within), "")
	if r.honestCut > 0 {
		rep.fail("%d joined honest peers were cut during the flood", r.honestCut)
	}
	if n := r.forgeCodes[nickauth.CodeOK.String()]; n > 0 {
		rep.fail("%d forged proofs were verified ok", n)
	}
	if r.stallAttempted > 0 && r.stallOpened == 0 {
		rep.fail("no staller got a challenge: the directory did not run nick authentication (%s)", formatCounts(r.stallFailures))
	}
	return rep
}
