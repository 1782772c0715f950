package orderbook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	makerA = "J59xfsUewpdmrbuM"
	makerB = "J58w4tpYN3zRBwC9"
	sigs   = " 02f442f23bb0d0c7d4c9062d56a5b19b3ddbaeb8fed5aba865d932ae721d3825e6 Z+LN0jWjAbsUINETdIGrBWCYSotpvp3Gm1dKXcimtMK60itjClYS20myqSD7rYCZN5/FRys82AOjjI5IGfAZLiE="
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// oids lists nick's offers as "oid:type:cjfee".
func oids(b *Book, nick string) []string {
	offers, _ := b.Snapshot()
	var out []string
	for _, o := range offers {
		if o.Counterparty == nick {
			out = append(out, fmt.Sprintf("%d:%s:%s", o.OID, o.Type, o.CJFee))
		}
	}
	return out
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// TestBookPublic: announcements add and replace offers, chained commands all count,
// !cancel withdraws, a malformed offer is counted and drops the offer it would have
// replaced (the reference's "no ghost" rule), and a tbond in a pubmsg is ignored.
func TestBookPublic(t *testing.T) {
	b := New()
	b.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.Public(makerA, 1, "sw0absoffer 1 100000 50000000 0 250", t0)
	eq(t, "announced", oids(b, makerA), []string{"0:sw0reloffer:0.0002", "1:sw0absoffer:250"})
	b.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.00030!sw0reloffer 2 27300 5000 0 0.1", t0.Add(time.Second))
	eq(t, "replaced", oids(b, makerA), []string{"0:sw0reloffer:0.00030", "1:sw0absoffer:250"})
	if got := b.Malformed(KindOffer); got != 1 {
		t.Errorf("malformed offers %d, want 1", got)
	}
	b.Public(makerA, 1, "cancel 1!cancel x!cancel 9", t0)
	eq(t, "cancelled", oids(b, makerA), []string{"0:sw0reloffer:0.00030"})
	if got := b.Malformed(KindCancel); got != 1 {
		t.Errorf("malformed cancels %d, want 1", got)
	}
	b.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 zero", t0)
	eq(t, "ghost dropped", oids(b, makerA), nil)
	b.Public(makerA, 1, "sw0reloffer 5 27300 1000000000 0 0.0002!tbond "+proof(1, 2, 3), t0)
	if _, bonds := b.Snapshot(); len(bonds) != 0 {
		t.Errorf("a pubmsg tbond was kept: %+v", bonds)
	}
	st := b.Stats()
	if st.Offers != 1 || st.Makers != 1 || st.Bonds != 0 || st.Malformed["offer"] != 2 || st.Cap != MaxOffersPerMaker {
		t.Errorf("stats %+v", st)
	}
}

// TestBookPrivate: an answer to the directory's probe has its signature pair removed;
// its offers and its tbond are kept; a privmsg that does not start with an offer is
// ignored; one without a signature pair is counted.
func TestBookPrivate(t *testing.T) {
	b := New()
	b.Private(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.0002!sw0absoffer 1 100000 50000000 0 250!tbond "+proof(52, 3, 1767225600)+sigs, t0)
	eq(t, "answer", oids(b, makerA), []string{"0:sw0reloffer:0.0002", "1:sw0absoffer:250"})
	_, bonds := b.Snapshot()
	if len(bonds) != 1 || bonds[0].Counterparty != makerA || bonds[0].Vout != 3 || bonds[0].CertExpiry != 52 || !bonds[0].LastSeen.Equal(t0) {
		t.Fatalf("bonds %+v", bonds)
	}
	b.Private(makerB, 2, "fill 0 100000 abc"+sigs, t0)
	b.Private(makerB, 2, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.Private(makerB, 2, "sw0reloffer 0 27300 1000000000 0 0.0002!tbond AAAA"+sigs, t0)
	eq(t, "makerB", oids(b, makerB), []string{"0:sw0reloffer:0.0002"})
	if b.Malformed(KindOffer) != 1 || b.Malformed(KindBond) != 1 {
		t.Errorf("malformed: offer %d, tbond %d; want 1, 1", b.Malformed(KindOffer), b.Malformed(KindBond))
	}
}

// TestBookLeaveAndConnections: Leave drops a maker's offers and bond, but only those of
// that connection: a newer connection of the nick (its verified owner, say) keeps its
// own, and a late line from the older connection is ignored.
func TestBookLeaveAndConnections(t *testing.T) {
	b := New()
	b.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.Public(makerB, 2, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.Public(makerA, 3, "sw0absoffer 7 27300 1000000000 0 10", t0) // the nick's new connection
	eq(t, "new connection", oids(b, makerA), []string{"7:sw0absoffer:10"})
	b.Public(makerA, 1, "sw0reloffer 1 27300 1000000000 0 0.0002", t0) // late, from the old one
	b.Leave(makerA, 1)
	eq(t, "after the old connection left", oids(b, makerA), []string{"7:sw0absoffer:10"})
	b.Leave(makerA, 3)
	eq(t, "after the new one left", oids(b, makerA), nil)
	eq(t, "makerB untouched", oids(b, makerB), []string{"0:sw0reloffer:0.0002"})
	if st := b.Stats(); st.Offers != 1 || st.Makers != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestBookCap: a maker holds at most MaxOffersPerMaker offers; more new oids are counted
// and skipped, while its existing offers can still be replaced.
func TestBookCap(t *testing.T) {
	b := New()
	for i := range MaxOffersPerMaker + 5 {
		b.Public(makerA, 1, fmt.Sprintf("sw0absoffer %d 27300 1000000 0 %d", i, i), t0)
	}
	b.Public(makerA, 1, "sw0absoffer 0 27300 1000000 0 999", t0)
	st := b.Stats()
	if st.Offers != MaxOffersPerMaker || st.OverCap != 5 {
		t.Errorf("stats %+v", st)
	}
	if got := oids(b, makerA)[0]; got != "0:sw0absoffer:999" {
		t.Errorf("first offer %q", got)
	}
}

// TestDocumentMatchesObWatcher compares the book's /orderbook.json with what ob-watcher.py
// serves for the same offers and bond. The expected document was written by hand from
// ob-watcher's code, not produced by running it:
//
//   - the offer rows: jmdaemon/jmdaemon/orderbookwatch.py, CREATE TABLE orderbook
//     (counterparty, oid, ordertype, minsize, maxsize, txfee, cjfee TEXT) and
//     on_order_seen (minsize below DUST_THRESHOLD 27300 raised to it; cjfee stored as
//     str(Decimal(cjfee)), int() first for absolute offers);
//   - the shape: scripts/obwatch/ob-watcher.py, OrderbookPageRequestHeader.
//     create_orderbook_obj, lines 209–251 (as of CohibAA/joinmarket-clientserver@9cfb326,
//     the same function as upstream's): each row as dict(row) in column order, cjfee
//     int(cjfee) for 'swabsoffer' and 'sw0absoffer' and str(Decimal(cjfee)) for every other
//     type (absoffer included) (lines 242–247), "fidelity_bond_value" 0 for a maker whose
//     bond it has not valued (line 248), {"offers": …, "fidelitybonds": …} (line 251); a
//     bond (lines 222–234): counterparty, utxo {txid: bintohex(txid), vout}, locktime,
//     utxo_pub, cert_expiry, and five keys that need the blockchain (bond_value, amount,
//     script, utxo_confirmations, utxo_confirmation_timestamp).
//
// This server adds last_seen to offers and bonds, cert_pub and verified to bonds; the
// test removes exactly those before comparing, and leaves out the five blockchain keys
// from ob-watcher's bond. ob-watcher lists rows in its database's order; the makers here
// announce in counterparty and oid order, which is the book's.
func TestDocumentMatchesObWatcher(t *testing.T) {
	b := New()
	b.Public(makerB, 1, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.Public(makerB, 1, "sw0absoffer 1 100000 50000000 0 250", t0)
	b.Private(makerA, 2, "absoffer 0 5000 40000000 100 0300!reloffer 1 30000 60000000 0 1e-7!swabsoffer 2 27300 70000000 0 0!swreloffer 3 27300 80000000 0 0.00020!tbond "+proof(52, 3, 1767225600)+sigs, t0)
	got, err := json.Marshal(b.Document())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"offers": [
	 {"counterparty": "J58w4tpYN3zRBwC9", "oid": 0, "ordertype": "sw0reloffer", "minsize": 27300, "maxsize": 1000000000, "txfee": 0, "cjfee": "0.0002", "fidelity_bond_value": 0},
	 {"counterparty": "J58w4tpYN3zRBwC9", "oid": 1, "ordertype": "sw0absoffer", "minsize": 100000, "maxsize": 50000000, "txfee": 0, "cjfee": 250, "fidelity_bond_value": 0},
	 {"counterparty": "J59xfsUewpdmrbuM", "oid": 0, "ordertype": "absoffer", "minsize": 27300, "maxsize": 40000000, "txfee": 100, "cjfee": "300", "fidelity_bond_value": 0},
	 {"counterparty": "J59xfsUewpdmrbuM", "oid": 1, "ordertype": "reloffer", "minsize": 30000, "maxsize": 60000000, "txfee": 0, "cjfee": "1E-7", "fidelity_bond_value": 0},
	 {"counterparty": "J59xfsUewpdmrbuM", "oid": 2, "ordertype": "swabsoffer", "minsize": 27300, "maxsize": 70000000, "txfee": 0, "cjfee": 0, "fidelity_bond_value": 0},
	 {"counterparty": "J59xfsUewpdmrbuM", "oid": 3, "ordertype": "swreloffer", "minsize": 27300, "maxsize": 80000000, "txfee": 0, "cjfee": "0.00020", "fidelity_bond_value": 0}],
	"fidelitybonds": [
	 {"counterparty": "J59xfsUewpdmrbuM",
	  "utxo": {"txid": "ab000000000000000000000000000000000000000000000000000000000000cd", "vout": 3},
	  "locktime": 1767225600,
	  "utxo_pub": "030000000000000000000000000000000000000000000000000000000000000007",
	  "cert_expiry": 52}]}`
	var gotDoc, wantDoc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(got)))
	dec.UseNumber()
	if err := dec.Decode(&gotDoc); err != nil {
		t.Fatal(err)
	}
	dec = json.NewDecoder(strings.NewReader(want))
	dec.UseNumber()
	if err := dec.Decode(&wantDoc); err != nil {
		t.Fatal(err)
	}
	strip := func(list any, keys ...string) {
		for _, e := range list.([]any) {
			m := e.(map[string]any)
			for _, k := range keys {
				if _, ok := m[k]; !ok {
					t.Errorf("key %q missing from %v", k, m)
				}
				delete(m, k)
			}
		}
	}
	strip(gotDoc["offers"], "last_seen")
	strip(gotDoc["fidelitybonds"], "last_seen", "cert_pub", "verified")
	if !reflect.DeepEqual(gotDoc, wantDoc) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Key order as ob-watcher's dict(row): the columns' order.
	if i := strings.Index(string(got), `{"counterparty":"J58w4tpYN3zRBwC9","oid":0,"ordertype":"sw0reloffer","minsize":27300,"maxsize":1000000000,"txfee":0,"cjfee":"0.0002","fidelity_bond_value":0,`); i < 0 {
		t.Errorf("offer keys not in ob-watcher's order: %s", got)
	}
	if d := b.Document(); d.FidelityBonds[0].Verified {
		t.Error("a bond is reported verified")
	}
}

// TestEmptyDocument: no offers is two empty lists, never null.
func TestEmptyDocument(t *testing.T) {
	got, _ := json.Marshal(New().Document())
	if string(got) != `{"offers":[],"fidelitybonds":[]}` {
		t.Errorf("got %s", got)
	}
}

// BenchmarkPublicRepeat is the book's cost for an offer announcement it already holds
// (a maker's periodic re-announcement): no allocation.
func BenchmarkPublicRepeat(b *testing.B) {
	bk := New()
	bk.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	b.ReportAllocs()
	for b.Loop() {
		bk.Public(makerA, 1, "sw0reloffer 0 27300 1000000000 0 0.0002", t0)
	}
}
