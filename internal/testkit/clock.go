package testkit

import (
	"sync"
	"time"
)

// Clock is a settable clock for the code under test: the real time plus an
// offset that only Advance changes. Give its Now to everything that must
// agree on the time (a home's authority, the service, an ID token
// verifier). The zero value is the real clock; it is safe for concurrent
// use.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the real time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock d forward (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}
