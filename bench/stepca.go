package main

// The stepca suite: `sshca serve` (SQLite) against smallstep step-ca, the
// same release every time (stepca_build.go), in the same run, with the same
// load generator and the same subject keys, at 8 and 32 clients.
//
// step-ca is set up the way its documentation describes an SSH CA: a ca.json
// with an X.509 root and intermediate (step-ca always serves TLS from its
// own intermediate), SSH user and host CA keys, its default durable store
// (Badger v2, which syncs every write) and one JWK provisioner with
// enableSSHCA. Each request carries a single-use provisioning token (a JWT
// signed with the provisioner's ES256 key, as `step ca token --ssh` mints
// them: iss the provisioner, sub the key ID, aud .../1.0/ssh/sign, jti,
// iat/nbf/exp of five minutes, sha the root's fingerprint, and the step.ssh
// claims certType, keyID, principals and validBefore); tokens are minted
// before the timed window and never reused, so step-ca records every one in
// its store as it would in production.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
)

// stepcaClients are the concurrency levels the target names.
var stepcaClients = []int{8, 32}

const (
	stepcaTargetRatio    = 5.0 // sshca ÷ step-ca, throughput and CPU per certificate
	stepcaProvisioner    = "bench@sshca.test"
	stepcaTokenLifetime  = 5 * time.Minute // what `step ca token` gives a token
	stepcaValidBefore    = "10m"           // the certificate's lifetime, as svcCertTTL
	stepcaStartTimeout   = 60 * time.Second
	stepcaStopTimeout    = 40 * time.Second
	stepcaReadyPollEvery = 100 * time.Millisecond
)

// stepcaCA is a running step-ca and what a client needs to ask it for
// certificates.
type stepcaCA struct {
	srv      *svcServer
	addr     string
	rootPool *x509.CertPool
	rootSHA  string        // hex SHA-256 of the root certificate's DER (the tokens' sha claim)
	userCA   ssh.PublicKey // the SSH user CA key in ca.json
	provKey  *ecdsa.PrivateKey
	kid      string // the provisioner key's JWK thumbprint
	ready    time.Time
	seq      atomic.Int64 // key IDs, distinct over the run
}

// stepcaBatch is one level's worth of requests, each with its own token.
type stepcaBatch struct {
	target *loadTarget
	subj   []int    // subject key of request i
	keyID  []string // key ID of request i (the token's subject)
}

// stepcaSide is one server's measurements, per concurrency level and round.
type stepcaSide struct {
	levels    map[int][]svcMeasurement
	bodyBytes int // of every response body received
	bodies    int
}

