package service

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestGracefulShutdown cancels serve's context while 50 requests are in
// flight. Every request either completes with 200 (its certificate is in the
// store, with its body, and in the audit log) or fails without a response;
// nothing is half-recorded, and serve exits 0.
func TestGracefulShutdown(t *testing.T) {
	const n = 50
	h := newHome(t, "")
	rep := h.serve()
	secret, _ := h.token("--role", "deploy", "--name", "ci", "--ttl", "1h")
	req := api.CertRequest{PublicKey: newKeyLine(t), Role: "deploy"}
	c := rep.Client(t, secret)

	var (
		mu       sync.Mutex
		ok       = map[uint64]bool{}
		refused  []error // responses other than 200: must not happen
		failed   int     // no response at all
		answered = make(chan struct{}, n)
		wg       sync.WaitGroup
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _, err := c.RequestCert(context.Background(), "user", req)
			mu.Lock()
			defer mu.Unlock()
			var ae *client.APIError
			switch {
			case err == nil:
				ok[resp.Serial] = true
				answered <- struct{}{}
			case errors.As(err, &ae):
				refused = append(refused, err)
			default:
				failed++
			}
		}()
	}
	// Shut down once a few have been answered, with the rest in flight.
	for i := 0; i < 5; i++ {
		<-answered
	}
	mu.Lock()
	inFlight := n - len(ok) - len(refused) - failed
	mu.Unlock()
	rep.Stop(t)
	wg.Wait()
	t.Logf("%d in flight at shutdown; %d answered with 200, %d failed without a response", inFlight, len(ok), failed)
	if inFlight == 0 {
		t.Fatal("no request was in flight when serve was cancelled")
	}
	// After the shutdown nothing answers.
	if _, _, err := c.RequestCert(context.Background(), "user", req); err == nil || errors.As(err, new(*client.APIError)) {
		t.Fatalf("request after shutdown: %v, want a connection error", err)
	}
	if len(refused) > 0 {
		t.Fatalf("%d requests got an error response during shutdown, e.g. %v", len(refused), refused[0])
	}
	if len(ok)+failed != n {
		t.Fatalf("%d + %d != %d", len(ok), failed, n)
	}

	st, err := sqlite.Open(context.Background(), filepath.Join(h.Dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	certs, err := st.ListCerts(context.Background(), store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := st.AuditEntries(context.Background(), store.AuditFilter{Action: audit.ActionIssue})
	if err != nil {
		t.Fatal(err)
	}
	inAudit := map[uint64]bool{}
	for _, e := range issued {
		inAudit[e.Serial] = true
	}
	for _, rec := range certs {
		if rec.Cert == "" || !inAudit[rec.Serial] {
			t.Errorf("serial %d half-recorded: body %d bytes, audited %v", rec.Serial, len(rec.Cert), inAudit[rec.Serial])
		}
		if !ok[rec.Serial] {
			t.Errorf("serial %d is in the store but no client received it", rec.Serial)
		}
	}
	if len(certs) != len(ok) || len(issued) != len(ok) {
		t.Errorf("%d certificates and %d cert.issue entries in the store, %d delivered", len(certs), len(issued), len(ok))
	}
	if out, errs, code := h.Run("audit", "verify"); code != 0 {
		t.Fatalf("audit verify: %s%s", out, errs)
	}
}
