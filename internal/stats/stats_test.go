package stats

import (
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/reason"
)

func TestCounters(t *testing.T) {
	var c Counters
	c.Close(reason.CloseSlowConsumer)
	c.Close(reason.CloseSlowConsumer)
	c.Drop(reason.DropSpoofed)
	if c.Closes(reason.CloseSlowConsumer) != 2 || c.Drops(reason.DropSpoofed) != 1 || c.Closes(reason.CloseRejected) != 0 {
		t.Fatal("counts wrong")
	}
	cc, dc := c.CloseCounts(), c.DropCounts()
	if len(cc) != 1 || cc["slow_consumer"] != 2 || len(dc) != 1 || dc["spoofed_sender"] != 1 {
		t.Fatalf("maps: %v %v", cc, dc)
	}
}
