package router_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peertest"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/router"
	"github.com/jm-directory/jm-directory-server/internal/stats"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// relay is what a recipient must receive for a relayed raw "line" token.
func relay(typ int, raw string) string {
	return fmt.Sprintf(`{"type":%d,"line":%s}`, typ, raw) + "\r\n"
}

// rawToken decodes a client envelope and returns its raw "line" token.
func rawToken(t *testing.T, envelope string) []byte {
	t.Helper()
	env, err := wire.Decode([]byte(envelope))
	if err != nil {
		t.Fatalf("Decode(%s): %v", envelope, err)
	}
	return env.RawLine()
}

func TestPubmsgFanOut(t *testing.T) {
	cases := []struct {
		name string
		in   string // envelope as the sender wrote it
		want string // what every other peer must receive, byte for byte
	}{
		{
			name: "reference spacing is compacted, line untouched (§11.4)",
			in:   `{"type": 687, "line": "J59xfsUewpdmrbuM!PUBLIC!sw0reloffer 0 27300 4000000 0 0.00002"}`,
			want: `{"type":687,"line":"J59xfsUewpdmrbuM!PUBLIC!sw0reloffer 0 27300 4000000 0 0.00002"}` + "\r\n",
		},
		{
			name: "escapes relayed as written",
			in:   `{"type":687,"line":"J59xfsUewpdmrbuM!PUBLIC!caf\u00e9 \"q\" \\ \/ \u003c \ud83d\ude00 \t"}`,
			want: `{"type":687,"line":"J59xfsUewpdmrbuM!PUBLIC!caf\u00e9 \"q\" \\ \/ \u003c \ud83d\ude00 \t"}` + "\r\n",
		},
		{
			name: "html characters and utf-8 not escaped",
			in:   `{"line":"J59xfsUewpdmrbuM!PUBLIC!<>& café ☃","type":687}`,
			want: `{"type":687,"line":"J59xfsUewpdmrbuM!PUBLIC!<>& café ☃"}` + "\r\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				sender := h.Add(peertest.NickMaker, peertest.MakerLoc, "ping")
				taker := h.Add(peertest.NickTaker, peertest.NotServing)
				maker := h.Add(peertest.NickOther, peertest.OnionA+":5223", "peerlist_features")
				raw := rawToken(t, tc.in)

				if n := h.Rt.Pubmsg(sender.P, raw); n != 2 {
					t.Errorf("Pubmsg returned %d, want 2", n)
				}
				peertest.EqualLines(t, "taker", taker.Recv(), []string{tc.want})
				peertest.EqualLines(t, "maker", maker.Recv(), []string{tc.want})
				peertest.EqualLines(t, "sender", sender.Recv(), nil)
				if got := h.Ctr.Out[stats.MsgPubmsg].Load(); got != 2 {
					t.Errorf("Out = %d, want 2", got)
				}
			})
		})
	}
}

func TestPubmsgCountsOnlyQueuedRecipients(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		sender := h.Add(peertest.NickMaker, peertest.MakerLoc)
		live := h.Add(peertest.NickTaker, peertest.NotServing)
		gone := h.Add(peertest.NickOther, peertest.NotServing)
		gone.P.Close(reason.CloseClientGone) // closed but not yet unregistered
		raw := `"J59xfsUewpdmrbuM!PUBLIC!orderbook"`
		if n := h.Rt.Pubmsg(sender.P, []byte(raw)); n != 1 {
			t.Errorf("Pubmsg returned %d, want 1", n)
		}
		peertest.EqualLines(t, "live peer", live.Recv(), []string{relay(687, raw)})
		peertest.EqualLines(t, "closed peer", gone.Recv(), nil)
	})
}

func TestPubmsgAlone(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		sender := h.Add(peertest.NickMaker, peertest.MakerLoc)
		if n := h.Rt.Pubmsg(sender.P, []byte(`"J59xfsUewpdmrbuM!PUBLIC!orderbook"`)); n != 0 {
			t.Errorf("Pubmsg returned %d, want 0", n)
		}
		peertest.EqualLines(t, "sender", sender.Recv(), nil)
	})
}

// rawOfContent returns a pubmsg/privmsg "line" token whose compact relay envelope has
// exactly content bytes before the CRLF.
func rawOfContent(prefix string, content int) string {
	// {"type":NNN,"line": is 19 bytes, the closing } one more.
	n := content - 20 - len(prefix) - 2
	return `"` + prefix + strings.Repeat("x", n) + `"`
}

