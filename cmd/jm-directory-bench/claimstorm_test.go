package main

import (
	"testing"
	"time"
)

func TestClaimSchedule(t *testing.T) {
	ms := time.Millisecond
	got := claimSchedule(6, 2, 200*ms, time.Second)
	want := []time.Duration{0, 100 * ms, 200 * ms, 400 * ms, 600 * ms, 800 * ms}
	if len(got) != len(want) {
		t.Fatalf("schedule %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule %v, want %v", got, want)
		}
	}
	// All in the burst; a burst larger than the claims; a window longer than the run.
	for _, tc := range []struct {
		claims, burst int
		window, dur   time.Duration
		last          time.Duration
	}{
		{4, 4, 200 * ms, time.Minute, 150 * ms},
		{4, 10, 200 * ms, time.Minute, 150 * ms},
		{2, 0, 0, time.Second, 500 * ms},
		{3, 1, time.Hour, time.Second, time.Second}, // the window is cut to the run: the rest come at its end
	} {
		s := claimSchedule(tc.claims, tc.burst, tc.window, tc.dur)
		if len(s) != tc.claims || s[len(s)-1] != tc.last {
			t.Errorf("claimSchedule(%d, %d, %v, %v) = %v; want %d claims, the last at %v", tc.claims, tc.burst, tc.window, tc.dur, s, tc.claims, tc.last)
		}
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(secs ...float64) []time.Time {
		out := make([]time.Time, len(secs))
		for i, s := range secs {
			out[i] = t0.Add(time.Duration(s * float64(time.Second)))
		}
		return out
	}
	for _, tc := range []struct {
		times []time.Time
		want  int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 20.001, 40.002, 60.003), 3}, // the cooldown's spacing: never 4 in a minute
		{at(0, 20, 40, 59.9), 4},
		{at(0, 60, 120), 1},
		{at(0, 0.1, 0.2, 70, 70.1), 3},
	} {
		if got := maxInWindow(tc.times, time.Minute); got != tc.want {
			t.Errorf("maxInWindow(%v) = %d, want %d", tc.times, got, tc.want)
		}
	}
}

// TestClaimstormSmoke: against this repository's directory, a storm of claims on a live
// victim's nick costs the victim one probe, every claim is refused duplicate_nick, and
// the victim stays connected and reachable; the same for a ping-capable victim.
func TestClaimstormSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	for _, extra := range [][]string{nil, {"--victim-ping"}} {
		args := append([]string{"claimstorm", "--addr", addr, "--claims", "40", "--burst", "30", "--duration", "1s"}, extra...)
		m := runJSON(t, 0, args...)
		want(t, m, map[string]float64{"claims_made": 40, "claims_accepted": 0, "probes_received": 1, "max_probes_in_60s_window": 1})
		if rej, _ := m["claims_rejected"].(map[string]any); len(rej) != 1 || rej["duplicate_nick"] != 40.0 {
			t.Errorf("claims_rejected = %v, want duplicate_nick=40", m["claims_rejected"])
		}
		if m["victim_connected"] != true || m["victim_privmsg_exchange"] != true || m["ok"] != true {
			t.Errorf("%v", m)
		}
	}
}
