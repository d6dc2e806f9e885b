package ca

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	AddRevocation(ctx context.Context, r store.Revocation, ev audit.Entry) (bool, error)
	AddRevocations(ctx context.Context, revs []store.Revocation, evs []audit.Entry) ([]bool, error)
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	PruneRevocations(ctx context.Context, caType string, before time.Time, ev audit.Entry) (int, error)
	KRLStore
}

// KRLStore is what BuildKRL reads.
type KRLStore interface {
	// EachRevocation streams caType's revocations in creation order.
	EachRevocation(ctx context.Context, caType string, fn func(store.Revocation) error) error
	KRLVersion(ctx context.Context, caType string) (uint64, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
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
	lk := &revokeLookups{st: st}
	recs, err := checkRevocation(ctx, lk, &r, now)
	if err != nil {
		return false, err
	}
	if len(recs) == 1 {
		return st.AddRevocation(ctx, recs[0], revocationEntry(lk, &r, &recs[0], now))
	}
	evs := make([]audit.Entry, len(recs))
	for i := range recs {
		evs[i] = revocationEntry(lk, &r, &recs[i], now)
	}
	added, err := st.AddRevocations(ctx, recs, evs)
	return slices.Contains(added, true), err
}

// RevokeChunk is how many revocations RevokeAll records per transaction:
// enough that importing 10^5 of them takes seconds, few enough that the
// service's writers never wait long for the store.
const RevokeChunk = 10_000

// RevokeAll records many revocations, as Revoke would one by one (every new
// one with its own audit entry, duplicates recorded and audited once), and
// returns how many were new. Every request is checked before anything is
// recorded, so that one bad request changes nothing; they are then
// recorded RevokeChunk at a time, each chunk in one transaction, in the
// order insertOrder chooses. A store error leaves the chunks before it
// recorded: running RevokeAll again completes the set.
func RevokeAll(ctx context.Context, st RevocationStore, rs []Revocation, now time.Time) (int, error) {
	lk := &revokeLookups{st: st}
	// One request may become several rows (a key ID issued by several CA
	// generations); src maps each row back to its request.
	recs := make([]store.Revocation, 0, len(rs))
	src := make([]int, 0, len(rs))
	for i := range rs {
		rows, err := checkRevocation(ctx, lk, &rs[i], now)
		if err != nil {
			return 0, err
		}
		for range rows {
			src = append(src, i)
		}
		recs = append(recs, rows...)
	}
	lk.expiries = nil
	order := insertOrder(recs)
	added := 0
	for len(order) > 0 {
		chunk := order[:min(RevokeChunk, len(order))]
		order = order[len(chunk):]
		// The audit entries, with their details, are made a chunk at a
		// time: for a large import they would outweigh the rows.
		crecs := make([]store.Revocation, len(chunk))
		evs := make([]audit.Entry, len(chunk))
		for j, i := range chunk {
			crecs[j], evs[j] = recs[i], revocationEntry(lk, &rs[src[i]], &recs[i], now)
		}
		ok, err := st.AddRevocations(ctx, crecs, evs)
		if err != nil {
			return added, err
		}
		for _, isNew := range ok {
			if isNew {
				added++
			}
		}
	}
	return added, nil
}

// insertOrder returns the indices of recs in the order to record them: that
// of the store's unique index on revocations (CA type, kind, serials, key
// ID, value), so that inserting touches few database pages and a large
// import is several times faster than in the caller's order. A set of
// revocations has no meaningful order but one: a KRL's certificate sections
// follow the order in which their CA first appears among the serial and
// key ID revocations, so those keep the order of first appearance of
// their scope (Value).
func insertOrder(recs []store.Revocation) []int {
	type scope struct{ caType, value string }
	rank := map[scope]int{}
	ranks := make([]int, len(recs))
	for i := range recs {
		r := &recs[i]
		if r.Kind != store.RevokeSerial && r.Kind != store.RevokeKeyID {
			continue
		}
		k := scope{r.CAType, r.Value}
		n, ok := rank[k]
		if !ok {
			n = len(rank)
			rank[k] = n
		}
		ranks[i] = n
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		x, y := &recs[a], &recs[b]
		return cmp.Or(cmp.Compare(x.CAType, y.CAType), cmp.Compare(ranks[a], ranks[b]), cmp.Compare(x.Kind, y.Kind),
			cmp.Compare(int64(x.Lo), int64(y.Lo)), cmp.Compare(int64(x.Hi), int64(y.Hi)), cmp.Compare(x.KeyID, y.KeyID),
			cmp.Compare(x.Value, y.Value))
	})
	return idx
}

