package home_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// BenchmarkSignParallel issues b.N user certificates through
// Authority.Sign — the one door, without HTTP — from 32 goroutines on the
// embedded store (durable group commit, audit chain), and reports the
// process CPU per certificate and the mean group-commit batch:
//
//	go test -run '^$' -bench SignParallel -benchtime 20000x ./internal/home/
func BenchmarkSignParallel(b *testing.B) {
	h := testhome.New(b, testkit.Policy, testhome.Options{})
	keys := make([]ssh.PublicKey, 1024)
	for i := range keys {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if keys[i], err = ssh.NewPublicKey(pub); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	req := func(i int) ca.Request {
		return ca.Request{Caller: ca.Admin("bench"), Type: policy.UserCert, Role: "deploy", TTL: 10 * time.Minute, PublicKey: keys[i%len(keys)]}
	}
	if _, err := h.Authority.Sign(ctx, req(0)); err != nil {
		b.Fatal(err)
	}
	workers := 32
	if v, err := strconv.Atoi(os.Getenv("SSHCA_BENCH_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	var next atomic.Int64
	var ru0, ru1 syscall.Rusage
	b0, i0 := h.Authority.CommitStats()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if _, err := h.Authority.Sign(ctx, req(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b1, i1 := h.Authority.CommitStats()
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/cert")
	if b1 > b0 {
		b.ReportMetric(float64(i1-i0)/float64(b1-b0), "certs/batch")
	}
}
