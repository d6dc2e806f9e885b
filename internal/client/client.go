// Package client is the user and agent side of the certificate service's
// API: it requests, renews and installs certificates, and fetches CA keys and
// KRLs. It writes certificates atomically and never prints or logs tokens or
// private keys.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/buildinfo"
)

// Client talks to one sshca service.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// Bearer is the credential (API token or OIDC ID token); empty for
	// unauthenticated calls.
	Bearer string
}

// New returns a client for baseURL, pinning the server's TLS certificate
// when fingerprint ("SHA256:...") is given.
func New(baseURL, fingerprint string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q is not a URL like https://ca.example.com:8443", baseURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("client: server URL must use https, not %q", u.Scheme)
	}
	if fingerprint != "" && !strings.HasPrefix(fingerprint, "SHA256:") {
		return nil, errors.New("client: --ca-fingerprint must look like SHA256:<base64>, as `sshca serve` prints it")
	}
	tr := &http.Transport{TLSClientConfig: PinnedTLSConfig(fingerprint), ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 16}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// APIError is an error response from the service.
type APIError struct {
	Status    int
	Message   string
	Code      string
	RequestID string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("server refused (%d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	s += "): " + e.Message
	if e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

const maxResponse = 128 << 20

// userAgent names this client to the service: sshca/VERSION (REVISION).
var userAgent = buildinfo.Get().UserAgent()

func (c *Client) do(ctx context.Context, method, path string, in, out any, header http.Header) (*http.Response, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp, nil, fmt.Errorf("client: read response: %w", err)
	}
	if resp.StatusCode >= 400 {
		var ae api.Error
		_ = json.Unmarshal(data, &ae)
		if ae.Error == "" {
			ae.Error = strings.TrimSpace(string(data))
			if len(ae.Error) > 200 {
				ae.Error = ae.Error[:200]
			}
		}
		return resp, data, &APIError{Status: resp.StatusCode, Message: ae.Error, Code: ae.Code, RequestID: ae.RequestID}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, data, fmt.Errorf("client: bad response from %s: %w", path, err)
		}
	}
	return resp, data, nil
}

// RequestCert asks for a certificate of the given type ("user" or "host").
func (c *Client) RequestCert(ctx context.Context, typ string, req api.CertRequest) (*api.CertResponse, *ssh.Certificate, error) {
	var out api.CertResponse
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/certs/"+typ, req, &out, nil); err != nil {
		return nil, nil, err
	}
	cert, err := ParseCert([]byte(out.Certificate))
	if err != nil {
		return nil, nil, err
	}
	return &out, cert, nil
}

// CertResult is the outcome of one request of a batch: the certificate, or
// Err (an *APIError with the status and code the single request would have
// got) when the service refused that request.
type CertResult struct {
	Response *api.CertResponse
	Cert     *ssh.Certificate
	Err      error
}

// RequestCerts asks for certificates of the given type ("user" or "host")
// in one batch request (at most api.MaxBatch). The service decides each
// request as it would decide it alone; the results are in request order. A
// non-nil error means the batch as a whole was refused (an *APIError: bad
// element, rate limit, credential) or not answered, and nothing was issued.
func (c *Client) RequestCerts(ctx context.Context, typ string, reqs []api.CertRequest) ([]CertResult, error) {
	var out api.BatchCertResponse
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/certs/"+typ+"/batch", api.BatchCertRequest{Requests: reqs}, &out, nil); err != nil {
		return nil, err
	}
	if len(out.Results) != len(reqs) {
		return nil, fmt.Errorf("client: batch of %d answered with %d results [request %s]", len(reqs), len(out.Results), out.RequestID)
	}
	res := make([]CertResult, len(reqs))
	for i, r := range out.Results {
		switch {
		case r.Error != nil:
			res[i].Err = &APIError{Status: r.Error.Status, Message: r.Error.Message, Code: r.Error.Code, RequestID: out.RequestID}
		case r.Certificate == nil:
			return nil, fmt.Errorf("client: batch result %d has neither a certificate nor an error [request %s]", i, out.RequestID)
		default:
			cert, err := ParseCert([]byte(r.Certificate.Certificate))
			if err != nil {
				return nil, fmt.Errorf("client: batch result %d: %w", i, err)
			}
			res[i].Response, res[i].Cert = r.Certificate, cert
		}
	}
	return res, nil
}

