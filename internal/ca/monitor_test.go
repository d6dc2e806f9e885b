package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestMonitorHostRetireDeadline: after a host CA rotation, the retire
// deadline /metrics shows for the retiring host generation is the one
// `ca retire --type host` enforces. A host certificate its host renewed
// under the new key no longer counts; one that was not renewed does, and
// once it is renewed too the generation may be retired at once.
func TestMonitorHostRetireDeadline(t *testing.T) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	const grace = time.Hour
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	signers := map[string]ssh.Signer{}
	addKey := func(typ string, gen int, state string) store.CAKey {
		t.Helper()
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sgn, err := signer.FromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		k := store.CAKey{CAType: typ, Generation: gen, State: state, KeyType: "ed25519", Fingerprint: signer.Fingerprint(sgn.PublicKey()),
			PublicKey: string(ssh.MarshalAuthorizedKey(sgn.PublicKey())), Signer: "file", File: "x"}
		signers[k.Fingerprint] = sgn
		if err := st.AddCAKey(ctx, k, audit.Entry{Time: now, Actor: "test", Action: audit.ActionInit, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	addKey("user", 1, store.StateActive)
	gen1 := addKey("host", 1, store.StateActive)

	roles := map[string]policy.Role{
		// renewal: any, so that the certificates this test signs as the
		// admin renew as sync renews an enrolled host's.
		"servers": {Name: "servers", Type: policy.HostCert, Principals: []string{"*.corp"}, DefaultTTL: 30 * 24 * time.Hour, MaxTTL: 52 * 7 * 24 * time.Hour, Renewal: policy.RenewAny},
	}
	a := &ca.Authority{Roles: roles, Backdate: 5 * time.Minute, Store: st, Rand: rand.Reader, Now: func() time.Time { return now },
		LoadKey: func(_ context.Context, k store.CAKey) (ssh.Signer, error) { return signers[k.Fingerprint], nil }}
	signHost := func(name string, ttl time.Duration) *ssh.Certificate {
		t.Helper()
		c, err := a.Sign(ctx, ca.Request{Caller: ca.Admin("root"), Type: policy.HostCert, Role: "servers", KeyID: name,
			Principals: []string{name}, TTL: ttl, PublicKey: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	web := signHost("web.corp", 52*7*24*time.Hour) // expires last
	db := signHost("db.corp", 26*7*24*time.Hour)

	// Rotate: gen 2 next, then active; gen 1 retiring.
	gen2 := addKey("host", 2, store.StateNext)
	if _, err := ca.Promote(ctx, st, "host", "test", now); err != nil {
		t.Fatal(err)
	}

	// deadline is what the gauge shows for host generation 1; retire what
	// ca retire says.
	deadline := func() time.Time {
		t.Helper()
		snap, err := ca.Monitor(ctx, st, grace, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range snap.Generations {
			if g.CAType == "host" && g.Generation == 1 {
				if g.State != store.StateRetiring {
					t.Fatalf("host generation 1 is %s", g.State)
				}
				return g.RetireDeadline
			}
		}
		t.Fatal("no host generation 1 in the snapshot")
		return time.Time{}
	}
	retireRefusal := func() string {
		t.Helper()
		// Retire without force never changes anything when it refuses;
		// check at the instant just before the deadline the gauge shows.
		err := ca.Retire(ctx, st, "host", 1, false, grace, "test", now)
		if err == nil {
			return ""
		}
		if !errors.Is(err, ca.ErrUnexpired) {
			t.Fatal(err)
		}
		return err.Error()
	}

	// Nothing renewed yet: web's certificate (gen 1) holds it back.
	want := web.ValidBefore
	if d := deadline(); !d.Equal(time.Unix(int64(want), 0).Add(grace)) {
		t.Errorf("deadline before any renewal = %v, want web's expiry + grace %v", d, time.Unix(int64(want), 0).Add(grace))
	}
	if msg := retireRefusal(); !strings.Contains(msg, deadline().UTC().Format(time.RFC3339)) {
		t.Errorf("ca retire says %q; the gauge shows %v", msg, deadline())
	}

	// web renews under the active key (what sync does after --promote):
	// only db, not yet renewed, holds gen 1 back now.
	renewed, err := a.Renew(ctx, ca.RenewRequest{Cert: web})
	if err != nil {
		t.Fatal(err)
	}
	if got := ssh.FingerprintSHA256(renewed.SignatureKey); got != gen2.Fingerprint {
		t.Fatalf("renewal signed by %s, want the active generation 2 %s", got, gen2.Fingerprint)
	}
	dbDeadline := time.Unix(int64(db.ValidBefore), 0).Add(grace)
	if d := deadline(); !d.Equal(dbDeadline) {
		t.Errorf("deadline after web renewed = %v, want db's expiry + grace %v", d, dbDeadline)
	}
	if msg := retireRefusal(); !strings.Contains(msg, dbDeadline.UTC().Format(time.RFC3339)) {
		t.Errorf("ca retire says %q; want it to agree with the gauge, %v", msg, dbDeadline)
	}

	// A host certificate signed by hand under gen 2 for db's name is no
	// renewal: db's gen 1 certificate still counts.
	signHost("db.corp", time.Hour)
	if d := deadline(); !d.Equal(dbDeadline) {
		t.Errorf("a hand-signed certificate moved the deadline to %v", d)
	}

	// db renews too: nothing holds gen 1 back; the gauge says now, and
	// ca retire succeeds without --force.
	if _, err := a.Renew(ctx, ca.RenewRequest{Cert: db}); err != nil {
		t.Fatal(err)
	}
	if d := deadline(); d.After(now) {
		t.Errorf("deadline after every host renewed = %v, want at most now %v", d, now)
	}
	if msg := retireRefusal(); msg != "" {
		t.Errorf("ca retire after every host renewed: %s", msg)
	}
	keys, err := st.ListCAKeys(ctx, "host")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Fingerprint == gen1.Fingerprint && k.State != store.StateRetired {
			t.Errorf("host generation 1 is %s after ca retire", k.State)
		}
	}
}
