package ca_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/store"
)

// oldMaxProblems is maxProblems; TestConsistencyLogMatchesOracle raises
// it to see every problem the oracle finds.
var oldMaxProblems = 20

// oldCheckConsistency is CheckConsistency as it was before it folded the
// log into compact state (commit afcd933), kept word for word as the
// oracle of TestConsistencyLogMatchesOracle: it holds every entry and
// compares full seal strings.
func oldCheckConsistency(ctx context.Context, st ca.ConsistencyStore, entries []audit.Entry) ([]string, error) {
	var problems []string
	add := func(format string, a ...any) {
		if len(problems) < oldMaxProblems {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}

	// The last seal of every row, by row key.
	type seal struct {
		seq   uint64
		value string
	}
	seals := map[string]seal{}
	for _, e := range entries {
		for k, v := range e.Details {
			switch {
			case store.IsRowKey(k) && v == store.RowDeleted:
				delete(seals, k) // deleted through sshca
			case store.IsRowKey(k):
				seals[k] = seal{e.Seq, v}
			}
		}
		if e.Action == audit.ActionRevoke {
			for _, p := range strings.Split(e.Details["pruned_ids"], ",") {
				if id, err := strconv.ParseInt(p, 10, 64); err == nil {
					delete(seals, store.RevocationRowKey(id))
				}
			}
		}
	}
	// gone holds the keys of sealed rows already reported missing.
	gone := map[string]bool{}
	// sealed compares row with its last seal, if it has one, reporting the
	// columns that differ; it reports whether there was a seal.
	sealed := func(key, what string, row any) bool {
		s, ok := seals[key]
		if !ok {
			return false
		}
		delete(seals, key)
		if match, cols := store.CheckRowSeal(row, s.value); !match {
			changed := "a column"
			if len(cols) > 0 {
				slices.Sort(cols)
				changed = strings.Join(cols, ", ")
			}
			add("%s: %s changed outside sshca (the row differs from audit entry %d)", what, changed, s.seq)
		}
		return true
	}

	// Certificates: one issuance entry per row, with the same key ID and role.
	// The rows are streamed, not held: a store of millions is read once.
	issued := map[uint64]*audit.Entry{}
	for i := range entries {
		if e := &entries[i]; e.Action == audit.ActionIssue && e.Serial != 0 {
			if prev, dup := issued[e.Serial]; dup {
				add("serial %d was issued twice (entries %d and %d)", e.Serial, prev.Seq, e.Seq)
			}
			issued[e.Serial] = e
		}
	}
	rows := map[uint64]bool{}
	err := st.EachCert(ctx, store.CertFilter{}, func(c store.CertRecord) error {
		rows[c.Serial] = true
		if sealed(store.CertRowKey(c.Serial), fmt.Sprintf("certificate %d", c.Serial), &c) {
			return nil
		}
		e, ok := issued[c.Serial]
		switch {
		case !ok:
			add("certificate %d has no issuance entry in the audit log (row added outside sshca?)", c.Serial)
		case e.KeyID != c.KeyID || e.Role != c.Role:
			add("certificate %d differs from its issuance entry %d (key ID or role changed)", c.Serial, e.Seq)
		case e.Details["principals"] != "" && e.Details["principals"] != strings.Join(c.Principals, ","):
			add("certificate %d differs from its issuance entry %d (principals changed)", c.Serial, e.Seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for serial, e := range issued {
		if !rows[serial] {
			add("certificate %d was issued (entry %d) but its row is missing", serial, e.Seq)
			gone[store.CertRowKey(serial)] = true
		}
	}

	// Revocations: the rows are exactly those recorded and not pruned.
	want := map[int64]audit.Entry{} // revocation ID -> its entry
	for _, e := range entries {
		if e.Action != audit.ActionRevoke {
			continue
		}
		if id, err := strconv.ParseInt(e.Details["revocation_id"], 10, 64); err == nil {
			want[id] = e
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
			e, ok := want[r.ID]
			delete(want, r.ID)
			if sealed(store.RevocationRowKey(r.ID), fmt.Sprintf("revocation %d (%s)", r.ID, r.Kind), &r) {
				continue
			}
			switch digest := e.Details["revocation"]; {
			case !ok:
				add("revocation %d (%s) has no audit entry (row added outside sshca?)", r.ID, r.Kind)
			case digest != "" && digest != r.Digest():
				add("revocation %d differs from its audit entry %d (changed outside sshca)", r.ID, e.Seq)
			}
		}
	}
	for id, e := range want {
		add("revocation %d is in the audit log (entry %d) but its row is missing: what it revoked is no longer in the KRL", id, e.Seq)
		gone[store.RevocationRowKey(id)] = true
	}

	// CA keys: each was created by init or rotate.
	type genKey struct {
		caType string
		gen    string
	}
	created := map[string]bool{}
	createdGen := map[genKey]audit.Entry{}
	for _, e := range entries {
		if e.Action == audit.ActionInit || e.Action == audit.ActionCARotate {
			created[e.Details["fingerprint"]] = true
			if e.Details["ca"] != "" && e.Details["generation"] != "" {
				createdGen[genKey{e.Details["ca"], e.Details["generation"]}] = e
			}
		}
	}
	for _, t := range []string{"user", "host"} {
		keys, err := st.ListCAKeys(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			delete(createdGen, genKey{t, strconv.Itoa(k.Generation)})
			if sealed(store.CAKeyRowKey(t, k.Generation), fmt.Sprintf("%s CA generation %d (%s)", t, k.Generation, k.Fingerprint), &k) {
				continue
			}
			if !created[k.Fingerprint] {
				add("%s CA generation %d (%s) has no audit entry: a CA key added outside sshca would be trusted by every server", t, k.Generation, k.Fingerprint)
			}
		}
	}
	for g, e := range createdGen {
		gen, _ := strconv.Atoi(g.gen)
		add("%s CA generation %s (%s) was created (entry %d) but its row is missing", g.caType, g.gen, e.Details["fingerprint"], e.Seq)
		gone[store.CAKeyRowKey(g.caType, gen)] = true
	}

	// Tokens: each was created through sshca; revoked ones stay revoked.
	made, revoked := map[string]audit.Entry{}, map[string]bool{}
	for _, e := range entries {
		if e.Action != audit.ActionToken {
			continue
		}
		switch e.Reason {
		case "token created":
			made[e.Details["token"]] = e
		case "token revoked":
			revoked[e.Details["token"]] = true
		}
	}
	toks, err := st.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		_, ok := made[t.ID]
		delete(made, t.ID)
		if sealed(store.TokenRowKey(t.ID), fmt.Sprintf("token %s (%s)", t.Name, t.ID), &t) {
			continue
		}
		if !ok {
			add("token %s (%s) has no creation entry in the audit log (row added outside sshca?)", t.Name, t.ID)
		}
		if revoked[t.ID] && t.RevokedAt.IsZero() {
			add("token %s (%s) was revoked but its row says it is not", t.Name, t.ID)
		}
	}
	for id, e := range made {
		add("token %s (%s) was created (entry %d) but its row is missing", e.Details["name"], id, e.Seq)
		gone[store.TokenRowKey(id)] = true
	}

	// Local users and their keys: sealed since they exist, so a row without
	// a seal was added outside sshca (a key slipped in is a way in).
	users, err := st.ListLocalUsers(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		row := store.LocalUserRow(u)
		if !sealed(store.LocalUserRowKey(u.Name), "local user "+u.Name, &row) {
			add("local user %s has no audit entry (row added outside sshca?)", u.Name)
		}
		for _, k := range u.Keys {
			kr := store.LocalUserKeyRow{Fingerprint: k.Fingerprint, Name: u.Name, PublicKey: k.PublicKey, AddedAt: k.AddedAt}
			if !sealed(store.LocalUserKeyRowKey(k.Fingerprint), "key "+k.Fingerprint+" of local user "+u.Name, &kr) {
				add("key %s of local user %s has no audit entry (row added outside sshca?)", k.Fingerprint, u.Name)
			}
		}
	}

	// Any other sealed row that is gone.
	for key, s := range seals {
		if !gone[key] {
			add("%s was written by audit entry %d but its row is missing", store.DescribeRowKey(key), s.seq)
		}
	}
	slices.Sort(problems)
	return problems, nil
}
