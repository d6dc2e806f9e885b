package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// DumpStore is a service store that can be dumped and loaded.
type DumpStore interface {
	store.ServiceStore
	store.Dumper
}

// DumpOpener returns a fresh, empty store. Each call must give an
// independent store; it may be of another backend than the last.
type DumpOpener func(t *testing.T) DumpStore

// RunDump checks store.Dumper: a populated store exported and imported
// into an empty one (from and to stores given by the openers, which may
// be of different backends) reads back the same in every table, its audit
// chain intact; the copy's serial counter is above every serial the source
// ever handed out; a store that is not empty is refused and left alone.
func RunDump(t *testing.T, from, to DumpOpener) {
	t.Run("ok/dump-roundtrip", func(t *testing.T) { testDumpRoundTrip(t, from(t), to(t), false) })
	t.Run("ok/dump-roundtrip-json", func(t *testing.T) { testDumpRoundTrip(t, from(t), to(t), true) })
	t.Run("ok/dump-empty-store", func(t *testing.T) { testDumpEmpty(t, from(t), to(t)) })
	t.Run("ok/dump-older-lacking-a-column", func(t *testing.T) { testDumpOlder(t, from(t), to(t)) })
	t.Run("fail/dump-into-non-empty", func(t *testing.T) { testDumpNotEmpty(t, from(t), to(t)) })
	t.Run("fail/dump-bad-records", func(t *testing.T) { testDumpBad(t, from(t), to(t)) })
}