// TestPubmsgSizeLimit: between reference peers, a pubmsg over wire.MaxLine reaches
// nobody (each recipient refuses it: TestPubmsgLongLines); over wire.MaxLineNG the router
// drops it before the fan-out, counted once.
func TestPubmsgSizeLimit(t *testing.T) {
	cases := []struct {
		content   int
		delivered bool
		oversize  bool // dropped by the router as too long for anyone
	}{
		{wire.MaxLine - 1, true, false},
		{wire.MaxLine, true, false},
		{wire.MaxLine + 1, false, false},
		{wire.MaxLine + 500, false, false},
		{wire.MaxLineNG, false, false},
		{wire.MaxLineNG + 1, false, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.content), func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				sender := h.Add(peertest.NickMaker, peertest.MakerLoc)
				a := h.Add(peertest.NickTaker, peertest.NotServing)
				b := h.Add(peertest.NickOther, peertest.NotServing)
				raw := rawOfContent("J59xfsUewpdmrbuM!PUBLIC!", tc.content)
				want := relay(687, raw)
				if len(want) != tc.content+2 {
					t.Fatalf("test bug: relay is %d bytes, want %d", len(want), tc.content+2)
				}

				n := h.Rt.Pubmsg(sender.P, []byte(raw))
				var wantLines []string
				wantN, wantDrops := 0, uint64(0)
				if tc.delivered {
					wantLines, wantN = []string{want}, 2
				}
				if tc.oversize {
					wantDrops = 1
				}
				if n != wantN {
					t.Errorf("Pubmsg returned %d, want %d", n, wantN)
				}
				peertest.EqualLines(t, "peer a", a.Recv(), wantLines)
				peertest.EqualLines(t, "peer b", b.Recv(), wantLines)
				peertest.EqualLines(t, "sender", sender.Recv(), nil)
				// Too long for anyone: counted once per message, not once per recipient.
				if got := h.Ctr.Drops(reason.DropOversizeOut); got != wantDrops {
					t.Errorf("DropOversizeOut = %d, want %d", got, wantDrops)
				}
				if got := h.Ctr.Out[stats.MsgPubmsg].Load(); got != uint64(wantN) {
					t.Errorf("Out = %d, want %d", got, wantN)
				}
			})
		})
	}
}

func TestPrivmsgPeerlist(t *testing.T) {
	const (
		sender    = peertest.NickMaker
		recipient = peertest.NickTaker
		allFeats  = ";F:neutrino_compat+peerlist_features+ping"
	)
	senderM := sender + ";" + peertest.MakerLoc
	dn := peertest.NickDN + ";" + peertest.DNLoc
	dnF := dn + ";F:peerlist_features+ping"
	maker3 := []string{"ping", "neutrino_compat", "peerlist_features"}

	cases := []struct {
		name        string
		dnLocation  string
		senderLoc   string
		senderFeats []string
		rcptFeats   []string
		wantList    string // "" = no 789 at all
	}{
		{"maker to legacy recipient", peertest.DNLoc, peertest.MakerLoc, maker3, nil, senderM + "," + dn},
		{"maker to F recipient", peertest.DNLoc, peertest.MakerLoc, maker3, []string{"peerlist_features"}, senderM + allFeats + "," + dnF},
		{"maker to ping-only recipient", peertest.DNLoc, peertest.MakerLoc, maker3, []string{"ping", "neutrino_compat"}, senderM + "," + dn},
		{"featureless maker to F recipient", peertest.DNLoc, peertest.MakerLoc, nil, []string{"peerlist_features"}, senderM + "," + dnF},
		{"maker, directory location unknown", "", peertest.MakerLoc, maker3, nil, senderM},
		{"maker to F recipient, directory location unknown", "", peertest.MakerLoc, maker3, []string{"peerlist_features", "ping"}, senderM + allFeats},
		{"taker to legacy recipient", peertest.DNLoc, peertest.NotServing, nil, nil, dn},
		{"taker with features to F recipient", peertest.DNLoc, peertest.NotServing, maker3, []string{"peerlist_features"}, dnF},
		{"taker, directory location unknown", "", peertest.NotServing, maker3, nil, ""},
		{"taker to F recipient, directory location unknown", "", peertest.NotServing, nil, []string{"peerlist_features"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, tc.dnLocation, func(t *testing.T, h *peertest.Harness) {
				s := h.Add(sender, tc.senderLoc, tc.senderFeats...)
				r := h.Add(recipient, peertest.NotServing, tc.rcptFeats...)
				bystander := h.Add(peertest.NickOther, peertest.OnionA+":5223", "peerlist_features", "ping")
				raw := `"` + sender + "!" + recipient + `!fill 0 1000000 caf\u00e9 <>& sig=="`

				if got := h.Rt.Privmsg(s.P, recipient, []byte(raw)); got != reason.DropNone {
					t.Fatalf("Privmsg = %v, want DropNone", got)
				}
				want := []string{relay(685, raw)}
				if tc.wantList != "" {
					want = append(want, peertest.Peerlist(tc.wantList))
				}
				peertest.EqualLines(t, "recipient", r.Recv(), want)
				peertest.EqualLines(t, "sender", s.Recv(), nil)
				peertest.EqualLines(t, "bystander", bystander.Recv(), nil)
				if got := h.Ctr.Out[stats.MsgPrivmsg].Load(); got != 1 {
					t.Errorf("Out = %d, want 1", got)
				}
			})
		})
	}
}

