package ca

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Rules of a request refused because what it would certify is revoked: the
// certificate could never be used, so it is not issued.
const (
	RuleRevokedKey   = "revoked-key"
	RuleRevokedKeyID = "revoked-key-id"
)

// revokedIndex holds the key and key ID revocations of one CA type, as of
// one KRL version: what issuance checks a request against. Serial
// revocations are left out (a new certificate gets a fresh serial).
type revokedIndex struct {
	version uint64
	sha256  map[[32]byte]int64 // plain key blob digest -> revocation ID (kinds key, sha256)
	sha1    map[[20]byte]int64
	// keyIDs maps a key ID to its revocations: the fingerprint of the CA
	// generation each applies to ("" for every generation) and its ID.
	keyIDs map[string][]scopedID
}

type scopedID struct {
	caFP string
	id   int64
}

// revokedCache keeps the latest revokedIndex per CA type.
type revokedCache struct {
	mu sync.Mutex
	m  map[string]*revokedIndex
}

// revokedIndexOf returns the index of caType. With fresh it is the index of
// the store's current KRL version (one query while nothing was revoked, a
// scan of the key and key ID revocations when something was); without, the
// cached index when there is one, with no query: the service's issuance
// path, whose records carry the version they were checked at; if it moved
// on, the recording transaction looks up whether a revocation now covers the
// certificate and then refuses it (store.ErrRevocationsChanged), upon which
// Sign asks again with fresh. A store that cannot list revocations gives
// nil: nothing is checked.
func (a *Authority) revokedIndexOf(ctx context.Context, caType string, fresh bool) (*revokedIndex, error) {
	ks, ok := a.Store.(KRLStore)
	if !ok {
		return nil, nil
	}
	c := &a.revokedIx
	if !fresh {
		c.mu.Lock()
		x := c.m[caType]
		c.mu.Unlock()
		if x != nil {
			return x, nil
		}
	}
	v, err := ks.KRLVersion(ctx, caType)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if x := c.m[caType]; x != nil && x.version == v {
		return x, nil
	}
	x := &revokedIndex{version: v, sha256: map[[32]byte]int64{}, sha1: map[[20]byte]int64{}, keyIDs: map[string][]scopedID{}}
	fps := map[string]string{} // scope line -> fingerprint
	err = ks.EachRevocation(ctx, caType, func(r store.Revocation) error {
		switch r.Kind {
		case store.RevokeKey:
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
			if err != nil {
				return fmt.Errorf("ca: revocation %d: bad key: %w", r.ID, err)
			}
			x.sha256[sha256.Sum256(pub.Marshal())] = r.ID
		case store.RevokeSHA256:
			var sum [32]byte
			if decodeHex(sum[:], r.Value) {
				x.sha256[sum] = r.ID
			}
		case store.RevokeSHA1:
			var sum [20]byte
			if decodeHex(sum[:], r.Value) {
				x.sha1[sum] = r.ID
			}
		case store.RevokeKeyID:
			fp, ok := fps[r.Value]
			if !ok && r.Value != "" {
				pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
				if err != nil {
					return fmt.Errorf("ca: revocation %d: bad CA key: %w", r.ID, err)
				}
				fp = ssh.FingerprintSHA256(pub)
				fps[r.Value] = fp
			}
			x.keyIDs[r.KeyID] = append(x.keyIDs[r.KeyID], scopedID{fp, r.ID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*revokedIndex{}
	}
	c.m[caType] = x
	return x, nil
}

// check refuses a certificate for subject with keyID under CA generation
// caFP if a revocation already covers it. It returns the rule and the ID of
// the revocation, or "" when none does.
func (x *revokedIndex) check(subject ssh.PublicKey, keyID, caFP string) (rule string, id int64) {
	if x == nil {
		return "", 0
	}
	blob := subject.Marshal()
	if id, ok := x.sha256[sha256.Sum256(blob)]; ok {
		return RuleRevokedKey, id
	}
	if len(x.sha1) > 0 {
		if id, ok := x.sha1[sha1.Sum(blob)]; ok {
			return RuleRevokedKey, id
		}
	}
	for _, s := range x.keyIDs[keyID] {
		if s.caFP == "" || s.caFP == caFP {
			return RuleRevokedKeyID, s.id
		}
	}
	return "", 0
}

// revokedDenial is the refusal of a request blocked by revocation id,
// naming it: what it revokes, when, by whom and why.
func (a *Authority) revokedDenial(ctx context.Context, caType, rule string, id int64, subject ssh.PublicKey, keyID string) *policy.DenyError {
	what := fmt.Sprintf("key %s is revoked", ssh.FingerprintSHA256(subject))
	hint := "certify another key"
	if rule == RuleRevokedKeyID {
		what = fmt.Sprintf("key ID %q is revoked", keyID)
		hint = "choose another key ID"
	}
	if r := a.findRevocation(ctx, caType, id); r != nil {
		what += fmt.Sprintf(" (revocation %d, %s, at %s by %s", r.ID, r.Kind, r.CreatedAt.UTC().Format(time.RFC3339), r.Actor)
		if r.Reason != "" {
			what += fmt.Sprintf(": %q", r.Reason)
		}
		what += ")"
	} else {
		what += fmt.Sprintf(" (revocation %d)", id)
	}
	return &policy.DenyError{Rule: rule, Msg: what + ": a certificate for it could never be used; " + hint}
}

// findRevocation reads revocation id of caType, with its reason and actor;
// nil if the store cannot tell. Only a refusal pays for it.
func (a *Authority) findRevocation(ctx context.Context, caType string, id int64) *store.Revocation {
	ls, ok := a.Store.(interface {
		ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	})
	if !ok {
		return nil
	}
	rs, err := ls.ListRevocations(ctx, caType)
	if err != nil {
		return nil
	}
	for i := range rs {
		if rs[i].ID == id {
			return &rs[i]
		}
	}
	return nil
}

// sha1Hex is the hex SHA-1 of a plain key blob, as sha1 revocations store it.
func sha1Hex(k ssh.PublicKey) string {
	sum := sha1.Sum(k.Marshal())
	return hex.EncodeToString(sum[:])
}

// revocationProbe is what would revoke cert, for the recording transaction
// to look up when something was revoked since rx was read (see
// store.BatchItem.CheckRevocations). cert is signed.
func revocationProbe(cert *ssh.Certificate) store.RevocationProbe {
	subject := plainKey(cert.Key)
	blob := subject.Marshal()
	s256 := sha256.Sum256(blob)
	return store.RevocationProbe{KeyLine: authorizedLine(subject), SHA256: hex.EncodeToString(s256[:]), SHA1: sha1Hex(subject),
		KeyID: cert.KeyId, CALine: authorizedLine(cert.SignatureKey)}
}
