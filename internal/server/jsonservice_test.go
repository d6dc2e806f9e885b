package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
)

// TestJSONThroughTheService: `sshca fleet status --json` reports what a
// real agent (`sshca sync`) reported to the service, and `sshca status
// --json` the certificate `sshca login` obtained from it; both decode
// strictly into the schema of docs/json.md, and the certificate object is
// the one the service returned.
func TestJSONThroughTheService(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	dir := t.TempDir()
	fp := server.CertFingerprint(f.ts.Certificate().Raw)
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := cli.Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != 0 {
			t.Fatalf("sshca %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		return stdout.String()
	}

	// A server: its host key, enrolled with a one-time token, then synced.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	signer, _ := ssh.NewSignerFromKey(priv)
	if err := os.WriteFile(hostKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostKey+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	enroll := filepath.Join(dir, "enroll.token")
	tok := f.token("enroll-web", store.TokenEnroll, []string{"servers"}, []string{"web-01.corp"}, f.clock.Now(), time.Hour)
	if err := os.WriteFile(enroll, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	out := run("host", "enroll", "--server", f.ts.URL, "--ca-fingerprint", fp, "--token-file", enroll, "--host-key", hostKey, "--json")
	var enrolled api.Certificate
	if err := api.DecodeStrict(strings.NewReader(out), &enrolled); err != nil {
		t.Fatalf("host enroll --json: %v: %q", err, out)
	}
	if enrolled.File != hostKey+"-cert.pub" || enrolled.CertType != "host" || enrolled.Role != "servers" || enrolled.Principals[0] != "web-01.corp" {
		t.Errorf("host enroll --json: %+v", enrolled)
	}
	run("sync", "--server", f.ts.URL, "--ca-fingerprint", fp, "--dir", filepath.Join(dir, "sshca"), "--host-key", hostKey)

	out = run("--home", f.home.Dir, "fleet", "status", "--json", "--expiring-within", "1h") // the servers role gives 24h
	var host api.FleetHost
	if err := api.DecodeStrict(strings.NewReader(out), &host); err != nil {
		t.Fatalf("fleet status --json: %v: %q", err, out)
	}
	keys, err := f.home.Store.ListCAKeys(context.Background(), "user")
	if err != nil {
		t.Fatal(err)
	}
	hostCert := readCertFile(t, hostKey+"-cert.pub")
	if host.Name != "web-01.corp" || !host.OK || len(host.Flags) != 0 || host.Flags == nil || host.SyncFailing ||
		len(host.CAKeys) != 1 || host.CAKeys[0] != (api.FleetCAKey{Fingerprint: keys[0].Fingerprint, Generation: 1}) ||
		host.HostCertCAFingerprint != ssh.FingerprintSHA256(hostCert.SignatureKey) || host.HostCertCAGeneration != 1 ||
		host.HostCertExpiry.Unix() != int64(hostCert.ValidBefore) || host.LastSeenAgeSeconds > 60 || host.KRLVersion != host.KRLLatest {
		t.Errorf("fleet status --json: %+v", host)
	}

	// A person's certificate through login, then status.
	tokFile := filepath.Join(dir, "ci.token")
	if err := os.WriteFile(tokFile, []byte(f.roleToken("ci", "deploy")), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	out = run("login", "--server", f.ts.URL, "--ca-fingerprint", fp, "--token-file", tokFile, "--key", key, "--role", "deploy", "--no-agent", "--json")
	var lg api.Certificate
	if err := api.DecodeStrict(strings.NewReader(out), &lg); err != nil {
		t.Fatalf("login --json: %v: %q", err, out)
	}
	// --renew-before with time left: nothing to do, and the same certificate.
	out = run("login", "--server", f.ts.URL, "--ca-fingerprint", fp, "--token-file", tokFile, "--key", key, "--role", "deploy", "--no-agent",
		"--renew-before", "5m", "--json")
	var same api.Certificate
	if err := api.DecodeStrict(strings.NewReader(out), &same); err != nil {
		t.Fatalf("login --renew-before --json: %v: %q", err, out)
	}
	out = run("status", "--json", "--key", key)
	var st api.Certificate
	if err := api.DecodeStrict(strings.NewReader(out), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, out)
	}
	cert := readCertFile(t, key+"-cert.pub")
	if st.File != key+"-cert.pub" || st.Serial != cert.Serial || st.Status != api.StatusValid || st.Certificate != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))) ||
		*st.RemainingSeconds > 30*60 || *st.RemainingSeconds < 30*60-60 {
		t.Errorf("status --json: %+v", st)
	}
	if lg.File != st.File || lg.Certificate != st.Certificate || lg.Role != "deploy" || lg.RequestID == "" ||
		same.Certificate != st.Certificate || same.File != st.File || same.RequestID != "" {
		t.Errorf("login --json %+v\nlogin --renew-before --json %+v\nstatus --json %+v", lg, same, st)
	}
	// The CA's record of it, through list --json, is the same object with what the CA knows.
	out = run("--home", f.home.Dir, "list", "--json", "--type", "user")
	var rec api.Certificate
	if err := api.DecodeStrict(strings.NewReader(out), &rec); err != nil {
		t.Fatalf("list --json: %v: %q", err, out)
	}
	if rec.Certificate != st.Certificate || rec.Role != "deploy" || rec.Requester != "token:ci" || rec.IssuedAt.IsZero() {
		t.Errorf("list --json: %+v", rec)
	}
}

func readCertFile(t *testing.T, path string) *ssh.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s is not a certificate", path)
	}
	return c
}