// TestPrivmsgProtocolExample replays §11.5 with the joinmarket-rs (compact) outputs and
// the DN entry the Go directory adds for taker senders.
func TestPrivmsgProtocolExample(t *testing.T) {
	const (
		maker = "J59EiPRQrQkXMk5d"
		taker = "J5ADox6oD453KSSf"
		dn    = "J58qZTosNQ6beAwN"
	)
	offerIn := `{"type": 685, "line": "J59EiPRQrQkXMk5d!J5ADox6oD453KSSf!sw0reloffer 0 27300 4000000 0 0.00002 032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w=="}`
	offerOut := `{"type":685,"line":"J59EiPRQrQkXMk5d!J5ADox6oD453KSSf!sw0reloffer 0 27300 4000000 0 0.00002 032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w=="}` + "\r\n"
	fillIn := `{"type": 685, "line": "J5ADox6oD453KSSf!J59EiPRQrQkXMk5d!fill 0 1000000 75c25473d42504b86dc2cb7dd0e1bfea92f10b0dc251d25993267ea92e8d07d0 P9505cacb7c710ed17125fcc6cb3669e8ddca6c8cd8af6a31f6b3cd64604c3098 0207b5dbd0f7a1b511aa621dad5a5c8acaa87876edaffa20f671beff44c0101c75 MEQCIFHGn17ARd7+KXrYWuCkmU6IEjUHINHoVfPSl2R4n/hfAiA7qgA+1rt8WSU0puOf7SNH8pecL2f0ZznDwaLKD+tcDA=="}`
	fillOut := `{"type":685,"line":"J5ADox6oD453KSSf!J59EiPRQrQkXMk5d!fill 0 1000000 75c25473d42504b86dc2cb7dd0e1bfea92f10b0dc251d25993267ea92e8d07d0 P9505cacb7c710ed17125fcc6cb3669e8ddca6c8cd8af6a31f6b3cd64604c3098 0207b5dbd0f7a1b511aa621dad5a5c8acaa87876edaffa20f671beff44c0101c75 MEQCIFHGn17ARd7+KXrYWuCkmU6IEjUHINHoVfPSl2R4n/hfAiA7qgA+1rt8WSU0puOf7SNH8pecL2f0ZznDwaLKD+tcDA=="}` + "\r\n"

	cases := []struct {
		name       string
		makerFeats []string
		takerFeats []string
		wantTaker  []string
		wantMaker  []string
	}{
		{
			name:      "reference maker and taker",
			wantTaker: []string{offerOut, `{"type":789,"line":"J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222,J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222"}` + "\r\n"},
			wantMaker: []string{fillOut, `{"type":789,"line":"J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222"}` + "\r\n"},
		},
		{
			name:       "both advertise peerlist_features",
			makerFeats: []string{"neutrino_compat", "peerlist_features", "ping"},
			takerFeats: []string{"peerlist_features", "ping", "nick_auth"},
			wantTaker:  []string{offerOut, `{"type":789,"line":"J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222;F:neutrino_compat+peerlist_features+ping,J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222;F:peerlist_features+ping"}` + "\r\n"},
			wantMaker:  []string{fillOut, `{"type":789,"line":"J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222;F:peerlist_features+ping"}` + "\r\n"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, dn, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				m := h.Add(maker, peertest.MakerLoc, tc.makerFeats...)
				tk := h.Add(taker, peertest.NotServing, tc.takerFeats...)
				if got := h.Rt.Privmsg(m.P, taker, rawToken(t, offerIn)); got != reason.DropNone {
					t.Fatalf("offer: Privmsg = %v", got)
				}
				if got := h.Rt.Privmsg(tk.P, maker, rawToken(t, fillIn)); got != reason.DropNone {
					t.Fatalf("fill: Privmsg = %v", got)
				}
				peertest.EqualLines(t, "taker", tk.Recv(), tc.wantTaker)
				peertest.EqualLines(t, "maker", m.Recv(), tc.wantMaker)
			})
		})
	}
}

