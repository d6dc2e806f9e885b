package api

import (
	"fmt"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/certwire"
)

// The objects below are sshca's one JSON schema, shared by the HTTP API and
// every `--json` of the command line; docs/json.md documents each field
// (and a test keeps that document and these tags equal). Conventions:
// snake_case names; times are RFC 3339 in UTC; durations are whole seconds
// in fields named *_seconds; fingerprints are "SHA256:" and unpadded
// base64, as ssh-keygen -l prints them; a field that does not apply is
// left out rather than sent empty.

// Certificate is one OpenSSH certificate: as the service returns it from
// POST /v1/certs/user, /v1/certs/host and /v1/certs/renew (CertResponse),
// and as `sshca sign --json`, `list --json`, `inspect --json`,
// `status --json` and `login --json` print it.
type Certificate struct {
	// Certificate is the authorized_keys line, what <key>-cert.pub holds.
	Certificate string `json:"certificate,omitempty"`
	// File is the file the certificate was written to (sign, login) or
	// read from (inspect, status).
	File string `json:"file,omitempty"`
	// Type is the certificate's key type ("ssh-ed25519-cert-v01@openssh.com").
	Type string `json:"type,omitempty"`
	// CertType is "user" or "host".
	CertType string `json:"cert_type"`
	Serial   uint64 `json:"serial"`
	KeyID    string `json:"key_id"`
	// Principals are the user names or host names it is valid for.
	Principals []string `json:"principals"`
	// ValidAfter is the start of the validity window.
	ValidAfter time.Time `json:"valid_after"`
	// ValidBefore is its end; absent for a certificate valid forever.
	ValidBefore time.Time `json:"valid_before,omitzero"`
	// RemainingSeconds is how long it stays valid from the moment the
	// object was made (0 once expired); absent when it never expires.
	RemainingSeconds *int64 `json:"remaining_seconds,omitempty"`
	// Status is "valid", "not-yet-valid", "expired" or, where the CA's
	// records are at hand (list, sign), "revoked".
	Status string `json:"status"`
	// KeyType is the certified key's algorithm ("ssh-ed25519").
	KeyType string `json:"key_type"`
	// KeyFingerprint is the certified key's SHA256 fingerprint.
	KeyFingerprint string `json:"key_fingerprint"`
	// CAFingerprint is the signing CA key's SHA256 fingerprint.
	CAFingerprint string `json:"ca_fingerprint"`
	// SignatureAlgorithm is the CA's signature algorithm ("ssh-ed25519", "rsa-sha2-512").
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"`
	// CriticalOptions are the critical options (force-command, source-address, ...).
	CriticalOptions map[string]string `json:"critical_options"`
	// Extensions are the extension names (permit-pty, ...), sorted.
	Extensions []string `json:"extensions"`
	// Role, Requester and IssuedAt come from the CA's records (list, sign).
	Role      string    `json:"role,omitempty"`
	Requester string    `json:"requester,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	// Revoked is the revocation that covers the certificate (list).
	Revoked *Revocation `json:"revoked,omitempty"`
	// RequestID names the service request that issued it (HTTP API, login).
	RequestID string `json:"request_id,omitempty"`
}

// CertResponse carries a signed certificate: the service's Certificate.
type CertResponse = Certificate

// Certificate statuses.
const (
	StatusValid       = "valid"
	StatusNotYetValid = "not-yet-valid"
	StatusExpired     = "expired"
	StatusRevoked     = "revoked"
)

// CertificateOf describes c as of now. The caller adds what only the CA's
// records know (role, requester, issue time, revocation) and where the
// certificate lives.
func CertificateOf(c *ssh.Certificate, now time.Time) Certificate {
	out := Certificate{
		Certificate:     certwire.Line(c),
		Type:            c.Type(),
		CertType:        CertTypeName(c.CertType),
		Serial:          c.Serial,
		KeyID:           c.KeyId,
		Principals:      append([]string{}, c.ValidPrincipals...),
		ValidAfter:      certTime(c.ValidAfter),
		KeyType:         c.Key.Type(),
		KeyFingerprint:  ssh.FingerprintSHA256(c.Key),
		CAFingerprint:   ssh.FingerprintSHA256(c.SignatureKey),
		CriticalOptions: map[string]string{},
		Extensions:      []string{},
	}
	if c.ValidBefore != ssh.CertTimeInfinity {
		out.ValidBefore = certTime(c.ValidBefore)
	}
	if c.Signature != nil {
		out.SignatureAlgorithm = c.Signature.Format
	}
	for k, v := range c.CriticalOptions {
		out.CriticalOptions[k] = v
	}
	for k := range c.Extensions {
		out.Extensions = append(out.Extensions, k)
	}
	sort.Strings(out.Extensions)
	out.SetTimes(now)
	return out
}

// maxJSONTime is 9999-12-31T23:59:59Z, the last instant RFC 3339 can
// write: a certificate time beyond it is shown as it.
const maxJSONTime = 253402300799

// certTime is a certificate's time (seconds since the epoch) in UTC.
func certTime(v uint64) time.Time {
	return time.Unix(int64(min(v, maxJSONTime)), 0).UTC()
}

// SetTimes sets Status (by time only) and RemainingSeconds as of now.
func (c *Certificate) SetTimes(now time.Time) {
	c.RemainingSeconds = nil
	if !c.ValidBefore.IsZero() {
		left := max(c.ValidBefore.Unix()-now.Unix(), 0) // in seconds: a Duration ends in 2262
		c.RemainingSeconds = &left
	}
	switch {
	case !c.ValidBefore.IsZero() && !now.Before(c.ValidBefore):
		c.Status = StatusExpired
	case now.Before(c.ValidAfter):
		c.Status = StatusNotYetValid
	default:
		c.Status = StatusValid
	}
}

// CertTypeName is "user" or "host" for an OpenSSH certificate type.
func CertTypeName(t uint32) string {
	switch t {
	case ssh.UserCert:
		return "user"
	case ssh.HostCert:
		return "host"
	}
	return fmt.Sprintf("unknown(%d)", t)
}

// Revocation is one recorded revocation: what it covers, who recorded it,
// when and why.
type Revocation struct {
	ID int64 `json:"id"`
	// CAType is the KRL it belongs to: "user" or "host".
	CAType string `json:"ca_type"`
	// Kind is serial, key-id, key, sha256, sha1 or ca-key.
	Kind string `json:"kind"`
	// SerialFrom and SerialTo are the revoked serials, inclusive (kind serial).
	SerialFrom uint64 `json:"serial_from,omitempty"`
	SerialTo   uint64 `json:"serial_to,omitempty"`
	// KeyID is the revoked key ID (kind key-id).
	KeyID string `json:"key_id,omitempty"`
	// Fingerprint is the SHA256 fingerprint of the revoked key (kinds
	// key, sha256) or CA key (kind ca-key).
	Fingerprint string `json:"fingerprint,omitempty"`
	// SHA1 is the hex SHA-1 of the revoked key blob (kind sha1).
	SHA1      string    `json:"sha1,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor"`
	RevokedAt time.Time `json:"revoked_at"`
	// CoversUntil is the last instant anything it covers can be valid;
	// after it, `krl --prune-expired` may drop it. Absent: no bound.
	CoversUntil time.Time `json:"covers_until,omitzero"`
}

// RevocationResponse reports a revocation: POST /v1/revocations and
// `sshca revoke --json`.
type RevocationResponse struct {
	// Added is false when everything asked for was already revoked (the
	// KRL did not change).
	Added bool `json:"added"`
	// CAType is the KRL it went into: "user" or "host".
	CAType string `json:"ca_type,omitempty"`
	// KRLVersion is that KRL's version afterwards.
	KRLVersion uint64 `json:"krl_version"`
	// RevokedSerials are the certificates revoked (revoke --identity).
	RevokedSerials []uint64 `json:"revoked_serials,omitempty"`
	// Entries and NewEntries count the lines of an imported ssh-keygen -k
	// specification and those not recorded before (revoke --spec).
	Entries    int `json:"entries,omitempty"`
	NewEntries int `json:"new_entries,omitempty"`
	// RequestID names the service request (HTTP API).
	RequestID string `json:"request_id,omitempty"`
}

// CAKey is one generation of a CA key (`sshca ca list --json`).
type CAKey struct {
	// CAType is "user" or "host".
	CAType     string `json:"ca_type"`
	Generation int    `json:"generation"`
	// State is next, active, retiring, retired or revoked.
	State string `json:"state"`
	// KeyType is "ed25519", "ecdsa-p256", "rsa-3072", ...
	KeyType string `json:"key_type"`
	// Signer is where the private key lives: "file" or "agent".
	Signer      string `json:"signer"`
	Fingerprint string `json:"fingerprint"`
	// PublicKey is the authorized_keys line of the CA key.
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	// Certificates is how many certificates it signed.
	Certificates int `json:"certificates"`
	// LastCertExpiry is when the last certificate that holds it back
	// expires; absent if there is none.
	LastCertExpiry time.Time `json:"last_cert_expiry,omitzero"`
}

// Token is an API token, never its secret (`sshca token list --json`).
type Token struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Kind is role, admin or enroll.
	Kind string `json:"kind"`
	// Roles are the roles a role or enroll token may use.
	Roles []string `json:"roles,omitempty"`
	// Principals are the host names an enroll token may certify.
	Principals []string  `json:"principals,omitempty"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	// UsedAt is when a one-time enroll token was used.
	UsedAt time.Time `json:"used_at,omitzero"`
	// Status is active, used, expired or revoked.
	Status string `json:"status"`
}

