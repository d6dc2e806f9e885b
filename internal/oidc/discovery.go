package oidc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned by Pending.Verify while the issuer's discovery
// has not succeeded: no ID token can be checked, whatever it holds. It is
// the issuer's outage, not the caller's fault.
var ErrUnavailable = errors.New("oidc: identity provider unavailable")

// Backoff bounds the retries of discovery: the n-th wait is drawn uniformly
// from [d/2, d] with d = min(Max, Min·2^(n-1)), so that replicas restarted
// together do not retry in step, and an issuer that is down for hours is
// asked at most once per Max.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a number in [0, 1) for the jitter; default math/rand/v2.
	Rand func() float64
}

// DefaultBackoff retries after about 1s, 2s, 4s, ... up to about 2 minutes.
var DefaultBackoff = Backoff{Min: time.Second, Max: 2 * time.Minute}

// Delay returns the wait before retry number n (1 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultBackoff.Min
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Attempt reports one discovery attempt of a Pending verifier.
type Attempt struct {
	// N counts attempts, from 1.
	N int
	// Err is why the attempt failed; nil when discovery succeeded.
	Err error
	// Retry is the wait before the next attempt (when Err is set).
	Retry time.Duration
	// Since is when the first failed attempt started (zero when the first
	// attempt succeeded).
	Since time.Time
}

// Status is what a Pending verifier knows about its issuer.
type Status struct {
	// Ready reports that discovery has succeeded: ID tokens are checked.
	Ready bool
	// Attempts is the number of failed discovery attempts so far.
	Attempts int
	// Since is when discovery first failed (zero if it never did).
	Since time.Time
	// LastErr is the last failure (nil once Ready).
	LastErr error
	// Next is when the next attempt is due (zero once Ready).
	Next time.Time
}

// Pending is a Verifier whose issuer may be unreachable when the service
// starts. Until discovery succeeds its Verify returns ErrUnavailable; the
// service keeps serving everything that needs no issuer meanwhile.
type Pending struct {
	v  atomic.Pointer[Verifier]
	mu sync.Mutex
	st Status
}

// Discover checks c and runs discovery once. When that fails for another
// reason than the configuration (a bad issuer URL or no client ID are
// returned as errors), it returns a Pending verifier that keeps retrying in
// the background with back-off b until discovery succeeds or ctx is done.
// report, when set, is called after every failed attempt and once when
// discovery succeeds after failures; it must not block for long. The
// package never logs: the caller decides what report writes.
func Discover(ctx context.Context, c Config, b Backoff, report func(Attempt)) (*Pending, error) {
	if _, err := c.normalize(); err != nil {
		return nil, err
	}
	p := &Pending{}
	start := c.now()
	v, err := NewVerifier(ctx, c)
	if err == nil {
		p.v.Store(v)
		p.st = Status{Ready: true}
		return p, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	wait := b.Delay(1)
	p.fail(err, start, wait, c.now())
	if report != nil {
		report(Attempt{N: 1, Err: err, Retry: wait, Since: start})
	}
	go p.retry(ctx, c, b, wait, report)
	return p, nil
}

func (p *Pending) fail(err error, since time.Time, wait time.Duration, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Attempts++
	if p.st.Since.IsZero() {
		p.st.Since = since
	}
	p.st.LastErr = err
	p.st.Next = now.Add(wait)
}

func (p *Pending) retry(ctx context.Context, c Config, b Backoff, wait time.Duration, report func(Attempt)) {
	for n := 2; ; n++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		v, err := NewVerifier(ctx, c)
		if err == nil {
			p.v.Store(v)
			p.mu.Lock()
			since := p.st.Since
			p.st = Status{Ready: true, Attempts: p.st.Attempts, Since: since}
			p.mu.Unlock()
			if report != nil {
				report(Attempt{N: n, Since: since})
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		wait = b.Delay(n)
		p.fail(err, time.Time{}, wait, c.now())
		if report != nil {
			report(Attempt{N: n, Err: err, Retry: wait, Since: p.Status().Since})
		}
	}
}

// Status returns what is known about the issuer now.
func (p *Pending) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Verify checks rawIDToken as Verifier.Verify does once discovery has
// succeeded, and returns an error wrapping ErrUnavailable (and the last
// discovery failure) before.
func (p *Pending) Verify(ctx context.Context, rawIDToken string) (*Identity, error) {
	if v := p.v.Load(); v != nil {
		return v.Verify(ctx, rawIDToken)
	}
	st := p.Status()
	return nil, fmt.Errorf("%w: discovery failing since %s: %w", ErrUnavailable, st.Since.UTC().Format(time.RFC3339), st.LastErr)
}
