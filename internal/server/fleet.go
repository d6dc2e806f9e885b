package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/store"
)

func (s *Server) hostReport(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.HostReportRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.Certificate))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return badRequest("bad-certificate", "certificate is not a valid OpenSSH certificate line")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert {
		return badRequest("bad-certificate", "give the host certificate")
	}
	if err := s.o.Store.TakeChallenge(ctx, req.Challenge, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return unauthorized("unknown or expired challenge", nil)
		}
		return err
	}
	sigBytes, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		return badRequest("bad-signature", "signature is not base64")
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigBytes, &sig); err != nil || sig.Format == ssh.KeyAlgoRSA {
		return badRequest("bad-signature", "signature is not an acceptable SSH signature")
	}
	if err := cert.Key.Verify([]byte(api.RenewSignaturePrefix+req.Challenge), &sig); err != nil {
		return unauthorized("proof of possession failed", err)
	}
	if err := s.checkOurValidCert(r, cert, "host"); err != nil {
		return err
	}
	if len(req.Report.Detail) > 1024 || len(req.Report.CAKeys) > 64 {
		return badRequest("bad-request", "report too large")
	}
	h := store.Host{Name: cert.ValidPrincipals[0], LastSeen: s.now(), KRLVersion: req.Report.KRLVersion,
		CAKeys: req.Report.CAKeys, HostCertExpiry: req.Report.HostCertExpiry, Stale: req.Report.Stale,
		Detail: strings.ReplaceAll(req.Report.Detail, "\n", " "), HostCertCA: ssh.FingerprintSHA256(cert.SignatureKey)}
	if err := s.o.Store.ReportHost(ctx, h); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
	return nil
}
