package main

// The service suite: `sshca serve` as a child process, issuing user
// certificates over HTTPS on 127.0.0.1 to the load generator of loadgen.go,
// on SQLite and on a durable PostgreSQL, at 1, 8 and 32 concurrent clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// svcPolicy is the sshca.yaml of the measured service; %s is an optional
// database line. The rate limit is out of reach so that it never answers
// 429 to the load.
const svcPolicy = `backdate: 5m
%s
service:
  listen: 127.0.0.1:0
  rate_limit: 100000000
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
`

// svcClients are the concurrency levels, in order.
var svcClients = []int{1, 8, 32}

// svcLevels returns svcClients, or for diagnostics (a profile of one level)
// the levels SSHCA_BENCH_CLIENTS names, comma-separated ("batch": none,
// only the batch endpoint's; SSHCA_BENCH_BATCH=0 leaves that one out).
func svcLevels() []int {
	v := os.Getenv("SSHCA_BENCH_CLIENTS")
	if v == "" {
		return svcClients
	}
	if v == "batch" {
		return nil
	}

	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return svcClients
	}
	return out
}

// Targets (see the notes of the section).
const (
	svcTargetRefRatio = 0.25                   // SQLite@32 ÷ raw two-core SignCert rate
	svcTargetCPU      = 100 * time.Microsecond // server CPU per certificate, SQLite@32
	svcTargetP99      = 10 * time.Millisecond  // p99 with 8 clients, SQLite
	svcTargetPGRatio  = 1 / 1.5                // PostgreSQL@32 ÷ SQLite@32 (issue 17: within 1.5×)
	svcTargetRSS      = 200 << 20              // peak RSS of the service
	svcClockTicks     = 100                    // sysconf(_SC_CLK_TCK) on Linux
	svcStartTimeout   = 30 * time.Second
	svcStopTimeout    = 40 * time.Second
	svcCommandTimeout = 2 * time.Minute
	svcLogTailBytes   = 2000
	svcPrincipal      = "role-deploy"
	svcRole           = "deploy"
	svcCertTTL        = "10m"
)

// svcLevel runs one concurrency level against srv and measures it: clients
// each with one request of keys certificates in flight (1, or a batch);
// rates and CPU are per certificate, latencies per request. The progress
// line starts with logPrefix.
func svcLevel(ctx context.Context, o *options, logPrefix, name string, clients, keys int, target *loadTarget, srv *svcServer,
	maxN int, maxTime time.Duration) (svcMeasurement, *loadResult, error) {
	per := max(keys, 1)
	r, err := runLoad(ctx, target, loadLevel{Clients: clients, MaxN: max(maxN/per, clients), MaxTime: maxTime}, srv.cpu)
	if err != nil {
		return svcMeasurement{}, nil, fmt.Errorf("%w (server log: %s)", err, srv.logPath)
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return svcMeasurement{}, nil, err
	}
	certs := r.N * per
	m := svcMeasurement{Backend: name, Clients: clients, N: certs, Rate: float64(certs) / r.Elapsed.Seconds(),
		P50: r.percentile(0.50), P99: r.percentile(0.99), P999: r.percentile(0.999),
		ServerCPU: float64(r.ServerCPU.Microseconds()) / float64(certs),
		ClientCPU: float64(r.ClientCPU.Microseconds()) / float64(certs), PeakRSS: rss}
	batch := ""
	if per > 1 {
		m.Batch, batch = per, fmt.Sprintf(" × %d keys", per)
	}
	o.logf("%s %2d clients%s: %d certs in %v = %.0f/s, p50 %v p99 %v, server %.0f µs/cert, load-gen %.0f µs/cert, VmHWM %.1f MiB",
		logPrefix, clients, batch, m.N, r.Elapsed.Round(time.Millisecond), m.Rate, m.P50.Round(time.Microsecond), m.P99.Round(time.Microsecond),
		m.ServerCPU, m.ClientCPU, float64(rss)/(1<<20))
	return m, r, nil
}

// svcMeasurement is one backend at one concurrency level.
type svcMeasurement struct {
	Backend   string
	Clients   int
	Batch     int     // keys per request (the batch endpoint); 0 for one
	N         int     // certificates
	Rate      float64 // certificates per second
	P50       time.Duration
	P99       time.Duration
	P999      time.Duration
	ServerCPU float64 // µs of sshca serve CPU per certificate
	ClientCPU float64 // µs of this process's CPU per certificate
	PeakRSS   int64   // bytes, VmHWM of sshca serve after this level
}

