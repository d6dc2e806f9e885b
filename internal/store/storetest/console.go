package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

func runConsole(t *testing.T, open Opener) {
	t.Run("ok/console-certs", func(t *testing.T) { testConsoleCerts(t, open(t)) })
	t.Run("ok/console-hosts", func(t *testing.T) { testConsoleHosts(t, open(t)) })
	t.Run("ok/console-audit", func(t *testing.T) { testConsoleAudit(t, open(t)) })
}

func consoleStore(t *testing.T, st store.Store) store.ConsoleStore {
	t.Helper()
	cs, ok := st.(store.ConsoleStore)
	if !ok {
		t.Fatalf("%T is no store.ConsoleStore", st)
	}
	return cs
}

func serialsOf(p store.CertPage) []uint64 {
	var out []uint64
	for _, c := range p.Certs {
		out = append(out, c.Serial)
	}
	return out
}

// testConsoleCerts checks every filter, status, sort and the paging of
// QueryCerts against certificates made for it.
func testConsoleCerts(t *testing.T, st store.Store) {
	ctx := t.Context()
	cs := consoleStore(t, st)
	AddActiveKey(t, st, "SHA256:ca")
	now := time.Now().Truncate(time.Second)
	type spec struct {
		keyID, role, ident string
		princ              []string
		expires            time.Duration
		subject            string
	}
	specs := []spec{
		{"alice-1", "deploy", "alice", []string{"deploy", "web"}, time.Hour, "SHA256:k1"},  // valid
		{"alice-2", "deploy", "alice", []string{"deploy"}, 10 * time.Minute, "SHA256:k2"},  // expiring
		{"bob-1", "admin", "bob", []string{"root"}, -time.Minute, "SHA256:k3"},             // expired
		{"bob-2", "admin", "bob", []string{"root", "web"}, time.Hour, "SHA256:k4"},         // revoked by serial
		{"carol_%!", "deploy", "carol", []string{"c"}, 2 * time.Hour, "SHA256:k5"},         // revoked by key ID
		{"dave", "deploy", "dave", []string{"d"}, 2 * time.Hour, "SHA256:revoked-subject"}, // revoked by key
		{"eve", "deploy", "eve", []string{"e", `we"b`}, 3 * time.Hour, "SHA256:k7"},        // valid
		{"alicex", "deploy", "alice-x", []string{"deploy"}, 3 * time.Hour, "SHA256:k8"},    // another identity
	}
	serial := map[string]uint64{}
	for _, sp := range specs {
		r := rec(sp.keyID)
		r.Role, r.Principals, r.SubjectFingerprint = sp.role, sp.princ, sp.subject
		r.ValidAfter, r.ValidBefore = now.Add(-2*time.Hour), now.Add(sp.expires)
		r.Lineage = store.Lineage{Caller: "person", Identity: sp.ident}
		s, err := Issue(ctx, st, r, ev(audit.ActionIssue))
		if err != nil {
			t.Fatal(err)
		}
		serial[sp.keyID] = s
	}
	// A record from before lineages: only its requester names its identity.
	legacy := rec("legacy")
	legacy.Requester, legacy.ValidBefore = "token:frank", now.Add(4*time.Hour)
	s, err := Issue(ctx, st, legacy, ev(audit.ActionIssue))
	if err != nil {
		t.Fatal(err)
	}
	serial["legacy"] = s
	if _, err := st.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: serial["bob-2"], Hi: serial["bob-2"], Reason: "lost"}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeKeyID, KeyID: "carol_%!"}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	ids := func(names ...string) []uint64 {
		var out []uint64
		for _, n := range names {
			out = append(out, serial[n])
		}
		return out
	}
	base := store.CertQuery{Now: now, RevokedKeys: []string{"SHA256:revoked-subject"}}
	for _, tc := range []struct {
		name string
		edit func(q *store.CertQuery)
		want []uint64
	}{
		{"all", func(q *store.CertQuery) {}, ids("alice-1", "alice-2", "bob-1", "bob-2", "carol_%!", "dave", "eve", "alicex", "legacy")},
		{"identity", func(q *store.CertQuery) { q.Identity = "alice" }, ids("alice-1", "alice-2")},
		{"role", func(q *store.CertQuery) { q.Role = "admin" }, ids("bob-1", "bob-2")},
		{"principal", func(q *store.CertQuery) { q.Principal = "web" }, ids("alice-1", "bob-2")},
		{"principal-quote", func(q *store.CertQuery) { q.Principal = `we"b` }, ids("eve")},
		{"key-id-prefix", func(q *store.CertQuery) { q.KeyID = "alice" }, ids("alice-1", "alice-2", "alicex")},
		{"key-id-not-substring", func(q *store.CertQuery) { q.KeyID = "lice" }, nil},
		{"key-id-wildcards-literal", func(q *store.CertQuery) { q.KeyID = "carol_%" }, ids("carol_%!")},
		{"key-id-wildcards-literal-2", func(q *store.CertQuery) { q.KeyID = "c_" }, nil},
		{"identity-legacy-requester", func(q *store.CertQuery) { q.Identity = "frank" }, ids("legacy")},
		{"identity-kind-name", func(q *store.CertQuery) { q.Identity = "token:frank" }, ids("legacy")},
		{"serial", func(q *store.CertQuery) { q.Serial = serial["eve"] }, ids("eve")},
		{"valid", func(q *store.CertQuery) { q.Status = store.CertValid }, ids("alice-1", "alice-2", "eve", "alicex", "legacy")},
		{"expiring", func(q *store.CertQuery) { q.Status, q.Within = store.CertExpiring, 30*time.Minute }, ids("alice-2")},
		{"expired", func(q *store.CertQuery) { q.Status = store.CertExpired }, ids("bob-1")},
		{"revoked", func(q *store.CertQuery) { q.Status = store.CertRevoked }, ids("bob-2", "carol_%!", "dave")},
		{"sort-expires-desc", func(q *store.CertQuery) { q.Sort, q.Desc, q.Role = "expires", true, "deploy" }, ids("legacy", "alicex", "eve", "dave", "carol_%!", "alice-1", "alice-2")},
		{"sort-key-id", func(q *store.CertQuery) { q.Sort, q.Identity = "key_id", "bob" }, ids("bob-1", "bob-2")},
		{"revoked-range", func(q *store.CertQuery) { q.Status, q.Role = store.CertRevoked, "admin" }, ids("bob-2")},
	} {
		q := base
		tc.edit(&q)
		p, err := cs.QueryCerts(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := serialsOf(p); !slices.Equal(got, tc.want) || p.More {
			t.Errorf("%s: serials %v (more %v), want %v", tc.name, got, p.More, tc.want)
		}
	}
	// Pages of 3, newest first, walk everything once.
	var all []uint64
	for off := 0; ; off += 3 {
		p, err := cs.QueryCerts(ctx, store.CertQuery{Desc: true, Limit: 3, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, serialsOf(p)...)
		if !p.More {
			break
		}
		if off > 30 {
			t.Fatal("paging does not end")
		}
	}
	want := ids("legacy", "alicex", "eve", "dave", "carol_%!", "bob-2", "bob-1", "alice-2", "alice-1")
	if !slices.Equal(all, want) {
		t.Fatalf("pages %v, want %v", all, want)
	}
	last, err := cs.LastExpiry(ctx, "user", "SHA256:ca")
	if err != nil || !last.Equal(now.Add(4*time.Hour)) {
		t.Fatalf("LastExpiry = %v, %v; want %v", last, err, now.Add(4*time.Hour))
	}
	if last, err := cs.LastExpiry(ctx, "user", "SHA256:other"); err != nil || !last.IsZero() {
		t.Fatalf("LastExpiry of a key that signed nothing = %v, %v", last, err)
	}
	// A serial range covering alice-1 and alice-2 revokes both.
	if _, err := st.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: serial["alice-1"], Hi: serial["alice-2"]}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	p, err := cs.QueryCerts(ctx, store.CertQuery{Now: now, Status: store.CertRevoked, Identity: "alice"})
	if err != nil || !slices.Equal(serialsOf(p), ids("alice-1", "alice-2")) {
		t.Fatalf("revoked by range: %v, %v", serialsOf(p), err)
	}
	p, err = cs.QueryCerts(ctx, store.CertQuery{Now: now, Status: store.CertValid, Identity: "alice"})
	if err != nil || len(p.Certs) != 0 {
		t.Fatalf("valid after the range: %v, %v", serialsOf(p), err)
	}
	for _, q := range []store.CertQuery{{Sort: "nope"}, {Status: "nope"}, {Sort: "role"}} {
		if _, err := cs.QueryCerts(ctx, q); err == nil {
			t.Errorf("query %+v accepted", q)
		}
	}
}

