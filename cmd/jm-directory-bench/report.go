package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// report is a scenario's result: ordered named numbers, a verdict and the reasons for it.
type report struct {
	Scenario string
	Failures []string // failed correctness checks; empty = OK
	fields   []field
}

type field struct {
	key  string // snake_case, used as the JSON key
	val  any    // int, int64, float64, string, bool or map[string]int64
	unit string // shown in the table only
}

// jsonKey is the key in JSON output: units that are not implied by the name are appended
// ("time_to_all_accepted_ms", "server_rss_after_mib").
func (f field) jsonKey() string {
	switch f.unit {
	case "ms", "MiB", "KiB":
		return f.key + "_" + strings.ToLower(f.unit)
	}
	return f.key
}

func newReport(scenario string) *report { return &report{Scenario: scenario} }

// add appends one number (or string, or reason→count map).
func (r *report) add(key string, val any, unit string) {
	r.fields = append(r.fields, field{key, val, unit})
}

// addMs adds a duration in milliseconds.
func (r *report) addMs(key string, d time.Duration) {
	r.add(key, round3(float64(d)/float64(time.Millisecond)), "ms")
}

// fail records a failed correctness check.
func (r *report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// OK reports whether every correctness check passed.
func (r *report) OK() bool { return len(r.Failures) == 0 }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// writeJSON writes the report as one JSON object: scenario, ok, failures, then every field.
func (r *report) writeJSON(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString(`{"scenario":`)
	j, _ := json.Marshal(r.Scenario)
	b.Write(j)
	b.WriteString(`,"ok":`)
	b.WriteString(strconv.FormatBool(r.OK()))
	b.WriteString(`,"failures":`)
	j, _ = json.Marshal(append([]string{}, r.Failures...))
	b.Write(j)
	for _, f := range r.fields {
		b.WriteByte(',')
		j, _ = json.Marshal(f.jsonKey())
		b.Write(j)
		b.WriteByte(':')
		v := f.val
		if x, ok := v.(float64); ok && (math.IsNaN(x) || math.IsInf(x, 0)) {
			v = nil
		}
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(j)
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeTable writes the report as an aligned two-column table.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\n", r.Scenario)
	for _, f := range r.fields {
		v := formatValue(f.val)
		if f.unit != "" {
			v += " " + f.unit
		}
		fmt.Fprintf(tw, "%s\t%s\n", strings.ReplaceAll(f.key, "_", " "), v)
	}
	if r.OK() {
		fmt.Fprintf(tw, "result\tOK\n")
	} else {
		fmt.Fprintf(tw, "result\tFAILED\n")
		for _, s := range r.Failures {
			fmt.Fprintf(tw, "  failure\t%s\n", s)
		}
	}
	return tw.Flush()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "-"
		}
		return strconv.FormatFloat(round3(x), 'f', -1, 64)
	case map[string]int64:
		if len(x) == 0 {
			return "none"
		}
		return formatCounts(x)
	}
	return fmt.Sprint(v)
}

// formatCounts renders reason→count as "a=1, b=2", largest first.
func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// percentile returns the p-th percentile (0 ≤ p ≤ 100) of sorted by the nearest-rank
// method: the smallest value such that at least p% of the samples are ≤ it. 0 for no
// samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// addLatencies sorts d and adds count, p50, p95, p99 and max under prefix.
func (r *report) addLatencies(prefix string, d []time.Duration) {
	slices.Sort(d)
	r.add(prefix+"_samples", len(d), "")
	r.addMs(prefix+"_p50", percentile(d, 50))
	r.addMs(prefix+"_p95", percentile(d, 95))
	r.addMs(prefix+"_p99", percentile(d, 99))
	r.addMs(prefix+"_max", percentile(d, 100))
}

// rate is n per second over d (0 when d is 0).
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round3(float64(n) / d.Seconds())
}

// progress prints one status line to w every second until stop is called.
type progress struct {
	stop func()
}

func startProgress(w io.Writer, scenario string, status func() string) *progress {
	if w == nil {
		w = io.Discard
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintf(w, "%s %6.1fs  %s\n", scenario, time.Since(start).Seconds(), status())
			}
		}
	}()
	return &progress{stop: func() { cancel(); wg.Wait() }}
}

// readRSS returns VmRSS of a process in bytes, from /proc/PID/status.
func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb * 1024, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// si formats a rate with k/M suffixes for progress lines.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