// svcBackendResult is one backend's measurements and verdict on what it
// returned.
type svcBackendResult struct {
	Name     string
	Levels   []svcMeasurement
	Verified check
}

func runService(ctx context.Context, o *options) ([]section, error) {
	maxN, maxTime, nSubjects, refTime := 20000, 10*time.Second, 1000, 3*time.Second
	if o.Short {
		maxN, maxTime, nSubjects, refTime = 240, 5*time.Second, 300, 300*time.Millisecond
	}
	pgBin, pgErr := pgtest.FindBinDir()
	switch {
	case pgErr == nil:
	case errors.Is(pgErr, pgtest.ErrNoPostgres) && os.Getenv("CI") != "true":
		o.logf("service: %v: skipping the PostgreSQL rows", pgErr)
	default:
		return nil, fmt.Errorf("PostgreSQL is required (CI=true): %w", pgErr)
	}

	subj, err := newLoadSubjects(nSubjects, svcRole, svcCertTTL)
	if err != nil {
		return nil, err
	}
	workers := runtime.NumCPU()
	o.logf("service: reference: raw SignCert rate, ed25519 CA, %d goroutines, %v", workers, refTime)
	ref, err := signCertRate(ctx, "ed25519", workers, refTime)
	if err != nil {
		return nil, fmt.Errorf("reference SignCert rate: %w", err)
	}
	var backends []*svcBackendResult
	sqlite, err := svcRunBackend(ctx, o, "SQLite", "", subj, maxN, maxTime)
	if err != nil {
		return nil, err
	}
	backends = append(backends, sqlite)
	var pg *svcBackendResult
	if pgBin != "" {
		o.logf("service: starting a durable PostgreSQL from %s", pgBin)
		srv, err := pgtest.StartServerWith(ctx, pgtest.Options{Durable: true})
		if err != nil {
			return nil, err
		}
		url, err := srv.NewDatabase(ctx)
		if err == nil {
			pg, err = svcRunBackend(ctx, o, "PostgreSQL", url, subj, maxN, maxTime)
		}
		if serr := srv.Stop(); err == nil && serr != nil {
			err = fmt.Errorf("stop PostgreSQL: %w", serr)
		}
		if err != nil {
			return nil, err
		}
		backends = append(backends, pg)
	}
	return []section{svcSection(o, ref, workers, refTime, backends, maxN, maxTime)}, nil
}

