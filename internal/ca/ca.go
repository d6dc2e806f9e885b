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
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
)

// Store is the storage the authority needs.
type Store interface {
	IssueCert(ctx context.Context, rec *store.CertRecord, ev audit.Entry) (uint64, error)
	SetCertBody(ctx context.Context, serial uint64, cert string) error
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	Append(ctx context.Context, ev audit.Entry) (audit.Entry, error)
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
}

// Request asks for one certificate.
type Request struct {
	Type       policy.CertType
	Role       string
	KeyID      string
	Principals []string
	TTL        time.Duration
	PublicKey  ssh.PublicKey
	Actor      string          // who asks, for the audit log: "cli:root", "token:ci"
	Identity   policy.Identity // authenticated identity (templates)
	Details    map[string]string
}

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

// Deny records a refused request in the audit log and returns err (joined
// with the audit failure, if any).
func (a *Authority) Deny(ctx context.Context, req Request, rule string, err error) error {
	ev := audit.Entry{Time: a.now(), Actor: req.Actor, Action: audit.ActionDeny, Role: req.Role, KeyID: req.KeyID,
		Outcome: "denied", Reason: rule + ": " + err.Error(), Details: req.Details}
	if _, aerr := a.Store.Append(ctx, ev); aerr != nil {
		return errors.Join(err, fmt.Errorf("ca: record denial: %w", aerr))
	}
	return err
}

// Sign checks req against the policy, records it with a fresh serial and
// returns the signed certificate. Refusals are recorded in the audit log and
// returned as *policy.DenyError or *KeyError; nothing else changes.
func (a *Authority) Sign(ctx context.Context, req Request) (*ssh.Certificate, error) {
	caType := CAType(req.Type)
	deny := func(rule string, err error) (*ssh.Certificate, error) {
		return nil, a.Deny(ctx, req, rule, err)
	}
	if req.PublicKey == nil {
		return deny("bad-key", &KeyError{"no public key given"})
	}
	if err := CheckSubjectKey(req.PublicKey); err != nil {
		return deny("bad-key", err)
	}
	if err := ValidKeyID(req.KeyID); err != nil {
		return deny("bad-key-id", &policy.DenyError{Rule: "bad-key-id", Msg: err.Error()})
	}
	grant, err := policy.Decide(a.Roles, req.Identity, policy.Request{Type: req.Type, Role: req.Role, Principals: req.Principals, TTL: req.TTL})
	if err != nil {
		rule := "policy"
		var de *policy.DenyError
		if errors.As(err, &de) {
			rule = de.Rule
		}
		return deny(rule, err)
	}
	// Invariant 1, checked again here whatever policy says.
	if len(grant.Principals) == 0 {
		return deny("empty-principals", &policy.DenyError{Rule: "empty-principals", Msg: "certificate would have no principals"})
	}

	key, err := ActiveKey(ctx, a.Store, caType)
	if err != nil {
		return nil, err
	}
	sgn, err := a.Signer(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("ca: open %s CA key: %w", caType, err)
	}

	now := a.now().Truncate(time.Second)
	validAfter := now.Add(-a.Backdate)
	validBefore := now.Add(grant.TTL)
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
		Requester:          req.Actor,
		IssuedAt:           a.now(),
	}
	details := map[string]string{
		"principals": strings.Join(grant.Principals, ","),
		"valid":      validAfter.UTC().Format(time.RFC3339) + "/" + validBefore.UTC().Format(time.RFC3339),
		"subject":    rec.SubjectFingerprint,
		"ca":         key.Fingerprint,
		"type":       caType,
	}
	for k, v := range req.Details {
		details[k] = v
	}
	ev := audit.Entry{Time: rec.IssuedAt, Actor: req.Actor, Action: audit.ActionIssue, Role: grant.Role, KeyID: req.KeyID, Outcome: "ok", Details: details}
	serial, err := a.Store.IssueCert(ctx, rec, ev)
	if err != nil {
		return nil, fmt.Errorf("ca: record certificate: %w", err)
	}
	if serial == 0 {
		return nil, errors.New("ca: store returned serial 0")
	}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		Serial:          serial,
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
	if err := cert.SignCert(a.Rand, sgn); err != nil {
		return nil, fmt.Errorf("ca: sign certificate %d: %w", serial, err)
	}
	if cert.Signature.Format == ssh.KeyAlgoRSA {
		return nil, fmt.Errorf("ca: refusing SHA-1 signature on certificate %d", serial)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	if err := a.Store.SetCertBody(ctx, serial, line); err != nil {
		return nil, err
	}
	if a.Log != nil {
		attrs := []any{"serial", serial, "role", grant.Role, "key_id", req.KeyID, "type", caType, "subject", rec.SubjectFingerprint}
		if id := req.Details["request_id"]; id != "" {
			attrs = append([]any{"request_id", id}, attrs...)
		}
		a.Log.InfoContext(ctx, "certificate issued", attrs...)
	}
	return cert, nil
}
