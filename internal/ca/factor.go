package ca

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/totp"
)

// verifyTOTP checks a one-time code of the caller's enrolled TOTP secret
// and spends it. A refusal comes back with its rule; rule "" is a failure
// to check (storage).
func (a *Authority) verifyTOTP(ctx context.Context, c policy.Caller, code string) (rule string, err error) {
	if c.Kind != policy.CallerPerson && c.Kind != policy.CallerLocal {
		return policy.RuleMFARequired, &policy.DenyError{Rule: policy.RuleMFARequired, Msg: "TOTP codes are for people: signed in with SSO, or local users"}
	}
	id := c.FactorID()
	secret, last, err := a.Store.GetTOTP(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		how := "enroll with POST /v1/totp/enroll (with an MFA sign-in or an admin's code from sshca totp invite)"
		if c.Kind == policy.CallerLocal {
			how = "enroll at the SSH front door with `totp-enroll CODE` (a code from sshca totp invite " + id + ")"
		}
		return policy.RuleMFARequired, &policy.DenyError{Rule: policy.RuleMFARequired, Msg: fmt.Sprintf("no TOTP enrolled for %s; %s", id, how)}
	}
	if errors.Is(err, store.ErrTampered) {
		// Fail closed, as a refusal the audit log shows: the enrollment was
		// changed outside sshca.
		return "mfa-failed", &policy.DenyError{Rule: "mfa-failed", Msg: fmt.Sprintf("the TOTP enrollment of %s cannot be used (changed outside sshca); an admin must reset it", id)}
	}
	if err != nil {
		return "", fmt.Errorf("ca: read TOTP enrollment: %w", err)
	}
	step, err := totp.Verify(secret, code, a.now(), last)
	if errors.Is(err, totp.ErrReplay) {
		return "mfa-failed", &policy.DenyError{Rule: "mfa-failed", Msg: "TOTP code already used"}
	}
	if err != nil {
		return "mfa-failed", &policy.DenyError{Rule: "mfa-failed", Msg: "TOTP code rejected"}
	}
	if err := a.Store.AdvanceTOTP(ctx, id, step); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "mfa-failed", &policy.DenyError{Rule: "mfa-failed", Msg: "TOTP code already used"}
		}
		return "", fmt.Errorf("ca: record TOTP use: %w", err)
	}
	return "", nil
}

// TOTPStore is what EnrollTOTP needs beyond Store.
type TOTPStore interface {
	PutTOTP(ctx context.Context, identity string, secret []byte, ev audit.Entry) error
}

// ErrAlreadyEnrolled is returned by EnrollTOTP for a person who already has
// a TOTP secret; an admin must reset it first.
var ErrAlreadyEnrolled = errors.New("TOTP is already enrolled; an admin must reset it (sshca totp reset)")

// EnrollTOTP enrolls a second factor for person c: only with a second
// factor already (an MFA sign-in) or with a one-time enrollment code an
// admin issued for that person (invite, "" if none), never with one factor
// alone. It returns the new secret. Refusals are audited with their rule.
func (a *Authority) EnrollTOTP(ctx context.Context, st TOTPStore, c policy.Caller, invite string, details map[string]string) ([]byte, error) {
	refuse := func(rule string, err error) ([]byte, error) {
		ev := audit.Entry{Time: a.now(), Actor: c.Actor(), Action: audit.ActionAdmin, Outcome: "denied", Reason: rule + ": totp enrollment: " + clip(err.Error()), Details: details}
		if _, aerr := a.Store.Append(ctx, ev); aerr != nil {
			return nil, errors.Join(err, fmt.Errorf("ca: record refusal: %w", aerr))
		}
		return nil, err
	}
	var inv *store.Token
	if invite != "" {
		id, secret, err := SplitToken(invite)
		if err == nil {
			inv, err = a.Store.GetToken(ctx, id)
			if err == nil && !TokenSecretMatches(inv, secret) {
				inv = nil
			}
		}
		if inv == nil || inv.Kind != TokenTOTPInvite {
			return refuse(policy.RuleEnrollmentCode, &policy.DenyError{Rule: policy.RuleEnrollmentCode, Msg: "unknown or invalid enrollment code"})
		}
	}
	if err := policy.MayEnrollTOTP(c, PolicyToken(inv), a.now()); err != nil {
		var de *policy.DenyError
		errors.As(err, &de)
		return refuse(de.Rule, err)
	}
	if inv != nil {
		ev := audit.Entry{Time: a.now(), Actor: c.Actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "totp enrollment code used",
			Details: map[string]string{"token": inv.ID, "request_id": details["request_id"]}}
		if err := a.Store.ConsumeToken(ctx, inv.ID, a.now(), ev); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return refuse(policy.RuleEnrollmentCode, &policy.DenyError{Rule: policy.RuleEnrollmentCode, Msg: "enrollment code was already used"})
			}
			return nil, err
		}
	}
	secret, err := totp.NewSecret(rand.Reader)
	if err != nil {
		return nil, err
	}
	how := "with a multi-factor sign-in"
	if inv != nil {
		how = "with enrollment code " + inv.ID
	}
	d := map[string]string{"user": c.FactorID(), "how": how}
	for k, v := range details {
		d[k] = v
	}
	ev := audit.Entry{Time: a.now(), Actor: c.Actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled", Details: d}
	if err := st.PutTOTP(ctx, c.FactorID(), secret, ev); err != nil {
		if errors.Is(err, store.ErrExists) {
			return refuse("already-enrolled", ErrAlreadyEnrolled)
		}
		return nil, err
	}
	return secret, nil
}