// svcSection turns the measurements into the report: rows, checks, notes.
func svcSection(o *options, ref float64, workers int, refTime time.Duration, backends []*svcBackendResult, maxN int, maxTime time.Duration) section {
	sec := section{
		Title:   "Issuance service (HTTPS on 127.0.0.1, durable store and audit)",
		Command: "go run ./bench -suite service",
		Header: []string{"backend", "clients", "requests", "certs/s", "p50 ms", "p99 ms", "p99.9 ms",
			"server CPU µs/cert", "load-gen CPU µs/req", "server peak RSS MiB"},
	}
	if o.Short {
		sec.Command = "go run ./bench -short -suite service"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	var peak int64
	for _, b := range backends {
		for _, m := range b.Levels {
			clients := strconv.Itoa(m.Clients)
			if m.Batch > 0 {
				clients = fmt.Sprintf("%d × batch of %d keys", m.Clients, m.Batch)
			}
			sec.Rows = append(sec.Rows, []string{m.Backend, clients, strconv.Itoa(m.N),
				fmt.Sprintf("%.0f", m.Rate), ms(m.P50), ms(m.P99), ms(m.P999),
				fmt.Sprintf("%.0f", m.ServerCPU), fmt.Sprintf("%.0f", m.ClientCPU),
				fmt.Sprintf("%.1f", float64(m.PeakRSS)/(1<<20))})
			peak = max(peak, m.PeakRSS)
		}
	}
	sec.Rows = append(sec.Rows, []string{fmt.Sprintf("reference: raw `SignCert`, ed25519 CA, %d goroutines", workers),
		"—", "—", fmt.Sprintf("%.0f", ref), "—", "—", "—", "—", "—", "—"})

	level := func(b *svcBackendResult, clients int) *svcMeasurement {
		for i := range b.Levels {
			if b.Levels[i].Clients == clients && b.Levels[i].Batch == 0 {
				return &b.Levels[i]
			}
		}
		return &svcMeasurement{Clients: clients} // a level SSHCA_BENCH_CLIENTS left out: zeros
	}
	sq := backends[0]
	sq32, sq8 := level(sq, 32), level(sq, 8)
	sec.Checks = append(sec.Checks,
		check{Name: "SQLite, 32 clients: ≥ 25% of the raw two-core SignCert rate", Timing: true,
			OK:     sq32.Rate >= svcTargetRefRatio*ref,
			Detail: fmt.Sprintf("%.0f certs/s = %.1f%% of %.0f signatures/s", sq32.Rate, 100*sq32.Rate/ref, ref)},
		check{Name: "SQLite, 32 clients: server CPU per certificate < 100 µs", Timing: true,
			OK:     sq32.ServerCPU < float64(svcTargetCPU.Microseconds()),
			Detail: fmt.Sprintf("%.0f µs", sq32.ServerCPU)},
		check{Name: "SQLite, 8 clients: p99 < 10 ms", Timing: true,
			OK:     sq8.P99 < svcTargetP99,
			Detail: fmt.Sprintf("p99 %s ms", ms(sq8.P99))},
	)
	for _, m := range sq.Levels {
		if m.Batch == 0 {
			continue
		}
		sec.Checks = append(sec.Checks,
			check{Name: fmt.Sprintf("SQLite, batch endpoint (%d clients × %d keys): ≥ 25%% of the raw two-core SignCert rate", m.Clients, m.Batch), Timing: true,
				OK:     m.Rate >= svcTargetRefRatio*ref,
				Detail: fmt.Sprintf("%.0f certs/s = %.1f%% of %.0f signatures/s", m.Rate, 100*m.Rate/ref, ref)},
			check{Name: fmt.Sprintf("SQLite, batch endpoint (%d clients × %d keys): server CPU per certificate < 100 µs", m.Clients, m.Batch), Timing: true,
				OK:     m.ServerCPU < float64(svcTargetCPU.Microseconds()),
				Detail: fmt.Sprintf("%.0f µs", m.ServerCPU)})
	}
	if len(backends) > 1 {
		pg32 := level(backends[1], 32)
		sec.Checks = append(sec.Checks, check{Name: "PostgreSQL, 32 clients: within 1.5× of SQLite's throughput", Timing: true,
			OK:     pg32.Rate >= svcTargetPGRatio*sq32.Rate,
			Detail: fmt.Sprintf("%.0f vs %.0f certs/s = %.1f%%", pg32.Rate, sq32.Rate, 100*pg32.Rate/sq32.Rate)})
	}
	// RSS hardly depends on the machine's speed, so tests assert it.
	sec.Checks = append(sec.Checks, check{Name: "service peak RSS < 200 MiB", OK: peak < svcTargetRSS,
		Detail: fmt.Sprintf("%.1f MiB (largest VmHWM of `sshca serve` over all backends and levels)", float64(peak)/(1<<20))})
	for _, b := range backends {
		sec.Checks = append(sec.Checks, b.Verified)
	}

	sec.Notes = []string{
		fmt.Sprintf("Each backend has its own `sshca serve` (ed25519 CAs, `rate_limit` out of reach, JSON request log on) "+
			"with its durable store, whose audit chain is written in the same transaction as each serial: SQLite in WAL mode "+
			"with synchronous=FULL, or PostgreSQL with fsync, synchronous_commit and full_page_writes on. Per level, C "+
			"clients each keep one TLS connection alive and send one request at a time (a fresh ed25519 subject key from a pool "+
			"of distinct keys, role %s, ttl %s) after one untimed warm-up request, up to %d requests or %v; latency is from "+
			"writing the request to reading the whole response.", svcRole, svcCertTTL, maxN, maxTime),
		fmt.Sprintf("Reference: the raw `SignCert` rate of an ed25519 CA key on %d goroutines for %v, measured in the same run "+
			"just before the SQLite service starts; the first target is SQLite@32 certs/s ÷ that rate.", workers, refTime),
		"Server CPU µs/cert: utime+stime of the `sshca serve` process (/proc/PID/stat, 10 ms ticks) over the timed phase ÷ " +
			"certificates; PostgreSQL's own processes are not counted. Load-gen CPU µs/req: getrusage(RUSAGE_SELF) of the " +
			"whole bench process ÷ requests. Peak RSS: VmHWM of `sshca serve` after the level (it includes the levels before).",
		fmt.Sprintf("Batch rows: the batch endpoint (`POST /v1/certs/user/batch`), %d clients each with one request of %d keys in flight "+
			"(the same subject keys and role, one decision, signature, record and audit entry per key, the whole request recorded "+
			"in one transaction); certs/s and CPU per certificate, latency per request, load-gen CPU per certificate. The 25%% and "+
			"100 µs targets are the one-key API's; the batch rows say what automation that asks for many certificates at once gets.",
			svcBatchClients, svcBatchKeys),
		"PostgreSQL ratio: PostgreSQL@32 certs/s ÷ SQLite@32 certs/s. RSS target: the largest VmHWM of any level.",
		"Load average when the suite ended: " + loadAvg() + " (the load generator and the server share the machine's CPUs).",
	}
	if len(backends) == 1 {
		sec.Notes = append(sec.Notes, "PostgreSQL: not measured (no PostgreSQL server binaries on this machine).")
	}
	return sec
}

// svcRunBackend creates a home on the backend (db: "" for SQLite, else a
// PostgreSQL URL), serves it and measures every concurrency level.
func svcRunBackend(ctx context.Context, o *options, name, db string, subj *loadSubjects, maxN int, maxTime time.Duration) (*svcBackendResult, error) {
	dir := filepath.Join(o.Work, "service-"+strings.ToLower(name))
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	global := []string{"--home", home}
	dbLine := ""
	if db != "" {
		global = append([]string{"--database", db}, global...)
		dbLine = "database: " + db
	}
	sshca := func(args ...string) (string, error) { return svcCommand(ctx, o.SSHCA, append(global, args...)...) }
	if _, err := sshca("init"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(home, "sshca.yaml"), fmt.Appendf(nil, svcPolicy, dbLine), 0o600); err != nil {
		return nil, err
	}
	out, err := sshca("token", "create", "--role", svcRole, "--name", "bench", "--ttl", "1h")
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(out)
	if out, err = sshca("ca", "show", "--type", "user"); err != nil {
		return nil, err
	}
	var caKeys []ssh.PublicKey
	for rest := []byte(out); len(bytes.TrimSpace(rest)) > 0; {
		var k ssh.PublicKey
		if k, _, _, rest, err = ssh.ParseAuthorizedKey(rest); err != nil {
			return nil, fmt.Errorf("sshca ca show --type user: %w", err)
		}
		caKeys = append(caKeys, k)
	}

	logPath := filepath.Join(dir, "serve.log")
	serveArgs := append(global, "serve")
	if d := os.Getenv("SSHCA_BENCH_PROFILE_DIR"); d != "" {
		// Diagnostics: a CPU profile of this backend's whole run.
		serveArgs = append(serveArgs, "--cpuprofile", filepath.Join(d, "serve-"+strings.ToLower(name)+".pprof"))
	}
	srv, err := svcStart(ctx, o.SSHCA, serveArgs, logPath)
	if err != nil {
		return nil, err
	}
	o.logf("service: %s: sshca serve (pid %d) on %s, log %s", name, srv.pid, srv.addr, logPath)
	batch, err := newBatchTarget(srv.addr, srv.fingerprint, token, subj, svcBatchKeys)
	if err != nil {
		srv.stop()
		return nil, err
	}
	res, runErr := svcMeasure(ctx, o, name, srv, newLoadTarget(srv.addr, srv.fingerprint, token, "/v1/certs/user", subj), batch,
		subj, caKeys, maxN, maxTime)
	if err := srv.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return nil, fmt.Errorf("%s: %w", name, runErr)
	}
	return res, nil
}

