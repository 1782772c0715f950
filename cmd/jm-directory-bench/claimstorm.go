package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// claimstorm: an attacker makes many handshake claims on a live maker's nick. Each
// claim on a live owner's nick may make the directory check the owner (a 798 ping, or
// the legacy "<directory>!PUBLIC!orderbook" probe a reference maker answers with its
// offers), so an unthrottled directory makes the victim answer one probe per claim. The
// victim should answer at most 3 a minute, the cap a client has on !orderbook requests.
func init() {
	attacks["claimstorm"] = attack{
		usage: "--claims 300 --duration 60s [--burst 100] [--victim-ping]  handshake claims on a live maker's nick; probes it must answer",
		setup: func(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
			c.register(fs, false)
			o := claimstormOptions{common: c}
			fs.IntVar(&o.claims, "claims", 300, "handshake claims on the victim's nick")
			fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the claims go on")
			fs.IntVar(&o.burst, "burst", 100, "claims made in the first --burst-window (the rest evenly over the rest of --duration); = --claims for all at once")
			fs.DurationVar(&o.burstWindow, "burst-window", 200*time.Millisecond, "how long the opening burst lasts")
			fs.BoolVar(&o.victimPing, "victim-ping", false, "the victim is ping-capable (features {ping}) and answers 798 with 799, instead of a legacy maker answering !orderbook")
			fs.DurationVar(&o.exchangeWait, "exchange-wait", 10*time.Second, "at the end, wait at most this long for the victim's privmsg exchange with an honest taker")
			return func() (*report, error) { return runClaimstorm(ctx, &o) }
		},
	}
}

// claimstormOptions are the claimstorm scenario's flags.
type claimstormOptions struct {
	*common
	claims       int
	duration     time.Duration
	burst        int
	burstWindow  time.Duration
	victimPing   bool
	exchangeWait time.Duration
}

// probeCap is how many probes a minute an owner may be made to answer.
const probeCap = 3

// claimSchedule returns when each claim is made, from the start of the attack: the
// first burst evenly over burstWindow, the rest evenly over the rest of duration.
func claimSchedule(claims, burst int, burstWindow, duration time.Duration) []time.Duration {
	burst = min(max(burst, 0), claims)
	burstWindow = min(burstWindow, duration)
	at := make([]time.Duration, claims)
	for i := range burst {
		at[i] = time.Duration(int64(burstWindow) * int64(i) / int64(burst))
	}
	if rest := claims - burst; rest > 0 {
		span := duration - burstWindow
		for i := range rest {
			at[burst+i] = burstWindow + time.Duration(int64(span)*int64(i)/int64(rest))
		}
	}
	return at
}

