package conformance

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/ops"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// sigPair stands for the signature pair every reference privmsg ends with (the
// directory does not check it).
const sigPair = " 02f442f23bb0d0c7d4c9062d56a5b19b3ddbaeb8fed5aba865d932ae721d3825e6 Z+LN0jWjAbsUINETdIGrBWCYSotpvp3Gm1dKXcimtMK60itjClYS20myqSD7rYCZN5/FRys82AOjjI5IGfAZLiE="

// bondProof is a well-formed fidelity bond proof (jmclient FidelityBondProof's 252
// bytes) for the outpoint 11…11:vout, locked until locktime; its signatures are not real.
func bondProof(vout, locktime uint32) string {
	sig := append([]byte{0xff, 0xff, 0x30, 0x44}, make([]byte, 68)...)
	raw := append(append([]byte{}, sig...), sig...)
	raw = append(raw, append([]byte{0x02}, make([]byte, 32)...)...) // certificate pubkey
	raw = binary.LittleEndian.AppendUint16(raw, 52)                 // certificate expiry
	raw = append(raw, append([]byte{0x03}, make([]byte, 32)...)...) // UTXO pubkey
	raw = append(raw, []byte(strings.Repeat("\x11", 32))...)        // txid
	raw = binary.LittleEndian.AppendUint32(raw, vout)
	raw = binary.LittleEndian.AppendUint32(raw, locktime)
	return base64.StdEncoding.EncodeToString(raw)
}

// obGet fetches path from the ops handler and decodes its JSON into v.
func obGet(t *testing.T, base, path string, v any) string {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s", path, err, resp.Status)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return string(body)
}

type obOffer struct {
	Counterparty string          `json:"counterparty"`
	OID          int64           `json:"oid"`
	OrderType    string          `json:"ordertype"`
	MinSize      int64           `json:"minsize"`
	MaxSize      int64           `json:"maxsize"`
	CJFee        json.RawMessage `json:"cjfee"`
	LastSeen     time.Time       `json:"last_seen"`
}

type obBook struct {
	Offers        []obOffer `json:"offers"`
	FidelityBonds []struct {
		Counterparty string `json:"counterparty"`
		UTXO         struct {
			TxID string `json:"txid"`
			Vout uint32 `json:"vout"`
		} `json:"utxo"`
		Locktime uint32 `json:"locktime"`
		Verified bool   `json:"verified"`
	} `json:"fidelitybonds"`
}