func runStepCA(ctx context.Context, o *options) ([]section, error) {
	maxN, maxTime, nSubjects, rounds := 20000, 10*time.Second, 1000, 3
	if o.Short {
		maxN, maxTime, nSubjects, rounds = 240, 5*time.Second, 300, 1
	}
	build, err := stepcaResolveBinary(ctx, o)
	if err != nil {
		return nil, err
	}
	subj, err := newLoadSubjects(nSubjects, svcRole, svcCertTTL)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(o.Work, "stepca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sshcaSrv, sshcaTarget, caKeys, err := stepcaStartSSHCA(ctx, o, filepath.Join(dir, "sshca"), subj)
	if err != nil {
		return nil, err
	}
	defer sshcaSrv.kill()
	o.logf("stepca: sshca serve (pid %d) on %s", sshcaSrv.pid, sshcaSrv.addr)
	step, err := stepcaStart(ctx, o, build.Path, filepath.Join(dir, "step-ca"))
	if err != nil {
		return nil, err
	}
	defer step.srv.kill()
	o.logf("stepca: step-ca %s (pid %d) on %s, log %s", stepcaVersion, step.srv.pid, step.addr, step.srv.logPath)

	sshcaV := newSvcVerifier(subj, caKeys)
	stepV := newStepcaVerifier(subj, step.userCA)
	sides := map[string]*stepcaSide{"sshca": {levels: map[int][]svcMeasurement{}}, "step-ca": {levels: map[int][]svcMeasurement{}}}
	var lastBatch *stepcaBatch
	measure := func(name string, clients int, target *loadTarget, srv *svcServer) (*loadResult, error) {
		m, r, err := svcLevel(ctx, o, fmt.Sprintf("stepca: %-7s", name), name, clients, 1, target, srv, maxN, maxTime)
		if err != nil {
			return nil, fmt.Errorf("%s, %d clients: %w", name, clients, err)
		}
		s := sides[name]
		s.levels[clients] = append(s.levels[clients], m)
		for _, b := range r.Received {
			s.bodyBytes += len(b.Body)
		}
		s.bodies += len(r.Received)
		return r, nil
	}
	for round := range rounds {
		for _, c := range stepcaClients {
			// Alternate which server goes first, so that neither always
			// meets the machine right after the other's load.
			order := []string{"sshca", "step-ca"}
			if (round+c)%2 == 1 {
				order = []string{"step-ca", "sshca"}
			}
			for _, name := range order {
				if name == "sshca" {
					r, err := measure(name, c, sshcaTarget, sshcaSrv)
					if err != nil {
						return nil, err
					}
					sshcaV.add(r)
					continue
				}
				batch, err := step.mint(subj, c+maxN) // every request of the level, warm-ups included
				if err != nil {
					return nil, err
				}
				r, err := measure(name, c, batch.target, step.srv)
				if err != nil {
					return nil, err
				}
				stepV.add(r, batch)
				lastBatch = batch
			}
		}
	}
	replay := step.replayCheck(ctx, lastBatch)
	if err := sshcaSrv.stop(); err != nil {
		return nil, err
	}
	if err := step.stop(); err != nil {
		return nil, err
	}
	sec := stepcaSection(o, build, sides, sshcaV.verdict("sshca"), stepV.verdict(), replay, rounds, maxN, maxTime, nSubjects)
	sec.Notes = slices.Insert(sec.Notes, len(sec.Notes)-1, fmt.Sprintf("Mean request size (HTTP head and JSON body): "+
		"sshca %.0f B, step-ca %.0f B; mean response body: sshca %.0f B, step-ca %.0f B.",
		stepcaMeanLen(sshcaTarget.Requests), stepcaMeanLen(lastBatch.target.Requests),
		float64(sides["sshca"].bodyBytes)/float64(max(1, sides["sshca"].bodies)),
		float64(sides["step-ca"].bodyBytes)/float64(max(1, sides["step-ca"].bodies))))
	return []section{sec}, nil
}

// stepcaResolveBinary returns the step-ca to measure: -stepca BIN, else the
// cached build of stepcaVersion (built now if missing).
func stepcaResolveBinary(ctx context.Context, o *options) (*stepcaBuildInfo, error) {
	if o.StepCA != "" {
		info, err := stepcaCheckBinary(ctx, o.StepCA)
		if err != nil {
			return nil, fmt.Errorf("-stepca: %w", err)
		}
		info.Source = "given with -stepca"
		return info, nil
	}
	info, err := stepcaBinary(ctx, o.logf)
	if err != nil {
		return nil, fmt.Errorf("build step-ca %s: %w", stepcaVersion, err)
	}
	return info, nil
}

// stepcaStartSSHCA creates an sshca home with the service suite's policy
// (SQLite) and serves it.
func stepcaStartSSHCA(ctx context.Context, o *options, dir string, subj *loadSubjects) (*svcServer, *loadTarget, []ssh.PublicKey, error) {
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, err
	}
	sshca := func(args ...string) (string, error) {
		return svcCommand(ctx, o.SSHCA, append([]string{"--home", home}, args...)...)
	}
	if _, err := sshca("init"); err != nil {
		return nil, nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(home, "sshca.yaml"), fmt.Appendf(nil, svcPolicy, ""), 0o600); err != nil {
		return nil, nil, nil, err
	}
	out, err := sshca("token", "create", "--role", svcRole, "--name", "bench", "--ttl", "1h")
	if err != nil {
		return nil, nil, nil, err
	}
	token := strings.TrimSpace(out)
	if out, err = sshca("ca", "show", "--type", "user"); err != nil {
		return nil, nil, nil, err
	}
	var caKeys []ssh.PublicKey
	for rest := []byte(out); len(bytes.TrimSpace(rest)) > 0; {
		var k ssh.PublicKey
		if k, _, _, rest, err = ssh.ParseAuthorizedKey(rest); err != nil {
			return nil, nil, nil, fmt.Errorf("sshca ca show --type user: %w", err)
		}
		caKeys = append(caKeys, k)
	}
	srv, err := svcStart(ctx, o.SSHCA, []string{"--home", home, "serve"}, filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, nil, nil, err
	}
	return srv, newLoadTarget(srv.addr, srv.fingerprint, token, "/v1/certs/user", subj), caKeys, nil
}

