package ca

import (
	"context"
	"errors"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// CredentialError is a certificate presented for renewal that is not a
// valid, live certificate of this CA: the holder is not authenticated.
type CredentialError struct{ Msg string }

func (e *CredentialError) Error() string { return "ca: " + e.Msg }

// RenewRequest renews a certificate whose holder has proven possession of
// its key (the door checks that proof).
type RenewRequest struct {
	Cert *ssh.Certificate
	// TTL is the lifetime asked for; 0 for the role's default.
	TTL time.Duration
	// TOTP is a fresh second factor, needed for roles that require MFA.
	TOTP    string
	Details map[string]string
}

// Renew is issuance by the same identity under today's policy: the
// certificate presented must be a live, unrevoked certificate of this CA,
// and its lineage — who it was issued to, their groups, how and when they
// first authenticated, the token behind it as it is now — becomes the
// caller of Sign. The renewal keeps the key ID and the principals, and
// records the lineage (origin serial, identity, first authentication).
func (a *Authority) Renew(ctx context.Context, r RenewRequest) (*ssh.Certificate, error) {
	cert := r.Cert
	caType := CAType(policy.CertType(cert.CertType))
	base := Request{Details: r.Details} // not authenticated yet
	refuse := func(msg string) (*ssh.Certificate, error) {
		err := &CredentialError{Msg: msg}
		return nil, a.Deny(ctx, base, "bad-certificate", err)
	}
	if msg, err := a.CheckLive(ctx, cert, caType); err != nil {
		return nil, err
	} else if msg != "" {
		return refuse(msg)
	}
	rec, err := a.Store.GetCert(ctx, cert.Serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse("certificate is not in this CA's records")
	case err != nil:
		return nil, err
	case rec.CAType != caType || rec.SubjectFingerprint != ssh.FingerprintSHA256(cert.Key) ||
		rec.CAFingerprint != ssh.FingerprintSHA256(cert.SignatureKey) || rec.KeyID != cert.KeyId:
		return refuse("certificate does not match this CA's record of it")
	}

	lin, c, err := a.lineageCaller(ctx, rec)
	if err != nil {
		return nil, err
	}
	next := lin
	next.Renews = rec.Serial
	if next.Origin == 0 {
		next.Origin = rec.Serial
	}
	req := Request{Caller: c, Type: policy.CertType(cert.CertType), Role: rec.Role, KeyID: rec.KeyID, TTL: r.TTL,
		PublicKey: cert.Key, TOTP: r.TOTP, Details: r.Details,
		renew:   &policy.Renewal{Serial: rec.Serial, KeyID: rec.KeyID, Principals: rec.Principals},
		lineage: &next}
	return a.Sign(ctx, req)
}

// CheckLive says why cert is not a live certificate of this CA ("" if it
// is): signed by a generation servers still trust, valid now, not revoked.
func (a *Authority) CheckLive(ctx context.Context, cert *ssh.Certificate, caType string) (string, error) {
	keys, err := a.Store.ListCAKeys(ctx, caType)
	if err != nil {
		return "", err
	}
	live := false
	for _, k := range keys {
		if k.State != store.StateRetired && k.State != store.StateRevoked && k.Fingerprint == ssh.FingerprintSHA256(cert.SignatureKey) {
			live = true
		}
	}
	if !live {
		return "certificate was not signed by a live key of this CA", nil
	}
	if cert.Signature == nil || cert.Signature.Format == ssh.KeyAlgoRSA {
		return "certificate signature algorithm not accepted", nil
	}
	if len(cert.ValidPrincipals) == 0 {
		return "certificate has no principals", nil
	}
	checker := ssh.CertChecker{Clock: a.now, SupportedCriticalOptions: []string{policy.OptionSourceAddress, policy.OptionForceCommand, "verify-required"}}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return "certificate is not valid now", nil
	}
	revoked, err := a.revoked(ctx, cert, caType)
	if err != nil {
		return "", err
	}
	if revoked {
		return "certificate is revoked", nil
	}
	return "", nil
}

// revoked checks cert against the current KRL of caType.
func (a *Authority) revoked(ctx context.Context, cert *ssh.Certificate, caType string) (bool, error) {
	k, err := a.CurrentKRL(ctx, caType)
	if err != nil {
		return false, err
	}
	return k.Parsed.Check(cert) != nil, nil
}

// lineageCaller rebuilds the caller a certificate was issued to, with the
// state of its token as the store has it now. Records from before
// lineages were kept are read from their requester.
func (a *Authority) lineageCaller(ctx context.Context, rec *store.CertRecord) (store.Lineage, policy.Caller, error) {
	lin := rec.Lineage
	if lin.Caller == "" {
		kind, name, _ := strings.Cut(rec.Requester, ":")
		lin = store.Lineage{Identity: name, AuthTime: rec.IssuedAt}
		switch kind {
		case "oidc":
			lin.Caller = policy.CallerPerson
		case "cli":
			lin.Caller = policy.CallerAdmin
		case "token":
			lin.Caller = policy.CallerToken
			if rec.CAType == "host" {
				lin.Caller = policy.CallerEnroll
			}
			toks, err := a.Store.ListTokens(ctx)
			if err != nil {
				return lin, policy.Caller{}, err
			}
			for _, t := range toks {
				if t.Name == name {
					lin.TokenID = t.ID
				}
			}
		default:
			lin.Caller = "unknown"
		}
	}
	c := policy.Caller{Kind: lin.Caller, Identity: policy.Identity{User: lin.Identity, Groups: lin.Groups}, AuthTime: lin.AuthTime}
	if lin.TokenID != "" {
		t, err := a.Store.GetToken(ctx, lin.TokenID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Deleted: treat as revoked.
			c.Token = &policy.Token{ID: lin.TokenID, Name: lin.Identity, RevokedAt: a.now()}
		case err != nil:
			return lin, c, err
		default:
			c.Token = PolicyToken(t)
		}
	} else if lin.Caller == policy.CallerToken || lin.Caller == policy.CallerEnroll {
		c.Token = &policy.Token{Name: lin.Identity, RevokedAt: a.now()}
	}
	return lin, c, nil
}
