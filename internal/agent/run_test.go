package agent

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination Run writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunSaysWhatItDoes: the daemon (sync --interval) says at info level
// what it keeps current when it starts, and what each cycle did.
func TestRunSaysWhatItDoes(t *testing.T) {
	k := newTestKeys(t)
	var logs lockedBuffer
	c := testConfig(t.TempDir(), goodService(t, k.ca))
	c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), `msg="sync done"`) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="sync daemon started`, `interval=1s`, `server=https://ca.invalid`,
		`level=INFO msg="sync done" krl_version=7 ca_keys=1`, `next_in=`,
		`installed="nothing (up to date)"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