func TestPrivmsgDropped(t *testing.T) {
	cases := []struct {
		name       string
		dnLocation string
		to         string
		raw        string
		closeRcpt  bool
		want       reason.Drop
	}{
		{name: "unknown nick", dnLocation: peertest.DNLoc, to: "J5ADox6oD453KSSf", want: reason.DropUnknownRecipient},
		{name: "empty nick", dnLocation: peertest.DNLoc, to: "", want: reason.DropUnknownRecipient},
		{name: "nick differs in case", dnLocation: peertest.DNLoc, to: strings.ToLower(peertest.NickTaker), want: reason.DropUnknownRecipient},
		{name: "directory nick", dnLocation: peertest.DNLoc, to: peertest.NickDN, want: reason.DropToDirectory},
		{name: "directory nick, location unknown", dnLocation: "", to: peertest.NickDN, want: reason.DropToDirectory},
		{name: "relay too long for a reference recipient", dnLocation: peertest.DNLoc, to: peertest.NickTaker, raw: rawOfContent(peertest.NickMaker+"!"+peertest.NickTaker+"!", wire.MaxLine+1), want: reason.DropTooLongForRecipient},
		{name: "relay too long for anyone", dnLocation: peertest.DNLoc, to: peertest.NickTaker, raw: rawOfContent(peertest.NickMaker+"!"+peertest.NickTaker+"!", wire.MaxLineNG+1), want: reason.DropOversizeOut},
		{name: "recipient closing", dnLocation: peertest.DNLoc, to: peertest.NickTaker, closeRcpt: true, want: reason.DropRecipientGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, tc.dnLocation, func(t *testing.T, h *peertest.Harness) {
				s := h.Add(peertest.NickMaker, peertest.MakerLoc, "peerlist_features")
				r := h.Add(peertest.NickTaker, peertest.NotServing, "peerlist_features")
				other := h.Add(peertest.NickOther, peertest.OnionA+":5223")
				if tc.closeRcpt {
					r.P.Close(reason.CloseQueueFull)
				}
				raw := tc.raw
				if raw == "" {
					raw = `"` + peertest.NickMaker + "!" + tc.to + `!hello"`
				}
				if got := h.Rt.Privmsg(s.P, tc.to, []byte(raw)); got != tc.want {
					t.Errorf("Privmsg = %v, want %v", got, tc.want)
				}
				peertest.EqualLines(t, "recipient", r.Recv(), nil)
				peertest.EqualLines(t, "sender", s.Recv(), nil)
				peertest.EqualLines(t, "other", other.Recv(), nil)
				if got := h.Ctr.Out[stats.MsgPrivmsg].Load(); got != 0 {
					t.Errorf("Out = %d, want 0", got)
				}
				// The reason is returned for the caller to count; the router must not
				// count it as well.
				if got := h.Ctr.DropCounts(); len(got) != 0 {
					t.Errorf("drop counters = %v, want none", got)
				}
			})
		})
	}
}

func TestPrivmsgLongestRelay(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		s := h.Add(peertest.NickMaker, peertest.MakerLoc)
		r := h.Add(peertest.NickTaker, peertest.NotServing)
		raw := rawOfContent(peertest.NickMaker+"!"+peertest.NickTaker+"!", wire.MaxLine)
		if got := h.Rt.Privmsg(s.P, peertest.NickTaker, []byte(raw)); got != reason.DropNone {
			t.Fatalf("Privmsg = %v, want DropNone", got)
		}
		want := []string{relay(685, raw), peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc + "," + peertest.NickDN + ";" + peertest.DNLoc)}
		if len(want[0]) != wire.MaxLine+2 {
			t.Fatalf("test bug: relay is %d bytes", len(want[0]))
		}
		peertest.EqualLines(t, "recipient", r.Recv(), want)
	})
}

