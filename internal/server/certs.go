package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

func (s *Server) handleUserCert(w http.ResponseWriter, r *http.Request) error {
	return s.handleCert(w, r, policy.UserCert)
}

func (s *Server) handleHostCert(w http.ResponseWriter, r *http.Request) error {
	return s.handleCert(w, r, policy.HostCert)
}

// denyRequest records a refusal in the audit log and the metrics.
func (s *Server) denyRequest(r *http.Request, actor, role string, rule string, err error) error {
	req := ca.Request{Role: role, Actor: actor, Details: map[string]string{"request_id": RequestID(r.Context()), "source": "service"}}
	s.metrics.denied(role, rule)
	return s.o.Authority.Deny(r.Context(), req, rule, err)
}

func ruleOf(err error) string {
	var he *httpError
	var de *policy.DenyError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &de):
		return de.Rule
	case ca.IsKeyError(err):
		return "bad-key"
	}
	return "error"
}

func (s *Server) handleCert(w http.ResponseWriter, r *http.Request, t policy.CertType) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.denyRequest(r, "unauthenticated", "", "unauthorized", err)
	}
	if !s.limiter.allow(c.actor) {
		return s.denyRequest(r, c.actor, "", "rate-limited", &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	var req api.CertRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return s.denyRequest(r, c.actor, "", ruleOf(err), err)
	}
	if c.token != nil && c.token.Kind == store.TokenEnroll && t == policy.HostCert {
		// An enrollment token names its role and host names; the host need not repeat them.
		if req.Role == "" && len(c.token.Roles) == 1 {
			req.Role = c.token.Roles[0]
		}
		if len(req.Principals) == 0 {
			req.Principals = c.token.Principals
		}
	}
	deny := func(err error) error { return s.denyRequest(r, c.actor, req.Role, ruleOf(err), err) }
	if req.Role == "" {
		return deny(badRequest("bad-request", "role is required"))
	}
	if len(req.Principals) > policy.MaxPrincipals {
		return deny(badRequest("too-many-principals", "at most %d principals", policy.MaxPrincipals))
	}
	pub, err := parseKeyLine(req.PublicKey)
	if err != nil {
		return deny(err)
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = config.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return deny(badRequest("bad-ttl", "ttl %q is not a positive duration", req.TTL))
		}
	}
	if t == policy.HostCert && len(req.Principals) == 0 {
		return deny(badRequest("bad-request", "host certificates need principals (the host's names)"))
	}
	if err := s.authorizeRole(r.Context(), c, req.Role, t, req.TOTP); err != nil {
		return deny(err)
	}
	if c.token != nil && c.token.Kind == store.TokenEnroll {
		for _, p := range req.Principals {
			if !slices.Contains(c.token.Principals, p) {
				return deny(forbidden("principal-not-allowed", "enrollment token %s is not bound to host name %q", c.token.Name, p))
			}
		}
	}
	reqID := RequestID(r.Context())
	keyID := fmt.Sprintf("%s role=%s req=%s", c.actor, req.Role, reqID)
	caReq := ca.Request{Type: t, Role: req.Role, KeyID: keyID, Principals: req.Principals, TTL: ttl, PublicKey: pub,
		Actor: c.actor, Identity: c.identity, Details: map[string]string{"request_id": reqID, "source": "service"}}
	if c.token != nil && c.token.Kind == store.TokenRole {
		// The token may come from cache: the store checks, in the transaction
		// that records the certificate, that it is still valid.
		caReq.TokenID = c.token.ID
	}
	if c.token != nil && c.token.Kind == store.TokenEnroll {
		// One use only: consume it first; a failure to sign then costs a new token.
		ev := audit.Entry{Time: s.now(), Actor: c.actor, Action: audit.ActionToken, Outcome: "ok", Reason: "enrollment token used",
			Details: map[string]string{"request_id": reqID, "token": c.token.ID}}
		if err := s.o.Store.ConsumeToken(r.Context(), c.token.ID, s.now(), ev); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return deny(unauthorized("enrollment token was already used", nil))
			}
			return err
		}
	}
	cert, err := s.o.Authority.Sign(r.Context(), caReq)
	if err != nil {
		if rule := ruleOf(err); rule != "error" {
			s.metrics.denied(req.Role, rule)
		}
		return err
	}
	s.metrics.issued(req.Role, ca.CAType(t))
	noteSerial(w, cert.Serial)
	writeJSON(w, http.StatusOK, certResponse(cert, reqID))
	return nil
}

func certResponse(cert *ssh.Certificate, reqID string) api.CertResponse {
	return api.CertResponse{
		Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
		Serial:      cert.Serial, KeyID: cert.KeyId, Principals: cert.ValidPrincipals,
		ValidAfter:  time.Unix(int64(cert.ValidAfter), 0).UTC(),
		ValidBefore: time.Unix(int64(cert.ValidBefore), 0).UTC(),
		RequestID:   reqID,
	}
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	ch := base64.RawURLEncoding.EncodeToString(b[:])
	exp := s.now().Add(ChallengeTTL)
	if err := s.o.Store.PutChallenge(r.Context(), ch, exp); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Challenge{Challenge: ch, ExpiresAt: exp.UTC()})
	return nil
}

