package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/probe"
)

// probe over TCP against this server: accepted with its identity and the makers it
// lists (exit 0); the wrong network: refused, the reason and the directory's network
// printed (exit 1); usage errors (exit 2).
func TestProbe(t *testing.T) {
	t.Parallel()
	l := dirtest.Start(t, nil, discard)
	tg := l.Target()
	tg.Join(t, dirtest.RefMaker)
	tg.Join(t, dirtest.RefTaker)
	env := func(string) string { return "" }

	code, out, errs := ctl(env, "probe", l.Addr, "--network", "regtest", "--json", "--peerlist-quiet", "200ms")
	if code != 0 || errs != "" {
		t.Fatalf("probe: exit %d, stderr %q", code, errs)
	}
	var res probe.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json: %v: %q", err, out)
	}
	if !res.Accepted || res.Nick != l.Srv.Nick() || res.Network != "regtest" || res.Makers != 1 {
		t.Fatalf("probe result %+v", res)
	}

	code, out, errs = ctl(env, "probe", "--peerlist-quiet", "200ms", l.Addr, "--network", "regtest")
	if code != 0 || errs != "" {
		t.Fatalf("probe: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"Accepted:   yes\n", "Nick:       " + l.Srv.Nick() + "\n", "Network:    regtest\n",
		"Makers:     1 listed (1 peerlist lines)\n", "Features:   peerlist_features, ping\n", "Version:    jm-directory-server version: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = ctl(env, "probe", l.Addr) // mainnet by default
	if code != 1 || !strings.Contains(out, "Accepted:   no: Rejected: network") || !strings.Contains(out, "Network:    regtest\n") {
		t.Errorf("a probe on the wrong network: exit %d:\n%s", code, out)
	}

	for _, args := range [][]string{{"probe"}, {"probe", "nohostport"}, {"probe", "a:1", "b:2"}, {"probe", "a:1", "--timeout", "0s"}} {
		if code, _, errs := ctl(env, args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errs)
		}
	}
	if code, out, _ := ctl(env, "probe", "-h"); code != 0 || !strings.HasPrefix(out, "Usage: jm-directory-ctl probe") {
		t.Errorf("probe -h: exit %d, %q", code, out)
	}
}
