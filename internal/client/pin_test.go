package client

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/server"
)

// TestPinnedTLS is the network-attacker case of docs/security.md: a client
// pinned to the service's certificate fingerprint talks to that service
// only; a server with any other certificate (an attacker between agent and
// service, even one holding a certificate from a public CA) is refused
// before a request is sent, and plain HTTP is refused outright.
func TestPinnedTLS(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"deploy":["role-deploy"]}`))
	})
	service := httptest.NewTLSServer(handler)
	defer service.Close()
	// Same answers, its own certificate (httptest gives every server the
	// same one, so make another).
	cert, err := server.LoadOrCreateTLS("", "", t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	attacker := httptest.NewUnstartedServer(handler)
	attacker.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	attacker.StartTLS()
	defer attacker.Close()
	pin := server.CertFingerprint(service.Certificate().Raw)
	if server.CertFingerprint(attacker.Certificate().Raw) == pin {
		t.Fatal("the attacker's certificate is the service's")
	}
	for _, tc := range []struct {
		name, url, fingerprint, wantErr string
	}{
		{name: "ok/pinned-service", url: service.URL, fingerprint: pin},
		{name: "fail/other-certificate", url: attacker.URL, fingerprint: pin, wantErr: "not the pinned"},
		{name: "fail/unpinned-self-signed", url: service.URL, wantErr: "certificate"},
		{name: "fail/plain-http", url: strings.Replace(service.URL, "https://", "http://", 1), fingerprint: pin, wantErr: "must use https"},
		{name: "fail/malformed-pin", url: service.URL, fingerprint: "MD5:00:11", wantErr: "SHA256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.url, tc.fingerprint)
			if err == nil {
				_, err = c.Accounts(context.Background())
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
