package service

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// TestExpiryMetrics scrapes the expiry gauges of the built `sshca serve`
// (issue 16) after issuing user certificates under generation 1, revoking
// one, rotating the user CA (generation 1 retiring), issuing under
// generation 2, and a server's report: each gauge has the value the store
// implies, on SQLite and on PostgreSQL.
func TestExpiryMetrics(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run("ok/"+backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				db = pgtest.NewDatabase(t)
			}
			testExpiryMetrics(t, newHome(t, db))
		})
	}
}

func testExpiryMetrics(t *testing.T, h *caHome) {
	dir := t.TempDir()
	_, c1 := h.SignUser(dir, "--role", "deploy", "--id", "a", "--ttl", "40m")
	_, c2 := h.SignUser(dir, "--role", "deploy", "--id", "b", "--ttl", "50m")
	h.Must("revoke", "--serial", strconv.FormatUint(c2.Serial, 10), "--reason", "test")
	h.Must("ca", "rotate", "--type", "user")
	h.Must("ca", "rotate", "--type", "user", "--promote")
	_, c3 := h.SignUser(dir, "--role", "deploy", "--id", "c", "--ttl", "20m")

	hostSigner := testkit.NewSigner(t)
	hostPub := filepath.Join(dir, "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(hostPub, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Must("sign", "host", "--role", "servers", "--id", "web", "--principals", "web-01.corp", "--ttl", "20h", "--out", filepath.Join(dir, "host-cert.pub"), hostPub)
	hostCert := e2etest.ReadCert(t, filepath.Join(dir, "host-cert.pub"))

	rep := h.serveBin(binary(t))
	hostExpiry := time.Unix(int64(hostCert.ValidBefore), 0)
	if err := rep.Client(t, "").ReportHost(t.Context(), hostCert, hostSigner, api.HostReport{KRLVersion: 0, CAKeys: []string{"SHA256:x"}, HostCertExpiry: hostExpiry}); err != nil {
		t.Fatal(err)
	}

	c := rep.Client(t, "")
	resp, err := c.HTTP.Get(c.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	value := func(series string) (float64, bool) {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("%s: %v", series, err)
		}
		return v, true
	}
	ts := func(c *ssh.Certificate) float64 { return float64(c.ValidBefore) }
	gen1Last := max(ts(c1), ts(c2)) // a revoked certificate is still trusted until it expires
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`sshca_ca_last_certificate_expiry_timestamp_seconds{generation="1",state="retiring",type="user"}`, gen1Last},
		{`sshca_ca_last_certificate_expiry_timestamp_seconds{generation="2",state="active",type="user"}`, ts(c3)},
		{`sshca_ca_last_certificate_expiry_timestamp_seconds{generation="1",state="active",type="host"}`, ts(hostCert)},
		{`sshca_ca_retire_deadline_timestamp_seconds{generation="1",type="user"}`, gen1Last + config.DefaultRetireGrace.Seconds()},
		{`sshca_certificates_outstanding{role="deploy",type="user"}`, 2},
		{`sshca_certificates_outstanding{role="servers",type="host"}`, 1},
		{`sshca_host_certificate_expiry_timestamp_seconds{host="web-01.corp"}`, float64(hostExpiry.Unix())},
		{`sshca_fleet_host_certificate_expiry_min_timestamp_seconds`, float64(hostExpiry.Unix())},
		{`sshca_host_krl_lag{host="web-01.corp"}`, 1},
		{`sshca_fleet_krl_lag_max`, 1},
		{`sshca_expiry_metrics_up`, 1},
	} {
		got, ok := value(tc.series)
		if !ok || got != tc.want {
			t.Errorf("%s = %v (present %v), want %v", tc.series, got, ok, tc.want)
		}
	}
	if _, ok := value(`sshca_ca_retire_deadline_timestamp_seconds{generation="2",type="user"}`); ok {
		t.Error("a retire deadline for the active generation")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", regexp.MustCompile(`(?m)^(#.*|go_.*|process_.*|promhttp_.*)\n`).ReplaceAll(body, nil))
	}
}
