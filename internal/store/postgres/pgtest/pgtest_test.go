package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/testkit"
)

// recorder captures how a test would end instead of ending it.
type recorder struct {
	testing.TB
	ended string
}

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.ended = "skip"; runtime.Goexit() }
func (r *recorder) Fatal(...any)          { r.ended = "fatal"; runtime.Goexit() }
func (r *recorder) Fatalf(string, ...any) { r.ended = "fatal"; runtime.Goexit() }

func TestSkipOrFail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ci   bool
		want string
	}{
		{"ok/missing-binaries-skip", ErrNoPostgres, false, "skip"},
		{"fail/missing-binaries-in-ci", ErrNoPostgres, true, "fatal"},
		{"fail/start-error", errors.New("pgtest: initdb: boom"), false, "fatal"},
		{"fail/start-error-in-ci", errors.New("pgtest: initdb: boom"), true, "fatal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ci := ""
			if tt.ci {
				ci = "true"
			}
			t.Setenv("CI", ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				skipOrFail(r, tt.err)
			}()
			<-done
			if r.ended != tt.want {
				t.Fatalf("ended with %q, want %q", r.ended, tt.want)
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	tmp := t.TempDir()
	now := time.Now()
	old := now.Add(-time.Hour)
	mk := func(name string, files ...string) string {
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(d, "data", f), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	stale := mk("sshca-pg-stale", "postmaster.opts")
	running := mk("sshca-pg-running", "postmaster.opts", "postmaster.pid")
	initdbOnly := mk("sshca-pg-initdb")
	fresh := mk("sshca-pg-fresh", "postmaster.opts")
	other := mk("other-stale", "postmaster.opts")
	for _, d := range []string{stale, running, initdbOnly, other} {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(tmp, now)
	for d, wantGone := range map[string]bool{stale: true, running: false, initdbOnly: false, fresh: false, other: false} {
		_, err := os.Stat(d)
		if gone := errors.Is(err, os.ErrNotExist); gone != wantGone {
			t.Errorf("%s: gone = %v, want %v", filepath.Base(d), gone, wantGone)
		}
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if errors.Is(err, ErrNoPostgres) {
		testkit.SkipOrFatal(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"initdb", "postgres"} {
		if !isExec(filepath.Join(dir, b)) {
			t.Errorf("%s/%s is not an executable file", dir, b)
		}
	}
}

func TestStartServerWithDurable(t *testing.T) {
	if _, err := FindBinDir(); errors.Is(err, ErrNoPostgres) {
		testkit.SkipOrFatal(t, "%v", err)
	}
	tests := []struct {
		name string
		opts Options
		want string // fsync, synchronous_commit, full_page_writes
	}{
		{"ok/default-is-fast", Options{}, "off off off"},
		{"ok/durable", Options{Durable: true}, "on on on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartServerWith(t.Context(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			var got []string
			for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
				var v string
				if err := s.admin.QueryRowContext(t.Context(), "SHOW "+name).Scan(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("fsync, synchronous_commit, full_page_writes = %s, want %s", g, tt.want)
			}
		})
	}
}
