package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// latencyOptions are the latency scenario's flags.
type latencyOptions struct {
	*common
	peers        int
	publishers   int
	bgRate       float64 // background deliveries/s, all receivers together
	samples      int
	interval     time.Duration // pause between round trips
	warmup       time.Duration
	replyTimeout time.Duration
	drain        time.Duration
}

// reply is B's answer as A's reader saw it.
type reply struct {
	n  int
	at time.Time
}

// runLatency measures privmsg round trips A → B → A (a taker's !fill, the maker's
// !pubkey) through the directory while K of N background peers publish offers paced so
// that the directory delivers about bgRate lines/s in total.
func runLatency(ctx context.Context, o *latencyOptions) (*report, error) {
	if o.peers < 2 || o.publishers < 1 || o.publishers > o.peers || o.samples < 1 || o.bgRate < 0 {
		return nil, errors.New("need --peers ≥ 2, 1 ≤ --publishers ≤ --peers, --samples ≥ 1, --bg-rate ≥ 0")
	}
	if err := o.checkBudget(o.peers + 2); err != nil {
		return nil, err
	}
	specs := makeSpecs(o.peers, o.makers, 0)
	a := spec{id: newIdentity(), location: wire.NotServing}        // taker
	b := spec{id: newIdentity(), location: makerLocation(o.peers)} // maker
	specs = append(specs, a, b)

	// Every message of the run is built and signed before the clock starts.
	fills := make([][]byte, o.samples)
	answers := make([][]byte, o.samples)
	for i := range o.samples {
		var rnd [64]byte
		_, _ = rand.Read(rnd[:])
		h := hex.EncodeToString(rnd[:])
		fills[i] = fillLine(a.id, b.id.nick, i, h)
		answers[i] = pubkeyLine(b.id, a.id.nick, i, h)
	}

	peers, err := joinEvery(ctx, o.progress, "latency", "", o.dialer(64<<10), specs, o.concurrency)
	if err != nil {
		return nil, err
	}
	pa, pb := peers[o.peers], peers[o.peers+1]

	// Background: every pubmsg reaches all other peers (A and B included).
	recipients := float64(len(peers) - 1)
	cfg := fanoutConfig{peers: len(peers), publishers: o.publishers, rate: o.bgRate / recipients / float64(o.publishers),
		drain: o.drain, writeTimeout: 5 * time.Second}
	if o.bgRate <= 0 {
		cfg.publishers, cfg.rate = 0, 0 // no background (rate 0 would mean "as fast as possible")
	}
	f := newFanout(cfg, peers)
	replies := make(chan reply, o.samples)
	ra, rb := f.recvs[o.peers], f.recvs[o.peers+1]
	fillTag := []byte("!" + b.id.nick + "!fill ")
	pubkeyTag := []byte(b.id.nick + "!" + a.id.nick + "!pubkey ")
	var bErrors, bReplies atomic.Int64
	// B answers each fill with its pre-signed !pubkey (a 789 follows each relayed privmsg;
	// it does not match and is skipped).
	rb.extra = func(line []byte) {
		i := bytes.Index(line, fillTag)
		if i < 0 {
			return
		}
		n, ok := parseUint(line[i+len(fillTag):])
		if !ok || n >= int64(len(answers)) {
			return
		}
		if _, err := pb.write(answers[n], 5*time.Second); err != nil {
			bErrors.Add(1)
			return
		}
		bReplies.Add(1)
	}
	ra.extra = func(line []byte) {
		i := bytes.Index(line, pubkeyTag)
		if i < 0 || len(line) < i+len(pubkeyTag)+16 {
			return
		}
		n, err := strconv.ParseUint(string(line[i+len(pubkeyTag):i+len(pubkeyTag)+16]), 16, 64)
		if err != nil {
			return
		}
		select {
		case replies <- reply{n: int(n), at: time.Now()}:
		default:
		}
	}
	f.startReaders()
	k0 := tcpCounters()
	stop := make(chan struct{})
	bgDone := make(chan struct{})
	go func() { f.publish(stop); close(bgDone) }()
	start := time.Now()
	var done, lost atomic.Int64
	pr := startProgress(o.progress, "latency", func() string {
		return fmt.Sprintf("samples=%d/%d lost=%d background: %s", done.Load(), o.samples, lost.Load(), f.status(start))
	})
	stopBackground := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-bgDone
	}

	var rtts []time.Duration
	var sampleErr error
	if err := sleepCtx(ctx, o.warmup); err != nil {
		sampleErr = err
	}
	sampleStart := time.Now()
	bgAtSampleStart := f.delivered.Load()
	for i := 0; i < o.samples && sampleErr == nil; i++ {
		t0 := time.Now()
		if _, err := pa.write(fills[i], 5*time.Second); err != nil {
			sampleErr = fmt.Errorf("A cannot send: %w", err)
			break
		}
		deadline := time.NewTimer(o.replyTimeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				sampleErr = ctx.Err()
				break wait
			case r := <-replies:
				if r.n == i {
					rtts = append(rtts, r.at.Sub(t0))
					break wait
				}
			case <-deadline.C:
				lost.Add(1)
				break wait
			}
		}
		deadline.Stop()
		done.Add(1)
		if o.interval > 0 && sampleErr == nil {
			sampleErr = sleepCtx(ctx, o.interval)
		}
	}
	sampling := time.Since(sampleStart)
	bgDuringSampling := f.delivered.Load() - bgAtSampleStart
	stopBackground()
	f.waitDrained(ctx)
	k1 := tcpCounters()
	pr.stop()
	f.shutdown()
	if sampleErr != nil {
		return nil, sampleErr
	}
	t := f.account()
	t.kernel = kernelDelta(k0, k1)

	rep := newReport("latency")
	rep.add("peers", o.peers, "+ A and B")
	rep.add("publishers", o.publishers, "")
	rep.add("target_bg_rate", o.bgRate, "lines/s")
	rep.add("rate_per_publisher", round3(cfg.rate), "pubmsgs/s")
	rep.add("achieved_bg_rate", rate(bgDuringSampling, sampling), "lines/s (while sampling)")
	rep.addMs("sampling", sampling)
	rep.add("samples", o.samples, "")
	rep.addMs("interval", o.interval)
	rep.add("lost", lost.Load(), "")
	rep.addLatencies("rtt", rtts)
	t.addTo(rep, "bg_")
	if n := lost.Load(); n > 0 {
		rep.fail("%d of %d round trips got no reply within %v", n, o.samples, o.replyTimeout)
	}
	if n := bErrors.Load(); n > 0 {
		rep.fail("B could not send %d replies", n)
	}
	return rep, nil
}
