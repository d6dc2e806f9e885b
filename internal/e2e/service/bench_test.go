package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// benchWorkers is the number of concurrent clients of the load run.
const benchWorkers = 8

// BenchmarkIssuance is the bounded load run of acceptance 6 (see
// BENCHMARKS.md, "Issuance service"). Run it with a fixed request count:
//
//	go test -run '^$' -bench Issuance -benchtime 2000x ./internal/e2e/service/
//
// Each service sub-benchmark sends b.N user-certificate requests over HTTPS
// on 127.0.0.1 from 8 concurrent clients (one API token, keep-alive
// connections) to `sshca serve` — the built binary when the go tool is
// available, else in-process — on SQLite and on PostgreSQL, and reports
// certificates per second and the p50/p99 latency seen by the clients. The
// ssh-keygen sub-benchmark signs b.N certificates with `ssh-keygen -s` (one
// process, same CA key) as the baseline of signing alone.
func BenchmarkIssuance(b *testing.B) {
	bin := binary(b)
	req := api.CertRequest{PublicKey: newKeyLine(b), Role: "deploy", TTL: "10m"}

	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run("service/"+backend, func(b *testing.B) {
			db := ""
			if backend == "postgres" {
				db = pgtest.NewDatabase(b)
			}
			h := newHome(b, db)
			rep := h.serveBin(bin)
			secret, _ := h.token("--role", "deploy", "--name", "bench", "--ttl", "1h")
			c := rep.Client(b, secret)
			// One request per worker opens the keep-alive connections.
			var wg sync.WaitGroup
			for w := 0; w < benchWorkers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := c.RequestCert(context.Background(), "user", req); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			lat, elapsed := load(b, c, req, b.N)
			report(b, b.N, elapsed, lat)
		})
	}

	b.Run("ssh-keygen", func(b *testing.B) {
		testkit.RequireTool(b, "ssh-keygen")
		h := newHome(b, "")
		dir := b.TempDir()
		files := make([]string, b.N)
		for i := range files {
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			p, _ := ssh.NewPublicKey(k.Public())
			files[i] = filepath.Join(dir, fmt.Sprintf("k%d.pub", i))
			if err := os.WriteFile(files[i], ssh.MarshalAuthorizedKey(p), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		caKey := filepath.Join(h.Dir, "keys", "user-ca-1")
		args := append([]string{"-q", "-s", caKey, "-I", "bench", "-n", "role-deploy", "-V", "-5m:+10m", "-z", "1"}, files...)
		b.ResetTimer()
		start := time.Now()
		out, err := exec.Command("ssh-keygen", args...).CombinedOutput()
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("ssh-keygen -s: %v: %s", err, out)
		}
		if _, err := os.Stat(strings.TrimSuffix(files[len(files)-1], ".pub") + "-cert.pub"); err != nil {
			b.Fatal(err)
		}
		report(b, b.N, elapsed, nil)
	})
}

// load sends n requests from benchWorkers goroutines and returns each
// request's latency and the wall time of the whole run.
func load(b *testing.B, c *client.Client, req api.CertRequest, n int) ([]time.Duration, time.Duration) {
	b.Helper()
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var errOnce sync.Once
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += benchWorkers {
				t0 := time.Now()
				_, _, err := c.RequestCert(context.Background(), "user", req)
				lat[i] = time.Since(t0)
				if err != nil {
					errOnce.Do(func() { b.Error(err) })
					return
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	return lat, elapsed
}

// report sets the benchmark's metrics: certificates per second and, when
// latencies are given, their 50th and 99th percentiles in milliseconds.
func report(b *testing.B, n int, elapsed time.Duration, lat []time.Duration) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "certs/s")
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat))*p+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
