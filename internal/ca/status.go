package ca

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/store"
)

// StatusStore is what RevokedCerts reads.
type StatusStore interface {
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
}

// RevokedCerts tells which of certs a recorded revocation covers — by
// serial or key ID under the generation that issued it (or every
// generation, for rows from before scopes), by key, key fingerprint or CA
// key — and returns, by serial, the earliest such revocation, with its
// reason, actor and time. It agrees with the KRL that BuildKRL builds from
// the same rows, except that it still names revocations under retired
// generations.
func RevokedCerts(ctx context.Context, st StatusStore, certs []store.CertRecord) (map[uint64]store.Revocation, error) {
	types := map[string]bool{}
	for _, c := range certs {
		types[c.CAType] = true
	}
	var list []string
	for t := range types {
		list = append(list, t)
	}
	x, err := LoadRevocations(ctx, st, list...)
	if err != nil {
		return nil, err
	}
	out := map[uint64]store.Revocation{}
	for i := range certs {
		if r, ok := x.Revoked(&certs[i]); ok {
			out[certs[i].Serial] = r
		}
	}
	return out, nil
}

// RevocationIndex answers for one certificate at a time what RevokedCerts
// answers for many, so that a scan over millions of certificates holds the
// revocations, not the certificates.
type RevocationIndex struct {
	m map[string]*statusMatcher // by CA type; nil: nothing revoked
}

// LoadRevocations indexes the revocations of caTypes.
func LoadRevocations(ctx context.Context, st StatusStore, caTypes ...string) (*RevocationIndex, error) {
	x := &RevocationIndex{m: map[string]*statusMatcher{}}
	for _, caType := range caTypes {
		if _, done := x.m[caType]; done {
			continue
		}
		revs, err := st.ListRevocations(ctx, caType)
		if err != nil {
			return nil, err
		}
		x.m[caType] = nil
		if len(revs) > 0 {
			x.m[caType] = newStatusMatcher(revs)
		}
	}
	return x, nil
}

// Revoked returns the earliest revocation that covers c, if any (see
// RevokedCerts); c's CA type must be one the index was loaded with.
func (x *RevocationIndex) Revoked(c *store.CertRecord) (store.Revocation, bool) {
	if m := x.m[c.CAType]; m != nil {
		return m.match(c)
	}
	return store.Revocation{}, false
}

// statusMatcher indexes one CA type's revocations for RevokedCerts.
type statusMatcher struct {
	revs    []store.Revocation // in ID order
	serials map[uint64][]int   // single serials
	ranges  []int              // serial ranges, by Lo
	rangeHi []uint64           // rangeHi[k]: the highest Hi of ranges[0..k]
	keyIDs  map[string][]int
	keys    map[string][]int // subject or CA fingerprint (SHA256:...) of key, sha256 and ca-key rows
	sha1    []int
	scopeFP []string // per row: fingerprint of its scope ("" for every generation)
}

func newStatusMatcher(revs []store.Revocation) *statusMatcher {
	revs = slices.Clone(revs)
	slices.SortFunc(revs, func(a, b store.Revocation) int { return cmp.Compare(a.ID, b.ID) })
	m := &statusMatcher{revs: revs, serials: map[uint64][]int{}, keyIDs: map[string][]int{}, keys: map[string][]int{}, scopeFP: make([]string, len(revs))}
	fps := map[string]string{}
	lineFP := func(line string) string {
		if fp, ok := fps[line]; ok {
			return fp
		}
		fp := "invalid"
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			fp = ssh.FingerprintSHA256(pub)
		}
		fps[line] = fp
		return fp
	}
	for i, r := range revs {
		switch r.Kind {
		case store.RevokeSerial, store.RevokeKeyID:
			if r.Value != "" {
				m.scopeFP[i] = lineFP(r.Value)
			}
			switch {
			case r.Kind == store.RevokeKeyID:
				m.keyIDs[r.KeyID] = append(m.keyIDs[r.KeyID], i)
			case r.Lo == r.Hi:
				m.serials[r.Lo] = append(m.serials[r.Lo], i)
			default:
				m.ranges = append(m.ranges, i)
			}
		case store.RevokeKey, store.RevokeCAKey:
			fp := lineFP(r.Value)
			m.keys[fp] = append(m.keys[fp], i)
		case store.RevokeSHA256:
			if b, err := hex.DecodeString(r.Value); err == nil {
				fp := "SHA256:" + base64.RawStdEncoding.EncodeToString(b)
				m.keys[fp] = append(m.keys[fp], i)
			}
		case store.RevokeSHA1:
			m.sha1 = append(m.sha1, i)
		}
	}
	slices.SortFunc(m.ranges, func(a, b int) int { return cmp.Compare(m.revs[a].Lo, m.revs[b].Lo) })
	m.rangeHi = make([]uint64, len(m.ranges))
	for k, i := range m.ranges {
		m.rangeHi[k] = m.revs[i].Hi
		if k > 0 {
			m.rangeHi[k] = max(m.rangeHi[k], m.rangeHi[k-1])
		}
	}
	return m
}

// match returns the earliest revocation covering c.
func (m *statusMatcher) match(c *store.CertRecord) (store.Revocation, bool) {
	best := -1
	consider := func(i int) {
		if best < 0 || i < best {
			best = i
		}
	}
	inScope := func(i int) bool { return m.scopeFP[i] == "" || m.scopeFP[i] == c.CAFingerprint }
	for _, i := range m.serials[c.Serial] {
		if inScope(i) {
			consider(i)
		}
	}
	// The ranges that start at or below the serial, walked down from the
	// last until none of those left reaches it: a few steps unless ranges
	// overlap a lot, rather than every range for every certificate.
	k, _ := slices.BinarySearchFunc(m.ranges, c.Serial, func(i int, s uint64) int {
		if m.revs[i].Lo <= s {
			return -1
		}
		return 1
	})
	for k--; k >= 0 && m.rangeHi[k] >= c.Serial; k-- {
		if i := m.ranges[k]; m.revs[i].Hi >= c.Serial && inScope(i) {
			consider(i)
		}
	}
	for _, i := range m.keyIDs[c.KeyID] {
		if inScope(i) {
			consider(i)
		}
	}
	for _, i := range m.keys[c.SubjectFingerprint] {
		if m.revs[i].Kind != store.RevokeCAKey {
			consider(i)
		}
	}
	for _, i := range m.keys[c.CAFingerprint] {
		if m.revs[i].Kind == store.RevokeCAKey {
			consider(i)
		}
	}
	if len(m.sha1) > 0 && c.Cert != "" {
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.Cert)); err == nil {
			sum := sha1Hex(plainKey(pub))
			for _, i := range m.sha1 {
				if strings.EqualFold(m.revs[i].Value, sum) {
					consider(i)
				}
			}
		}
	}
	if best < 0 {
		return store.Revocation{}, false
	}
	return m.revs[best], true
}
