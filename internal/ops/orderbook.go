package ops

import (
	"net/http"

	"github.com/jm-directory/jm-directory-server/internal/orderbook"
)

// orderbookJSON serves /orderbook.json: the live orderbook (internal/orderbook) in the
// shape of joinmarket-clientserver's ob-watcher.py, under the same token rules as
// /status. Counterparties are always named, status_hide_nicks or not: every offer in it
// was announced to every peer or is sent to anyone who asks, and an orderbook without
// its makers is of no use to a taker.
func (o *Ops) orderbookJSON(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, o.srv.Orderbook().Document())
}

// OrderbookStats is the "orderbook" object of /status: live offers, makers with offers,
// bonds, the per-maker cap, and the commands skipped (malformed, by kind; new offers
// over the cap).
type OrderbookStats = orderbook.Stats
