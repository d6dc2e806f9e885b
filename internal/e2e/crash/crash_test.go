package crash

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
)

// Kill test parameters: 20 kills per store (issue 7), a handful of clients,
// and a short random time between a server's start and its death so that
// both stores together take well under a minute.
const (
	kills      = 20
	workers    = 6
	minUptime  = 40 * time.Millisecond
	maxUptime  = 350 * time.Millisecond
	sampleSize = 64 // non-revoked certificates checked against each KRL
)

const policy = `backdate: 5m
service:
  listen: 127.0.0.1:0
  rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
`

// TestKillServe kills `sshca serve` with SIGKILL at random moments while
// workers issue user certificates (role token) and revoke serials they
// received (admin token). After every kill, with the server down, and after
// every restart, through the new server, it checks that nothing the clients
// were told was lost: no serial was handed out twice; every certificate a
// client received is in the store with the same body, carries a valid CA
// signature and has its cert.issue audit entry; `sshca audit verify` passes;
// every acknowledged revocation is in the KRL and no untouched certificate is.
func TestKillServe(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	for _, tc := range []struct {
		name     string
		database func(t *testing.T) string // "" means the home's SQLite file
	}{
		{name: "ok/sqlite", database: func(*testing.T) string { return "" }},
		{name: "ok/postgres", database: func(t *testing.T) string { return pgtest.NewDatabase(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runKillTest(t, tc.database(t))
		})
	}
}

// record is what a client was told.
type record struct {
	line string
	cert *ssh.Certificate
}

// ledger is the clients' side of the story: every certificate received
// (200), every revocation sent and every one acknowledged (200).
type ledger struct {
	mu        sync.Mutex
	received  map[uint64]record
	order     []uint64 // serials in the order received
	dups      []string // "serial N received twice"
	reported  int      // dups already reported
	attempted map[uint64]bool
	acked     map[uint64]bool
	verified  map[uint64]bool // signature and store checked at least once
	revVerify int             // acknowledged revocations checked in a KRL
	unexpect  []string        // API errors that a crash cannot explain

	certReqs, revokeReqs, netErrs, inflight, inflightAtKill atomic.Int64
}

func newLedger() *ledger {
	return &ledger{received: map[uint64]record{}, attempted: map[uint64]bool{}, acked: map[uint64]bool{}, verified: map[uint64]bool{}}
}

func (l *ledger) receive(serial uint64, line string, cert *ssh.Certificate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.received[serial]; ok {
		l.dups = append(l.dups, fmt.Sprintf("serial %d received twice (%s / %s)", serial, prev.cert.KeyId, cert.KeyId))
		return
	}
	l.received[serial] = record{line: line, cert: cert}
	l.order = append(l.order, serial)
}

// pickToRevoke marks a received, never revoked serial as attempted.
func (l *ledger) pickToRevoke(rng *rand.Rand) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 8 {
		if len(l.order) == 0 {
			return 0, false
		}
		s := l.order[rng.IntN(len(l.order))]
		if !l.attempted[s] {
			l.attempted[s] = true
			return s, true
		}
	}
	return 0, false
}

func (l *ledger) ack(serial uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[serial] = true
}

func (l *ledger) unexpected(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unexpect = append(l.unexpect, fmt.Sprintf(format, a...))
}

// snapshot is a consistent copy of the ledger to check against the store.
type snapshot struct {
	received  map[uint64]record
	attempted map[uint64]bool
	acked     []uint64
}

func (l *ledger) snapshot() snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := snapshot{received: make(map[uint64]record, len(l.received)), attempted: make(map[uint64]bool, len(l.attempted))}
	for k, v := range l.received {
		s.received[k] = v
	}
	for k := range l.attempted {
		s.attempted[k] = true
	}
	for k := range l.acked {
		s.acked = append(s.acked, k)
	}
	slices.Sort(s.acked)
	return s
}