// stepcaStart writes a step-ca configuration into dir and starts step-ca
// on a free port of 127.0.0.1 (retrying a port another process took
// meanwhile).
func stepcaStart(ctx context.Context, o *options, bin, dir string) (*stepcaCA, error) {
	s, err := stepcaInit(dir)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := range 3 {
		port, err := stepcaFreePort()
		if err != nil {
			return nil, err
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := stepcaWriteConfig(dir, s.addr); err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, fmt.Sprintf("step-ca.%d.log", attempt))
		srv, err := stepcaSpawn(bin, dir, logPath)
		if err != nil {
			return nil, err
		}
		s.srv = srv
		if lastErr = s.waitReady(ctx); lastErr == nil {
			return s, nil
		}
		srv.kill()
		if ctx.Err() != nil || !strings.Contains(srv.logTail(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

// stepcaInit creates the keys and certificates of a step-ca SSH CA in dir:
// what `step ca init --ssh` creates, except that the private keys are
// written unencrypted (no password prompt; they are decrypted once at
// start-up anyway) and the SSH CA keys are ed25519 like sshca's, not
// `step ca init`'s default ECDSA P-256, so that both sign with the same
// algorithm.
func stepcaInit(dir string) (*stepcaCA, error) {
	for _, d := range []string{"certs", "secrets", "config", "db"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: stepcaSerial(), Subject: pkix.Name{CommonName: "sshca bench step-ca Root CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	intTmpl := &x509.Certificate{
		SerialNumber: stepcaSerial(), Subject: pkix.Name{CommonName: "sshca bench step-ca Intermediate CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 0, MaxPathLenZero: true,
	}
	intDER, err := x509.CreateCertificate(rand.Reader, intTmpl, root, &intKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	_, userKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	for name, der := range map[string][]byte{"certs/root_ca.crt": rootDER, "certs/intermediate_ca.crt": intDER} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	for name, key := range map[string]any{"secrets/intermediate_ca_key": intKey, "secrets/ssh_user_ca_key": userKey,
		"secrets/ssh_host_ca_key": hostKey} {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	}
	s := &stepcaCA{rootPool: x509.NewCertPool()}
	s.rootPool.AddCert(root)
	sum := sha256.Sum256(rootDER)
	s.rootSHA = hex.EncodeToString(sum[:])
	if s.userCA, err = ssh.NewPublicKey(userKey.Public()); err != nil {
		return nil, err
	}
	if s.provKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: &s.provKey.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	s.kid = base64.RawURLEncoding.EncodeToString(tp)
	jwk.KeyID = s.kid
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return s, os.WriteFile(filepath.Join(dir, "config", "provisioner.pub.json"), pub, 0o600)
}

// stepcaWriteConfig writes dir/config/ca.json for a server on addr.
func stepcaWriteConfig(dir, addr string) error {
	pub, err := os.ReadFile(filepath.Join(dir, "config", "provisioner.pub.json"))
	if err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	cfg := map[string]any{
		"root":     p("certs/root_ca.crt"),
		"crt":      p("certs/intermediate_ca.crt"),
		"key":      p("secrets/intermediate_ca_key"),
		"address":  addr,
		"dnsNames": []string{"127.0.0.1"},
		"ssh": map[string]any{
			"hostKey": p("secrets/ssh_host_ca_key"),
			"userKey": p("secrets/ssh_user_ca_key"),
		},
		"logger": map[string]any{"format": "text"},
		// step ca init's default store: Badger v2 with its default
		// options, which include SyncWrites.
		"db": map[string]any{"type": "badgerv2", "dataSource": p("db"), "badgerFileLoadingMode": ""},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{
				"type":   "JWK",
				"name":   stepcaProvisioner,
				"key":    json.RawMessage(pub),
				"claims": map[string]any{"enableSSHCA": true},
			}},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(p("config/ca.json"), b, 0o600)
}

// stepcaSpawn starts `step-ca ca.json` as svcStart starts sshca: its own
// process group, killed by the kernel should the bench die.
func stepcaSpawn(bin, dir, logPath string) (*svcServer, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, filepath.Join(dir, "config", "ca.json"))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "STEPPATH=" + dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s := &svcServer{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(s.done)
		runtime.LockOSThread() // see svcStart: Pdeathsig follows the forking thread
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start step-ca: %w", err)
	}
	s.pid = cmd.Process.Pid
	return s, nil
}

// waitReady polls until step-ca completes a TLS handshake whose
// certificate chains to the root and names 127.0.0.1, then pins that
// certificate for the load generator. Tokens must be issued after the
// authority started (it refuses earlier iat), so it also waits for the
// next whole second.
func (s *stepcaCA) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(stepcaStartTimeout)
	cfg := &tls.Config{RootCAs: s.rootPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	for {
		select {
		case <-s.srv.done:
			return fmt.Errorf("step-ca exited (%v) before serving:\n%s", s.srv.cmd.ProcessState, s.srv.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err == nil {
			leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
			c.Close()
			s.srv.addr = s.addr
			s.srv.fingerprint = api.CertFingerprint(leaf.Raw)
			s.ready = time.Now()
			time.Sleep(time.Until(s.ready.Truncate(time.Second).Add(time.Second)))
			return nil
		}
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return fmt.Errorf("step-ca's TLS certificate: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("step-ca did not serve on %s within %v (%v):\n%s", s.addr, stepcaStartTimeout, err, s.srv.logTail())
		}
		time.Sleep(stepcaReadyPollEvery)
	}
}

// stop ends step-ca with SIGTERM, as svcServer.stop does, and accepts the
// exit status it gives after a graceful shutdown.
func (s *stepcaCA) stop() error {
	if s.srv.stopped {
		return nil
	}
	s.srv.stopped = true
	_ = s.srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.srv.done:
	case <-time.After(stepcaStopTimeout):
		s.srv.kill()
		return fmt.Errorf("step-ca did not stop within %v:\n%s", stepcaStopTimeout, s.srv.logTail())
	}
	if ws, ok := s.srv.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("step-ca ended with %v:\n%s", s.srv.cmd.ProcessState, s.srv.logTail())
	}
	return nil
}

// stepcaClaims is the payload of an SSH provisioning token.
type stepcaClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  string          `json:"aud"`
	IssuedAt  int64           `json:"iat"`
	NotBefore int64           `json:"nbf"`
	Expiry    int64           `json:"exp"`
	ID        string          `json:"jti"`
	SHA       string          `json:"sha"`
	Step      stepcaStepClaim `json:"step"`
}

type stepcaStepClaim struct {
	SSH stepcaSSHOptions `json:"ssh"`
}

type stepcaSSHOptions struct {
	CertType    string   `json:"certType"`
	KeyID       string   `json:"keyID"`
	Principals  []string `json:"principals"`
	ValidAfter  string   `json:"validAfter"`
	ValidBefore string   `json:"validBefore"`
}

// stepcaSignRequest is the body of POST /1.0/ssh/sign.
type stepcaSignRequest struct {
	PublicKey   []byte   `json:"publicKey"` // SSH wire format; JSON makes it base64
	OTT         string   `json:"ott"`
	CertType    string   `json:"certType"`
	KeyID       string   `json:"keyID"`
	Principals  []string `json:"principals"`
	ValidBefore string   `json:"validBefore"`
}

// mint builds n requests, each with its own freshly signed token, request
// i for subject key i mod len(subj.Keys) — the subject sshca's load target
// sends as request i.
func (s *stepcaCA) mint(subj *loadSubjects, n int) (*stepcaBatch, error) {
	b := &stepcaBatch{subj: make([]int, n), keyID: make([]string, n)}
	reqs := make([][]byte, n)
	now := time.Now()
	errs := make([]error, runtime.NumCPU())
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.provKey},
				(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid))
			if err != nil {
				errs[w] = err
				return
			}
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				k := i % len(subj.Keys)
				keyID := fmt.Sprintf("bench-%d", s.seq.Add(1))
				if reqs[i], err = s.request(signer, subj.Keys[k], keyID, now); err != nil {
					errs[w] = err
					return
				}
				b.subj[i], b.keyID[i] = k, keyID
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mint step-ca tokens: %w", err)
	}
	b.target = &loadTarget{Addr: s.addr, Fingerprint: s.srv.fingerprint, Requests: reqs, Status: 201}
	return b, nil
}

// request returns one complete HTTP/1.1 request for key with a new token.
func (s *stepcaCA) request(signer jose.Signer, key ssh.PublicKey, keyID string, now time.Time) ([]byte, error) {
	jti := make([]byte, 32)
	if _, err := rand.Read(jti); err != nil {
		return nil, err
	}
	opts := stepcaSSHOptions{CertType: "user", KeyID: keyID, Principals: []string{svcPrincipal}, ValidBefore: stepcaValidBefore}
	payload, err := json.Marshal(stepcaClaims{
		Issuer: stepcaProvisioner, Subject: keyID, Audience: "https://" + s.addr + "/1.0/ssh/sign",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(stepcaTokenLifetime).Unix(),
		ID: hex.EncodeToString(jti), SHA: s.rootSHA, Step: stepcaStepClaim{SSH: opts},
	})
	if err != nil {
		return nil, err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(stepcaSignRequest{PublicKey: key.Marshal(), OTT: token, CertType: opts.CertType,
		KeyID: keyID, Principals: opts.Principals, ValidBefore: opts.ValidBefore})
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("POST /1.0/ssh/sign HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		s.addr, len(body))
	return append([]byte(head), body...), nil
}

// replayCheck sends a token step-ca has already accepted once more: a
// server that records its one-time tokens durably refuses it.
func (s *stepcaCA) replayCheck(ctx context.Context, b *stepcaBatch) check {
	c := check{Name: "step-ca refuses a token it has already accepted (its one-time-token store is in use)"}
	if b == nil {
		c.Detail = "no batch was sent"
		return c
	}
	t := &loadTarget{Addr: b.target.Addr, Fingerprint: b.target.Fingerprint, Requests: b.target.Requests[:1], Status: 201}
	_, err := runLoad(ctx, t, loadLevel{Clients: 1, MaxN: 0, MaxTime: time.Second}, nil)
	switch {
	case err == nil:
		c.Detail = "the replayed token got a certificate"
	case strings.Contains(err.Error(), "HTTP 401"):
		c.OK = true
		c.Detail = "HTTP 401 for a replay of the first request of the last level"
	default:
		c.Detail = fmt.Sprintf("unexpected answer to the replay: %v", err)
	}
	return c
}

// stepcaVerifier checks every step-ca response after the clock stopped:
// it parses, is a user certificate for the key that was sent, with the
// token's key ID and the principal, signed by the SSH user CA key of
// ca.json and valid now, with a serial no other response had; and as many
// came back as were sent.
type stepcaVerifier struct {
	subj    *loadSubjects
	checker *ssh.CertChecker
	tally
}

func newStepcaVerifier(subj *loadSubjects, userCA ssh.PublicKey) *stepcaVerifier {
	want := userCA.Marshal()
	return &stepcaVerifier{subj: subj, checker: &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), want) },
	}}
}

