// Package ca is the certificate authority: it turns a request that policy has
// allowed into a signed OpenSSH certificate with a durable, unique serial,
// and it assembles revocations into KRLs. It sees storage only through the
// Store interface below, never speaks HTTP, and never prints.
package ca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/certwire"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
)

// Store is the storage the authority needs: serials, records and the
// audit chain to issue, and what the access decision must know now — the
// state of API tokens, the certificates being renewed, second factors.
type Store interface {
	ReserveSerials(ctx context.Context, n int) (uint64, error)
	CommitBatch(ctx context.Context, items []store.BatchItem) ([]error, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	Append(ctx context.Context, ev audit.Entry) (audit.Entry, error)
	GetCert(ctx context.Context, serial uint64) (*store.CertRecord, error)
	GetToken(ctx context.Context, id string) (*store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	ConsumeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error
	GetTOTP(ctx context.Context, identity string) (secret []byte, lastStep uint64, err error)
	AdvanceTOTP(ctx context.Context, identity string, step uint64) error
}

// KeyLoader opens the private half of a CA key generation.
type KeyLoader func(ctx context.Context, k store.CAKey) (ssh.Signer, error)

// Authority signs certificates under a role policy.
type Authority struct {
	Roles    map[string]policy.Role
	Backdate time.Duration
	Store    Store
	LoadKey  KeyLoader
	Now      func() time.Time
	Rand     io.Reader
	Log      *slog.Logger

	mu      sync.Mutex
	signers map[string]ssh.Signer // by CA fingerprint
	active  map[string]activeKey  // by CA type: the cached active generation

	serials   serialPool
	commits   committer
	krls      krlCache
	revokedIx revokedCache
}

// activeKeyTTL is how long the active generation is trusted from cache. A
// stale entry costs nothing but a retry: the batch transaction refuses a
// certificate whose CA key is no longer active (store.ErrCAKeyNotActive),
// and Sign then reloads the keys and signs again with a fresh serial.
const activeKeyTTL = 10 * time.Second

type activeKey struct {
	key    store.CAKey
	loaded time.Time
}

// Request asks for one certificate. Every door fills it the same way: who
// asks (Caller), what for, and the door's own details for the audit log.
type Request struct {
	Caller policy.Caller
	Type   policy.CertType
	Role   string
	// KeyID is the certificate's key ID; empty for one made of the caller,
	// the role and the request ID ("oidc:alice role=deploy req=...").
	KeyID      string
	Principals []string
	TTL        time.Duration
	// ValidAfter and ValidBefore ask for a validity window (ssh-keygen -V);
	// zero for from now, for TTL. Policy judges them (policy.Request).
	ValidAfter, ValidBefore time.Time
	PublicKey               ssh.PublicKey
	// TOTP is a one-time code given with the request as a second factor;
	// it is verified before the decision and, if right, counts as MFA.
	TOTP    string
	Details map[string]string

	renew   *policy.Renewal // set by Renew
	lineage *store.Lineage  // set by Renew: the lineage carried on
}

// Admin is the caller of the CLI on the CA host, named by its account.
func Admin(account string) policy.Caller {
	return policy.Caller{Kind: policy.CallerAdmin, Identity: policy.Identity{User: account}}
}

// actor names the request's caller in the audit log.
func (r Request) actor() string { return r.Caller.Actor() }

// tokenID is the role token whose validity the recording transaction
// checks again (the decision may have seen a cached copy).
func (r Request) tokenID() string {
	if r.Caller.Kind == policy.CallerToken && r.Caller.Token != nil {
		return r.Caller.Token.ID
	}
	return ""
}

// ErrTokenInvalid is returned (wrapped) by Sign when the request's API token
// was revoked or expired between authentication and recording.
var ErrTokenInvalid = store.ErrTokenInvalid

// MaxKeyIDLen bounds key IDs; sshd logs them verbatim.
const MaxKeyIDLen = 256

// CAType names a certificate type as the store does: "user" or "host".
func CAType(t policy.CertType) string {
	if t == policy.HostCert {
		return "host"
	}
	return "user"
}

// ValidKeyID checks a key ID: non-empty, printable UTF-8, bounded.
func ValidKeyID(id string) error {
	switch {
	case id == "":
		return errors.New("key ID is empty")
	case len(id) > MaxKeyIDLen:
		return fmt.Errorf("key ID is %d bytes; at most %d", len(id), MaxKeyIDLen)
	case !utf8.ValidString(id):
		return errors.New("key ID is not valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("key ID contains control character %q", r)
		}
	}
	return nil
}

// ActiveKey returns the active generation of caType.
func ActiveKey(ctx context.Context, st Store, caType string) (store.CAKey, error) {
	keys, err := st.ListCAKeys(ctx, caType)
	if err != nil {
		return store.CAKey{}, err
	}
	for _, k := range keys {
		if k.State == store.StateActive {
			return k, nil
		}
	}
	return store.CAKey{}, fmt.Errorf("ca: no active %s CA key", caType)
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Signer opens (once) and returns the signer of CA key generation k.
func (a *Authority) Signer(ctx context.Context, k store.CAKey) (ssh.Signer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.signers[k.Fingerprint]; ok {
		return s, nil
	}
	s, err := a.LoadKey(ctx, k)
	if err != nil {
		return nil, err
	}
	if got := signer.Fingerprint(s.PublicKey()); got != k.Fingerprint {
		return nil, fmt.Errorf("ca: %s CA generation %d: private key is %s, store expects %s", k.CAType, k.Generation, got, k.Fingerprint)
	}
	if a.signers == nil {
		a.signers = map[string]ssh.Signer{}
	}
	a.signers[k.Fingerprint] = s
	return s, nil
}

// cachedActiveKey returns the active generation of caType, from cache while fresh.
func (a *Authority) cachedActiveKey(ctx context.Context, caType string) (store.CAKey, error) {
	a.mu.Lock()
	c, ok := a.active[caType]
	a.mu.Unlock()
	if ok && time.Since(c.loaded) < activeKeyTTL {
		return c.key, nil
	}
	k, err := ActiveKey(ctx, a.Store, caType)
	if err != nil {
		return k, err
	}
	a.mu.Lock()
	if a.active == nil {
		a.active = map[string]activeKey{}
	}
	a.active[caType] = activeKey{key: k, loaded: time.Now()}
	a.mu.Unlock()
	return k, nil
}

// forgetActiveKey drops the cached active generation of caType.
func (a *Authority) forgetActiveKey(caType string) {
	a.mu.Lock()
	delete(a.active, caType)
	a.mu.Unlock()
}

// denial is the audit entry of a refused request.
func (a *Authority) denial(req Request, rule string, err error) audit.Entry {
	return audit.Entry{Time: a.now(), Actor: req.actor(), Action: audit.ActionDeny, Role: AuditRole(a.Roles, req.Role), KeyID: clip(req.KeyID),
		Outcome: "denied", Reason: rule + ": " + clip(err.Error()), Details: req.Details}
}

// Deny records a refused request in the audit log and returns err (joined
// with the audit failure, if any).
func (a *Authority) Deny(ctx context.Context, req Request, rule string, err error) error {
	if aerr := a.commits.commit(ctx, a.Store, store.BatchItem{Event: a.denial(req, rule, err)}); aerr != nil {
		return errors.Join(err, fmt.Errorf("ca: record denial: %w", aerr))
	}
	return err
}

// Check tells whether Sign would allow req, without signing or recording
// anything. A refusal comes back as the rule and error that Sign would
// record; a failure to decide (no active CA key, storage) has rule "".
// The CLI's batch mode uses it to refuse a whole batch with one denial.
func (a *Authority) Check(ctx context.Context, req Request) (rule string, err error) {
	key, err := a.cachedActiveKey(ctx, CAType(req.Type))
	if err != nil {
		return "", err
	}
	rx, err := a.revokedIndexOf(ctx, CAType(req.Type), true)
	if err != nil {
		return "", err
	}
	_, rule, err = a.prepare(ctx, req, key, rx)
	return rule, err
}

// prepared is a request that policy allowed: the certificate to sign (all
// but serial and signature) and the records to write with it.
type prepared struct {
	req  Request
	cert *ssh.Certificate
	rec  *store.CertRecord
	ev   audit.Entry
}

// prepare checks req against the policy and, when rx is given, against the
// key and key ID revocations. A refusal comes back as rule and err, for the
// caller to record.
func (a *Authority) prepare(ctx context.Context, req Request, key store.CAKey, rx *revokedIndex) (p *prepared, rule string, err error) {
	if req.PublicKey == nil {
		return nil, "bad-key", &KeyError{"no public key given"}
	}
	if err := CheckSubjectKey(req.PublicKey); err != nil {
		return nil, "bad-key", err
	}
	issued := a.now()
	grant, err := policy.Decide(a.Roles, req.Caller, policy.Request{Type: req.Type, Role: req.Role, Principals: req.Principals, TTL: req.TTL,
		ValidAfter: req.ValidAfter, ValidBefore: req.ValidBefore, Now: issued, Renew: req.renew})
	if err != nil {
		rule := "policy"
		var de *policy.DenyError
		if errors.As(err, &de) {
			rule = de.Rule
		}
		return nil, rule, err
	}
	if req.KeyID == "" {
		req.KeyID = fmt.Sprintf("%s role=%s req=%s", req.actor(), grant.Role, req.Details["request_id"])
	}
	if err := ValidKeyID(req.KeyID); err != nil {
		return nil, "bad-key-id", &policy.DenyError{Rule: "bad-key-id", Msg: err.Error()}
	}
	// Invariant 1, checked again here whatever policy says.
	if len(grant.Principals) == 0 {
		return nil, "empty-principals", &policy.DenyError{Rule: "empty-principals", Msg: "certificate would have no principals"}
	}
	caType := CAType(req.Type)
	// A certificate that a recorded revocation already covers could never
	// be used: refuse it, naming the revocation.
	if rule, id := rx.check(req.PublicKey, req.KeyID, key.Fingerprint); rule != "" {
		return nil, rule, a.revokedDenial(ctx, caType, rule, id, req.PublicKey, req.KeyID)
	}
	now := issued.Truncate(time.Second)
	validAfter := now.Add(-a.Backdate)
	validBefore := now.Add(grant.TTL)
	if !grant.ValidBefore.IsZero() {
		// A window asked for: its start is backdated like now would be.
		validAfter = grant.ValidAfter.Truncate(time.Second).Add(-a.Backdate)
		validBefore = grant.ValidBefore.Truncate(time.Second)
	}
	rec := &store.CertRecord{
		CAType:             caType,
		CAFingerprint:      key.Fingerprint,
		Role:               grant.Role,
		KeyID:              req.KeyID,
		Principals:         grant.Principals,
		ValidAfter:         validAfter,
		ValidBefore:        validBefore,
		SubjectFingerprint: ssh.FingerprintSHA256(req.PublicKey),
		SubjectType:        req.PublicKey.Type(),
		Requester:          req.actor(),
		IssuedAt:           issued,
		Lineage:            lineageOf(req, issued),
	}
	details := make(map[string]string, 5+len(req.Details))
	details["principals"] = strings.Join(grant.Principals, ",")
	details["valid"] = validAfter.UTC().Format(time.RFC3339) + "/" + validBefore.UTC().Format(time.RFC3339)
	details["subject"] = rec.SubjectFingerprint
	details["ca"] = key.Fingerprint
	details["type"] = caType
	details["rule"] = grant.Because
	if l := rec.Lineage; l.Renews != 0 {
		details["renews"] = fmt.Sprint(l.Renews)
		details["origin"] = fmt.Sprint(l.Origin)
	}
	for k, v := range req.Details {
		details[k] = v
	}
	ev := audit.Entry{Time: issued, Actor: req.actor(), Action: audit.ActionIssue, Role: grant.Role, KeyID: req.KeyID, Outcome: "ok", Details: details}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		CertType:        uint32(req.Type),
		KeyId:           req.KeyID,
		ValidPrincipals: grant.Principals,
		ValidAfter:      uint64(validAfter.Unix()),
		ValidBefore:     uint64(validBefore.Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: grant.CriticalOptions,
			Extensions:      grant.Extensions,
		},
	}
	return &prepared{req: req, cert: cert, rec: rec, ev: ev}, "", nil
}

// signPrepared signs p.cert with serial and fills in the record's body.
func (a *Authority) signPrepared(p *prepared, serial uint64, sgn ssh.Signer) error {
	if serial == 0 {
		return errors.New("ca: serial 0")
	}
	p.cert.Serial = serial
	p.rec.Serial = serial
	p.ev.Serial = serial
	// As p.cert.SignCert would, without marshalling the certificate twice
	// by reflection (certwire.TestSignMatches).
	wire, err := certwire.Sign(p.cert, a.Rand, sgn)
	if err != nil {
		return fmt.Errorf("ca: sign certificate %d: %w", serial, err)
	}
	// Invariant 2, checked on the result whatever the signer did.
	if p.cert.Signature.Format == ssh.KeyAlgoRSA {
		return fmt.Errorf("ca: refusing SHA-1 signature on certificate %d", serial)
	}
	p.rec.Cert = certwire.LineOf(p.cert, wire)
	return nil
}

func (a *Authority) logIssued(ctx context.Context, p *prepared) {
	if a.Log == nil {
		return
	}
	attrs := []any{"serial", p.rec.Serial, "role", p.rec.Role, "key_id", p.rec.KeyID, "type", p.rec.CAType, "subject", p.rec.SubjectFingerprint}
	if id := p.req.Details["request_id"]; id != "" {
		attrs = append([]any{"request_id", id}, attrs...)
	}
	a.Log.InfoContext(ctx, "certificate issued", attrs...)
}

// maxSignAttempts bounds the retries of a certificate whose CA key was
// rotated between signing and recording.
const maxSignAttempts = 3

// Sign is the one issuance path of every door. It verifies a second factor
// given with the request, asks policy.Decide, spends an enrollment token,
// signs with a fresh serial, and returns the certificate once it and its
// audit entry are durably recorded. Refusals are recorded in the audit log
// with the rule that decided them and returned as *policy.DenyError,
// *KeyError or ErrTokenInvalid; nothing else changes.
func (a *Authority) Sign(ctx context.Context, req Request) (*ssh.Certificate, error) {
	if req.TOTP != "" {
		if rule, err := a.verifyTOTP(ctx, req.Caller, req.TOTP); err != nil {
			if rule == "" {
				return nil, err
			}
			return nil, a.Deny(ctx, req, rule, err)
		}
		req.Caller.MFA = true
	}
	caType := CAType(req.Type)
	spent := false
	freshKRL := false
	for attempt := 1; ; attempt++ {
		key, err := a.cachedActiveKey(ctx, caType)
		if err != nil {
			return nil, err
		}
		rx, err := a.revokedIndexOf(ctx, caType, freshKRL)
		if err != nil {
			return nil, err
		}
		p, rule, err := a.prepare(ctx, req, key, rx)
		if err != nil {
			return nil, a.Deny(ctx, req, rule, err)
		}
		if req.Caller.Kind == policy.CallerEnroll && req.renew == nil && !spent {
			// One use only: spend it first; a failure to sign then costs a new token.
			if rule, err := a.spendEnrollToken(ctx, req); err != nil {
				if rule == "" {
					return nil, err
				}
				return nil, a.Deny(ctx, req, rule, err)
			}
			spent = true
		}
		sgn, err := a.Signer(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("ca: open %s CA key: %w", caType, err)
		}
		serial, err := a.serials.take(ctx, a.Store, 1)
		if err != nil {
			return nil, err
		}
		if err := a.signPrepared(p, serial, sgn); err != nil {
			return nil, err
		}
		item := store.BatchItem{Cert: p.rec, Event: p.ev, TokenID: req.tokenID()}
		if rx != nil {
			item.CheckRevocations, item.RevocationsAt, item.Probe = true, rx.version, func() store.RevocationProbe { return revocationProbe(p.cert) }
		}
		err = a.commits.commit(ctx, a.Store, item)
		switch {
		case errors.Is(err, store.ErrCAKeyNotActive) && attempt < maxSignAttempts:
			// Rotated meanwhile: sign again with the new active key.
			a.forgetActiveKey(caType)
			continue
		case errors.Is(err, store.ErrRevocationsChanged) && attempt < maxSignAttempts:
			// Revoked since the cached index was read: read it again, and
			// prepare refuses the request naming the revocation.
			freshKRL = true
			continue
		case errors.Is(err, store.ErrTokenInvalid):
			return nil, a.Deny(ctx, req, "token-invalid", fmt.Errorf("ca: %w", err))
		case errors.Is(err, store.ErrRenewedRevoked):
			// Revoked while the renewal was being signed.
			return nil, a.Deny(ctx, req, "bad-certificate", &CredentialError{Msg: "certificate is revoked"})
		case err != nil:
			return nil, fmt.Errorf("ca: record certificate: %w", err)
		}
		a.logIssued(ctx, p)
		return p.cert, nil
	}
}

// spendEnrollToken marks the request's enrollment token used, audited.
func (a *Authority) spendEnrollToken(ctx context.Context, req Request) (rule string, err error) {
	t := req.Caller.Token
	ev := audit.Entry{Time: a.now(), Actor: req.actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "enrollment token used",
		Details: map[string]string{"request_id": req.Details["request_id"], "token": t.ID}}
	if err := a.Store.ConsumeToken(ctx, t.ID, a.now(), ev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return policy.RuleTokenUsed, &policy.DenyError{Rule: policy.RuleTokenUsed, Msg: "enrollment token " + t.Name + " was already used"}
		}
		return "", fmt.Errorf("ca: spend enrollment token: %w", err)
	}
	return "", nil
}

// lineageOf is the lineage recorded with the certificate of req.
func lineageOf(req Request, issued time.Time) store.Lineage {
	if req.lineage != nil {
		l := *req.lineage
		l.MFA = l.MFA || req.Caller.MFA
		return l
	}
	c := req.Caller
	l := store.Lineage{Caller: c.Kind, Identity: c.User, Groups: slices.Clone(c.Groups), MFA: c.MFA, AuthTime: c.AuthTime}
	if l.AuthTime.IsZero() || l.AuthTime.After(issued) {
		l.AuthTime = issued
	}
	if c.Token != nil {
		l.TokenID = c.Token.ID
	}
	return l
}

// maxAuditField bounds free text from a request in an audit entry.
const maxAuditField = 512

// clip shortens s for the audit log, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxAuditField {
		return s
	}
	cut := maxAuditField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// AuditRole is the role name to record for a request: the name itself when