// ParseCert parses a certificate line.
func ParseCert(line []byte) (*ssh.Certificate, error) {
	pub, _, _, rest, err := ssh.ParseAuthorizedKey(bytes.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("client: not a certificate: %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("client: more than one key where one certificate was expected")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("client: not a certificate")
	}
	return cert, nil
}

// Renew obtains a fresh certificate for cert by proving possession of its key with s.
func (c *Client) Renew(ctx context.Context, cert *ssh.Certificate, s ssh.Signer, ttl string) (*api.CertResponse, *ssh.Certificate, error) {
	return c.RenewWithFactor(ctx, cert, s, ttl, "")
}

// RenewWithFactor is Renew with a fresh TOTP code, which the renewal of a
// certificate of a role that requires a second factor needs.
func (c *Client) RenewWithFactor(ctx context.Context, cert *ssh.Certificate, s ssh.Signer, ttl, totpCode string) (*api.CertResponse, *ssh.Certificate, error) {
	var ch api.Challenge
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/certs/renew/challenge", struct{}{}, &ch, nil); err != nil {
		return nil, nil, err
	}
	sig, err := signChallenge(s, ch.Challenge)
	if err != nil {
		return nil, nil, err
	}
	req := api.RenewRequest{Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))), Challenge: ch.Challenge, Signature: sig, TTL: ttl, TOTP: totpCode}
	var out api.CertResponse
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/certs/renew", req, &out, nil); err != nil {
		return nil, nil, err
	}
	nc, err := ParseCert([]byte(out.Certificate))
	if err != nil {
		return nil, nil, err
	}
	return &out, nc, nil
}

// signChallenge signs the renewal prefix and challenge, never with SHA-1.
func signChallenge(s ssh.Signer, challenge string) (string, error) {
	data := []byte(api.RenewSignaturePrefix + challenge)
	var sig *ssh.Signature
	var err error
	if as, ok := s.(ssh.AlgorithmSigner); ok && s.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.Sign(rand.Reader, data)
	}
	if err != nil {
		return "", fmt.Errorf("client: sign challenge: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ssh.Marshal(sig)), nil
}

// ReportHost sends a host report authenticated by the host key.
func (c *Client) ReportHost(ctx context.Context, hostCert *ssh.Certificate, hostKey ssh.Signer, rep api.HostReport) error {
	var ch api.Challenge
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/certs/renew/challenge", struct{}{}, &ch, nil); err != nil {
		return err
	}
	sig, err := signChallenge(hostKey, ch.Challenge)
	if err != nil {
		return err
	}
	req := api.HostReportRequest{Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCert))), Challenge: ch.Challenge, Signature: sig, Report: rep}
	_, _, err = c.do(ctx, http.MethodPost, "/v1/hosts/report", req, nil, nil)
	return err
}

// CAKeys fetches the published keys of a CA.
func (c *Client) CAKeys(ctx context.Context, typ string) ([]ssh.PublicKey, []byte, error) {
	data, err := c.CAKeysRaw(ctx, typ)
	if err != nil {
		return nil, nil, err
	}
	var keys []ssh.PublicKey
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		pub, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return nil, nil, fmt.Errorf("client: bad CA key list: %w", err)
		}
		keys = append(keys, pub)
		rest = r
	}
	return keys, data, nil
}

// CAKeysRaw fetches the published CA key list of typ as the service sent
// it, for a caller that checks it itself (the agent, strictly).
func (c *Client) CAKeysRaw(ctx context.Context, typ string) ([]byte, error) {
	_, data, err := c.do(ctx, http.MethodGet, "/v1/ca/"+typ, nil, nil, nil)
	return data, err
}

// ActiveCAKey fetches the published CA key list of typ and returns the
// fingerprint of the active key (api.ActiveCAKeyHeader) with the list; ""
// when the service does not say.
func (c *Client) ActiveCAKey(ctx context.Context, typ string) (string, []byte, error) {
	resp, data, err := c.do(ctx, http.MethodGet, "/v1/ca/"+typ, nil, nil, nil)
	if err != nil {
		return "", nil, err
	}
	return resp.Header.Get(api.ActiveCAKeyHeader), data, nil
}

// KRL fetches the binary KRL and its signature. If etag is given and the
// KRL has not changed, it returns notModified.
func (c *Client) KRL(ctx context.Context, typ, etag string) (data, sig []byte, newETag string, notModified bool, err error) {
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	resp, data, err := c.do(ctx, http.MethodGet, "/v1/krl?type="+typ, nil, nil, h)
	if err != nil {
		return nil, nil, "", false, err
	}
	if resp.StatusCode == http.StatusNotModified {
		return nil, nil, etag, true, nil
	}
	_, sig, err = c.do(ctx, http.MethodGet, "/v1/krl.sig?type="+typ, nil, nil, nil)
	if err != nil {
		return nil, nil, "", false, err
	}
	return data, sig, resp.Header.Get("ETag"), false, nil
}

// AuthConfig returns how the service authenticates people.
func (c *Client) AuthConfig(ctx context.Context) (*api.AuthConfig, error) {
	var ac api.AuthConfig
	if _, _, err := c.do(ctx, http.MethodGet, "/v1/auth/config", nil, &ac, nil); err != nil {
		return nil, err
	}
	return &ac, nil
}

// Revoke records a revocation (admin token).
func (c *Client) Revoke(ctx context.Context, req api.RevocationRequest) (*api.RevocationResponse, error) {
	var out api.RevocationResponse
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/revocations", req, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Accounts fetches the policy's map of system accounts to principals.
func (c *Client) Accounts(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	if _, _, err := c.do(ctx, http.MethodGet, "/v1/accounts", nil, &out, nil); err != nil {
		return nil, err
	}
	return out, nil
}
