package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestFDBudget: the budget is peers + handshakes + ops connections + the reserve, and the
// warning appears exactly when the limit is below it, naming the numbers and the fix.
func TestFDBudget(t *testing.T) {
	if got := fdBudget(10000, 2048, 64); got != 10000+2048+64+64 {
		t.Fatalf("budget = %d", got)
	}
	need := fdBudget(10000, 2048, 64)
	for _, limit := range []uint64{need, need + 1, 20000, 1 << 20} {
		if msg, _ := fdBudgetWarning(limit, 10000, 2048, 64); msg != "" {
			t.Errorf("limit %d: warned %q", limit, msg)
		}
	}
	for _, limit := range []uint64{need - 1, 1024} {
		msg, attrs := fdBudgetWarning(limit, 10000, 2048, 64)
		if msg == "" {
			t.Fatalf("limit %d: no warning", limit)
		}
		line := fmt.Sprint(attrs...)
		for _, want := range []string{fmt.Sprint(limit), fmt.Sprint(need), "10000", "2048", "MAX_PEERS", "ulimit"} {
			if !strings.Contains(line, want) {
				t.Errorf("limit %d: %q lacks %q", limit, line, want)
			}
		}
	}
}