func testConsoleHosts(t *testing.T, st store.Store) {
	ctx := t.Context()
	cs := consoleStore(t, st)
	ss, ok := st.(store.ServiceStore)
	if !ok {
		t.Skip("not a service store")
	}
	now := time.Now().Truncate(time.Second)
	for i := range 7 {
		h := store.Host{Name: fmt.Sprintf("web-%d", i), LastSeen: now.Add(-time.Duration(i) * time.Hour), KRLVersion: uint64(3 + i%2),
			CAKeys: []string{"SHA256:u"}, HostCertExpiry: now.Add(time.Duration(i) * 24 * time.Hour), Stale: i == 6, HostCertCA: []string{"SHA256:a", "SHA256:b"}[i%2]}
		if err := ss.ReportHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	names := func(p store.HostPage) []string {
		var out []string
		for _, h := range p.Hosts {
			out = append(out, h.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    store.HostQuery
		want []string
	}{
		{"below-krl", store.HostQuery{BelowKRL: 4}, []string{"web-0", "web-2", "web-4", "web-6"}},
		{"stale", store.HostQuery{Stale: true}, []string{"web-6"}},
		{"silent", store.HostQuery{SilentSince: now.Add(-150 * time.Minute)}, []string{"web-3", "web-4", "web-5", "web-6"}},
		{"cert-before", store.HostQuery{CertBefore: now.Add(36 * time.Hour)}, []string{"web-0", "web-1"}},
		{"name-sort-desc", store.HostQuery{Name: "web-", Sort: "last_seen", Limit: 2}, []string{"web-6", "web-5"}},
	} {
		p, err := cs.QueryHosts(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := names(p); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if tc.q.Limit == 2 && !p.More {
			t.Errorf("%s: no more after a full page", tc.name)
		}
	}
	f, err := cs.SummarizeFleet(ctx, now.Add(-150*time.Minute), now.Add(36*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f.Total != 7 || f.Stale != 1 || f.Silent != 4 || f.CertExpiring != 2 {
		t.Fatalf("summary %+v", f)
	}
	if want := []store.Count{{Key: "4", N: 3}, {Key: "3", N: 4}}; !slices.Equal(f.ByKRL, want) {
		t.Fatalf("by KRL %v, want %v", f.ByKRL, want)
	}
	if want := []store.Count{{Key: "SHA256:a", N: 4}, {Key: "SHA256:b", N: 3}}; !slices.Equal(f.ByHostCA, want) {
		t.Fatalf("by host CA %v, want %v", f.ByHostCA, want)
	}
}

func testConsoleAudit(t *testing.T, st store.Store) {
	ctx := t.Context()
	cs := consoleStore(t, st)
	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	for i := range 10 {
		e := audit.Entry{Time: hour.Add(time.Duration(i) * 20 * time.Minute), Actor: "oidc:alice", Action: audit.ActionIssue, Role: "deploy", Outcome: "ok"}
		if i%3 == 0 {
			e.Action, e.Outcome, e.Role = audit.ActionDeny, "denied", "admin"
		}
		if _, err := st.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Append(ctx, audit.Entry{Time: hour, Actor: "cli:root", Action: audit.ActionRevoke, Outcome: "ok", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	page, more, err := cs.QueryAudit(ctx, store.AuditQuery{Action: audit.ActionIssue, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 4 || !more || page[0].Seq != 9 || page[3].Seq != 5 {
		t.Fatalf("first page: %d entries (more %v), first seq %d", len(page), more, page[0].Seq)
	}
	page, more, err = cs.QueryAudit(ctx, store.AuditQuery{Action: audit.ActionIssue, Limit: 4, Before: page[3].Seq})
	if err != nil || len(page) != 2 || more || page[0].Seq != 3 || page[1].Seq != 2 {
		t.Fatalf("second page: %d entries (more %v), %v", len(page), more, err)
	}
	after, err := cs.AuditAfter(ctx, 4, 3)
	if err != nil || len(after) != 3 || after[0].Seq != 5 {
		t.Fatalf("AuditAfter: %d entries, %v", len(after), err)
	}
	if err := audit.VerifyFrom(after[0].Seq-1, after[0].PrevHash, after); err != nil {
		t.Fatalf("a part of the chain does not verify: %v", err)
	}
	hours, err := cs.AuditHours(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, h := range hours {
		got[fmt.Sprintf("%d/%s/%s", int(h.Hour.Sub(hour)/time.Hour), h.Role, h.Outcome)] = h.N
	}
	want := map[string]int{"0/admin/denied": 1, "0/deploy/ok": 2, "1/admin/denied": 1, "1/deploy/ok": 2, "2/admin/denied": 1, "2/deploy/ok": 2, "3/admin/denied": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hours %v, want %v", got, want)
	}
}
