package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// TokenPrefix starts every API token: sshca_<id>_<secret>.
const TokenPrefix = "sshca_"

// TokenTOTPInvite is the kind of a one-time TOTP enrollment code that an
// admin issues for one person (`sshca totp invite`); its Principals hold the
// person's user name.
const TokenTOTPInvite = "totp-invite"

// NewToken makes a token's secret string and the record to store; only a
// hash of the secret is kept.
func NewToken(name, kind string, roles, principals []string, createdBy string, now time.Time, ttl time.Duration) (string, store.Token, error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", store.Token{}, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", store.Token{}, err
	}
	id := hex.EncodeToString(idb[:])
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	t := store.Token{ID: id, Name: name, Kind: kind, Roles: roles, Principals: principals, Hash: hashSecret(secret),
		CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	return TokenPrefix + id + "_" + secret, t, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ErrMalformedToken is returned by SplitToken for a string that is not an
// sshca token.
var ErrMalformedToken = errors.New("malformed API token")

// SplitToken returns the public ID and the secret of a token string.
func SplitToken(cred string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(cred, TokenPrefix)
	if !ok {
		return "", "", ErrMalformedToken
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" || len(secret) > 256 {
		return "", "", ErrMalformedToken
	}
	return id, secret, nil
}

// TokenSecretMatches reports, in constant time, whether secret is t's.
func TokenSecretMatches(t *store.Token, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(t.Hash)) == 1
}

// PolicyToken is what the access decision sees of a stored token.
func PolicyToken(t *store.Token) *policy.Token {
	if t == nil {
		return nil
	}
	return &policy.Token{ID: t.ID, Name: t.Name, Kind: t.Kind, Roles: t.Roles, Principals: t.Principals,
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, UsedAt: t.UsedAt}
}