// offerKeys lists a book's offers as "nick/oid/type/cjfee".
func offerKeys(b obBook) string {
	var out []string
	for _, o := range b.Offers {
		out = append(out, o.Counterparty+"/"+itoa(o.OID)+"/"+o.OrderType+"/"+string(o.CJFee))
	}
	return strings.Join(out, " ")
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestOrderbook: the directory's orderbook (/orderbook.json) over real sockets. A maker
// announces offers in pubmsgs, another answers the directory's own !orderbook probe with
// a privmsg of offers and a fidelity bond proof; both are listed. A malformed offer is
// counted and relayed all the same, a !cancel withdraws an offer, and a maker that leaves
// takes its offers and bond with it. Each step is awaited by an event (a relayed line, a
// privmsg marker behind the maker's lines, a departure notice), never by sleeping.
func TestOrderbook(t *testing.T) {
	tg := tuned(t, func(c *config.Config) {
		// Idle makers without ping get the legacy !orderbook probe soon.
		c.HeartbeatSweepInterval = 50 * time.Millisecond
		c.HeartbeatIdleThreshold = 200 * time.Millisecond
		c.HeartbeatHardEvict = time.Hour
	})
	op, err := ops.New(tg.Srv, ops.Options{Addr: "127.0.0.1:0"}, dirtest.Logger(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(op.Handler())
	t.Cleanup(hs.Close)

	taker := tg.Join(t, dirtest.RefTaker)
	makerA := tg.Join(t, dirtest.RefMaker)
	makerB := tg.Join(t, dirtest.RefMaker)
	dn := taker.DNNick()

	// Announcements, one of them malformed (maxsize below the dust threshold): every one
	// is relayed as it was sent.
	for _, body := range []string{"sw0reloffer 0 27300 1000000000 0 0.0002", "sw0absoffer 1 100000 50000000 0 250",
		"sw0reloffer 2 27300 1000 0 0.0002"} {
		makerA.Pubmsg(body)
		taker.ExpectLine(wire.TypePubmsg, makerA.Nick+"!PUBLIC!"+body)
	}
	taker.Sync(makerA) // makerA's pubmsgs are in the book once the marker behind them arrives

	// makerB answers the directory's probe, as a reference maker does.
	probe := dn + "!PUBLIC!orderbook"
	for {
		env := makerB.Recv()
		if env.Type == wire.TypePubmsg && env.Line == probe {
			break
		}
	}
	makerB.Send(wire.TypePrivmsg, makerB.Nick+"!"+dn+"!sw0reloffer 0 50000 700000000 0 0.00015!tbond "+bondProof(3, 1767225600)+sigPair)
	taker.Sync(makerB)

	var book obBook
	obGet(t, hs.URL, "/orderbook.json", &book)
	a, b := makerA.Nick, makerB.Nick
	want := map[string]string{
		a: a + `/0/sw0reloffer/"0.0002" ` + a + `/1/sw0absoffer/250`,
		b: b + `/0/sw0reloffer/"0.00015"`,
	}
	first, second := a, b
	if b < a {
		first, second = b, a
	}
	if got := offerKeys(book); got != want[first]+" "+want[second] {
		t.Fatalf("offers %s\nwant %s %s", got, want[first], want[second])
	}
	for _, o := range book.Offers {
		if o.LastSeen.IsZero() || time.Since(o.LastSeen) > time.Minute {
			t.Errorf("offer %+v: last_seen %v", o, o.LastSeen)
		}
	}
	if len(book.FidelityBonds) != 1 || book.FidelityBonds[0].Counterparty != b || book.FidelityBonds[0].UTXO.Vout != 3 ||
		book.FidelityBonds[0].UTXO.TxID != strings.Repeat("11", 32) || book.FidelityBonds[0].Locktime != 1767225600 ||
		book.FidelityBonds[0].Verified {
		t.Fatalf("bonds %+v", book.FidelityBonds)
	}
	var st struct {
		Orderbook struct {
			Offers, Makers int
			Bonds          int               `json:"fidelity_bonds"`
			Malformed      map[string]uint64 `json:"malformed"`
		} `json:"orderbook"`
	}
	obGet(t, hs.URL, "/status", &st)
	if ob := st.Orderbook; ob.Offers != 3 || ob.Makers != 2 || ob.Bonds != 1 || ob.Malformed["offer"] != 1 {
		t.Errorf("/status orderbook %+v", ob)
	}
	if m := obGet(t, hs.URL, "/metrics", nil); !strings.Contains(m, `jm_directory_orderbook_malformed_total{kind="offer"} 1`) ||
		!strings.Contains(m, "jm_directory_orderbook_offers 3") {
		t.Errorf("/metrics lacks the orderbook series")
	}

	// A withdrawal.
	makerA.Pubmsg("cancel 1")
	taker.ExpectLine(wire.TypePubmsg, makerA.Nick+"!PUBLIC!cancel 1")
	taker.Sync(makerA)
	obGet(t, hs.URL, "/orderbook.json", &book)
	if got := offerKeys(book); strings.Contains(got, a+"/1/") || !strings.Contains(got, a+"/0/") {
		t.Fatalf("after !cancel 1: %s", got)
	}

	// makerB leaves: its offer and bond go before the others hear of it.
	_ = makerB.Conn.Close()
	for {
		env := taker.Expect(wire.TypePeerlist)
		if strings.HasPrefix(env.Line, b+";") && strings.Contains(env.Line, ";D") {
			break
		}
	}
	obGet(t, hs.URL, "/orderbook.json", &book)
	if got := offerKeys(book); got != a+`/0/sw0reloffer/"0.0002"` || len(book.FidelityBonds) != 0 {
		t.Fatalf("after makerB left: %s, bonds %+v", got, book.FidelityBonds)
	}
}