// svcMeasure runs every level against a started server and verifies what
// came back.
func svcMeasure(ctx context.Context, o *options, name string, srv *svcServer, target, batch *loadTarget, subj *loadSubjects,
	caKeys []ssh.PublicKey, maxN int, maxTime time.Duration) (*svcBackendResult, error) {
	res := &svcBackendResult{Name: name}
	v := newSvcVerifier(subj, caKeys)
	for _, c := range svcLevels() {
		m, r, err := svcLevel(ctx, o, "service: "+name+",", name, c, 1, target, srv, maxN, maxTime)
		if err != nil {
			return nil, fmt.Errorf("%d clients: %w", c, err)
		}
		res.Levels = append(res.Levels, m)
		v.add(r)
	}
	if batch != nil && os.Getenv("SSHCA_BENCH_BATCH") != "0" {
		m, r, err := svcLevel(ctx, o, "service: "+name+",", name, svcBatchClients, svcBatchKeys, batch, srv, maxN, maxTime)
		var se *loadStatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			// An sshca from before the batch endpoint (-sshca OLD).
			o.logf("service: %s: no batch endpoint (HTTP 404): batch row skipped", name)
			res.Verified = v.verdict(name)
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res.Levels = append(res.Levels, m)
		v.addMany(r, svcBatchKeys, func(b loadBody) ([]uint64, error) { return v.verifyBatch(b, svcBatchKeys) })
	}
	res.Verified = v.verdict(name)
	return res, nil
}

