package main

// The scale suite: how the cost of the everyday commands grows with what
// the store holds. Each size gets its own CA home on the embedded store,
// filled through the one issuance path (ca.Authority.PrepareMany/Commit, as
// `sshca sign` batches are: policy, serials, sealed rows, chained audit),
// with the revocations of ca.RevokeAll and host reports as agents send
// them. Then every command runs as an operator runs it, a process of the
// sshca binary, timed with its own peak RSS.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// scaleBounds are the sizes one run measures.
type scaleBounds struct {
	sizes       []int // issued certificates per home
	revocations int   // revocations per home
	hosts       int   // reporting hosts per home
	cmdLimit    time.Duration
	fillLimit   time.Duration
}

// scaleMaxEnv caps the largest size of a full run (e.g. 100000 on a small
// machine); the table goes to 10^6.
const scaleMaxEnv = "SSHCA_BENCH_SCALE_MAX"

func scaleMode(o *options) (scaleBounds, error) {
	if o.Short {
		return scaleBounds{sizes: []int{500, 5_000}, revocations: 500, hosts: 500,
			cmdLimit: 2 * time.Minute, fillLimit: 3 * time.Minute}, nil
	}
	b := scaleBounds{sizes: []int{10_000, 100_000, 1_000_000}, revocations: 100_000, hosts: 10_000,
		cmdLimit: 10 * time.Minute, fillLimit: 30 * time.Minute}
	if v := os.Getenv(scaleMaxEnv); v != "" {
		limit, err := strconv.Atoi(v)
		if err != nil || limit < 1 {
			return b, fmt.Errorf("%s=%q: want a positive number of certificates", scaleMaxEnv, v)
		}
		var keep []int
		for _, n := range b.sizes {
			if n <= limit {
				keep = append(keep, n)
			}
		}
		b.sizes = keep
	}
	return b, nil
}

// scalePolicy is the home's sshca.yaml: one user role, long enough for
// certificates issued "two days ago" to be expired now.
const scalePolicy = `backdate: 1m
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 24h
    default_ttl: 1h
`

// scaleResult is one size's measurements.
type scaleResult struct {
	certs, revocations, hosts int
	active                    int // certificates valid at measurement time
	fill                      time.Duration
	dbBytes                   int64
	cmds                      map[string]krlProc // by column name
	serveStart                time.Duration
	serveRSS                  int64
	checks                    []check
}

// scaleColumns are the measured commands, in table order.
var scaleColumns = []string{"list --active", "list --id", "audit verify", "krl", "fleet status"}

func runScale(ctx context.Context, o *options) ([]section, error) {
	b, err := scaleMode(o)
	if err != nil {
		return nil, err
	}
	var rs []*scaleResult
	for _, n := range b.sizes {
		r, err := scaleOne(ctx, o, b, n)
		if err != nil {
			return nil, fmt.Errorf("scale %d: %w", n, err)
		}
		rs = append(rs, r)
	}
	return []section{scaleSection(o, b, rs)}, nil
}

