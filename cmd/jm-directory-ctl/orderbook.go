// The orderbook command: the directory's live orderbook (GET /orderbook.json, the shape
// of joinmarket-clientserver's ob-watcher.py) as a table, or as the server's JSON.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"
)

// maxOrderbookBody bounds /orderbook.json: the server holds at most 32 offers for each
// of max_peers makers, a few hundred bytes each.
const maxOrderbookBody = 256 << 20

// orderbookUsage is the orderbook command's help.
const orderbookUsage = `Usage: %[1]s [options] orderbook [--json]

Print the directory's live orderbook: the offers makers announced or sent the directory
in answer to its own !orderbook probe (counterparty, oid, type, minimum and maximum
size and miner fee in satoshis, the coinjoin fee, and the fidelity bond's locktime if
the maker sent a proof: unverified). --json prints the server's /orderbook.json, in
ob-watcher.py's shape. Takes the options of status, the bearer token included.
Exit status: 0 success, 1 request failed, 2 usage error.
`

// orderbookArgs reports whether args name the orderbook command, and returns them with
// that command read as "status", so that parseArgs takes the same options for both.
func orderbookArgs(args []string, env func(string) string) ([]string, bool) {
	fs := flagSet(prog, defaults(env))
	if fs.Parse(args) != nil {
		return args, false
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "orderbook" {
		return args, false
	}
	i := len(args) - len(rest)
	out := append(append(append([]string{}, args[:i]...), "status"), rest[1:]...)
	return out, true
}

// obDoc is the part of /orderbook.json the table shows.
type obDoc struct {
	Offers []struct {
		Counterparty string          `json:"counterparty"`
		OID          int64           `json:"oid"`
		OrderType    string          `json:"ordertype"`
		MinSize      int64           `json:"minsize"`
		MaxSize      int64           `json:"maxsize"`
		TxFee        int64           `json:"txfee"`
		CJFee        json.RawMessage `json:"cjfee"`
	} `json:"offers"`
	FidelityBonds []struct {
		Counterparty string `json:"counterparty"`
		Locktime     int64  `json:"locktime"`
	} `json:"fidelitybonds"`
}

// runOrderbook implements "orderbook".
func runOrderbook(ctx context.Context, c *client, tok tokenInfo, asJSON bool, stdout, stderr io.Writer) int {
	u := c.url("/orderbook.json")
	r, err := c.get(ctx, "/orderbook.json", true, maxOrderbookBody)
	if err == nil {
		switch r.code {
		case http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden:
			err = fmt.Errorf("HTTP %s: %w", r.status, errUnauthorized)
		default:
			err = fmt.Errorf("%s: unexpected HTTP %s", u, r.status)
		}
	}
	if errors.Is(err, errUnauthorized) {
		fmt.Fprintf(stderr, "%s: %s\n", prog, tok.unauthorized())
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	if asJSON {
		writeJSON(stdout, r.body)
		return 0
	}
	var d obDoc
	if err := json.Unmarshal(r.body, &d); err != nil {
		fmt.Fprintf(stderr, "%s: %s: not an orderbook: %v\n", prog, u, err)
		return 1
	}
	writeOrderbook(stdout, &d)
	return 0
}

// writeOrderbook prints the orderbook as a table.
func writeOrderbook(w io.Writer, d *obDoc) {
	bonds := make(map[string]int64, len(d.FidelityBonds))
	for _, b := range d.FidelityBonds {
		bonds[b.Counterparty] = b.Locktime
	}
	makers := map[string]bool{}
	for _, o := range d.Offers {
		makers[o.Counterparty] = true
	}
	fmt.Fprintf(w, "%d offers from %d makers, %d fidelity bonds (unverified)\n", len(d.Offers), len(makers), len(d.FidelityBonds))
	if len(d.Offers) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "counterparty\toid\ttype\tmin\tmax\ttxfee\tcjfee\tbond")
	for _, o := range d.Offers {
		fee := string(o.CJFee)
		var s string
		if json.Unmarshal(o.CJFee, &s) == nil {
			fee = s
		}
		bond := "-"
		if lt, ok := bonds[o.Counterparty]; ok {
			bond = "until " + time.Unix(lt, 0).UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", o.Counterparty, o.OID, o.OrderType, o.MinSize, o.MaxSize, o.TxFee, fee, bond)
	}
	_ = tw.Flush()
}
