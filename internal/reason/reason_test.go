package reason

import "testing"

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
		RejectMalformed: "malformed", RejectAppName: "app-name",
		RejectVersion: "version", RejectDirectory: "directory",
		RejectNetwork: "network", RejectNick: "nick",
		RejectLocation: "location", RejectFeatures: "features",
		RejectDuplicate: "duplicate nick", RejectCapacity: "capacity",
		RejectNone: "none", RejectCapacity + 1: "unknown", 255: "unknown",
	}
	for c, s := range want {
		if got := c.String(); got != s {
			t.Errorf("Reject(%d).String() = %q, want %q", c, got, s)
		}
	}
}
