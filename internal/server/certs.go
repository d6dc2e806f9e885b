package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/totp"
)

func (s *Server) handleUserCert(w http.ResponseWriter, r *http.Request) error {
	return s.handleCert(w, r, policy.UserCert)
}

func (s *Server) handleHostCert(w http.ResponseWriter, r *http.Request) error {
	return s.handleCert(w, r, policy.HostCert)
}

// denyRequest records a refusal in the audit log and the metrics.
func (s *Server) denyRequest(r *http.Request, c policy.Caller, role string, rule string, err error) error {
	req := ca.Request{Caller: c, Role: role, Details: map[string]string{"request_id": RequestID(r.Context()), "source": "service"}}
	s.metrics.denied(s.roleLabel(role), rule)
	return s.o.Authority.Deny(r.Context(), req, rule, err)
}

// roleLabel is a role name fit for a metric label: only roles of the
// policy, so that input never creates a label.
func (s *Server) roleLabel(role string) string {
	if role == "" {
		return ""
	}
	if _, ok := s.o.Authority.Roles[role]; ok {
		return role
	}
	return "unknown"
}

func ruleOf(err error) string {
	var he *httpError
	var de *policy.DenyError
	var ce *ca.CredentialError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &de):
		return de.Rule
	case errors.As(err, &ce):
		return "bad-certificate"
	case ca.IsKeyError(err):
		return "bad-key"
	}
	return "error"
}

// Field limits of a certificate request, checked before anything is
// stored, logged or labelled.
const (
	maxRoleLen      = 64
	maxPrincipalLen = 255
	maxTTLLen       = 32
	maxTOTPLen      = 16
	maxWindowLen    = 40
)

// checkCertRequest bounds the fields of req.
func checkCertRequest(req *api.CertRequest) error {
	switch {
	case len(req.Role) > maxRoleLen:
		return badRequest("bad-request", "role is longer than %d bytes", maxRoleLen)
	case len(req.Principals) > policy.MaxPrincipals:
		return badRequest("too-many-principals", "at most %d principals", policy.MaxPrincipals)
	case len(req.TOTP) > maxTOTPLen:
		return badRequest("bad-request", "totp is longer than %d bytes", maxTOTPLen)
	case len(req.ValidAfter) > maxWindowLen || len(req.ValidBefore) > maxWindowLen:
		return badRequest("bad-validity", "valid_after and valid_before are at most %d bytes", maxWindowLen)
	}
	for _, p := range req.Principals {
		if len(p) > maxPrincipalLen {
			return badRequest("bad-principal", "a principal is longer than %d bytes", maxPrincipalLen)
		}
	}
	return nil
}

func parseTTL(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if len(v) > maxTTLLen {
		return 0, badRequest("bad-ttl", "ttl %q... is not a positive duration", v[:maxTTLLen])
	}
	ttl, err := config.ParseDuration(v)
	if err != nil || ttl <= 0 {
		return 0, badRequest("bad-ttl", "ttl %q is not a positive duration", v)
	}
	return ttl, nil
}

// parseWindow reads the validity window of a request against the
// service's clock; zero times where none was asked. Whether the window is
// allowed is policy's to decide.
func (s *Server) parseWindow(req *api.CertRequest) (after, before time.Time, err error) {
	now := s.now()
	if req.ValidAfter != "" {
		if after, err = api.ParseWindowTime(req.ValidAfter, now); err != nil {
			return after, before, badRequest("bad-validity", "valid_after %v", err)
		}
	}
	if req.ValidBefore != "" {
		if before, err = api.ParseWindowTime(req.ValidBefore, now); err != nil {
			return after, before, badRequest("bad-validity", "valid_before %v", err)
		}
	}
	return after, before, nil
}

// handleCert is the HTTPS door for new certificates: it turns the request
// into (caller, request) for the authority, which decides, signs and audits.
func (s *Server) handleCert(w http.ResponseWriter, r *http.Request, t policy.CertType) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	if !s.limiter.allow(c.Actor()) {
		return s.denyRequest(r, c, "", "rate-limited", &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	var req api.CertRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return s.denyRequest(r, c, "", ruleOf(err), err)
	}
	if err := checkCertRequest(&req); err != nil {
		return s.denyRequest(r, c, "", ruleOf(err), err)
	}
	deny := func(err error) error { return s.denyRequest(r, c, req.Role, ruleOf(err), err) }
	if req.Role == "" && t == policy.UserCert {
		// The API's shape: only a host's enrollment token implies its role.
		return deny(badRequest("bad-request", "role is required"))
	}
	pub, err := parseKeyLine(req.PublicKey)
	if err != nil {
		return deny(err)
	}
	reqID := RequestID(r.Context())
	caReq, err := s.caRequest(&req, t, reqID, "service")
	if err != nil {
		return deny(err)
	}
	caReq.Caller, caReq.PublicKey = c, pub
	cert, err := s.o.Authority.Sign(r.Context(), caReq)
	if err != nil {
		if rule := ruleOf(err); rule != "error" {
			s.metrics.denied(s.roleLabel(req.Role), rule)
		}
		return err
	}
	s.metrics.issued(s.roleLabel(certRole(cert, req.Role)), ca.CAType(t))
	noteSerial(w, cert.Serial)
	writeCert(w, http.StatusOK, s.certResponse(cert, certRole(cert, req.Role), reqID))
	return nil
}

