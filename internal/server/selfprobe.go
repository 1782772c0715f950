// The directory's own reachability probe, as the server meets it: a connection whose
// handshake names the nick the prober announced is answered like a taker (795, then
// GETPEERLIST's answer) but never registered — never counted as a peer, never listed,
// never announced with ";D", never sent anyone's messages.

package server

import (
	"sync/atomic"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// selfProbeToken is the nick of the self-probe under way. The nick is random and only
// ever travels inside Tor to this directory, so no one else can present it; one who did
// would get only the public peerlist.
type selfProbeToken struct {
	nick string
	seen atomic.Bool // its handshake arrived (once)
}

// selfProbeLines bounds what a self-probe connection may send after its handshake, and
// selfProbeIdle how long it may stay: the probe sends one GETPEERLIST and closes.
const (
	selfProbeLines = 4
	selfProbeIdle  = 30 * time.Second
)

// ExpectSelfProbe announces the nick of the self-probe about to connect. seen reports
// whether its handshake reached this server; done withdraws the nick.
func (s *Server) ExpectSelfProbe(nick string) (seen func() bool, done func()) {
	tok := &selfProbeToken{nick: nick}
	s.selfProbe.Store(tok)
	return tok.seen.Load, func() { s.selfProbe.CompareAndSwap(tok, nil) }
}

// isSelfProbe reports whether hello is the expected self-probe's, at most once per
// announcement.
func (s *Server) isSelfProbe(hello handshake.Hello) bool {
	tok := s.selfProbe.Load()
	return tok != nil && hello.Nick == tok.nick && tok.seen.CompareAndSwap(false, true)
}

// serveSelfProbe answers the self-probe as a taker would be answered, outside the
// registry, and closes the connection (reason self_probe).
func (s *Server) serveSelfProbe(p *peer.Peer, lr *wire.LineReader) {
	conn := p.Conn()
	accept := s.dir.Load().accept
	if p.WriteNow(accept) != nil {
		p.Close(reason.CloseSelfProbe)
		return
	}
	s.ctr.Sent(stats.MsgDNHandshake, 1, len(accept))
	_ = conn.SetReadDeadline(time.Now().Add(selfProbeIdle))
	for range selfProbeLines {
		line, err := lr.ReadLine()
		if err != nil {
			break
		}
		env, err := wire.Decode(line)
		if err != nil || env.Type != wire.TypeGetPeerlist {
			continue
		}
		for _, l := range s.rt.PeerlistLines(p.Features.PeerlistFeatures) {
			if p.WriteNow(l) != nil {
				break
			}
			s.ctr.Sent(stats.MsgPeerlist, 1, len(l))
		}
	}
	p.Close(reason.CloseSelfProbe)
}
