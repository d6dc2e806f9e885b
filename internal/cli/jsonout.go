package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/store"
)

// Every --json prints the objects of package api (docs/json.md), one JSON
// object per line: a command that lists prints one line per item, one that
// reports prints one line.

// printJSON writes each value as one line of JSON.
func printJSON[T any](e *env, values ...T) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// certOfRecord is the Certificate object of a CA record, with the
// revocation that covers it (if any), as of now.
func certOfRecord(c store.CertRecord, rev *store.Revocation, now time.Time) api.Certificate {
	var out api.Certificate
	if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.Cert)); err == nil {
		if cert, ok := pub.(*ssh.Certificate); ok {
			out = api.CertificateOf(cert, now)
		}
	}
	if out.Certificate == "" {
		// A record without a readable certificate: what the record says.
		out = api.Certificate{CertType: c.CAType, Serial: c.Serial, KeyID: c.KeyID, Principals: append([]string{}, c.Principals...),
			ValidAfter: utcOrZero(c.ValidAfter), ValidBefore: utcOrZero(c.ValidBefore), KeyType: c.SubjectType, KeyFingerprint: c.SubjectFingerprint,
			CAFingerprint: c.CAFingerprint, CriticalOptions: map[string]string{}, Extensions: []string{}}
		out.SetTimes(now)
	}
	out.Role = c.Role
	out.Requester = c.Requester
	out.IssuedAt = utcOrZero(c.IssuedAt)
	if rev != nil {
		r := revocationJSON(*rev)
		out.Revoked = &r
		out.Status = api.StatusRevoked
	}
	return out
}

// revocationJSON is the Revocation object of a recorded revocation.
func revocationJSON(r store.Revocation) api.Revocation {
	out := api.Revocation{ID: r.ID, CAType: r.CAType, Kind: r.Kind, Reason: r.Reason, Actor: r.Actor,
		RevokedAt: utcOrZero(r.CreatedAt), CoversUntil: utcOrZero(r.Expires)}
	switch r.Kind {
	case store.RevokeSerial:
		out.SerialFrom, out.SerialTo = r.Lo, r.Hi
	case store.RevokeKeyID:
		out.KeyID = r.KeyID
	case store.RevokeKey, store.RevokeCAKey:
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value)); err == nil {
			out.Fingerprint = ssh.FingerprintSHA256(pub)
		}
	case store.RevokeSHA256:
		if b, err := hex.DecodeString(r.Value); err == nil && len(b) == sha256.Size {
			out.Fingerprint = sha256Fingerprint(b)
		}
	case store.RevokeSHA1:
		out.SHA1 = strings.ToLower(r.Value)
	}
	return out
}

// sha256Fingerprint writes a SHA-256 digest as ssh-keygen -l does.
func sha256Fingerprint(sum []byte) string {
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum)
}

// caKeyJSON is the CAKey object of a CA generation.
func caKeyJSON(g ca.Generation) api.CAKey {
	return api.CAKey{CAType: g.CAType, Generation: g.Generation, State: g.State, KeyType: g.KeyType, Signer: g.Signer,
		Fingerprint: g.Fingerprint, PublicKey: strings.TrimSpace(g.PublicKey), CreatedAt: utcOrZero(g.CreatedAt),
		Certificates: g.Issued, LastCertExpiry: utcOrZero(g.LastExpiry)}
}

// tokenJSON is the Token object of a stored token; status as `token list` shows it.
func tokenJSON(t store.Token, status string) api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Kind: t.Kind, Roles: t.Roles, Principals: t.Principals, CreatedBy: t.CreatedBy,
		CreatedAt: utcOrZero(t.CreatedAt), ExpiresAt: utcOrZero(t.ExpiresAt), RevokedAt: utcOrZero(t.RevokedAt), UsedAt: utcOrZero(t.UsedAt),
		Status: status}
}

// utcOrZero is t in UTC to the second, and the zero time (left out by
// omitzero) for zero.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}
