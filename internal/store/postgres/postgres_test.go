package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlstore"
	"github.com/sshca/sshca/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string) *sqlstore.DB {
	t.Helper()
	st, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	storetest.RunService(t, func(t *testing.T) store.ServiceStore {
		return open(t, pgtest.NewDatabase(t))
	})
}

func issueEvent() audit.Entry {
	return audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionIssue, Outcome: "ok"}
}

func certRecord(keyID string) *store.CertRecord {
	now := time.Now().Truncate(time.Second)
	return &store.CertRecord{CAType: "user", CAFingerprint: "SHA256:ca", Role: "deploy", KeyID: keyID, Principals: []string{"a"},
		ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour), SubjectFingerprint: "SHA256:sub",
		SubjectType: "ssh-ed25519", Requester: "test", IssuedAt: now}
}

// TestReplicas runs two independently opened stores ("replicas") on one
// database, each issuing from several goroutines at once.
func TestReplicas(t *testing.T) {
	const replicas, workers, each = 2, 8, 63 // 2 × 504 certificates
	url := pgtest.NewDatabase(t)
	stores := make([]*sqlstore.DB, replicas)
	for i := range stores {
		stores[i] = open(t, url)
	}
	storetest.AddActiveKey(t, stores[0], "SHA256:ca")
	ctx := t.Context()
	var (
		mu   sync.Mutex
		seen = map[uint64]string{}
		wg   sync.WaitGroup
		errs = make(chan error, replicas*workers)
	)
	for r, st := range stores {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					keyID := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					ev := issueEvent()
					ev.KeyID = keyID
					s, err := storetest.Issue(ctx, st, certRecord(keyID), ev)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", keyID, err)
						return
					}
					mu.Lock()
					prev, dup := seen[s]
					seen[s] = keyID
					mu.Unlock()
					if dup {
						errs <- fmt.Errorf("serial %d issued to %s and %s", s, prev, keyID)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	const total = replicas * workers * each
	if len(seen) != total {
		t.Fatalf("%d distinct serials, want %d", len(seen), total)
	}
	all, err := stores[1].AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// The CA key's entry first, then one per certificate.
	if len(all) != total+1 {
		t.Fatalf("%d audit entries, want %d", len(all), total+1)
	}
	entries := all[1:]
	perSerial := map[uint64]int{}
	for _, e := range entries {
		perSerial[e.Serial]++
		if seen[e.Serial] != e.KeyID {
			t.Fatalf("audit entry %d: serial %d has key ID %q, issued to %q", e.Seq, e.Serial, e.KeyID, seen[e.Serial])
		}
	}
	for s := range seen {
		if perSerial[s] != 1 {
			t.Fatalf("serial %d has %d audit entries, want 1", s, perSerial[s])
		}
	}
	if err := audit.Verify(all); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := stores[0].AuditHead(ctx)
	if err != nil || seq != total+1 || hash != all[total].Hash {
		t.Fatalf("AuditHead = %d %s %v; want %d %s", seq, hash, err, total+1, all[total].Hash)
	}
	certs, err := stores[0].ListCerts(ctx, store.CertFilter{})
	if err != nil || len(certs) != total {
		t.Fatalf("ListCerts: %d records, %v; want %d", len(certs), err, total)
	}
	for _, c := range certs {
		if seen[c.Serial] != c.KeyID {
			t.Fatalf("certificate %d has key ID %q, issued to %q", c.Serial, c.KeyID, seen[c.Serial])
		}
	}
}

// TestReplicasSameRevocation checks that the same revocation added by two
// replicas at once is recorded once, with no unique-index error surfacing.
func TestReplicasSameRevocation(t *testing.T) {
	const n = 8
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	r := store.Revocation{CAType: "user", Kind: store.RevokeKeyID, KeyID: "mallory", Reason: "stolen", Actor: "t"}
	type result struct {
		added bool
		err   error
	}
	results := make(chan result, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		go func() {
			added, err := st.AddRevocation(ctx, r, audit.Entry{Time: time.Now(), Actor: "t", Action: audit.ActionRevoke, Outcome: "ok"})
			results <- result{added, err}
		}()
	}
	added := 0
	for range n {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		if res.added {
			added++
		}
	}
	if added != 1 {
		t.Fatalf("%d callers added the revocation, want 1", added)
	}
	if v, err := a.KRLVersion(ctx, "user"); err != nil || v != 1 {
		t.Fatalf("KRL version %d, %v; want 1", v, err)
	}
	if list, err := b.ListRevocations(ctx, "user"); err != nil || len(list) != 1 {
		t.Fatalf("ListRevocations = %v, %v; want one", list, err)
	}
}

// TestMigrate checks concurrent first opens and the migration bookkeeping.
func TestMigrate(t *testing.T) {
	t.Run("ok/concurrent-opens", func(t *testing.T) {
		const n = 6
		url := pgtest.NewDatabase(t)
		errs := make(chan error, n)
		for range n {
			go func() {
				st, err := postgres.Open(t.Context(), url)
				if err == nil {
					st.Close()
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		st := open(t, url)
		var versions, heads int
		var seq int64
		var hash string
		db := st.SQL()
		want := postgres.MigrationCount()
		if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != want || versions < 3 {
			t.Fatalf("schema_migrations rows = %d, %v; want %d (one per embedded migration)", versions, err, want)
		}
		if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(seq), MAX(hash) FROM audit_head`).Scan(&heads, &seq, &hash); err != nil {
			t.Fatal(err)
		}
		if heads != 1 || seq != 0 || hash != audit.GenesisHash {
			t.Fatalf("audit head rows=%d seq=%d hash=%s; want one seq-0 genesis row", heads, seq, hash)
		}
		if s, h, err := st.AuditHead(t.Context()); err != nil || s != 0 || h != "" {
			t.Fatalf("AuditHead of empty log = %d %q %v; want 0 \"\"", s, h, err)
		}
	})
	t.Run("fail/newer-schema", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		st := open(t, url)
		if _, err := st.SQL().ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
			t.Fatal(err)
		}
		_, err := postgres.Open(t.Context(), url)
		if err == nil || !strings.Contains(err.Error(), "newer than this sshca") {
			t.Fatalf("Open on a newer schema = %v, want a version error", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	base := pgtest.Start(t)
	tests := []struct {
		name, url, want string
		hidden          string // must not appear in the error
	}{
		{name: "fail/unparsable-url", url: "postgres://sshca:s3cret@127.0.0.1:notaport/x", want: "postgres: ", hidden: "s3cret"},
		{name: "fail/no-such-database", url: strings.Replace(base, "/postgres?", "/sshca_missing?", 1), want: "sshca_missing"},
		{name: "fail/nobody-listening", url: "postgres://sshca:s3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", want: "postgres: connect 127.0.0.1:1/x", hidden: "s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			st, err := postgres.Open(ctx, tt.url)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tt.hidden != "" && strings.Contains(err.Error(), tt.hidden) {
				t.Errorf("error %q leaks %q", err, tt.hidden)
			}
		})
	}
}

// TestDatabasesIndependent checks that pgtest.NewDatabase gives each caller
// its own database.
func TestDatabasesIndependent(t *testing.T) {
	a, b := open(t, pgtest.NewDatabase(t)), open(t, pgtest.NewDatabase(t))
	storetest.AddActiveKey(t, a, "SHA256:ca")
	if _, err := storetest.Issue(t.Context(), a, certRecord("only-in-a"), issueEvent()); err != nil {
		t.Fatal(err)
	}
	if n, err := b.MaxSerial(t.Context()); err != nil || n != 0 {
		t.Fatalf("second database MaxSerial = %d, %v; want 0", n, err)
	}
	// A unique violation surfaces as store.ErrExists through the dialect.
	k := store.CAKey{CAType: "user", Generation: 2, State: store.StateNext, KeyType: "ed25519", Fingerprint: "SHA256:x", PublicKey: "x", Signer: "file", File: "f"}
	e := audit.Entry{Time: time.Now(), Actor: "t", Action: audit.ActionInit, Outcome: "ok"}
	if err := a.AddCAKey(t.Context(), k, e); err != nil {
		t.Fatal(err)
	}
	if err := a.AddCAKey(t.Context(), k, e); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate CA key = %v, want ErrExists", err)
	}
}
