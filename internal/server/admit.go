// Admission: the steps Accept takes a new connection through before it is a peer —
// tor's PROXY header, the handshake line, the owner check for a claimed nick, the
// rejection — and the circuit release and close reasons that go with them.

package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/circuit"
	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/registry"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// proxyHeader reads and parses the PROXY v1 line tor writes before the client's bytes.
// A connection without one is closed: with tor_proxy_protocol on, every connection must
// come through tor.
func (s *Server) proxyHeader(p *peer.Peer, lr *wire.LineReader) (circuit.ID, bool) {
	line, err := lr.ReadLine()
	if err != nil {
		why := closeReason(p, err, true) // a timeout, the client gone, …
		if why == reason.CloseLineTooLong {
			why = reason.CloseProxyHeader
		}
		p.Close(why)
		return circuit.ID{}, false
	}
	id, err := circuit.ParseHeader(line)
	if err != nil {
		p.Log.Debug("bad proxy header", "err", err)
		p.Close(reason.CloseProxyHeader)
		return circuit.ID{}, false
	}
	p.Log.Debug("proxy header", "circuit", id.String())
	return id, true
}

// ForgetCircuits drops every circuit strike and ban, for when tor has restarted and
// numbers its circuits from 1 again.
func (s *Server) ForgetCircuits() {
	s.clients.Forget()
	s.log.Info("tor restarted: circuit strikes and bans forgotten")
}

// release ends a connection on its circuit and logs a ban it imposed (with the
// circuit, never the nick).
func (s *Server) release(cl *circuit.Client, why reason.Close) {
	lim := circuitLimits(s.conf())
	if s.clients.Release(cl, why, time.Now(), lim) {
		s.log.Warn("circuit banned", "circuit", cl.ID().String(), "reason", why.String(), "for", lim.BanFor)
	}
}

// closeReason maps a read error to a close reason, unless the peer was already closed
// with one (evicted, cut as a slow consumer, shutdown…).
func closeReason(p *peer.Peer, err error, handshaking bool) reason.Close {
	if r := p.Reason(); r != reason.CloseNone {
		return r
	}
	switch {
	case errors.Is(err, wire.ErrLineTooLong):
		return reason.CloseLineTooLong
	case errors.Is(err, net.ErrClosed):
		return reason.CloseReadError
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return reason.CloseClientGone
	}
	var ne net.Error
	if handshaking && errors.As(err, &ne) && ne.Timeout() {
		return reason.CloseHandshakeTimeout
	}
	return reason.CloseReadError
}

// handshakeSteps are Accept's hooks into the handshake: read runs once the line has
// arrived; admitted once the peer is sure to be registered, before its 795 is queued
// (see registry.RegisterThen); notPeer when the connection is the directory's own
// self-probe, which stops counting as handshaking without ever being a peer; awaitProof
// (true) once the nick-authentication challenge is sent and (false) once the client's
// answer is in, for the handshake pool's eviction order.
type handshakeSteps struct {
	read, admitted, notPeer func()
	awaitProof              func(bool)
}