// FleetHost is what `sshca fleet status --json` says about one server, from
// its agent's last report (HostReport).
type FleetHost struct {
	// Name is the host's primary name (the first principal of its certificate).
	Name     string    `json:"name"`
	LastSeen time.Time `json:"last_seen"`
	// LastSeenAgeSeconds is how long ago that was.
	LastSeenAgeSeconds int64 `json:"last_seen_age_seconds"`
	// KRLVersion is the user KRL version it installed; KRLLatest the CA's.
	KRLVersion uint64 `json:"krl_version"`
	KRLLatest  uint64 `json:"krl_latest"`
	// CAKeys are the trusted user CA keys it installed.
	CAKeys []FleetCAKey `json:"ca_keys"`
	// HostCertExpiry is when its host certificate expires.
	HostCertExpiry time.Time `json:"host_cert_expiry,omitzero"`
	// HostCertCAFingerprint is the host CA key that signed that
	// certificate, and HostCertCAGeneration its generation (absent if this
	// CA does not know the key).
	HostCertCAFingerprint string `json:"host_cert_ca_fingerprint,omitempty"`
	HostCertCAGeneration  int    `json:"host_cert_ca_generation,omitempty"`
	// SyncFailing: the agent reported that it could not refresh; Detail is its message.
	SyncFailing bool   `json:"sync_failing"`
	Detail      string `json:"detail,omitempty"`
	// Flags name what needs attention (stale, sync-failing, krl-behind-N,
	// missing-ca-key, host-cert-expiring, host-cert-expired,
	// host-cert-old-ca); empty when OK is true.
	Flags []string `json:"flags"`
	OK    bool     `json:"ok"`
}

