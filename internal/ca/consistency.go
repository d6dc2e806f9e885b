package ca

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// ConsistencyStore is what CheckConsistency reads.
type ConsistencyStore interface {
	ListCerts(ctx context.Context, f store.CertFilter) ([]store.CertRecord, error)
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
}

// maxProblems bounds the report of CheckConsistency.
const maxProblems = 20

// CheckConsistency compares the state tables with a verified audit log:
// every certificate, revocation, CA key and token row must be backed by
// the entry that created it, and every such entry by its row (revocations
// pruned through sshca excepted). It finds rows that someone with database
// access inserted, deleted or changed without going through sshca — a
// revocation deleted to un-revoke a certificate, a CA key or token slipped
// in — which the hash chain alone cannot see. It returns the problems
// found, at most maxProblems of them.
func CheckConsistency(ctx context.Context, st ConsistencyStore, entries []audit.Entry) ([]string, error) {
	var problems []string
	add := func(format string, a ...any) {
		if len(problems) < maxProblems {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}

	// Certificates: one issuance entry per row, with the same key ID and role.
	issued := map[uint64]audit.Entry{}
	for _, e := range entries {
		if e.Action == audit.ActionIssue && e.Serial != 0 {
			if prev, dup := issued[e.Serial]; dup {
				add("serial %d was issued twice (entries %d and %d)", e.Serial, prev.Seq, e.Seq)
			}
			issued[e.Serial] = e
		}
	}
	certs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil {
		return nil, err
	}
	rows := map[uint64]bool{}
	for _, c := range certs {
		rows[c.Serial] = true
		e, ok := issued[c.Serial]
		switch {
		case !ok:
			add("certificate %d has no issuance entry in the audit log (row added outside sshca?)", c.Serial)
		case e.KeyID != c.KeyID || e.Role != c.Role:
			add("certificate %d differs from its issuance entry %d (key ID or role changed)", c.Serial, e.Seq)
		case e.Details["principals"] != "" && e.Details["principals"] != strings.Join(c.Principals, ","):
			add("certificate %d differs from its issuance entry %d (principals changed)", c.Serial, e.Seq)
		}
	}
	for serial, e := range issued {
		if !rows[serial] {
			add("certificate %d was issued (entry %d) but its row is missing", serial, e.Seq)
		}
	}

	// Revocations: the rows are exactly those recorded and not pruned.
	want := map[int64]string{} // revocation ID -> digest
	for _, e := range entries {
		if e.Action != audit.ActionRevoke {
			continue
		}
		if id, err := strconv.ParseInt(e.Details["revocation_id"], 10, 64); err == nil {
			want[id] = e.Details["revocation"]
		}
		for _, p := range strings.Split(e.Details["pruned_ids"], ",") {
			if id, err := strconv.ParseInt(p, 10, 64); err == nil {
				delete(want, id)
			}
		}
	}
	for _, t := range []string{"user", "host"} {
		revs, err := st.ListRevocations(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, r := range revs {
			digest, ok := want[r.ID]
			switch {
			case !ok:
				add("revocation %d (%s) has no audit entry (row added outside sshca?)", r.ID, r.Kind)
			case digest != "" && digest != r.Digest():
				add("revocation %d differs from its audit entry (changed outside sshca)", r.ID)
			}
			delete(want, r.ID)
		}
	}
	for id := range want {
		add("revocation %d is in the audit log but its row is missing: what it revoked is no longer in the KRL", id)
	}

	// CA keys: each was created by init or rotate.
	created := map[string]bool{}
	for _, e := range entries {
		if e.Action == audit.ActionInit || e.Action == audit.ActionCARotate {
			created[e.Details["fingerprint"]] = true
		}
	}
	for _, t := range []string{"user", "host"} {
		keys, err := st.ListCAKeys(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !created[k.Fingerprint] {
				add("%s CA generation %d (%s) has no audit entry: a CA key added outside sshca would be trusted by every server", t, k.Generation, k.Fingerprint)
			}
		}
	}

	// Tokens: each was created through sshca; revoked ones stay revoked.
	made, revoked := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		if e.Action != audit.ActionToken {
			continue
		}
		switch e.Reason {
		case "token created":
			made[e.Details["token"]] = true
		case "token revoked":
			revoked[e.Details["token"]] = true
		}
	}
	toks, err := st.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if !made[t.ID] {
			add("token %s (%s) has no creation entry in the audit log (row added outside sshca?)", t.Name, t.ID)
		}
		if revoked[t.ID] && t.RevokedAt.IsZero() {
			add("token %s (%s) was revoked but its row says it is not", t.Name, t.ID)
		}
	}
	slices.Sort(problems)
	return problems, nil
}
