// Package api holds the JSON types of the certificate service's HTTP API,
// shared by the server, the user client and the fleet agent, and the
// objects every `sshca ... --json` prints (objects.go, docs/json.md). It
// has no behaviour beyond encoding: describing a certificate as its JSON
// object (CertificateOf) and reading the request fields that need it
// (ParseWindowTime).
package api

import "time"

// CertRequest asks for a user or host certificate.
type CertRequest struct {
	PublicKey  string   `json:"public_key"`           // authorized_keys line
	Role       string   `json:"role"`                 // role from the policy
	Principals []string `json:"principals,omitempty"` // subset; empty = all of the role's (user)
	TTL        string   `json:"ttl,omitempty"`        // e.g. "8h"; empty = role default
	TOTP       string   `json:"totp,omitempty"`       // second factor for require_mfa roles
	// ValidAfter and ValidBefore ask for a validity window, as ssh-keygen -V
	// does: RFC 3339 times, or relative to the service's clock ("-5m",
	// "+1w", "now"; see ParseWindowTime). Empty ValidAfter: from now; empty
	// ValidBefore: ValidAfter plus TTL (or the role's default). The role's
	// max_ttl bounds the window from now (or its start, if later).
	ValidAfter  string `json:"valid_after,omitempty"`
	ValidBefore string `json:"valid_before,omitempty"`
}

// MaxBatch is the most requests one batch (POST /v1/certs/user/batch,
// /v1/certs/host/batch) may carry.
const MaxBatch = 1000

// BatchCertRequest asks for many certificates of one type in one request:
// each element is decided, signed and audited as the same CertRequest sent
// alone would be, except that a request needing a step of its own (a
// "totp" code, an enrollment token) is not accepted in a batch.
type BatchCertRequest struct {
	Requests []CertRequest `json:"requests"` // 1 to MaxBatch
}

// BatchCertResponse answers a BatchCertRequest: one result per request, in
// the order asked.
type BatchCertResponse struct {
	Results []BatchResult `json:"results"`
	// RequestID names the service request; each certificate's own
	// request_id (and key ID) adds the index of its element: "<id>.<i>".
	RequestID string `json:"request_id"`
}

// BatchResult is one element's outcome: the certificate object (the same
// the single endpoint returns) or, when refused, only Error.
type BatchResult struct {
	*Certificate
	Error *BatchError `json:"error,omitempty"`
}

// BatchError is a refused element of a batch: the status, code and message
// that the single endpoint would have answered for it alone.
type BatchError struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Challenge is a one-time nonce for renewal by proof of possession.
type Challenge struct {
	Challenge string    `json:"challenge"` // base64url
	ExpiresAt time.Time `json:"expires_at"`
}

// RenewSignaturePrefix is prepended to the challenge before the holder of a
// certificate signs it, so a renewal signature cannot be replayed elsewhere.
const RenewSignaturePrefix = "sshca-renew-v1\x00"

// RenewRequest renews a still-valid certificate.
type RenewRequest struct {
	Certificate string `json:"certificate"` // the current certificate line
	Challenge   string `json:"challenge"`   // from POST /v1/certs/renew/challenge
	Signature   string `json:"signature"`   // base64 of the SSH wire signature over RenewSignaturePrefix+challenge by the certified key
	TTL         string `json:"ttl,omitempty"`
	TOTP        string `json:"totp,omitempty"` // a fresh second factor, for roles that require MFA
}

// RevocationRequest records a revocation (admin tokens only).
type RevocationRequest struct {
	Type        string `json:"type,omitempty"` // user (default) or host
	Serial      uint64 `json:"serial,omitempty"`
	SerialRange string `json:"serial_range,omitempty"` // "A-B"
	KeyID       string `json:"key_id,omitempty"`
	PublicKey   string `json:"public_key,omitempty"`  // a key or certificate line
	Fingerprint string `json:"fingerprint,omitempty"` // SHA256:...
	Reason      string `json:"reason,omitempty"`
	Force       bool   `json:"force,omitempty"`
}

// AuthConfig tells clients how to authenticate people.
type AuthConfig struct {
	OIDCIssuer   string `json:"oidc_issuer,omitempty"`
	OIDCClientID string `json:"oidc_client_id,omitempty"`
}

// TOTPEnrollment is returned once, at enrollment.
type TOTPEnrollment struct {
	URI string `json:"uri"` // otpauth:// URI for an authenticator app
}

// HostReport is what `sshca sync` reports about a server.
type HostReport struct {
	KRLVersion     uint64    `json:"krl_version"`
	CAKeys         []string  `json:"ca_keys"` // SHA256 fingerprints installed
	HostCertExpiry time.Time `json:"host_cert_expiry,omitempty"`
	Stale          bool      `json:"stale,omitempty"`
	Detail         string    `json:"detail,omitempty"`
}

// ActiveCAKeyHeader is the response header of GET /v1/ca/{type} naming the
// SHA256 fingerprint of the CA's active key, the one new certificates are
// signed with. A fleet agent renews a host certificate signed by another
// key, so that a rotation finishes without waiting for expiry.
const ActiveCAKeyHeader = "X-Sshca-Active-Key"

// Error is every error response body.
type Error struct {
	Error     string `json:"error"`          // short public message
	Code      string `json:"code,omitempty"` // machine-readable reason, e.g. "principal-not-allowed"
	RequestID string `json:"request_id"`
}

// HostReportRequest is an agent's report, authenticated by proof of
// possession of the host key behind a host certificate of this CA.
type HostReportRequest struct {
	Certificate string     `json:"certificate"`
	Challenge   string     `json:"challenge"`
	Signature   string     `json:"signature"`
	Report      HostReport `json:"report"`
}
