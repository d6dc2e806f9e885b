package store

import (
	"context"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

// Certificate statuses a CertQuery selects.
const (
	CertValid    = "valid"    // valid now and not revoked
	CertExpiring = "expiring" // valid now, not revoked, and expiring within CertQuery.Within
	CertExpired  = "expired"  // expired and not revoked
	CertRevoked  = "revoked"  // covered by a revocation
)

// CertQuery selects one page of the certificate inventory. Zero fields
// match everything.
type CertQuery struct {
	Identity  string // as CertFilter.Identity
	Role      string
	Principal string // one of the certificate's principals
	KeyID     string // a prefix of the key ID
	Serial    uint64
	CAType    string
	Status    string // one of the Cert status constants, or ""
	Now       time.Time
	Within    time.Duration // for CertExpiring
	// Revoked describes what the store cannot match by itself: the SHA256
	// fingerprints of revoked subject keys (revocations by key or key
	// fingerprint) and of revoked CA keys. Serial and key ID revocations are
	// matched by the store. The result is a superset the caller narrows
	// with ca.RevokedCerts, which also knows revocation scopes.
	RevokedKeys, RevokedCAKeys []string
	Sort                       string // "serial" (default), "expires", "key_id"
	Desc                       bool
	Offset, Limit              int
}

// CertPage is one page of certificates and whether more follow.
type CertPage struct {
	Certs []CertRecord
	More  bool
}

// HostQuery selects one page of reported hosts.
type HostQuery struct {
	Name string // a substring of the host name
	// BelowKRL selects hosts whose installed KRL version is below it.
	BelowKRL uint64
	Stale    bool // only hosts whose agent reported it could not refresh
	// SilentSince selects hosts not seen since then.
	SilentSince time.Time
	// CertBefore selects hosts whose host certificate expires before then.
	CertBefore    time.Time
	Sort          string // "name" (default), "last_seen", "krl", "cert_expiry"
	Desc          bool
	Offset, Limit int
}

// HostPage is one page of hosts and whether more follow.
type HostPage struct {
	Hosts []Host
	More  bool
}

// Count is one group of an aggregate: a key and how many rows share it.
type Count struct {
	Key string
	N   int
}

// FleetSummary aggregates the hosts table.
type FleetSummary struct {
	Total int
	Stale int
	// ByKRL counts hosts by installed user KRL version, highest first.
	ByKRL []Count
	// ByHostCA counts hosts by the CA key fingerprint of their host
	// certificate ("" for hosts that did not say).
	ByHostCA []Count
	// SilentSince, CertBefore: hosts not seen since, and hosts whose host
	// certificate expires before, the instants of the query.
	Silent, CertExpiring int
}

// AuditQuery selects one page of the audit log, newest first.
type AuditQuery struct {
	Actor, Action, Role, Outcome string
	Serial                       uint64
	Since, Until                 time.Time
	// Before, when set, selects entries with a lower sequence number (the
	// next page).
	Before uint64
	Limit  int
}

// HourCount counts audit entries of one hour, role, action and outcome.
type HourCount struct {
	Hour    time.Time
	Role    string
	Action  string
	Outcome string
	N       int
}

// ConsoleStore is the read model of the admin console: pages and
// aggregates computed in the database, so that a page costs the same with
// a hundred certificates or a hundred thousand.
type ConsoleStore interface {
	QueryCerts(ctx context.Context, q CertQuery) (CertPage, error)
	QueryHosts(ctx context.Context, q HostQuery) (HostPage, error)
	SummarizeFleet(ctx context.Context, silentSince, certBefore time.Time) (FleetSummary, error)
	QueryAudit(ctx context.Context, q AuditQuery) ([]audit.Entry, bool, error)
	// AuditAfter returns up to limit entries after sequence number seq, in
	// order (for verifying the chain a part at a time).
	AuditAfter(ctx context.Context, seq uint64, limit int) ([]audit.Entry, error)
	// AuditHours counts the issuances and denials (actions cert.issue and
	// cert.deny) of each hour since since, by role and outcome.
	AuditHours(ctx context.Context, since time.Time) ([]HourCount, error)
	// LastExpiry returns the latest expiry among the certificates the CA
	// key caFP of caType signed; zero if it signed none.
	LastExpiry(ctx context.Context, caType, caFP string) (time.Time, error)
}
