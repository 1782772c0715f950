package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// orderbookOptions are the orderbook scenario's flags.
type orderbookOptions struct {
	*common
	makers int
	wait   time.Duration
}

// runOrderbook connects M makers and a taker T; T sends "!orderbook"; each maker answers
// with a signed privmsg offer to T. It measures how long until T holds every maker's offer
// and every location peerlist (a 789 naming that maker at its location).
func runOrderbook(ctx context.Context, o *orderbookOptions) (*report, error) {
	if o.makers < 1 {
		return nil, errors.New("--makers must be ≥ 1")
	}
	if err := o.checkBudget(o.makers + 1); err != nil {
		return nil, err
	}
	specs := makeSpecs(o.makers, 1, 0)
	taker := spec{id: newIdentity(), location: wire.NotServing}
	specs = append(specs, taker)
	T := taker.id.nick
	answers := make([][]byte, o.makers)
	index := make(map[string]int, o.makers)
	for i := range o.makers {
		answers[i] = offerReplyLine(specs[i].id, T)
		index[specs[i].id.nick] = i
	}

	peers, err := joinEvery(ctx, o.progress, "orderbook", "", o.dialer(4096), specs, o.concurrency)
	if err != nil {
		return nil, err
	}
	tp := peers[o.makers]

	var closing atomic.Bool
	var wg sync.WaitGroup
	var requests, answerErrs, makersCut atomic.Int64
	request := []byte(T + "!PUBLIC!orderbook")
	for i, p := range peers[:o.makers] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answered := false
			handle := func(line []byte) {
				if !bytes.Contains(line, request) {
					return
				}
				requests.Add(1)
				if answered {
					return
				}
				answered = true
				if _, err := p.write(answers[i], 5*time.Second); err != nil {
					answerErrs.Add(1)
				}
			}
			for {
				if err := p.readChunk(handle); err != nil {
					if !closing.Load() {
						p.cut.Store(true)
						makersCut.Add(1)
					}
					return
				}
			}
		}()
	}

	// The taker decodes everything it gets (a few lines per maker).
	offerAt := make([]time.Time, o.makers)
	listAt := make([]time.Time, o.makers)
	var nOffers, nLists, complete, dupOffers, wrongLoc, other atomic.Int64
	all := make(chan struct{})
	var takerCut atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		mark := func(i int) {
			if !offerAt[i].IsZero() && !listAt[i].IsZero() {
				if complete.Add(1) == int64(o.makers) {
					close(all)
				}
			}
		}
		handle := func(line []byte) {
			now := time.Now()
			env, err := wire.Decode(line)
			if err != nil {
				other.Add(1)
				return
			}
			switch env.Type {
			case wire.TypePrivmsg:
				from, to, rest, ok := wire.SplitJM(env.Line)
				i, known := index[from]
				if !ok || to != T || !known || !strings.HasPrefix(rest, "sw0reloffer ") {
					other.Add(1)
					return
				}
				if !offerAt[i].IsZero() {
					dupOffers.Add(1)
					return
				}
				offerAt[i] = now
				nOffers.Add(1)
				mark(i)
			case wire.TypePeerlist:
				for entry := range strings.SplitSeq(env.Line, ",") {
					fields := strings.Split(entry, ";")
					i, known := index[fields[0]]
					if !known || len(fields) < 2 {
						continue
					}
					if len(fields) > 2 && !strings.HasPrefix(fields[2], "F:") {
						continue // ";D" or unknown
					}
					if fields[1] != specs[i].location {
						wrongLoc.Add(1)
						continue
					}
					if listAt[i].IsZero() {
						listAt[i] = now
						nLists.Add(1)
						mark(i)
					}
				}
			default:
				other.Add(1)
			}
		}
		for {
			if err := tp.readChunk(handle); err != nil {
				if !closing.Load() {
					takerCut.Store(true)
				}
				return
			}
		}
	}()

	t0 := time.Now()
	pr := startProgress(o.progress, "orderbook", func() string {
		return fmt.Sprintf("offers=%d/%d peerlists=%d/%d", nOffers.Load(), o.makers, nLists.Load(), o.makers)
	})
	if _, err := tp.write(orderbookLine(T), 5*time.Second); err != nil {
		pr.stop()
		closeAll(peers)
		wg.Wait()
		return nil, fmt.Errorf("taker cannot send !orderbook: %w", err)
	}
	timedOut := false
	select {
	case <-all:
	case <-time.After(o.wait):
		timedOut = true
	case <-ctx.Done():
		timedOut = true
	}
	pr.stop()
	closing.Store(true)
	closeAll(peers)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var arrivals []time.Duration
	var last time.Time
	for i := range o.makers {
		if offerAt[i].IsZero() || listAt[i].IsZero() {
			continue
		}
		at := offerAt[i]
		if listAt[i].After(at) {
			at = listAt[i]
		}
		arrivals = append(arrivals, at.Sub(t0))
		if at.After(last) {
			last = at
		}
	}
	missOffers := int64(o.makers) - nOffers.Load()
	missLists := int64(o.makers) - nLists.Load()
	rep := newReport("orderbook")
	rep.add("makers", o.makers, "")
	if timedOut {
		rep.add("full_orderbook", "not reached within "+o.wait.String(), "")
	} else {
		rep.addMs("full_orderbook", last.Sub(t0))
	}
	rep.addLatencies("maker_arrival", arrivals)
	rep.add("offers_received", nOffers.Load(), "")
	rep.add("location_peerlists_received", nLists.Load(), "")
	rep.add("missing_offers", missOffers, "")
	rep.add("missing_peerlists", missLists, "")
	rep.add("duplicate_offers", dupOffers.Load(), "")
	rep.add("wrong_locations", wrongLoc.Load(), "")
	rep.add("orderbook_requests_seen_by_makers", requests.Load(), "")
	rep.add("makers_cut", makersCut.Load(), "")
	rep.add("taker_other_lines", other.Load(), "")
	if missOffers > 0 {
		rep.fail("%d of %d makers' offers never reached the taker", missOffers, o.makers)
	}
	if missLists > 0 {
		rep.fail("%d of %d makers' location peerlists never reached the taker", missLists, o.makers)
	}
	if wrongLoc.Load() > 0 {
		rep.fail("%d peerlist entries named a maker at the wrong location", wrongLoc.Load())
	}
	if takerCut.Load() {
		rep.fail("the taker was disconnected by the server")
	}
	if answerErrs.Load() > 0 {
		rep.fail("%d makers could not send their offer", answerErrs.Load())
	}
	return rep, nil
}
