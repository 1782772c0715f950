package router_test

import (
	"fmt"
	"strings"
	"testing"

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
			bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
				sender := h.add(nickMaker, makerLoc, "ping")
				taker := h.add(nickTaker, notServing)
				maker := h.add(nickOther, onionA+":5223", "peerlist_features")
				raw := rawToken(t, tc.in)

				if n := h.rt.Pubmsg(sender.p, raw); n != 2 {
					t.Errorf("Pubmsg returned %d, want 2", n)
				}
				equalLines(t, "taker", taker.recv(), []string{tc.want})
				equalLines(t, "maker", maker.recv(), []string{tc.want})
				equalLines(t, "sender", sender.recv(), nil)
				if got := h.ctr.Relayed.Load(); got != 2 {
					t.Errorf("Relayed = %d, want 2", got)
				}
			})
		})
	}
}

func TestPubmsgCountsOnlyQueuedRecipients(t *testing.T) {
	bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
		sender := h.add(nickMaker, makerLoc)
		live := h.add(nickTaker, notServing)
		gone := h.add(nickOther, notServing)
		gone.p.Close(stats.CloseClientGone) // closed but not yet unregistered
		raw := `"J59xfsUewpdmrbuM!PUBLIC!orderbook"`
		if n := h.rt.Pubmsg(sender.p, []byte(raw)); n != 1 {
			t.Errorf("Pubmsg returned %d, want 1", n)
		}
		equalLines(t, "live peer", live.recv(), []string{relay(687, raw)})
		equalLines(t, "closed peer", gone.recv(), nil)
	})
}

func TestPubmsgAlone(t *testing.T) {
	bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
		sender := h.add(nickMaker, makerLoc)
		if n := h.rt.Pubmsg(sender.p, []byte(`"J59xfsUewpdmrbuM!PUBLIC!orderbook"`)); n != 0 {
			t.Errorf("Pubmsg returned %d, want 0", n)
		}
		equalLines(t, "sender", sender.recv(), nil)
	})
}

// rawOfContent returns a pubmsg/privmsg "line" token whose compact relay envelope has
// exactly content bytes before the CRLF.
func rawOfContent(prefix string, content int) string {
	// {"type":NNN,"line": is 19 bytes, the closing } one more.
	n := content - 20 - len(prefix) - 2
	return `"` + prefix + strings.Repeat("x", n) + `"`
}

func TestPubmsgSizeLimit(t *testing.T) {
	cases := []struct {
		content   int
		delivered bool
	}{
		{wire.MaxLine - 1, true},
		{wire.MaxLine, true},
		{wire.MaxLine + 1, false},
		{wire.MaxLine + 500, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.content), func(t *testing.T) {
			bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
				sender := h.add(nickMaker, makerLoc)
				a := h.add(nickTaker, notServing)
				b := h.add(nickOther, notServing)
				raw := rawOfContent("J59xfsUewpdmrbuM!PUBLIC!", tc.content)
				want := relay(687, raw)
				if len(want) != tc.content+2 {
					t.Fatalf("test bug: relay is %d bytes, want %d", len(want), tc.content+2)
				}

				n := h.rt.Pubmsg(sender.p, []byte(raw))
				var wantLines []string
				wantN, wantDrops := 0, uint64(1)
				if tc.delivered {
					wantLines, wantN, wantDrops = []string{want}, 2, 0
				}
				if n != wantN {
					t.Errorf("Pubmsg returned %d, want %d", n, wantN)
				}
				equalLines(t, "peer a", a.recv(), wantLines)
				equalLines(t, "peer b", b.recv(), wantLines)
				equalLines(t, "sender", sender.recv(), nil)
				// Counted once per message, not once per recipient.
				if got := h.ctr.Drops(stats.DropOversizeOut); got != wantDrops {
					t.Errorf("DropOversizeOut = %d, want %d", got, wantDrops)
				}
				if got := h.ctr.Relayed.Load(); got != uint64(wantN) {
					t.Errorf("Relayed = %d, want %d", got, wantN)
				}
			})
		})
	}
}

