package peer

import "time"

// Handoffs is how many times f has handed a full socket to a writer goroutine.
func (f *Flusher) Handoffs() int64 { return f.handoffs.Load() }

// SetLag changes how long a round runs before Help joins in.
func (f *Flusher) SetLag(d time.Duration) { f.lag = d }