// Populate fills st with one of everything a dump carries: two CA key
// generations per type after a rotation, certificates (one with a serial
// near the top of the range), serials reserved and never used, revocations
// of every kind (one pruned), tokens (one revoked, one consumed), a local
// user with two keys, a TOTP
// enrollment, hosts and the audit entries of all of it. It returns the
// highest serial it reserved.
func Populate(t testing.TB, st store.ServiceStore) uint64 {
	t.Helper()
	ctx := t.Context()
	now := time.Now().Truncate(time.Second)
	for _, ct := range []string{"user", "host"} {
		for gen, state := range map[int]string{1: store.StateActive, 2: store.StateNext} {
			k := store.CAKey{CAType: ct, Generation: gen, State: state, KeyType: "ed25519", Fingerprint: fmt.Sprintf("SHA256:%s-%d", ct, gen),
				PublicKey: fmt.Sprintf("ssh-ed25519 AAAA%s%d", ct, gen), Signer: "file", File: fmt.Sprintf("%s-ca-%d", ct, gen)}
			if err := st.AddCAKey(ctx, k, ev(audit.ActionInit)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.SetCAKeyStates(ctx, "user", map[int]string{1: store.StateRetiring, 2: store.StateActive}, ev(audit.ActionCAPromote)); err != nil {
		t.Fatal(err)
	}
	var serials []uint64
	for i := range 30 {
		r := rec(fmt.Sprint("cert-", i))
		r.CAFingerprint = "SHA256:user-2"
		if i%3 == 0 {
			r.Lineage = store.Lineage{Caller: "person", Identity: "alice", Groups: []string{"ops"}, MFA: true, AuthTime: now, Origin: 1}
		}
		s, err := Issue(ctx, st, r, ev(audit.ActionIssue))
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, s)
	}
	// Serials reserved and never used are never handed out again.
	first, err := st.ReserveSerials(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	top := first + 49
	revs := []store.Revocation{
		{CAType: "user", Kind: store.RevokeSerial, Lo: serials[0], Hi: serials[0], Expires: now.Add(time.Hour)},
		{CAType: "user", Kind: store.RevokeSerial, Lo: 1 << 62, Hi: math.MaxUint64},
		{CAType: "user", Kind: store.RevokeKeyID, KeyID: "cert-3"},
		{CAType: "host", Kind: store.RevokeKey, Value: "ssh-ed25519 AAAAkey"},
		{CAType: "user", Kind: store.RevokeSHA256, Value: "ab01"},
		{CAType: "user", Kind: store.RevokeCAKey, Value: "ssh-ed25519 AAAAold"},
		{CAType: "user", Kind: store.RevokeKeyID, KeyID: "pruned", Expires: now.Add(-time.Hour)},
	}
	for i, r := range revs {
		r.Reason, r.Actor = fmt.Sprint("reason ", i), "test"
		if _, err := st.AddRevocation(ctx, r, ev(audit.ActionRevoke)); err != nil {
			t.Fatal(err)
		}
	}
	// The last revocation is pruned: its ID must not be handed out again.
	if n, err := st.PruneRevocations(ctx, "user", now, ev(audit.ActionRevoke)); err != nil || n != 1 {
		t.Fatalf("PruneRevocations = %d, %v; want 1", n, err)
	}
	for i, kind := range []string{store.TokenRole, store.TokenAdmin, store.TokenEnroll} {
		tk := store.Token{ID: fmt.Sprintf("tok%013d", i), Name: "tok-" + kind, Kind: kind, Roles: []string{"deploy"}, Hash: "h",
			CreatedBy: "t", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if kind == store.TokenEnroll {
			tk.Principals = []string{"web1.corp"}
		}
		if err := st.CreateToken(ctx, tk, ev(audit.ActionToken)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RevokeToken(ctx, "tok0000000000001", now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if err := st.ConsumeToken(ctx, "tok0000000000002", now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	lu := store.LocalUser{Name: "lou", Groups: []string{"ops"}, CreatedBy: "cli:test", CreatedAt: now,
		Keys: []store.LocalUserKey{{Fingerprint: "SHA256:lou-1", PublicKey: "ssh-ed25519 AAAAlou1", AddedAt: now}, {Fingerprint: "SHA256:lou-2", PublicKey: "ssh-ed25519 AAAAlou2", AddedAt: now.Add(time.Second)}}}
	if err := st.AddLocalUser(ctx, lu, ev(audit.ActionAdmin)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTOTP(ctx, "alice", []byte("0123456789abcdef0123"), ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceTOTP(ctx, "alice", 1234); err != nil {
		t.Fatal(err)
	}
	if err := st.PutChallenge(ctx, "challenge-1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, h := range []store.Host{
		{Name: "web1.corp", LastSeen: now, KRLVersion: 3, CAKeys: []string{"SHA256:user-1", "SHA256:user-2"}, HostCertExpiry: now.Add(time.Hour), Detail: "ok", HostCertCA: "SHA256:host-1"},
		{Name: "web2.corp", LastSeen: now, Stale: true, Detail: "cannot reach"},
	} {
		if err := st.ReportHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

// dumpState is everything a dump carries through the store interface.
// everything a dump carries, read through the store interface.
type dumpState struct {
	UserKeys, HostKeys []store.CAKey
	Certs              []store.CertRecord
	UserRevs, HostRevs []store.Revocation
	UserKRL, HostKRL   uint64
	Tokens             []store.Token
	TOTPStep           uint64
	TOTPSecret         []byte
	Hosts              []store.Host
	LocalUsers         []store.LocalUser
	Audit              []audit.Entry
	HeadSeq            uint64
	HeadHash           string
	MaxSerial          uint64
}

func readDumpState(t *testing.T, st store.ServiceStore) dumpState {
	t.Helper()
	ctx := t.Context()
	var s dumpState
	var err error
	check := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	s.UserKeys, err = st.ListCAKeys(ctx, "user")
	check(err)
	s.HostKeys, err = st.ListCAKeys(ctx, "host")
	check(err)
	s.Certs, err = st.ListCerts(ctx, store.CertFilter{})
	check(err)
	s.UserRevs, err = st.ListRevocations(ctx, "user")
	check(err)
	s.HostRevs, err = st.ListRevocations(ctx, "host")
	check(err)
	s.UserKRL, err = st.KRLVersion(ctx, "user")
	check(err)
	s.HostKRL, err = st.KRLVersion(ctx, "host")
	check(err)
	s.Tokens, err = st.ListTokens(ctx)
	check(err)
	s.TOTPSecret, s.TOTPStep, err = st.GetTOTP(ctx, "alice")
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	check(err)
	s.Hosts, err = st.ListHosts(ctx)
	check(err)
	s.LocalUsers, err = st.ListLocalUsers(ctx)
	check(err)
	s.Audit, err = st.AuditEntries(ctx, store.AuditFilter{})
	check(err)
	s.HeadSeq, s.HeadHash, err = st.AuditHead(ctx)
	check(err)
	s.MaxSerial, err = st.MaxSerial(ctx)
	check(err)
	return s
}

// Copy exports from and imports the dump into to, through a JSON
// encoding of every record when viaJSON is set (as a backup archive does).
func Copy(ctx context.Context, from, to store.Dumper, viaJSON bool) (exported, imported store.DumpCounts, err error) {
	imp, err := to.BeginImport(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer imp.Rollback() //nolint:errcheck // a no-op after Commit
	add := func(r store.DumpRecord) error { return imp.Add(ctx, r) }
	var buf bytes.Buffer
	if viaJSON {
		enc := json.NewEncoder(&buf)
		add = func(r store.DumpRecord) error { return enc.Encode(r) }
	}
	exported, err = from.Export(ctx, add)
	if err != nil {
		return nil, nil, err
	}
	if viaJSON {
		dec := json.NewDecoder(&buf)
		dec.UseNumber()
		for {
			var r store.DumpRecord
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else if err != nil {
				return nil, nil, err
			}
			if err := imp.Add(ctx, r); err != nil {
				return nil, nil, err
			}
		}
	}
	imported, err = imp.Commit(ctx)
	return exported, imported, err
}

func testDumpRoundTrip(t *testing.T, from, to DumpStore, viaJSON bool) {
	ctx := t.Context()
	top := Populate(t, from)
	want := readDumpState(t, from)
	if err := audit.Verify(want.Audit); err != nil {
		t.Fatal(err)
	}
	exported, imported, err := Copy(ctx, from, to, viaJSON)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exported, imported); diff != "" {
		t.Errorf("rows exported and imported differ (-exported +imported):\n%s", diff)
	}
	counts, err := to.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exported, counts); diff != "" {
		t.Errorf("rows exported and counted on the target differ (-exported +target):\n%s", diff)
	}
	if exported["certs"] != 30 || exported["revocations"] != 6 || exported["audit"] != int64(len(want.Audit)) {
		t.Errorf("exported %v", exported)
	}
	got := readDumpState(t, to)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the copy differs (-source +copy):\n%s", diff)
	}
	if err := audit.Verify(got.Audit); err != nil {
		t.Errorf("the copy's audit chain: %v", err)
	}
	// The copy hands out serials above every one the source handed out or reserved.
	s, err := to.ReserveSerials(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s <= top {
		t.Errorf("the copy reserved serial %d; the source had reserved up to %d", s, top)
	}
	// A new revocation gets an ID the source never used, the pruned one included.
	if _, err := to.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeKeyID, KeyID: "after"}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	revs, err := to.ListRevocations(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	if newID := revs[len(revs)-1].ID; newID <= 7 {
		t.Errorf("new revocation ID %d reuses one of the source's 7", newID)
	}
	// The copy keeps writing on the same chain.
	after, err := to.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(after); err != nil {
		t.Errorf("after a write on the copy: %v", err)
	}
}

func testDumpEmpty(t *testing.T, from, to DumpStore) {
	ctx := t.Context()
	exported, _, err := Copy(ctx, from, to, true)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range exported {
		if n != 0 {
			t.Errorf("empty store exported %d rows of %s", n, table)
		}
	}
	// Still empty: a second import is accepted.
	if _, _, err := Copy(ctx, from, to, false); err != nil {
		t.Errorf("import into a store an empty dump went into: %v", err)
	}
}

func testDumpNotEmpty(t *testing.T, from, to DumpStore) {
	ctx := t.Context()
	Populate(t, from)
	AddActiveKey(t, to, "SHA256:other")
	before := readDumpState(t, to)
	_, _, err := Copy(ctx, from, to, false)
	if !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("import into a store with a CA key: %v, want ErrNotEmpty", err)
	}
	if diff := cmp.Diff(before, readDumpState(t, to)); diff != "" {
		t.Errorf("the refused target changed:\n%s", diff)
	}
	if _, err := from.BeginImport(ctx); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("import into the populated source: %v, want ErrNotEmpty", err)
	}
}

func testDumpBad(t *testing.T, from, to DumpStore) {
	ctx := t.Context()
	Populate(t, from)
	var recs []store.DumpRecord
	if _, err := from.Export(ctx, func(r store.DumpRecord) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	// Every case must leave the target empty and importable.
	tests := []struct {
		name   string
		change func([]store.DumpRecord) []store.DumpRecord
	}{
		{"fail/no-header", func(r []store.DumpRecord) []store.DumpRecord { return r[2:] }},
		{"fail/newer-version", func(r []store.DumpRecord) []store.DumpRecord {
			r[1] = store.DumpRecord{Table: r[1].Table, Row: []any{int64(store.DumpVersion + 1)}}
			return r
		}},
		{"fail/cut-short", func(r []store.DumpRecord) []store.DumpRecord { return r[:len(r)/2] }},
		{"fail/unknown-table", func(r []store.DumpRecord) []store.DumpRecord {
			return append(r, store.DumpRecord{Table: "secrets", Columns: []string{"x"}})
		}},
		{"fail/unknown-column", func(r []store.DumpRecord) []store.DumpRecord {
			for i := range r {
				if r[i].Table == "tokens" && r[i].Columns != nil {
					r[i].Columns = append(append([]string(nil), r[i].Columns[:len(r[i].Columns)-1]...), "owner")
				}
			}
			return r
		}},
		{"fail/wrong-type", func(r []store.DumpRecord) []store.DumpRecord {
			for i := range r {
				if r[i].Table == "certs" && r[i].Row != nil {
					row := append([]any(nil), r[i].Row...)
					row[0] = "one"
					r[i].Row = row
					break
				}
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.change(append([]store.DumpRecord(nil), recs...))
			imp, err := to.BeginImport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range bad {
				if err = imp.Add(ctx, r); err != nil {
					break
				}
			}
			if err == nil {
				_, err = imp.Commit(ctx)
			}
			_ = imp.Rollback()
			if err == nil {
				t.Fatal("accepted")
			}
			counts, cerr := to.Counts(ctx)
			if cerr != nil {
				t.Fatal(cerr)
			}
			for table, n := range counts {
				if n != 0 {
					t.Errorf("after a refused import, %s has %d rows", table, n)
				}
			}
		})
	}
}

// testDumpOlder: a dump from an sshca that predates a column (here the
// certificates' lineage) imports, the column taking its default.
func testDumpOlder(t *testing.T, from, to DumpStore) {
	ctx := t.Context()
	Populate(t, from)
	imp, err := to.BeginImport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Rollback() //nolint:errcheck // a no-op after Commit
	drop := -1
	_, err = from.Export(ctx, func(r store.DumpRecord) error {
		if r.Table == "certs" && r.Columns != nil {
			for i, c := range r.Columns {
				if c == "lineage" {
					drop = i
				}
			}
			r.Columns = append(append([]string(nil), r.Columns[:drop]...), r.Columns[drop+1:]...)
		} else if r.Table == "certs" {
			r.Row = append(append([]any(nil), r.Row[:drop]...), r.Row[drop+1:]...)
		}
		if r.Table == "local_users" || r.Table == "local_user_keys" {
			return nil // dumps from before local users have no such tables
		}
		return imp.Add(ctx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imp.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	certs, err := to.ListCerts(ctx, store.CertFilter{})
	if err != nil || len(certs) != 30 {
		t.Fatalf("%d certificates, %v", len(certs), err)
	}
	for _, c := range certs {
		if c.Lineage.Identity != "" {
			t.Fatalf("certificate %d has lineage %+v from a dump without lineages", c.Serial, c.Lineage)
		}
	}
	if us, err := to.ListLocalUsers(ctx); err != nil || len(us) != 0 {
		t.Fatalf("local users %v, %v from a dump without them", us, err)
	}
}