func TestPrivmsgPeerlist(t *testing.T) {
	const (
		sender    = nickMaker
		recipient = nickTaker
		allFeats  = ";F:neutrino_compat+peerlist_features+ping"
	)
	senderM := sender + ";" + makerLoc
	dn := nickDN + ";" + dnLoc
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
		{"maker to legacy recipient", dnLoc, makerLoc, maker3, nil, senderM + "," + dn},
		{"maker to F recipient", dnLoc, makerLoc, maker3, []string{"peerlist_features"}, senderM + allFeats + "," + dnF},
		{"maker to ping-only recipient", dnLoc, makerLoc, maker3, []string{"ping", "neutrino_compat"}, senderM + "," + dn},
		{"featureless maker to F recipient", dnLoc, makerLoc, nil, []string{"peerlist_features"}, senderM + "," + dnF},
		{"maker, directory location unknown", "", makerLoc, maker3, nil, senderM},
		{"maker to F recipient, directory location unknown", "", makerLoc, maker3, []string{"peerlist_features", "ping"}, senderM + allFeats},
		{"taker to legacy recipient", dnLoc, notServing, nil, nil, dn},
		{"taker with features to F recipient", dnLoc, notServing, maker3, []string{"peerlist_features"}, dnF},
		{"taker, directory location unknown", "", notServing, maker3, nil, ""},
		{"taker to F recipient, directory location unknown", "", notServing, nil, []string{"peerlist_features"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, nickDN, tc.dnLocation, func(t *testing.T, h *harness) {
				s := h.add(sender, tc.senderLoc, tc.senderFeats...)
				r := h.add(recipient, notServing, tc.rcptFeats...)
				bystander := h.add(nickOther, onionA+":5223", "peerlist_features", "ping")
				raw := `"` + sender + "!" + recipient + `!fill 0 1000000 caf\u00e9 <>& sig=="`

				if got := h.rt.Privmsg(s.p, recipient, []byte(raw)); got != stats.DropNone {
					t.Fatalf("Privmsg = %v, want DropNone", got)
				}
				want := []string{relay(685, raw)}
				if tc.wantList != "" {
					want = append(want, peerlist(tc.wantList))
				}
				equalLines(t, "recipient", r.recv(), want)
				equalLines(t, "sender", s.recv(), nil)
				equalLines(t, "bystander", bystander.recv(), nil)
				if got := h.ctr.Relayed.Load(); got != 1 {
					t.Errorf("Relayed = %d, want 1", got)
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
			bubble(t, dn, dnLoc, func(t *testing.T, h *harness) {
				m := h.add(maker, makerLoc, tc.makerFeats...)
				tk := h.add(taker, notServing, tc.takerFeats...)
				if got := h.rt.Privmsg(m.p, taker, rawToken(t, offerIn)); got != stats.DropNone {
					t.Fatalf("offer: Privmsg = %v", got)
				}
				if got := h.rt.Privmsg(tk.p, maker, rawToken(t, fillIn)); got != stats.DropNone {
					t.Fatalf("fill: Privmsg = %v", got)
				}
				equalLines(t, "taker", tk.recv(), tc.wantTaker)
				equalLines(t, "maker", m.recv(), tc.wantMaker)
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
		want       stats.DropReason
	}{
		{name: "unknown nick", dnLocation: dnLoc, to: "J5ADox6oD453KSSf", want: stats.DropUnknownRecipient},
		{name: "empty nick", dnLocation: dnLoc, to: "", want: stats.DropUnknownRecipient},
		{name: "nick differs in case", dnLocation: dnLoc, to: strings.ToLower(nickTaker), want: stats.DropUnknownRecipient},
		{name: "directory nick", dnLocation: dnLoc, to: nickDN, want: stats.DropToDirectory},
		{name: "directory nick, location unknown", dnLocation: "", to: nickDN, want: stats.DropToDirectory},
		{name: "relay too long", dnLocation: dnLoc, to: nickTaker, raw: rawOfContent(nickMaker+"!"+nickTaker+"!", wire.MaxLine+1), want: stats.DropOversizeOut},
		{name: "recipient closing", dnLocation: dnLoc, to: nickTaker, closeRcpt: true, want: stats.DropRecipientGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, nickDN, tc.dnLocation, func(t *testing.T, h *harness) {
				s := h.add(nickMaker, makerLoc, "peerlist_features")
				r := h.add(nickTaker, notServing, "peerlist_features")
				other := h.add(nickOther, onionA+":5223")
				if tc.closeRcpt {
					r.p.Close(stats.CloseSlowConsumer)
				}
				raw := tc.raw
				if raw == "" {
					raw = `"` + nickMaker + "!" + tc.to + `!hello"`
				}
				if got := h.rt.Privmsg(s.p, tc.to, []byte(raw)); got != tc.want {
					t.Errorf("Privmsg = %v, want %v", got, tc.want)
				}
				equalLines(t, "recipient", r.recv(), nil)
				equalLines(t, "sender", s.recv(), nil)
				equalLines(t, "other", other.recv(), nil)
				if got := h.ctr.Relayed.Load(); got != 0 {
					t.Errorf("Relayed = %d, want 0", got)
				}
				// The reason is returned for the caller to count; the router must not
				// count it as well.
				if got := h.ctr.DropCounts(); len(got) != 0 {
					t.Errorf("drop counters = %v, want none", got)
				}
			})
		})
	}
}

func TestPrivmsgLongestRelay(t *testing.T) {
	bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
		s := h.add(nickMaker, makerLoc)
		r := h.add(nickTaker, notServing)
		raw := rawOfContent(nickMaker+"!"+nickTaker+"!", wire.MaxLine)
		if got := h.rt.Privmsg(s.p, nickTaker, []byte(raw)); got != stats.DropNone {
			t.Fatalf("Privmsg = %v, want DropNone", got)
		}
		want := []string{relay(685, raw), peerlist(nickMaker + ";" + makerLoc + "," + nickDN + ";" + dnLoc)}
		if len(want[0]) != wire.MaxLine+2 {
			t.Fatalf("test bug: relay is %d bytes", len(want[0]))
		}
		equalLines(t, "recipient", r.recv(), want)
	})
}

func TestGetPeerlist(t *testing.T) {
	const requester = "J554XN9CktYtikWE"
	a := nickMaker + ";" + makerLoc
	b := nickOther + ";" + onionA + ":5223"
	dn := nickDN + ";" + dnLoc
	dnF := dn + ";F:peerlist_features+ping"

	cases := []struct {
		name       string
		dnLocation string
		reqFeats   []string
		want       string
	}{
		{"legacy requester", dnLoc, nil, dn + "," + a + "," + b},
		{"ping-only requester", dnLoc, []string{"ping"}, dn + "," + a + "," + b},
		{"F requester", dnLoc, []string{"peerlist_features", "nick_auth"}, dnF + "," + a + ";F:neutrino_compat+ping," + b},
		{"legacy requester, directory location unknown", "", nil, a + "," + b},
		{"F requester, directory location unknown", "", []string{"peerlist_features"}, a + ";F:neutrino_compat+ping," + b},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, nickDN, tc.dnLocation, func(t *testing.T, h *harness) {
				ma := h.add(nickMaker, makerLoc, "ping", "neutrino_compat")
				tk := h.add(nickTaker, notServing, "peerlist_features", "ping")
				mb := h.add(nickOther, onionA+":5223")
				req := h.add(requester, notServing, tc.reqFeats...)
				if n := h.rt.GetPeerlist(req.p); n != 1 {
					t.Errorf("GetPeerlist returned %d, want 1", n)
				}
				equalLines(t, "requester", req.recv(), []string{peerlist(tc.want)})
				for _, c := range []*client{ma, tk, mb} {
					equalLines(t, c.p.Nick, c.recv(), nil)
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
		{"empty, directory location known", dnLoc, 0, nickDN + ";" + dnLoc},
		{"only takers, directory location known", dnLoc, 2, nickDN + ";" + dnLoc},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, nickDN, tc.dnLocation, func(t *testing.T, h *harness) {
				for _, n := range []string{nickTaker, nickOther}[:tc.takers] {
					h.add(n, notServing, "ping")
				}
				req := h.add("J554XN9CktYtikWE", notServing)
				if n := h.rt.GetPeerlist(req.p); n != 1 {
					t.Errorf("GetPeerlist returned %d, want 1", n)
				}
				equalLines(t, "requester", req.recv(), []string{peerlist(tc.want)})
			})
		})
	}
}

