package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/server"
)

// TestCertRequestValidityWindow: valid_after/valid_before of a certificate
// request, RFC 3339 or relative to the service's clock, decided by policy
// as `sshca sign --validity` is: a window within the role's max_ttl is
// granted exactly (less the backdate), one beyond it is refused with
// ttl-exceeds-max, a window in the past or with a ttl too with bad-validity,
// unreadable times with a 400; refusals issue nothing and are audited.
func TestCertRequestValidityWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ci := f.roleToken("ci", "deploy") // deploy: max_ttl 1h, default 30m; backdate 5m
	_, key := newKey(t)
	const backdate = 5 * time.Minute
	at := func(d time.Duration) time.Time { return f.clock.Now().Add(d).Truncate(time.Second) }

	dayFrom, dayTo := at(24*time.Hour), at(25*time.Hour)
	tests := []struct {
		name          string
		after, before string
		ttl           string
		from, to      time.Duration // the window asked for, from now
		abs           bool          // asked in absolute times: dayFrom, dayTo
	}{
		{name: "ok/relative -5m:+1h (max_ttl from now)", after: "-5m", before: "+1h", from: -5 * time.Minute, to: time.Hour},
		{name: "ok/end only", before: "+45m", from: 0, to: 45 * time.Minute},
		{name: "ok/start only, default ttl", after: "+2h", from: 2 * time.Hour, to: 2*time.Hour + 30*time.Minute},
		{name: "ok/start and ttl", after: "+3h", ttl: "10m", from: 3 * time.Hour, to: 3*time.Hour + 10*time.Minute},
		{name: "ok/RFC 3339", after: dayFrom.Format(time.RFC3339), before: dayTo.In(time.FixedZone("", 2*3600)).Format(time.RFC3339), abs: true},
		{name: "ok/now", after: "now", before: "+1h", from: 0, to: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := f.clock.Now().Truncate(time.Second)
			r, cr, cert := f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy", TTL: tc.ttl, ValidAfter: tc.after, ValidBefore: tc.before})
			if r.status != http.StatusOK {
				t.Fatalf("%d %s: %s", r.status, r.err.Code, r.err.Error)
			}
			gotFrom, gotTo := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
			wantFrom, wantTo := start.Add(tc.from-backdate), start.Add(tc.to)
			if tc.abs {
				// Absolute times do not move with the clock while the
				// subtests before this one ran.
				wantFrom, wantTo = dayFrom.Add(-backdate), dayTo
			}
			if d := gotFrom.Sub(wantFrom); d < 0 || d > 3*time.Second {
				t.Errorf("valid after %s, want %s", gotFrom.UTC(), wantFrom.UTC())
			}
			if d := gotTo.Sub(wantTo); d < 0 || d > 3*time.Second {
				t.Errorf("valid before %s, want %s", gotTo.UTC(), wantTo.UTC())
			}
			// The response is the shared certificate object, strictly.
			var strict api.Certificate
			if err := api.DecodeStrict(bytes.NewReader(r.body), &strict); err != nil {
				t.Fatalf("response: %v: %s", err, r.body)
			}
			if !cr.ValidAfter.Equal(gotFrom) || !cr.ValidBefore.Equal(gotTo) || cr.Role != "deploy" || cr.Status == "" ||
				cr.KeyFingerprint == "" || cr.RequestID == "" || cr.CertType != "user" {
				t.Errorf("response %+v disagrees with the certificate", cr)
			}
		})
	}

	refusals := []struct {
		name, after, before, ttl string
		status                   int
		code                     string
	}{
		{name: "fail/beyond max_ttl", after: "-5m", before: "+1h1m", status: http.StatusForbidden, code: "ttl-exceeds-max"},
		{name: "fail/beyond max_ttl from its start", after: "+1d", before: "+1d1h1s", status: http.StatusForbidden, code: "ttl-exceeds-max"},
		{name: "fail/in the past", after: "-2h", before: "-1h", status: http.StatusForbidden, code: "bad-validity"},
		{name: "fail/ends before it starts", after: "+2h", before: "+1h", status: http.StatusForbidden, code: "bad-validity"},
		{name: "fail/too far ahead", after: "+32d", status: http.StatusForbidden, code: "bad-validity"},
		{name: "fail/ttl and end", before: "+30m", ttl: "30m", status: http.StatusForbidden, code: "bad-validity"},
		{name: "fail/not a time", after: "tomorrow", status: http.StatusBadRequest, code: "bad-validity"},
		{name: "fail/local time without zone", before: "2026-05-01T09:00:00", status: http.StatusBadRequest, code: "bad-validity"},
		{name: "fail/overflowing duration", before: "+300000000w", status: http.StatusBadRequest, code: "bad-validity"},
		{name: "fail/too long", before: "+" + strings.Repeat("1", 64) + "s", status: http.StatusBadRequest, code: "bad-validity"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			r, _, _ := f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy", TTL: tc.ttl, ValidAfter: tc.after, ValidBefore: tc.before})
			wantError(t, r, tc.status, tc.code)
			after := f.state()
			if after.certs != before.certs || after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
				t.Fatalf("state %+v after the refusal, before %+v: want no certificate and one denial", after, before)
			}
			if e := f.lastEntry(); !strings.HasPrefix(e.Reason, tc.code+": ") {
				t.Errorf("audit entry reason %q, want the rule %s", e.Reason, tc.code)
			}
		})
	}

	// Relative times are the service's: with its clock a day ahead of this
	// machine's, "+1h" ends an hour after the service's now.
	f.clock.Advance(24 * time.Hour)
	late := f.roleToken("ci-late", "deploy")
	r, _, cert := f.userCert(late, api.CertRequest{PublicKey: key, Role: "deploy", ValidBefore: "+1h"})
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.err.Error)
	}
	if got, want := time.Unix(int64(cert.ValidBefore), 0), f.clock.Now().Add(time.Hour); want.Sub(got) < 0 || want.Sub(got) > 3*time.Second {
		t.Errorf("valid before %s, want the service's now + 1h = %s", got.UTC(), want.UTC())
	}
	f.verifyAudit()
}