// maxInWindow is the largest number of the sorted times that fall within any window of
// length w (a time t and those before t+w).
func maxInWindow(sorted []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range sorted {
		for j < len(sorted) && sorted[j].Sub(sorted[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// joinFeatures connects and handshakes one peer announcing features and returns it with
// the directory's nick from its 795.
func joinFeatures(ctx context.Context, d *dialer, id identity, location string, features map[string]bool) (*peer, string, error) {
	p, line, err := d.joinWith(ctx, id, location, features)
	if err != nil {
		return nil, "", err
	}
	env, _ := wire.Decode(line) // checkDNHandshake decoded it
	var dn struct {
		Nick string `json:"nick"`
	}
	_ = json.Unmarshal([]byte(env.Line), &dn)
	return p, dn.Nick, nil
}

// claimOutcome makes one claim: a handshake as nick at location, and the directory's
// answer, classified: "accepted", the rejection's reason label ("duplicate_nick"), or
// what went wrong ("no 795: closed by server").
func claimOutcome(ctx context.Context, d *dialer, nick, location string) string {
	deadline := time.Now().Add(d.timeout)
	nd := net.Dialer{Deadline: deadline, KeepAlive: -1}
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return "dial: " + errClass(err)
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(handshakeLine(nick, location, d.network)); err != nil {
		return "send 793: " + errClass(err)
	}
	p := &peer{conn: c, buf: make([]byte, 2048)}
	line, err := p.readLine()
	if err != nil {
		return "no 795: " + errClass(err)
	}
	env, err := wire.Decode(line)
	if err != nil || env.Type != wire.TypeDNHandshake {
		return "bad 795"
	}
	var dn struct {
		Accepted bool   `json:"accepted"`
		MOTD     string `json:"motd"`
	}
	if json.Unmarshal([]byte(env.Line), &dn) != nil {
		return "bad 795"
	}
	if dn.Accepted {
		return "accepted"
	}
	label, _, ok := strings.Cut(strings.TrimPrefix(dn.MOTD, "Rejected: "), ":")
	if !ok || !strings.HasPrefix(dn.MOTD, "Rejected: ") {
		return "rejected without a reason"
	}
	return label
}

// isLabel reports whether a claim outcome is a rejection's reason label (snake_case),
// rather than "accepted" or a failure ("no 795: timeout").
func isLabel(out string) bool {
	return out != "accepted" && !strings.ContainsAny(out, ": ")
}

// runClaimstorm joins a victim maker and an honest taker, makes the claims on the
// victim's nick on schedule, and reports the probes the victim had to answer.
func runClaimstorm(ctx context.Context, o *claimstormOptions) (*report, error) {
	if o.claims < 1 || o.duration <= 0 || o.burstWindow < 0 {
		return nil, errors.New("need --claims ≥ 1, --duration > 0 and --burst-window ≥ 0")
	}
	if err := o.checkBudget(min(o.claims, o.concurrency) + 2); err != nil {
		return nil, err
	}
	d := o.dialer(4096)
	victimID, takerID := newIdentity(), newIdentity()
	victimLoc := makerLocation(0)
	var features map[string]bool
	kind := "legacy maker (features {}, answers !orderbook)"
	if o.victimPing {
		features = map[string]bool{"ping": true}
		kind = "ping-capable maker (answers 798 with 799)"
	}
	victim, dnNick, err := joinFeatures(ctx, d, victimID, victimLoc, features)
	if err != nil {
		return nil, fmt.Errorf("victim cannot join: %w", err)
	}
	defer victim.conn.Close()
	taker, err := d.join(ctx, takerID, wire.NotServing)
	if err != nil {
		return nil, fmt.Errorf("honest taker cannot join: %w", err)
	}
	defer taker.conn.Close()

	// The victim answers every probe at once, as a live client does, and the honest
	// taker's greeting with one of its own.
	var (
		mu        sync.Mutex
		probesAt  []time.Time
		closing   atomic.Bool
		victimCut atomic.Bool
		answerErr atomic.Int64
		readers   sync.WaitGroup
	)
	probe := []byte(dnNick + "!PUBLIC!orderbook")
	greeting := "claimstorm-greeting"
	offer := offerReplyLine(victimID, dnNick)
	pong := appendEnvelope(nil, wire.TypePong, "")
	reply := privmsgLine(victimID, takerID.nick, "hello", "reply")
	readers.Go(func() {
		handle := func(line []byte) {
			now := time.Now()
			env, err := wire.Decode(line)
			if err != nil {
				return
			}
			var answer []byte
			switch {
			case env.Type == wire.TypePing:
				answer = pong
			case env.Type == wire.TypePubmsg && env.Line == string(probe):
				answer = offer
			case env.Type == wire.TypePrivmsg && strings.HasPrefix(env.Line, takerID.nick+"!"+victimID.nick+"!") && strings.Contains(env.Line, greeting):
				if _, err := victim.write(reply, 5*time.Second); err != nil {
					answerErr.Add(1)
				}
				return
			default:
				return
			}
			mu.Lock()
			probesAt = append(probesAt, now)
			mu.Unlock()
			if _, err := victim.write(answer, 5*time.Second); err != nil {
				answerErr.Add(1)
			}
		}
		for {
			if err := victim.readChunk(handle); err != nil {
				if !closing.Load() {
					victimCut.Store(true)
				}
				return
			}
		}
	})
	replied := make(chan struct{})
	var takerCut atomic.Bool
	readers.Go(func() {
		want := []byte(victimID.nick + "!" + takerID.nick + "!hello reply")
		got := false
		for {
			err := taker.readChunk(func(line []byte) {
				if !got && bytes.Contains(line, want) {
					got = true
					close(replied)
				}
			})
			if err != nil {
				if !closing.Load() {
					takerCut.Store(true)
				}
				return
			}
		}
	})
	stop := func() {
		closing.Store(true)
		victim.conn.Close()
		taker.conn.Close()
		readers.Wait()
	}

	// The attacker: each claim on its own connection at its scheduled time, at most
	// --concurrency in flight; it claims to serve at a location of its own.
	schedule := claimSchedule(o.claims, o.burst, o.burstWindow, o.duration)
	attackerLoc := makerLocation(1)
	var (
		outcomes       = map[string]int64{}
		made, rejected atomic.Int64
		late           atomic.Int64
		claimers       sync.WaitGroup
		sem            = make(chan struct{}, max(o.concurrency, 1))
		start          = time.Now()
		probeCount     = func() int { mu.Lock(); defer mu.Unlock(); return len(probesAt) }
	)
	pr := startProgress(o.progress, "claimstorm", func() string {
		return fmt.Sprintf("claims=%d/%d rejected=%d probes=%d", made.Load(), o.claims, rejected.Load(), probeCount())
	})
	for _, at := range schedule {
		if wait := time.Until(start.Add(at)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if time.Since(start.Add(at)) > 50*time.Millisecond {
			late.Add(1)
		}
		claimers.Go(func() {
			defer func() { <-sem }()
			out := claimOutcome(ctx, d, victimID.nick, attackerLoc)
			mu.Lock()
			outcomes[out]++
			mu.Unlock()
			made.Add(1)
			if isLabel(out) {
				rejected.Add(1)
			}
		})
	}
	claimers.Wait()
	if wait := time.Until(start.Add(o.duration)); wait > 0 && ctx.Err() == nil {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	attackTook := time.Since(start)
	pr.stop()
	if ctx.Err() != nil {
		stop()
		return nil, ctx.Err()
	}

	// The end: the honest taker greets the victim and must get its reply. Every probe
	// the directory sent the victim before the greeting has arrived by then.
	exchanged := false
	if _, err := taker.write(privmsgLine(takerID, victimID.nick, "hello", greeting), 5*time.Second); err == nil {
		select {
		case <-replied:
			exchanged = true
		case <-time.After(o.exchangeWait):
		case <-ctx.Done():
		}
	}
	connected := !victimCut.Load()
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	mu.Lock()
	probes := slices.Clone(probesAt)
	mu.Unlock()
	slices.SortFunc(probes, func(a, b time.Time) int { return a.Compare(b) })
	window := maxInWindow(probes, time.Minute)
	perMinute := float64(len(probes)) / max(attackTook, time.Second).Minutes()
	rejections := map[string]int64{}
	failures := map[string]int64{}
	for k, v := range outcomes {
		switch {
		case k == "accepted":
		case isLabel(k):
			rejections[k] = v
		default:
			failures[k] = v
		}
	}

	rep := newReport("claimstorm")
	rep.add("victim", kind, "")
	rep.add("claims", o.claims, "")
	rep.add("burst", fmt.Sprintf("%d in %v, then %d over %v", min(max(o.burst, 0), o.claims), o.burstWindow, o.claims-min(max(o.burst, 0), o.claims), o.duration-min(o.burstWindow, o.duration)), "")
	rep.addMs("attack_duration", attackTook)
	rep.add("claims_made", made.Load(), "")
	rep.add("claims_late", late.Load(), "")
	rep.add("claims_accepted", outcomes["accepted"], "")
	rep.add("claims_rejected", rejections, "")
	rep.add("claim_failures", failures, "")
	rep.add("probes_received", len(probes), "")
	rep.add("probes_per_minute", round3(perMinute), "")
	rep.add("max_probes_in_60s_window", window, "")
	rep.add("victim_connected", connected, "")
	rep.add("victim_privmsg_exchange", exchanged, "")
	verdict := "yes"
	if window > probeCap {
		verdict = "NO"
		rep.fail("the victim answered %d probes within a minute (at most %d allowed)", window, probeCap)
	}
	rep.add("pass", verdict+": a claim storm makes the owner answer ≤ 3 probes a minute", "")
	if n := outcomes["accepted"]; n > 0 {
		rep.fail("%d claims took the live victim's nick", n)
	}
	if !connected {
		rep.fail("the victim was disconnected")
	}
	if takerCut.Load() {
		rep.fail("the honest taker was disconnected")
	}
	if !exchanged {
		rep.fail("the honest taker's privmsg exchange with the victim did not complete within %v", o.exchangeWait)
	}
	if n := answerErr.Load(); n > 0 {
		rep.fail("the victim could not send %d answers", n)
	}
	return rep, nil
}
