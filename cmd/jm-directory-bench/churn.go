package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// churnOptions are the churn scenario's flags.
type churnOptions struct {
	*common
	peers    int // observers
	rate     float64
	duration time.Duration
	dwell    time.Duration
	drain    time.Duration
}

// churner is one short-lived peer.
type churner struct {
	spec
	left atomic.Int64 // unix ns just before we closed it; 0 = never accepted / not yet left
}

// observer is a long-lived peer that must hear every departure.
type observer struct {
	p        *peer
	seen     []bool // per churner; owned by the reader goroutine
	lat      []time.Duration
	notices  atomic.Int64
	dups     int64
	wrongLoc int64
	early    int64 // a ;D for a churner we had not closed yet
	other    int64 // ;D entries for nicks that are not churners
}

// runChurn keeps observers connected while new peers join and leave at a rate; every
// observer must receive "<nick>;<location>;D" for every peer that left.
func runChurn(ctx context.Context, o *churnOptions) (*report, error) {
	if o.peers < 1 || o.rate <= 0 || o.duration <= 0 {
		return nil, errors.New("need --peers ≥ 1, --rate > 0 and --duration > 0")
	}
	total := int(math.Ceil(o.rate*o.duration.Seconds() - 1e-9))
	if err := o.checkBudget(o.peers + total); err != nil {
		return nil, err
	}
	specs := makeSpecs(o.peers, o.makers, 0)
	churnSpecs := makeSpecs(total, o.makers, o.peers)
	churners := make([]*churner, total)
	index := make(map[string]int, total)
	for i, s := range churnSpecs {
		churners[i] = &churner{spec: s}
		index[s.id.nick] = i
	}

	d := o.dialer(16 << 10)
	peers, err := joinEvery(ctx, o.progress, "churn", "observers ", d, specs, o.concurrency)
	if err != nil {
		return nil, err
	}

	var closing atomic.Bool
	var readers sync.WaitGroup
	var cutObservers atomic.Int64
	obs := make([]*observer, len(peers))
	dTag := []byte(";D")
	for k, p := range peers {
		ob := &observer{p: p, seen: make([]bool, total)}
		obs[k] = ob
		readers.Add(1)
		go func() {
			defer readers.Done()
			handle := func(line []byte) {
				if !bytes.Contains(line, dTag) {
					return
				}
				now := time.Now().UnixNano()
				// Entries are "nick;location;D", separated by ','; the envelope is not
				// decoded: nicks and locations need no JSON escaping.
				for entry := range bytes.SplitSeq(peerlistContent(line), []byte{','}) {
					if !bytes.HasSuffix(entry, dTag) {
						continue
					}
					entry = entry[:len(entry)-len(dTag)]
					semi := bytes.IndexByte(entry, ';')
					if semi < 0 {
						continue
					}
					i, ok := index[string(entry[:semi])]
					if !ok {
						if !closing.Load() { // not the observers' own departures at the end
							ob.other++
						}
						continue
					}
					c := churners[i]
					left := c.left.Load()
					switch {
					case string(entry[semi+1:]) != c.location:
						ob.wrongLoc++
					case ob.seen[i]:
						ob.dups++
					case left == 0:
						ob.early++
					default:
						ob.seen[i] = true
						ob.lat = append(ob.lat, time.Duration(now-left))
						ob.notices.Add(1)
					}
				}
			}
			for {
				if err := p.readChunk(handle); err != nil {
					if !closing.Load() {
						p.cut.Store(true)
						cutObservers.Add(1)
					}
					return
				}
			}
		}()
	}

	// Launch churners at the rate.
	var joins, leaves, churnFailed atomic.Int64
	var fmu sync.Mutex
	churnFailures := map[string]int64{}
	var cwg sync.WaitGroup
	start := time.Now()
	noticesNow := func() (n int64) {
		for _, ob := range obs {
			n += ob.notices.Load()
		}
		return n
	}
	pr := startProgress(o.progress, "churn", func() string {
		return fmt.Sprintf("joins=%d leaves=%d failed=%d notices=%d/%d cut=%d", joins.Load(), leaves.Load(), churnFailed.Load(),
			noticesNow(), leaves.Load()*int64(len(obs)), cutObservers.Load())
	})
	interval := time.Duration(float64(time.Second) / o.rate)
	cd := o.dialer(1024)
launch:
	for i, c := range churners {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
				break launch
			case <-time.After(wait):
			}
		}
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			p, err := cd.join(ctx, c.id, c.location)
			if err != nil {
				churnFailed.Add(1)
				fmu.Lock()
				churnFailures[failReason(err)]++
				fmu.Unlock()
				return
			}
			joins.Add(1)
			if o.dwell > 0 {
				time.Sleep(o.dwell)
			}
			c.left.Store(time.Now().UnixNano())
			p.conn.Close()
			leaves.Add(1)
		}()
	}
	cwg.Wait()
	launched := time.Since(start)

	// Wait for the notices still under way.
	expected := leaves.Load() * int64(len(obs))
	lastN, lastChange := noticesNow(), time.Now()
	for ctx.Err() == nil {
		var pending bool
		for _, ob := range obs {
			if !ob.p.cut.Load() && ob.notices.Load() < leaves.Load() {
				pending = true
				break
			}
		}
		if !pending {
			break
		}
		time.Sleep(10 * time.Millisecond)
		if n := noticesNow(); n != lastN {
			lastN, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= o.drain {
			break
		}
	}
	pr.stop()
	closing.Store(true)
	closeAll(peers)
	readers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var received, missCut, missing, dups, wrongLoc, early, other int64
	var lat []time.Duration
	for _, ob := range obs {
		n := ob.notices.Load()
		received += n
		if short := leaves.Load() - n; short > 0 {
			if ob.p.cut.Load() {
				missCut += short
			} else {
				missing += short
			}
		}
		dups += ob.dups
		wrongLoc += ob.wrongLoc
		early += ob.early
		other += ob.other
		lat = append(lat, ob.lat...)
	}
	rep := newReport("churn")
	rep.add("observers", o.peers, "")
	rep.add("rate", o.rate, "peers/s")
	rep.addMs("duration", launched)
	rep.addMs("dwell", o.dwell)
	rep.add("joins", joins.Load(), "")
	rep.add("leaves", leaves.Load(), "")
	rep.add("join_failures", churnFailures, "")
	rep.add("notices_expected", expected, "")
	rep.add("notices_received", received, "")
	rep.add("notices_missing", missing, "")
	rep.add("notices_missing_observer_cut", missCut, "")
	rep.add("duplicate_notices", dups, "")
	rep.add("wrong_location_notices", wrongLoc, "")
	rep.add("notices_before_leave", early, "")
	rep.add("notices_for_other_nicks", other, "")
	rep.add("observers_cut", cutObservers.Load(), "")
	rep.addLatencies("notice_latency", lat)
	if missing > 0 {
		rep.fail("%d of %d ;D notices never arrived at observers that stayed connected", missing, expected)
	}
	if wrongLoc > 0 {
		rep.fail("%d ;D notices named the wrong location", wrongLoc)
	}
	if early > 0 {
		rep.fail("%d ;D notices arrived for peers that had not left", early)
	}
	if n := churnFailed.Load(); n > 0 {
		rep.fail("%d of %d new peers failed to join: %s", n, total, formatCounts(churnFailures))
	}
	return rep, nil
}

// peerlistContent returns the "line" string of a 789 without decoding JSON: the bytes
// between `"line":` (with optional spaces) and the closing quote. Peerlist entries contain
// no characters that JSON escapes.
func peerlistContent(line []byte) []byte {
	i := bytes.Index(line, []byte(`"line"`))
	if i < 0 {
		return nil
	}
	rest := line[i+len(`"line"`):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 {
		return nil
	}
	rest = rest[q+1:]
	if e := bytes.IndexByte(rest, '"'); e >= 0 {
		return rest[:e]
	}
	return nil
}
