package stats

import "testing"

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := CloseReason(0); r < NumCloseReasons; r++ {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("close reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	seen = map[string]bool{}
	for r := DropReason(0); r < NumDropReasons; r++ {
		n := r.String()
		if n == "" || n == "unknown" || seen[n] {
			t.Errorf("drop reason %d has name %q", r, n)
		}
		seen[n] = true
	}
	if CloseReason(200).String() != "unknown" || DropReason(200).String() != "unknown" {
		t.Error("out-of-range reasons must read unknown")
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Close(CloseSlowConsumer)
	c.Close(CloseSlowConsumer)
	c.Drop(DropSpoofed)
	if c.Closes(CloseSlowConsumer) != 2 || c.Drops(DropSpoofed) != 1 || c.Closes(CloseRejected) != 0 {
		t.Fatal("counts wrong")
	}
	cc, dc := c.CloseCounts(), c.DropCounts()
	if len(cc) != 1 || cc["slow consumer"] != 2 || len(dc) != 1 || dc["spoofed sender"] != 1 {
		t.Fatalf("maps: %v %v", cc, dc)
	}
}
