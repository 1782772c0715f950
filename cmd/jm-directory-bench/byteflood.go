package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// The byteflood scenario: one attacker sends big lines as fast as the directory's message
// limits allow — padded offers (pubmsgs) and ~40 KB privmsgs to the victim, interleaved —
// at a victim that drains its socket slowly (a rate-limited reader with a small
// SO_RCVBUF, so the directory's queue for it really backs up). An honest peer exchanges
// privmsgs with the victim throughout. The victims' view: is the victim ever cut, and
// does every honest privmsg reach it?

func init() {
	attacks["byteflood"] = attack{
		usage: "--drain-rate 200KB/s --duration 20s --size 20000 --mix 0.5  one attacker's big lines vs. a slow reader",
		setup: setupByteflood,
	}
}

// bytefloodOptions are the byteflood scenario's flags.
type bytefloodOptions struct {
	*common
	drainRate    byteRate // the victim reads this many bytes/s
	victimRcvbuf byteSize // the victim's SO_RCVBUF
	duration     time.Duration
	size         int     // attacker's pubmsg (padded offer) line, bytes of content
	privSize     int     // attacker's privmsg to the victim, bytes of content
	mix          float64 // fraction of the attacker's lines that are privmsgs
	attackRate   float64 // attacker lines/s; 0 = as fast as the socket takes them
	honestRate   float64 // privmsgs/s each way between the honest peer and the victim
	drain        time.Duration
}

func setupByteflood(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error) {
	c.register(fs, false)
	o := &bytefloodOptions{common: c, drainRate: 200e3, victimRcvbuf: 64 << 10, attackRate: 480, honestRate: 5}
	fs.Var(&o.drainRate, "drain-rate", "the victim reads its socket at this rate, e.g. 200KB/s (K = 1000, Ki = 1024)")
	fs.Var(&o.victimRcvbuf, "victim-rcvbuf", "the victim's SO_RCVBUF, e.g. 64KiB")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the attacker sends")
	fs.IntVar(&o.size, "size", 20000, "attacker's pubmsg (a padded offer) in bytes of line content")
	fs.IntVar(&o.privSize, "priv-size", 39900, "attacker's privmsg to the victim in bytes of line content (the directory's limit is 40000)")
	fs.Float64Var(&o.mix, "mix", 0.5, "fraction of the attacker's lines that are privmsgs to the victim (the rest are pubmsgs), interleaved")
	fs.Var((*rateFlag)(&o.attackRate), "attack-rate", "attacker lines/s, just under the directory's message limit (reference default 500/s); 0 = as fast as the socket takes them")
	fs.Var((*rateFlag)(&o.honestRate), "honest-rate", "privmsgs/s each way between the honest peer and the victim")
	fs.DurationVar(&o.drain, "drain", 60*time.Second, "after the attack, wait at most this long for the honest privmsgs (the victim keeps reading at --drain-rate)")
	return func() (*report, error) { return runByteflood(ctx, o) }
}

// bytefloodResult is what a byteflood run observed.
type bytefloodResult struct {
	attackWall time.Duration // from the attacker's first line to its stop
	drainWall  time.Duration // from the stop to the end of the wait for honest privmsgs

	aPubSent, aPrivSent, aBytesSent, aStalls int64
	aWriteErr                                string // the attacker's failed write, by class
	aLinesRecv                               int64
	aCut                                     bool
	aCutAfter                                time.Duration
	aCutClass                                string

	vBytes, vBytesDuring          int64 // everything the victim read; during the attack
	vPubFromA, vPrivFromA, vOther int64
	vCut                          bool
	vCutAfter                     time.Duration
	vCutClass                     string
	hvSent, hvRecv                int64           // honest peer → victim privmsgs (the final one included)
	hvLat                         []time.Duration // their send → arrival
	vhSent, vhRecv                int64           // victim → honest peer
	sendErrs                      int64           // honest writes that failed
	finalOK                       bool            // both final privmsgs, sent after the attack, arrived
	hPubFromA                     int64
	hCut                          bool
}