// revokeLookups caches what checking revocation requests reads from the
// store, so that checking many of them does not read it once per request.
type revokeLookups struct {
	st        RevocationStore
	maxSerial uint64
	haveMax   bool
	expiries  map[string][]certExpiry // by CA type, in serial order
	// The CA key generations by CA type: authorized_keys line by
	// fingerprint, and the active generation's line.
	gens   map[string]map[string]string
	active map[string]string
	// The last scope key seen, with its line and fingerprint.
	scopeBlob          []byte
	scopeLine, scopeFP string
}

// certExpiry is the serial, end of validity and issuing CA key of one certificate.
type certExpiry struct {
	serial uint64
	until  time.Time
	caFP   string
}

// generations loads the CA key generations of caType once.
func (lk *revokeLookups) generations(ctx context.Context, caType string) (map[string]string, error) {
	if g, ok := lk.gens[caType]; ok {
		return g, nil
	}
	keys, err := lk.st.ListCAKeys(ctx, caType)
	if err != nil {
		return nil, err
	}
	g := map[string]string{}
	if lk.gens == nil {
		lk.gens, lk.active = map[string]map[string]string{}, map[string]string{}
	}
	for _, k := range keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("revoke: %s CA generation %d: bad public key in store: %w", caType, k.Generation, err)
		}
		g[k.Fingerprint] = authorizedLine(pub)
		if k.State == store.StateActive {
			lk.active[caType] = g[k.Fingerprint]
		}
	}
	lk.gens[caType] = g
	return g, nil
}

// scoped is a serial or key ID revocation's scope: the authorized_keys line
// of the CA generation it applies to ("": every generation), and when what
// it covers under that generation expires (zero: never prune).
type scoped struct {
	value   string
	expires time.Time
}

// generationScopes groups certificates by issuing generation, each with its
// latest expiry; neverIssued adds the active generation (never pruned), for
// values forced before any certificate carried them.
func (lk *revokeLookups) generationScopes(ctx context.Context, caType string, certs []certExpiry, neverIssued bool) ([]scoped, error) {
	gens, err := lk.generations(ctx, caType)
	if err != nil {
		return nil, err
	}
	var out []scoped
	at := map[string]int{}
	add := func(value string, until time.Time) {
		i, ok := at[value]
		if !ok {
			at[value] = len(out)
			out = append(out, scoped{value: value, expires: until})
			return
		}
		if out[i].expires.IsZero() || until.IsZero() {
			out[i].expires = time.Time{}
		} else if until.After(out[i].expires) {
			out[i].expires = until
		}
	}
	for _, c := range certs {
		// A certificate of a generation this home no longer knows (none
		// should exist): under every generation, as before scopes.
		add(gens[c.caFP], c.until)
	}
	if neverIssued {
		add(lk.active[caType], time.Time{})
	}
	return out, nil
}

func (lk *revokeLookups) highestSerial(ctx context.Context) (uint64, error) {
	if !lk.haveMax {
		m, err := lk.st.MaxSerial(ctx)
		if err != nil {
			return 0, err
		}
		lk.maxSerial, lk.haveMax = m, true
	}
	return lk.maxSerial, nil
}

// serialRange returns the certificates of caType with serials lo..hi.
func (lk *revokeLookups) serialRange(ctx context.Context, caType string, lo, hi uint64) ([]certExpiry, error) {
	all, ok := lk.expiries[caType]
	if !ok {
		certs, err := lk.st.ListCerts(ctx, store.CertFilter{CAType: caType})
		if err != nil {
			return nil, err
		}
		all = make([]certExpiry, len(certs))
		for i, c := range certs {
			all[i] = certExpiry{c.Serial, c.ValidBefore, c.CAFingerprint}
		}
		slices.SortFunc(all, func(a, b certExpiry) int { return cmp.Compare(a.serial, b.serial) })
		if lk.expiries == nil {
			lk.expiries = map[string][]certExpiry{}
		}
		lk.expiries[caType] = all
	}
	i, _ := slices.BinarySearchFunc(all, lo, func(c certExpiry, s uint64) int { return cmp.Compare(c.serial, s) })
	j := i
	for j < len(all) && all[j].serial <= hi {
		j++
	}
	return all[i:j], nil
}

