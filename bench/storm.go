package main

// The renewal storm: a fleet whose host certificates all come due at once
// (after a CA promotion, or a mass enrollment a year ago) renews within a
// minute, each host at a random moment of it, as `sshca sync` does: its own
// TLS connection, a challenge, a signature by the host key, the renewal.
// The hosts are driven by the real client (internal/client), so every
// renewal crosses the real TLS, HTTP, proof-of-possession and issuance path.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
)

// stormPolicy: one host role whose certificates the service may renew
// (renewal: any — the fleet's first certificates here are signed by the
// CA's own batch, not through the service), limits out of reach of one
// source address (a real fleet comes from thousands).
const stormPolicy = `backdate: 1m
service:
  listen: 127.0.0.1:0
  rate_limit: 100000000
  anonymous_rate_limit: 100000000
roles:
  servers:
    type: host
    principals: ["*.storm.test"]
    max_ttl: 720h
    default_ttl: 720h
    renewal: any
`

// stormBounds: how many hosts renew within how long.
type stormBounds struct {
	hosts    int
	window   time.Duration
	inFlight int // at most this many hosts talk to the service at once
}

func stormMode(o *options) stormBounds {
	if o.Short {
		return stormBounds{hosts: 200, window: 3 * time.Second, inFlight: 64}
	}
	return stormBounds{hosts: 10_000, window: time.Minute, inFlight: 256}
}

// stormHost is one host of the fleet.
type stormHost struct {
	key  ssh.Signer
	cert *ssh.Certificate
}

func runStorm(ctx context.Context, o *options) ([]section, error) {
	b := stormMode(o)
	dir := filepath.Join(o.Work, "storm")
	h := filepath.Join(dir, "home")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := svcCommand(ctx, o.SSHCA, "--home", h, "init"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(h, home.ConfigFile), []byte(stormPolicy), 0o600); err != nil {
		return nil, err
	}
	o.logf("storm: %d hosts: enrolling", b.hosts)
	hosts, hostCA, err := stormEnroll(ctx, h, b.hosts)
	if err != nil {
		return nil, fmt.Errorf("storm: enroll: %w", err)
	}
	serveArgs := []string{"--home", h, "serve"}
	if d := os.Getenv("SSHCA_BENCH_PROFILE_DIR"); d != "" {
		serveArgs = append(serveArgs, "--cpuprofile", filepath.Join(d, "serve-storm.pprof"))
	}
	srv, err := svcStart(ctx, o.SSHCA, serveArgs, filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	o.logf("storm: sshca serve (pid %d) on %s; %d renewals within %v", srv.pid, srv.addr, b.hosts, b.window)

	cpu0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	lat, fails, elapsed, err := stormRun(ctx, srv, hosts, hostCA, b)
	if err != nil {
		return nil, err
	}
	cpu1, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	rss, err := srv.peakRSS()
	if err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	// The service's records: every renewal recorded, the chain intact (a
	// failure fails the suite).
	if _, err := svcCommand(ctx, o.SSHCA, "--home", h, "audit", "verify"); err != nil {
		return nil, fmt.Errorf("storm: audit verify after the storm: %w", err)
	}

	ok := len(lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if ok == 0 {
			return 0
		}
		return lat[min(ok-1, int(p*float64(ok)))]
	}
	perCert := time.Duration(0)
	if ok > 0 {
		perCert = (cpu1 - cpu0) / time.Duration(ok)
	}
	sec := section{Title: "Renewal storm: a fleet renewing its host certificates within a window",
		Command: "go run ./bench -suite storm",
		Header:  []string{"hosts", "window", "renewed", "failed", "last done after", "p50", "p99", "max", "server CPU per renewal", "server peak RSS"},
		Rows: [][]string{{strconv.Itoa(b.hosts), b.window.String(), strconv.Itoa(ok), strconv.Itoa(len(fails)), krlDur(elapsed),
			krlDur(pct(0.50)), krlDur(pct(0.99)), krlDur(pct(1)), fmt.Sprintf("%.0f µs", float64(perCert)/float64(time.Microsecond)), krlMiB(rss)}}}
	detail := "none"
	if len(fails) > 0 {
		detail = fails[0].Error()
	}
	sec.Checks = append(sec.Checks,
		check{Name: "every host renewed, each certificate verified (host CA, same key, principals, new serial)", OK: len(fails) == 0 && ok == b.hosts,
			Detail: fmt.Sprintf("%d of %d; first failure: %s", ok, b.hosts, detail)},
		check{Name: "the storm is absorbed: the last renewal finishes within 10% of the window after it", Timing: true,
			OK: elapsed <= b.window+b.window/10, Detail: fmt.Sprintf("%v for a %v window", elapsed.Round(time.Millisecond), b.window)})
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("Each of %d hosts starts at a uniformly random moment of the %v window (at most %d at once), opens its own TLS connection "+
			"with the real client (internal/client, pinned to the service's certificate as `sshca sync` is), asks for a challenge, signs it with its host key "+
			"and renews; latency is from its start to the verified certificate. Server CPU: utime+stime of `sshca serve` over the storm ÷ renewals "+
			"(two requests and one TLS handshake each). The fleet's certificates were issued before the storm by the CA's own batch (ca.Authority.SignMany).",
			b.hosts, b.window, b.inFlight),
		fmt.Sprintf("Budget: %d renewals × the server CPU per renewal ÷ the window = %.2f of a core (the machine has 2, shared with the %d hosts' "+
			"TLS handshakes and signatures in this process). A renewal costs far more than an issuance by token (see the service suite): "+
			"a TLS handshake on a new connection, two requests, and three write transactions — the challenge stored, the challenge taken, "+
			"the certificate and its audit entry recorded. A batch endpoint (many keys per request) would not help here: each host holds only "+
			"its own key and arrives on its own; what would is a challenge that needs no write of its own (stateless, spent inside the "+
			"issuance transaction).", b.hosts, float64(perCert)*float64(b.hosts)/float64(b.window), b.hosts),
		"Load average when the suite ended: "+loadAvg()+".")
	return []section{sec}, nil
}

