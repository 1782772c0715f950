package stats

import (
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/reason"
)

func TestCounters(t *testing.T) {
	var c Counters
	c.Close(reason.CloseQueueFull)
	c.Close(reason.CloseQueueFull)
	c.Drop(reason.DropSpoofed)
	c.Reject(reason.RejectDuplicate)
	c.Reject(reason.RejectCapacity)
	c.Reject(reason.RejectDuplicate)
	if c.Closes(reason.CloseQueueFull) != 2 || c.Drops(reason.DropSpoofed) != 1 || c.Closes(reason.CloseRejected) != 0 {
		t.Fatal("counts wrong")
	}
	cc, dc := c.CloseCounts(), c.DropCounts()
	if len(cc) != 1 || cc["queue_full"] != 2 || len(dc) != 1 || dc["spoofed_sender"] != 1 {
		t.Fatalf("maps: %v %v", cc, dc)
	}
	if rc := c.RejectCounts(); c.Rejects(reason.RejectDuplicate) != 2 || len(rc) != 2 ||
		rc["duplicate_nick"] != 2 || rc["capacity"] != 1 {
		t.Fatalf("rejections: %v", rc)
	}
}