func scaleOne(ctx context.Context, o *options, b scaleBounds, n int) (*scaleResult, error) {
	dir := filepath.Join(o.Work, "scale-"+strconv.Itoa(n))
	h := filepath.Join(dir, "home")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := benchExec(ctx, b.cmdLimit, nil, io.Discard, o.SSHCA, "--home", h, "init"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(h, home.ConfigFile), []byte(scalePolicy), 0o600); err != nil {
		return nil, err
	}
	r := &scaleResult{certs: n, revocations: b.revocations, hosts: b.hosts, cmds: map[string]krlProc{}}
	o.logf("scale: %d certificates, %d revocations, %d hosts: filling the store", n, b.revocations, b.hosts)
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, b.fillLimit)
	err := scaleFill(fctx, h, r)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("fill: %w", err)
	}
	r.fill = time.Since(start)
	o.logf("scale: %d: filled in %v", n, r.fill.Round(time.Millisecond))
	for _, name := range []string{home.DBFile, home.DBFile + "-wal"} {
		if fi, err := os.Stat(filepath.Join(h, name)); err == nil {
			r.dbBytes += fi.Size()
		}
	}

	run := func(col string, out io.Writer, args ...string) error {
		p, err := benchExec(ctx, b.cmdLimit, nil, out, o.SSHCA, append([]string{"--home", h}, args...)...)
		if err != nil {
			return err
		}
		r.cmds[col] = p
		o.logf("scale: %d: %s: %v, peak RSS %s", n, col, p.elapsed.Round(time.Millisecond), krlMiB(p.maxRSS))
		return nil
	}
	lines := &lineCounter{}
	if err := run("list --active", lines, "list", "--active"); err != nil {
		return nil, err
	}
	// The table has a header line; every active certificate is one line.
	r.checks = append(r.checks, check{Name: fmt.Sprintf("%d: list --active lists every valid certificate", n),
		OK: lines.n-1 == r.active, Detail: fmt.Sprintf("%d lines for %d valid certificates", lines.n-1, r.active)})
	lines = &lineCounter{}
	mid := scaleKeyID(n - 1)
	if err := run("list --id", lines, "list", "--id", mid); err != nil {
		return nil, err
	}
	r.checks = append(r.checks, check{Name: fmt.Sprintf("%d: list --id finds the one certificate", n),
		OK: lines.n == 2, Detail: fmt.Sprintf("%d lines for key ID %s", lines.n, mid)})
	// A failing verification fails the suite (the command exits non-zero).
	if err := run("audit verify", io.Discard, "audit", "verify"); err != nil {
		return nil, err
	}
	krlPath := filepath.Join(dir, "user.krl")
	if err := run("krl", io.Discard, "krl", "--out", krlPath); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(krlPath); err != nil || fi.Size() == 0 {
		return nil, fmt.Errorf("sshca krl wrote no KRL: %v", err)
	}
	lines = &lineCounter{}
	if err := run("fleet status", lines, "fleet", "status"); err != nil {
		return nil, err
	}
	r.checks = append(r.checks, check{Name: fmt.Sprintf("%d: fleet status lists every host", n),
		OK: lines.n >= r.hosts, Detail: fmt.Sprintf("%d lines for %d hosts", lines.n, r.hosts)})

	// serve: from exec to listening, and its RSS then.
	if err := os.WriteFile(filepath.Join(h, home.ConfigFile), []byte(scalePolicy+"service:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		return nil, err
	}
	start = time.Now()
	srv, err := svcStart(ctx, o.SSHCA, []string{"--home", h, "serve"}, filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	r.serveStart = time.Since(start)
	r.serveRSS, err = srv.peakRSS()
	if serr := srv.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	o.logf("scale: %d: serve listening after %v, RSS %s", n, r.serveStart.Round(time.Millisecond), krlMiB(r.serveRSS))
	return r, nil
}

func scaleKeyID(i int) string { return fmt.Sprintf("scale-%08d", i) }

// scaleFill issues r.certs certificates (the first half two days ago, so
// expired now; the rest now), records r.revocations revocations (serials of
// the older half, then key IDs) and r.hosts host reports.
func scaleFill(ctx context.Context, dir string, r *scaleResult) error {
	now := time.Now()
	clock := now
	h, err := home.Open(ctx, dir, home.Options{Now: func() time.Time { return clock }})
	if err != nil {
		return err
	}
	defer h.Close()
	a := h.Authority
	keys := make([]ssh.PublicKey, 256)
	for i := range keys {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if keys[i], err = ssh.NewPublicKey(pub); err != nil {
			return err
		}
	}
	const chunk = 5_000
	old := r.certs / 2
	var oldSerials []uint64
	for _, phase := range []struct {
		lo, hi int
		at     time.Time
	}{{0, old, now.Add(-48 * time.Hour)}, {old, r.certs, now}} {
		clock = phase.at
		for lo := phase.lo; lo < phase.hi; lo += chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			reqs := make([]ca.Request, min(lo+chunk, phase.hi)-lo)
			for i := range reqs {
				reqs[i] = ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: scaleKeyID(lo + i), PublicKey: keys[(lo+i)%len(keys)],
					Caller: ca.Admin("bench")}
			}
			certs, errs, err := a.SignMany(ctx, reqs)
			if err != nil {
				return err
			}
			for i, e := range errs {
				if e != nil {
					return fmt.Errorf("certificate %d: %w", lo+i, e)
				}
				if lo < old {
					oldSerials = append(oldSerials, certs[i].Serial)
				}
			}
		}
	}
	r.active = r.certs - old
	// Revocations: serials of expired certificates first (as pruning-free
	// stores accumulate), then key IDs never issued here.
	clock = now
	rs := make([]ca.Revocation, 0, r.revocations)
	for i := 0; i < r.revocations; i++ {
		if i < len(oldSerials) && i%2 == 0 {
			s := oldSerials[i]
			rs = append(rs, ca.Revocation{CAType: "user", Lo: s, Hi: s, Reason: "bench", Actor: "bench"})
			continue
		}
		rs = append(rs, ca.Revocation{CAType: "user", KeyID: "gone-" + strconv.Itoa(i), Reason: "bench", Actor: "bench", Force: true})
	}
	rst, ok := h.Store.(ca.RevocationStore)
	if !ok {
		return errors.New("the home's store cannot record revocations")
	}
	if _, err := ca.RevokeAll(ctx, rst, rs, now); err != nil {
		return err
	}
	userCA, err := ca.ActiveKey(ctx, h.Store, "user")
	if err != nil {
		return err
	}
	krlV, err := rst.KRLVersion(ctx, "user")
	if err != nil {
		return err
	}
	for i := 0; i < r.hosts; i++ {
		hst := store.Host{Name: fmt.Sprintf("host-%05d.scale.test", i), LastSeen: now.Add(-time.Duration(i%600) * time.Second),
			KRLVersion: krlV - uint64(i%3), CAKeys: []string{userCA.Fingerprint}, HostCertExpiry: now.Add(time.Duration(i%720) * time.Hour)}
		if err := h.Store.ReportHost(ctx, hst); err != nil {
			return err
		}
	}
	return nil
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.n++
		}
	}
	return len(p), nil
}

