// Package store defines how sshca keeps its durable state — issued
// certificates and their serials, CA key generations, revocations, the audit
// chain — and the sentinel errors every backend returns. Backends live in
// sub-packages (sqlite, postgres) and are checked by the shared conformance
// suite in storetest. The store never signs anything and holds no private keys.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrConflict = errors.New("store: conflicting update")
	// ErrCAKeyNotActive: a batch item was signed by a CA key generation that
	// is no longer the active one (a rotation committed meanwhile).
	ErrCAKeyNotActive = errors.New("store: CA key is no longer active")
	// ErrTokenInvalid: the API token behind a batch item was revoked or has
	// expired by the time the item would be recorded.
	ErrTokenInvalid = errors.New("store: API token revoked or expired")
	// ErrTampered: a row does not hold what sshca wrote there (a sealed
	// secret that does not open, or one stored in clear where sshca seals).
	ErrTampered = errors.New("store: row not written by sshca")
	// ErrRenewedRevoked: a batch item renews a certificate whose serial was
	// revoked by the time the item would be recorded.
	ErrRenewedRevoked = errors.New("store: the renewed certificate was revoked")
	// ErrRevocationsChanged: a revocation was committed between an item's
	// revocation check and its recording (see BatchItem.CheckRevocations).
	ErrRevocationsChanged = errors.New("store: revocations changed since the request was checked")
)

// BatchItem is one record of an issuance batch (see Store.CommitBatch).
type BatchItem struct {
	// Cert is a signed certificate to record (Serial, from ReserveSerials,
	// and Cert set); nil when the item is an audit entry alone (a denial).
	Cert *CertRecord
	// Event is appended to the audit chain; for a certificate its Serial is
	// set to Cert.Serial.
	Event audit.Entry
	// TokenID, when set, names the API token the request came with: the item
	// is refused (ErrTokenInvalid) unless that token is neither revoked nor
	// expired at Event.Time, checked inside the transaction. A certificate
	// that renews another (Cert.Lineage.Renews) is likewise refused
	// (ErrRenewedRevoked) if a serial revocation covers the renewed one.
	TokenID string
	// CheckRevocations, when set, says that issuance checked Cert's subject
	// key and key ID against the key and key ID revocations of Cert.CAType as
	// of KRL version RevocationsAt. If that CA type's KRL version differs
	// inside the transaction, the revocations are asked again for Probe() —
	// computed only then, off the common path —, and
	// the item is refused (ErrRevocationsChanged) if one now covers it: a
	// revocation committed meanwhile is never missed, and one of something
	// else never refuses the item.
	CheckRevocations bool
	RevocationsAt    uint64
	Probe            func() RevocationProbe
}

// RevocationProbe is what would revoke a certificate being recorded, in
// the form revocations store it: its subject key (the authorized_keys line
// of the plain key, and the hex SHA-256 and SHA-1 of its blob), its key ID,
// and the authorized_keys line of the CA key that signs it (a key ID
// revocation applies to that generation, or with an empty scope to all).
type RevocationProbe struct {
	KeyLine, SHA256, SHA1 string
	KeyID                 string
	CALine                string
}

// CertRecord is one issued (or being issued) certificate.
type CertRecord struct {
	Serial             uint64
	CAType             string // "user" or "host"
	CAFingerprint      string // SHA256 fingerprint of the signing CA key
	Role               string
	KeyID              string
	Principals         []string
	ValidAfter         time.Time
	ValidBefore        time.Time
	SubjectFingerprint string // SHA256 fingerprint of the certified key
	SubjectType        string // key algorithm of the certified key
	Requester          string // actor that asked
	IssuedAt           time.Time
	Cert               string // authorized_keys line of the certificate; empty until signed
	// Lineage is who the certificate was issued to and how they
	// authenticated; renewals carry it on (see Lineage).
	Lineage Lineage
}

// Lineage records whom a certificate was issued to, how strongly they had
// authenticated and when, so that a renewal is decided as an issuance by the
// same identity under the policy of the day. A renewed certificate copies its
// predecessor's lineage and sets Renews.
type Lineage struct {
	// Caller is the kind of requester that started the lineage: "admin"
	// (the CLI), "person" (OIDC), "token" (role token), "enroll"
	// (host enrollment token). Empty for records from before lineages.
	Caller   string    `json:"caller,omitempty"`
	Identity string    `json:"identity,omitempty"` // user, token or admin account name
	Groups   []string  `json:"groups,omitempty"`   // the identity's groups at first authentication
	MFA      bool      `json:"mfa,omitempty"`      // the first authentication carried a second factor
	AuthTime time.Time `json:"auth_time,omitzero"` // first authentication of the lineage
	TokenID  string    `json:"token_id,omitempty"` // the API token behind it, if any
	Origin   uint64    `json:"origin,omitempty"`   // serial of the lineage's first certificate (0: this one)
	Renews   uint64    `json:"renews,omitempty"`   // serial of the certificate this one renews
}

// CertFilter selects certificates for ListCerts. Zero fields match everything.
type CertFilter struct {
	KeyID     string
	CAType    string
	ActiveAt  time.Time // if set, only certificates valid at that instant
	Serial    uint64
	SubjectFP string
	// Identity selects certificates whose lineage identity is this name
	// (or, for records from before lineages, whose requester is
	// "oidc:NAME" or "token:NAME"), or, as "kind:name" ("oidc:alice",
	// "token:ci", "cli:root"), whose requester is.
	Identity string
	Limit    int
}

