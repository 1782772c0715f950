package orderbook

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/fixtures"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestAppendDecimal: the fee of a relative offer is Python's str(Decimal(cjfee)), which
// ob-watcher serves; the expected strings were printed by CPython 3's decimal module.
func TestAppendDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"0.0002": "0.0002", "0.00020": "0.00020", "0.00015": "0.00015", "2E-4": "0.0002",
		"1e-7": "1E-7", "0.0000001": "1E-7", "0.00000010": "1.0E-7", "1e2": "1E+2", "100": "100",
		"-0.0001": "-0.0001", "+0.5": "0.5", ".5": "0.5", "5.": "5", "0": "0", "0.000": "0.000",
		"0e-10": "0E-10", "000.1": "0.1", "1.5e3": "1.5E+3", "0.000001": "0.000001",
		"0.0000010": "0.0000010", "1E+0": "1", "12345678901234567890.123": "12345678901234567890.123",
		"-0": "-0", "1e-6": "0.000001", "10e-7": "0.0000010",
	} {
		got, ok := appendDecimal(nil, in)
		if !ok || string(got) != want {
			t.Errorf("appendDecimal(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", ".", "-", "e5", "1e", "1e+", "1.2.3", "NaN", "Infinity", "1_000", "0x10", " 1", "1e99999", "١"} {
		if got, ok := appendDecimal(nil, in); ok {
			t.Errorf("appendDecimal(%q) = %q, accepted", in, got)
		}
	}
}

// TestParseOffer: the reference's rules (OrderbookWatch.on_order_seen), field by field.
func TestParseOffer(t *testing.T) {
	good := map[string]Fields{
		"sw0reloffer 0 27300 1000000000 0 0.0002":   {Type: "sw0reloffer", OID: 0, MinSize: 27300, MaxSize: 1000000000, TxFee: 0, CJFee: "0.0002"},
		"sw0absoffer 1 100000 50000000 0 250":       {Type: "sw0absoffer", OID: 1, MinSize: 100000, MaxSize: 50000000, CJFee: "250"},
		"absoffer 7 1000 50000000 12 0250":          {Type: "absoffer", OID: 7, MinSize: DustThreshold, MaxSize: 50000000, TxFee: 12, CJFee: "250"},
		"swreloffer 3 27300 27300 0 2E-5 extra tok": {Type: "swreloffer", OID: 3, MinSize: 27300, MaxSize: 27300, CJFee: "0.00002"},
	}
	for in, want := range good {
		got, oidOK, err := ParseOffer(in)
		if err != nil || !oidOK || got != want {
			t.Errorf("ParseOffer(%q) = %+v, %v, %v; want %+v", in, got, oidOK, err, want)
		}
	}
	bad := map[string]bool{ // → oidOK
		"sw0reloffer 0 27300 1000000000 0":                                     false,
		"sw0reloffer x 27300 1000000000 0 0.0002":                              false,
		"sw0reloffer -1 27300 1000000000 0 0.0002":                             false,
		"sw0reloffer 0 27300 2100000000000001 0 0.0002":                        true,
		"sw0reloffer 0 27300 20000 0 0.0002":                                   true, // maxsize below the raised minsize
		"sw0reloffer 0 50000 40000 0 0.0002":                                   true,
		"sw0reloffer 0 27300 1000000000 -1 0.0002":                             true,
		"sw0absoffer 0 27300 1000000000 0 0.5":                                 true,
		"sw0reloffer 0 27300 1000000000 0 abc":                                 true,
		"sw0reloffer 0 27300 1000000000 0 " + strings.Repeat("1", MaxFeeLen+1): true,
		"sw0reloffer  0 27300 1000000000 0 0.0002":                             false, // a double space: an empty oid
		"hp2 0 27300 1000000000 0 0.0002":                                      false,
	}
	for in, wantOID := range bad {
		if f, oidOK, err := ParseOffer(in); err == nil || oidOK != wantOID {
			t.Errorf("ParseOffer(%q) = %+v, oidOK %v, err %v; want an error, oidOK %v", in, f, oidOK, err, wantOID)
		}
	}
}

// proof builds a fidelity bond proof as jmclient's FidelityBondProof packs it.
func proof(expiry uint16, vout, locktime uint32) string {
	raw := make([]byte, 0, ProofLen)
	sig := func() []byte { // DER signature of 70 bytes, left-padded with 0xff to 72
		s := append([]byte{0xff, 0xff, 0x30, 0x44}, make([]byte, 68)...)
		return s
	}
	raw = append(raw, sig()...)
	raw = append(raw, sig()...)
	raw = append(raw, append([]byte{0x02}, make([]byte, 32)...)...) // cert pubkey
	raw = binary.LittleEndian.AppendUint16(raw, expiry)
	utxoPub := append([]byte{0x03}, make([]byte, 32)...)
	utxoPub[32] = 0x07
	raw = append(raw, utxoPub...)
	txid := make([]byte, 32)
	txid[0], txid[31] = 0xab, 0xcd
	raw = append(raw, txid...)
	raw = binary.LittleEndian.AppendUint32(raw, vout)
	raw = binary.LittleEndian.AppendUint32(raw, locktime)
	return base64.StdEncoding.EncodeToString(raw)
}

// TestParseProof: the fields of FidelityBondProof's '<72s72s33sH33s32sII', and what is refused.
func TestParseProof(t *testing.T) {
	p, err := ParseProof(proof(52, 3, 1767225600))
	if err != nil {
		t.Fatal(err)
	}
	if p.CertExpiry != 52 || p.Vout != 3 || p.Locktime != 1767225600 || p.TxID[0] != 0xab || p.TxID[31] != 0xcd ||
		p.UtxoPub[0] != 0x03 || p.UtxoPub[32] != 0x07 || p.CertPub[0] != 0x02 {
		t.Errorf("parsed %+v", p)
	}
	good := proof(52, 3, 1767225600)
	raw, _ := base64.StdEncoding.DecodeString(good)
	noDER := append([]byte{}, raw...)
	for i := range 72 {
		noDER[i] = 0xff
	}
	badPub := append([]byte{}, raw...)
	badPub[144] = 0x04
	for _, in := range []string{"", good[:len(good)-4], good + "AAAA", base64.StdEncoding.EncodeToString(noDER),
		base64.StdEncoding.EncodeToString(badPub), strings.Replace(good, good[:4], "!!!!", 1)} {
		if _, err := ParseProof(in); err == nil {
			t.Errorf("ParseProof(%.20q…) accepted", in)
		}
	}
}

// offerSeeds are the offer commands of the reference transcripts (pubmsg offers, and the
// commands of privmsg answers with the signature pair removed).
func offerSeeds(t testing.TB) [][]any {
	recs, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var seeds [][]any
	for _, r := range recs {
		if r.Dir != "c2s" || (r.Type != wire.TypePubmsg && r.Type != wire.TypePrivmsg) {
			continue
		}
		_, _, rest, ok := wire.SplitJM(r.Line)
		if !ok {
			continue
		}
		if r.Type == wire.TypePrivmsg {
			if i := strings.LastIndexByte(rest, ' '); i > 0 {
				if j := strings.LastIndexByte(rest[:i], ' '); j > 0 {
					rest = rest[:j]
				}
			}
		}
		for _, cmd := range strings.Split(rest, "!") {
			name, _, _ := strings.Cut(cmd, " ")
			if _, ok := OfferType(name); ok && !seen[cmd] {
				seen[cmd] = true
				seeds = append(seeds, []any{cmd})
			}
		}
	}
	return seeds
}

// TestSeedCorpus keeps FuzzParseOffer's corpus drawn from the reference transcripts.
func TestSeedCorpus(t *testing.T) { fixtures.CheckCorpus(t, "FuzzParseOffer", offerSeeds(t)) }

// FuzzParseOffer: no input panics; an accepted offer keeps the reference's invariants,
// its fee is a fixed point of the canonical form, and it parses back to itself.
func FuzzParseOffer(f *testing.F) {
	f.Add("sw0reloffer 0 27300 1000000000 0 0.0002")
	f.Add("absoffer 99 1 2100000000000000 5 -0")
	f.Fuzz(func(t *testing.T, cmd string) {
		o, oidOK, err := ParseOffer(cmd)
		if err != nil {
			return
		}
		if !oidOK || o.OID < 0 || o.MinSize < DustThreshold || o.MinSize > o.MaxSize || o.MaxSize > MaxAmount || o.TxFee < 0 {
			t.Fatalf("%q: accepted %+v", cmd, o)
		}
		canon := o.CJFee
		if IsAbsolute(o.Type) {
			again, ok := appendInteger(nil, canon)
			if !ok || string(again) != canon {
				t.Fatalf("%q: integer fee %q not canonical (%q)", cmd, canon, again)
			}
		} else if again, ok := appendDecimal(nil, canon); !ok || string(again) != canon {
			t.Fatalf("%q: fee %q not a fixed point (%q)", cmd, canon, again)
		}
		if len(canon) > feeBufLen {
			t.Fatalf("%q: fee of %d bytes", cmd, len(canon))
		}
		back := strings.Join([]string{o.Type, itoa(o.OID), itoa(o.MinSize), itoa(o.MaxSize), itoa(o.TxFee), canon}, " ")
		if o2, _, err := ParseOffer(back); err != nil || o2 != o {
			t.Fatalf("%q → %q → %+v, %v; want %+v", cmd, back, o2, err, o)
		}
	})
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	if v == 0 {
		return "0"
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
