package main

import (
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/nickauth"
)

// TestAuthfloodSmoke: a short authflood against this repository's directory with a
// short nick_auth_timeout: every honest join completes (the ng ones with an 807 ok),
// every forger gets an 807 invalid and a close, and the stallers are let go with an 807
// expired after about the timeout. The pool is not filled here: which connection its
// eviction picks depends on the scheduling of the moment (see the real runs in
// docs/BENCHMARKS.md).
func TestAuthfloodSmoke(t *testing.T) {
	const authTimeout = 300 * time.Millisecond
	addr := startDirectory(t, func(c *config.Config) { c.NickAuthTimeout = authTimeout })
	for _, forge := range []string{forgeTranscript, forgeKey} {
		t.Run(forge, func(t *testing.T) {
			m := runJSON(t, 0, "authflood", "--addr", addr, "--stallers", "10", "--stall-rate", "10", "--forgers", "40",
				"--forge", forge, "--duration", "800ms", "--join-rate", "20", "--sources", "2")
			want(t, m, map[string]float64{"stallers_attempted": 18, "stallers_challenged": 18,
				"forgers_launched": 32, "forgers_skipped": 0, "forgers_answered": 32,
				"forgers_closed_after_807": 32, "forger_round_samples": 32,
				"honest_attempted": 16, "honest_ng_attempted": 8, "honest_ref_attempted": 8, "honest_accepted": 16,
				"honest_ng_verified": 8, "honest_ref_accepted": 8, "honest_accepted_pct": 100, "honest_cut_after_join": 0,
				"join_samples": 16, "ng_join_samples": 8, "ref_join_samples": 8})
			positive(t, m, "join_p50_ms", "forger_round_p99_ms")
			// Every staller is let go at its timeout (the initial ten long before the end),
			// or still held when the run ends.
			let, _ := m["stallers_let_go"].(map[string]any)
			expired, _ := let["807 expired"].(float64)
			if len(let) != 1 || expired < 10 || expired+m["stallers_held_at_end"].(float64) != 18 || m["staller_held_samples"] != expired {
				t.Errorf("stallers_let_go = %v, held at end %v: want 807 expired ≥ 10, 18 in all", let, m["stallers_held_at_end"])
			}
			if codes, _ := m["forger_807_codes"].(map[string]any); len(codes) != 1 || codes["invalid"] != 32.0 {
				t.Errorf("forger_807_codes = %v, want invalid=32", m["forger_807_codes"])
			}
			if held := m["staller_held_p50_ms"].(float64); held < float64(authTimeout/time.Millisecond)*0.9 {
				t.Errorf("stallers held %v ms, want about %v", held, authTimeout)
			}
			if m["ok"] != true || m["directory_id"] != strings.ToLower(addr) || !strings.HasPrefix(m["pass"].(string), "yes") {
				t.Fatalf("%v", m)
			}
		})
	}
}

// TestAuthfloodFailsVictims: a directory that rejects every handshake fails the run, and
// the stallers say that no round took place.
func TestAuthfloodFailsVictims(t *testing.T) {
	addr := fakeDirectory(t, "reject")
	m := runJSON(t, 1, "authflood", "--addr", addr, "--stallers", "3", "--stall-rate", "0", "--forgers", "10",
		"--duration", "300ms", "--join-rate", "10", "--timeout", "2s")
	want(t, m, map[string]float64{"honest_attempted": 3, "honest_accepted": 0, "honest_rejected": 3, "stallers_challenged": 0,
		"forgers_answered": 0})
	f := failuresOf(m)
	if !strings.Contains(f, "0 of 3 honest joins") || !strings.Contains(f, "no staller got a challenge") {
		t.Errorf("failures: %s", f)
	}
}

// TestAuthfloodReportTarget feeds the report builder synthetic numbers.
func TestAuthfloodReportTarget(t *testing.T) {
	o := &authfloodOptions{common: &common{timeout: 10 * time.Second}, stallers: 2500, stallRate: 100, forgeRate: 200,
		forge: forgeTranscript, maxForging: 2000, duration: 30 * time.Second, joinRate: 10, within: 5 * time.Second, target: 0.99}
	good := authResult{stallAttempted: 5500, stallOpened: 5500, attempted: 300, ngAttempted: 150, refAttempted: 150,
		accepted: 297, ngAccepted: 148, refAccepted: 149, late: 1, authFailed: 2,
		forgeCodes: map[string]int64{"invalid": 6000}, latencies: []time.Duration{time.Millisecond, 6 * time.Second}}
	for _, tc := range []struct {
		name   string
		change func(r *authResult)
		fail   string // "" = passes
	}{
		{"99% completed", func(*authResult) {}, ""},
		{"one short of 99%", func(r *authResult) { r.accepted, r.ngAccepted, r.authFailed = 296, 147, 3 }, "296 of 300 honest joins"},
		{"nothing attempted", func(r *authResult) { r.attempted, r.accepted = 0, 0 }, "no honest join"},
		{"joined peer cut", func(r *authResult) { r.honestCut = 2 }, "2 joined honest peers were cut"},
		{"forgery verified", func(r *authResult) { r.forgeCodes = map[string]int64{"invalid": 5999, "ok": 1} }, "1 forged proofs were verified ok"},
		{"no round", func(r *authResult) { r.stallOpened = 0 }, "no staller got a challenge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			rep := buildAuthfloodReport(o, &r)
			if got := strings.Join(rep.Failures, "; "); (tc.fail == "") != rep.OK() || !strings.Contains(got, tc.fail) {
				t.Fatalf("failures %q, want %q", got, tc.fail)
			}
			if rep.num("honest_accepted") != float64(r.accepted) || rep.num("forgers_answered") != float64(r.forgeCodes["invalid"]+r.forgeCodes["ok"]) {
				t.Fatalf("%+v", rep.fields)
			}
		})
	}
}

// TestForgedProofsDoNotVerify: both kinds of forgery are well formed and fail
// verification as invalid, and the honest proof verifies.
func TestForgedProofsDoNotVerify(t *testing.T) {
	id, other := newIdentity(), newIdentity()
	ch, err := nickauth.NewChallenge("127.0.0.1:5222")
	if err != nil {
		t.Fatal(err)
	}
	hello := authHello(id.nick, "NOT-SERVING-ONION", "regtest")
	if err := nickauth.Verify(nickauth.Prove(id.key, ch.Challenge, ch.DirectoryID, hello), ch.Challenge, ch.DirectoryID, hello, id.nick); err != nil {
		t.Fatalf("honest proof: %v", err)
	}
	for _, kind := range []string{forgeTranscript, forgeKey} {
		p := forgedProof(kind, id, other, ch, hello)
		if _, err := nickauth.ParseProof(p.Line()); err != nil {
			t.Errorf("%s: malformed: %v", kind, err)
		}
		if err := nickauth.Verify(p, ch.Challenge, ch.DirectoryID, hello, id.nick); nickauth.CodeOf(err) != nickauth.CodeInvalid {
			t.Errorf("%s: verify = %v, want invalid", kind, err)
		}
	}
}

// TestAuthfloodInUsage: the scenario is registered and listed.
func TestAuthfloodInUsage(t *testing.T) {
	if _, ok := attacks["authflood"]; !ok {
		t.Fatal("authflood is not registered")
	}
	if !strings.Contains(attackUsage(), "\n  authflood ") {
		t.Fatalf("usage does not list authflood:\n%s", attackUsage())
	}
}
