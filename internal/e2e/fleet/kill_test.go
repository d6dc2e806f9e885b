package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/sshsig"
	"github.com/sshca/sshca/internal/testkit"
)

// Sizes of what the churning service publishes: large enough that a file
// is written in more than one piece, and fixed, so that a reader can tell
// a complete file from a truncated one that happens to parse.
const (
	churnKeys       = 100 // keys in every trust list
	churnKeyIDs     = 600 // revoked key IDs in every KRL
	churnPrincipals = 200 // principals of every account
)

// churn is a fake certificate service whose every answer differs from the
// previous one (more CA keys, a newer KRL, other principals), so that every
// sync replaces every file.
type churn struct {
	ca   ssh.Signer
	pool []string // extra CA key lines

	mu       sync.Mutex
	n        uint64
	krl, sig []byte // the last KRL served and its signature
}

func newChurn(t *testing.T) (*churn, *httptest.Server) {
	t.Helper()
	c := &churn{}
	newKey := func() ssh.Signer { return testkit.NewSigner(t) }
	c.ca = newKey()
	for i := 0; i < churnKeys+50; i++ {
		c.pool = append(c.pool, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey().PublicKey())))+fmt.Sprintf(" extra-%d", i))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ca/user", func(w http.ResponseWriter, r *http.Request) {
		n := c.next()
		lines := append([]string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.ca.PublicKey())))}, c.pool[n%50:n%50+churnKeys-1]...)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
	mux.HandleFunc("GET /v1/krl", func(w http.ResponseWriter, r *http.Request) {
		n := c.next()
		k := &krl.KRL{Version: n, Comment: fmt.Sprintf("churn %d", n), Certs: []*krl.CertSection{{CA: c.ca.PublicKey().Marshal()}}}
		for i := 0; i < churnKeyIDs; i++ {
			k.Certs[0].KeyIDs = append(k.Certs[0].KeyIDs, fmt.Sprintf("revoked-%d-%d", n, i))
		}
		data, err := k.Marshal()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sig, err := sshsig.Sign(c.ca, sshsig.Namespace, bytes.NewReader(data))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		c.mu.Lock()
		c.krl, c.sig = data, sig
		c.mu.Unlock()
		_, _ = w.Write(data)
	})
	mux.HandleFunc("GET /v1/krl.sig", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, _ = w.Write(c.sig)
	})
	mux.HandleFunc("GET /v1/accounts", func(w http.ResponseWriter, r *http.Request) {
		n := c.next()
		accounts := map[string][]string{}
		for _, acct := range []string{"root", "deploy"} {
			for i := 0; i < churnPrincipals; i++ {
				accounts[acct] = append(accounts[acct], fmt.Sprintf("p%d-%d", n, i))
			}
		}
		_ = json.NewEncoder(w).Encode(accounts)
	})
	ts := httptest.NewUnstartedServer(mux)
	// Killed clients make the server log handshake errors; they are expected.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return c, ts
}

func (c *churn) next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

// checkInstalled says what is wrong with the content of an installed file,
// judged as sshd would read it plus the fixed sizes above.
func checkInstalled(name string, data []byte) error {
	switch name {
	case "revoked.krl":
		k, err := krl.Parse(data)
		if err != nil {
			return err
		}
		if len(k.Certs) != 1 || len(k.Certs[0].KeyIDs) != churnKeyIDs {
			return fmt.Errorf("a KRL with %d sections, not the %d key IDs served", len(k.Certs), churnKeyIDs)
		}
	case "trusted_user_ca_keys":
		n := 0
		for _, l := range strings.Split(string(data), "\n") {
			if l == "" {
				continue
			}
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err != nil {
				return fmt.Errorf("line %q: %w", l, err)
			}
			n++
		}
		if n != churnKeys || !bytes.HasSuffix(data, []byte("\n")) {
			return fmt.Errorf("%d keys, want %d", n, churnKeys)
		}
	default: // principals/ACCOUNT
		lines := strings.Split(string(data), "\n")
		if len(lines) != churnPrincipals+2 || lines[len(lines)-1] != "" || !strings.HasPrefix(lines[0], "#") {
			return fmt.Errorf("%d lines, want a comment, %d principals and a final newline", len(lines), churnPrincipals)
		}
		for _, l := range lines[1 : len(lines)-1] {
			if !strings.HasPrefix(l, "p") || strings.ContainsAny(l, " \t") {
				return fmt.Errorf("bad principal line %q", l)
			}
		}
	}
	return nil
}

// watcher reads the installed files in a loop, as sshd would at every
// login, and records every read that would not be a complete file.
type watcher struct {
	dir   string
	names []string

	mu       sync.Mutex
	reads    int
	bad      []string
	versions map[string]map[[32]byte]bool
}