// runByteflood runs the scenario.
func runByteflood(ctx context.Context, o *bytefloodOptions) (*report, error) {
	if o.drainRate <= 0 || o.victimRcvbuf < 0 || o.duration <= 0 || o.size < 0 || o.privSize < 200 || o.mix < 0 || o.mix > 1 || o.honestRate <= 0 || o.drain <= 0 {
		return nil, errors.New("need --drain-rate > 0, --duration > 0, --priv-size ≥ 200, 0 ≤ --mix ≤ 1, --honest-rate > 0, --drain > 0")
	}
	if err := o.checkBudget(3); err != nil {
		return nil, err
	}
	H := spec{id: newIdentity(), location: makerLocation(0)} // honest maker
	V := spec{id: newIdentity(), location: wire.NotServing}  // victim taker
	A := spec{id: newIdentity(), location: makerLocation(1)} // attacker maker

	// Every line is built and signed before the clock starts; the honest ones carry their
	// number (the final exchange after the attack is number n).
	n := int(math.Ceil(o.honestRate * o.duration.Seconds()))
	hv := make([][]byte, n+1) // H → V: "!pubkey <16 hex digits of i>…"
	vh := make([][]byte, n+1) // V → H: "!fill <i> …"
	for i := range n + 1 {
		var rnd [64]byte
		_, _ = rand.Read(rnd[:])
		h := hex.EncodeToString(rnd[:])
		hv[i] = pubkeyLine(H.id, V.id.nick, i, h)
		vh[i] = fillLine(V.id, H.id.nick, i, h)
	}
	pubPre, pubSuf := offerTemplate(A.id.nick, o.size)
	privLine := paddedPrivmsg(A.id, V.id.nick, o.privSize)

	hd := o.dialer(64 << 10)
	vd := o.dialer(64 << 10)
	vd.rcvbuf = int(o.victimRcvbuf)
	var peers [3]*peer
	for i, j := range []struct {
		d *dialer
		s spec
	}{{hd, H}, {vd, V}, {hd, A}} {
		p, err := j.d.join(ctx, j.s.id, j.s.location)
		if err != nil {
			closeAll(peers[:])
			return nil, fmt.Errorf("%s cannot join: %w", [...]string{"the honest peer", "the victim", "the attacker"}[i], err)
		}
		peers[i] = p
	}
	ph, pv, pa := peers[0], peers[1], peers[2]
	paced := newPacedConn(pv.conn, float64(o.drainRate), 16<<10)
	pv.conn = paced

	res := &bytefloodResult{}
	var (
		closing                            atomic.Bool
		readers                            sync.WaitGroup
		vCut, hCut, aCut                   cutInfo
		vPubA, vPrivA, vOther, hPubA       atomic.Int64
		aLines                             atomic.Int64
		hvSentAt                           = make([]atomic.Int64, n+1) // unix ns
		hvRecvAt                           = make([]atomic.Int64, n+1)
		vhRecv                             = make([]atomic.Bool, n+1)
		hvRecvN, vhRecvN, hvSentN, vhSentN atomic.Int64
	)
	pubkeyTag, fillTag := "pubkey ", "fill "
	read := func(p *peer, ci *cutInfo, handle func([]byte)) {
		defer readers.Done()
		for {
			if err := p.readChunk(handle); err != nil {
				if !closing.Load() {
					ci.set(err)
				}
				return
			}
		}
	}
	readers.Add(3)
	go read(pv, &vCut, func(line []byte) {
		env, err := wire.Decode(line)
		if err != nil {
			vOther.Add(1)
			return
		}
		from, _, rest, ok := wire.SplitJM(env.Line)
		switch {
		case ok && env.Type == wire.TypePubmsg && from == A.id.nick:
			vPubA.Add(1)
		case ok && env.Type == wire.TypePrivmsg && from == A.id.nick:
			vPrivA.Add(1)
		case ok && env.Type == wire.TypePrivmsg && from == H.id.nick && strings.HasPrefix(rest, pubkeyTag) && len(rest) >= len(pubkeyTag)+16:
			i, err := strconv.ParseUint(rest[len(pubkeyTag):len(pubkeyTag)+16], 16, 64)
			if err == nil && i <= uint64(n) && hvRecvAt[i].CompareAndSwap(0, time.Now().UnixNano()) {
				hvRecvN.Add(1)
			}
		default:
			vOther.Add(1)
		}
	})
	go read(ph, &hCut, func(line []byte) {
		env, err := wire.Decode(line)
		if err != nil {
			return
		}
		from, _, rest, ok := wire.SplitJM(env.Line)
		switch {
		case ok && env.Type == wire.TypePubmsg && from == A.id.nick:
			hPubA.Add(1)
		case ok && env.Type == wire.TypePrivmsg && from == V.id.nick && strings.HasPrefix(rest, fillTag):
			i, ok := parseUint([]byte(rest[len(fillTag):]))
			if ok && i <= int64(n) && vhRecv[i].CompareAndSwap(false, true) {
				vhRecvN.Add(1)
			}
		}
	})
	go read(pa, &aCut, func([]byte) { aLines.Add(1) })

	// sendHonest sends exchange number i both ways. A write that fails other than by
	// its deadline means the connection is gone, even if its reader has not got to the
	// EOF yet (the victim reads slowly).
	var sendErrs atomic.Int64
	send := func(p *peer, line []byte, ci *cutInfo, sent *atomic.Int64) {
		if _, err := p.write(line, 5*time.Second); err != nil {
			sendErrs.Add(1)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				ci.set(err)
			}
			return
		}
		sent.Add(1)
	}
	sendHonest := func(i int) {
		hvSentAt[i].Store(time.Now().UnixNano())
		send(ph, hv[i], &hCut, &hvSentN)
		send(pv, vh[i], &vCut, &vhSentN)
	}

	// The attacker.
	var aPub, aPriv, aBytes, aStalls atomic.Int64
	var aWriteErr atomic.Value
	var stopped atomic.Bool
	attackDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(attackDone)
		buf := make([]byte, 0, 64<<10)
		var sent int64
		var acc float64 // the privmsg share owed so far: interleaves by --mix
		for !stopped.Load() {
			if o.attackRate > 0 {
				elapsed := time.Since(start)
				if due := int64(o.attackRate*elapsed.Seconds()) + 1; sent >= due {
					next := time.Duration(float64(sent) / o.attackRate * float64(time.Second))
					time.Sleep(max(next-elapsed, 200*time.Microsecond)) // the attacker's pacing
					continue
				}
			}
			acc += o.mix
			priv := acc >= 1
			if priv {
				acc--
				buf = append(buf[:0], privLine...)
			} else {
				buf = appendOffer(buf[:0], pubPre, pubSuf, aPub.Load())
			}
			data := buf
			for len(data) > 0 {
				w, err := pa.write(data, time.Second)
				data = data[w:]
				aBytes.Add(int64(w))
				if err == nil {
					break
				}
				if errors.Is(err, os.ErrDeadlineExceeded) && !stopped.Load() {
					aStalls.Add(1)
					continue
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					aWriteErr.CompareAndSwap(nil, errClass(err))
				}
				return // a line written only partly is never completed
			}
			sent++
			if priv {
				aPriv.Add(1)
			} else {
				aPub.Add(1)
			}
		}
	}()

	pr := startProgress(o.progress, "byteflood", func() string {
		cut, _, _ := vCut.get()
		return fmt.Sprintf("attacker sent %d pubmsgs %d privmsgs (%.1f MB); victim read %.1f MB, honest %d/%d, cut=%v",
			aPub.Load(), aPriv.Load(), float64(aBytes.Load())/1e6, float64(paced.n.Load())/1e6, hvRecvN.Load(), hvSentN.Load(), cut)
	})
	defer pr.stop()

	// The honest exchange during the attack, at --honest-rate.
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := time.Duration(float64(i) / o.honestRate * float64(time.Second))
		if err := sleepCtx(ctx, due-time.Since(start)); err != nil {
			break
		}
		sendHonest(i)
	}
	_ = sleepCtx(ctx, o.duration-time.Since(start))
	// Stop the attacker, unblocking a write stuck on a full socket.
	stopped.Store(true)
	for {
		_ = pa.conn.SetWriteDeadline(time.Now())
		select {
		case <-attackDone:
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	stop := time.Now()
	res.attackWall = stop.Sub(start)
	res.vBytesDuring = paced.n.Load()

	// Afterwards: one more exchange each way; then wait for every honest privmsg while
	// the victim keeps reading at its rate.
	if ctx.Err() == nil {
		sendHonest(n)
	}
	deadline := time.Now().Add(o.drain)
	tick := time.NewTicker(20 * time.Millisecond)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if hvRecvN.Load() >= hvSentN.Load() && vhRecvN.Load() >= vhSentN.Load() {
			break
		}
		if c, _, _ := vCut.get(); c {
			break
		}
		if c, _, _ := hCut.get(); c {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	res.drainWall = time.Since(stop)
	res.hvSent, res.hvRecv, res.vhSent, res.vhRecv = hvSentN.Load(), hvRecvN.Load(), vhSentN.Load(), vhRecvN.Load()
	res.finalOK = hvRecvAt[n].Load() != 0 && vhRecv[n].Load()
	res.vBytes = paced.n.Load()
	frozen := time.Now().UnixNano()
	// Was the victim cut without knowing yet (an EOF queued behind data it has not read)?
	// It reads the rest at full speed, for a moment, to find out; what arrives now no
	// longer counts.
	if c, _, _ := vCut.get(); !c && ctx.Err() == nil {
		paced.unpaced.Store(true)
		end := time.Now().Add(finalDrain)
		last, lastChange := paced.n.Load(), time.Now()
		for time.Now().Before(end) && ctx.Err() == nil && time.Since(lastChange) < finalQuiet {
			if c, _, _ := vCut.get(); c {
				break
			}
			if v := paced.n.Load(); v != last {
				last, lastChange = v, time.Now()
			}
			time.Sleep(10 * time.Millisecond) // polls the reader's verdict, bounded by finalDrain
		}
	}
	closing.Store(true)
	closeAll(peers[:])
	readers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	res.aPubSent, res.aPrivSent, res.aBytesSent, res.aStalls = aPub.Load(), aPriv.Load(), aBytes.Load(), aStalls.Load()
	res.aWriteErr, _ = aWriteErr.Load().(string)
	res.aLinesRecv = aLines.Load()
	var at time.Time
	if res.aCut, at, res.aCutClass = aCut.get(); res.aCut {
		res.aCutAfter = at.Sub(start)
	}
	if res.vCut, at, res.vCutClass = vCut.get(); res.vCut {
		res.vCutAfter = at.Sub(start)
	}
	res.hCut, _, _ = hCut.get()
	res.vPubFromA, res.vPrivFromA, res.vOther = vPubA.Load(), vPrivA.Load(), vOther.Load()
	for i := range n + 1 {
		if s, r := hvSentAt[i].Load(), hvRecvAt[i].Load(); s != 0 && r != 0 && r <= frozen {
			res.hvLat = append(res.hvLat, time.Duration(r-s))
		}
	}
	res.sendErrs = sendErrs.Load()
	res.hPubFromA = hPubA.Load()
	return buildBytefloodReport(o, res), nil
}

// finalDrain is how long the victim reads at full speed at the end, to find an EOF
// queued behind data; it stops early once nothing has arrived for finalQuiet.
const finalDrain, finalQuiet = 5 * time.Second, 250 * time.Millisecond

// paddedPrivmsg is a signed privmsg "from!to!fill 0 <padding> <pubkey> <sig>" of about
// size bytes of line content (at most size).
func paddedPrivmsg(from identity, to string, size int) []byte {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	base := len(privmsgLine(from, to, "fill", "0 ")) - 2
	pad := max(size-base-8, 0) // the signature's length varies by a few bytes
	for {
		var b strings.Builder
		b.WriteString("0 ")
		for i := range pad {
			b.WriteByte(b64[i%len(b64)])
		}
		line := privmsgLine(from, to, "fill", b.String())
		if len(line)-2 <= size || pad == 0 {
			return line
		}
		pad -= len(line) - 2 - size
		pad = max(pad, 0)
	}
}

// buildBytefloodReport reports a byteflood run and checks the victim's view.
func buildBytefloodReport(o *bytefloodOptions, r *bytefloodResult) *report {
	rep := newReport("byteflood")
	rep.add("target", "the victim is never cut and gets every honest privmsg; it still exchanges privmsgs after the attack", "")
	rep.add("drain_rate", float64(o.drainRate), "bytes/s (victim's reads)")
	rep.add("victim_rcvbuf", int64(o.victimRcvbuf), "bytes")
	rep.add("attack_rate", o.attackRate, "lines/s (0 = unpaced)")
	rep.add("mix", o.mix, "privmsg share")
	rep.add("pubmsg_size", o.size, "bytes")
	rep.add("privmsg_size", o.privSize, "bytes")
	rep.addMs("attack", r.attackWall)
	rep.add("attacker_pubmsgs_sent", r.aPubSent, "")
	rep.add("attacker_privmsgs_sent", r.aPrivSent, "")
	rep.add("attacker_lines_sent", r.aPubSent+r.aPrivSent, "")
	rep.add("attacker_bytes_sent", r.aBytesSent, "")
	rep.add("attacker_send_rate", rate(r.aBytesSent, r.attackWall), "bytes/s")
	rep.add("attacker_write_stalls", r.aStalls, "(writes blocked > 1 s)")
	rep.add("attacker_write_error", orNone(r.aWriteErr), "")
	rep.add("attacker_lines_received", r.aLinesRecv, "")
	rep.add("attacker_cut", r.aCut, "")
	if r.aCut {
		rep.addMs("attacker_cut_after", r.aCutAfter)
		rep.add("attacker_cut_seen_as", r.aCutClass, "")
	}
	rep.add("victim_bytes_received", r.vBytes, "")
	connected := r.attackWall
	if r.vCut && r.vCutAfter < connected {
		connected = r.vCutAfter
	}
	rep.add("victim_bytes_per_s_during_attack", rate(r.vBytesDuring, connected), "bytes/s (while connected)")
	rep.add("victim_attacker_pubmsgs_received", r.vPubFromA, fmt.Sprintf("of %d sent (drops allowed)", r.aPubSent))
	rep.add("victim_attacker_privmsgs_received", r.vPrivFromA, fmt.Sprintf("of %d sent", r.aPrivSent))
	rep.add("victim_honest_privmsgs_received", r.hvRecv, fmt.Sprintf("of %d sent", r.hvSent))
	rep.addLatencies("victim_honest_privmsg_delay", r.hvLat)
	rep.add("victim_other_lines", r.vOther, "")
	rep.add("victim_cut", r.vCut, "")
	if r.vCut {
		rep.addMs("victim_cut_after", r.vCutAfter)
		rep.add("victim_cut_seen_as", r.vCutClass, "(by its read or its write, when it noticed)")
	}
	rep.add("honest_peer_received_from_victim", r.vhRecv, fmt.Sprintf("of %d sent", r.vhSent))
	rep.add("honest_peer_attacker_pubmsgs_received", r.hPubFromA, "")
	rep.add("honest_peer_cut", r.hCut, "")
	rep.add("honest_send_errors", r.sendErrs, "")
	rep.add("final_exchange_ok", r.finalOK, "")
	rep.addMs("drain_wait", r.drainWall)
	if r.vCut {
		rep.fail("the victim was cut %.1f s after the attack began (seen as %s)", r.vCutAfter.Seconds(), r.vCutClass)
	}
	if miss := r.hvSent - r.hvRecv; miss > 0 {
		rep.fail("%d of %d privmsgs from the honest peer never reached the victim (waited %.1f s after the attack)", miss, r.hvSent, r.drainWall.Seconds())
	}
	if miss := r.vhSent - r.vhRecv; miss > 0 {
		rep.fail("%d of %d privmsgs from the victim never reached the honest peer", miss, r.vhSent)
	}
	if !r.finalOK {
		rep.fail("the exchange of privmsgs between the victim and the honest peer after the attack did not complete")
	}
	if r.sendErrs > 0 {
		rep.fail("%d honest privmsgs could not be sent", r.sendErrs)
	}
	if r.hCut {
		rep.fail("the honest peer was cut")
	}
	return rep
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
