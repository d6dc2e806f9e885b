package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/store"
)

// RevocationStore is the storage revocation needs.
type RevocationStore interface {
	GetCert(ctx context.Context, serial uint64) (*store.CertRecord, error)
	ListCerts(ctx context.Context, f store.CertFilter) ([]store.CertRecord, error)
	MaxSerial(ctx context.Context) (uint64, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	AddRevocation(ctx context.Context, r store.Revocation, ev audit.Entry) (bool, error)
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	PruneRevocations(ctx context.Context, caType string, before time.Time, ev audit.Entry) (int, error)
	KRLVersion(ctx context.Context, caType string) (uint64, error)
}

// Revocation asks for one thing to be revoked. Exactly one of the target
// fields is set: Serial range (Lo..Hi), KeyID, Key, SHA256, or CAKey.
type Revocation struct {
	CAType string // "user" or "host": the KRL it goes into
	Lo, Hi uint64
	KeyID  string
	Key    ssh.PublicKey // a plain key (a certificate is reduced to its key)
	SHA256 []byte        // fingerprint of a plain key
	SHA1   []byte        // fingerprint of a plain key (imports only)
	CAKey  ssh.PublicKey // a whole CA key
	// Scope is the CA that a serial or key ID revocation applies to. nil:
	// every key of this home's CA of CAType. Set for imported revocations of
	// another CA's certificates.
	Scope  ssh.PublicKey
	Reason string
	Actor  string
	// Force allows serials and key IDs this CA never issued.
	Force bool
}

// ErrNeverIssued is returned when a serial or key ID was never issued by this CA.
var ErrNeverIssued = errors.New("never issued by this CA")

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func plainKey(k ssh.PublicKey) ssh.PublicKey {
	if c, ok := k.(*ssh.Certificate); ok {
		return c.Key
	}
	return k
}

// Revoke records r. It reports whether it was new (false: already revoked).
func Revoke(ctx context.Context, st RevocationStore, r Revocation, now time.Time) (bool, error) {
	if r.CAType != "user" && r.CAType != "host" {
		return false, fmt.Errorf("revoke: CA type %q is not user or host", r.CAType)
	}
	rec := store.Revocation{CAType: r.CAType, Reason: r.Reason, Actor: r.Actor, CreatedAt: now}
	details := map[string]string{"ca": r.CAType}
	if r.Scope != nil {
		if _, isCert := r.Scope.(*ssh.Certificate); isCert {
			return false, errors.New("revoke: a CA key must be a plain key, not a certificate")
		}
		rec.Value = authorizedLine(r.Scope)
		details["scope"] = ssh.FingerprintSHA256(r.Scope)
	}
	switch {
	case r.Lo != 0 || r.Hi != 0:
		if r.Lo == 0 || r.Hi < r.Lo {
			return false, fmt.Errorf("revoke: serial range %d-%d is invalid (serials start at 1, low <= high)", r.Lo, r.Hi)
		}
		rec.Kind, rec.Lo, rec.Hi = store.RevokeSerial, r.Lo, r.Hi
		if r.Scope == nil {
			exp, err := serialsExpiry(ctx, st, r.CAType, r.Lo, r.Hi, r.Force)
			if err != nil {
				return false, err
			}
			rec.Expires = exp
		}
		if r.Lo == r.Hi {
			details["serial"] = fmt.Sprint(r.Lo)
		} else {
			details["serials"] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	case r.KeyID != "":
		if strings.ContainsRune(r.KeyID, 0) {
			return false, errors.New("revoke: key ID contains NUL")
		}
		rec.Kind, rec.KeyID = store.RevokeKeyID, r.KeyID
		if r.Scope == nil {
			certs, err := st.ListCerts(ctx, store.CertFilter{KeyID: r.KeyID, CAType: r.CAType})
			if err != nil {
				return false, err
			}
			if len(certs) == 0 && !r.Force {
				return false, fmt.Errorf("revoke: key ID %q: %w (use --force to revoke it anyway)", r.KeyID, ErrNeverIssued)
			}
		}
	case r.Key != nil:
		k := plainKey(r.Key)
		rec.Kind, rec.Value = store.RevokeKey, authorizedLine(k)
		details["key"] = ssh.FingerprintSHA256(k)
	case len(r.SHA256) > 0:
		if len(r.SHA256) != sha256.Size {
			return false, fmt.Errorf("revoke: SHA256 fingerprint has %d bytes, want 32", len(r.SHA256))
		}
		rec.Kind, rec.Value = store.RevokeSHA256, hex.EncodeToString(r.SHA256)
	case len(r.SHA1) > 0:
		if len(r.SHA1) != 20 {
			return false, fmt.Errorf("revoke: SHA1 fingerprint has %d bytes, want 20", len(r.SHA1))
		}
		rec.Kind, rec.Value = store.RevokeSHA1, hex.EncodeToString(r.SHA1)
	case r.CAKey != nil:
		k := plainKey(r.CAKey)
		rec.Kind, rec.Value = store.RevokeCAKey, authorizedLine(k)
		details["ca_key"] = ssh.FingerprintSHA256(k)
	default:
		return false, errors.New("revoke: nothing to revoke")
	}
	if rec.Kind != store.RevokeSerial && rec.Kind != store.RevokeKeyID && r.Scope != nil {
		return false, errors.New("revoke: a CA scope only applies to serials and key IDs")
	}
	ev := audit.Entry{Time: now, Actor: r.Actor, Action: audit.ActionRevoke, KeyID: r.KeyID, Outcome: "ok", Reason: r.Reason, Details: details}
	details["kind"] = rec.Kind
	if rec.Kind == store.RevokeSerial && rec.Lo == rec.Hi {
		ev.Serial = rec.Lo
	}
	return st.AddRevocation(ctx, rec, ev)
}

// serialsExpiry checks that lo..hi holds serials this CA issued and returns
// the latest expiry among them (zero when some were never issued: never prune).
func serialsExpiry(ctx context.Context, st RevocationStore, caType string, lo, hi uint64, force bool) (time.Time, error) {
	maxSerial, err := st.MaxSerial(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if hi > maxSerial && !force {
		if lo == hi {
			return time.Time{}, fmt.Errorf("revoke: serial %d: %w (the highest serial issued is %d; use --force to revoke it anyway)", lo, ErrNeverIssued, maxSerial)
		}
		return time.Time{}, fmt.Errorf("revoke: serials %d-%d: %w (the highest serial issued is %d; use --force to revoke them anyway)", lo, hi, ErrNeverIssued, maxSerial)
	}
	if lo == hi {
		c, err := st.GetCert(ctx, lo)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.CAType != caType) {
			if force {
				return time.Time{}, nil
			}
			return time.Time{}, fmt.Errorf("revoke: serial %d: %w (use --force to revoke it anyway)", lo, ErrNeverIssued)
		}
		if err != nil {
			return time.Time{}, err
		}
		return c.ValidBefore, nil
	}
	// A range: it must contain at least one certificate of this CA; the
	// expiry is the latest among them, and only if the range is fully known.
	if hi-lo > 10_000_000 {
		return time.Time{}, nil
	}
	certs, err := listSerialRange(ctx, st, caType, lo, hi)
	if err != nil {
		return time.Time{}, err
	}
	if len(certs) == 0 && !force {
		return time.Time{}, fmt.Errorf("revoke: serials %d-%d: %w (use --force to revoke them anyway)", lo, hi, ErrNeverIssued)
	}
	if hi > maxSerial {
		return time.Time{}, nil
	}
	var exp time.Time
	for _, c := range certs {
		if c.ValidBefore.After(exp) {
			exp = c.ValidBefore
		}
	}
	return exp, nil
}

func listSerialRange(ctx context.Context, st RevocationStore, caType string, lo, hi uint64) ([]store.CertRecord, error) {
	all, err := st.ListCerts(ctx, store.CertFilter{CAType: caType})
	if err != nil {
		return nil, err
	}
	var out []store.CertRecord
	for _, c := range all {
		if c.Serial >= lo && c.Serial <= hi {
			out = append(out, c)
		}
	}
	return out, nil
}

// BuildKRL assembles the KRL of caType from the store. Serial and key ID
// revocations of this home's CA go under every key of that CA that servers may
// still trust (next, active, retiring), so they hold across rotations.
func BuildKRL(ctx context.Context, st RevocationStore, caType string, now time.Time) (*krl.KRL, error) {
	revs, err := st.ListRevocations(ctx, caType)
	if err != nil {
		return nil, err
	}
	version, err := st.KRLVersion(ctx, caType)
	if err != nil {
		return nil, err
	}
	keys, err := st.ListCAKeys(ctx, caType)
	if err != nil {
		return nil, err
	}
	var ours []ssh.PublicKey
	for _, k := range keys {
		if k.State == store.StateRetired || k.State == store.StateRevoked {
			// Retired keys are trusted nowhere; a revoked key is in the
			// KRL itself, which covers everything it signed.
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("krl: %s CA generation %d: bad public key in store: %w", caType, k.Generation, err)
		}
		ours = append(ours, pub)
	}
	k := &krl.KRL{Version: version, Comment: "sshca " + caType + " CA"}
	// generated_date: the time of the latest change, so every replica builds
	// the same bytes for the same version.
	var latest time.Time
	for _, r := range revs {
		if r.CreatedAt.After(latest) {
			latest = r.CreatedAt
		}
	}
	if latest.IsZero() {
		for _, key := range keys {
			if key.CreatedAt.After(latest) {
				latest = key.CreatedAt
			}
		}
	}
	if latest.IsZero() {
		latest = now
	}
	k.GeneratedDate = uint64(latest.Unix())
	scopes := func(r store.Revocation) ([]ssh.PublicKey, error) {
		if r.Value == "" {
			return ours, nil
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
		if err != nil {
			return nil, fmt.Errorf("krl: revocation %d: bad CA key: %w", r.ID, err)
		}
		return []ssh.PublicKey{pub}, nil
	}
	for _, r := range revs {
		switch r.Kind {
		case store.RevokeSerial, store.RevokeKeyID:
			cas, err := scopes(r)
			if err != nil {
				return nil, err
			}
			for _, ca := range cas {
				if r.Kind == store.RevokeSerial {
					err = k.RevokeSerials(ca, r.Lo, r.Hi)
				} else {
					err = k.RevokeKeyID(ca, r.KeyID)
				}
				if err != nil {
					return nil, fmt.Errorf("krl: revocation %d: %w", r.ID, err)
				}
			}
		case store.RevokeKey, store.RevokeCAKey:
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
			if err != nil {
				return nil, fmt.Errorf("krl: revocation %d: bad key: %w", r.ID, err)
			}
			if err := k.RevokeKey(pub); err != nil {
				return nil, fmt.Errorf("krl: revocation %d: %w", r.ID, err)
			}
		case store.RevokeSHA256:
			b, err := hex.DecodeString(r.Value)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("krl: revocation %d: bad SHA256 value", r.ID)
			}
			k.RevokeSHA256([32]byte(b))
		case store.RevokeSHA1:
			b, err := hex.DecodeString(r.Value)
			if err != nil || len(b) != 20 {
				return nil, fmt.Errorf("krl: revocation %d: bad SHA1 value", r.ID)
			}
			k.RevokeSHA1([20]byte(b))
		default:
			return nil, fmt.Errorf("krl: revocation %d: unknown kind %q", r.ID, r.Kind)
		}
	}
	return k, nil
}

// MarshalKRL encodes k and validates the result by decoding it again, so
// that nothing OpenSSH cannot load ever leaves the process.
func MarshalKRL(k *krl.KRL) ([]byte, error) {
	b, err := k.Marshal()
	if err != nil {
		return nil, err
	}
	back, err := krl.ParseWith(b, krl.Options{Strict: true})
	if err != nil {
		return nil, fmt.Errorf("krl: self-check of generated KRL failed: %w", err)
	}
	b2, err := back.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		return nil, errors.New("krl: self-check of generated KRL failed: re-encoding differs")
	}
	return b, nil
}

// PruneGrace is how long after its certificates expired a revocation is kept,
// for servers whose clocks run behind.
const PruneGrace = time.Hour

// PruneExpired drops revocations whose certificates have all been expired
// for at least PruneGrace.
func PruneExpired(ctx context.Context, st RevocationStore, caType, actor string, now time.Time) (int, error) {
	ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionRevoke, Outcome: "ok", Reason: "prune expired revocations",
		Details: map[string]string{"ca": caType}}
	return st.PruneRevocations(ctx, caType, now.Add(-PruneGrace), ev)
}
