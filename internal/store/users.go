package store

import (
	"context"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

// LocalUser is a person without an identity provider (sshca user add): a
// name, groups that roles' allow.local_groups may name, and the SSH public
// keys with which they authenticate at the SSH front door.
type LocalUser struct {
	Name      string
	Groups    []string
	Keys      []LocalUserKey
	CreatedBy string
	CreatedAt time.Time
}

// LocalUserKey is one registered public key of a local user. A key belongs
// to one local user at most.
type LocalUserKey struct {
	// Fingerprint is the key's SHA256 fingerprint ("SHA256:..."), unique.
	Fingerprint string
	// PublicKey is the key in authorized_keys format (type and base64,
	// without comment).
	PublicKey string
	AddedAt   time.Time
}

// UserStore keeps local users. Every change is recorded with its audit
// entry in the same transaction.
type UserStore interface {
	// AddLocalUser creates u with its keys; ErrExists if the name or one of
	// the keys is already registered.
	AddLocalUser(ctx context.Context, u LocalUser, ev audit.Entry) error
	// GetLocalUser returns a user with its keys; ErrNotFound if absent.
	GetLocalUser(ctx context.Context, name string) (*LocalUser, error)
	// LocalUserByKey returns the user owning the key of that fingerprint
	// (with all its keys); ErrNotFound if none does.
	LocalUserByKey(ctx context.Context, fingerprint string) (*LocalUser, error)
	// ListLocalUsers lists every local user, by name.
	ListLocalUsers(ctx context.Context) ([]LocalUser, error)
	// RemoveLocalUser deletes a user, its keys and its TOTP enrollment
	// (factor ID "local:NAME"); ErrNotFound if absent.
	RemoveLocalUser(ctx context.Context, name string, ev audit.Entry) error
	// AddLocalUserKey registers one more key; ErrNotFound for an unknown
	// user, ErrExists for a key already registered (to anyone).
	AddLocalUserKey(ctx context.Context, name string, k LocalUserKey, ev audit.Entry) error
	// RemoveLocalUserKey removes a key of name by fingerprint; ErrNotFound
	// if that user has no such key.
	RemoveLocalUserKey(ctx context.Context, name, fingerprint string, ev audit.Entry) error
}

// LocalUserRow is the row of a local user as row seals cover it (see
// SealRow): the user without its keys.
func LocalUserRow(u LocalUser) LocalUser {
	return LocalUser{Name: u.Name, Groups: u.Groups, CreatedBy: u.CreatedBy, CreatedAt: u.CreatedAt}
}

// LocalUserKeyRow is the row of one key of a local user as row seals cover it.
type LocalUserKeyRow struct {
	Fingerprint string
	Name        string // the user's
	PublicKey   string
	AddedAt     time.Time
}

// LocalUserRowKey is the Details key of the seal of local user name's row.
func LocalUserRowKey(name string) string { return rowKeyPrefix + "local-user:" + name }

// LocalUserKeyRowKey is the Details key of the seal of a local user key's row.
func LocalUserKeyRowKey(fingerprint string) string {
	return rowKeyPrefix + "local-user-key:" + fingerprint
}

// RowDeleted is the seal value with which the entry that deletes a sealed
// row through sshca says so (local users and their keys): the row is then
// expected to be absent, and a row of that key that appears later without
// a seal of its own was added outside sshca.
const RowDeleted = "deleted"