func TestGetPeerlist(t *testing.T) {
	const requester = "J554XN9CktYtikWE"
	a := peertest.NickMaker + ";" + peertest.MakerLoc
	b := peertest.NickOther + ";" + peertest.OnionA + ":5223"
	dn := peertest.NickDN + ";" + peertest.DNLoc
	dnF := dn + ";F:peerlist_features+ping"

	cases := []struct {
		name       string
		dnLocation string
		reqFeats   []string
		want       string
	}{
		{"legacy requester", peertest.DNLoc, nil, dn + "," + a + "," + b},
		{"ping-only requester", peertest.DNLoc, []string{"ping"}, dn + "," + a + "," + b},
		{"F requester", peertest.DNLoc, []string{"peerlist_features", "nick_auth"}, dnF + "," + a + ";F:neutrino_compat+ping," + b},
		{"legacy requester, directory location unknown", "", nil, a + "," + b},
		{"F requester, directory location unknown", "", []string{"peerlist_features"}, a + ";F:neutrino_compat+ping," + b},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, tc.dnLocation, func(t *testing.T, h *peertest.Harness) {
				ma := h.Add(peertest.NickMaker, peertest.MakerLoc, "ping", "neutrino_compat")
				tk := h.Add(peertest.NickTaker, peertest.NotServing, "peerlist_features", "ping")
				mb := h.Add(peertest.NickOther, peertest.OnionA+":5223")
				req := h.Add(requester, peertest.NotServing, tc.reqFeats...)
				if n := h.Rt.GetPeerlist(req.P); n != 1 {
					t.Errorf("GetPeerlist returned %d, want 1", n)
				}
				peertest.EqualLines(t, "requester", req.Recv(), []string{peertest.Peerlist(tc.want)})
				for _, c := range []*peertest.Client{ma, tk, mb} {
					peertest.EqualLines(t, c.P.Nick, c.Recv(), nil)
				}
			})
		})
	}
}

func TestGetPeerlistNobodyListed(t *testing.T) {
	cases := []struct {
		name       string
		dnLocation string
		takers     int
		want       string
	}{
		{"empty, directory location unknown", "", 0, ""},
		{"only takers, directory location unknown", "", 2, ""},
		{"empty, directory location known", peertest.DNLoc, 0, peertest.NickDN + ";" + peertest.DNLoc},
		{"only takers, directory location known", peertest.DNLoc, 2, peertest.NickDN + ";" + peertest.DNLoc},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, tc.dnLocation, func(t *testing.T, h *peertest.Harness) {
				for _, n := range []string{peertest.NickTaker, peertest.NickOther}[:tc.takers] {
					h.Add(n, peertest.NotServing, "ping")
				}
				req := h.Add("J554XN9CktYtikWE", peertest.NotServing)
				if n := h.Rt.GetPeerlist(req.P); n != 1 {
					t.Errorf("GetPeerlist returned %d, want 1", n)
				}
				peertest.EqualLines(t, "requester", req.Recv(), []string{peertest.Peerlist(tc.want)})
			})
		})
	}
}

// The requester is not special: a maker asking is listed like any other maker.
func TestGetPeerlistRequesterIsMaker(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, "", func(t *testing.T, h *peertest.Harness) {
		req := h.Add(peertest.NickMaker, peertest.MakerLoc)
		h.Rt.GetPeerlist(req.P)
		peertest.EqualLines(t, "requester", req.Recv(), []string{peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc)})
	})
}

// TestGetPeerlistProtocolExample checks the joinmarket-rs lines of §11.6 (registry: the REF
// maker and the REF taker).
func TestGetPeerlistProtocolExample(t *testing.T) {
	cases := []struct {
		name     string
		reqFeats []string
		want     string
	}{
		{"legacy requester", nil, `{"type":789,"line":"J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222,J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222"}` + "\r\n"},
		{"F requester", []string{"nick_auth", "peerlist_features", "ping"}, `{"type":789,"line":"J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222;F:peerlist_features+ping,J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222"}` + "\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, "J58qZTosNQ6beAwN", peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				h.Add("J59EiPRQrQkXMk5d", peertest.MakerLoc)
				h.Add("J5ADox6oD453KSSf", peertest.NotServing)
				req := h.Add("J554XN9CktYtikWE", peertest.NotServing, tc.reqFeats...)
				h.Rt.GetPeerlist(req.P)
				peertest.EqualLines(t, "requester", req.Recv(), []string{tc.want})
			})
		})
	}
}

// base58Nick derives a distinct, well-formed nick from i.
func base58Nick(i int) string {
	const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	b := []byte("J5" + strings.Repeat("1", 14))
	for k := len(b) - 1; i > 0; k-- {
		b[k] = alphabet[i%58]
		i /= 58
	}
	return string(b)
}

