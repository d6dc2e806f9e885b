package service

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// TestReplicasOnPostgres is acceptance 3: two `sshca serve` replicas share
// one PostgreSQL database; 4,000 concurrent issuance requests split between
// them get 4,000 distinct serials and 4,000 cert.issue audit entries, the
// chain verifies, and after a revocation both serve the same KRL bytes.
func TestReplicasOnPostgres(t *testing.T) {
	const total, workers = 4000, 16
	n := total
	if testing.Short() {
		n = 400
	}
	db := pgtest.NewDatabase(t)
	h := newHome(t, db)
	// The replicas run as processes of the built binary when it can be built:
	// separate processes, like real replicas, and free of the race detector's
	// cost, which would otherwise dominate a 4,000-request run.
	bin := binary(t)
	a, b := h.serveBin(bin), h.serveBin(bin)
	secret, _ := h.token("--role", "deploy", "--name", "ci-load", "--ttl", "1h")
	admin, _ := h.token("--admin", "--name", "oncall", "--ttl", "1h")
	if a.Fingerprint != b.Fingerprint || a.URL == b.URL {
		t.Fatalf("replicas: %s %s / %s %s", a.URL, a.Fingerprint, b.URL, b.Fingerprint)
	}

	req := api.CertRequest{PublicKey: newKeyLine(t), Role: "deploy", TTL: "10m"}
	clients := []interface {
		RequestCert(context.Context, string, api.CertRequest) (*api.CertResponse, *ssh.Certificate, error)
	}{a.Client(t, secret), b.Client(t, secret)}

	start := time.Now()
	serials := make([][]uint64, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := clients[w%2]
			for i := w; i < n; i += workers {
				resp, _, err := c.RequestCert(context.Background(), "user", req)
				if err != nil {
					errs <- err
					return
				}
				serials[w] = append(serials[w], resp.Serial)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("issuance: %v", err)
	}
	t.Logf("%d certificates from 2 replicas in %s", n, time.Since(start).Round(time.Millisecond))

	seen := make(map[uint64]bool, n)
	for _, ss := range serials {
		for _, s := range ss {
			if s == 0 || seen[s] {
				t.Fatalf("serial %d duplicated or zero", s)
			}
			seen[s] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct serials, want %d", len(seen), n)
	}

	st, err := postgres.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	issued, err := st.AuditEntries(context.Background(), store.AuditFilter{Action: audit.ActionIssue})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != n {
		t.Fatalf("%d cert.issue audit entries, want %d", len(issued), n)
	}
	for _, e := range issued {
		if !seen[e.Serial] {
			t.Fatalf("audit entry %d names serial %d, which no client received", e.Seq, e.Serial)
		}
	}
	if out, errs, code := h.Run("audit", "verify"); code != 0 || !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify: exit %d: %s%s", code, out, errs)
	}

	// A revocation through one replica reaches the KRL of both.
	victim := serials[0][0]
	rresp, err := a.Client(t, admin).Revoke(context.Background(), api.RevocationRequest{Serial: victim, Reason: "test"})
	if err != nil || !rresp.Added {
		t.Fatalf("revoke: %+v %v", rresp, err)
	}
	var krls [2][]byte
	var etags [2]string
	for i, r := range []*e2etest.Server{a, b} {
		data, sig, etag, _, err := r.Client(t, "").KRL(context.Background(), "user", "")
		if err != nil || len(sig) == 0 {
			t.Fatalf("replica %d KRL: %v", i, err)
		}
		krls[i], etags[i] = data, etag
	}
	if !bytes.Equal(krls[0], krls[1]) || etags[0] != etags[1] {
		t.Fatalf("replicas serve different KRLs (%d and %d bytes, ETags %s %s)", len(krls[0]), len(krls[1]), etags[0], etags[1])
	}
	k, err := krl.Parse(krls[0])
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != rresp.KRLVersion {
		t.Errorf("KRL version %d, revocation said %d", k.Version, rresp.KRLVersion)
	}
	rec, err := st.GetCert(context.Background(), victim)
	if err != nil {
		t.Fatal(err)
	}
	vc, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if k.Check(vc.(*ssh.Certificate)) == nil {
		t.Fatalf("the shared KRL does not revoke serial %d", victim)
	}
}
