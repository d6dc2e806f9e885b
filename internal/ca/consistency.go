package ca

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// ConsistencyStore is what CheckConsistency reads.
type ConsistencyStore interface {
	EachCert(ctx context.Context, f store.CertFilter, fn func(store.CertRecord) error) error
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	ListLocalUsers(ctx context.Context) ([]store.LocalUser, error)
}

// maxProblems bounds the report of CheckConsistency.
const maxProblems = 20

// EntryFunc returns entry seq of the log a ConsistencyLog was fed. Check
// calls it for the few entries whose whole text it needs again: the seal
// of a row that does not match (to name the columns that differ) and an
// issuance entry it kept only the sequence number of.
type EntryFunc func(ctx context.Context, seq uint64) (audit.Entry, error)

// CheckConsistency compares the state tables with a verified audit log:
// every certificate, revocation, CA key and token row must be backed by
// the entry that created it, and every such entry by its row (revocations
// pruned through sshca excepted). It finds rows that someone with database
// access inserted, deleted or changed without going through sshca — a
// revocation deleted to un-revoke a certificate, a CA key or token slipped
// in, a token's hash or roles replaced — which the hash chain alone cannot
// see. It returns the problems found, at most maxProblems of them.
//
// Rows written since row seals exist (see store.SealRow) are compared in
// every column with the seal in the last entry that wrote them, and the
// columns that differ are named. Rows last written before that are checked
// as before: that an entry created them, and the few facts the entry holds.
//
// CheckConsistency is a ConsistencyLog fed entries (the verified log, in
// order) for a caller that holds them anyway; a long log is better fed to a
// ConsistencyLog a page at a time.
func CheckConsistency(ctx context.Context, st ConsistencyStore, entries []audit.Entry) ([]string, error) {
	var l ConsistencyLog
	for _, e := range entries {
		l.Add(e)
	}
	return l.Check(ctx, st, EntriesAt(entries))
}

// EntriesAt is the EntryFunc of a log held whole (entries, in order).
func EntriesAt(entries []audit.Entry) EntryFunc {
	return func(_ context.Context, seq uint64) (audit.Entry, error) {
		i, ok := slices.BinarySearchFunc(entries, seq, func(e audit.Entry, seq uint64) int {
			switch {
			case e.Seq < seq:
				return -1
			case e.Seq > seq:
				return 1
			}
			return 0
		})
		if !ok {
			// Not in order: look through them all.
			i = slices.IndexFunc(entries, func(e audit.Entry) bool { return e.Seq == seq })
		}
		if i < 0 {
			return audit.Entry{}, fmt.Errorf("audit: entry %d is not in the log", seq)
		}
		return entries[i], nil
	}
}

// A ConsistencyLog is CheckConsistency's view of the audit log, fed one
// verified entry at a time (Add) and then compared with the state tables
// (Check). It keeps what the comparison needs, not the entries: for a
// certificate or a revocation (of which there may be millions) the number
// of the entry that made it and the number and row digest of its last
// seal, 40 bytes (rowTable); the details of such an entry only when it did
// not seal the row it made (a log written before row seals); for CA keys,
// tokens and local users (few) the same by row key, and what
// CheckConsistency always kept. The zero value is an empty log.
type ConsistencyLog struct {
	certs    rowTable
	legacy   map[uint64]issueFacts // serial -> facts of its last issuance, when that entry did not seal the row
	seals    map[string]rowSeal    // row key -> last seal, for rows other than certificates and revocations
	problems []string              // found while adding (serials issued twice)

	revs       rowTable         // revocations, by ID: the entry that recorded each (not pruned since) and its seal
	revDigest  map[int64]string // ID -> the "revocation" detail of the entry that recorded it, when that entry did not seal the row
	created    map[string]bool  // CA key fingerprints created by init or rotate
	createdGen map[genKey]genEntry
	made       map[string]tokenEntry // token ID -> its creation entry
	revoked    map[string]bool       // token IDs revoked
	checked    bool
}

// rowSeal is what a ConsistencyLog keeps of the last seal of a row: the
// entry that wrote it and the row digest in it.
type rowSeal struct {
	seq    uint64   // the last entry that sealed the row
	digest [16]byte // that seal's row digest (sealDigestKept)
	flags  uint8
}

