package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/sshca/sshca/internal/api"
)

// FuzzParseCert feeds arbitrary certificate files to ParseCert: no panic,
// and a success is always a certificate.
func FuzzParseCert(f *testing.F) {
	for _, seed := range []string{
		"ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t x\n",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKI8aWot06gDbSapq8+dGoBAfiLb8jVn2375xtw/fxIc x\n",
		"", "\x00", "ssh-ed25519-cert-v01@openssh.com !!!\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCert(data)
		if err == nil && c == nil {
			t.Fatal("nil certificate without an error")
		}
	})
}

// bodies answers every request with the body registered for its path:
// 200 for an even length, 400 for an odd one, 404 for other paths.
type bodies map[string][]byte

func (b bodies) RoundTrip(r *http.Request) (*http.Response, error) {
	body, ok := b[r.URL.Path]
	status := http.StatusOK
	switch {
	case !ok:
		status = http.StatusNotFound
	case len(body)%2 == 1:
		status = http.StatusBadRequest
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// FuzzResponses feeds arbitrary service answers to the decoders of the
// client (CA key lists, account maps, certificate responses, error bodies):
// no panic; a CA key list that decodes holds only parsed keys; a refusal
// becomes an *APIError.
func FuzzResponses(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKI8aWot06gDbSapq8+dGoBAfiLb8jVn2375xtw/fxIc ca\n"), []byte(`{"deploy":["role-deploy"]}`), []byte(`{"certificate":"x","serial":1}`))
	f.Add([]byte("garbage\n"), []byte(`null`), []byte(`{"error":"no","code":"x","request_id":"r"}`))
	f.Add([]byte(""), []byte(`{"a":1}`), []byte(`[`))
	f.Fuzz(func(t *testing.T, caKeys, accounts, cert []byte) {
		c := &Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: bodies{
			"/v1/ca/user": caKeys, "/v1/accounts": accounts, "/v1/certs/user": cert,
		}}}
		ctx := context.Background()
		if keys, raw, err := c.CAKeys(ctx, "user"); err == nil {
			if !bytes.Equal(raw, caKeys) {
				t.Fatal("CAKeys returned other bytes than the service sent")
			}
			for _, k := range keys {
				if k == nil {
					t.Fatal("nil key in the list")
				}
			}
		}
		_, _ = c.Accounts(ctx)
		_, got, err := c.RequestCert(ctx, "user", api.CertRequest{})
		switch {
		case err == nil && got == nil:
			t.Fatal("RequestCert returned no certificate and no error")
		case len(cert)%2 == 1:
			if _, ok := err.(*APIError); !ok {
				t.Fatalf("a 400 became %#v", err)
			}
		}
		c.HTTP.Transport = bodies{}
		_, _, err = c.CAKeys(ctx, "host")
		if ae, ok := err.(*APIError); !ok || ae.Status != http.StatusNotFound {
			t.Fatalf("a 404 became %#v", err)
		}
	})
}