// handshake reads and answers the handshake line, under the read deadline Accept set.
// On success the peer is registered; lr may already hold later lines.
func (s *Server) handshake(p *peer.Peer, lr *wire.LineReader, steps handshakeSteps) bool {
	conn := p.Conn()
	line, err := lr.ReadLine()
	if err != nil {
		p.Close(closeReason(p, err, true))
		return false
	}
	steps.read()
	env, err := wire.Decode(line)
	if err != nil {
		p.Log.Debug("malformed handshake line", "err", err)
		p.Close(reason.CloseMalformed)
		return false
	}
	if env.Type != wire.TypeHandshake {
		p.Close(reason.CloseNotHandshake)
		return false
	}
	s.ctr.In[stats.MsgHandshake].Add(1)
	s.ctr.BytesIn.Add(uint64(len(line)))
	hello, rej := handshake.Parse(env.Line, handshake.Policy{
		Network: s.conf().Network, AllowLocal: s.conf().Network == "regtest", Reserved: s.nick,
	})
	if rej != nil {
		s.rejectHandshake(p, rej)
		return false
	}
	p.SetHello(hello)
	if s.isSelfProbe(hello) {
		steps.notPeer()
		s.serveSelfProbe(p, lr)
		return false
	}
	welcome := s.dir.Load().accept
	switch s.nickAuthFor(hello) {
	case authRefuse:
		s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectNickAuthRequired,
			Detail: "verified nick authentication required"})
		return false
	case authRun:
		key, ok := s.authenticate(p, lr, env.Line, steps.awaitProof)
		if !ok {
			return false
		}
		p.VerifiedKey = key
		welcome = s.authResults.line(nickauth.CodeOK)
	}
	p.Touch(time.Now())
	for attempt := 0; ; attempt++ {
		res, owner := s.reg.RegisterThen(p, welcome, steps.admitted)
		switch res {
		case registry.Registered, registry.Displaced:
			_ = conn.SetReadDeadline(time.Time{})
			if p.VerifiedKey != "" {
				s.authResults.count(nickauth.CodeOK)
				s.ctr.Sent(stats.MsgOther, 1, len(welcome))
			} else {
				s.ctr.Sent(stats.MsgDNHandshake, 1, len(welcome))
			}
			if res == registry.Displaced {
				s.displace(owner, p)
			}
			return true
		case registry.Conflict:
			s.failAuth(p, nickauth.CodePolicy, "nick held by a verified owner with another key")
			return false
		case registry.VerifiedOwner:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
				Detail: "nick registered by a verified owner"})
			return false
		case registry.Gone:
			return false
		case registry.Full:
			if p.VerifiedKey != "" { // its 795 was an acceptance: the 807 refuses
				s.failAuth(p, nickauth.CodePolicy, "maximum peers reached")
				return false
			}
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectCapacity,
				Detail: fmt.Sprintf("maximum peers reached (%d)", s.reg.Max())})
			return false
		case registry.Checking:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
				Detail: "nick already registered (owner being checked)"})
			return false
		case registry.Proven:
			s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
				Detail: "nick already registered by a peer that proved alive just now"})
			return false
		case registry.Duplicate:
			if attempt > 0 || s.ownerAlive(owner) {
				s.rejectHandshake(p, &handshake.Rejection{Code: reason.RejectDuplicate,
					Detail: "nick already registered by a live peer"})
				return false
			}
		}
	}
}

// ownerAlive checks whether the current owner of a nick a newcomer claims is alive: it
// pings a ping-capable owner, sends a non-ping maker the legacy orderbook probe (which
// reference makers answer), and writes the same harmless probe to a non-ping taker. Any
// line from the owner within NickCheckTimeout proves it alive. A ping-capable peer or a
// maker that stays silent is cut and its nick freed; a non-ping taker cannot answer, so
// it keeps the nick unless its connection fails meanwhile (see docs/protocol-choices.md).
//
// The registry lets one check per nick run at a time and none start for
// registry.CheckCooldown after the owner proved alive, so a storm of claims costs the
// owner at most one probe per cooldown. A claim that cannot start a check is answered
// from the registry: the owner is alive as long as the nick is still held.
func (s *Server) ownerAlive(owner *peer.Peer) bool {
	if !s.reg.BeginCheck(owner) {
		return s.reg.Lookup(owner.Nick) != nil
	}
	alive := false
	defer func() { s.reg.EndCheck(owner, alive) }()
	answered := owner.AwaitAnswer()
	if owner.Features.Ping {
		s.rt.Ping(owner)
	} else {
		s.rt.Probe(owner)
	}
	timer := time.NewTimer(s.conf().NickCheckTimeout)
	defer timer.Stop()
	select {
	case <-answered:
		alive = true
		return true
	case <-owner.Done():
	case <-timer.C:
		if !owner.Features.Ping && !owner.Maker() {
			alive = true // kept, as if alive: see above
			return true
		}
		owner.Log.Info("nick owner did not answer; replacing it")
		owner.Close(reason.CloseReplaced)
	}
	// Wait until the old owner is unregistered and its departure announced.
	select {
	case <-owner.Left():
	case <-time.After(5 * time.Second):
	}
	return false
}