// CAKey is one generation of a CA key.
type CAKey struct {
	CAType      string // "user" or "host"
	Generation  int
	State       string // "next", "active", "retiring", "retired", "revoked"
	KeyType     string // "ed25519", "rsa-3072", ...
	Fingerprint string
	PublicKey   string // authorized_keys line
	Signer      string // "file" or "agent"
	File        string // private key file name inside the home (file signers)
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CA key states.
const (
	StateNext     = "next"
	StateActive   = "active"
	StateRetiring = "retiring"
	StateRetired  = "retired"
	StateRevoked  = "revoked"
)

// Revocation kinds.
const (
	RevokeSerial = "serial" // Lo..Hi under CAType (Lo == Hi for one serial)
	RevokeKeyID  = "key-id" // KeyID under CAType
	RevokeKey    = "key"    // Value: authorized_keys line of a plain public key
	RevokeSHA256 = "sha256" // Value: hex of the SHA-256 of the plain key blob
	RevokeSHA1   = "sha1"   // Value: hex of the SHA-1 of the plain key blob
	RevokeCAKey  = "ca-key" // Value: authorized_keys line of a CA public key
)

// Revocation is one recorded revocation.
type Revocation struct {
	ID        int64
	CAType    string // "user" or "host": which KRL it belongs to
	Kind      string
	Lo, Hi    uint64
	KeyID     string
	Value     string
	Reason    string
	Actor     string
	CreatedAt time.Time
	// Expires, when set, is the last instant at which anything this revocation
	// covers can still be valid; after it the revocation may be pruned.
	Expires time.Time
}

// Store is sshca's durable state. All methods are safe for concurrent use,
// including from several processes sharing one database.
type Store interface {
	// ReserveSerials durably reserves n fresh serials (never 0, never handed
	// out again, also across processes sharing the database) and returns the
	// first; the block is first..first+n-1. Serials of a block that is never
	// used are skipped, never reused.
	ReserveSerials(ctx context.Context, n int) (uint64, error)
	// CommitBatch records items in order in one transaction (group commit).
	// Before anything is written, every certificate's CA key must still be
	// the active generation of its type (else ErrCAKeyNotActive) and every
	// TokenID must name a valid token (else ErrTokenInvalid); an item failing
	// its check is left out and its error returned in errs (same index), while
	// the rest are recorded. A non-nil err means nothing was recorded.
	CommitBatch(ctx context.Context, items []BatchItem) (errs []error, err error)
	GetCert(ctx context.Context, serial uint64) (*CertRecord, error)
	ListCerts(ctx context.Context, f CertFilter) ([]CertRecord, error)
	// EachCert is ListCerts one certificate at a time, for scans whose
	// memory must not grow with the store.
	EachCert(ctx context.Context, f CertFilter, fn func(CertRecord) error) error
	// MaxSerial returns the highest serial ever assigned (0 if none).
	MaxSerial(ctx context.Context) (uint64, error)

	// AddCAKey records a new CA key generation; its Generation must be unique per CAType.
	AddCAKey(ctx context.Context, k CAKey, ev audit.Entry) error
	// SetCAKeyStates changes the states of several generations atomically.
	SetCAKeyStates(ctx context.Context, caType string, states map[int]string, ev audit.Entry) error
	ListCAKeys(ctx context.Context, caType string) ([]CAKey, error)

	// AddRevocation records r unless an identical revocation exists; it
	// reports whether r was new. A new revocation bumps the KRL version of r.CAType.
	AddRevocation(ctx context.Context, r Revocation, ev audit.Entry) (bool, error)
	// AddRevocations records many revocations in one transaction, each new
	// one with its own audit entry evs[i] (as AddRevocation completes it), in
	// order. A revocation identical to a recorded one, or to an earlier one
	// of revs, is neither recorded nor audited; added[i] reports whether
	// revs[i] was new. The KRL version of each CA type that gained a
	// revocation is bumped once. On error nothing is recorded.
	AddRevocations(ctx context.Context, revs []Revocation, evs []audit.Entry) (added []bool, err error)
	ListRevocations(ctx context.Context, caType string) ([]Revocation, error)
	// EachRevocation calls fn with caType's revocations in creation order
	// without loading them all; only ID, CAType, Kind, Lo, Hi, KeyID, Value
	// and CreatedAt are set. An error from fn stops it and is returned.
	EachRevocation(ctx context.Context, caType string, fn func(Revocation) error) error
	// PruneRevocations deletes revocations that expired before t and bumps the KRL version if any were removed.
	PruneRevocations(ctx context.Context, caType string, before time.Time, ev audit.Entry) (int, error)
	// KRLVersion is a counter that rises with every change to caType's revocations.
	KRLVersion(ctx context.Context, caType string) (uint64, error)

	// Append adds ev to the audit chain.
	Append(ctx context.Context, ev audit.Entry) (audit.Entry, error)
	// AuditEntries returns the audit log in sequence order, filtered.
	AuditEntries(ctx context.Context, f AuditFilter) ([]audit.Entry, error)
	// AuditHead returns the sequence number and hash the store believes is last.
	AuditHead(ctx context.Context) (uint64, string, error)

	Close() error
}

// AuditFilter selects audit entries. Zero fields match everything.
type AuditFilter struct {
	Actor  string
	Role   string
	Serial uint64
	Action string
	Since  time.Time
	Until  time.Time
	Limit  int
}

// Digest names what a revocation revokes (not who or why). The audit entry
// of a revocation carries it, so that audit verify can match rows to entries.
func (r Revocation) Digest() string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%s\x00%s", r.CAType, r.Kind, r.Lo, r.Hi, r.KeyID, r.Value)))
	return hex.EncodeToString(sum[:16])
}

// GenerationStat is what one CA key signed, as CA rotation needs it: how
// many certificates, and the latest expiry of those that hold the key back
// (see GenerationStats in the SQL store).
type GenerationStat struct {
	Issued     int
	LastExpiry time.Time // zero when none holds it back
}
