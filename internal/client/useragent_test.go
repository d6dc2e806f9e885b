package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sshca/sshca/internal/buildinfo"
	"github.com/sshca/sshca/internal/server"
)

// TestUserAgent: every request names the client's version and revision.
func TestUserAgent(t *testing.T) {
	got := make(chan string, 1)
	service := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.UserAgent()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer service.Close()
	c, err := New(service.URL, server.CertFingerprint(service.Certificate().Raw))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.AuthConfig(context.Background())
	bi := buildinfo.Get()
	if ua, want := <-got, "sshca/"+bi.Version+" ("+bi.ShortRevision()+")"; ua != want {
		t.Errorf("User-Agent = %q, want %q", ua, want)
	}
}