func TestGetPeerlistSplitsLongLists(t *testing.T) {
	const makers = 500
	var feats []string
	for k := range 12 {
		feats = append(feats, fmt.Sprintf("some_rather_long_feature_name_%02d", k))
	}
	feats = append(feats, "neutrino_compat", "peerlist_features", "ping")
	fsuffix := ";F:" + strings.Join(peertest.Features(feats...).True, "+")

	for _, withF := range []bool{false, true} {
		t.Run(fmt.Sprintf("peerlist_features=%v", withF), func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
				var want []string
				if withF {
					want = append(want, peertest.NickDN+";"+peertest.DNLoc+";F:peerlist_features+ping")
				} else {
					want = append(want, peertest.NickDN+";"+peertest.DNLoc)
				}
				for i := range makers {
					onion := peertest.OnionA
					if i%2 == 1 {
						onion = peertest.OnionB
					}
					loc := fmt.Sprintf("%s:%d", onion, 10000+i)
					nick := base58Nick(i + 1)
					h.Add(nick, loc, feats...)
					if withF {
						want = append(want, nick+";"+loc+fsuffix)
					} else {
						want = append(want, nick+";"+loc)
					}
					if i%50 == 0 { // takers are never listed
						h.Add(base58Nick(100000+i), peertest.NotServing, feats...)
					}
				}
				var reqFeats []string
				if withF {
					reqFeats = []string{"peerlist_features"}
				}
				req := h.Add("J554XN9CktYtikWE", peertest.NotServing, reqFeats...)

				n := h.Rt.GetPeerlist(req.P)
				lines := req.Recv()
				if n != len(lines) {
					t.Errorf("GetPeerlist returned %d, but %d lines arrived", n, len(lines))
				}
				if len(lines) < 2 {
					t.Fatalf("got %d line(s), want the list split over several", len(lines))
				}
				var got []string
				for i, l := range lines {
					if !strings.HasSuffix(l, "\r\n") {
						t.Fatalf("line %d does not end in CRLF", i)
					}
					content := strings.TrimSuffix(l, "\r\n")
					if len(content) > wire.MaxLine {
						t.Errorf("line %d has %d content bytes, limit %d", i, len(content), wire.MaxLine)
					}
					env, err := wire.Decode([]byte(content))
					if err != nil {
						t.Fatalf("line %d: %v", i, err)
					}
					if env.Type != wire.TypePeerlist || env.Line == "" {
						t.Fatalf("line %d: type %d, line %q", i, env.Type, env.Line)
					}
					// Entries are split between lines, never inside one.
					got = append(got, strings.Split(env.Line, ",")...)
				}
				if len(got) != len(want) {
					t.Fatalf("got %d entries, want %d", len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("entry %d = %q, want %q", i, got[i], want[i])
					}
				}
			})
		})
	}
}

func TestLeft(t *testing.T) {
	cases := []struct {
		name       string
		dnLocation string
		loc        string
		want       string
	}{
		{"maker", peertest.DNLoc, peertest.MakerLoc, peertest.NickMaker + ";" + peertest.MakerLoc + ";D," + peertest.NickDN + ";" + peertest.DNLoc},
		{"taker", peertest.DNLoc, peertest.NotServing, peertest.NickMaker + ";NOT-SERVING-ONION;D," + peertest.NickDN + ";" + peertest.DNLoc},
		{"maker, directory location unknown", "", peertest.MakerLoc, peertest.NickMaker + ";" + peertest.MakerLoc + ";D"},
		{"taker, directory location unknown", "", peertest.NotServing, peertest.NickMaker + ";NOT-SERVING-ONION;D"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peertest.Bubble(t, peertest.NickDN, tc.dnLocation, func(t *testing.T, h *peertest.Harness) {
				gone := h.Add(peertest.NickMaker, tc.loc, "peerlist_features", "ping")
				legacy := h.Add(peertest.NickTaker, peertest.NotServing)
				capable := h.Add(peertest.NickOther, peertest.OnionA+":5223", "peerlist_features", "ping")
				if !h.Reg.Remove(gone.P) {
					t.Fatal("Remove failed")
				}
				if n := h.Rt.Left(gone.P); n != 2 {
					t.Errorf("Left returned %d, want 2", n)
				}
				// Same line for everybody: D and F are never combined.
				peertest.EqualLines(t, "legacy peer", legacy.Recv(), []string{peertest.Peerlist(tc.want)})
				peertest.EqualLines(t, "F-capable peer", capable.Recv(), []string{peertest.Peerlist(tc.want)})
				peertest.EqualLines(t, "leaver", gone.Recv(), nil)
			})
		})
	}
}

// TestLeftProtocolExample checks the joinmarket-rs line of §11.7.
func TestLeftProtocolExample(t *testing.T) {
	peertest.Bubble(t, "J58qZTosNQ6beAwN", peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		m := h.Add("J59EiPRQrQkXMk5d", peertest.MakerLoc)
		tk := h.Add("J5ADox6oD453KSSf", peertest.NotServing)
		h.Reg.Remove(m.P)
		h.Rt.Left(m.P)
		peertest.EqualLines(t, "taker", tk.Recv(), []string{`{"type":789,"line":"J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222;D,J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222"}` + "\r\n"})
	})
}

