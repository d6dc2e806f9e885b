package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/console"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/storetest"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// Scale of BenchmarkPages: the issue's "100,000 certificates and 10,000
// servers" (with one issuance audit entry per certificate, 1,000
// revocations and 5,000 denials).
const (
	benchCerts   = 100_000
	benchHosts   = 10_000
	benchRevoked = 1_000
	benchDenials = 5_000
)

// TestMain stops the PostgreSQL server of BenchmarkPagesPostgres, if one
// was started.
func TestMain(m *testing.M) { pgtest.Main(m) }

// BenchmarkPages measures the server time of each console page (the
// handler, in-process, from request to the last byte of HTML) on a SQLite
// home holding benchCerts certificates and benchHosts servers. Building the
// store takes about a minute and is not timed. Run it with
//
//	go test -run '^$' -bench Pages -benchtime 20x ./internal/console/
func BenchmarkPages(b *testing.B) {
	h := testhome.New(b, consolePolicy, testhome.Options{})
	benchPages(b, h.Config, h.Store)
}

// BenchmarkPagesPostgres is BenchmarkPages on PostgreSQL (pgtest's
// server; skipped without PostgreSQL, failed under CI).
func BenchmarkPagesPostgres(b *testing.B) {
	st, err := postgres.Open(b.Context(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	storetest.AddActiveKey(b, st, "SHA256:bench-user-ca")
	cfg, err := config.Parse([]byte(consolePolicy))
	if err != nil {
		b.Fatal(err)
	}
	benchPages(b, cfg, st)
}

func benchPages(b *testing.B, cfg *config.Config, st store.ServiceStore) {
	ctx := b.Context()
	keys, err := st.ListCAKeys(ctx, "user")
	if err != nil || len(keys) == 0 {
		b.Fatal(keys, err)
	}
	caFP := keys[0].Fingerprint
	now := time.Now().Truncate(time.Second)
	roles := []string{"deploy", "other", "secure", "personal"}
	const chunk = 2000
	for done := 0; done < benchCerts; done += chunk {
		first, err := st.ReserveSerials(ctx, chunk)
		if err != nil {
			b.Fatal(err)
		}
		items := make([]store.BatchItem, chunk)
		for i := range items {
			n := done + i
			serial := first + uint64(i)
			issued := now.Add(-time.Duration(benchCerts-n) * 30 * time.Second)
			user := fmt.Sprintf("user-%d", n%5000)
			rec := &store.CertRecord{Serial: serial, CAType: "user", CAFingerprint: caFP, Role: roles[n%len(roles)],
				KeyID: fmt.Sprintf("oidc:%s role=%s req=%016x", user, roles[n%len(roles)], n), Principals: []string{"role-deploy", "u-" + user},
				ValidAfter: issued.Add(-5 * time.Minute), ValidBefore: issued.Add(8 * time.Hour), SubjectFingerprint: fmt.Sprintf("SHA256:key%d", n),
				SubjectType: "ssh-ed25519", Requester: "oidc:" + user, IssuedAt: issued, Cert: fmt.Sprintf("ssh-ed25519-cert-v01@openssh.com AAAA%d", serial),
				Lineage: store.Lineage{Caller: "person", Identity: user, AuthTime: issued}}
			items[i] = store.BatchItem{Cert: rec, Event: audit.Entry{Time: issued, Actor: "oidc:" + user, Action: audit.ActionIssue,
				Role: rec.Role, KeyID: rec.KeyID, Outcome: "ok"}}
		}
		errs, err := st.CommitBatch(ctx, items)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	max, _ := st.MaxSerial(ctx)
	revs := make([]store.Revocation, benchRevoked)
	evs := make([]audit.Entry, benchRevoked)
	for i := range revs {
		s := max - uint64(i*37)
		revs[i] = store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: s, Hi: s, Reason: "bench", Actor: "cli:bench", CreatedAt: now, Expires: now.Add(8 * time.Hour)}
		evs[i] = audit.Entry{Time: now, Actor: "cli:bench", Action: audit.ActionRevoke, Serial: s, Outcome: "ok", Reason: "bench"}
	}
	if _, err := st.AddRevocations(ctx, revs, evs); err != nil {
		b.Fatal(err)
	}
	denials := make([]store.BatchItem, benchDenials)
	for i := range denials {
		denials[i] = store.BatchItem{Event: audit.Entry{Time: now.Add(-time.Duration(i) * 17 * time.Second), Actor: fmt.Sprintf("oidc:user-%d", i),
			Action: audit.ActionDeny, Role: roles[i%len(roles)], Outcome: "denied", Reason: "role-not-allowed: bench"}}
	}
	if _, err := st.CommitBatch(ctx, denials); err != nil {
		b.Fatal(err)
	}
	krl, err := st.KRLVersion(ctx, "user")
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchHosts {
		hs := store.Host{Name: fmt.Sprintf("web-%05d.corp", i), LastSeen: now.Add(-time.Duration(i%120) * time.Minute), KRLVersion: krl - uint64(i%3),
			CAKeys: []string{caFP}, HostCertExpiry: now.Add(time.Duration(i%30) * 24 * time.Hour), Stale: i%97 == 0, HostCertCA: caFP}
		if err := st.ReportHost(ctx, hs); err != nil {
			b.Fatal(err)
		}
	}

	c, err := console.New(console.Options{Config: cfg, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	link, _, err := console.NewLoginLink(ctx, st, "https://ca.test", "alice", "cli:bench", time.Now(), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(link)
	req := httptest.NewRequest("POST", "https://ca.test/ui/login", strings.NewReader(url.Values{"t": {u.Query().Get("t")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) == 0 {
		b.Fatalf("sign-in: %d", rec.Code)
	}
	get := func(b *testing.B, path string) string {
		req := httptest.NewRequest("GET", "https://ca.test"+path, nil)
		req.AddCookie(cookies[0])
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
		return rec.Body.String()
	}
	// The first audit pages verify the whole chain, 50,000 entries a
	// load (then only what was appended): not part of the steady state
	// measured below.
	for i := 0; ; i++ {
		start := time.Now()
		body := get(b, "/ui/audit")
		b.Logf("audit page %d, verifying the chain: %v", i+1, time.Since(start).Round(time.Millisecond))
		if !strings.Contains(body, "so far") {
			break
		}
		if i == 10 {
			b.Fatal("the chain is never verified through")
		}
	}

	mid := max - benchCerts/2
	for _, p := range []struct{ name, path string }{
		{"certs", "/ui/certs"},
		{"certs-identity", "/ui/certs?identity=user-4321"},
		{"certs-principal", "/ui/certs?principal=u-user-77"},
		{"certs-keyid-prefix", "/ui/certs?key_id=oidc%3Auser-42"},
		{"certs-status-revoked", "/ui/certs?status=revoked"},
		{"certs-status-expiring", "/ui/certs?status=expiring&within=1h"},
		{"certs-status-valid", "/ui/certs?status=valid"},
		{"certs-sort-expires", "/ui/certs?sort=expires&dir=asc"},
		{"certs-sort-key-id-page-100", "/ui/certs?sort=key_id&page=100"},
		{"certs-page-1000", "/ui/certs?page=1000"},
		{"cert", fmt.Sprintf("/ui/certs/%d", mid)},
		{"fleet", "/ui/fleet"},
		{"fleet-lagging", "/ui/fleet?show=lagging"},
		{"keys", "/ui/keys"},
		{"tokens", "/ui/tokens"},
		{"audit", "/ui/audit"},
		{"audit-denied", "/ui/audit?outcome=denied"},
	} {
		b.Run(p.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				n = len(get(b, p.path))
			}
			b.ReportMetric(float64(n), "html-bytes")
		})
	}
}
