package registry

import "time"

// SetClock replaces the clock of r's check cooldown, for tests.
func SetClock(r *Registry, now func() time.Time) {
	r.mu.Lock()
	r.now = now
	r.mu.Unlock()
}

// CheckEntries is the number of peers r keeps owner-check state for.
func CheckEntries(r *Registry) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.checks)
}