func (w *watcher) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		for _, name := range w.names {
			data, err := os.ReadFile(filepath.Join(w.dir, name))
			if err == nil {
				err = checkInstalled(name, data)
			}
			w.mu.Lock()
			w.reads++
			if err != nil && len(w.bad) < 10 {
				w.bad = append(w.bad, fmt.Sprintf("%s (%d bytes): %v", name, len(data), err))
			}
			w.versions[name][sha256.Sum256(data)] = true
			w.mu.Unlock()
		}
		time.Sleep(time.Millisecond) // leave the CPU to the syncs now and then
	}
}

// TestKilledMidInstall is the last part of acceptance 3: `sshca sync`, in a
// process of its own, is SIGKILLed at random moments while every sync
// replaces every file, and a reader that keeps reading the files never sees
// a missing, partial or unparsable one.
func TestKilledMidInstall(t *testing.T) {
	_, fake := newChurn(t)
	fp := server.CertFingerprint(fake.Certificate().Raw)
	dir := filepath.Join(t.TempDir(), "sshca")
	syncCmd := func() *exec.Cmd {
		// Under -race the runtime would sleep a second at exit, waiting for reports.
		env := []string{"PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0 halt_on_error=1"}
		return testkit.MainCommand(t, env, "sync", "--server", fake.URL, "--ca-fingerprint", fp, "--dir", dir)
	}

	// A complete sync first: the files exist from then on.
	if out, err := syncCmd().CombinedOutput(); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	names := []string{"revoked.krl", "trusted_user_ca_keys", "principals/root", "principals/deploy"}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkInstalled(n, data); err != nil {
			t.Fatalf("%s after a complete sync: %v", n, err)
		}
	}

	w := &watcher{dir: dir, names: names, versions: map[string]map[[32]byte]bool{}}
	for _, n := range names {
		w.versions[n] = map[[32]byte]bool{}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go w.run(stop, done)

	// How long a complete sync takes while the reader reads sets the range
	// of kill times.
	var full time.Duration
	for i := 0; i < 2; i++ {
		start := time.Now()
		if out, err := syncCmd().CombinedOutput(); err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
		full = max(full, time.Since(start))
	}

	kills, finished := 0, 0
	seed := uint64(time.Now().UnixNano())
	rng := mrand.New(mrand.NewPCG(seed, seed>>1))
	// 30 kills, in 15s on an idle machine; a loaded one gets more time
	// for at least 10.
	const wantKills, minKills = 30, 10
	start := time.Now()
	enough := func() bool {
		el := time.Since(start)
		return kills >= wantKills || el > 15*time.Second && kills >= minKills || el > 45*time.Second
	}
	// Kill anywhere from process start-up to a little past a complete
	// sync; the bound adapts so that about a quarter of the syncs finish,
	// which puts most kills in the last part, where the files are written.
	bound := full * 6 / 5
	for !enough() {
		cmd := syncCmd()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(bound))))
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				kills++
				if finished*4 < kills {
					bound = bound * 11 / 10
				}
				continue
			}
		}
		if err != nil {
			t.Fatalf("sync exited by itself with %v", err)
		}
		finished++
		if finished*4 > kills+finished {
			bound = bound * 9 / 10
		}
	}
	close(stop)
	<-done

	temps := leftoverTemps(t, dir)
	t.Logf("seed %d: a complete sync takes up to %v; %d syncs killed, %d finished first; %d reads; "+
		"versions seen: KRL %d, CA keys %d, principals %d; %d temp files left by killed syncs",
		seed, full.Round(time.Millisecond), kills, finished, w.reads,
		len(w.versions["revoked.krl"]), len(w.versions["trusted_user_ca_keys"]), len(w.versions["principals/root"]), len(temps))
	if len(w.bad) > 0 {
		t.Fatalf("a reader saw a missing, partial or unparsable file:\n%s", strings.Join(w.bad, "\n"))
	}
	if kills < minKills {
		t.Fatalf("only %d syncs were killed before finishing", kills)
	}
	for _, n := range names {
		// Installs happened while the reader read: otherwise the test
		// proved nothing.
		if len(w.versions[n]) < 3 {
			t.Fatalf("%s: the reader saw only %d versions", n, len(w.versions[n]))
		}
	}

	// A sync after the crashes completes; it spares fresh temp files (they
	// could be another sync's work in progress) and removes old ones.
	if out, err := syncCmd().CombinedOutput(); err != nil {
		t.Fatalf("sync after the kills: %v\n%s", err, out)
	}
	for _, p := range temps {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a sync removed a fresh temp file: %v", err)
		}
	}
	old := time.Now().Add(-time.Hour)
	for _, p := range temps {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := syncCmd().CombinedOutput(); err != nil {
		t.Fatalf("sync after the kills: %v\n%s", err, out)
	}
	if left := leftoverTemps(t, dir); len(left) > 0 {
		t.Fatalf("temp files of killed syncs are still there: %v", left)
	}
}

// leftoverTemps lists the temp files atomic installs leave when killed.
func leftoverTemps(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	for _, d := range []string{dir, filepath.Join(dir, "principals")} {
		m, err := filepath.Glob(filepath.Join(d, ".*.tmp-*"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m...)
	}
	return all
}
