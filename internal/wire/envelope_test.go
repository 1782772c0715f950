package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/fixtures"
)

func TestDecodeFixtures(t *testing.T) {
	recs := 0
	for _, s := range fixtures.Scenarios {
		rs, err := fixtures.Load(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Raw == "" {
				continue
			}
			recs++
			env, err := Decode([]byte(r.Raw))
			if err != nil {
				t.Fatalf("%s: %v: %s", s, err, r.Raw)
			}
			if env.Type != r.Type || env.Line != r.Line {
				t.Fatalf("%s: decoded (%d,%q), want (%d,%q)", s, env.Type, env.Line, r.Type, r.Line)
			}
			// Relaying the raw token yields the same decoded line and never a longer line.
			out := AppendRelay(nil, env.Type, env.RawLine())
			if ContentLen(out) > len(r.Raw) {
				t.Fatalf("relay grew the line: %d > %d", ContentLen(out), len(r.Raw))
			}
			back, err := Decode(out[:ContentLen(out)])
			if err != nil || back.Line != r.Line || back.Type != r.Type {
				t.Fatalf("relay round trip: %v %q", err, back.Line)
			}
		}
	}
	if recs < 50 {
		t.Fatalf("only %d fixture lines", recs)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]string{
		"":                                   errNotObject,
		"   ":                                errNotObject,
		"[]":                                 errNotObject,
		"{}":                                 errNoType,
		`{"type": 685}`:                      errNoLine,
		`{"line": "x"}`:                      errNoType,
		`{"type": "685", "line": "x"}`:       errTypeNotInt,
		`{"type": 685.0, "line": "x"}`:       errTypeNotInt,
		`{"type": 6.85e2, "line": "x"}`:      errTypeNotInt,
		`{"type": -1, "line": "x"}`:          errTypeNotInt,
		`{"type": true, "line": "x"}`:        errTypeNotInt,
		`{"type": 0685, "line": "x"}`:        errTypeNotInt,
		`{"type": 99999999999, "line": "x"}`: errTypeNotInt,
		`{"type": 685, "line": 1}`:           errLineNotStr,
		`{"type": 685, "line": null}`:        errLineNotStr,
		`{"type": 685, "line": ["x"]}`:       errLineNotStr,
		`{"type": 685, "line": "x", "type": 687}`:                  errDupKey,
		`{"type": 685, "line": "x", "line": "y"}`:                  errDupKey,
		`{"type": 685, "line": "\ud800"}`:                          errEscape,
		`{"type": 685, "line": "\udc00x"}`:                         errEscape,
		`{"type": 685, "line": "\ud800\u0041"}`:                    errEscape,
		`{"type": 685, "line": "\x"}`:                              errEscape,
		`{"type": 685, "line": "\u12"}`:                            errEscape,
		"{\"type\": 685, \"line\": \"a\tb\"}":                      errCtrl,
		`{"type": 685, "line": "x"} x`:                             errTrailing,
		`{"type": 685, "line": "x"}{}`:                             errTrailing,
		`{"type": 685, "line": "x"`:                                errSyntax,
		`{"type": 685 "line": "x"}`:                                errSyntax,
		`{"type": 685, "line": "x",}`:                              errSyntax,
		`{"type": 685, "line": "x", "a": tru}`:                     errSyntax,
		`{"type": 685, "line": "x", "a": 01}`:                      errSyntax,
		`{"type": 685, "line": "x", "a": 1.}`:                      errSyntax,
		`{"type": 685, "line": "x", "a": [[[[[[[[[[[1]]]]]]]]]]]}`: errDepth,
		"{\"type\": 685, \"line\": \"\xff\"}":                      errUTF8,
	}
	for in, want := range cases {
		_, err := Decode([]byte(in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%q: got %v, want %s", in, err, want)
			continue
		}
		if de.Reason != want {
			t.Errorf("%q: got %q, want %q", in, de.Reason, want)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	cases := []struct {
		in   string
		typ  int
		line string
	}{
		{`{"type":687,"line":"a!PUBLIC!b"}`, 687, "a!PUBLIC!b"},
		{` { "line" : "x" , "type" : 0 } `, 0, "x"},
		{`{"type": 685, "line": "\u00e9\ud83d\ude00\n\"\\\/"}`, 685, "é😀\n\"\\/"},
		{`{"type": 685, "line": "é"}`, 685, "é"},
		{`{"type": 685, "line": "", "extra": {"a": [1, -2.5e3, true, false, null, "s"]}}`, 685, ""},
		{`{"\u0074ype": 685, "line": "k"}`, 685, "k"},
		{`{"type": 685, "line": "x", "a": [[[[[[[[[[1]]]]]]]]]]}`, 685, "x"},
	}
	for _, c := range cases {
		env, err := Decode([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if env.Type != c.typ || env.Line != c.line {
			t.Errorf("%q: got (%d,%q)", c.in, env.Type, env.Line)
		}
	}
	// Keys are matched exactly: "TYPE" is an unknown key.
	if _, err := Decode([]byte(`{"TYPE": 685, "type": 1, "line": ""}`)); err != nil {
		t.Errorf("TYPE key: %v", err)
	}
}

func TestAppendEnvelope(t *testing.T) {
	line := "a<b>&c\"d\\e\n\x01é\xff"
	out := AppendEnvelope(nil, 789, line)
	if !bytes.HasSuffix(out, []byte("\r\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("terminator: %q", out)
	}
	if bytes.Contains(out, []byte(`\u003c`)) || !bytes.Contains(out, []byte("<b>&")) {
		t.Fatalf("HTML escaping applied: %q", out)
	}
	var v struct {
		Type int    `json:"type"`
		Line string `json:"line"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.Type != 789 || v.Line != strings.ToValidUTF8(line, "\ufffd") {
		t.Fatalf("got %+v", v)
	}
	env, err := Decode(out[:ContentLen(out)])
	if err != nil || env.Line != v.Line {
		t.Fatalf("own decoder: %v %q", err, env.Line)
	}
}

func TestSendable(t *testing.T) {
	for _, typ := range []int{785, 787, 797, 799, 801, -1} {
		if Sendable(typ) {
			t.Errorf("%d must never be sendable", typ)
		}
	}
	for _, typ := range []int{685, 687, 789, 795, 798} {
		if !Sendable(typ) {
			t.Errorf("%d must be sendable", typ)
		}
	}
}

// TestSeedCorpusDecode: every wire line of the transcripts, both sides, is a seed of
// FuzzDecode in testdata/fuzz/FuzzDecode.
func TestSeedCorpusDecode(t *testing.T) {
	lines, err := fixtures.RawLines()
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]any
	for _, l := range lines {
		seeds = append(seeds, []any{[]byte(l)})
	}
	fixtures.CheckCorpus(t, "FuzzDecode", seeds)
}

// FuzzDecode starts from the transcripts' wire lines (testdata/fuzz/FuzzDecode) and the
// edge cases added here.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type": 685, "line": "\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			return
		}
		// Anything we accept is valid JSON that encoding/json reads the same way.
		var v map[string]json.RawMessage
		if jerr := json.Unmarshal(b, &v); jerr != nil {
			t.Fatalf("accepted invalid JSON %q: %v", b, jerr)
		}
		var line string
		if jerr := json.Unmarshal(env.RawLine(), &line); jerr != nil || line != env.Line {
			t.Fatalf("line mismatch %q vs %q (%v)", line, env.Line, jerr)
		}
		// Relaying never grows the line and round-trips.
		out := AppendRelay(nil, env.Type, env.RawLine())
		if ContentLen(out) > len(b) {
			t.Fatalf("relay grew %d > %d", ContentLen(out), len(b))
		}
		back, err := Decode(out[:ContentLen(out)])
		if err != nil || back.Line != env.Line || back.Type != env.Type {
			t.Fatalf("relay round trip failed: %v", err)
		}
		// Re-encoding the decoded string round-trips too.
		re := AppendEnvelope(nil, env.Type, env.Line)
		back, err = Decode(re[:ContentLen(re)])
		if err != nil || back.Line != env.Line {
			t.Fatalf("re-encode round trip failed: %v", err)
		}
	})
}

func BenchmarkDecodePrivmsg(b *testing.B) {
	line := []byte(`{"type": 685, "line": "J59EiPRQrQkXMk5d!J5ADox6oD453KSSf!sw0reloffer 0 27300 4000000 0 0.00002 032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e MEQCIH7vK11+bP7CzW85xn4ZtMY3KpphE6wzAkmFksUnROBXAiBbM42Y7hcmw1ppMtxI6zgJbisnKhu4XyB5I7OAJT832w=="}`)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRelay(b *testing.B) {
	env, err := Decode([]byte(`{"type": 687, "line": "J59EiPRQrQkXMk5d!PUBLIC!sw0reloffer 0 27300 4000000 0 0.00002"}`))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRelay(buf[:0], env.Type, env.RawLine())
	}
}