func TestLeftNobodyElse(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		gone := h.Add(peertest.NickMaker, peertest.MakerLoc)
		h.Reg.Remove(gone.P)
		if n := h.Rt.Left(gone.P); n != 0 {
			t.Errorf("Left returned %d, want 0", n)
		}
		peertest.EqualLines(t, "leaver", gone.Recv(), nil)
	})
}

func TestProbeAndPingLines(t *testing.T) {
	rt := router.New(nil, &stats.Counters{}, "J58qZTosNQ6beAwN", peertest.DNLoc)
	if got, want := string(rt.ProbeLine()), `{"type":687,"line":"J58qZTosNQ6beAwN!PUBLIC!orderbook"}`+"\r\n"; got != want {
		t.Errorf("ProbeLine = %q, want %q", got, want)
	}
	if got, want := string(router.PingLine), `{"type":798,"line":""}`+"\r\n"; got != want {
		t.Errorf("PingLine = %q, want %q", got, want)
	}
	// The probe does not depend on the location being known.
	rt.SetSelf(peertest.NickDN, "")
	if got, want := string(rt.ProbeLine()), `{"type":687,"line":"J5CHzCDv77erayr2!PUBLIC!orderbook"}`+"\r\n"; got != want {
		t.Errorf("ProbeLine after SetSelf = %q, want %q", got, want)
	}
}

func TestSetSelf(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, "", func(t *testing.T, h *peertest.Harness) {
		const newNick = "J58qZTosNQ6beAwN"
		if s := h.Rt.Self(); s.Nick != peertest.NickDN || s.Location != "" {
			t.Fatalf("Self = %q %q", s.Nick, s.Location)
		}
		maker := h.Add(peertest.NickMaker, peertest.MakerLoc)
		req := h.Add(peertest.NickTaker, peertest.NotServing, "peerlist_features")
		other := h.Add(peertest.NickOther, peertest.NotServing)

		h.Rt.GetPeerlist(req.P)
		peertest.EqualLines(t, "before: peerlist", req.Recv(), []string{peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc)})

		h.Rt.SetSelf(newNick, peertest.DNLoc)
		if s := h.Rt.Self(); s.Nick != newNick || s.Location != peertest.DNLoc {
			t.Fatalf("Self = %q %q", s.Nick, s.Location)
		}
		h.Rt.GetPeerlist(req.P)
		peertest.EqualLines(t, "after: peerlist", req.Recv(), []string{peertest.Peerlist(newNick + ";" + peertest.DNLoc + ";F:peerlist_features+ping," + peertest.NickMaker + ";" + peertest.MakerLoc)})

		if got := h.Rt.Privmsg(other.P, newNick, []byte(`"J55uwMUczBgZV44z!J58qZTosNQ6beAwN!hi"`)); got != reason.DropToDirectory {
			t.Errorf("privmsg to new directory nick = %v, want DropToDirectory", got)
		}
		if got := h.Rt.Privmsg(other.P, peertest.NickDN, []byte(`"J55uwMUczBgZV44z!J5CHzCDv77erayr2!hi"`)); got != reason.DropUnknownRecipient {
			t.Errorf("privmsg to old directory nick = %v, want DropUnknownRecipient", got)
		}
		if got := h.Rt.Privmsg(other.P, peertest.NickMaker, []byte(`"J55uwMUczBgZV44z!J59xfsUewpdmrbuM!hi"`)); got != reason.DropNone {
			t.Errorf("privmsg to maker = %v", got)
		}
		peertest.EqualLines(t, "maker", maker.Recv(), []string{
			relay(685, `"J55uwMUczBgZV44z!J59xfsUewpdmrbuM!hi"`),
			peertest.Peerlist(newNick + ";" + peertest.DNLoc),
		})

		h.Reg.Remove(other.P)
		h.Rt.Left(other.P)
		want := []string{peertest.Peerlist(peertest.NickOther + ";NOT-SERVING-ONION;D," + newNick + ";" + peertest.DNLoc)}
		peertest.EqualLines(t, "maker: left", maker.Recv(), want)
		peertest.EqualLines(t, "requester: left", req.Recv(), want)

		// Forgetting the location removes the directory's entry again.
		h.Rt.SetSelf(newNick, "")
		h.Rt.GetPeerlist(req.P)
		peertest.EqualLines(t, "forgotten: peerlist", req.Recv(), []string{peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc)})
	})
}

