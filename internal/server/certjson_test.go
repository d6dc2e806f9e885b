package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
)

// TestWriteCertMatchesEncoder: the certificate and batch answers written
// without reflection are, header and byte, what json.Encoder writes.
func TestWriteCertMatchesEncoder(t *testing.T) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var certs []api.CertResponse
	for i, opts := range []map[string]string{nil, {"force-command": "/bin/<true> & \"x\""}, {"source-address": "10.0.0.0/8", "verify-required": ""}} {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		k, _ := ssh.NewPublicKey(pub)
		c := &ssh.Certificate{Key: k, Serial: uint64(1000 + i), CertType: ssh.UserCert, KeyId: "token:ci role=deploy req=0123.4 <&>",
			ValidPrincipals: []string{"role-deploy", "ci"}, ValidAfter: uint64(now.Unix() - 300), ValidBefore: uint64(now.Unix() + 600),
			Permissions: ssh.Permissions{CriticalOptions: opts, Extensions: map[string]string{"permit-pty": "", "permit-agent-forwarding": ""}}}
		if i == 2 {
			c.ValidBefore = ssh.CertTimeInfinity
		}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		cr := api.CertificateOf(c, now)
		cr.Role, cr.RequestID = "deploy", "0123456789abcdef"
		certs = append(certs, cr)
	}
	revoked := certs[0]
	revoked.Revoked = &api.Revocation{ID: 7, Kind: "serial"} // not on the fast path: the encoder writes it
	certs = append(certs, revoked)

	encoded := func(v any) (http.Header, []byte) {
		rec := httptest.NewRecorder()
		writeJSON(rec, http.StatusOK, v)
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(v)
		if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
			t.Fatalf("writeJSON wrote %s, json.Encoder %s", rec.Body.Bytes(), want.Bytes())
		}
		return rec.Header(), rec.Body.Bytes()
	}
	for _, c := range certs {
		wantHdr, want := encoded(c)
		rec := httptest.NewRecorder()
		writeCert(rec, http.StatusOK, c)
		if !bytes.Equal(rec.Body.Bytes(), want) || rec.Header().Get("Content-Type") != wantHdr.Get("Content-Type") || rec.Header().Get("Cache-Control") != wantHdr.Get("Cache-Control") {
			t.Fatalf("writeCert:\n got %s %v\nwant %s %v", rec.Body.Bytes(), rec.Header(), want, wantHdr)
		}
	}
	batches := []api.BatchCertResponse{
		{RequestID: "r<1>"},
		{Results: []api.BatchResult{}, RequestID: "r2"},
		{Results: []api.BatchResult{{Certificate: &certs[0]}, {Error: &api.BatchError{Status: 403, Code: "role-not-allowed", Message: "no <&>"}}, {Certificate: &certs[1]}, {Certificate: &certs[3]}}, RequestID: "r3"},
	}
	for _, b := range batches {
		_, want := encoded(b)
		rec := httptest.NewRecorder()
		writeBatch(rec, b)
		if !bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("writeBatch:\n got %s\nwant %s", rec.Body.Bytes(), want)
		}
	}
}
