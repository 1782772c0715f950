package wire

import (
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/fixtures"
)

func TestSplitJM(t *testing.T) {
	cases := []struct {
		in, from, to, rest string
		ok                 bool
	}{
		{"J5a!PUBLIC!sw0reloffer 0 1", "J5a", "PUBLIC", "sw0reloffer 0 1", true},
		{"J5a!J5b!sw0reloffer 0!tbond x pub sig", "J5a", "J5b", "sw0reloffer 0!tbond x pub sig", true},
		{"J5a!PUBLIC!", "J5a", "PUBLIC", "", true},
		{"J5a!PUBLIC", "", "", "", false},
		{"no separator", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, c := range cases {
		f, to, r, ok := SplitJM(c.in)
		if f != c.from || to != c.to || r != c.rest || ok != c.ok {
			t.Errorf("%q: got %q %q %q %v", c.in, f, to, r, ok)
		}
	}
}

func TestFirstCommand(t *testing.T) {
	for in, want := range map[string]string{
		"sw0reloffer 0 1":   "sw0reloffer",
		"orderbook":         "orderbook",
		"!orderbook":        "orderbook",
		"cancel 0!cancel 1": "cancel",
		"reloffer!tbond x":  "reloffer",
		"":                  "",
	} {
		if got := FirstCommand(in); got != want {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

func TestAppendEntry(t *testing.T) {
	if got := string(AppendEntry(nil, "J5a", "x.onion:5222", false, nil)); got != "J5a;x.onion:5222" {
		t.Error(got)
	}
	if got := string(AppendEntry(nil, "J5a", NotServing, true, []string{"ping"})); got != "J5a;NOT-SERVING-ONION;D" {
		t.Error(got)
	}
	if got := string(AppendEntry(nil, "J5a", "h:1", false, []string{"peerlist_features", "ping"})); got != "J5a;h:1;F:peerlist_features+ping" {
		t.Error(got)
	}
}

// TestSeedCorpusSplitJM: the line of every pubmsg and privmsg in the transcripts is a
// seed of FuzzSplitJM in testdata/fuzz/FuzzSplitJM.
func TestSeedCorpusSplitJM(t *testing.T) {
	recs, err := fixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]any
	for _, r := range recs {
		if r.Type == TypePrivmsg || r.Type == TypePubmsg {
			seeds = append(seeds, []any{r.Line})
		}
	}
	fixtures.CheckCorpus(t, "FuzzSplitJM", seeds)
}

// FuzzSplitJM starts from the transcripts' message lines (testdata/fuzz/FuzzSplitJM).
func FuzzSplitJM(f *testing.F) {
	f.Add("J5a!PUBLIC!")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		from, to, rest, ok := SplitJM(s)
		if !ok {
			return
		}
		if from+"!"+to+"!"+rest != s {
			t.Fatalf("split lost bytes: %q", s)
		}
		if len(from) > 0 && containsBang(from) || containsBang(to) {
			t.Fatalf("separator in a nick field: %q", s)
		}
	})
}

func containsBang(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '!' {
			return true
		}
	}
	return false
}