const (
	sealDigestKept uint8 = 1 << iota // digest holds the seal's digest (else only its entry has it)
	sealGone                         // Check reported the row missing
	rowMade                          // (rowEntry) an issuance entry names the serial
	rowSealed                        // (rowEntry) the row has a seal in force
	rowSeen                          // (rowEntry) Check read the row
	rowSplit                         // (rowEntry) its last issuance is not the entry of its seal
)

// keptSeal returns what a ConsistencyLog keeps of seal, written by entry
// seq.
func keptSeal(seq uint64, seal string) rowSeal {
	s := rowSeal{seq: seq}
	if d, ok := sealDigest(seal); ok {
		s.digest, s.flags = d, sealDigestKept
	}
	return s
}

// issueFacts are what CheckConsistency compares with a certificate row
// that has no seal: its issuance entry's key ID, role and principals.
type issueFacts struct {
	keyID, role, principals string
}

type genKey struct {
	caType string
	gen    string
}

type genEntry struct {
	seq         uint64
	fingerprint string
}

type tokenEntry struct {
	seq  uint64
	name string
}

// certKeyPrefix starts the row key of every certificate's seal.
var certKeyPrefix = strings.TrimSuffix(store.CertRowKey(0), "0")

// certKeySerial returns the serial of a certificate row key as
// store.CertRowKey writes it (so that CertRowKey(serial) == k).
func certKeySerial(k string) (uint64, bool) {
	rest, ok := strings.CutPrefix(k, certKeyPrefix)
	if !ok || rest == "" || (rest[0] == '0' && rest != "0") {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

// revocationKeyPrefix starts the row key of every revocation's seal.
var revocationKeyPrefix = strings.TrimSuffix(store.RevocationRowKey(0), "0")

// revocationKeyID returns the ID of a revocation row key as
// store.RevocationRowKey writes it.
func revocationKeyID(k string) (int64, bool) {
	rest, ok := strings.CutPrefix(k, revocationKeyPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == rest
}

// revocationStreamer is a store that reads revocations as it goes.
type revocationStreamer interface {
	EachRevocationRow(ctx context.Context, caType string, fn func(store.Revocation) error) error
}

// eachRevocation calls fn for each of caType's revocations, in ID order:
// streamed where the store can, listed where it cannot.
func eachRevocation(ctx context.Context, st ConsistencyStore, caType string, fn func(store.Revocation) error) error {
	if s, ok := st.(revocationStreamer); ok {
		return s.EachRevocationRow(ctx, caType, fn)
	}
	revs, err := st.ListRevocations(ctx, caType)
	if err != nil {
		return err
	}
	for _, r := range revs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// sealDigest returns the row digest of seal when seal has the form
// "v1 <32 lower-case hex digits>[ ...]": then store.CheckRowSeal(row, seal)
// matches exactly when it matches "v1 " + hex(digest), whatever follows
// the digest (TestSealDigest). For any other form ok is false, and Check
// asks the entry for the seal again and leaves the decision to
// store.CheckRowSeal.
func sealDigest(seal string) (d [16]byte, ok bool) {
	ver, rest, found := strings.Cut(seal, " ")
	if !found || ver != "v1" {
		return d, false
	}
	dig, _, _ := strings.Cut(rest, " ")
	if len(dig) != 2*len(d) {
		return d, false
	}
	for i := range len(dig) {
		if c := dig[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return d, false
		}
	}
	if _, err := hex.Decode(d[:], []byte(dig)); err != nil {
		return d, false
	}
	return d, true
}

func (l *ConsistencyLog) init() {
	if l.seals != nil {
		return
	}
	l.legacy = map[uint64]issueFacts{}
	l.seals = map[string]rowSeal{}
	l.revDigest = map[int64]string{}
	l.created = map[string]bool{}
	l.createdGen = map[genKey]genEntry{}
	l.made = map[string]tokenEntry{}
	l.revoked = map[string]bool{}
}

func (l *ConsistencyLog) add(format string, a ...any) {
	if len(l.problems) < maxProblems {
		l.problems = append(l.problems, fmt.Sprintf(format, a...))
	}
}

// prunedIDs returns the revocation IDs of a revoke entry's pruned_ids.
func prunedIDs(s string) []int64 {
	var ids []int64
	for p := range strings.SplitSeq(s, ",") {
		if id, err := strconv.ParseInt(p, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// Add folds the next entry of the verified log (in order) into l. It keeps
// no reference to e's details map.
func (l *ConsistencyLog) Add(e audit.Entry) {
	l.init()
	// The last seal of every row, by row key.
	for k, v := range e.Details {
		if !store.IsRowKey(k) {
			continue
		}
		serial, isCert := certKeySerial(k)
		id, isRev := revocationKeyID(k)
		switch {
		case isCert && v == store.RowDeleted: // deleted through sshca
			l.certs.unseal(serial)
		case isCert:
			l.certs.seal(serial, keptSeal(e.Seq, v))
		case isRev && v == store.RowDeleted:
			l.revs.unseal(uint64(id))
		case isRev:
			l.revs.seal(uint64(id), keptSeal(e.Seq, v))
		case v == store.RowDeleted:
			delete(l.seals, k)
		default:
			l.seals[k] = keptSeal(e.Seq, v)
		}
	}

	switch e.Action {
	case audit.ActionIssue:
		// Certificates: one issuance entry per row.
		if e.Serial == 0 {
			break
		}
		if prev, twice := l.certs.made(e.Serial, e.Seq); twice {
			l.add("serial %d was issued twice (entries %d and %d)", e.Serial, prev, e.Seq)
		}
		if v, ok := e.Details[store.CertRowKey(e.Serial)]; ok && v != store.RowDeleted {
			// The row is compared with its seal; should the seal be
			// deleted later, Check reads this entry again.
			delete(l.legacy, e.Serial)
		} else {
			l.legacy[e.Serial] = issueFacts{keyID: e.KeyID, role: e.Role, principals: e.Details["principals"]}
		}
	case audit.ActionRevoke:
		pruned := prunedIDs(e.Details["pruned_ids"])
		for _, id := range pruned {
			l.revs.unseal(uint64(id))
		}
		// Revocations: the rows are exactly those recorded and not pruned.
		if id, err := strconv.ParseInt(e.Details["revocation_id"], 10, 64); err == nil {
			l.revs.made(uint64(id), e.Seq)
			if v, ok := e.Details[store.RevocationRowKey(id)]; ok && v != store.RowDeleted {
				// The row is compared with its seal; should the seal be
				// deleted later, Check reads this entry again.
				delete(l.revDigest, id)
			} else {
				l.revDigest[id] = e.Details["revocation"]
			}
		}
		for _, id := range pruned {
			l.revs.unmake(uint64(id))
			delete(l.revDigest, id)
		}
	case audit.ActionInit, audit.ActionCARotate:
		// CA keys: each was created by init or rotate.
		fp := e.Details["fingerprint"]
		l.created[fp] = true
		if e.Details["ca"] != "" && e.Details["generation"] != "" {
			l.createdGen[genKey{e.Details["ca"], e.Details["generation"]}] = genEntry{e.Seq, fp}
		}
	case audit.ActionToken:
		// Tokens: each was created through sshca; revoked ones stay revoked.
		switch e.Reason {
		case "token created":
			l.made[e.Details["token"]] = tokenEntry{e.Seq, e.Details["name"]}
		case "token revoked":
			l.revoked[e.Details["token"]] = true
		}
	}
}

// Grow makes room for n more certificates (a hint: how many entries the
// log has), so that the table of them is not copied as it grows.
func (l *ConsistencyLog) Grow(n int) { l.certs.grow(n) }

// Check compares the state tables of st with the log added so far, as
// CheckConsistency does, and returns the problems found. entry reads an
// entry of that log again (see EntryFunc). Check may be called once.
func (l *ConsistencyLog) Check(ctx context.Context, st ConsistencyStore, entry EntryFunc) ([]string, error) {
	if l.checked {
		return nil, errors.New("ca: a consistency log is checked once")
	}
	l.checked = true
	l.init()
	l.certs.merge() // every row in the sorted slices, for lookups
	l.revs.merge()
	// l.add from here on: the problems found while adding come first, as
	// they always have.
	// sealed compares row with its last seal, if it has one, reporting the
	// columns that differ; it reports whether there was a seal. For rows
	// other than certificates.
	sealed := func(key, what string, row any) (bool, error) {
		s, ok := l.seals[key]
		if !ok {
			return false, nil
		}
		delete(l.seals, key)
		return true, l.checkSeal(ctx, entry, key, what, row, s)
	}

	// Certificates. The rows are streamed, not held: a store of millions
	// is read once.
	err := st.EachCert(ctx, store.CertFilter{}, func(c store.CertRecord) error {
		s := l.certs.find(c.Serial)
		known := s != nil && s.flags != 0
		if known {
			s.flags |= rowSeen
		}
		if known && s.flags&rowSealed != 0 {
			s.flags &^= rowSealed
			return l.checkSeal(ctx, entry, store.CertRowKey(c.Serial), fmt.Sprintf("certificate %d", c.Serial), &c, s.rowSeal())
		}
		switch {
		case !known || s.flags&rowMade == 0:
			l.add("certificate %d has no issuance entry in the audit log (row added outside sshca?)", c.Serial)
		case l.full():
		default:
			f, ok := l.legacy[c.Serial]
			if !ok {
				e, err := entry(ctx, l.certs.madeSeq(s))
				if err != nil {
					return err
				}
				f = issueFacts{keyID: e.KeyID, role: e.Role, principals: e.Details["principals"]}
			}
			switch {
			case f.keyID != c.KeyID || f.role != c.Role:
				l.add("certificate %d differs from its issuance entry %d (key ID or role changed)", c.Serial, l.certs.madeSeq(s))
			case f.principals != "" && f.principals != strings.Join(c.Principals, ","):
				l.add("certificate %d differs from its issuance entry %d (principals changed)", c.Serial, l.certs.madeSeq(s))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range l.certs.sorted {
		if s := &l.certs.sorted[i]; s.flags&rowMade != 0 && s.flags&rowSeen == 0 {
			l.add("certificate %d was issued (entry %d) but its row is missing", s.serial, l.certs.madeSeq(s))
			s.flags |= sealGone
		}
	}

	// gone holds the keys of sealed rows (other than certificates) already
	// reported missing.
	gone := map[string]bool{}
	for _, t := range []string{"user", "host"} {
		err := eachRevocation(ctx, st, t, func(r store.Revocation) error {
			c := l.revs.find(uint64(r.ID))
			ok := c != nil && c.flags&rowMade != 0
			var seq uint64 // of the entry that recorded it
			if ok {
				seq = l.revs.madeSeq(c)
				l.revs.clearSplit(c)
				c.flags &^= rowMade
			}
			if c != nil && c.flags&rowSealed != 0 {
				c.flags &^= rowSealed
				return l.checkSeal(ctx, entry, store.RevocationRowKey(r.ID), fmt.Sprintf("revocation %d (%s)", r.ID, r.Kind), &r, c.rowSeal())
			}
			digest, kept := l.revDigest[r.ID]
			if ok && !kept && !l.full() {
				e, err := entry(ctx, seq)
				if err != nil {
					return err
				}
				digest = e.Details["revocation"]
			}
			switch {
			case !ok:
				l.add("revocation %d (%s) has no audit entry (row added outside sshca?)", r.ID, r.Kind)
			case digest != "" && digest != r.Digest():
				l.add("revocation %d differs from its audit entry %d (changed outside sshca)", r.ID, seq)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range l.revs.sorted {
		if c := &l.revs.sorted[i]; c.flags&rowMade != 0 {
			l.add("revocation %d is in the audit log (entry %d) but its row is missing: what it revoked is no longer in the KRL", int64(c.serial), l.revs.madeSeq(c))
			c.flags |= sealGone
		}
	}

	for _, t := range []string{"user", "host"} {
		keys, err := st.ListCAKeys(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			delete(l.createdGen, genKey{t, strconv.Itoa(k.Generation)})
			if ok, err := sealed(store.CAKeyRowKey(t, k.Generation), fmt.Sprintf("%s CA generation %d (%s)", t, k.Generation, k.Fingerprint), &k); err != nil {
				return nil, err
			} else if ok {
				continue
			}
			if !l.created[k.Fingerprint] {
				l.add("%s CA generation %d (%s) has no audit entry: a CA key added outside sshca would be trusted by every server", t, k.Generation, k.Fingerprint)
			}
		}
	}
	for g, e := range l.createdGen {
		gen, _ := strconv.Atoi(g.gen)
		l.add("%s CA generation %s (%s) was created (entry %d) but its row is missing", g.caType, g.gen, e.fingerprint, e.seq)
		gone[store.CAKeyRowKey(g.caType, gen)] = true
	}

	toks, err := st.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		_, ok := l.made[t.ID]
		delete(l.made, t.ID)
		if ok, err := sealed(store.TokenRowKey(t.ID), fmt.Sprintf("token %s (%s)", t.Name, t.ID), &t); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		if !ok {
			l.add("token %s (%s) has no creation entry in the audit log (row added outside sshca?)", t.Name, t.ID)
		}
		if l.revoked[t.ID] && t.RevokedAt.IsZero() {
			l.add("token %s (%s) was revoked but its row says it is not", t.Name, t.ID)
		}
	}
	for id, e := range l.made {
		l.add("token %s (%s) was created (entry %d) but its row is missing", e.name, id, e.seq)
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
		if ok, err := sealed(store.LocalUserRowKey(u.Name), "local user "+u.Name, &row); err != nil {
			return nil, err
		} else if !ok {
			l.add("local user %s has no audit entry (row added outside sshca?)", u.Name)
		}
		for _, k := range u.Keys {
			kr := store.LocalUserKeyRow{Fingerprint: k.Fingerprint, Name: u.Name, PublicKey: k.PublicKey, AddedAt: k.AddedAt}
			if ok, err := sealed(store.LocalUserKeyRowKey(k.Fingerprint), "key "+k.Fingerprint+" of local user "+u.Name, &kr); err != nil {
				return nil, err
			} else if !ok {
				l.add("key %s of local user %s has no audit entry (row added outside sshca?)", k.Fingerprint, u.Name)
			}
		}
	}

	// Any other sealed row that is gone.
	for key, s := range l.seals {
		if !gone[key] {
			l.add("%s was written by audit entry %d but its row is missing", store.DescribeRowKey(key), s.seq)
		}
	}
	for i := range l.certs.sorted {
		if s := &l.certs.sorted[i]; s.flags&rowSealed != 0 && s.flags&sealGone == 0 {
			l.add("%s was written by audit entry %d but its row is missing", store.DescribeRowKey(store.CertRowKey(s.serial)), s.seq)
		}
	}
	for i := range l.revs.sorted {
		if c := &l.revs.sorted[i]; c.flags&rowSealed != 0 && c.flags&sealGone == 0 {
			l.add("%s was written by audit entry %d but its row is missing", store.DescribeRowKey(store.RevocationRowKey(int64(c.serial))), c.seq)
		}
	}
	problems := l.problems
	slices.Sort(problems)
	return problems, nil
}

func (l *ConsistencyLog) full() bool { return len(l.problems) >= maxProblems }

// checkSeal compares row, whose seal is under key, with its last seal, kept
// in s, and reports the columns that differ; what names the row. When the
// row matches the digest kept it is done; otherwise (unless the report is
// full already) it reads the seal again from its entry and leaves the
// verdict and the columns to store.CheckRowSeal, as the check always did.
func (l *ConsistencyLog) checkSeal(ctx context.Context, entry EntryFunc, key, what string, row any, s rowSeal) error {
	if s.flags&sealDigestKept != 0 {
		if match, _ := store.CheckRowSeal(row, "v1 "+hex.EncodeToString(s.digest[:])); match {
			return nil
		}
	}
	if l.full() {
		return nil // nothing more is reported
	}
	e, err := entry(ctx, s.seq)
	if err != nil {
		return err
	}
	value, ok := e.Details[key]
	if again := keptSeal(s.seq, value); !ok || e.Seq != s.seq || again.digest != s.digest || again.flags != s.flags&sealDigestKept {
		return fmt.Errorf("audit: entry %d changed while it was being verified (the seal of %s)", s.seq, store.DescribeRowKey(key))
	}
	if match, cols := store.CheckRowSeal(row, value); !match {
		changed := "a column"
		if len(cols) > 0 {
			slices.Sort(cols)
			changed = strings.Join(cols, ", ")
		}
		l.add("%s: %s changed outside sshca (the row differs from audit entry %d)", what, changed, s.seq)
	}
	return nil
}
