package ops

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
)

// TestOrderbookEndpoint: /orderbook.json serves the server's orderbook in ob-watcher's
// shape, under /status's token rules, and names makers even with status_hide_nicks.
func TestOrderbookEndpoint(t *testing.T) {
	d := dirtest.Start(t, nil, discard)
	d.Srv.Orderbook().Public(makerNick, 1, "sw0absoffer 1 100000 50000000 0 250", time.Now())
	const token = "0123456789abcdef"
	o, err := New(d.Srv, Options{Addr: "[::]:8080", Token: token, DataDir: t.TempDir(), HideNicks: true}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if rec := get(t, o.Handler(), "/orderbook.json", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", rec.Code)
	}
	rec := get(t, o.Handler(), "/orderbook.json", token)
	var doc struct {
		Offers []struct {
			Counterparty string `json:"counterparty"`
			CJFee        any    `json:"cjfee"`
		} `json:"offers"`
		Bonds []any `json:"fidelitybonds"`
	}
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
		json.Unmarshal(rec.Body.Bytes(), &doc) != nil || len(doc.Offers) != 1 ||
		doc.Offers[0].Counterparty != makerNick || doc.Offers[0].CJFee != 250.0 || doc.Bonds == nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
