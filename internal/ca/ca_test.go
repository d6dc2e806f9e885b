package ca_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
)

var roles = map[string]policy.Role{
	"deploy": {Name: "deploy", Type: policy.UserCert, Principals: []string{"role-deploy", "ci"}, DefaultTTL: 8 * time.Hour, MaxTTL: 12 * time.Hour,
		Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}},
	"servers": {Name: "servers", Type: policy.HostCert, Principals: []string{"*.corp"}, DefaultTTL: 24 * time.Hour, MaxTTL: 24 * time.Hour},
}

// newAuthority opens (or reopens) a store at path with a fixed CA key.
func newAuthority(t testing.TB, path string, caKey ed25519.PrivateKey) (*ca.Authority, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	sgn, err := signer.FromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := st.ListCAKeys(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		for _, typ := range []string{"user", "host"} {
			k := store.CAKey{CAType: typ, Generation: 1, State: store.StateActive, KeyType: "ed25519", Fingerprint: signer.Fingerprint(sgn.PublicKey()),
				PublicKey: string(ssh.MarshalAuthorizedKey(sgn.PublicKey())), Signer: "file", File: "x"}
			if err := st.AddCAKey(ctx, k, audit.Entry{Actor: "test", Action: audit.ActionInit, Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := &ca.Authority{Roles: roles, Backdate: 5 * time.Minute, Store: st, Rand: rand.Reader,
		LoadKey: func(context.Context, store.CAKey) (ssh.Signer, error) { return sgn, nil }}
	return a, st
}

func testKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	return testkit.NewSigner(t).PublicKey()
}

var caSeed = make([]byte, ed25519.SeedSize)

func TestSign(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a, _ := newAuthority(t, filepath.Join(t.TempDir(), "db"), ed25519.NewKeyFromSeed(caSeed))
	a.Now = func() time.Time { return now }
	cert, err := a.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "alice", PublicKey: testKey(t), Caller: ca.Admin("test")})
	if err != nil {
		t.Fatal(err)
	}
	if cert.Serial == 0 || cert.KeyId != "alice" || len(cert.ValidPrincipals) != 2 {
		t.Fatalf("cert = serial %d id %q principals %v", cert.Serial, cert.KeyId, cert.ValidPrincipals)
	}
	if got, want := time.Unix(int64(cert.ValidAfter), 0).UTC(), now.Add(-5*time.Minute); !got.Equal(want) {
		t.Errorf("ValidAfter = %v, want %v (backdated 5m)", got, want)
	}
	if got, want := time.Unix(int64(cert.ValidBefore), 0).UTC(), now.Add(8*time.Hour); !got.Equal(want) {
		t.Errorf("ValidBefore = %v, want %v", got, want)
	}
	if cert.CriticalOptions["source-address"] != "10.0.0.0/8" || len(cert.CriticalOptions) != 1 {
		t.Errorf("critical options = %v", cert.CriticalOptions)
	}
	if len(cert.Extensions) != 1 || cert.Extensions["permit-pty"] != "" {
		t.Errorf("extensions = %v", cert.Extensions)
	}
	checker := ssh.CertChecker{Clock: func() time.Time { return now }, SupportedCriticalOptions: []string{"source-address"}}
	if err := checker.CheckCert("ci", cert); err != nil {
		t.Errorf("x/crypto CheckCert: %v", err)
	}
}

func TestSignRefusals(t *testing.T) {
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), ed25519.NewKeyFromSeed(caSeed))
	for _, tc := range []struct {
		name string
		req  ca.Request
		rule string
	}{
		{"fail/unknown-role", ca.Request{Type: policy.UserCert, Role: "nope", KeyID: "x"}, "unknown-role"},
		{"fail/principal", ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "x", Principals: []string{"root"}}, "principal-not-allowed"},
		{"fail/ttl", ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "x", TTL: 13 * time.Hour}, "ttl-exceeds-max"},
		{"fail/host-role-for-user", ca.Request{Type: policy.UserCert, Role: "servers", KeyID: "x"}, "cert-type-mismatch"},
		{"fail/host-no-match", ca.Request{Type: policy.HostCert, Role: "servers", KeyID: "x", Principals: []string{"evil.com"}}, "host-principal-no-match"},
		{"fail/key-id-control", ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "a\nb"}, "bad-key-id"},
		{"fail/long-key-id", ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: strings.Repeat("k", ca.MaxKeyIDLen+1)}, "bad-key-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PublicKey = testKey(t)
			tc.req.Caller = ca.Admin("test")
			before, _ := st.MaxSerial(t.Context())
			_, err := a.Sign(t.Context(), tc.req)
			var de *policy.DenyError
			if !errors.As(err, &de) || de.Rule != tc.rule {
				t.Fatalf("err = %v, want rule %s", err, tc.rule)
			}
			after, _ := st.MaxSerial(t.Context())
			if after != before {
				t.Fatalf("serial moved %d -> %d on a refusal", before, after)
			}
			entries, _ := st.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionDeny})
			if len(entries) == 0 || entries[len(entries)-1].Outcome != "denied" {
				t.Fatalf("denial not audited: %v", entries)
			}
		})
	}
}