// rejectHandshake answers accepted:false with the reason in the motd, then closes
// gracefully: half-close, drain briefly, close — so that unread client bytes cannot
// turn the close into a reset that destroys the answer.
func (s *Server) rejectHandshake(p *peer.Peer, rej *handshake.Rejection) {
	p.Log.Info("handshake rejected", "reason", rej.Code.String())
	s.ctr.Reject(rej.Code)
	line := wire.AppendEnvelope(nil, wire.TypeDNHandshake, s.dir.Load().dir.Reject(rej))
	s.ctr.Sent(stats.MsgDNHandshake, 1, len(line))
	conn := p.Conn()
	if err := p.WriteNow(line); err == nil {
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 512)
			for total := 0; total < 1<<16; {
				n, err := conn.Read(buf)
				total += n
				if err != nil {
					break
				}
			}
		}
	}
	p.Close(reason.CloseRejected)
}

// Nick authentication (JMP-0005, docs/protocol.md §5; choices in
// docs/protocol-choices.md "Nick authentication").

// authDecision is what nickAuthFor decides for one client.
type authDecision uint8

const (
	authLegacy authDecision = iota // no round: the legacy handshake
	authRun                        // both sides offer it: 795, 803, 805, 807
	authRefuse                     // require_verified and the client does not offer it
)

// nickAuthFor decides whether a client's handshake runs the authentication round: when
// this directory offers it (a mode other than disabled and a directory-id known) and the
// client's features offered it. In require_verified mode a client that does not is
// refused.
func (s *Server) nickAuthFor(h handshake.Hello) authDecision {
	mode := s.conf().NickAuthMode
	offered := mode != "disabled" && s.NickAuthID() != ""
	switch {
	case offered && h.Features.NickAuth:
		return authRun
	case mode == "require_verified":
		return authRefuse
	}
	return authLegacy
}

// NickAuthID is the directory-id of nick authentication: nick_auth_directory_id, else
// this directory's own location lower-cased (its onion:port; the listen address on
// regtest); "" when neither is known or the location is no valid directory-id.
func (s *Server) NickAuthID() string {
	if id := s.conf().NickAuthDirectoryID; id != "" {
		return id
	}
	id := strings.ToLower(s.Location())
	if !nickauth.ValidDirectoryID(id) {
		return ""
	}
	return id
}

// checkNickAuth says at start what nick authentication will do: with no directory-id it
// is not offered (WARN; require_verified is refused), and require_verified refuses every
// client that cannot authenticate, which is every reference client (WARN).
func (s *Server) checkNickAuth() error {
	mode, id := s.conf().NickAuthMode, s.NickAuthID()
	switch {
	case mode == "disabled":
	case id == "" && mode == "require_verified":
		return errors.New("nick_auth_mode=require_verified needs a directory-id: set nick_auth_directory_id (NICK_AUTH_DIRECTORY_ID) to the onion:port clients dial, or run with a tor_mode so that it is the onion's")
	case id == "":
		s.log.Warn("nick authentication is not offered: no directory-id (set nick_auth_directory_id to the onion:port clients dial, or run with a tor_mode)")
	case mode == "require_verified":
		s.log.Warn("nick_auth_mode=require_verified: every client that cannot authenticate its nick is refused, which is every reference (joinmarket-clientserver) client", "directory_id", id)
	default:
		s.log.Info("nick authentication offered", "mode", mode, "directory_id", id)
	}
	return nil
}