func scaleSection(o *options, b scaleBounds, rs []*scaleResult) section {
	sec := section{Title: "Scale: how the everyday commands grow with the store",
		Command: "go run ./bench -suite scale",
		Header: append(append([]string{"certificates (valid)", "revocations", "hosts", "fill", "database"}, scaleColumns...),
			"serve start", "serve RSS")}
	for _, r := range rs {
		row := []string{fmt.Sprintf("%d (%d)", r.certs, r.active), strconv.Itoa(r.revocations), strconv.Itoa(r.hosts),
			krlDur(r.fill), krlMiB(r.dbBytes)}
		for _, c := range scaleColumns {
			p := r.cmds[c]
			row = append(row, krlDur(p.elapsed)+" / "+krlMiB(p.maxRSS))
		}
		row = append(row, krlDur(r.serveStart), krlMiB(r.serveRSS))
		sec.Rows = append(sec.Rows, row)
		sec.Checks = append(sec.Checks, r.checks...)
	}
	// Growth: each command's time at one size over the size before, set
	// beside the growth of the certificates.
	for i := 1; i < len(rs); i++ {
		p, r := rs[i-1], rs[i]
		grow := float64(r.certs) / float64(p.certs)
		var parts []string
		worst := 0.0
		for _, c := range scaleColumns {
			f := r.cmds[c].elapsed.Seconds() / max(p.cmds[c].elapsed.Seconds(), 1e-6)
			parts = append(parts, fmt.Sprintf("%s ×%.1f", c, f))
			if c != "list --id" && c != "fleet status" {
				worst = max(worst, f)
			}
		}
		parts = append(parts, fmt.Sprintf("database ×%.1f", float64(r.dbBytes)/float64(max(p.dbBytes, 1))),
			fmt.Sprintf("serve start ×%.1f", r.serveStart.Seconds()/max(p.serveStart.Seconds(), 1e-6)))
		sec.Notes = append(sec.Notes, fmt.Sprintf("From %d to %d certificates (×%.0f): %s.", p.certs, r.certs, grow, strings.Join(parts, ", ")))
		sec.Checks = append(sec.Checks, check{Name: fmt.Sprintf("%d → %d: list --active, audit verify and krl grow at most linearly", p.certs, r.certs),
			Timing: true, OK: worst <= grow*1.5, Detail: fmt.Sprintf("worst ×%.1f for ×%.0f certificates (1.5× slack for noise)", worst, grow)})
	}
	sec.Notes = append(sec.Notes,
		"Each size is its own home on the embedded store (SQLite), filled in-process through the one issuance path in batches of 5,000 "+
			"(half the certificates issued 48 hours earlier with 1-hour lifetimes, so expired), then "+strconv.Itoa(b.revocations)+
			" revocations through ca.RevokeAll (serials of expired certificates and never-issued key IDs) and "+strconv.Itoa(b.hosts)+
			" host reports. Each command is a process of the sshca binary; cells are wall time / peak RSS of that process. "+
			"`list --id` and `fleet status` are expected to stay flat in the number of certificates (an index; hosts are fixed).",
		"Load average when the suite ended: "+loadAvg()+".")
	return sec
}
