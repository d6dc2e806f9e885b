package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

func caTypeParam(r *http.Request) (string, error) {
	t := r.URL.Query().Get("type")
	if t == "" {
		return "user", nil
	}
	if t != "user" && t != "host" {
		return "", badRequest("bad-request", "type must be user or host")
	}
	return t, nil
}

// currentKRL returns the authority's current KRL of caType and exports its version.
func (s *Server) currentKRL(ctx context.Context, caType string) (*ca.PublishedKRL, error) {
	e, err := s.o.Authority.CurrentKRL(ctx, caType)
	if err != nil {
		return nil, err
	}
	s.metrics.krlVersion(caType, e.Parsed.Version)
	return e, nil
}

func (s *Server) serveKRLPart(w http.ResponseWriter, r *http.Request, sig bool) error {
	caType, err := caTypeParam(r)
	if err != nil {
		return err
	}
	e, err := s.currentKRL(r.Context(), caType)
	if err != nil {
		return err
	}
	etag := e.ETag
	if sig {
		etag = strings.TrimSuffix(etag, `"`) + `-sig"`
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", e.Date.Format(http.TimeFormat))
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-KRL-Version", strconv.FormatUint(e.Parsed.Version, 10))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if sig {
		w.Header().Set("Content-Type", "text/plain")
		_, err = w.Write(e.Sig)
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, err = w.Write(e.Data)
	}
	return err
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func (s *Server) handleKRL(w http.ResponseWriter, r *http.Request) error {
	return s.serveKRLPart(w, r, false)
}
func (s *Server) handleKRLSig(w http.ResponseWriter, r *http.Request) error {
	return s.serveKRLPart(w, r, true)
}

// handleCAKeys serves the published keys of a CA (next, active, retiring),
// one authorized_keys line each.
func (s *Server) handleCAKeys(w http.ResponseWriter, r *http.Request) error {
	caType := r.PathValue("type")
	if caType != "user" && caType != "host" {
		return &httpError{status: http.StatusNotFound, code: "not-found", msg: "CA type must be user or host"}
	}
	keys, err := s.o.Store.ListCAKeys(r.Context(), caType)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, k := range keys {
		if k.State == store.StateActive {
			w.Header().Set(api.ActiveCAKeyHeader, k.Fingerprint)
		}
		if k.State == store.StateNext || k.State == store.StateActive || k.State == store.StateRetiring {
			fmt.Fprintf(&b, "%s sshca-%s-ca-%d\n", k.PublicKey, caType, k.Generation)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b.Bytes())
	return err
}

// handleRevocation records a revocation; admin tokens only. Refusals are audited.
func (s *Server) handleRevocation(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	if err := policy.MayAdminister(c, s.now()); err != nil {
		return s.denyRequest(r, c, "", ruleOf(err), err)
	}
	if err := s.revoke(w, r, c); err != nil {
		if ruleOf(err) != "error" || errors.Is(err, ca.ErrNeverIssued) {
			return s.refuse(r, c.Actor(), audit.ActionRevoke, err)
		}
		return err
	}
	return nil
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var req api.RevocationRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Type == "" {
		req.Type = "user"
	}
	if req.Type != "user" && req.Type != "host" {
		return badRequest("bad-request", "type must be user or host")
	}
	rev := ca.Revocation{CAType: req.Type, Reason: req.Reason, Actor: c.Actor(), Force: req.Force}
	n := 0
	if req.Serial != 0 {
		rev.Lo, rev.Hi = req.Serial, req.Serial
		n++
	}
	if req.SerialRange != "" {
		a, b, ok := strings.Cut(req.SerialRange, "-")
		lo, err1 := strconv.ParseUint(a, 10, 64)
		hi, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || lo == 0 || hi < lo {
			return badRequest("bad-request", "serial_range must be A-B with 1 <= A <= B")
		}
		rev.Lo, rev.Hi = lo, hi
		n++
	}
	if req.KeyID != "" {
		rev.KeyID = req.KeyID
		n++
	}
	if req.PublicKey != "" {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
		if err != nil {
			return badRequest("bad-key", "public_key is not a valid OpenSSH key")
		}
		rev.Key = pub
		n++
	}
	if req.Fingerprint != "" {
		b, err := parseSHA256Fingerprint(req.Fingerprint)
		if err != nil {
			return badRequest("bad-request", "%v", err)
		}
		rev.SHA256 = b
		n++
	}
	if n != 1 {
		return badRequest("bad-request", "give exactly one of serial, serial_range, key_id, public_key, fingerprint")
	}
	if strings.ContainsAny(req.Reason, "\x00\n") || len(req.Reason) > 1024 {
		return badRequest("bad-request", "reason must be one line of at most 1024 bytes")
	}
	added, err := ca.Revoke(r.Context(), s.o.Store, rev, s.now())
	if err != nil {
		return err
	}
	v, err := s.o.Store.KRLVersion(r.Context(), req.Type)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.RevocationResponse{Added: added, KRLVersion: v, RequestID: RequestID(r.Context())})
	return nil
}
