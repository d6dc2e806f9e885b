package oidc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
)

// TestDiscoverRetries starts a Pending verifier while its issuer refuses
// connections: tokens get ErrUnavailable and every failed attempt is
// reported with a bounded wait; once the issuer is up, a retry succeeds,
// is reported once, and tokens verify.
func TestDiscoverRetries(t *testing.T) {
	iss := oidctest.NewHTTPDown(t)
	var mu sync.Mutex
	var attempts []oidc.Attempt
	b := oidc.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	p, err := oidc.Discover(t.Context(), oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID}, b, func(a oidc.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, a)
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Mint(map[string]any{"sub": "alice"}, "RS256")
	if _, err := p.Verify(t.Context(), tok); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("Verify while down: %v, want ErrUnavailable", err)
	}
	if st := p.Status(); st.Ready || st.Attempts < 1 || st.LastErr == nil || st.Since.IsZero() {
		t.Fatalf("status while down: %+v", st)
	}
	time.Sleep(100 * time.Millisecond) // several attempts fail
	iss.Up()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Status().Ready {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 5s after the issuer came up: %+v", p.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	id, err := p.Verify(t.Context(), tok)
	if err != nil || id.User != "alice" {
		t.Fatalf("Verify after recovery: %v, %v", id, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) < 3 {
		t.Fatalf("%d attempts reported, want at least 2 failures and a success", len(attempts))
	}
	for i, a := range attempts[:len(attempts)-1] {
		if a.Err == nil || a.N != i+1 || a.Retry < b.Min/2 || a.Retry > b.Max {
			t.Errorf("attempt %d: %+v", i, a)
		}
	}
	if last := attempts[len(attempts)-1]; last.Err != nil || last.Since.IsZero() {
		t.Errorf("recovery report: %+v", last)
	}
}

// TestDiscoverConfigErrors: what no retry can fix is refused at once.
func TestDiscoverConfigErrors(t *testing.T) {
	for name, c := range map[string]oidc.Config{
		"fail/no-client": {Issuer: "https://idp.example"},
		"fail/http":      {Issuer: "http://idp.example", ClientID: "x"},
		"fail/no-issuer": {ClientID: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := oidc.Discover(t.Context(), c, oidc.DefaultBackoff, nil); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestDiscoverStops: the retries end with their context.
func TestDiscoverStops(t *testing.T) {
	iss := oidctest.NewHTTPDown(t)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	var mu sync.Mutex
	_, err := oidc.Discover(ctx, oidc.Config{Issuer: iss.URL(), ClientID: "x"}, oidc.Backoff{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond}, func(oidc.Attempt) {
		mu.Lock()
		n++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	cancel()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	before := n
	mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != before {
		t.Errorf("%d attempts after cancel", n-before)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := oidc.Backoff{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.999999 }}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 1000: time.Minute} {
		if got := b.Delay(n); got > want || got < want*99/100 {
			t.Errorf("Delay(%d) = %v, want about %v", n, got, want)
		}
	}
	b.Rand = func() float64 { return 0 }
	if got := b.Delay(1000); got != 30*time.Second {
		t.Errorf("Delay(1000) with no jitter = %v, want Max/2", got)
	}
}