// TestLoginValidityWindow: `sshca login --validity` asks the service for
// the window (the seed workflow, -5m:+1w, is the relative form), and a
// window beyond max_ttl is refused with the rule.
func TestLoginValidityWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "ci.token")
	if err := os.WriteFile(tokFile, []byte(f.roleToken("ci", "deploy")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	login := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		base := []string{"login", "--server", f.ts.URL, "--ca-fingerprint", server.CertFingerprint(f.ts.Certificate().Raw), "--key", key, "--no-agent"}
		if args[0] != "--renew" {
			base = append(base, "--token-file", tokFile, "--role", "deploy")
		}
		code := cli.Run(context.Background(), append(base, args...), strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
		return code, stdout.String(), stderr.String()
	}
	start := f.clock.Now().Truncate(time.Second)
	if code, out, errOut := login("--validity", "-5m:+1h"); code != 0 {
		t.Fatalf("login --validity: exit %d: %s %s", code, out, errOut)
	}
	data, err := os.ReadFile(key + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*ssh.Certificate)
	from, to := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	if d := from.Sub(start.Add(-10 * time.Minute)); d < 0 || d > 3*time.Second {
		t.Errorf("valid after %s, want now - 5m - backdate", from.UTC())
	}
	if d := to.Sub(start.Add(time.Hour)); d < 0 || d > 3*time.Second {
		t.Errorf("valid before %s, want now + 1h", to.UTC())
	}
	// An absolute end, in local time as sign takes it, sent as RFC 3339.
	end := f.clock.Now().Add(40 * time.Minute).Truncate(time.Second)
	if code, out, errOut := login("--valid-until", end.Local().Format("2006-01-02T15:04:05")); code != 0 {
		t.Fatalf("login --valid-until: exit %d: %s %s", code, out, errOut)
	}
	data, _ = os.ReadFile(key + "-cert.pub")
	pub, _, _, _, _ = ssh.ParseAuthorizedKey(data)
	if got := time.Unix(int64(pub.(*ssh.Certificate).ValidBefore), 0); !got.Equal(end) {
		t.Errorf("valid before %s, want %s", got.UTC(), end.UTC())
	}
	code, out, errOut := login("--validity", "-5m:+1w")
	if code != 1 || !strings.Contains(errOut, "ttl-exceeds-max") || !strings.Contains(errOut, "beyond max_ttl 1h") {
		t.Errorf("login --validity beyond max_ttl: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := login("--renew", "--validity", "+1h"); code != 2 || !strings.Contains(errOut, "--renew takes no validity window") {
		t.Errorf("login --renew --validity: exit %d: %s", code, errOut)
	}
	if code, _, errOut := login("--ttl", "1h", "--valid-until", "+1h"); code != 2 || !strings.Contains(errOut, "not both") {
		t.Errorf("login --ttl --valid-until: exit %d: %s", code, errOut)
	}
}
