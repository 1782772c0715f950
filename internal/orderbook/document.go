package orderbook

import (
	"encoding/hex"
	"encoding/json"
	"time"
)

// Document is the orderbook in the shape joinmarket-clientserver's ob-watcher.py serves
// at /orderbook.json (scripts/obwatch/ob-watcher.py, OrderbookPageRequestHeader.
// create_orderbook_obj), so that tools written for ob-watcher read it unchanged. Every
// key ob-watcher gives an offer is here with ob-watcher's type; this server adds
// last_seen. Of a fidelity bond it gives what the proof says (ob-watcher's counterparty,
// utxo, locktime, utxo_pub, cert_expiry), adds cert_pub, verified (always false) and
// last_seen, and leaves out what needs the blockchain (bond_value, amount, script,
// utxo_confirmations, utxo_confirmation_timestamp).
type Document struct {
	Offers        []DocOffer `json:"offers"`
	FidelityBonds []DocBond  `json:"fidelitybonds"`
}

// DocOffer is one offer of Document.
type DocOffer struct {
	Counterparty string `json:"counterparty"`
	OID          int64  `json:"oid"`
	OrderType    string `json:"ordertype"`
	MinSize      int64  `json:"minsize"`
	MaxSize      int64  `json:"maxsize"`
	TxFee        int64  `json:"txfee"`
	// CJFee is, as ob-watcher gives it, a JSON number for swabsoffer and sw0absoffer and
	// a string (Python's str(Decimal(cjfee))) for every other type, absoffer included.
	CJFee json.RawMessage `json:"cjfee"`
	// FidelityBondValue is 0, ob-watcher's value for a maker whose bond it has not valued:
	// a value needs the bond's UTXO from the blockchain.
	FidelityBondValue int       `json:"fidelity_bond_value"`
	LastSeen          time.Time `json:"last_seen"` // this server's: when the maker last sent the offer
}

// DocBond is one fidelity bond of Document, unverified.
type DocBond struct {
	Counterparty string  `json:"counterparty"`
	UTXO         DocUTXO `json:"utxo"`
	Locktime     uint32  `json:"locktime"`    // Unix time the bond's coins are locked until
	UtxoPub      string  `json:"utxo_pub"`    // hex
	CertExpiry   uint16  `json:"cert_expiry"` // in 2016-block periods, as in the proof
	CertPub      string  `json:"cert_pub"`    // hex; this server's
	// Verified is always false: the directory checks neither the proof's signatures nor
	// the UTXO. A taker verifies both before it counts the bond.
	Verified bool      `json:"verified"`
	LastSeen time.Time `json:"last_seen"`
}

// DocUTXO is a bond's outpoint.
type DocUTXO struct {
	TxID string `json:"txid"` // hex of the proof's 32 bytes, in their order (ob-watcher's bintohex)
	Vout uint32 `json:"vout"`
}

// Document returns the book in ob-watcher's shape (offers by counterparty and oid, bonds
// by counterparty; ob-watcher lists rows in its database's order).
func (b *Book) Document() Document {
	offers, bonds := b.Snapshot()
	return NewDocument(offers, bonds)
}

// NewDocument shapes offers and bonds as ob-watcher does.
func NewDocument(offers []Offer, bonds []Bond) Document {
	d := Document{Offers: make([]DocOffer, 0, len(offers)), FidelityBonds: make([]DocBond, 0, len(bonds))}
	for _, o := range offers {
		fee := json.RawMessage(o.CJFee)
		if o.Type != "swabsoffer" && o.Type != "sw0absoffer" {
			fee, _ = json.Marshal(o.CJFee)
		}
		d.Offers = append(d.Offers, DocOffer{Counterparty: o.Counterparty, OID: o.OID, OrderType: o.Type,
			MinSize: o.MinSize, MaxSize: o.MaxSize, TxFee: o.TxFee, CJFee: fee, LastSeen: o.LastSeen.UTC()})
	}
	for _, bd := range bonds {
		d.FidelityBonds = append(d.FidelityBonds, DocBond{Counterparty: bd.Counterparty,
			UTXO:     DocUTXO{TxID: hex.EncodeToString(bd.TxID[:]), Vout: bd.Vout},
			Locktime: bd.Locktime, UtxoPub: hex.EncodeToString(bd.UtxoPub[:]), CertExpiry: bd.CertExpiry,
			CertPub: hex.EncodeToString(bd.CertPub[:]), LastSeen: bd.LastSeen.UTC()})
	}
	return d
}
