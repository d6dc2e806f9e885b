package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
)

// MaxBatchBodyBytes bounds the body of a batch request: api.MaxBatch
// elements of about 4 KiB each (an RSA-4096 key line is under 1 KiB; the
// rest is role, principals and times). A single request keeps MaxBodyBytes.
const MaxBatchBodyBytes = 4 << 20

func (s *Server) handleUserCertBatch(w http.ResponseWriter, r *http.Request) error {
	return s.handleCertBatch(w, r, policy.UserCert)
}

func (s *Server) handleHostCertBatch(w http.ResponseWriter, r *http.Request) error {
	return s.handleCertBatch(w, r, policy.HostCert)
}

// handleCertBatch is the HTTPS door for many certificates at once. It
// authenticates once, checks every element as the single door does (a
// malformed element refuses the whole request, naming it, before anything
// is signed), counts the batch as that many requests against the caller's
// rate limit, and hands every element to the authority in one
// Authority.SignMany call, which decides each exactly as Sign would and
// records every certificate and denial. The answer has one result per
// element, in order.
func (s *Server) handleCertBatch(w http.ResponseWriter, r *http.Request, t policy.CertType) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.unauthenticated(r, audit.ActionDeny, err)
	}
	if !s.limiter.allow(c.Actor()) {
		return s.denyRequest(r, c, "", "rate-limited", &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	var req api.BatchCertRequest
	if err := decodeJSONUpTo(w, r, &req, MaxBatchBodyBytes); err != nil {
		return s.denyRequest(r, c, "", ruleOf(err), err)
	}
	n := len(req.Requests)
	if n == 0 || n > api.MaxBatch {
		return s.denyRequest(r, c, "", "bad-request", badRequest("bad-request", "requests has %d elements; a batch has 1 to %d", n, api.MaxBatch))
	}
	reqID := RequestID(r.Context())
	reqs := make([]ca.Request, n)
	for i := range req.Requests {
		item := &req.Requests[i]
		if reqs[i], err = s.batchItem(item, t, reqID, i); err != nil {
			return s.denyRequest(r, c, "", ruleOf(err), atElement(i, err))
		}
		reqs[i].Caller = c
	}
	// One token was taken above, as for a single request; the rest now.
	if !s.limiter.allowN(c.Actor(), n-1) {
		msg := fmt.Sprintf("a batch of %d counts as %d requests, more than the rate limit leaves now; slow down or send fewer", n, n)
		if b := s.limiter.burst(); n > b {
			msg = fmt.Sprintf("a batch of %d counts as %d requests, over the rate limit of %d per minute; send at most %d per batch", n, n, b, b)
		}
		return s.denyRequest(r, c, "", "rate-limited", &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: msg})
	}

	results := make([]api.BatchResult, n)
	errs := make([]error, n)
	// Keys: one that does not parse is that element's refusal, recorded as
	// the single door records it; the others go to the authority.
	var wg sync.WaitGroup
	var sign []int
	for i := range reqs {
		pub, err := parseKeyLine(req.Requests[i].PublicKey)
		if err != nil {
			wg.Add(1)
			go func() {
				// Concurrent denials share the authority's group commit.
				defer wg.Done()
				rule := ruleOf(err)
				s.metrics.denied(s.roleLabel(reqs[i].Role), rule)
				errs[i] = s.o.Authority.Deny(r.Context(), reqs[i], rule, err)
			}()
			continue
		}
		reqs[i].PublicKey = pub
		sign = append(sign, i)
	}
	wg.Wait()
	if len(sign) > 0 {
		batch := make([]ca.Request, len(sign))
		for j, i := range sign {
			batch[j] = reqs[i]
		}
		certs, cerrs, err := s.o.Authority.SignMany(r.Context(), batch)
		if err != nil {
			return err
		}
		for j, i := range sign {
			role := req.Requests[i].Role
			if cerrs[j] != nil {
				errs[i] = cerrs[j]
				if rule := ruleOf(cerrs[j]); rule != "error" {
					s.metrics.denied(s.roleLabel(role), rule)
				}
				continue
			}
			role = certRole(certs[j], role)
			s.metrics.issued(s.roleLabel(role), ca.CAType(t))
			cr := s.certResponse(certs[j], role, reqs[i].Details["request_id"])
			results[i].Certificate = &cr
		}
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		status, msg, code := publicError(err)
		if status >= http.StatusInternalServerError {
			s.log.ErrorContext(r.Context(), "batch element failed", "request_id", reqID, "element", i, "error", err.Error())
		}
		results[i].Error = &api.BatchError{Status: status, Code: code, Message: msg}
	}
	writeBatch(w, api.BatchCertResponse{Results: results, RequestID: reqID})
	return nil
}

// batchItem checks one element of a batch as handleCert checks a request,
// and returns it as the authority's request (without caller and key).
func (s *Server) batchItem(item *api.CertRequest, t policy.CertType, reqID string, i int) (ca.Request, error) {
	if err := checkCertRequest(item); err != nil {
		return ca.Request{}, err
	}
	if item.TOTP != "" {
		return ca.Request{}, badRequest("bad-request", "totp is not accepted in a batch; send a request that needs a second factor alone, to /v1/certs/%s", ca.CAType(t))
	}
	if item.Role == "" && t == policy.UserCert {
		return ca.Request{}, badRequest("bad-request", "role is required")
	}
	// Each element has its own request ID (and so key ID): the batch's, and
	// the element's index.
	return s.caRequest(item, t, reqID+"."+strconv.Itoa(i), "service-batch")
}

// atElement names the batch element an error is about.
func atElement(i int, err error) error {
	var he *httpError
	if errors.As(err, &he) {
		cp := *he
		cp.msg = fmt.Sprintf("requests[%d]: %s", i, he.msg)
		return &cp
	}
	return fmt.Errorf("requests[%d]: %w", i, err)
}