// svcVerifier checks, after the clock has stopped, every response of a
// backend: it parses, is a user certificate for the key that was sent,
// signed by the user CA and valid now for the role's principal, with a
// serial no other response had; and as many came back as were sent.
type svcVerifier struct {
	subj    *loadSubjects
	checker *ssh.CertChecker
	tally
}

// tally counts the verified responses of a server and their serials.
type tally struct {
	serials map[uint64]bool
	sent    int
	ok      int
	errs    []error
}

// addAll verifies the bodies of one run with verify (in parallel: ed25519
// verification is the cost) and records their serials, refusing one seen
// before.
func (t *tally) addAll(r *loadResult, verify func(loadBody) (uint64, error)) {
	t.addMany(r, 1, func(b loadBody) ([]uint64, error) {
		serial, err := verify(b)
		return []uint64{serial}, err
	})
}

// addMany is addAll for responses of per certificates each (batches).
func (t *tally) addMany(r *loadResult, per int, verify func(loadBody) ([]uint64, error)) {
	if t.serials == nil {
		t.serials = map[uint64]bool{}
	}
	t.sent += r.Sent * per
	serials := make([][]uint64, len(r.Received))
	errs := make([]error, len(r.Received))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(r.Received); i = int(next.Add(1) - 1) {
				serials[i], errs[i] = verify(r.Received[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.errs = append(t.errs, err)
			continue
		}
		for _, s := range serials[i] {
			if t.serials[s] {
				t.errs = append(t.errs, fmt.Errorf("serial %d issued twice", s))
				continue
			}
			t.serials[s] = true
			t.ok++
		}
	}
}

func newSvcVerifier(subj *loadSubjects, caKeys []ssh.PublicKey) *svcVerifier {
	return &svcVerifier{
		subj: subj,
		checker: &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, k := range caKeys {
				if bytes.Equal(k.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		}},
	}
}

// add verifies the bodies of one run and records their serials.
func (v *svcVerifier) add(r *loadResult) { v.addAll(r, v.verify) }

func (v *svcVerifier) verify(b loadBody) (uint64, error) {
	var resp api.CertResponse
	if err := json.Unmarshal(b.Body, &resp); err != nil {
		return 0, fmt.Errorf("response body: %w: %.200q", err, b.Body)
	}
	return v.check(&resp, b.Key)
}

// check verifies one certificate object answered for subject key.
func (v *svcVerifier) check(resp *api.CertResponse, key int) (uint64, error) {
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(resp.Certificate))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return 0, fmt.Errorf("certificate line %.100q does not parse (%v)", resp.Certificate, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	switch {
	case !ok:
		return 0, fmt.Errorf("response %s holds a plain key, not a certificate", resp.RequestID)
	case cert.CertType != ssh.UserCert:
		return 0, fmt.Errorf("certificate %d is not a user certificate", cert.Serial)
	case !bytes.Equal(cert.Key.Marshal(), v.subj.Keys[key].Marshal()):
		return 0, fmt.Errorf("certificate %d certifies another key than the one sent", cert.Serial)
	case cert.Serial != resp.Serial || cert.Serial == 0:
		return 0, fmt.Errorf("certificate serial %d, response says %d", cert.Serial, resp.Serial)
	}
	if err := v.checker.CheckCert(svcPrincipal, cert); err != nil {
		return 0, fmt.Errorf("certificate %d: %w", cert.Serial, err)
	}
	return cert.Serial, nil
}

func (v *svcVerifier) verdict(backend string) check {
	c := check{Name: backend + ": every response verified"}
	if v.ok != v.sent {
		v.errs = append(v.errs, fmt.Errorf("%d requests sent, %d good certificates received", v.sent, v.ok))
	}
	if len(v.errs) == 0 {
		c.OK = true
		c.Detail = fmt.Sprintf("%d certificates (warm-ups included) for %d asked: each parses, certifies the key sent, "+
			"is signed by the user CA and valid for %s; all serials distinct", v.ok, v.sent, svcPrincipal)
		return c
	}
	c.Detail = fmt.Sprintf("%d problems, first: %v", len(v.errs), v.errs[0])
	return c
}

// svcCommand runs sshca with args and PATH as its whole environment and
// returns its stdout.
func svcCommand(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, svcCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = svcEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sshca %s: %w: %s", strings.Join(svcRedact(args), " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// svcRedact hides a --database URL in messages (it names the server only,
// but a URL is where a password would be).
func svcRedact(args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "--database" {
			out[i+1] = "(url)"
		}
	}
	return out
}

func svcEnv() []string { return []string{"PATH=" + os.Getenv("PATH")} }

// svcServer is a running `sshca serve` child process.
type svcServer struct {
	cmd         *exec.Cmd
	pid         int
	addr        string // 127.0.0.1:PORT
	fingerprint string
	logPath     string
	done        chan struct{} // closed when the process has exited
	stopped     bool
}

// svcStart starts `sshca args...` (args ending in serve), its stderr
// appended to logPath, and waits until it prints its address and TLS
// fingerprint.
func svcStart(ctx context.Context, bin string, args []string, logPath string) (*svcServer, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = svcEnv()
	cmd.Stdout, cmd.Stderr = pw, logf
	// Pdeathsig: the kernel kills the server should this process die
	// without stopping it. Setpgid keeps a terminal's ^C from reaching it
	// before the bench stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s := &svcServer{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	// The parent-death signal fires when the forking OS thread exits, not
	// the process, so fork from a locked thread that lives exactly as long
	// as the child (the goroutine never unlocks, so its thread ends with it).
	started := make(chan error, 1)
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	err = <-started
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start sshca serve: %w", err)
	}
	s.pid = cmd.Process.Pid

	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		defer pr.Close() // at EOF, when serve is gone: closing earlier would SIGPIPE it
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Serve prints nothing more; keep its stdout drained so that it never blocks.
	defer func() {
		go func() {
			for range lines {
			}
		}()
	}()
	timeout := time.NewTimer(svcStartTimeout)
	defer timeout.Stop()
	for s.addr == "" || s.fingerprint == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-s.done
				return nil, fmt.Errorf("sshca serve exited (%v) before listening:\n%s", cmd.ProcessState, s.logTail())
			}
			if v, ok := strings.CutPrefix(l, "TLS certificate fingerprint: "); ok {
				s.fingerprint = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "listening on https://"); ok {
				s.addr = strings.TrimSpace(v)
			}
		case <-timeout.C:
			s.kill()
			return nil, fmt.Errorf("sshca serve did not report its address within %v:\n%s", svcStartTimeout, s.logTail())
		case <-ctx.Done():
			s.kill()
			return nil, ctx.Err()
		}
	}
	return s, nil
}

