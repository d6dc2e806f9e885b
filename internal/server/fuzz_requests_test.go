package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/store"
)

// fuzzRequest posts body to path and checks the service's answer: 200 or
// a 4xx api.Error with a code, never a 5xx.
func fuzzRequest(t *testing.T, h http.Handler, path, bearer string, body []byte) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	switch {
	case rec.Code == http.StatusOK:
	case rec.Code >= 400 && rec.Code < 500:
		var e api.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" || strings.ContainsAny(e.Error, "\r\n") {
			t.Fatalf("%d with body %q", rec.Code, rec.Body.Bytes())
		}
	default:
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
	}
	return rec.Code
}

// FuzzRevocationRequest sends arbitrary bodies to POST /v1/revocations with
// an admin token, and the same bodies with a role token: never a 5xx, and
// a role token never gets a revocation recorded.
func FuzzRevocationRequest(f *testing.F) {
	fx := newAuthzFixture(f)
	admin := fx.token(authzMethod{name: "fuzz-admin", tokenKind: store.TokenAdmin})
	role := fx.creds["role-token-deploy"]
	for _, seed := range []string{
		`{"serial":1,"force":true}`, `{"serial_range":"5-3"}`, `{"serial_range":"1-18446744073709551615","force":true}`,
		`{"key_id":"x","force":true,"type":"host"}`, `{"fingerprint":"SHA256:S/JAUuf4u2W7qrpBEzzrzGWnYXZYF5oKUO6AiC8fJD4"}`,
		`{"public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKI8aWot06gDbSapq8+dGoBAfiLb8jVn2375xtw/fxIc"}`,
		`{"serial":18446744073709551616}`, `{"reason":"a\nb","serial":1}`, `{}`, `null`, `[`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzRequest(t, fx.handler, "/v1/revocations", admin, body)
		before, err := fx.home.Store.ListRevocations(t.Context(), "user")
		if err != nil {
			t.Fatal(err)
		}
		if code := fuzzRequest(t, fx.handler, "/v1/revocations", role, body); code == http.StatusOK {
			t.Fatalf("a role token revoked with %q", body)
		}
		after, err := fx.home.Store.ListRevocations(t.Context(), "user")
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Fatal("a refused revocation changed the store")
		}
	})
}

// FuzzRenewAndReport sends arbitrary bodies to the endpoints that
// authenticate by proof of possession (renewal and host reports), which
// take no bearer credential: never a 5xx and never a certificate.
func FuzzRenewAndReport(f *testing.F) {
	fx := newAuthzFixture(f)
	for _, seed := range []string{
		`{"certificate":"` + fx.pubLine + `","challenge":"x","signature":"AAAA"}`,
		`{"certificate":"ssh-ed25519-cert-v01@openssh.com AAAA","challenge":"","signature":""}`,
		`{"certificate":"x","challenge":"x","signature":"x","report":{"krl_version":1,"ca_keys":["a"]}}`,
		`{"ttl":"-1h"}`, `{}`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		certs, serial := fx.counts(t)
		for _, path := range []string{"/v1/certs/renew", "/v1/hosts/report"} {
			if code := fuzzRequest(t, fx.handler, path, "", body); code == http.StatusOK {
				t.Fatalf("%s accepted %q", path, body)
			}
		}
		if c, s := fx.counts(t); c != certs || s != serial {
			t.Fatal("a refused renewal changed the store")
		}
	})
}