// checkRevocation checks r and returns the rows that record it. A serial or
// key ID revocation of this home's CA (no Scope) belongs to the CA
// generations that issued what it revokes — one row each, its Value that
// generation's key — so that it never reaches a later generation's
// certificates that happen to share a key ID; a value forced before it was
// ever issued belongs to the active generation. Rows with an empty Value,
// from databases older than scopes, apply to every generation.
func checkRevocation(ctx context.Context, lk *revokeLookups, r *Revocation, now time.Time) ([]store.Revocation, error) {
	fail := func(err error) ([]store.Revocation, error) { return nil, err }
	if r.CAType != "user" && r.CAType != "host" {
		return fail(fmt.Errorf("revoke: CA type %q is not user or host", r.CAType))
	}
	rec := store.Revocation{CAType: r.CAType, Reason: r.Reason, Actor: r.Actor, CreatedAt: now}
	if r.Scope != nil {
		if _, isCert := r.Scope.(*ssh.Certificate); isCert {
			return fail(errors.New("revoke: a CA key must be a plain key, not a certificate"))
		}
		rec.Value, _ = lk.scope(r.Scope)
	}
	var scopes []scoped
	switch {
	case r.Lo != 0 || r.Hi != 0:
		if r.Lo == 0 || r.Hi < r.Lo {
			return fail(fmt.Errorf("revoke: serial range %d-%d is invalid (serials start at 1, low <= high)", r.Lo, r.Hi))
		}
		rec.Kind, rec.Lo, rec.Hi = store.RevokeSerial, r.Lo, r.Hi
		if r.Scope == nil {
			var err error
			if scopes, err = serialsScopes(ctx, lk, r.CAType, r.Lo, r.Hi, r.Force); err != nil {
				return fail(err)
			}
		}
	case r.KeyID != "":
		if strings.ContainsRune(r.KeyID, 0) {
			return fail(errors.New("revoke: key ID contains NUL"))
		}
		rec.Kind, rec.KeyID = store.RevokeKeyID, r.KeyID
		if r.Scope == nil {
			certs, err := lk.st.ListCerts(ctx, store.CertFilter{KeyID: r.KeyID, CAType: r.CAType})
			if err != nil {
				return fail(err)
			}
			if len(certs) == 0 && !r.Force {
				return fail(fmt.Errorf("revoke: key ID %q: %w (use --force to revoke it anyway)", r.KeyID, ErrNeverIssued))
			}
			ces := make([]certExpiry, len(certs))
			for i, c := range certs {
				// A key ID revocation is never pruned: the zero expiry.
				ces[i] = certExpiry{serial: c.Serial, caFP: c.CAFingerprint}
			}
			if scopes, err = lk.generationScopes(ctx, r.CAType, ces, len(certs) == 0); err != nil {
				return fail(err)
			}
		}
	case r.Key != nil:
		rec.Kind, rec.Value = store.RevokeKey, authorizedLine(plainKey(r.Key))
	case len(r.SHA256) > 0:
		if len(r.SHA256) != sha256.Size {
			return fail(fmt.Errorf("revoke: SHA256 fingerprint has %d bytes, want 32", len(r.SHA256)))
		}
		rec.Kind, rec.Value = store.RevokeSHA256, hex.EncodeToString(r.SHA256)
	case len(r.SHA1) > 0:
		if len(r.SHA1) != 20 {
			return fail(fmt.Errorf("revoke: SHA1 fingerprint has %d bytes, want 20", len(r.SHA1)))
		}
		rec.Kind, rec.Value = store.RevokeSHA1, hex.EncodeToString(r.SHA1)
	case r.CAKey != nil:
		rec.Kind, rec.Value = store.RevokeCAKey, authorizedLine(plainKey(r.CAKey))
	default:
		return fail(errors.New("revoke: nothing to revoke"))
	}
	if rec.Kind != store.RevokeSerial && rec.Kind != store.RevokeKeyID && r.Scope != nil {
		return fail(errors.New("revoke: a CA scope only applies to serials and key IDs"))
	}
	if scopes == nil {
		return []store.Revocation{rec}, nil
	}
	out := make([]store.Revocation, len(scopes))
	for i, sc := range scopes {
		out[i] = rec
		out[i].Value, out[i].Expires = sc.value, sc.expires
	}
	return out, nil
}

