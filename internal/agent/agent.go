// Package agent is the server side of sshca: it keeps a server's trusted
// user CA keys, KRL (and, when asked, the host KRL), principals files and
// host certificate current, and
// reports what it installed. It installs every file atomically and never
// replaces a good file with a worse one (unparsable, unsigned, older, or
// empty); the trusted CA keys and principals files hold only what it
// re-serialised from strictly parsed answers, never the service's bytes.
// It never restarts sshd, only asks it to reload its host certificate when
// told how.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// File names inside the agent's directory.
const (
	TrustedCAFile = "trusted_user_ca_keys"
	KRLFile       = "revoked.krl"
	PrincipalsDir = "principals"
	stateFile     = ".sshca-sync.json"
)

// Config configures a sync.
type Config struct {
	Client  *client.Client
	Dir     string // e.g. /etc/ssh/sshca
	HostKey string // private host key path; its certificate is <key>-cert.pub ("" = no host certificate handling)
	// RenewBefore renews the host certificate when less than this remains;
	// default one third of its lifetime.
	RenewBefore time.Duration
	// SSHDPidFile, when set, gets SIGHUP after a host certificate change so
	// sshd serves it.
	SSHDPidFile string
	// ReloadCommand, when set, is run (sh -c) after a host certificate change.
	ReloadCommand string
	// HostKRL, when set, is the absolute path at which the host CA's KRL
	// is kept for sshd: the file `sshca sshd-config --host-krl` names on
	// the RevokedKeys line beside the user KRL for OpenSSH 10.3 and later,
	// so that a key revoked as a host key is refused as a user key too.
	// It is verified against the host CA's published keys and installed
	// like the user KRL (see syncKRL); an empty one is written before the
	// first fetch, since sshd refuses every key login if it is missing.
	HostKRL string
	Log     *slog.Logger
	Now     func() time.Time
}

// State is what the agent remembers between runs.
type State struct {
	KRLVersion uint64 `json:"krl_version"`
	KRLETag    string `json:"krl_etag,omitempty"`
	// HostKRLVersion and HostKRLETag are those of the host KRL installed
	// at Config.HostKRL (zero when none is kept).
	HostKRLVersion uint64    `json:"host_krl_version,omitempty"`
	HostKRLETag    string    `json:"host_krl_etag,omitempty"`
	LastSuccess    time.Time `json:"last_success"`
	LastAttempt    time.Time `json:"last_attempt"`
	LastError      string    `json:"last_error,omitempty"`
	CAKeys         []string  `json:"ca_keys,omitempty"`
	HostCertExpiry time.Time `json:"host_cert_expiry,omitempty"`
	// ReloadPending is set while sshd has not been told about an installed
	// host certificate (the reload failed); later syncs retry the reload.
	ReloadPending bool `json:"reload_pending,omitempty"`
}