// gate hands the current server's clients to the workers and holds them
// while the server is down.
type gate struct {
	mu  sync.Mutex
	cur *epoch
	up  chan struct{}
}

type epoch struct {
	user, admin *client.Client
}

func newGate() *gate { return &gate{up: make(chan struct{})} }

func (g *gate) wait(ctx context.Context) (*epoch, error) {
	for {
		g.mu.Lock()
		cur, up := g.cur, g.up
		g.mu.Unlock()
		if cur != nil {
			return cur, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *gate) open(e *epoch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur = e
	close(g.up)
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur != nil {
		g.cur = nil
		g.up = make(chan struct{})
	}
}

// worker issues certificates and, one time in three, revokes a serial some
// worker received.
func worker(ctx context.Context, g *gate, l *ledger, rng *rand.Rand) {
	for ctx.Err() == nil {
		ep, err := g.wait(ctx)
		if err != nil {
			return
		}
		if rng.IntN(3) == 0 {
			if serial, ok := l.pickToRevoke(rng); ok {
				l.revokeReqs.Add(1)
				l.inflight.Add(1)
				_, err := ep.admin.Revoke(ctx, api.RevocationRequest{Serial: serial, Reason: "crash test"})
				l.inflight.Add(-1)
				if err == nil {
					l.ack(serial)
				} else {
					classify(ctx, l, fmt.Sprintf("revoke %d", serial), err)
				}
				continue
			}
		}
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			l.unexpected("generate key: %v", err)
			return
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			l.unexpected("public key: %v", err)
			return
		}
		l.certReqs.Add(1)
		l.inflight.Add(1)
		resp, cert, err := ep.user.RequestCert(ctx, "user", api.CertRequest{
			PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), Role: "deploy", TTL: "30m"})
		l.inflight.Add(-1)
		if err != nil {
			classify(ctx, l, "issue", err)
			continue
		}
		if resp.Serial != cert.Serial || !bytes.Equal(cert.Key.Marshal(), sshPub.Marshal()) {
			l.unexpected("response serial %d / certificate serial %d / key mismatch", resp.Serial, cert.Serial)
			continue
		}
		l.receive(cert.Serial, resp.Certificate, cert)
	}
}

// classify sorts a failed call: a transport error is what a killed server
// causes; an HTTP error status is not.
func classify(ctx context.Context, l *ledger, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		l.unexpected("%s: %v", what, err)
		return
	}
	l.netErrs.Add(1)
	time.Sleep(2 * time.Millisecond) // the gate closes a moment after the kill
}