// The requester is not special: a maker asking is listed like any other maker.
func TestGetPeerlistRequesterIsMaker(t *testing.T) {
	bubble(t, nickDN, "", func(t *testing.T, h *harness) {
		req := h.add(nickMaker, makerLoc)
		h.rt.GetPeerlist(req.p)
		equalLines(t, "requester", req.recv(), []string{peerlist(nickMaker + ";" + makerLoc)})
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
			bubble(t, "J58qZTosNQ6beAwN", dnLoc, func(t *testing.T, h *harness) {
				h.add("J59EiPRQrQkXMk5d", makerLoc)
				h.add("J5ADox6oD453KSSf", notServing)
				req := h.add("J554XN9CktYtikWE", notServing, tc.reqFeats...)
				h.rt.GetPeerlist(req.p)
				equalLines(t, "requester", req.recv(), []string{tc.want})
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
	fsuffix := ";F:" + strings.Join(features(feats...).True, "+")

	for _, withF := range []bool{false, true} {
		t.Run(fmt.Sprintf("peerlist_features=%v", withF), func(t *testing.T) {
			bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
				var want []string
				if withF {
					want = append(want, nickDN+";"+dnLoc+";F:peerlist_features+ping")
				} else {
					want = append(want, nickDN+";"+dnLoc)
				}
				for i := range makers {
					onion := onionA
					if i%2 == 1 {
						onion = onionB
					}
					loc := fmt.Sprintf("%s:%d", onion, 10000+i)
					nick := base58Nick(i + 1)
					h.add(nick, loc, feats...)
					if withF {
						want = append(want, nick+";"+loc+fsuffix)
					} else {
						want = append(want, nick+";"+loc)
					}
					if i%50 == 0 { // takers are never listed
						h.add(base58Nick(100000+i), notServing, feats...)
					}
				}
				var reqFeats []string
				if withF {
					reqFeats = []string{"peerlist_features"}
				}
				req := h.add("J554XN9CktYtikWE", notServing, reqFeats...)

				n := h.rt.GetPeerlist(req.p)
				lines := req.recv()
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
		{"maker", dnLoc, makerLoc, nickMaker + ";" + makerLoc + ";D," + nickDN + ";" + dnLoc},
		{"taker", dnLoc, notServing, nickMaker + ";NOT-SERVING-ONION;D," + nickDN + ";" + dnLoc},
		{"maker, directory location unknown", "", makerLoc, nickMaker + ";" + makerLoc + ";D"},
		{"taker, directory location unknown", "", notServing, nickMaker + ";NOT-SERVING-ONION;D"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, nickDN, tc.dnLocation, func(t *testing.T, h *harness) {
				gone := h.add(nickMaker, tc.loc, "peerlist_features", "ping")
				legacy := h.add(nickTaker, notServing)
				capable := h.add(nickOther, onionA+":5223", "peerlist_features", "ping")
				if !h.reg.Remove(gone.p) {
					t.Fatal("Remove failed")
				}
				if n := h.rt.Left(gone.p); n != 2 {
					t.Errorf("Left returned %d, want 2", n)
				}
				// Same line for everybody: D and F are never combined.
				equalLines(t, "legacy peer", legacy.recv(), []string{peerlist(tc.want)})
				equalLines(t, "F-capable peer", capable.recv(), []string{peerlist(tc.want)})
				equalLines(t, "leaver", gone.recv(), nil)
			})
		})
	}
}

// TestLeftProtocolExample checks the joinmarket-rs line of §11.7.
func TestLeftProtocolExample(t *testing.T) {
	bubble(t, "J58qZTosNQ6beAwN", dnLoc, func(t *testing.T, h *harness) {
		m := h.add("J59EiPRQrQkXMk5d", makerLoc)
		tk := h.add("J5ADox6oD453KSSf", notServing)
		h.reg.Remove(m.p)
		h.rt.Left(m.p)
		equalLines(t, "taker", tk.recv(), []string{`{"type":789,"line":"J59EiPRQrQkXMk5d;4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion:5222;D,J58qZTosNQ6beAwN;uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion:5222"}` + "\r\n"})
	})
}

func TestLeftNobodyElse(t *testing.T) {
	bubble(t, nickDN, dnLoc, func(t *testing.T, h *harness) {
		gone := h.add(nickMaker, makerLoc)
		h.reg.Remove(gone.p)
		if n := h.rt.Left(gone.p); n != 0 {
			t.Errorf("Left returned %d, want 0", n)
		}
		equalLines(t, "leaver", gone.recv(), nil)
	})
}

func TestProbeAndPingLines(t *testing.T) {
	rt := router.New(nil, &stats.Counters{}, "J58qZTosNQ6beAwN", dnLoc)
	if got, want := string(rt.ProbeLine()), `{"type":687,"line":"J58qZTosNQ6beAwN!PUBLIC!orderbook"}`+"\r\n"; got != want {
		t.Errorf("ProbeLine = %q, want %q", got, want)
	}
	if got, want := string(router.PingLine), `{"type":798,"line":""}`+"\r\n"; got != want {
		t.Errorf("PingLine = %q, want %q", got, want)
	}
	// The probe does not depend on the location being known.
	rt.SetSelf(nickDN, "")
	if got, want := string(rt.ProbeLine()), `{"type":687,"line":"J5CHzCDv77erayr2!PUBLIC!orderbook"}`+"\r\n"; got != want {
		t.Errorf("ProbeLine after SetSelf = %q, want %q", got, want)
	}
}

func TestSetSelf(t *testing.T) {
	bubble(t, nickDN, "", func(t *testing.T, h *harness) {
		const newNick = "J58qZTosNQ6beAwN"
		if s := h.rt.Self(); s.Nick != nickDN || s.Location != "" {
			t.Fatalf("Self = %q %q", s.Nick, s.Location)
		}
		maker := h.add(nickMaker, makerLoc)
		req := h.add(nickTaker, notServing, "peerlist_features")
		other := h.add(nickOther, notServing)

		h.rt.GetPeerlist(req.p)
		equalLines(t, "before: peerlist", req.recv(), []string{peerlist(nickMaker + ";" + makerLoc)})

		h.rt.SetSelf(newNick, dnLoc)
		if s := h.rt.Self(); s.Nick != newNick || s.Location != dnLoc {
			t.Fatalf("Self = %q %q", s.Nick, s.Location)
		}
		h.rt.GetPeerlist(req.p)
		equalLines(t, "after: peerlist", req.recv(), []string{peerlist(newNick + ";" + dnLoc + ";F:peerlist_features+ping," + nickMaker + ";" + makerLoc)})

		if got := h.rt.Privmsg(other.p, newNick, []byte(`"J55uwMUczBgZV44z!J58qZTosNQ6beAwN!hi"`)); got != stats.DropToDirectory {
			t.Errorf("privmsg to new directory nick = %v, want DropToDirectory", got)
		}
		if got := h.rt.Privmsg(other.p, nickDN, []byte(`"J55uwMUczBgZV44z!J5CHzCDv77erayr2!hi"`)); got != stats.DropUnknownRecipient {
			t.Errorf("privmsg to old directory nick = %v, want DropUnknownRecipient", got)
		}
		if got := h.rt.Privmsg(other.p, nickMaker, []byte(`"J55uwMUczBgZV44z!J59xfsUewpdmrbuM!hi"`)); got != stats.DropNone {
			t.Errorf("privmsg to maker = %v", got)
		}
		equalLines(t, "maker", maker.recv(), []string{
			relay(685, `"J55uwMUczBgZV44z!J59xfsUewpdmrbuM!hi"`),
			peerlist(newNick + ";" + dnLoc),
		})

		h.reg.Remove(other.p)
		h.rt.Left(other.p)
		want := []string{peerlist(nickOther + ";NOT-SERVING-ONION;D," + newNick + ";" + dnLoc)}
		equalLines(t, "maker: left", maker.recv(), want)
		equalLines(t, "requester: left", req.recv(), want)

		// Forgetting the location removes the directory's entry again.
		h.rt.SetSelf(newNick, "")
		h.rt.GetPeerlist(req.p)
		equalLines(t, "forgotten: peerlist", req.recv(), []string{peerlist(nickMaker + ";" + makerLoc)})
	})
}