// caRequest reads the lifetime and validity window of a checked request
// and returns it as the authority's request, without caller and key;
// its details name the request and the door.
func (s *Server) caRequest(req *api.CertRequest, t policy.CertType, reqID, source string) (ca.Request, error) {
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return ca.Request{}, err
	}
	after, before, err := s.parseWindow(req)
	if err != nil {
		return ca.Request{}, err
	}
	return ca.Request{Type: t, Role: req.Role, Principals: req.Principals, TTL: ttl, TOTP: req.TOTP, ValidAfter: after, ValidBefore: before,
		Details: map[string]string{"request_id": reqID, "source": source}}, nil
}

// certRole is the role a certificate was issued under: the one asked for,
// or the enrollment token's (the authority fills it in).
func certRole(cert *ssh.Certificate, asked string) string {
	if asked != "" {
		return asked
	}
	if _, rest, ok := strings.Cut(cert.KeyId, " role="); ok {
		role, _, _ := strings.Cut(rest, " ")
		return role
	}
	return ""
}

func (s *Server) certResponse(cert *ssh.Certificate, role, reqID string) api.CertResponse {
	out := api.CertificateOf(cert, s.now())
	out.Role = role
	out.RequestID = reqID
	return out
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) error {
	// Anyone may ask for a challenge: each costs a row, so they are
	// limited per source address.
	if err := s.admitAnonymous(r); err != nil {
		return err
	}
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

// provePossession checks a signature over a one-time challenge by the key
// of a certificate line: the holder authenticates with the certificate.
func (s *Server) provePossession(r *http.Request, certLine, challenge, signature string) (*ssh.Certificate, error) {
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(certLine))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return nil, badRequest("bad-certificate", "certificate is not a valid OpenSSH certificate line")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, badRequest("bad-certificate", "give the certificate, not a plain key")
	}
	if err := s.o.Store.TakeChallenge(r.Context(), challenge, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, unauthorized("unknown or expired challenge", nil)
		}
		return nil, err
	}
	sigBytes, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return nil, badRequest("bad-signature", "signature is not base64")
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBytes, &sig); err != nil {
		return nil, badRequest("bad-signature", "signature is not an SSH signature")
	}
	if sig.Format == ssh.KeyAlgoRSA {
		return nil, unauthorized("ssh-rsa (SHA-1) signatures are not accepted", nil)
	}
	if err := cert.Key.Verify([]byte(api.RenewSignaturePrefix+challenge), &sig); err != nil {
		return nil, unauthorized("proof of possession failed", err)
	}
	return cert, nil
}

// handleRenew is the renewal door: the holder of a certificate proves
// possession of its key; the authority then decides the renewal as an
// issuance by the certificate's identity under today's policy.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.RenewRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	if len(req.TOTP) > maxTOTPLen {
		return s.unauthenticated(r, audit.ActionDeny, badRequest("bad-request", "totp is longer than %d bytes", maxTOTPLen))
	}
	cert, err := s.provePossession(r, req.Certificate, req.Challenge, req.Signature)
	if err != nil {
		if ruleOf(err) == "error" {
			return err
		}
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	// The proof names a certificate; its serial keys the rate limit until
	// the authority has identified the holder.
	if !s.limiter.allow(fmt.Sprintf("serial:%d", cert.Serial)) {
		return s.unauthenticated(r, audit.ActionDeny, &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	reqID := RequestID(ctx)
	newCert, err := s.o.Authority.Renew(ctx, ca.RenewRequest{Cert: cert, TTL: ttl, TOTP: req.TOTP,
		Details: map[string]string{"request_id": reqID, "source": "renew", "renews": fmt.Sprint(cert.Serial)}})
	if err != nil {
		if rule := ruleOf(err); rule != "error" {
			s.metrics.denied("", rule)
		}
		return err
	}
	role := certRole(newCert, "")
	s.metrics.issued(s.roleLabel(role), ca.CAType(policy.CertType(newCert.CertType)))
	noteSerial(w, newCert.Serial)
	writeCert(w, http.StatusOK, s.certResponse(newCert, role, reqID))
	return nil
}

// checkOurValidCert checks that cert was signed by a live key of this CA,
// is valid now, and is not revoked (host reports).
func (s *Server) checkOurValidCert(r *http.Request, cert *ssh.Certificate, caType string) error {
	msg, err := s.o.Authority.CheckLive(r.Context(), cert, caType)
	if err != nil {
		return err
	}
	if msg != "" {
		return unauthorized(msg, nil)
	}
	return nil
}

func totpURI(secret []byte, user string) string { return totp.URI(secret, "sshca", user) }

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