func runKillTest(t *testing.T, dbURL string) {
	bin := sshcaBin.Path(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SSHCA_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SSHCA_CRASH_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (set SSHCA_CRASH_SEED to repeat the schedule)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Now()

	tmp := t.TempDir()
	h := &e2etest.Home{T: t, Bin: bin, Dir: filepath.Join(tmp, "ca"), Env: e2etest.ChildEnv(tmp, "crash-test")}
	initArgs := []string{"init"}
	pol := policy
	if dbURL != "" {
		initArgs = append(initArgs, "--database", dbURL)
		pol = "database: " + dbURL + "\n" + pol
	}
	h.Must(initArgs...)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	userTok := strings.TrimSpace(h.Must("token", "create", "--role", "deploy", "--name", "crash-deploy", "--ttl", "1d"))
	adminTok := strings.TrimSpace(h.Must("token", "create", "--admin", "--name", "crash-admin", "--ttl", "1d"))
	caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.Must("ca", "show", "--type", "user")))
	if err != nil {
		t.Fatalf("ca show: %v", err)
	}
	v := &verifier{t: t, h: h, dbURL: dbURL, caPub: caPub, krlPath: filepath.Join(tmp, "revoked.krl")}
	logPath := filepath.Join(tmp, "serve.log")

	l := newLedger()
	g := newGate()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range workers {
		wrng := rand.New(rand.NewPCG(seed, uint64(i)+2))
		wg.Go(func() { worker(ctx, g, l, wrng) })
	}
	stopWorkers := func() { cancel(); wg.Wait() }
	defer stopWorkers()

	startServer := func() *e2etest.Server {
		t.Helper()
		p, err := h.Serve(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	clients := func(p *e2etest.Server) *epoch {
		t.Helper()
		uc, err := client.New(p.URL, p.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := client.New(p.URL, p.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		uc.Bearer, ac.Bearer = userTok, adminTok
		return &epoch{user: uc, admin: ac}
	}

	killed := 0
	for round := range kills {
		p := startServer()
		ep := clients(p)
		if round > 0 {
			// The restarted server serves every revocation acknowledged before the crash.
			v.servedKRL(ctx, ep.admin, l.snapshot())
		}
		g.open(ep)
		time.Sleep(minUptime + time.Duration(rng.Int64N(int64(maxUptime-minUptime))))
		l.inflightAtKill.Add(l.inflight.Load())
		p.Kill()
		g.shut()
		killed++
		v.check(l, fmt.Sprintf("after kill %d", killed))
		if t.Failed() {
			t.FailNow()
		}
	}
	// A last life: the restarted server's KRL, then a clean end and the final check.
	p := startServer()
	ep := clients(p)
	v.servedKRL(ctx, ep.admin, l.snapshot())
	stopWorkers()
	p.Kill()
	final := v.check(l, "at the end")
	v.oracle(final)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.received) == 0 || len(l.acked) == 0 {
		t.Errorf("the clients got %d certificates and %d revocation acknowledgements; the test proved nothing", len(l.received), len(l.acked))
	}
	storeName := "sqlite"
	if dbURL != "" {
		storeName = "postgres"
	}
	t.Logf("figures: kills %d (requests in flight at the kills: %d), requests sent %d (certificates %d, revocations %d, transport errors while the server died or was down %d)",
		killed, l.inflightAtKill.Load(), l.certReqs.Load()+l.revokeReqs.Load(), l.certReqs.Load(), l.revokeReqs.Load(), l.netErrs.Load())
	t.Logf("figures: certificates received %d, verified %d (store body, CA signature, cert.issue audit entry); revocations acknowledged %d, verified in KRLs %d times; audit entries %d",
		len(l.received), len(l.verified), len(l.acked), l.revVerify, final.auditEntries)
	t.Logf("figures: the store holds %d serials: %d received, %d recorded but killed before signing, %d signed but killed before the response",
		final.storeCerts, final.storeCerts-final.unsigned-final.undelivered, final.unsigned, final.undelivered)
	t.Logf("crash %s: %d kills, %d requests, %d certificates received and %d verified, %d revocations acknowledged and %d verified, %s",
		storeName, killed, l.certReqs.Load()+l.revokeReqs.Load(), len(l.received), len(l.verified), len(l.acked), len(final.ackedInKRL), time.Since(start).Round(time.Millisecond))
}

// verifier checks the store, the audit log and the KRLs against the ledger.
type verifier struct {
	t       *testing.T
	h       *e2etest.Home
	dbURL   string
	caPub   ssh.PublicKey
	krlPath string
}

// result is what one check saw.
type result struct {
	snap         snapshot
	krl          *krl.KRL
	ackedInKRL   []uint64
	auditEntries int
	// Serials the store holds: all, those without a body (the process died
	// between recording the serial and signing) and those signed but never
	// received (it died before the response got out).
	storeCerts, unsigned, undelivered int
}

func (v *verifier) openStore(ctx context.Context) (store.Store, error) {
	if v.dbURL != "" {
		return postgres.Open(ctx, v.dbURL)
	}
	return sqlite.Open(ctx, filepath.Join(v.h.Dir, "sshca.db"))
}

// check runs with the server down: the store, the audit chain (`sshca audit
// verify`) and a fresh KRL (`sshca krl`) must account for everything in the
// ledger.
func (v *verifier) check(l *ledger, when string) result {
	t := v.t
	t.Helper()
	snap := l.snapshot()
	res := result{snap: snap}

	// The two commands and the store reads below are independent; running
	// them side by side keeps twenty rounds short.
	type cmdResult struct {
		out, errs string
		code      int
	}
	var verifyRes, krlRes cmdResult
	var cmds sync.WaitGroup
	cmds.Go(func() {
		verifyRes.out, verifyRes.errs, verifyRes.code = v.h.Run("audit", "verify")
	})
	cmds.Go(func() {
		krlRes.out, krlRes.errs, krlRes.code = v.h.Run("krl", "--out", v.krlPath)
	})
	defer cmds.Wait()

	ctx := t.Context()
	st, err := v.openStore(ctx)
	if err != nil {
		t.Fatalf("%s: open store: %v", when, err)
	}
	defer st.Close()
	recs, err := st.ListCerts(ctx, store.CertFilter{CAType: "user"})
	if err != nil {
		t.Fatalf("%s: list certificates: %v", when, err)
	}
	bodies := make(map[uint64]string, len(recs))
	for _, r := range recs {
		if _, dup := bodies[r.Serial]; dup || r.Serial == 0 {
			t.Errorf("%s: store holds serial %d twice or a zero serial", when, r.Serial)
		}
		bodies[r.Serial] = r.Cert
		switch _, got := snap.received[r.Serial]; {
		case r.Cert == "":
			res.unsigned++
		case !got:
			res.undelivered++
		}
	}
	res.storeCerts = len(recs)
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("%s: audit entries: %v", when, err)
	}
	res.auditEntries = len(entries)
	issued := map[uint64]int{}
	for _, e := range entries {
		if e.Action == audit.ActionIssue && e.Outcome == "ok" {
			issued[e.Serial]++
		}
	}
	maxSerial, err := st.MaxSerial(ctx)
	if err != nil {
		t.Fatalf("%s: max serial: %v", when, err)
	}

	l.mu.Lock()
	for _, d := range l.dups[min(l.reported, len(l.dups)):] {
		t.Errorf("%s: %s", when, d)
	}
	for _, u := range l.unexpect {
		t.Errorf("%s: unexpected error (not explained by a crash): %s", when, u)
	}
	l.reported = len(l.dups)
	l.unexpect = nil
	l.mu.Unlock()

	checker := &ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), v.caPub.Marshal()) }}
	var missing, wrongBody, noAudit []uint64
	newlyVerified := []uint64{}
	l.mu.Lock()
	already := copySet(l.verified)
	l.mu.Unlock()
	for serial, rec := range snap.received {
		body, ok := bodies[serial]
		switch {
		case !ok:
			missing = append(missing, serial)
			continue
		case body != rec.line:
			wrongBody = append(wrongBody, serial)
			continue
		}
		if issued[serial] != 1 {
			noAudit = append(noAudit, serial)
			continue
		}
		if serial > maxSerial {
			t.Errorf("%s: serial %d above the store's highest serial %d", when, serial, maxSerial)
		}
		if !already[serial] {
			if err := checker.CheckCert("role-deploy", rec.cert); err != nil {
				t.Errorf("%s: certificate %d: %v", when, serial, err)
				continue
			}
			newlyVerified = append(newlyVerified, serial)
		}
	}
	report := func(what string, s []uint64) {
		if len(s) > 0 {
			slices.Sort(s)
			t.Errorf("%s: %d received certificates %s, e.g. serials %v", when, len(s), what, s[:min(len(s), 10)])
		}
	}
	report("are missing from the store", missing)
	report("differ from the store's body", wrongBody)
	report("lack exactly one cert.issue audit entry", noAudit)

	cmds.Wait()
	if r := verifyRes; r.code != 0 || !strings.Contains(r.out, "audit log intact") {
		t.Errorf("%s: sshca audit verify: exit %d: %s%s", when, r.code, r.out, r.errs)
	}
	if krlRes.code != 0 {
		t.Fatalf("%s: sshca krl: exit %d: %s", when, krlRes.code, krlRes.errs)
	}
	data, err := os.ReadFile(v.krlPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := krl.Parse(data)
	if err != nil {
		t.Fatalf("%s: sshca krl wrote a KRL that does not parse: %v", when, err)
	}
	res.krl = k
	res.ackedInKRL = v.checkKRL(k, snap, when+", sshca krl")

	l.mu.Lock()
	for _, s := range newlyVerified {
		l.verified[s] = true
	}
	l.revVerify += len(res.ackedInKRL)
	l.mu.Unlock()
	return res
}