// TestLeftBurst: a lone departure is announced at once; departures right after it are
// collected for burstWindow and announced together, in as few lines as fit under the
// line limit, so a mass disconnect does not cost N×N lines.
func TestLeftBurst(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		watcher := h.Add(peertest.NickOther, peertest.NotServing)
		first := h.Add(peertest.NickMaker, peertest.MakerLoc)
		h.Reg.Remove(first.P)
		if n := h.Rt.Left(first.P); n != 1 {
			t.Fatalf("first Left returned %d", n)
		}
		dn := "," + peertest.NickDN + ";" + peertest.DNLoc
		peertest.EqualLines(t, "watcher", watcher.Recv(), []string{peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc + ";D" + dn)})

		// 1 000 more leave within the window: nothing is sent until it closes.
		const n = 1000
		var entries []string
		for i := range n {
			nick := fmt.Sprintf("J5burst%09d", i)
			c := h.Add(nick, peertest.MakerLoc) // ~87-byte entries: 1 000 need 3 lines
			h.Reg.Remove(c.P)
			if got := h.Rt.Left(c.P); got != 0 {
				t.Fatalf("Left inside the window returned %d", got)
			}
			entries = append(entries, nick+";"+peertest.MakerLoc+";D")
		}
		peertest.EqualLines(t, "watcher before the window closes", watcher.Recv(), nil)
		time.Sleep(25 * time.Millisecond) // virtual time: the window closes
		got := watcher.Recv()
		if len(got) != 3 {
			t.Fatalf("%d entries came in %d lines", n, len(got))
		}
		var seen []string
		for _, l := range got {
			env, err := wire.Decode([]byte(strings.TrimSuffix(l, "\r\n")))
			if err != nil || env.Type != wire.TypePeerlist || len(l)-2 > wire.MaxLine {
				t.Fatalf("bad line (%v): %.80q", err, l)
			}
			if !strings.HasSuffix(env.Line, dn) {
				t.Fatalf("line does not end with the directory's entry: %.80q", env.Line)
			}
			seen = append(seen, strings.Split(strings.TrimSuffix(env.Line, dn), ",")...)
		}
		if !slices.Equal(seen, entries) {
			t.Fatalf("entries: got %d, want %d (in order)", len(seen), len(entries))
		}
		// The burst is over: the next departure is announced at once again.
		time.Sleep(25 * time.Millisecond)
		last := h.Add(peertest.NickTaker, peertest.NotServing)
		h.Reg.Remove(last.P)
		if n := h.Rt.Left(last.P); n != 1 {
			t.Fatalf("Left after the burst returned %d", n)
		}
		peertest.EqualLines(t, "watcher after the burst", watcher.Recv(), []string{peertest.Peerlist(peertest.NickTaker + ";NOT-SERVING-ONION;D" + dn)})
	})
}

// TestCloseStopsDepartureTimer: Close stops the timer of an open departure window, so
// nothing runs after it; the departures collected in the window are not announced (every
// peer is closed at shutdown), and a departure after Close is announced at once.
func TestCloseStopsDepartureTimer(t *testing.T) {
	peertest.Bubble(t, peertest.NickDN, peertest.DNLoc, func(t *testing.T, h *peertest.Harness) {
		watcher := h.Add(peertest.NickOther, peertest.NotServing)
		first := h.Add(peertest.NickMaker, peertest.MakerLoc)
		second := h.Add(peertest.NickTaker, peertest.NotServing)
		dn := "," + peertest.NickDN + ";" + peertest.DNLoc
		h.Reg.Remove(first.P)
		if n := h.Rt.Left(first.P); n != 2 { // announced at once; the window opens
			t.Fatalf("first Left returned %d", n)
		}
		h.Reg.Remove(second.P)
		if n := h.Rt.Left(second.P); n != 0 { // collected in the window
			t.Fatalf("Left inside the window returned %d", n)
		}
		h.Rt.Close()
		h.Rt.Close()            // idempotent
		time.Sleep(time.Second) // virtual time: a timer left armed would fire
		peertest.EqualLines(t, "watcher", watcher.Recv(), []string{peertest.Peerlist(peertest.NickMaker + ";" + peertest.MakerLoc + ";D" + dn)})

		last := h.Add("J5lastaftercl0se", peertest.NotServing)
		h.Reg.Remove(last.P)
		if n := h.Rt.Left(last.P); n != 1 {
			t.Fatalf("Left after Close returned %d, want 1 (at once)", n)
		}
		peertest.EqualLines(t, "watcher after Close", watcher.Recv(), []string{peertest.Peerlist("J5lastaftercl0se;NOT-SERVING-ONION;D" + dn)})
	})
}