// FleetCAKey is a CA key a host trusts.
type FleetCAKey struct {
	Fingerprint string `json:"fingerprint"`
	// Generation is its user CA generation; absent if this CA does not know the key.
	Generation int `json:"generation,omitempty"`
}

// KRLResult reports a KRL written by `sshca krl --out FILE --json`, or
// verified by `sshca krl verify --json`.
type KRLResult struct {
	// CAType is the CA whose KRL it is: "user" or "host".
	CAType string `json:"ca_type"`
	File   string `json:"file"`
	// KRLVersion is the KRL's version number.
	KRLVersion uint64 `json:"krl_version"`
	SizeBytes  int    `json:"size_bytes"`
	// SHA256 is the hex SHA-256 of the file.
	SHA256 string `json:"sha256"`
	// SignatureFile is the detached SSHSIG signature (--sign).
	SignatureFile string `json:"signature_file,omitempty"`
	// SigningCAFingerprint is the CA key that signed it (--sign).
	SigningCAFingerprint string `json:"signing_ca_fingerprint,omitempty"`
	// Pruned is how many expired revocations --prune-expired dropped.
	Pruned *int `json:"pruned,omitempty"`
}

// KRLCheck is the verdict of a KRL on one key or certificate
// (`sshca krl check --json`), as sshd would reach it.
type KRLCheck struct {
	// File is the key or certificate file checked.
	File string `json:"file"`
	// KeyFingerprint is the checked key's fingerprint (a certificate's
	// certified key), and Serial a certificate's serial.
	KeyFingerprint string `json:"key_fingerprint"`
	Serial         uint64 `json:"serial,omitempty"`
	Revoked        bool   `json:"revoked"`
	// Section is the part of the KRL that revokes it: serial, key-id,
	// explicit-key, sha1, sha256, ca-key (see docs/json.md).
	Section string `json:"section,omitempty"`
	// Detail says how, for people.
	Detail string `json:"detail,omitempty"`
}