func copySet(m map[uint64]bool) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkKRL asserts that every acknowledged revocation is in k and that a
// sample of certificates nobody tried to revoke is not. It returns the
// acknowledged serials it found revoked.
func (v *verifier) checkKRL(k *krl.KRL, snap snapshot, when string) []uint64 {
	t := v.t
	t.Helper()
	var found, lost []uint64
	for _, s := range snap.acked {
		if m := k.Check(snap.received[s].cert); m == nil {
			lost = append(lost, s)
		} else {
			found = append(found, s)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%s: %d acknowledged revocations are not in the KRL, e.g. serials %v", when, len(lost), lost[:min(len(lost), 10)])
	}
	n := 0
	for s, rec := range snap.received { // map order: a different sample each time
		if snap.attempted[s] {
			continue
		}
		if m := k.Check(rec.cert); m != nil {
			t.Errorf("%s: certificate %d was never revoked but the KRL says %s", when, s, m.Detail)
		}
		if n++; n == sampleSize {
			break
		}
	}
	return found
}

// servedKRL fetches the KRL from a restarted server and checks it.
func (v *verifier) servedKRL(ctx context.Context, admin *client.Client, snap snapshot) {
	t := v.t
	t.Helper()
	data, _, _, _, err := admin.KRL(ctx, "user", "")
	if err != nil {
		t.Fatalf("GET /v1/krl from the restarted server: %v", err)
	}
	k, err := krl.Parse(data)
	if err != nil {
		t.Fatalf("served KRL does not parse: %v", err)
	}
	v.checkKRL(k, snap, "KRL served after restart")
}

// oracle asks OpenSSH itself: the ssh-keygen -Q of every release must call
// a sample of the acknowledged revocations REVOKED and a sample of
// untouched certificates ok.
func (v *verifier) oracle(res result) {
	t := v.t
	t.Helper()
	dir := t.TempDir()
	var files []string
	want := map[string]bool{}
	add := func(s uint64, revoked bool) {
		p := filepath.Join(dir, fmt.Sprintf("%d-cert.pub", s))
		if err := os.WriteFile(p, []byte(res.snap.received[s].line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		want[p] = revoked
	}
	for _, s := range res.ackedInKRL[:min(len(res.ackedInKRL), 8)] {
		add(s, true)
	}
	n := 0
	for s := range res.snap.received {
		if !res.snap.attempted[s] && n < 8 {
			add(s, false)
			n++
		}
	}
	for _, rel := range opensshtest.All(t) {
		unseen := maps.Clone(want)
		out, _ := exec.Command(rel.Keygen, append([]string{"-Q", "-f", v.krlPath}, files...)...).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			// "FILE (FILE): REVOKED" or "FILE (FILE): ok"
			file, rest, ok := strings.Cut(line, " (")
			_, verdict, ok2 := strings.Cut(rest, "): ")
			if !ok || !ok2 {
				continue
			}
			if w, known := unseen[file]; known {
				if got := strings.Contains(verdict, "REVOKED"); got != w {
					t.Errorf("%s ssh-keygen -Q: %s: %s, want revoked=%v", rel, filepath.Base(file), verdict, w)
				}
				delete(unseen, file)
			}
		}
		for f := range unseen {
			t.Errorf("%s ssh-keygen -Q said nothing about %s:\n%s", rel, filepath.Base(f), out)
		}
	}
}