// TestSerialsConcurrentAndAfterKill signs 1,000 certificates from 8
// goroutines, then lets a child process sign until it is SIGKILLed, reopens
// the store and checks that the next serial is above everything seen.
func TestSerialsConcurrentAndAfterKill(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sshca.db")
	a, st := newAuthority(t, db, ed25519.NewKeyFromSeed(caSeed))
	key := testKey(t)
	const workers, total = 8, 1000
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var maxSeen uint64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				c, err := a.Sign(context.Background(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: fmt.Sprint("k", i), PublicKey: key, Caller: ca.Admin("test")})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				if seen[c.Serial] || c.Serial == 0 {
					errc <- fmt.Errorf("serial %d repeated or zero", c.Serial)
				}
				seen[c.Serial] = true
				maxSeen = max(maxSeen, c.Serial)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if len(seen) != total {
		t.Fatalf("%d distinct serials, want %d", len(seen), total)
	}
	st.Close()

	// A child process signs until killed.
	cmd := testkit.ChildTest(t, "TestHelperSignLoop", "SSHCA_TEST_SIGN_LOOP_DB="+db)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	got := 0
	for sc.Scan() && got < 50 {
		s, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			continue
		}
		if seen[s] {
			t.Fatalf("child reused serial %d", s)
		}
		seen[s] = true
		maxSeen = max(maxSeen, s)
		got++
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got < 50 {
		t.Fatalf("child printed only %d serials", got)
	}

	a2, st2 := newAuthority(t, db, ed25519.NewKeyFromSeed(caSeed))
	defer st2.Close()
	c, err := a2.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "after-kill", PublicKey: key, Caller: ca.Admin("test")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Serial <= maxSeen {
		t.Fatalf("serial after kill %d, not above max seen %d", c.Serial, maxSeen)
	}
	entries, _ := st2.AuditEntries(t.Context(), store.AuditFilter{})
	if err := audit.Verify(entries); err != nil {
		t.Fatalf("audit chain after kill: %v", err)
	}
	t.Logf("%d serials, child signed %d before SIGKILL, next serial %d", len(seen), got, c.Serial)
}

// TestHelperSignLoop is the child of TestSerialsConcurrentAndAfterKill.
func TestHelperSignLoop(t *testing.T) {
	if !testkit.IsChild(t) {
		t.Skip("helper process only")
	}
	db := os.Getenv("SSHCA_TEST_SIGN_LOOP_DB")
	a, _ := newAuthority(t, db, ed25519.NewKeyFromSeed(caSeed))
	key := testKey(t)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		c, err := a.Sign(context.Background(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: fmt.Sprint("child-", i), PublicKey: key, Caller: ca.Admin("test")})
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(c.Serial)
	}
}
