package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/ops"
)

// TestOrderbookCommand: "orderbook" prints the live orderbook as a table, and --json the
// server's /orderbook.json; the options go before or after the command.
func TestOrderbookCommand(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	port := serveOps(t, l.Srv, ops.Options{Addr: "127.0.0.1:0"})
	env := environ(t)

	code, out, errs := ctl(env, "orderbook", "--port", port)
	if code != 0 || errs != "" || out != "0 offers from 0 makers, 0 fidelity bonds (unverified)\n" {
		t.Fatalf("empty: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	book := l.Srv.Orderbook()
	now := time.Now()
	book.Public(makerNick, 1, "sw0reloffer 0 27300 1000000000 0 0.0002!sw0absoffer 1 100000 50000000 12 250", now)
	book.Public(takerNick, 2, "swreloffer 4 27300 2000000 0 0.0003", now)
	code, out, errs = ctl(env, "--port", port, "orderbook")
	t.Logf("orderbook output:\n%s", out)
	if code != 0 || errs != "" {
		t.Fatalf("orderbook: exit %d, stderr %q", code, errs)
	}
	for _, re := range []string{
		`^3 offers from 2 makers, 0 fidelity bonds \(unverified\)\n`,
		`(?m)^counterparty +oid +type +min +max +txfee +cjfee +bond$`,
		`(?m)^` + makerNick + ` +0 +sw0reloffer +27300 +1000000000 +0 +0\.0002 +-$`,
		`(?m)^` + makerNick + ` +1 +sw0absoffer +100000 +50000000 +12 +250 +-$`,
		`(?m)^` + takerNick + ` +4 +swreloffer +27300 +2000000 +0 +0\.0003 +-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}

	code, out, errs = ctl(env, "orderbook", "--json", "--port", port)
	var doc struct {
		Offers []map[string]any `json:"offers"`
	}
	if code != 0 || errs != "" || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Offers) != 3 || doc.Offers[2]["cjfee"] != 250.0 {
		t.Fatalf("orderbook --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !strings.HasPrefix(out, "{\n  \"offers\": [") {
		t.Errorf("--json not indented: %.40q", out)
	}
}

// TestOrderbookArgs: only the command word is rewritten.
func TestOrderbookArgs(t *testing.T) {
	env := func(string) string { return "" }
	for in, want := range map[string]string{
		"orderbook":                   "status",
		"--port 1 orderbook --json":   "--port 1 status --json",
		"--host=h -l DEBUG orderbook": "--host=h -l DEBUG status",
		"status":                      "",
		"--port orderbook status":     "",
		"health orderbook":            "",
	} {
		got, ok := orderbookArgs(strings.Fields(in), env)
		if (want == "") == ok || (ok && strings.Join(got, " ") != want) {
			t.Errorf("orderbookArgs(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
