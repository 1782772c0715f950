package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The attack scenarios at a tiny scale: against the in-process directory (they run and,
// at that scale, pass), against fake directories and the bench's relay that fail the
// victims (the exit status says so), and their report builders fed synthetic numbers.

// failuresOf returns the failures of a JSON report, joined.
func failuresOf(m map[string]any) string {
	f, _ := m["failures"].([]any)
	var parts []string
	for _, s := range f {
		parts = append(parts, s.(string))
	}
	return strings.Join(parts, "; ")
}

func TestAttackUsageListsScenarios(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, nil, &out, &errb); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, name := range []string{"silentflood", "byteflood", "peerlist"} {
		if !strings.Contains(errb.String(), "\n  "+name+" ") {
			t.Errorf("usage does not list %s:\n%s", name, errb.String())
		}
	}
}

func TestSilentfloodSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "silentflood", "--addr", addr, "--silent", "20", "--silent-rate", "20", "--duration", "500ms",
		"--join-rate", "20", "--sources", "2")
	want(t, m, map[string]float64{"silent_opened": 30, "silent_open_failed": 0, "honest_attempted": 10,
		"honest_accepted": 10, "honest_accepted_pct": 100, "honest_cut_after_join": 0, "handshake_samples": 10})
	positive(t, m, "handshake_p50_ms")
	if m["ok"] != true || m["source_addresses"] != "127.0.0.1-127.0.0.2" {
		t.Fatalf("%v", m)
	}
}

// fakeDirectory listens on loopback and treats every connection that sends a line as
// mode says: "blackhole" never answers, "reject" answers a 795 with accepted false,
// "close" closes. Connections that send nothing are held open.
func fakeDirectory(t *testing.T, mode string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reject := appendEnvelope(nil, 795, `{"app-name": "joinmarket", "directory": true, "proto-ver-min": 5, "proto-ver-max": 5, "features": {}, "accepted": false, "nick": "`+
		newIdentity().nick+`", "network": "regtest", "motd": "Rejected: capacity: full"}`)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReader(c)
				if _, err := br.ReadBytes('\n'); err != nil {
					return
				}
				switch mode {
				case "blackhole":
					_, _ = io.Copy(io.Discard, br)
				case "reject":
					_, _ = c.Write(reject)
					c.Close()
				case "close":
					c.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestSilentfloodFailsVictims: against directories that never accept an honest peer the
// run fails, and each failure is put in its class.
func TestSilentfloodFailsVictims(t *testing.T) {
	for _, tc := range []struct{ mode, key, reason string }{
		{"blackhole", "honest_timeouts", "no 795: timeout"},
		{"reject", "honest_rejected", "rejected: Rejected: capacity: full"},
		{"close", "honest_closed_without_795", "no 795: closed by server"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			addr := fakeDirectory(t, tc.mode)
			m := runJSON(t, 1, "silentflood", "--addr", addr, "--silent", "5", "--silent-rate", "10", "--duration", "300ms",
				"--join-rate", "10", "--timeout", "300ms", "--within", "200ms")
			want(t, m, map[string]float64{"honest_attempted": 3, "honest_accepted": 0, tc.key: 3, "silent_opened": 8,
				"silent_closed_by_server": 0})
			if f, _ := m["honest_failures"].(map[string]any); f[tc.reason] != 3.0 {
				t.Errorf("failures %v, want %q=3", m["honest_failures"], tc.reason)
			}
			if !strings.Contains(failuresOf(m), "0 of 3 honest handshakes") {
				t.Errorf("failures: %s", failuresOf(m))
			}
		})
	}
}

func TestSilentReportTarget(t *testing.T) {
	o := &silentOptions{common: &common{timeout: 10 * time.Second}, silent: 5000, silentRate: 100, duration: 30 * time.Second,
		joinRate: 10, within: 5 * time.Second, target: 0.99}
	good := silentResult{attempted: 300, accepted: 297, late: 1, timeouts: 2, silentOpened: 8000, silentClosed: 7990,
		latencies: []time.Duration{time.Millisecond, 6 * time.Second}}
	for _, tc := range []struct {
		name   string
		change func(r *silentResult)
		fail   string // "" = passes
	}{
		{"99% accepted", func(*silentResult) {}, ""},
		{"one short of 99%", func(r *silentResult) { r.accepted, r.late = 296, 2 }, "296 of 300 honest handshakes"},
		{"nothing attempted", func(r *silentResult) { r.attempted, r.accepted = 0, 0 }, "no honest handshake"},
		{"accepted peer cut", func(r *silentResult) { r.honestCut = 1 }, "1 accepted honest peers were cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			rep := buildSilentReport(o, &r)
			if got := strings.Join(rep.Failures, "; "); (tc.fail == "") != rep.OK() || !strings.Contains(got, tc.fail) {
				t.Fatalf("failures %q, want %q", got, tc.fail)
			}
			if rep.num("honest_accepted") != float64(r.accepted) || rep.num("silent_open_at_end") != float64(r.silentOpened-r.silentClosed) {
				t.Fatalf("%+v", rep.fields)
			}
		})
	}
}

func TestBytefloodSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 0, "byteflood", "--addr", addr, "--duration", "500ms", "--attack-rate", "20", "--size", "2000",
		"--priv-size", "4000", "--honest-rate", "20", "--drain-rate", "1MB/s", "--drain", "20s")
	want(t, m, map[string]float64{"victim_honest_privmsgs_received": 11, "honest_peer_received_from_victim": 11,
		"honest_send_errors": 0})
	positive(t, m, "attacker_pubmsgs_sent", "attacker_privmsgs_sent", "victim_bytes_received", "victim_honest_privmsg_delay_samples")
	if m["victim_cut"] != false || m["final_exchange_ok"] != true || m["honest_peer_cut"] != false {
		t.Fatalf("%v", m)
	}
	if m["victim_attacker_privmsgs_received"].(float64) > m["attacker_privmsgs_sent"].(float64) {
		t.Fatalf("more privmsgs received than sent: %v", m)
	}
}

// TestBytefloodRelayCutsVictim: the bench's relay cuts a reader that misses its write
// deadline, so the slow victim is cut and the run fails.
func TestBytefloodRelayCutsVictim(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(ln, "regtest", 64<<10, 200*time.Millisecond, 8<<10)
	defer r.Close()
	m := runJSON(t, 1, "byteflood", "--addr", r.Addr(), "--duration", "1s", "--attack-rate", "500", "--size", "2000",
		"--priv-size", "4000", "--drain-rate", "2KB/s", "--victim-rcvbuf", "8KiB", "--drain", "1s")
	if m["victim_cut"] != true || m["final_exchange_ok"] != false || !strings.Contains(failuresOf(m), "the victim was cut") {
		t.Fatalf("%v", m)
	}
}

func TestBytefloodReportTarget(t *testing.T) {
	o := &bytefloodOptions{common: &common{}, drainRate: 200e3, victimRcvbuf: 64 << 10, duration: 20 * time.Second}
	good := bytefloodResult{attackWall: 20 * time.Second, aPubSent: 4800, aPrivSent: 4800, hvSent: 101, hvRecv: 101,
		vhSent: 101, vhRecv: 101, finalOK: true, vPubFromA: 3, aCut: true, aCutClass: "closed by server"}
	for _, tc := range []struct {
		name   string
		change func(r *bytefloodResult)
		fail   string
	}{
		{"served", func(*bytefloodResult) {}, ""},
		{"victim cut", func(r *bytefloodResult) {
			r.vCut, r.vCutAfter, r.vCutClass = true, 1500*time.Millisecond, "reset by server"
		}, "the victim was cut 1.5 s after the attack began (seen as reset by server)"},
		{"honest privmsg lost", func(r *bytefloodResult) { r.hvRecv = 100 }, "1 of 101 privmsgs from the honest peer"},
		{"victim's privmsg lost", func(r *bytefloodResult) { r.vhRecv = 99 }, "2 of 101 privmsgs from the victim"},
		{"no final exchange", func(r *bytefloodResult) { r.finalOK = false }, "after the attack did not complete"},
		{"honest peer cut", func(r *bytefloodResult) { r.hCut = true }, "the honest peer was cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			rep := buildBytefloodReport(o, &r)
			if got := strings.Join(rep.Failures, "; "); (tc.fail == "") != rep.OK() || !strings.Contains(got, tc.fail) {
				t.Fatalf("failures %q, want %q", got, tc.fail)
			}
			if rep.num("attacker_lines_sent") != 9600 || rep.get("attacker_cut_seen_as") != "closed by server" {
				t.Fatalf("%+v", rep.fields)
			}
		})
	}
}

// peerlistArgs is a tiny peerlist run against addr, measuring this process's RSS.
func peerlistArgs(addr string, extra ...string) []string {
	return append([]string{"peerlist", "--addr", addr, "--makers", "30", "--requesters", "10", "--samples", "20",
		"--max-during", "500", "--interval", "2ms", "--hold", "300ms", "--drain", "3s", "--settle", "0",
		"--server-pid", strconv.Itoa(os.Getpid())}, extra...)
}

func TestPeerlistSmoke(t *testing.T) {
	addr := startDirectory(t, nil)
	// Generous limits: this checks that the scenario runs, not this machine's speed.
	m := runJSON(t, 0, peerlistArgs(addr, "--max-p99", "10s", "--max-rss-increase", "1GiB")...)
	want(t, m, map[string]float64{"requesters_joined": 10, "requesters_sent": 10, "makers_connected_at_end": 30,
		"bystanders_cut": 0, "bystander_rtt_before_samples": 20})
	positive(t, m, "server_rss_before_mib", "server_rss_peak_mib", "server_rss_after_mib", "bystander_rtt_during_samples",
		"requester_bytes_received")
}

// TestPeerlistFailsOverTarget: the same run with a round-trip limit nothing meets fails.
func TestPeerlistFailsOverTarget(t *testing.T) {
	addr := startDirectory(t, nil)
	m := runJSON(t, 1, peerlistArgs(addr, "--max-p99", "0s", "--max-rss-increase", "1GiB")...)
	if f := failuresOf(m); !strings.Contains(f, "bystander round-trip p99 during the attack") || strings.Contains(f, "RSS") {
		t.Fatalf("failures: %s", f)
	}
}