// revocationEntry returns the audit entry of the checked request r, recorded as rec.
func revocationEntry(lk *revokeLookups, r *Revocation, rec *store.Revocation, now time.Time) audit.Entry {
	details := map[string]string{"ca": r.CAType, "kind": rec.Kind}
	if r.Scope != nil {
		_, details["scope"] = lk.scope(r.Scope)
	} else if (rec.Kind == store.RevokeSerial || rec.Kind == store.RevokeKeyID) && rec.Value != "" {
		for fp, line := range lk.gens[r.CAType] {
			if line == rec.Value {
				details["scope"] = fp
			}
		}
	}
	ev := audit.Entry{Time: now, Actor: r.Actor, Action: audit.ActionRevoke, KeyID: r.KeyID, Outcome: "ok", Reason: r.Reason, Details: details}
	switch rec.Kind {
	case store.RevokeSerial:
		if rec.Lo == rec.Hi {
			details["serial"] = strconv.FormatUint(rec.Lo, 10)
			ev.Serial = rec.Lo
		} else {
			details["serials"] = strconv.FormatUint(rec.Lo, 10) + "-" + strconv.FormatUint(rec.Hi, 10)
		}
	case store.RevokeKey:
		details["key"] = ssh.FingerprintSHA256(plainKey(r.Key))
	case store.RevokeCAKey:
		details["ca_key"] = ssh.FingerprintSHA256(plainKey(r.CAKey))
	}
	return ev
}

// scope returns the authorized_keys line and fingerprint of a scope CA key,
// computed once for a run of requests with the same key.
func (lk *revokeLookups) scope(k ssh.PublicKey) (line, fp string) {
	if b := k.Marshal(); !bytes.Equal(b, lk.scopeBlob) {
		lk.scopeBlob, lk.scopeLine, lk.scopeFP = b, authorizedLine(k), ssh.FingerprintSHA256(k)
	}
	return lk.scopeLine, lk.scopeFP
}

// serialsScopes checks that lo..hi holds serials this CA issued and returns
// the generations that issued them, each with the latest expiry among its
// certificates. Serials never issued (with force) go under the active
// generation, never pruned; a range too large to look up goes under every
// generation, as before scopes.
func serialsScopes(ctx context.Context, lk *revokeLookups, caType string, lo, hi uint64, force bool) ([]scoped, error) {
	maxSerial, err := lk.highestSerial(ctx)
	if err != nil {
		return nil, err
	}
	beyond := hi > maxSerial
	if beyond && !force {
		if lo == hi {
			return nil, fmt.Errorf("revoke: serial %d: %w (the highest serial issued is %d; use --force to revoke it anyway)", lo, ErrNeverIssued, maxSerial)
		}
		return nil, fmt.Errorf("revoke: serials %d-%d: %w (the highest serial issued is %d; use --force to revoke them anyway)", lo, hi, ErrNeverIssued, maxSerial)
	}
	if lo == hi {
		if beyond {
			return lk.generationScopes(ctx, caType, nil, true)
		}
		c, err := lk.st.GetCert(ctx, lo)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.CAType != caType) {
			if force {
				return lk.generationScopes(ctx, caType, nil, true)
			}
			return nil, fmt.Errorf("revoke: serial %d: %w (use --force to revoke it anyway)", lo, ErrNeverIssued)
		}
		if err != nil {
			return nil, err
		}
		return lk.generationScopes(ctx, caType, []certExpiry{{c.Serial, c.ValidBefore, c.CAFingerprint}}, false)
	}
	// A range: it must contain at least one certificate of this CA.
	if hi-lo > 10_000_000 {
		return []scoped{{}}, nil
	}
	certs, err := lk.serialRange(ctx, caType, lo, min(hi, maxSerial))
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 && !force {
		return nil, fmt.Errorf("revoke: serials %d-%d: %w (use --force to revoke them anyway)", lo, hi, ErrNeverIssued)
	}
	return lk.generationScopes(ctx, caType, certs, beyond || len(certs) == 0)
}

