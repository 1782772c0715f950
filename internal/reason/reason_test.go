package reason

import (
	"encoding/json"
	"regexp"
	"testing"
)

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestLabels: every label is snake_case and unique within its kind, and it is what
// JSON carries.
func TestLabels(t *testing.T) {
	var all []interface {
		String() string
		MarshalText() ([]byte, error)
	}
	roundTrip := func(t *testing.T, r any, back any) {
		b, _ := json.Marshal(r)
		if err := json.Unmarshal(b, back); err != nil {
			t.Errorf("%s does not decode: %v", b, err)
		}
	}
	for r := Close(0); r < NumCloses; r++ {
		all = append(all, r)
	}
	for r := Drop(0); r < NumDrops; r++ {
		all = append(all, r)
	}
	for r := Reject(0); r < NumRejects; r++ {
		all = append(all, r)
	}
	for _, r := range all {
		if !snake.MatchString(r.String()) {
			t.Errorf("%T %q is not snake_case", r, r.String())
		}
		b, err := json.Marshal(r)
		if err != nil || string(b) != `"`+r.String()+`"` {
			t.Errorf("%T %q marshals to %s, %v", r, r.String(), b, err)
		}
	}
	for r := Close(0); r < NumCloses; r++ {
		var back Close
		if roundTrip(t, r, &back); back != r {
			t.Errorf("close %q decodes as %q", r, back)
		}
	}
	for r := Drop(0); r < NumDrops; r++ {
		var back Drop
		if roundTrip(t, r, &back); back != r {
			t.Errorf("drop %q decodes as %q", r, back)
		}
	}
	for r := Reject(0); r < NumRejects; r++ {
		var back Reject
		if roundTrip(t, r, &back); back != r {
			t.Errorf("reject %q decodes as %q", r, back)
		}
	}
	var c Close
	if err := json.Unmarshal([]byte(`"slow consumer"`), &c); err == nil {
		t.Error("an unknown label decoded")
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Close(0); r < NumCloses; r++ {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("close reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	seen = map[string]bool{}
	for r := Drop(0); r < NumDrops; r++ {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("drop reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	seen = map[string]bool{}
	for r := Reject(0); r < NumRejects; r++ {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("reject reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	if Close(200).String() != "unknown" || Drop(200).String() != "unknown" || Reject(200).String() != "unknown" {
		t.Error("out-of-range reasons must read unknown")
	}
}

func TestRejectNames(t *testing.T) {
	want := map[Reject]string{
		RejectMalformed: "malformed", RejectAppName: "app_name",
		RejectVersion: "version", RejectDirectory: "directory",
		RejectNetwork: "network", RejectNick: "nick",
		RejectLocation: "location", RejectFeatures: "features",
		RejectDuplicate: "duplicate_nick", RejectCapacity: "capacity",
		RejectReservedNick: "reserved_nick",
		RejectNone:         "none", NumRejects: "unknown", 255: "unknown",
	}
	for c, s := range want {
		if got := c.String(); got != s {
			t.Errorf("Reject(%d).String() = %q, want %q", c, got, s)
		}
	}
}
