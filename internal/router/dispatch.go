// Dispatch: what happens to one message a registered peer sent, after its line was read,
// decoded and let through the connection's message bucket (internal/server's read loop):
// the split of the "from!to!…" text and the binding of from to the sender, the spoof
// count, the GETPEERLIST and public !orderbook caps, offer counting, relaying, the
// orderbook (after the relay: offers, cancels and answers to the directory's own probe),
// and the back-pressure hint a broadcaster gets.

package router

import (
	"time"

	"github.com/jm-directory/jm-directory-server/internal/limits"
	"github.com/jm-directory/jm-directory-server/internal/orderbook"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// Policy is what Handle needs of the configuration, as plain numbers.
type Policy struct {
	// RateLimitDisconnect is how many violations (refused by a bucket) close the
	// connection; 0 never does.
	RateLimitDisconnect int
	// SpoofDisconnect is how many lines with another sender's nick close the connection.
	SpoofDisconnect int
}

// ConnLimits is one connection's abuse accounting; only its reader goroutine uses it.
// The token buckets and the violation count belong to the connection's circuit (its own
// when it has no circuit identity); spoofing is counted per connection.
type ConnLimits struct {
	Buckets *limits.Buckets
	spoofs  int
}

// SetBackPressure sets what a broadcaster's read loop calls after each pubmsg it fans
// out (the flusher's Help: a broadcaster reads on only as fast as its lines go out).
// Call it before the router is used.
func (r *Router) SetBackPressure(help func()) { r.help = help }

// SetOrderbook makes Handle record in book the offers it relays and those makers send
// the directory itself (internal/orderbook). Call it before the router is used.
func (r *Router) SetOrderbook(book *orderbook.Book) { r.book = book }

// Admit takes a token from one of the connection's buckets and reports whether the
// message may proceed. A refused message is dropped and counted with why, and is a
// violation of the circuit: past pol.RateLimitDisconnect of them the connection is cut.
func (r *Router) Admit(p *peer.Peer, lim *ConnLimits, which limits.Bucket, why reason.Drop, pol Policy, now time.Time) bool {
	return r.AdmitN(p, lim, which, 1, why, pol, now)
}

// AdmitN is Admit for n tokens (the byte budget takes a line's length).
func (r *Router) AdmitN(p *peer.Peer, lim *ConnLimits, which limits.Bucket, n int, why reason.Drop, pol Policy, now time.Time) bool {
	if lim.Buckets.AllowN(which, now, n) {
		return true
	}
	r.ctr.Drop(why)
	r.ctr.RateViolate.Add(1)
	v := lim.Buckets.Violation()
	if th := pol.RateLimitDisconnect; th > 0 && v >= int64(th) {
		p.Close(reason.CloseRateLimit)
	}
	return false
}

// Handle acts on one message from p; it returns false when p has been closed.
func (r *Router) Handle(p *peer.Peer, env *wire.Envelope, lim *ConnLimits, pol Policy, now time.Time) bool {
	switch env.Type {
	case wire.TypePubmsg, wire.TypePrivmsg:
		from, to, rest, ok := wire.SplitJM(env.Line)
		if !ok || (env.Type == wire.TypePubmsg && to != wire.Public) {
			r.ctr.Drop(reason.DropMalformedJM)
			return true
		}
		if from != p.Nick {
			r.ctr.Drop(reason.DropSpoofed)
			lim.spoofs++
			if lim.spoofs >= pol.SpoofDisconnect {
				p.Close(reason.CloseSpoofing)
				return false
			}
			return true
		}
		// The byte budget: what one client makes the directory relay, by bytes, so a
		// flood of long lines cannot outrun readers at Tor speed (docs/protocol-choices.md).
		if !r.AdmitN(p, lim, limits.Bytes, len(env.RawLine()), reason.DropByteBudget, pol, now) {
			return !p.Closed()
		}
		if env.Type == wire.TypePrivmsg {
			if d := r.Privmsg(p, to, env.RawLine()); d != reason.DropNone {
				r.ctr.Drop(d)
				if d == reason.DropToDirectory && r.book != nil {
					r.book.Private(p.Nick, p.ID, rest, now) // an answer to the directory's probe
				}
			} else {
				r.ctr.RelayLatency.Observe(int64(time.Since(now)))
			}
			return true
		}
		cmd := wire.FirstCommand(rest)
		switch cmd {
		case "orderbook":
			if !r.Admit(p, lim, limits.Orderbook, reason.DropOrderbookCap, pol, now) {
				return !p.Closed()
			}
		default:
			if i := stats.OfferIndex(cmd); i >= 0 {
				r.ctr.OffersSeen[i].Add(1)
			}
		}
		r.Pubmsg(p, env.RawLine())
		r.ctr.RelayLatency.Observe(int64(time.Since(now)))
		if r.book != nil && orderbook.Watches(cmd) {
			r.book.Public(p.Nick, p.ID, rest, now) // after the relay: parsing never changes it
		}
		if r.help != nil {
			r.help()
		}
	case wire.TypeGetPeerlist:
		if !r.Admit(p, lim, limits.GetPeerlist, reason.DropGetPeerlistCap, pol, now) {
			return !p.Closed()
		}
		r.GetPeerlist(p)
	case wire.TypePong:
		p.Pong()
	case wire.TypeDisconnect:
		p.Close(reason.ClosePeerRequested)
		return false
	case wire.TypeNickAuthChallenge, wire.TypeNickAuthProof, wire.TypeNickAuthResult:
		// Nick authentication belongs to the handshake; after it, as joinmarket-ng's
		// directory does, any of its messages closes the connection.
		p.Close(reason.CloseNickAuthOutOfOrder)
		return false
	default:
		// Late handshakes, client pings (answering would mean sending 799), local-only
		// types, unknown types.
		r.ctr.Drop(reason.DropIgnoredType)
	}
	return true
}