// the policy defines it, else a bounded, marked copy, so that input never
// grows the log or a metric label without bound.
func AuditRole(roles map[string]policy.Role, name string) string {
	if _, ok := roles[name]; ok || name == "" {
		return name
	}
	const max = 64
	if len(name) > max || !utf8.ValidString(name) {
		cut := min(len(name), max)
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut] + "..."
	}
	return fmt.Sprintf("unknown:%q", name)
}

// SignMany signs a batch of requests (the CLI's batch mode, the service's
// batch endpoints): serials are reserved in one block, certificates signed
// on every CPU, and all records — certificates and denials alike — written
// in one transaction. It returns a certificate or an error for each
// request, in order; err is set when nothing could be recorded. As in
// Sign, a certificate refused at recording because the CA key rotated or a
// revocation came in meanwhile is decided and signed again (with a fresh
// serial), so a revocation that now covers it is a recorded denial.
func (a *Authority) SignMany(ctx context.Context, reqs []Request) ([]*ssh.Certificate, []error, error) {
	certs := make([]*ssh.Certificate, len(reqs))
	errs := make([]error, len(reqs))
	todo := make([]int, len(reqs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 1; len(todo) > 0; attempt++ {
		sub := make([]Request, len(todo))
		for j, i := range todo {
			sub[j] = reqs[i]
		}
		b, err := a.PrepareMany(ctx, sub)
		var cs []*ssh.Certificate
		var es []error
		if err == nil {
			cs, es, err = b.commit(ctx, true)
		}
		if err != nil {
			if attempt == 1 {
				return nil, nil, err
			}
			// What the first attempt recorded stands; the rest failed.
			for _, i := range todo {
				errs[i] = err
			}
			break
		}
		var again []int
		for j, i := range todo {
			certs[i], errs[i] = cs[j], es[j]
			if attempt < maxSignAttempts && (errors.Is(es[j], store.ErrCAKeyNotActive) || errors.Is(es[j], store.ErrRevocationsChanged)) {
				again = append(again, i)
			}
		}
		todo = again
	}
	return certs, errs, nil
}

// Batch is SignMany cut in two: its certificates are signed, with serials
// reserved, but nothing is recorded until Commit, and no certificate may
// leave the process before Commit has returned it (invariant 3). A caller
// can meanwhile stage the output files (see atomicfile.StageMany).
type Batch struct {
	a     *Authority
	preps []*prepared
	errs  []error
	rxs   map[string]*revokedIndex // by CA type, the revocations checked
}

// RuleBatchUnsupported refuses, in SignMany and PrepareMany, a request
// that only Sign (or Renew) decides completely.
const RuleBatchUnsupported = "batch-unsupported"

// notBatchable says why req must go through Sign alone, or nil. The batch
// path decides with prepare only; Sign does more for some requests —
// verifies a TOTP code (which then counts as a second factor), spends a
// single-use enrollment token, carries a renewal's lineage — and a batch
// that took such a request would skip that step.
func notBatchable(req Request) error {
	var msg string
	switch {
	case req.TOTP != "":
		msg = "a request with a TOTP code is decided alone, not in a batch: send it by itself"
	case req.Caller.Kind == policy.CallerEnroll:
		msg = "an enrollment token obtains one certificate, by a request of its own, not in a batch"
	case req.renew != nil || req.lineage != nil:
		msg = "a renewal is decided alone, not in a batch"
	default:
		return nil
	}
	return &policy.DenyError{Rule: RuleBatchUnsupported, Msg: msg}
}

// PrepareMany checks and signs reqs (see SignMany) without recording them.
// A request that Sign would treat beyond the access decision — one with a
// TOTP code, from an enrollment token, a renewal — is refused with rule
// RuleBatchUnsupported (recorded like every denial), never signed.
func (a *Authority) PrepareMany(ctx context.Context, reqs []Request) (*Batch, error) {
	b := &Batch{a: a, preps: make([]*prepared, len(reqs)), errs: make([]error, len(reqs))}
	keys := map[string]store.CAKey{}
	rxs := map[string]*revokedIndex{}
	b.rxs = rxs
	for _, req := range reqs {
		caType := CAType(req.Type)
		if _, seen := keys[caType]; !seen {
			k, err := ActiveKey(ctx, a.Store, caType)
			if err != nil {
				return nil, err
			}
			keys[caType] = k
			if rxs[caType], err = a.revokedIndexOf(ctx, caType, true); err != nil {
				return nil, err
			}
		}
	}
	// Policy checks on every CPU too: each is small, but a batch has thousands.
	_ = parallel(len(reqs), func(i int) error {
		req := reqs[i]
		// First of all: the batch must not skip a step of Sign.
		rule, err := RuleBatchUnsupported, notBatchable(req)
		var p *prepared
		if err == nil {
			p, rule, err = a.prepare(ctx, req, keys[CAType(req.Type)], rxs[CAType(req.Type)])
		}
		if err != nil {
			b.errs[i] = err
			b.preps[i] = &prepared{req: req, ev: a.denial(req, rule, err)}
			return nil
		}
		b.preps[i] = p
		return nil
	})
	var ok []int
	for i := range reqs {
		if b.errs[i] == nil {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return b, nil
	}
	// Open the keys first: a key that cannot be opened must not cost serials.
	signers := map[string]ssh.Signer{}
	for caType, k := range keys {
		s, err := a.Signer(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("ca: open %s CA key: %w", caType, err)
		}
		signers[caType] = s
	}
	first, err := a.serials.take(ctx, a.Store, len(ok))
	if err != nil {
		return nil, err
	}
	if err := parallel(len(ok), func(j int) error {
		p := b.preps[ok[j]]
		return a.signPrepared(p, first+uint64(j), signers[p.rec.CAType])
	}); err != nil {
		return nil, err
	}
	return b, nil
}

// Signed returns, per request, the signed but not yet recorded certificate,
// or nil where the request was refused.
func (b *Batch) Signed() []*ssh.Certificate {
	out := make([]*ssh.Certificate, len(b.preps))
	for i, p := range b.preps {
		if b.errs[i] == nil {
			out[i] = p.cert
		}
	}
	return out
}

// Commit records the batch — certificates and denials — and returns a
// certificate or an error for each request, in order; err is set when
// nothing could be recorded. A batch of more than maxBatch requests is
// recorded in a transaction per maxBatch: one that fails after others
// leaves what they recorded issued and refuses the rest with its error. A
// certificate whose API token was revoked or expired since the decision is
// refused (ErrTokenInvalid) and that denial recorded, as Sign does.
func (b *Batch) Commit(ctx context.Context) ([]*ssh.Certificate, []error, error) {
	return b.commit(ctx, false)
}

// commit is Commit; shared records the batch through the authority's group
// commit, where concurrent batches and single requests share transactions
// (and fsyncs) — the service's batch door —, else in transactions of its
// own (the CLI, which stages its files meanwhile).
func (b *Batch) commit(ctx context.Context, shared bool) ([]*ssh.Certificate, []error, error) {
	a := b.a
	record := func(items []store.BatchItem) ([]error, error) { return a.Store.CommitBatch(ctx, items) }
	if shared {
		record = func(items []store.BatchItem) ([]error, error) { return a.commits.commitAll(ctx, a.Store, items) }
	}
	certs := make([]*ssh.Certificate, len(b.preps))
	errs := slices.Clone(b.errs)
	items := make([]store.BatchItem, len(b.preps))
	var refused []int // refused at recording: the token is no longer valid
	for i, p := range b.preps {
		items[i] = store.BatchItem{Cert: p.rec, Event: p.ev}
		if p.rec != nil {
			items[i].TokenID = p.req.tokenID()
			if rx := b.rxs[p.rec.CAType]; rx != nil {
				items[i].CheckRevocations, items[i].RevocationsAt, items[i].Probe = true, rx.version, func() store.RevocationProbe { return revocationProbe(p.cert) }
			}
		}
	}
	for lo := 0; lo < len(items); lo += maxBatch {
		hi := min(lo+maxBatch, len(items))
		cerrs, err := record(items[lo:hi])
		if err != nil {
			err = fmt.Errorf("ca: record certificates: %w", err)
			if lo == 0 {
				return nil, nil, err
			}
			// What the transactions before this one recorded stands; the
			// rest is not issued.
			for i := lo; i < len(errs); i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			break
		}
		for j, e := range cerrs {
			if e != nil && errs[lo+j] == nil {
				errs[lo+j] = fmt.Errorf("ca: record certificate: %w", e)
				if errors.Is(e, store.ErrTokenInvalid) {
					// Revoked or expired since authentication: a refusal,
					// recorded as Sign records it.
					errs[lo+j] = fmt.Errorf("ca: %w", e)
					refused = append(refused, lo+j)
				}
			}
		}
	}
	if len(refused) > 0 {
		denials := make([]store.BatchItem, len(refused))
		for k, i := range refused {
			denials[k] = store.BatchItem{Event: a.denial(b.preps[i].req, "token-invalid", errs[i])}
		}
		if _, err := record(denials); err != nil {
			for _, i := range refused {
				errs[i] = errors.Join(errs[i], fmt.Errorf("ca: record denial: %w", err))
			}
		}
	}
	for i, p := range b.preps {
		if errs[i] == nil {
			certs[i] = p.cert
			a.logIssued(ctx, p)
		}
	}
	return certs, errs, nil
}

// parallel runs fn(0..n-1) on every CPU and returns the first error.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