// stop sends SIGTERM and waits for a clean exit (killing the server after
// svcStopTimeout).
func (s *svcServer) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(svcStopTimeout):
		s.kill()
		return fmt.Errorf("sshca serve did not stop within %v:\n%s", svcStopTimeout, s.logTail())
	}
	if !s.cmd.ProcessState.Success() {
		return fmt.Errorf("sshca serve ended with %v:\n%s", s.cmd.ProcessState, s.logTail())
	}
	return nil
}

func (s *svcServer) kill() {
	s.stopped = true
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *svcServer) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	if len(b) > svcLogTailBytes {
		b = b[len(b)-svcLogTailBytes:]
	}
	return string(b)
}

// cpu returns the server's user+system CPU time so far, all threads, from
// /proc/PID/stat (in clock ticks).
func (s *svcServer) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	// pid (comm) state ppid ... utime(14) stime(15): count after the
	// comm field, which may itself hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("server CPU: /proc/%d/stat: unexpected format", s.pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU: /proc/%d/stat: %w", s.pid, err)
	}
	return time.Duration(utime+stime) * time.Second / svcClockTicks, nil
}

// peakRSS returns VmHWM, the process's peak resident set, in bytes.
func (s *svcServer) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, fmt.Errorf("server RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server RSS: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("server RSS: no VmHWM in /proc/%d/status", s.pid)
}