// stormEnroll issues n host certificates through the one issuance path and
// returns the hosts with the host CA's active public key.
func stormEnroll(ctx context.Context, dir string, n int) ([]stormHost, ssh.PublicKey, error) {
	hd, err := home.Open(ctx, dir, home.Options{})
	if err != nil {
		return nil, nil, err
	}
	defer hd.Close()
	hosts := make([]stormHost, n)
	reqs := make([]ca.Request, n)
	for i := range hosts {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		if hosts[i].key, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, nil, err
		}
		name := fmt.Sprintf("h%05d.storm.test", i)
		reqs[i] = ca.Request{Type: policy.HostCert, Role: "servers", KeyID: name, Principals: []string{name},
			PublicKey: hosts[i].key.PublicKey(), Caller: ca.Admin("bench")}
	}
	for lo := 0; lo < n; lo += 5_000 {
		hi := min(lo+5_000, n)
		certs, errs, err := hd.Authority.SignMany(ctx, reqs[lo:hi])
		if err != nil {
			return nil, nil, err
		}
		for i, e := range errs {
			if e != nil {
				return nil, nil, fmt.Errorf("host %d: %w", lo+i, e)
			}
			hosts[lo+i].cert = certs[i]
		}
	}
	k, err := ca.ActiveKey(ctx, hd.Store, "host")
	if err != nil {
		return nil, nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
	if err != nil {
		return nil, nil, err
	}
	return hosts, pub, nil
}

// stormRun renews every host once at its random moment of the window and
// returns the latencies of the verified renewals, the failures and the time
// from the start to the last renewal's end.
func stormRun(ctx context.Context, srv *svcServer, hosts []stormHost, hostCA ssh.PublicKey, b stormBounds) ([]time.Duration, []error, time.Duration, error) {
	at := make([]time.Duration, len(hosts))
	r := mrand.New(mrand.NewPCG(uint64(len(hosts)), 17))
	for i := range at {
		at[i] = time.Duration(r.Int64N(int64(b.window)))
	}
	order := make([]int, len(hosts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return int(at[x] - at[y]) })

	var mu sync.Mutex
	var lat []time.Duration
	var fails []error
	seen := map[uint64]bool{}
	sem := make(chan struct{}, b.inFlight)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, b.window*3+30*time.Second)
	defer cancel()
	start := time.Now()
	for _, i := range order {
		if d := at[i] - time.Since(start); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, nil, 0, ctx.Err()
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(h stormHost) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			nc, err := stormRenew(ctx, srv, h, hostCA)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && seen[nc.Serial] {
				err = fmt.Errorf("serial %d issued twice", nc.Serial)
			}
			if err != nil {
				fails = append(fails, err)
				return
			}
			seen[nc.Serial] = true
			lat = append(lat, d)
		}(hosts[i])
	}
	wg.Wait()
	return lat, fails, time.Since(start), ctx.Err()
}

// stormRenew is one host's renewal on its own connection, verified.
func stormRenew(ctx context.Context, srv *svcServer, h stormHost, hostCA ssh.PublicKey) (*ssh.Certificate, error) {
	c, err := client.New("https://"+srv.addr, srv.fingerprint)
	if err != nil {
		return nil, err
	}
	defer c.HTTP.CloseIdleConnections()
	_, nc, err := c.Renew(ctx, h.cert, h.key, "")
	if err != nil {
		return nil, err
	}
	checker := ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return string(auth.Marshal()) == string(hostCA.Marshal())
	}}
	switch {
	case nc.CertType != ssh.HostCert:
		return nil, errors.New("renewal is not a host certificate")
	case string(nc.Key.Marshal()) != string(h.key.PublicKey().Marshal()):
		return nil, errors.New("renewal certifies another key")
	case nc.Serial == h.cert.Serial:
		return nil, errors.New("renewal kept the old serial")
	case !slices.Equal(nc.ValidPrincipals, h.cert.ValidPrincipals):
		return nil, fmt.Errorf("renewal principals %v, want %v", nc.ValidPrincipals, h.cert.ValidPrincipals)
	}
	if err := checker.CheckCert(nc.ValidPrincipals[0], nc); err != nil {
		return nil, fmt.Errorf("renewal does not verify: %w", err)
	}
	if !checker.IsHostAuthority(nc.SignatureKey, "") {
		return nil, errors.New("renewal not signed by the host CA")
	}
	return nc, nil
}
