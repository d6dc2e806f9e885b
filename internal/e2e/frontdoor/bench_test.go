package frontdoor

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/testkit"
)

// benchPolicy is policy with limits that never refuse a benchmark, and a
// role that tokens may use for the HTTPS door's run.
const benchPolicy = `backdate: 5m
service:
  rate_limit: 1000000
  anonymous_rate_limit: 1000000
  ssh_listen: 127.0.0.1:%d
  ssh_host_role: frontdoor
  ssh_host_names: [ca.corp]
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    allow:
      local_users: [alice]
  frontdoor:
    type: host
    principals: ["ca.corp"]
    max_ttl: 24h
`

// benchClients is the number of concurrent clients of the door runs.
const benchClients = 8

// BenchmarkDoors measures certificates per second in one run (SQLite, in-process serve):
//
//	go test -run '^$' -bench Doors -benchtime 500x ./internal/e2e/frontdoor/
//
// frontdoor: a new SSH connection per certificate, as users do (key
// exchange, host certificate check, public-key authentication, exec
// `cert`), from 8 concurrent x/crypto clients; https: POST /v1/certs/user
// over keep-alive connections from 8 clients with an API token; ssh-keygen:
// one `ssh-keygen -s` process per certificate, the same CA key.
func BenchmarkDoors(b *testing.B) {
	port := freePortB(b)
	h := &e2etest.Home{T: b, Dir: filepath.Join(b.TempDir(), "ca")}
	h.Must("init")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(benchPolicy, port)), 0o600); err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	pubFile := filepath.Join(b.TempDir(), "alice.pub")
	if err := os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(key.PublicKey()), 0o600); err != nil {
		b.Fatal(err)
	}
	h.Must("user", "add", "alice", "--key", pubFile)
	srv, err := h.Serve("", "--listen", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(e2etest.Lines(h.Must("ca", "show", "--type", "host"))[0]))
	if err != nil {
		b.Fatal(err)
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return string(k.Marshal()) == string(hostCA.Marshal()) }}
	cfg := &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, remote net.Addr, k ssh.PublicKey) error {
			return checker.CheckHostKey("ca.corp:22", remote, k)
		}}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	b.Run("frontdoor", func(b *testing.B) {
		parallelRun(b, func() error {
			c, err := ssh.Dial("tcp", addr, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.NewSession()
			if err != nil {
				return err
			}
			defer s.Close()
			out, err := s.Output("cert --role deploy --ttl 10m")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(string(out), "ssh-ed25519-cert-v01@openssh.com ") {
				return fmt.Errorf("output %q", out)
			}
			return nil
		})
	})
	tokens := 0
	b.Run("https", func(b *testing.B) {
		tokens++
		secret := strings.TrimSpace(h.Must("token", "create", "--role", "deploy", "--name", fmt.Sprint("bench-", tokens), "--ttl", "1h"))
		c := srv.Client(b, secret)
		req := api.CertRequest{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey()))), Role: "deploy", TTL: "10m"}
		parallelRun(b, func() error {
			_, _, err := c.RequestCert(b.Context(), "user", req)
			return err
		})
	})
	b.Run("ssh-keygen", func(b *testing.B) {
		testkit.RequireTool(b, "ssh-keygen")
		caKey := filepath.Join(h.Dir, "keys", "user-ca-1")
		dir := b.TempDir()
		parallelRun(b, func() error {
			f, err := os.CreateTemp(dir, "k*.pub")
			if err != nil {
				return err
			}
			f.Write(ssh.MarshalAuthorizedKey(key.PublicKey()))
			f.Close()
			out, err := exec.Command("ssh-keygen", "-q", "-s", caKey, "-I", "bench", "-n", "role-deploy", "-V", "-5m:+10m", "-z", "1", f.Name()).CombinedOutput()
			if err != nil {
				return fmt.Errorf("ssh-keygen -s: %v: %s", err, out)
			}
			return nil
		})
	})
}

// parallelRun runs op b.N times from benchClients goroutines and reports
// certificates per second.
func parallelRun(b *testing.B, op func() error) {
	b.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan struct{}, b.N)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := op(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "certs/s")
}

func freePortB(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
