// Package audit defines sshca's tamper-evident audit log: every entry carries
// the SHA-256 hash of the previous entry, so a changed, removed or reordered
// entry breaks the chain. It computes and verifies hashes; storing the entries
// is the store's job, and it never decides anything about policy.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/jsonenc"
)

// Actions recorded in the log.
const (
	ActionInit       = "init"
	ActionIssue      = "cert.issue"
	ActionDeny       = "cert.deny"
	ActionRevoke     = "revoke"
	ActionCARotate   = "ca.rotate"
	ActionCAPromote  = "ca.promote"
	ActionCARetire   = "ca.retire"
	ActionCARevoke   = "ca.revoke-key"
	ActionToken      = "token"
	ActionAdmin      = "admin"
	ActionHostReport = "host.report"
)

// Entry is one record of the audit log.
type Entry struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor"`            // who asked: "cli:root", "token:ci-deploy", "oidc:alice"
	Action   string            `json:"action"`           // one of the Action constants
	Role     string            `json:"role,omitempty"`   // role involved, if any
	Serial   uint64            `json:"serial,omitempty"` // certificate serial, if any
	KeyID    string            `json:"key_id,omitempty"`
	Outcome  string            `json:"outcome"`          // "ok" or "denied"
	Reason   string            `json:"reason,omitempty"` // rule or message for denials, text for revocations
	Details  map[string]string `json:"details,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// GenesisHash is the PrevHash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ComputeHash returns the hash of e chained to e.PrevHash. It covers every
// field except Hash itself; Time is hashed at microsecond precision in UTC so
// that both stores round-trip it exactly.
func ComputeHash(e Entry) string {
	return computeHash(e, nil)
}

// computeHash is ComputeHash with e.Details already encoded as JSON
// (details; nil to encode them here).
func computeHash(e Entry, details []byte) string {
	e.Hash = ""
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	var buf [1024]byte
	b, ok := appendHashJSON(buf[:0], &e, details)
	if !ok {
		var err error
		if b, err = json.Marshal(e); err != nil {
			// Entry holds only strings, numbers and a time; Marshal fails
			// only on a time beyond what RFC 3339 can write.
			panic(fmt.Sprintf("audit: marshal entry: %v", err))
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Seal sets e.PrevHash and e.Hash so that e follows prev (nil for the first entry)
// and normalises e.Time.
func Seal(e *Entry, prev *Entry) {
	SealDetails(e, prev)
}

// SealDetails is Seal, and returns e.Details as the JSON its hash covers
// (sorted keys; "" when there are none), which is how a store keeps them.
func SealDetails(e *Entry, prev *Entry) string {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if prev == nil {
		e.Seq = 1
		e.PrevHash = GenesisHash
	} else {
		e.Seq = prev.Seq + 1
		e.PrevHash = prev.Hash
	}
	var details []byte
	if len(e.Details) > 0 {
		details = jsonenc.Map(make([]byte, 0, 512), e.Details)
	}
	e.Hash = computeHash(*e, details)
	return string(details)
}

// VerifyError names the first entry at which the chain is broken.
type VerifyError struct {
	Seq    uint64 // sequence number of the offending entry (or the missing one)
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: entry %d: %s", e.Seq, e.Reason)
}

// Verify checks a whole log, given in storage order. It reports the first
// changed, missing or reordered entry.
func Verify(entries []Entry) error {
	return VerifyFrom(0, GenesisHash, entries)
}

// VerifyFrom checks entries that continue a log already verified through
// entry seq, whose hash is hash (0 and GenesisHash for a whole log), so
// that a long log can be verified a part at a time.
func VerifyFrom(seq uint64, hash string, entries []Entry) error {
	prevHash := hash
	want := seq + 1
	for _, e := range entries {
		if e.Seq != want {
			if e.Seq > want {
				return &VerifyError{Seq: want, Reason: fmt.Sprintf("missing (next entry present is %d)", e.Seq)}
			}
			return &VerifyError{Seq: e.Seq, Reason: fmt.Sprintf("out of order (expected entry %d here)", want)}
		}
		if got := ComputeHash(e); got != e.Hash {
			return &VerifyError{Seq: e.Seq, Reason: "content does not match its hash (entry was changed)"}
		}
		if e.PrevHash != prevHash {
			return &VerifyError{Seq: e.Seq, Reason: "does not chain to the previous entry (an entry was removed, inserted or reordered)"}
		}
		prevHash = e.Hash
		want++
	}
	return nil
}