// BuildKRL assembles the KRL of caType from the store. A serial or key ID
// revocation goes under the CA generation that issued what it revokes (its
// Value), so that a later generation's certificate sharing an old key ID is
// not refused; rows without a scope, from databases older than scopes, go
// under every key of this home's CA that servers may still trust (next,
// active, retiring). Rows scoped to a retired or revoked generation are
// left out: servers trust that key nowhere, or the KRL revokes it whole.
//
// The revocations are streamed from the store into the KRL, never held all
// at once: a KRL of millions of serials is built in little memory. The
// version is read first, so the KRL holds at least every revocation it
// counts.
func BuildKRL(ctx context.Context, st KRLStore, caType string, now time.Time) (*krl.KRL, error) {
	version, err := st.KRLVersion(ctx, caType)
	if err != nil {
		return nil, err
	}
	keys, err := st.ListCAKeys(ctx, caType)
	if err != nil {
		return nil, err
	}
	var ours []ssh.PublicKey
	gone := map[string]bool{} // lines of retired and revoked generations
	for _, k := range keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("krl: %s CA generation %d: bad public key in store: %w", caType, k.Generation, err)
		}
		if k.State == store.StateRetired || k.State == store.StateRevoked {
			// Retired keys are trusted nowhere; a revoked key is in the
			// KRL itself, which covers everything it signed.
			gone[authorizedLine(pub)] = true
			continue
		}
		ours = append(ours, pub)
	}
	k := &krl.KRL{Version: version, Comment: "sshca " + caType + " CA"}
	// The certificate sections a serial or key ID revocation goes into, by
	// its scope (the CA key line; "" for this home's CA). Sections are
	// created in the order their CA first appears, as revoking through
	// k.RevokeSerials row by row would, without re-encoding or re-parsing
	// a CA key per row.
	sections := map[string][]*krl.CertSection{}
	sectionsOf := func(r store.Revocation) ([]*krl.CertSection, error) {
		if ss, ok := sections[r.Value]; ok {
			return ss, nil
		}
		cas := ours
		if gone[r.Value] {
			cas = nil
		} else if r.Value != "" {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
			if err != nil {
				return nil, fmt.Errorf("krl: revocation %d: bad CA key: %w", r.ID, err)
			}
			cas = []ssh.PublicKey{pub}
		}
		ss := make([]*krl.CertSection, 0, len(cas))
		for _, ca := range cas {
			sec, err := k.Section(ca)
			if err != nil {
				return nil, fmt.Errorf("krl: revocation %d: %w", r.ID, err)
			}
			ss = append(ss, sec)
		}
		sections[r.Value] = ss
		return ss, nil
	}
	// generated_date: the time of the latest change, so every replica builds
	// the same bytes for the same version.
	var latest time.Time
	err = st.EachRevocation(ctx, caType, func(r store.Revocation) error {
		if r.CreatedAt.After(latest) {
			latest = r.CreatedAt
		}
		switch r.Kind {
		case store.RevokeSerial, store.RevokeKeyID:
			ss, err := sectionsOf(r)
			if err != nil {
				return err
			}
			for _, sec := range ss {
				if r.Kind == store.RevokeSerial {
					err = sec.RevokeSerials(r.Lo, r.Hi)
				} else {
					err = sec.RevokeKeyID(r.KeyID)
				}
				if err != nil {
					return fmt.Errorf("krl: revocation %d: %w", r.ID, err)
				}
			}
		case store.RevokeKey, store.RevokeCAKey:
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
			if err != nil {
				return fmt.Errorf("krl: revocation %d: bad key: %w", r.ID, err)
			}
			if err := k.RevokeKey(pub); err != nil {
				return fmt.Errorf("krl: revocation %d: %w", r.ID, err)
			}
		case store.RevokeSHA256:
			var sum [32]byte
			if len(r.Value) != 2*len(sum) || !decodeHex(sum[:], r.Value) {
				return fmt.Errorf("krl: revocation %d: bad SHA256 value", r.ID)
			}
			k.RevokeSHA256(sum)
		case store.RevokeSHA1:
			var sum [20]byte
			if len(r.Value) != 2*len(sum) || !decodeHex(sum[:], r.Value) {
				return fmt.Errorf("krl: revocation %d: bad SHA1 value", r.ID)
			}
			k.RevokeSHA1(sum)
		default:
			return fmt.Errorf("krl: revocation %d: unknown kind %q", r.ID, r.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
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
	return k, nil
}

// decodeHex decodes s, of exactly twice dst's length, into dst.
func decodeHex(dst []byte, s string) bool {
	n, err := hex.Decode(dst, []byte(s))
	return err == nil && n == len(dst)
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

// RevokeIdentity revokes, by serial, every still-valid certificate issued
// to identity — a person's user name or a token's name, or "kind:name" as
// the audit log writes callers ("oidc:alice", "token:ci") — renewals
// included, since they carry their lineage's identity. A renewal needs a
// valid, unrevoked certificate, so the lineages end there. It returns the
// serials revoked (already revoked ones included).
func RevokeIdentity(ctx context.Context, st RevocationStore, identity, reason, actor string, now time.Time) ([]uint64, error) {
	if identity == "" {
		return nil, errors.New("ca: revoke identity: no identity given")
	}
	certs, err := st.ListCerts(ctx, store.CertFilter{Identity: identity, ActiveAt: now})
	if err != nil {
		return nil, err
	}
	var rs []Revocation
	var serials []uint64
	for _, c := range certs {
		rs = append(rs, Revocation{CAType: c.CAType, Lo: c.Serial, Hi: c.Serial, Reason: reason, Actor: actor})
		serials = append(serials, c.Serial)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	if _, err := RevokeAll(ctx, st, rs, now); err != nil {
		return nil, err
	}
	return serials, nil
}
