package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
)

// The batch endpoint (POST /v1/certs/user/batch): automation asking for
// many certificates in one request, each decided, signed and audited as if
// sent alone. The service suite measures it beside the one-key levels.
const (
	svcBatchKeys    = 100 // keys per request
	svcBatchClients = 8   // concurrent requests
)

// newBatchTarget pre-builds one batch request per svcBatchKeys subjects:
// request i asks for subjects i*k .. i*k+k-1.
func newBatchTarget(addr, fingerprint, token string, subj *loadSubjects, k int) (*loadTarget, error) {
	n := len(subj.Keys) / k
	if n == 0 {
		return nil, fmt.Errorf("batch of %d keys: only %d subjects", k, len(subj.Keys))
	}
	bodies := &loadSubjects{Bodies: make([][]byte, n)}
	for i := range n {
		reqs := make([]api.CertRequest, k)
		for j := range reqs {
			line := string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(subj.Keys[i*k+j])))
			reqs[j] = api.CertRequest{PublicKey: line, Role: svcRole, TTL: svcCertTTL}
		}
		var err error
		if bodies.Bodies[i], err = json.Marshal(api.BatchCertRequest{Requests: reqs}); err != nil {
			return nil, err
		}
	}
	return newLoadTarget(addr, fingerprint, token, "/v1/certs/user/batch", bodies), nil
}

// verifyBatch checks a batch response: one certificate for each key sent,
// each as the one-key endpoint's (svcVerifier.check).
func (v *svcVerifier) verifyBatch(b loadBody, k int) ([]uint64, error) {
	var resp api.BatchCertResponse
	if err := json.Unmarshal(b.Body, &resp); err != nil {
		return nil, fmt.Errorf("batch response body: %w: %.200q", err, b.Body)
	}
	if len(resp.Results) != k {
		return nil, fmt.Errorf("batch %s: %d results for %d keys", resp.RequestID, len(resp.Results), k)
	}
	serials := make([]uint64, k)
	for j, res := range resp.Results {
		if res.Error != nil || res.Certificate == nil {
			return nil, fmt.Errorf("batch %s, key %d refused: %+v", resp.RequestID, j, res.Error)
		}
		s, err := v.check(res.Certificate, b.Key*k+j)
		if err != nil {
			return nil, fmt.Errorf("batch %s, key %d: %w", resp.RequestID, j, err)
		}
		serials[j] = s
	}
	return serials, nil
}