func TestPeerlistNeedsServerPID(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"peerlist", "--addr", "127.0.0.1:1", "--quiet"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--server-pid") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestPeerlistReportTarget(t *testing.T) {
	o := &peerlistOptions{common: &common{}, makers: 3000, requesters: 2000, requests: 3, maxRSS: 100e6,
		maxP99: 50 * time.Millisecond, replyTimeout: 5 * time.Second}
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	good := peerlistResult{rssBefore: 50 << 20, rssPeak: 50<<20 + 99e6, rssAfter: 60 << 20,
		before: ms(1, 2, 3), during: ms(3, 1, 50, 2)}
	for _, tc := range []struct {
		name   string
		change func(r *peerlistResult)
		fail   string
	}{
		{"within", func(*peerlistResult) {}, ""},
		{"RSS over", func(r *peerlistResult) { r.rssPeak = r.rssBefore + 100e6 + 1 }, "RSS grew by 95.4 MiB"},
		{"p99 over", func(r *peerlistResult) { r.during = ms(1, 51, 2) }, "p99 during the attack 51.000 ms"},
		{"no samples", func(r *peerlistResult) { r.during = nil }, "p99 during the attack"},
		{"makers cut", func(r *peerlistResult) { r.makersCut = 7 }, "7 of 3000 makers were cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			rep := buildPeerlistReport(o, &r)
			if got := strings.Join(rep.Failures, "; "); (tc.fail == "") != rep.OK() || !strings.Contains(got, tc.fail) {
				t.Fatalf("failures %q, want %q", got, tc.fail)
			}
			if rep.num("makers_connected_at_end") != float64(3000-r.makersCut) {
				t.Fatalf("%+v", rep.fields)
			}
		})
	}
}

func TestByteFlags(t *testing.T) {
	for in, want := range map[string]float64{"200KB/s": 200e3, "200k": 200e3, "64KiB": 65536, "1.5MiB/s": 1.5 * (1 << 20),
		"204800": 204800, "100MB": 100e6, "1GiB": 1 << 30, "12 b": 12} {
		var r byteRate
		if err := r.Set(in); err != nil || float64(r) != want {
			t.Errorf("%q: %v %v, want %v", in, float64(r), err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1KB", "0", "KB"} {
		var r byteRate
		if err := r.Set(in); err == nil {
			t.Errorf("%q accepted as %v", in, float64(r))
		}
	}
	var s byteSize
	if err := s.Set("4KiB"); err != nil || s != 4096 {
		t.Errorf("4KiB: %d %v", s, err)
	}
}

// TestPacedConnRate: a paced reader never reads faster than its rate (beyond its
// burst).
func TestPacedConnRate(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	const total, rate, burst = 96 << 10, 400e3, 16 << 10
	go func() {
		_, _ = b.Write(make([]byte, total))
		b.Close()
	}()
	pc := newPacedConn(a, rate, burst)
	start := time.Now()
	n, err := io.Copy(io.Discard, pc)
	elapsed := time.Since(start)
	if err != nil || n != total || pc.n.Load() != total {
		t.Fatalf("read %d (%d) of %d: %v", n, pc.n.Load(), total, err)
	}
	if minimum := time.Duration(float64(total-burst) / rate * float64(time.Second)); elapsed < minimum*95/100 {
		t.Fatalf("read %d bytes in %v, faster than %v allows", total, elapsed, minimum)
	}
}

func TestJoinOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&hsError{reason: "rejected: Rejected: capacity"}, outcomeRejected},
		{&hsError{reason: "no 795: timeout", err: os.ErrDeadlineExceeded}, outcomeTimeout},
		{&hsError{reason: "dial: timeout", err: os.ErrDeadlineExceeded}, outcomeTimeout},
		{&hsError{reason: "no 795: closed by server", err: io.EOF}, outcomeClosed},
		{&hsError{reason: "dial: connection refused", err: syscall.ECONNREFUSED}, outcomeClosed},
		{&hsError{reason: "no 795: reset by server", err: syscall.ECONNRESET}, outcomeClosed},
		{&hsError{reason: "dial: no source port available", err: syscall.EADDRNOTAVAIL}, outcomeOther},
		{&hsError{reason: "bad 795: invalid JSON"}, outcomeOther},
		{errors.New("odd"), outcomeOther},
	} {
		if got := joinOutcome(tc.err); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestPaddedPrivmsg(t *testing.T) {
	from := newIdentity()
	for _, size := range []int{300, 4000, 39900, 40000} {
		line := paddedPrivmsg(from, newIdentity().nick, size)
		if n := len(line) - 2; n > size || n < size-16 {
			t.Errorf("size %d: line of %d bytes", size, n)
		}
		env := decodeLine(t, line)
		if env.Type != 685 || !strings.HasPrefix(env.Line, from.nick+"!") {
			t.Errorf("size %d: %q…", size, env.Line[:40])
		}
	}
}