func (v *stepcaVerifier) add(r *loadResult, b *stepcaBatch) {
	v.addAll(r, func(lb loadBody) (uint64, error) { return v.verify(lb, b) })
}

func (v *stepcaVerifier) verify(lb loadBody, b *stepcaBatch) (uint64, error) {
	var resp struct {
		Crt string `json:"crt"`
	}
	if err := json.Unmarshal(lb.Body, &resp); err != nil {
		return 0, fmt.Errorf("response body: %w: %.200q", err, lb.Body)
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Crt)
	if err != nil {
		return 0, fmt.Errorf("crt is not base64: %w", err)
	}
	pub, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return 0, fmt.Errorf("crt does not parse: %w", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	switch {
	case !ok:
		return 0, errors.New("crt holds a plain key, not a certificate")
	case cert.CertType != ssh.UserCert:
		return 0, fmt.Errorf("certificate %d is not a user certificate", cert.Serial)
	case !bytes.Equal(cert.Key.Marshal(), v.subj.Keys[b.subj[lb.Key]].Marshal()):
		return 0, fmt.Errorf("certificate %d certifies another key than the one sent", cert.Serial)
	case cert.KeyId != b.keyID[lb.Key]:
		return 0, fmt.Errorf("certificate %d has key ID %q, the token said %q", cert.Serial, cert.KeyId, b.keyID[lb.Key])
	case !slices.Equal(cert.ValidPrincipals, []string{svcPrincipal}):
		return 0, fmt.Errorf("certificate %d has principals %q", cert.Serial, cert.ValidPrincipals)
	}
	if err := v.checker.CheckCert(svcPrincipal, cert); err != nil {
		return 0, fmt.Errorf("certificate %d: %w", cert.Serial, err)
	}
	return cert.Serial, nil
}

func (v *stepcaVerifier) verdict() check {
	c := check{Name: "step-ca: every response verified"}
	if v.ok != v.sent {
		v.errs = append(v.errs, fmt.Errorf("%d requests sent, %d good certificates received", v.sent, v.ok))
	}
	if len(v.errs) == 0 {
		c.OK = true
		c.Detail = fmt.Sprintf("%d certificates (warm-ups included) for %d requests, one token each: each parses, certifies "+
			"the key sent with the token's key ID, is signed by the SSH user CA key of ca.json and valid for %s; all serials distinct",
			v.ok, v.sent, svcPrincipal)
		return c
	}
	c.Detail = fmt.Sprintf("%d problems, first: %v", len(v.errs), v.errs[0])
	return c
}

// stepcaMedian is the per-column median of one server's rounds at one level.
func stepcaMedian(ms []svcMeasurement) svcMeasurement {
	med := func(f func(m svcMeasurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	out := ms[0]
	out.Rate = med(func(m svcMeasurement) float64 { return m.Rate })
	out.P50 = time.Duration(med(func(m svcMeasurement) float64 { return float64(m.P50) }))
	out.P99 = time.Duration(med(func(m svcMeasurement) float64 { return float64(m.P99) }))
	out.ServerCPU = med(func(m svcMeasurement) float64 { return m.ServerCPU })
	out.ClientCPU = med(func(m svcMeasurement) float64 { return m.ClientCPU })
	n := 0
	for _, m := range ms {
		n += m.N
		out.PeakRSS = max(out.PeakRSS, m.PeakRSS)
	}
	out.N = n
	return out
}

func stepcaSection(o *options, build *stepcaBuildInfo, sides map[string]*stepcaSide, sshcaOK, stepOK, replay check,
	rounds, maxN int, maxTime time.Duration, nSubjects int) section {
	sec := section{
		Title:   "sshca against step-ca " + stepcaVersion + " (HTTPS on 127.0.0.1, durable stores)",
		Command: "go run ./bench -suite stepca",
		Header: []string{"clients", "sshca certs/s", "step-ca certs/s", "throughput sshca ÷ step-ca",
			"sshca server CPU µs/cert", "step-ca server CPU µs/cert", "CPU step-ca ÷ sshca",
			"sshca p50 / p99 ms", "step-ca p50 / p99 ms", "load-gen CPU µs/req sshca / step-ca",
			"server peak RSS MiB sshca / step-ca"},
	}
	if o.Short {
		sec.Command = "go run ./bench -short -suite stepca"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	for _, c := range stepcaClients {
		a, b := stepcaMedian(sides["sshca"].levels[c]), stepcaMedian(sides["step-ca"].levels[c])
		tput, cpu := a.Rate/b.Rate, b.ServerCPU/a.ServerCPU
		sec.Rows = append(sec.Rows, []string{strconv.Itoa(c),
			fmt.Sprintf("%.0f", a.Rate), fmt.Sprintf("%.0f", b.Rate), fmt.Sprintf("%.2f×", tput),
			fmt.Sprintf("%.0f", a.ServerCPU), fmt.Sprintf("%.0f", b.ServerCPU), fmt.Sprintf("%.2f×", cpu),
			ms(a.P50) + " / " + ms(a.P99), ms(b.P50) + " / " + ms(b.P99),
			fmt.Sprintf("%.0f / %.0f", a.ClientCPU, b.ClientCPU),
			fmt.Sprintf("%.1f / %.1f", float64(a.PeakRSS)/(1<<20), float64(b.PeakRSS)/(1<<20))})
		sec.Checks = append(sec.Checks,
			check{Name: fmt.Sprintf("%d clients: sshca ≥ 5× step-ca's throughput", c), Timing: true,
				OK: tput >= stepcaTargetRatio, Detail: fmt.Sprintf("%.2f× (%.0f vs %.0f certs/s)", tput, a.Rate, b.Rate)},
			check{Name: fmt.Sprintf("%d clients: sshca ≤ 1/5 of step-ca's server CPU per certificate", c), Timing: true,
				OK: cpu >= stepcaTargetRatio, Detail: fmt.Sprintf("%.2f× (%.0f vs %.0f µs)", cpu, a.ServerCPU, b.ServerCPU)})
	}
	sec.Checks = append(sec.Checks, sshcaOK, stepOK, replay)
	sec.Notes = []string{
		fmt.Sprintf("step-ca: `CGO_ENABLED=0 go install %s@%s` with %s (%s), from its release tag through the Go module proxy; "+
			"its configuration is written by the bench as `step ca init --ssh` lays it out: an X.509 root and intermediate (ECDSA P-256; "+
			"step-ca serves TLS from a certificate it issues itself), SSH user and host CA keys, its default store (Badger v2, "+
			"whose default options sync every write to disk) and one JWK provisioner (ES256 key) with `enableSSHCA`. "+
			"Each request is POST /1.0/ssh/sign with its own single-use provisioning token, as `step ca token --ssh` mints them "+
			"(iss, sub = key ID, aud, jti, iat/nbf/exp five minutes, sha = the root's fingerprint, step.ssh = certType user, keyID, "+
			"principals [%s], validBefore %s); every level's tokens are minted just before it, outside the timed window.",
			stepcaPackage, stepcaVersion, build.GoVersion, build.Source, svcPrincipal, stepcaValidBefore),
		fmt.Sprintf("sshca: `sshca serve` on SQLite (WAL, synchronous=FULL, the hash-chained audit entry in the same commit as "+
			"each certificate), the service suite's policy (role %s, ttl %s, a reusable bearer token). Both servers run side by side "+
			"for the whole suite and use ed25519 CA keys; both get the same %d ed25519 subject keys in the same order from the "+
			"same load generator (loadgen.go: C kept-alive TLS connections, one request in flight each, after one untimed warm-up "+
			"request per connection, up to %d requests or %v per level). %d round(s); in each, the two servers take turns at "+
			"each level (which goes first alternates); a cell is the median over the rounds (peak RSS: the largest VmHWM).",
			svcRole, svcCertTTL, nSubjects, maxN, maxTime, rounds),
		"Server CPU µs/cert: utime+stime of the server process (/proc/PID/stat, 10 ms ticks) over the timed phase ÷ " +
			"certificates. Ratios: sshca certs/s ÷ step-ca certs/s, and step-ca CPU/cert ÷ sshca CPU/cert (above 1 sshca is ahead).",
		"Where the comparison is unfair to step-ca: its protocol costs the server an ES256 signature verification and a durable " +
			"write per request for the single-use token (the replay protection sshca's reusable bearer tokens do not give); " +
			"its requests are three times as large (the token; sizes below), which the load generator also pays; it runs with Go's default GC " +
			"settings while `sshca serve` sets GOGC=400 with a memory limit; its default certificate carries five extensions " +
			"(sshca's role one). Where it is unfair to sshca: step-ca keeps no audit log (sshca seals and chains an audit " +
			"entry per certificate in the same commit) and applies no policy beyond the provisioner's claims; Badger appends " +
			"to a log where SQLite updates B-tree pages and indexes; sshca's responses are larger (the certificate line with " +
			"its metadata, against step-ca's bare base64 certificate). Neither counts the CPU of minting tokens or of TLS " +
			"handshakes (both outside the timed window); both stores are on the same file system.",
		"Load average when the suite ended: " + loadAvg() + " (the load generator and both servers share the machine's CPUs).",
	}
	return sec
}

func stepcaMeanLen(bs [][]byte) float64 {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return float64(n) / float64(max(1, len(bs)))
}

// stepcaFreePort asks the kernel for a free port on 127.0.0.1.
func stepcaFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func stepcaSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