// Result summarises one sync.
type Result struct {
	Installed []string // files replaced
	Refused   []string // what was refused and why
	State     State
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// LoadState reads the agent's state (zero if none).
func LoadState(dir string) State {
	var s State
	if data, err := os.ReadFile(filepath.Join(dir, stateFile)); err == nil {
		_ = json.Unmarshal(data, &s)
	}
	return s
}

func saveState(dir string, s State) error {
	data, _ := json.MarshalIndent(s, "", "  ")
	return atomicfile.Write(filepath.Join(dir, stateFile), append(data, '\n'), 0o600)
}

// EnsureEmptyKRL writes an empty, valid KRL when none exists, so that
// RevokedKeys can be switched on before the first successful sync.
func EnsureEmptyKRL(dir string) (bool, error) {
	return ensureEmptyKRLAt(filepath.Join(dir, KRLFile))
}

// ensureEmptyKRLAt writes an empty, valid KRL at path when nothing is there.
func ensureEmptyKRLAt(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	data, err := (&krl.KRL{Comment: "sshca: empty KRL written before the first sync"}).Marshal()
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	return true, atomicfile.Write(path, data, 0o644)
}

// krlTarget is one KRL the agent keeps: the user CA's in the agent's
// directory, or the host CA's at Config.HostKRL.
type krlTarget struct {
	typ     string  // "user" or "host", as GET /v1/krl?type= takes it
	path    string  // where it is installed; its signature goes to path.sig
	name    string  // how results and logs name it
	version *uint64 // the State fields it updates
	etag    *string
}

func (c *Config) userKRL(res *Result) krlTarget {
	return krlTarget{typ: "user", path: filepath.Join(c.Dir, KRLFile), name: KRLFile,
		version: &res.State.KRLVersion, etag: &res.State.KRLETag}
}

func (c *Config) hostKRL(res *Result) krlTarget {
	name := c.HostKRL
	if rel, err := filepath.Rel(c.Dir, c.HostKRL); err == nil && filepath.IsLocal(rel) {
		name = rel
	}
	return krlTarget{typ: "host", path: c.HostKRL, name: name,
		version: &res.State.HostKRLVersion, etag: &res.State.HostKRLETag}
}

// Sync runs once: trusted CA keys, KRL, principals, host certificate, report.
// Files that fail validation are refused and the last good copy stays; the
// returned error says what could not be refreshed.
func Sync(ctx context.Context, c Config) (*Result, error) {
	if c.HostKRL != "" {
		if !filepath.IsAbs(c.HostKRL) {
			return nil, fmt.Errorf("host KRL: %q is not an absolute path", c.HostKRL)
		}
		if user, err := filepath.Abs(filepath.Join(c.Dir, KRLFile)); err == nil && filepath.Clean(c.HostKRL) == user {
			return nil, fmt.Errorf("host KRL: %s is the user KRL's path", c.HostKRL)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, PrincipalsDir), 0o755); err != nil {
		return nil, err
	}
	res := &Result{State: LoadState(c.Dir)}
	res.State.LastAttempt = c.now()
	c.removeStaleTemps()
	if made, err := EnsureEmptyKRL(c.Dir); err != nil {
		return res, err
	} else if made {
		res.Installed = append(res.Installed, KRLFile+" (empty)")
	}
	if c.HostKRL != "" {
		if made, err := ensureEmptyKRLAt(c.HostKRL); err != nil {
			return res, fmt.Errorf("host KRL: %w", err)
		} else if made {
			res.Installed = append(res.Installed, c.hostKRL(res).name+" (empty)")
		}
	}
	var errs []error
	caKeys, err := c.syncTrustedCAs(ctx, res)
	if err != nil {
		errs = append(errs, err)
	}
	if caKeys != nil {
		if err := c.syncKRL(ctx, c.userKRL(res), caKeys, res); err != nil {
			errs = append(errs, err)
		}
	}
	if c.HostKRL != "" {
		if err := c.syncHostKRL(ctx, res); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.syncPrincipals(ctx, res); err != nil {
		errs = append(errs, err)
	}
	var hostCert *ssh.Certificate
	var hostSigner ssh.Signer
	if c.HostKey != "" {
		hostCert, hostSigner, err = c.syncHostCert(ctx, res)
		if err != nil {
			errs = append(errs, err)
		}
	}
	syncErr := errors.Join(errs...)
	if syncErr == nil {
		res.State.LastSuccess = c.now()
		res.State.LastError = ""
	} else {
		res.State.LastError = strings.ReplaceAll(syncErr.Error(), "\n", "; ")
	}
	if err := saveState(c.Dir, res.State); err != nil {
		errs = append(errs, err)
	}
	if hostCert != nil && hostSigner != nil {
		rep := api.HostReport{KRLVersion: res.State.KRLVersion, CAKeys: res.State.CAKeys, HostCertExpiry: res.State.HostCertExpiry,
			Stale: syncErr != nil}
		if syncErr != nil {
			rep.Detail = res.State.LastError
			if len(rep.Detail) > 1000 {
				rep.Detail = rep.Detail[:1000]
			}
		}
		if err := c.Client.ReportHost(ctx, hostCert, hostSigner, rep); err != nil {
			errs = append(errs, fmt.Errorf("report: %w", err))
		}
	}
	return res, errors.Join(errs...)
}

// syncTrustedCAs installs the user CA's published keys. The list is parsed
// strictly (parseTrustedCAKeys) and installed only as re-serialised from the
// parsed keys, never as the bytes the service sent: one line sshd cannot
// read makes it reject the whole TrustedUserCAKeys file, and every
// certificate login with it. An empty or unexpected list is refused and the
// installed file stays.
func (c *Config) syncTrustedCAs(ctx context.Context, res *Result) ([]ssh.PublicKey, error) {
	raw, err := c.Client.CAKeysRaw(ctx, "user")
	if err != nil {
		return nil, fmt.Errorf("fetch user CA keys: %w", err)
	}
	keys, err := parseTrustedCAKeys(raw)
	if err != nil {
		res.Refused = append(res.Refused, TrustedCAFile+": "+err.Error())
		c.log().Warn("refused trusted user CA keys", "reason", err.Error())
		return nil, fmt.Errorf("trusted CA keys: refused the list (%w); keeping the installed one", err)
	}
	if len(keys) == 0 {
		res.Refused = append(res.Refused, TrustedCAFile+": the service published no keys")
		return nil, errors.New("trusted CA keys: refused an empty list; keeping the installed one")
	}
	var fps []string
	for _, k := range keys {
		fps = append(fps, ssh.FingerprintSHA256(k))
	}
	changed, err := installIfChanged(filepath.Join(c.Dir, TrustedCAFile), marshalTrustedCAKeys(keys), 0o644)
	if err != nil {
		return nil, err
	}
	if changed {
		res.Installed = append(res.Installed, TrustedCAFile)
		c.log().Info("installed trusted user CA keys", "keys", strings.Join(fps, ","))
	}
	res.State.CAKeys = fps
	return keys, nil
}

// syncHostKRL keeps the host KRL at Config.HostKRL: its signature must
// verify against the host CA's published keys (strictly parsed, as the
// trusted user CA keys are), as the user KRL's against the user CA's.
func (c *Config) syncHostKRL(ctx context.Context, res *Result) error {
	raw, err := c.Client.CAKeysRaw(ctx, "host")
	if err != nil {
		return fmt.Errorf("host KRL: fetch host CA keys: %w", err)
	}
	keys, err := parseTrustedCAKeys(raw)
	if err == nil && len(keys) == 0 {
		err = errors.New("the service published no host CA keys")
	}
	t := c.hostKRL(res)
	if err != nil {
		why := "cannot verify it: host CA keys: " + err.Error()
		res.Refused = append(res.Refused, t.name+": "+why)
		c.log().Warn("refused host KRL", "reason", why)
		return fmt.Errorf("host KRL: refused (%s); keeping the installed one", why)
	}
	return c.syncKRL(ctx, t, keys, res)
}

// syncKRL fetches the KRL of t.typ and its signature and installs the KRL
// at t.path only if the signature verifies against one of caKeys, it parses
// strictly, and its version is not lower than the installed one.
func (c *Config) syncKRL(ctx context.Context, t krlTarget, caKeys []ssh.PublicKey, res *Result) error {
	path := t.path
	what := "KRL"
	if t.typ != "user" {
		what = t.typ + " KRL"
	}
	etag := *t.etag
	if _, err := os.Stat(path); err != nil {
		etag = ""
	}
	data, sig, newETag, notModified, err := c.Client.KRL(ctx, t.typ, etag)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", what, err)
	}
	if notModified {
		return nil
	}
	refuse := func(why string) error {
		res.Refused = append(res.Refused, t.name+": "+why)
		c.log().Warn("refused "+what, "reason", why)
		return fmt.Errorf("%s: refused (%s); keeping the installed one", what, why)
	}
	if _, err := sshsig.Verify(sig, bytes.NewReader(data), sshsig.Namespace, caKeys); err != nil {
		return refuse("signature does not verify: " + err.Error())
	}
	// Strict: the installed file must load in every OpenSSH release the
	// fleet may run, including 9.2, which refuses extension and signature sections.
	k, err := krl.ParseWith(data, krl.Options{Strict: true})
	if err != nil {
		return refuse("does not parse: " + err.Error())
	}
	if cur, err := os.ReadFile(path); err == nil {
		if old, err := krl.Parse(cur); err == nil && k.Version < old.Version {
			return refuse(fmt.Sprintf("version %d is older than the installed %d", k.Version, old.Version))
		}
	}
	if err := atomicfile.Write(path+".sig", sig, 0o644); err != nil {
		return err
	}
	changed, err := installIfChanged(path, data, 0o644)
	if err != nil {
		return err
	}
	if changed {
		res.Installed = append(res.Installed, t.name)
		c.log().Info("installed "+what, "version", k.Version)
	}
	*t.version, *t.etag = k.Version, newETag
	return nil
}

// syncPrincipals writes principals/<account> for every account in the
// policy, each re-serialised by marshalPrincipals. An account whose name or
// principals are invalid is refused: its installed file (if any) stays, the
// other accounts are still brought up to date, and the sync fails.
func (c *Config) syncPrincipals(ctx context.Context, res *Result) error {
	accounts, err := c.Client.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("fetch accounts: %w", err)
	}
	dir := filepath.Join(c.Dir, PrincipalsDir)
	if len(accounts) == 0 {
		// An empty answer would delete every principals file and lock every
		// certificate out; treat it like any other worse-than-installed answer.
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			res.Refused = append(res.Refused, PrincipalsDir+": the service listed no accounts")
			return errors.New("principals: refused an empty account list; keeping the installed files")
		}
		return nil
	}
	var errs []error
	for _, acct := range slices.Sorted(maps.Keys(accounts)) {
		data, err := marshalPrincipals(acct, accounts[acct])
		if err != nil {
			name := PrincipalsDir + "/" + acct
			if accountProblem(acct) != "" {
				name = PrincipalsDir
			}
			res.Refused = append(res.Refused, name+": "+err.Error())
			c.log().Warn("refused a principals file", "reason", err.Error())
			errs = append(errs, fmt.Errorf("principals: refused %s (%w); keeping the installed file", name, err))
			continue
		}
		changed, err := installIfChanged(filepath.Join(dir, acct), data, 0o644)
		if err != nil {
			return err
		}
		if changed {
			res.Installed = append(res.Installed, PrincipalsDir+"/"+acct)
		}
	}
	// Accounts removed from the policy lose their principals file.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := accounts[e.Name()]; !ok && !strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				res.Installed = append(res.Installed, PrincipalsDir+"/"+e.Name()+" (removed)")
			}
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncHostCert renews the host certificate by proof of possession of the
// host key when it is close to expiry, or when it was signed by a host CA
// key other than the active one (api.ActiveCAKeyHeader): after a rotation
// is promoted, every host moves to the new key at its next sync, and the
// retiring key can be retired once no certificate of it is in use.
func (c *Config) syncHostCert(ctx context.Context, res *Result) (*ssh.Certificate, ssh.Signer, error) {
	keyData, err := os.ReadFile(c.HostKey)
	if err != nil {
		return nil, nil, fmt.Errorf("host key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(keyData)
	if err != nil {
		return nil, nil, fmt.Errorf("host key %s: %w", c.HostKey, err)
	}
	certPath := client.CertPath(c.HostKey)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, signer, fmt.Errorf("host certificate: %w (enroll first: sshca host enroll)", err)
	}
	cert, err := client.ParseCert(data)
	if err != nil {
		return nil, signer, fmt.Errorf("host certificate %s: %w", certPath, err)
	}
	now := c.now()
	left := client.Remaining(cert, now)
	life := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second
	renewBefore := c.RenewBefore
	if renewBefore == 0 {
		renewBefore = life / 3
	}
	res.State.HostCertExpiry = time.Unix(int64(cert.ValidBefore), 0).UTC()
	oldCA := ""
	if active := c.activeHostCA(ctx); active != "" && active != ssh.FingerprintSHA256(cert.SignatureKey) {
		oldCA = ssh.FingerprintSHA256(cert.SignatureKey)
		c.log().Info("host certificate signed by a host CA key that is no longer active; renewing under the active key",
			"signed_by", oldCA, "active", active)
	}
	if left > renewBefore && oldCA == "" {
		if res.State.ReloadPending {
			if err := c.reloadSSHD(ctx); err != nil {
				return cert, signer, err
			}
			res.State.ReloadPending = false
		}
		return cert, signer, nil
	}
	if left == 0 {
		return cert, signer, errors.New("host certificate expired; renewal by proof of possession needs a valid one: enroll again")
	}
	_, nc, err := c.Client.Renew(ctx, cert, signer, "")
	if err != nil {
		return cert, signer, fmt.Errorf("renew host certificate: %w", err)
	}
	if nc.CertType != ssh.HostCert || !bytes.Equal(nc.Key.Marshal(), signer.PublicKey().Marshal()) {
		return cert, signer, errors.New("renew host certificate: the service returned a certificate for another key or type")
	}
	if err := atomicfile.Write(certPath, ssh.MarshalAuthorizedKey(nc), 0o644); err != nil {
		return cert, signer, err
	}
	res.Installed = append(res.Installed, filepath.Base(certPath))
	res.State.HostCertExpiry = time.Unix(int64(nc.ValidBefore), 0).UTC()
	c.log().Info("renewed host certificate", "serial", nc.Serial, "valid_until", res.State.HostCertExpiry)
	res.State.ReloadPending = true
	if err := c.reloadSSHD(ctx); err != nil {
		return nc, signer, err
	}
	res.State.ReloadPending = false
	return nc, signer, nil
}

// activeHostCA is the fingerprint of the service's active host CA key, or
// "" when it cannot be learned (an older service, or a failed fetch: the
// certificate is then renewed on expiry alone, as before).
func (c *Config) activeHostCA(ctx context.Context) string {
	active, raw, err := c.Client.ActiveCAKey(ctx, "host")
	if err != nil {
		c.log().Warn("cannot fetch the host CA keys; renewing the host certificate on expiry only", "error", err.Error())
		return ""
	}
	// Trust the header only for a key the service also publishes.
	keys, err := parseTrustedCAKeys(raw)
	if err != nil {
		return ""
	}
	for _, k := range keys {
		if ssh.FingerprintSHA256(k) == active {
			return active
		}
	}
	return ""
}

// reloadSSHD makes sshd serve a new host certificate; a failure is an
// error naming the cause ("reload sshd" or "reload command").
func (c *Config) reloadSSHD(ctx context.Context) error {
	if c.SSHDPidFile != "" {
		data, err := os.ReadFile(c.SSHDPidFile)
		if err != nil {
			return fmt.Errorf("reload sshd: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 1 {
			return fmt.Errorf("reload sshd: bad pid in %s", c.SSHDPidFile)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload sshd: %w", err)
		}
	}
	if c.ReloadCommand != "" {
		out, err := exec.CommandContext(ctx, "/bin/sh", "-c", c.ReloadCommand).CombinedOutput()
		if err != nil {
			return fmt.Errorf("reload command: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// staleTempAge is how old a temp file must be before a sync removes it: a
// concurrent sync finishes its writes long before.
const staleTempAge = 5 * time.Minute

// removeStaleTemps deletes the temp files (atomicfile's ".NAME.tmp-*") that
// a sync killed mid-install left behind in the agent's directories and
// beside the host certificate.
func (c *Config) removeStaleTemps() {
	globs := []string{filepath.Join(c.Dir, ".*.tmp-*"), filepath.Join(c.Dir, PrincipalsDir, ".*.tmp-*")}
	if c.HostKey != "" {
		cert := client.CertPath(c.HostKey)
		globs = append(globs, filepath.Join(filepath.Dir(cert), "."+filepath.Base(cert)+".tmp-*"))
	}
	if c.HostKRL != "" {
		for _, f := range []string{c.HostKRL, c.HostKRL + ".sig"} {
			globs = append(globs, filepath.Join(filepath.Dir(f), "."+filepath.Base(f)+".tmp-*"))
		}
	}
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		for _, m := range matches {
			if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() && c.now().Sub(fi.ModTime()) > staleTempAge {
				if err := os.Remove(m); err == nil {
					c.log().Info("removed a temp file left by an interrupted sync", "file", m)
				}
			}
		}
	}
}

// installIfChanged atomically replaces path with data unless it already holds it.
func installIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == perm {
			return false, nil
		}
	}
	if err := atomicfile.Write(path, data, perm); err != nil {
		return false, err
	}
	return true, nil
}

// Run syncs every interval (with ±10% jitter) until ctx ends, backing off
// exponentially (up to interval) after failures.
func Run(ctx context.Context, c Config, interval time.Duration) error {
	backoff := 5 * time.Second
	what := []any{"interval", interval.String(), "dir", c.Dir}
	if c.Client != nil {
		what = append(what, "server", c.Client.BaseURL)
	}
	if c.HostKey != "" {
		what = append(what, "host_key", c.HostKey)
	}
	if c.HostKRL != "" {
		what = append(what, "host_krl", c.HostKRL)
	}
	c.log().Info("sync daemon started: keeps the trusted user CA keys, the KRL, the principals files and the host certificate current", what...)
	for {
		res, err := Sync(ctx, c)
		wait := interval
		jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(wait))
		if err != nil {
			wait = min(backoff, interval)
			jitter = time.Duration((rand.Float64()*0.2 - 0.1) * float64(wait))
			c.log().Warn("sync incomplete; last good files stay", "error", err.Error(), "retry_in", (wait + jitter).Round(time.Second).String())
			backoff *= 2
		} else {
			backoff = 5 * time.Second
			attrs := []any{"krl_version", res.State.KRLVersion, "ca_keys", len(res.State.CAKeys)}
			if c.HostKRL != "" {
				attrs = append(attrs, "host_krl_version", res.State.HostKRLVersion)
			}
			if !res.State.HostCertExpiry.IsZero() {
				attrs = append(attrs, "host_cert_valid_until", res.State.HostCertExpiry.UTC().Format(time.RFC3339))
			}
			if len(res.Installed) > 0 {
				attrs = append(attrs, "installed", strings.Join(res.Installed, ","))
			} else {
				attrs = append(attrs, "installed", "nothing (up to date)")
			}
			attrs = append(attrs, "next_in", (wait + jitter).Round(time.Second).String())
			c.log().Info("sync done", attrs...)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait + jitter):
		}
	}
}

// Staleness reports how long ago the last successful sync was.
func Staleness(s State, now time.Time) time.Duration {
	if s.LastSuccess.IsZero() {
		return -1
	}
	return now.Sub(s.LastSuccess)
}
