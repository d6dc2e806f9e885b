package store

import (
	"context"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

// Token kinds.
const (
	TokenRole   = "role"   // automation: may request certificates of its roles
	TokenAdmin  = "admin"  // may revoke and manage
	TokenEnroll = "enroll" // one-time host enrollment, bound to host names
	TokenHost   = "host"   // an enrolled host's own credential for fleet reports
)

// Token is an API token. Only a hash of its secret is stored.
type Token struct {
	ID         string // public part of the token, unique
	Name       string
	Kind       string
	Roles      []string
	Principals []string // enroll tokens: the host names they may certify
	Hash       string   // hex SHA-256 of the secret
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while valid
	UsedAt     time.Time // enroll tokens: when consumed
}

// Status is what a listing says of t at now: revoked, expired, used or
// active (in that order: a revoked token that also expired was revoked).
func (t Token) Status(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case !t.UsedAt.IsZero():
		return "used"
	}
	return "active"
}

// Host is what a server's agent last reported.
type Host struct {
	Name           string // the host's primary name (first principal of its certificate)
	LastSeen       time.Time
	KRLVersion     uint64
	CAKeys         []string // fingerprints of the trusted user CA keys installed
	HostCertExpiry time.Time
	Stale          bool   // the agent reported it could not refresh
	Detail         string // free text from the agent
	// HostCertCA is the SHA256 fingerprint of the CA key that signed the
	// host certificate the agent reported with ("" before it was recorded),
	// so that a rotation shows which hosts are still on the old generation.
	HostCertCA string
}

// ServiceStore is what the certificate service needs beyond Store.
type ServiceStore interface {
	Store
	StatsStore
	UserStore

	CreateToken(ctx context.Context, t Token, ev audit.Entry) error
	GetToken(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks a token revoked; ErrNotFound if it does not exist.
	RevokeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error
	// ConsumeToken marks a one-time token used; ErrConflict if it already was.
	ConsumeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error

	// PutTOTP enrolls identity; ErrExists if it already is.
	PutTOTP(ctx context.Context, identity string, secret []byte, ev audit.Entry) error
	GetTOTP(ctx context.Context, identity string) (secret []byte, lastStep uint64, err error)
	// AdvanceTOTP records that step was used; ErrConflict unless step is
	// above the last one used (a replayed code).
	AdvanceTOTP(ctx context.Context, identity string, step uint64) error
	DeleteTOTP(ctx context.Context, identity string, ev audit.Entry) error

	// PutChallenge stores a renewal challenge until expires.
	PutChallenge(ctx context.Context, id string, expires time.Time) error
	// TakeChallenge removes a challenge; ErrNotFound if it is absent or expired.
	TakeChallenge(ctx context.Context, id string, now time.Time) error

	// ReportHost records an agent's report.
	ReportHost(ctx context.Context, h Host) error
	ListHosts(ctx context.Context) ([]Host, error)
}