// authenticate runs the round with a client that offered it: the 795 accepting it (with
// nick_auth advertised), the 803 challenge, then the 805 proof, which must be the next
// line and arrive within nick_auth_timeout; the directory's own writes are bounded by
// the same timeout. It returns the proven public key; on failure the 807 with the
// failure code has been sent (best effort) and the connection closed.
func (s *Server) authenticate(p *peer.Peer, lr *wire.LineReader, handshakeLine string, await func(bool)) (string, bool) {
	timeout := s.conf().NickAuthTimeout
	id := s.NickAuthID()
	ch, err := nickauth.NewChallenge(id)
	if err != nil { // a directory-id NickAuthID vetted, or no randomness
		s.failAuth(p, nickauth.CodePolicy, err.Error())
		return "", false
	}
	accept := s.dir.Load().acceptAuth
	chLine := wire.AppendEnvelope(nil, wire.TypeNickAuthChallenge, ch.Line())
	if p.WriteNowWithin(accept, timeout) != nil || p.WriteNowWithin(chLine, timeout) != nil {
		p.Close(reason.CloseWriteError)
		return "", false
	}
	s.ctr.Sent(stats.MsgDNHandshake, 1, len(accept))
	s.ctr.Sent(stats.MsgOther, 1, len(chLine))
	_ = p.Conn().SetReadDeadline(time.Now().Add(timeout))
	await(true)
	raw, err := lr.ReadLine()
	await(false)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		s.failAuth(p, nickauth.CodeExpired, "no proof within "+timeout.String())
		return "", false
	case errors.Is(err, wire.ErrLineTooLong):
		s.failAuth(p, nickauth.CodeMalformed, "proof line too long")
		return "", false
	case err != nil:
		p.Close(closeReason(p, err, true))
		return "", false
	}
	s.ctr.BytesIn.Add(uint64(len(raw)))
	if err := nickauth.CheckEnvelope(raw); err != nil {
		s.failAuth(p, nickauth.CodeMalformed, err.Error())
		return "", false
	}
	env, err := wire.Decode(raw)
	if err != nil || env.Type != wire.TypeNickAuthProof {
		s.failAuth(p, nickauth.CodeMalformed, "the line after the challenge is not an 805 proof")
		return "", false
	}
	s.ctr.In[stats.MsgOther].Add(1)
	proof, err := nickauth.ParseProof(env.Line)
	if err != nil {
		s.failAuth(p, nickauth.CodeMalformed, err.Error())
		return "", false
	}
	if err := nickauth.Verify(proof, ch.Challenge, id, handshakeLine, p.Nick); err != nil {
		s.failAuth(p, nickauth.CodeOf(err), err.Error())
		return "", false
	}
	return proof.PubKey, true
}

// failAuth ends a failed round: the 807 with code (best effort, within the timeout),
// counted by code, and a close. detail goes to the DEBUG log only.
func (s *Server) failAuth(p *peer.Peer, code nickauth.Code, detail string) {
	s.authResults.count(code)
	p.Log.Info("nick authentication failed", "code", code.String())
	p.Log.Debug("nick authentication failed", "code", code.String(), "detail", detail)
	line := s.authResults.line(code)
	if p.WriteNowWithin(line, s.conf().NickAuthTimeout) == nil {
		s.ctr.Sent(stats.MsgOther, 1, len(line))
	}
	p.Close(reason.CloseNickAuthFailed)
}

// displace ends the connection whose nick a verified newcomer took over (registry
// Displaced): every other peer hears its departure at once (the newcomer does not: it
// holds the nick now), and its socket is closed. Its own goroutine then finds it no
// longer registered and announces nothing more.
func (s *Server) displace(old, newcomer *peer.Peer) {
	s.rt.LeftExcept(old, newcomer)
	old.Close(reason.CloseDisplaced)
	s.recent.add(Disconnect{Time: time.Now(), Role: old.Role(), Reason: reason.CloseDisplaced})
	old.Log.Info("peer displaced by its nick's verified owner", "role", old.Role())
}

// authCodes are the 807 result codes, in the order authCounters keeps them.
var authCodes = [...]nickauth.Code{nickauth.CodeOK, nickauth.CodeMalformed, nickauth.CodeExpired,
	nickauth.CodeInvalid, nickauth.CodePolicy}

// authCounters counts nick-authentication results by code, and holds the encoded 807
// lines.
type authCounters struct {
	n     [len(authCodes)]atomic.Uint64
	lines [len(authCodes)][]byte
}

func newAuthCounters() *authCounters {
	a := &authCounters{}
	for i, c := range authCodes {
		a.lines[i] = wire.AppendEnvelope(nil, wire.TypeNickAuthResult, nickauth.Result(c))
	}
	return a
}

// index is c's position in authCodes.
func authIndex(c nickauth.Code) int {
	for i, k := range authCodes {
		if k == c {
			return i
		}
	}
	panic("nick-auth: unknown result code " + string(c))
}

func (a *authCounters) count(c nickauth.Code)       { a.n[authIndex(c)].Add(1) }
func (a *authCounters) line(c nickauth.Code) []byte { return a.lines[authIndex(c)] }

// snapshot returns the counts by code label.
func (a *authCounters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(authCodes))
	for i, c := range authCodes {
		m[c.String()] = a.n[i].Load()
	}
	return m
}
