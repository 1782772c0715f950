package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// TestLatencyRelayRatio: a tiny run against an in-process directory and the in-process
// reference relay, in alternating blocks, reports both sides' percentiles and the ratios
// computed from them, with every background line of both accounted for across the blocks.
func TestLatencyRelayRatio(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "latency", "--addr", addr, "--peers", "10", "--publishers", "2", "--bg-rate", "2000",
		"--samples", "40", "--block", "10", "--warmup", "50ms", "--block-warmup", "10ms", "--relay-process=false")
	want(t, m, map[string]float64{"samples": 40, "lost": 0, "rtt_samples": 40, "relay_lost": 0, "relay_rtt_samples": 40,
		"blocks": 4, "block_samples": 10, "bg_missing": 0, "relay_bg_missing": 0, "bg_out_of_order": 0,
		"relay_bg_out_of_order": 0, "bg_duplicates": 0, "relay_bg_duplicates": 0, "relay_cut": 0, "p99_ratio_goal": 1.5})
	positive(t, m, "rtt_p50_ms", "rtt_p99_ms", "relay_rtt_p50_ms", "relay_rtt_p99_ms", "p99_ratio", "p50_ratio",
		"bg_delivered", "relay_bg_delivered", "relay_achieved_bg_rate")
	if m["relay"] != "in-process" || m["ok"] != true {
		t.Fatalf("relay %v ok %v", m["relay"], m["ok"])
	}
	// Four blocks of each background, all of it delivered: every receiver got each
	// publisher's lines in one unbroken sequence (no restart at a block).
	if m["bg_delivered"] != m["bg_expected_deliveries"] || m["relay_bg_delivered"] != m["relay_bg_expected_deliveries"] {
		t.Fatalf("background: %v of %v, relay %v of %v", m["bg_delivered"], m["bg_expected_deliveries"],
			m["relay_bg_delivered"], m["relay_bg_expected_deliveries"])
	}
	// The ratios are our percentile over the relay's (from the unrounded values: allow
	// for the microsecond rounding of the reported milliseconds).
	for _, r := range []struct{ ratio, ours, relay string }{{"p99_ratio", "rtt_p99_ms", "relay_rtt_p99_ms"}, {"p50_ratio", "rtt_p50_ms", "relay_rtt_p50_ms"}} {
		ratio, ours, relay := m[r.ratio].(float64), m[r.ours].(float64), m[r.relay].(float64)
		if exp := ours / relay; math.Abs(ratio-exp) > 0.002+exp*0.02 {
			t.Errorf("%s = %v, want %v / %v = %.3f", r.ratio, ratio, ours, relay, exp)
		}
	}
	if ok, isBool := m["p99_ratio_ok"].(bool); !isBool || ok != (m["p99_ratio"].(float64) <= 1.5) {
		t.Errorf("p99_ratio_ok = %v with p99_ratio %v", m["p99_ratio_ok"], m["p99_ratio"])
	}
}

// TestLatencyWithoutRelay: --relay=false measures the directory alone, in one block, and
// reports no relay or ratio fields.
func TestLatencyWithoutRelay(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "latency", "--addr", addr, "--peers", "10", "--publishers", "2", "--bg-rate", "2000",
		"--samples", "20", "--block", "5", "--warmup", "50ms", "--relay=false")
	want(t, m, map[string]float64{"rtt_samples": 20, "lost": 0, "bg_missing": 0})
	if m["relay"] != "off" {
		t.Fatalf("relay = %v", m["relay"])
	}
	for k := range m {
		if strings.HasPrefix(k, "relay_") || strings.Contains(k, "ratio") || k == "blocks" {
			t.Errorf("field %s without the relay", k)
		}
	}
}

