package peer

import "time"

// Handoffs is how many times a flusher has handed a full socket to a writer goroutine.
func Handoffs() int64 { return handoffs.Load() }

// SetLag changes how long a round runs before Help joins in.
func (f *Flusher) SetLag(d time.Duration) { f.lag = d }