// handleRenew issues a fresh certificate to the holder of a valid one: same
// role, principals and identity, proven by a signature over a one-time
// challenge with the certified key.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.RenewRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return s.denyRequest(r, "unauthenticated", "", ruleOf(err), err)
	}
	deny := func(actor, role string, err error) error { return s.denyRequest(r, actor, role, ruleOf(err), err) }
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.Certificate))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return deny("unauthenticated", "", badRequest("bad-certificate", "certificate is not a valid OpenSSH certificate line"))
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return deny("unauthenticated", "", badRequest("bad-certificate", "give the certificate, not a plain key"))
	}
	if err := s.o.Store.TakeChallenge(ctx, req.Challenge, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return deny("unauthenticated", "", unauthorized("unknown or expired challenge", nil))
		}
		return err
	}
	sigBytes, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		return deny("unauthenticated", "", badRequest("bad-signature", "signature is not base64"))
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBytes, &sig); err != nil {
		return deny("unauthenticated", "", badRequest("bad-signature", "signature is not an SSH signature"))
	}
	if sig.Format == ssh.KeyAlgoRSA {
		return deny("unauthenticated", "", unauthorized("ssh-rsa (SHA-1) signatures are not accepted", nil))
	}
	if err := cert.Key.Verify([]byte(api.RenewSignaturePrefix+req.Challenge), &sig); err != nil {
		return deny("unauthenticated", "", unauthorized("proof of possession failed", err))
	}
	caType := ca.CAType(policy.CertType(cert.CertType))
	if err := s.checkOurValidCert(r, cert, caType); err != nil {
		return deny("unauthenticated", "", err)
	}
	rec, err := s.o.Store.GetCert(ctx, cert.Serial)
	if err != nil || rec.CAType != caType || rec.SubjectFingerprint != ssh.FingerprintSHA256(cert.Key) {
		return deny("unauthenticated", "", unauthorized("certificate is not in this CA's records", err))
	}
	actor := rec.Requester
	if name, ok := strings.CutPrefix(actor, "token:"); ok {
		// A revoked token cuts off renewals of what it obtained.
		if revoked, err := s.tokenRevoked(r, name); err != nil {
			return err
		} else if revoked {
			return deny(actor, rec.Role, unauthorized("the token that obtained this certificate was revoked", nil))
		}
	}
	if !s.limiter.allow(actor) {
		return s.denyRequest(r, actor, rec.Role, "rate-limited", &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = config.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return deny(actor, rec.Role, badRequest("bad-ttl", "ttl %q is not a positive duration", req.TTL))
		}
	}
	reqID := RequestID(ctx)
	user := strings.TrimPrefix(strings.TrimPrefix(actor, "oidc:"), "token:")
	caReq := ca.Request{Type: policy.CertType(cert.CertType), Role: rec.Role,
		KeyID:      fmt.Sprintf("%s role=%s req=%s renewed=%d", actor, rec.Role, reqID, cert.Serial),
		Principals: rec.Principals, TTL: ttl, PublicKey: cert.Key, Actor: actor, Identity: policy.Identity{User: user},
		Details: map[string]string{"request_id": reqID, "source": "renew", "renews": fmt.Sprint(cert.Serial)}}
	newCert, err := s.o.Authority.Sign(ctx, caReq)
	if err != nil {
		return err
	}
	s.metrics.issued(rec.Role, caType)
	noteSerial(w, newCert.Serial)
	writeJSON(w, http.StatusOK, certResponse(newCert, reqID))
	return nil
}

func (s *Server) tokenRevoked(r *http.Request, name string) (bool, error) {
	toks, err := s.o.Store.ListTokens(r.Context())
	if err != nil {
		return false, err
	}
	for _, t := range toks {
		if t.Name == name && !t.RevokedAt.IsZero() {
			return true, nil
		}
	}
	return false, nil
}

// checkOurValidCert checks that cert was signed by a live key of this CA,
// is valid now, and is not revoked.
func (s *Server) checkOurValidCert(r *http.Request, cert *ssh.Certificate, caType string) error {
	keys, err := s.o.Store.ListCAKeys(r.Context(), caType)
	if err != nil {
		return err
	}
	ours := false
	for _, k := range keys {
		if k.State == store.StateRetired || k.State == store.StateRevoked {
			continue
		}
		if k.Fingerprint == ssh.FingerprintSHA256(cert.SignatureKey) {
			ours = true
		}
	}
	if !ours {
		return unauthorized("certificate was not signed by a live key of this CA", nil)
	}
	if cert.Signature == nil || cert.Signature.Format == ssh.KeyAlgoRSA {
		return unauthorized("certificate signature algorithm not accepted", nil)
	}
	checker := ssh.CertChecker{Clock: s.now, SupportedCriticalOptions: []string{"source-address", "force-command", "verify-required"}}
	if len(cert.ValidPrincipals) == 0 {
		return unauthorized("certificate has no principals", nil)
	}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return unauthorized("certificate is not valid now", err)
	}
	k, err := s.currentKRL(r, caType)
	if err != nil {
		return err
	}
	if m := k.parsed.Check(cert); m != nil {
		return unauthorized("certificate is revoked", nil)
	}
	return nil
}

// handleHostReport records what a server's agent has installed; refusals
// are audited.
func (s *Server) handleHostReport(w http.ResponseWriter, r *http.Request) error {
	if err := s.hostReport(w, r); err != nil {
		if ruleOf(err) != "error" {
			return s.refuse(r, "host", audit.ActionHostReport, err)
		}
		return err
	}
	return nil
}
