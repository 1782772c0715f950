package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, c := range []struct {
		d    []time.Duration
		p    float64
		want int
	}{
		{nil, 50, 0},
		{ms(7), 0, 7},
		{ms(7), 50, 7},
		{ms(7), 100, 7},
		{ten, 0, 1},
		{ten, 10, 1},
		{ten, 11, 2},
		{ten, 50, 5},
		{ten, 51, 6},
		{ten, 95, 10},
		{ten, 99, 10},
		{ten, 100, 10},
		{ms(1, 2, 3, 4), 50, 2},
		{ms(1, 2, 3, 4), 75, 3},
	} {
		if got := percentile(c.d, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("percentile(%v, %v) = %v, want %dms", c.d, c.p, got, c.want)
		}
	}
	// 1000 samples 1..1000 ms: p99 is the 990th.
	var k []time.Duration
	for i := 1; i <= 1000; i++ {
		k = append(k, time.Duration(i)*time.Millisecond)
	}
	if percentile(k, 99) != 990*time.Millisecond || percentile(k, 99.9) != 999*time.Millisecond {
		t.Fatal("p99 / p99.9 of 1..1000")
	}
}

func TestAddLatenciesSorts(t *testing.T) {
	r := newReport("x")
	r.addLatencies("rtt", []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if r.num("rtt_p50") != 2 || r.num("rtt_max") != 3 || r.num("rtt_samples") != 3 {
		t.Fatalf("%+v", r.fields)
	}
}

func TestReportOutput(t *testing.T) {
	r := newReport("fanout")
	r.add("peers", 1000, "")
	r.add("delivered_per_s", 1234.5678, "lines/s")
	r.addMs("wall", 1500*time.Millisecond)
	r.add("failures_by_reason", map[string]int64{"b": 1, "a": 2}, "")
	r.add("nan", math.NaN(), "")
	var b bytes.Buffer
	if err := r.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if m["scenario"] != "fanout" || m["ok"] != true || m["peers"] != 1000.0 || m["wall_ms"] != 1500.0 || m["nan"] != nil {
		t.Fatalf("%s", b.String())
	}
	if !strings.HasPrefix(b.String(), `{"scenario":"fanout","ok":true,"failures":[],"peers":1000,`) {
		t.Fatalf("order: %s", b.String())
	}
	b.Reset()
	r.fail("lost %d", 3)
	if err := r.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"delivered per s", "1234.568 lines/s", "wall", "1500 ms", "a=2, b=1", "FAILED", "lost 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5222":   "127.0.0.1:5222",
		"localhost:1":      "127.0.0.1:1",
		"127.1.2.3:65535":  "127.1.2.3:65535",
		"10.0.0.1:5222":    "",
		"0.0.0.0:5222":     "",
		"[::1]:5222":       "",
		"example.com:5222": "",
		"127.0.0.1":        "",
		"127.0.0.1:99999":  "",
	} {
		got, err := loopbackAddr(in)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("loopbackAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPeerlistContent(t *testing.T) {
	for _, in := range []string{
		`{"type":789,"line":"A;127.0.0.1:1;D,B;127.0.0.1:2"}`,
		`{"type": 789, "line": "A;127.0.0.1:1;D,B;127.0.0.1:2"}`,
	} {
		if got := string(peerlistContent([]byte(in))); got != "A;127.0.0.1:1;D,B;127.0.0.1:2" {
			t.Errorf("%s: %q", in, got)
		}
	}
}

func TestRateFlag(t *testing.T) {
	var r rateFlag
	if err := r.Set("50/s"); err != nil || r != 50 {
		t.Fatal(r, err)
	}
	if err := r.Set("2.5"); err != nil || r != 2.5 {
		t.Fatal(r, err)
	}
	if r.Set("fast") == nil || r.Set("-1") == nil {
		t.Fatal("accepted junk")
	}
}

// TestAccounting checks the fan-out bookkeeping without sockets: every shortfall is
// attributed to a cut receiver, a cut sender, or reported as unexplained.
func TestAccounting(t *testing.T) {
	mk := func() *peer { return &peer{id: newIdentity()} }
	p0, p1, p2, p3 := mk(), mk(), mk(), mk()
	f := newFanout(fanoutConfig{publishers: 2}, []*peer{p0, p1, p2, p3})
	f.pubs[0].sent.Store(10)
	f.pubs[1].sent.Store(5)
	set := func(r int, got0, got1 int64) { f.recvs[r].got[0], f.recvs[r].got[1] = got0, got1 }
	set(0, 0, 5)  // publisher 0 itself: gets all of 1's
	set(1, 10, 0) // publisher 1 itself
	set(2, 7, 5)  // cut receiver: 3 missing, explained
	set(3, 9, 6)  // 1 unexplained, 1 duplicate
	p2.cut.Store(true)
	tot := f.account()
	if tot.expected != 10*3+5*3 || tot.delivered != 5+10+12+15 {
		t.Fatalf("expected %d delivered %d", tot.expected, tot.delivered)
	}
	if tot.missRecvCut != 3 || tot.missUnexplained != 1 || tot.duplicates != 1 || tot.missSendCut != 0 || tot.peersCut != 1 {
		t.Fatalf("%+v", tot)
	}
	r := newReport("fanout")
	tot.addTo(r, "")
	if r.OK() || len(r.Failures) != 2 {
		t.Fatalf("failures %v", r.Failures)
	}

	// A cut publisher explains what the others did not get from it.
	p1.cut.Store(true)
	p2.cut.Store(false)
	set(2, 10, 2)
	set(3, 10, 5)
	tot = f.account()
	if tot.missSendCut != 3 || tot.missUnexplained != 0 || tot.duplicates != 0 {
		t.Fatalf("%+v", tot)
	}
}

// get returns a field's value (for tests).
func (r *report) get(key string) any {
	for _, f := range r.fields {
		if f.key == key {
			return f.val
		}
	}
	return nil
}

// num returns a numeric field as float64 (for tests); NaN if absent.
func (r *report) num(key string) float64 {
	switch v := r.get(key).(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}
