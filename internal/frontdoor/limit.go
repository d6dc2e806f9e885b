package frontdoor

import (
	"sync"
	"time"
)

// limiter is a token bucket per key (a source address, a user name): rate
// events per minute, bursting to burst. The number of keys is bounded:
// when the table is full, keys whose bucket has refilled are forgotten,
// and if none has, new keys are refused (fail closed) until some have.
type limiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute, burst, maxKeys int) *limiter {
	return &limiter{rate: float64(perMinute) / 60, burst: float64(burst), maxKeys: maxKeys, buckets: map[string]*bucket{}}
}

// allow takes one token of key's bucket at now, reporting whether there was one.
func (l *limiter) allow(key string, now time.Time) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
			if len(l.buckets) >= l.maxKeys {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the buckets that are full again.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// counter bounds concurrent connections per key and in total.
type counter struct {
	perKey, total int

	mu  sync.Mutex
	n   map[string]int
	all int
}

func newCounter(perKey, total int) *counter {
	return &counter{perKey: perKey, total: total, n: map[string]int{}}
}

// acquire counts one more connection of key, or reports that a bound is reached.
func (c *counter) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all >= c.total || c.n[key] >= c.perKey {
		return false
	}
	c.n[key]++
	c.all++
	return true
}

func (c *counter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all--
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}
