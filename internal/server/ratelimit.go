package server

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per identity: burst n, refilled n per window.
type rateLimiter struct {
	mu      sync.Mutex
	n       float64
	window  time.Duration
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(n int, window time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{n: float64(n), window: window, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from id's bucket.
func (l *rateLimiter) allow(id string) bool { return l.allowN(id, 1) }

// burst is the most tokens one call can take (0: unlimited).
func (l *rateLimiter) burst() int { return int(l.n) }

// allowN takes n tokens from id's bucket at once, or none when fewer are
// left: a batch of n requests counts as n.
func (l *rateLimiter) allowN(id string, n int) bool {
	if l.n <= 0 || n <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[id]
	if b == nil {
		if len(l.buckets) > 100_000 {
			// Forget full buckets rather than grow without bound.
			for k, v := range l.buckets {
				if now.Sub(v.last) > l.window {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{tokens: l.n, last: now}
		l.buckets[id] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		// A clock that steps back refills nothing (and takes nothing).
		b.tokens += elapsed.Seconds() / l.window.Seconds() * l.n
		b.last = now
	}
	if b.tokens > l.n {
		b.tokens = l.n
	}
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}