// TestPrivRelayRoutes: the reference relay sends a privmsg to its recipient alone and
// every other line, a privmsg to an unknown nick included, to everyone else, in order.
func TestPrivRelayRoutes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newPrivRelay(ln, "regtest", 1<<20, 5*time.Second, 0)
	defer r.Close()
	d := &dialer{addr: r.Addr(), network: "regtest", timeout: 5 * time.Second, bufSize: 4096}
	ids := []identity{newIdentity(), newIdentity(), newIdentity()}
	var ps []*peer
	for _, id := range ids {
		p, err := d.join(t.Context(), id, wire.NotServing)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.conn.Close() })
		ps = append(ps, p)
	}
	testkit.Eventually(t, "three joined connections", func() bool { return len(*r.conns.Load()) == 3 })
	a, b, c := ps[0], ps[1], ps[2]
	toB := privmsgLine(ids[0], ids[1].nick, "fill", "1 2 3")
	toNobody := privmsgLine(ids[0], newIdentity().nick, "fill", "4 5 6")
	pub := appendEnvelope(nil, wire.TypePubmsg, ids[0].nick+"!PUBLIC!hello")
	// In one write: a broadcast, the privmsg, a privmsg to an unknown nick, a broadcast.
	if _, err := a.write(bytes.Join([][]byte{pub, toB, toNobody, pub}, nil), time.Second); err != nil {
		t.Fatal(err)
	}
	read := func(p *peer, n int) []string {
		_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var out []string
		for range n {
			l, err := p.readLine()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(l)+"\r\n")
		}
		return out
	}
	if got, want := strings.Join(read(b, 4), ""), string(bytes.Join([][]byte{pub, toB, toNobody, pub}, nil)); got != want {
		t.Fatalf("b got %q, want %q", got, want)
	}
	if got, want := strings.Join(read(c, 3), ""), string(bytes.Join([][]byte{pub, toNobody, pub}, nil)); got != want {
		t.Fatalf("c got %q, want %q (the privmsg to b is b's alone)", got, want)
	}
	// a gets nothing of its own: a line from c is the next thing a reads.
	if _, err := c.write(pub, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := read(a, 1); got[0] != string(pub) {
		t.Fatalf("a got %q", got)
	}
}

// TestLatencyRelayChild runs the --relay-process child ("latency --serve-relay") in-process
// over pipes and talks to it as the parent does: the address comes first, and closing
// its stdin ends it with a report of what it cut.
func TestLatencyRelayChild(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run([]string{"latency", "--serve-relay", "127.0.0.1:0", "--json", "--quiet"}, inR, outW, &stderr)
		outW.Close()
		done <- code
	}()
	rl, err := attachRelay(inW, outR, func() error {
		if code := <-done; code != 0 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := &dialer{addr: rl.addr, network: "regtest", timeout: 5 * time.Second, bufSize: 4096}
	p, err := d.join(context.Background(), newIdentity(), wire.NotServing)
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	cut, err := rl.stop()
	if err != nil || cut != 0 {
		t.Fatalf("stop: cut %d, %v (stderr %s)", cut, err, stderr.String())
	}
	// The relay closed the connection on the way out.
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.readLine(); err == nil {
		t.Fatal("connection still open after the relay stopped")
	}
}

// TestAttachRelayBadChild: a child that says nothing usable is an error, not a hang.
func TestAttachRelayBadChild(t *testing.T) {
	for _, out := range []string{"", "no address\n", "10.0.0.1:5222\n"} {
		if _, err := attachRelay(nopWriteCloser{}, strings.NewReader(out), func() error { return nil }); err == nil {
			t.Errorf("%q: no error", out)
		}
	}
	// An address, then a report without the cut count.
	rl, err := attachRelay(nopWriteCloser{}, strings.NewReader("127.0.0.1:1\n{\"scenario\":\"latency-relay\"}\n"), func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if rl.addr != "127.0.0.1:1" {
		t.Errorf("addr %q", rl.addr)
	}
	if _, err := rl.stop(); err == nil {
		t.Error("report without cut accepted")
	}
}

// nopWriteCloser stands for the child's stdin.
type nopWriteCloser struct{}

func (nopWriteCloser) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriteCloser) Close() error                { return nil }
