package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/oidc"
)

// oidcVerifier is what package oidc verifies ID tokens with: an
// *oidc.Verifier, or an *oidc.Pending one still discovering its issuer.
type oidcVerifier interface {
	Verify(ctx context.Context, rawIDToken string) (*oidc.Identity, error)
}

// OIDC adapts a verifier of package oidc to IDTokenVerifier, for `sshca
// serve` and the tests alike. A Pending verifier also reports its issuer's
// health (OIDCHealth) for /readyz and sshca_oidc_up.
func OIDC(v oidcVerifier) IDTokenVerifier {
	a := oidcAdapter{v}
	if p, ok := v.(*oidc.Pending); ok {
		return pendingOIDC{a, p}
	}
	return a
}

type oidcAdapter struct{ v oidcVerifier }

func (a oidcAdapter) Verify(ctx context.Context, raw string) (*OIDCIdentity, error) {
	id, err := a.v.Verify(ctx, raw)
	if errors.Is(err, oidc.ErrUnavailable) {
		return nil, fmt.Errorf("%w: %w", ErrOIDCUnavailable, err)
	}
	if err != nil {
		return nil, err
	}
	return &OIDCIdentity{User: id.User, Groups: id.Groups, MFA: id.HasMFA()}, nil
}

type pendingOIDC struct {
	oidcAdapter
	p *oidc.Pending
}

func (a pendingOIDC) OIDCStatus() (bool, time.Time, int) {
	st := a.p.Status()
	return st.Ready, st.Since, st.Attempts
}
