package router_test

import (
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/peertest"
)

// The GETPEERLIST answer is encoded once per set of makers and shared: a second request
// with no maker change gets the same bytes (one encoding, checked through the router's
// cache hook), a taker joining changes nothing, and a maker joining or leaving is seen
// at the next request.
func TestGetPeerlistSharedUntilMakersChange(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		dn := peertest.NickDN + ";" + peertest.DNLoc
		a := peertest.NickMaker + ";" + peertest.MakerLoc
		b := peertest.NickOther + ";" + peertest.OnionA + ":5223"
		h.Add(peertest.NickMaker, peertest.MakerLoc)
		r1 := h.Add("J554XN9CktYtikWE", peertest.NotServing)
		r2 := h.Add("J55dUJm3Tz6hkqoP", peertest.NotServing)

		first := h.Rt.PeerlistEncodings()
		h.Rt.GetPeerlist(r1.P)
		h.Rt.GetPeerlist(r2.P)
		peertest.EqualLines(t, "r1", r1.Recv(), []string{peertest.Peerlist(dn + "," + a)})
		peertest.EqualLines(t, "r2", r2.Recv(), []string{peertest.Peerlist(dn + "," + a)})
		if got := h.Rt.PeerlistEncodings() - first; got != 1 {
			t.Fatalf("two requests with the same makers encoded the peerlist %d times, want 1", got)
		}

		h.Add(peertest.NickTaker, peertest.NotServing) // a taker: the answer stays
		h.Rt.GetPeerlist(r1.P)
		peertest.EqualLines(t, "r1 after a taker joined", r1.Recv(), []string{peertest.Peerlist(dn + "," + a)})
		if got := h.Rt.PeerlistEncodings() - first; got != 1 {
			t.Fatalf("a taker joining made the peerlist be encoded again (%d encodings)", got)
		}

		mb := h.Add(peertest.NickOther, peertest.OnionA+":5223")
		h.Rt.GetPeerlist(r2.P)
		peertest.EqualLines(t, "r2 after a maker joined", r2.Recv(), []string{peertest.Peerlist(dn + "," + a + "," + b)})

		h.Reg.Remove(mb.P)
		h.Rt.GetPeerlist(r1.P)
		peertest.EqualLines(t, "r1 after the maker left", r1.Recv(), []string{peertest.Peerlist(dn + "," + a)})
		if got := h.Rt.PeerlistEncodings() - first; got != 3 {
			t.Fatalf("%d encodings for three sets of makers, want 3", got)
		}
	})
}
