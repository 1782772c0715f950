package peer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/peer"
	"github.com/jm-directory/jm-directory-server/internal/reason"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// A reader that lags loses broadcasts (dropped and counted), never privmsgs, and stays
// connected; once it has caught up it gets broadcasts again.
func TestBroadcastDroppedForLaggingReader(t *testing.T) {
	var total peer.Outbound
	p, cli, ctr := newPeer(t, peer.Limits{QueueBytes: 64 << 10, WriteTimeout: time.Hour, LagBytes: 4096, Total: &total})
	big := line(string(bytes.Repeat([]byte("b"), 1000))) // 1002 bytes
	queued := 0
	for range 10 {
		if p.Broadcast(big) {
			queued++
		}
	}
	// Nobody reads: the writer holds the first line, the queue takes lines up to 4096 bytes.
	if queued != 4 {
		t.Fatalf("%d of 10 broadcasts queued to a reader that does not read, want 4 (LagBytes 4096 / 1002)", queued)
	}
	if n := ctr.DropCounts()[reason.DropLagging.String()]; n != 6 {
		t.Fatalf("%d broadcasts counted as %s, want 6", n, reason.DropLagging)
	}
	// Privmsgs are never dropped for lag: they queue up to the queue cap.
	for i := range 20 {
		if !p.Send(big) {
			t.Fatalf("privmsg %d refused to a lagging reader under its queue cap", i)
		}
	}
	if p.Closed() {
		t.Fatal("a lagging reader was cut")
	}
	// The total follows in steps of up to 16 KiB.
	if got, exact := total.Queued(), int64(24*len(big)); got > exact || got <= exact-16<<10 {
		t.Fatalf("server total %d bytes queued, want within 16 KiB below %d", got, exact)
	}
	// The reader catches up: broadcasts flow again.
	buf := make([]byte, 64<<10)
	for read := 0; read < 24*len(big); {
		n, err := cli.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read += n
	}
	// The writer's accounting follows its last write.
	testkit.Eventually(t, "the queue empty", func() bool { return p.QueuedBytes() == 0 })
	if !p.Broadcast(big) {
		t.Fatal("a reader that caught up did not get a broadcast")
	}
	p.Close(reason.CloseShutdown)
	if got := total.Queued(); got != 0 {
		t.Fatalf("server total %d bytes after the only peer closed, want 0", got)
	}
}

// Over the server-wide bound, a peer that lags more than LagBytes is cut when a line it
// must get arrives (outbound_full), and broadcasts go only to readers that keep up.
func TestOutboundBound(t *testing.T) {
	var total peer.Outbound
	total.SetBound(100_000)
	lim := peer.Limits{QueueBytes: 1 << 20, WriteTimeout: time.Hour, LagBytes: 64 << 10, Total: &total}
	laggard, _, _ := newPeer(t, lim)
	other, _, ctr := newPeer(t, lim)
	big := line(string(bytes.Repeat([]byte("p"), 20_000))) // each over the 16 KiB reporting step
	for i := range 5 {                                     // 5 × 20 002 bytes: over the bound
		if !laggard.Send(big) {
			t.Fatalf("line %d refused under the queue cap", i)
		}
	}
	if !total.Over() {
		t.Fatalf("total %d over a bound of 100 000 not reported", total.Queued())
	}
	// other holds one line (not lagging); over the bound its broadcast room is LagBytes/8.
	if !other.Send(big) {
		t.Fatal("a line to a peer with an empty queue refused over the bound")
	}
	if other.Broadcast(big) {
		t.Fatal("a broadcast queued over the bound to a peer holding more than LagBytes/8")
	}
	if n := ctr.DropCounts()[reason.DropLagging.String()]; n != 1 {
		t.Fatalf("%d lagging drops, want 1", n)
	}
	if laggard.Send(big) || laggard.Reason() != reason.CloseOutboundFull {
		t.Fatalf("the laggard over LagBytes was not cut over the bound (reason %v)", laggard.Reason())
	}
	if total.Over() || total.Queued() != int64(len(big)) {
		t.Fatalf("total %d after the laggard was cut, want %d (other's line)", total.Queued(), len(big))
	}
	if !other.Send(big) {
		t.Fatal("a line refused once the total was back under the bound")
	}
}
