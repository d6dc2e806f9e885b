package store_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/store"
)

func TestRowSeal(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 123456000, time.UTC)
	tok := store.Token{ID: "0123456789abcdef", Name: "ci", Kind: store.TokenRole, Roles: []string{"deploy"}, Hash: "aa", CreatedBy: "cli:root", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	seal := store.SealRow(&tok)
	for _, tc := range []struct {
		name   string
		change func(*store.Token)
		want   []string // columns named; nil: the seal matches
	}{
		{"ok/same", func(*store.Token) {}, nil},
		{"ok/nil-and-empty-slices-alike", func(t *store.Token) { t.Principals = []string{} }, nil},
		{"fail/hash", func(t *store.Token) { t.Hash = "bb" }, []string{"hash"}},
		{"fail/hash-and-roles", func(t *store.Token) { t.Hash, t.Roles = "bb", []string{"admin"} }, []string{"hash", "roles"}},
		{"fail/role-added", func(t *store.Token) { t.Roles = append(t.Roles, "x") }, []string{"roles"}},
		{"fail/roles-emptied", func(t *store.Token) { t.Roles = nil }, []string{"roles"}},
		{"fail/revoked-set", func(t *store.Token) { t.RevokedAt = now }, []string{"revoked_at"}},
		{"fail/one-microsecond", func(t *store.Token) { t.ExpiresAt = t.ExpiresAt.Add(time.Microsecond) }, []string{"expires_at"}},
		{"fail/created-by", func(t *store.Token) { t.CreatedBy = "cli:x" }, []string{"created_by"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tok
			c.Roles = slices.Clone(tok.Roles)
			tc.change(&c)
			match, cols := store.CheckRowSeal(&c, seal)
			if match != (tc.want == nil) {
				t.Fatalf("match = %v, want %v (columns %v)", match, tc.want == nil, cols)
			}
			slices.Sort(cols)
			if !slices.Equal(cols, tc.want) {
				t.Errorf("columns %v, want %v", cols, tc.want)
			}
		})
	}
	t.Run("fail/malformed-seal", func(t *testing.T) {
		if match, _ := store.CheckRowSeal(&tok, "v0 x"); match {
			t.Error("a malformed seal matches")
		}
	})
	t.Run("ok/field-added-later", func(t *testing.T) {
		// A field added to a row type later leaves the seals of rows
		// written before it (where it is zero) as they were.
		type before struct {
			Name string
			At   time.Time
		}
		type after struct {
			Name  string
			At    time.Time
			Extra string
		}
		old := store.SealRow(before{Name: "x", At: now})
		if match, cols := store.CheckRowSeal(after{Name: "x", At: now}, old); !match {
			t.Errorf("a new zero field breaks the old seal (%v)", cols)
		}
		if match, cols := store.CheckRowSeal(after{Name: "x", At: now, Extra: "y"}, old); match || !slices.Equal(cols, []string{"extra"}) {
			t.Errorf("a new field set outside sshca: match %v, columns %v", match, cols)
		}
	})
	t.Run("ok/nested-struct", func(t *testing.T) {
		c := store.CertRecord{Serial: 7, Lineage: store.Lineage{Caller: "person", Identity: "alice", AuthTime: now}}
		s := store.SealRow(&c)
		c.Lineage.Identity = "mallory"
		if match, cols := store.CheckRowSeal(&c, s); match || !slices.Equal(cols, []string{"lineage"}) {
			t.Errorf("lineage changed: match %v, columns %v", match, cols)
		}
	})
}

func TestDescribeRowKey(t *testing.T) {
	for key, want := range map[string]string{
		store.CertRowKey(42):         "certificate 42",
		store.TokenRowKey("00ff"):    "token 00ff",
		store.CAKeyRowKey("user", 2): "user CA generation 2",
		store.RevocationRowKey(9):    "revocation 9",
	} {
		if !store.IsRowKey(key) {
			t.Errorf("%q is not a row key", key)
		}
		if got := store.DescribeRowKey(key); got != want {
			t.Errorf("DescribeRowKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// BenchmarkSealCert is the cost a row seal adds to each issuance.
func BenchmarkSealCert(b *testing.B) {
	now := time.Now().UTC()
	c := store.CertRecord{Serial: 123456, CAType: "user", CAFingerprint: "SHA256:0123456789abcdef0123456789abcdef0123456789a", Role: "deploy",
		KeyID: "token:ci role=deploy req=0123456789abcdef01234567", Principals: []string{"deploy", "ops"}, ValidAfter: now, ValidBefore: now.Add(time.Hour),
		SubjectFingerprint: "SHA256:0123456789abcdef0123456789abcdef0123456789a", SubjectType: "ssh-ed25519", Requester: "token:ci", IssuedAt: now,
		Cert: "ssh-ed25519-cert-v01@openssh.com " + strings.Repeat("A", 900), Lineage: store.Lineage{Caller: "token", Identity: "ci", AuthTime: now}}
	b.ReportAllocs()
	for b.Loop() {
		store.SealRow(&c)
	}
}
