package console

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/store"
)

// PageSize is how many rows a page shows.
const PageSize = 50

// maxFilterLen bounds a filter field.
const maxFilterLen = 256

// certFilter is the inventory's query string.
type certFilter struct {
	Identity, Role, Principal, KeyID, Serial, Status, Within, Sort, Dir, Type string
	Page                                                                      int
}

func (f certFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"identity": f.Identity, "role": f.Role, "principal": f.Principal, "key_id": f.KeyID,
		"serial": f.Serial, "status": f.Status, "within": f.Within, "sort": f.Sort, "dir": f.Dir, "type": f.Type} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// URL is the inventory with f's filters and the given sort and page.
func (f certFilter) URL(sortBy, dir string, page int) string {
	v := f.values()
	v.Del("sort")
	v.Del("dir")
	if sortBy != "" {
		v.Set("sort", sortBy)
	}
	if dir != "" {
		v.Set("dir", dir)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/ui/certs"
	}
	return "/ui/certs?" + v.Encode()
}

// SortURL is the link of a column header: by that column, ascending, or
// descending when already sorted ascending by it.
func (f certFilter) SortURL(col string) string {
	dir := "asc"
	if f.Sort == col && f.Dir != "desc" {
		dir = "desc"
	}
	return f.URL(col, dir, 0)
}

// SortMark is the arrow of the column sorted by.
func (f certFilter) SortMark(col string) string {
	if f.Sort != col && !(col == "serial" && f.Sort == "") {
		return ""
	}
	if f.Dir == "asc" {
		return "▲"
	}
	return "▼"
}

// AriaSort is the aria-sort value of a column header.
func (f certFilter) AriaSort(col string) string {
	if f.SortMark(col) == "" {
		return "none"
	}
	if f.Dir == "asc" {
		return "ascending"
	}
	return "descending"
}

func parseCertFilter(q url.Values) (certFilter, error) {
	f := certFilter{Identity: q.Get("identity"), Role: q.Get("role"), Principal: q.Get("principal"), KeyID: q.Get("key_id"),
		Serial: q.Get("serial"), Status: q.Get("status"), Within: q.Get("within"), Sort: q.Get("sort"), Dir: q.Get("dir"), Type: q.Get("type"), Page: 1}
	for _, s := range []string{f.Identity, f.Role, f.Principal, f.KeyID, f.Serial, f.Within} {
		if len(s) > maxFilterLen || !utf8.ValidString(s) {
			return f, badInput("A filter is longer than %d bytes or not UTF-8.", maxFilterLen)
		}
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100_000 {
			return f, badInput("page must be a number from 1.")
		}
		f.Page = n
	}
	return f, nil
}

// certRow is one certificate as the pages show it.
type certRow struct {
	store.CertRecord
	Identity string
	Status   string // valid, expiring, not-yet-valid, expired, revoked
	Revoked  *store.Revocation
}

func identityOf(r *store.CertRecord) string {
	if r.Lineage.Identity != "" {
		return r.Lineage.Identity
	}
	return r.Requester
}

func statusOf(r *store.CertRecord, rev *store.Revocation, now time.Time, within time.Duration) string {
	switch {
	case rev != nil:
		return store.CertRevoked
	case !now.Before(r.ValidBefore):
		return store.CertExpired
	case now.Before(r.ValidAfter):
		return "not-yet-valid"
	case within > 0 && r.ValidBefore.Sub(now) <= within:
		return store.CertExpiring
	}
	return store.CertValid
}

// revokedFPCache holds, per CA type and KRL version, the fingerprints of
// the subject keys and CA keys that revocations name: what the store's
// query cannot derive from the rows itself.
type revokedFPCache struct {
	mu sync.Mutex
	m  map[string]revokedFPs
}

type revokedFPs struct {
	version      uint64
	keys, caKeys []string
}

func (c *Console) revokedFPs(ctx context.Context, caType string) (revokedFPs, error) {
	v, err := c.st.KRLVersion(ctx, caType)
	if err != nil {
		return revokedFPs{}, err
	}
	c.revoked.mu.Lock()
	cached, ok := c.revoked.m[caType]
	c.revoked.mu.Unlock()
	if ok && cached.version == v {
		return cached, nil
	}
	out := revokedFPs{version: v}
	err = c.st.EachRevocation(ctx, caType, func(r store.Revocation) error {
		switch r.Kind {
		case store.RevokeKey, store.RevokeCAKey:
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.Value))
			if err != nil {
				return nil
			}
			if r.Kind == store.RevokeKey {
				out.keys = append(out.keys, ssh.FingerprintSHA256(pub))
			} else {
				out.caKeys = append(out.caKeys, ssh.FingerprintSHA256(pub))
			}
		case store.RevokeSHA256:
			if b, err := hex.DecodeString(r.Value); err == nil {
				out.keys = append(out.keys, "SHA256:"+base64.RawStdEncoding.EncodeToString(b))
			}
		}
		return nil
	})
	if err != nil {
		return revokedFPs{}, err
	}
	c.revoked.mu.Lock()
	if c.revoked.m == nil {
		c.revoked.m = map[string]revokedFPs{}
	}
	c.revoked.m[caType] = out
	c.revoked.mu.Unlock()
	return out, nil
}

// rows gives certs their status, with the revocation that covers each
// (ca.RevokedCerts: the same answer as `sshca list` and the KRL).
func (c *Console) rows(ctx context.Context, certs []store.CertRecord, now time.Time, within time.Duration) ([]certRow, error) {
	revs, err := ca.RevokedCerts(ctx, c.st, certs)
	if err != nil {
		return nil, err
	}
	out := make([]certRow, len(certs))
	for i := range certs {
		r := certRow{CertRecord: certs[i], Identity: identityOf(&certs[i])}
		if rev, ok := revs[certs[i].Serial]; ok {
			r.Revoked = &rev
		}
		r.Status = statusOf(&certs[i], r.Revoked, now, within)
		out[i] = r
	}
	return out, nil
}

func (c *Console) certsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	f, err := parseCertFilter(r.URL.Query())
	if err != nil {
		return err
	}
	now := c.now()
	q := store.CertQuery{Identity: f.Identity, Role: f.Role, Principal: f.Principal, KeyID: f.KeyID, Now: now,
		Sort: f.Sort, Desc: f.Dir != "asc", Limit: PageSize, Offset: (f.Page - 1) * PageSize}
	if f.Serial != "" {
		if q.Serial, err = strconv.ParseUint(f.Serial, 10, 64); err != nil || q.Serial == 0 {
			return badInput("serial must be a positive number.")
		}
	}
	switch f.Type {
	case "", "user", "host":
		q.CAType = f.Type
	default:
		return badInput("type must be user or host.")
	}
	switch f.Sort {
	case "", "serial", "expires", "key_id":
	default:
		return badInput("Unknown sort column.")
	}
	within := time.Hour
	if f.Within != "" {
		d, err := config.ParseDuration(f.Within)
		if err != nil || d <= 0 {
			return badInput("within must be a duration such as 24h or 7d.")
		}
		within = d
	}
	switch f.Status {
	case "":
	case store.CertValid, store.CertExpiring, store.CertExpired, store.CertRevoked:
		q.Status, q.Within = f.Status, within
		for _, t := range []string{"user", "host"} {
			if q.CAType != "" && q.CAType != t {
				continue
			}
			fps, err := c.revokedFPs(r.Context(), t)
			if err != nil {
				return err
			}
			q.RevokedKeys = append(q.RevokedKeys, fps.keys...)
			q.RevokedCAKeys = append(q.RevokedCAKeys, fps.caKeys...)
		}
	default:
		return badInput("Unknown status.")
	}
	page, err := c.st.QueryCerts(r.Context(), q)
	if err != nil {
		return err
	}
	rows, err := c.rows(r.Context(), page.Certs, now, within)
	if err != nil {
		return err
	}
	if f.Status != "" {
		// The store's answer is a superset where revocations are scoped to a
		// CA generation; the page shows what the KRL says.
		rows = slices.DeleteFunc(rows, func(row certRow) bool {
			got := row.Status
			if f.Status == store.CertValid && got == store.CertExpiring {
				got = store.CertValid
			}
			return got != f.Status
		})
	}
	roles := make([]string, 0, len(c.cfg.Roles))
	for name := range c.cfg.Roles {
		roles = append(roles, name)
	}
	sort.Strings(roles)
	data := map[string]any{"F": f, "Rows": rows, "More": page.More, "Roles": roles, "Now": now,
		"Statuses": []string{store.CertValid, store.CertExpiring, store.CertExpired, store.CertRevoked}}
	if f.Page > 1 {
		data["Prev"] = f.URL(f.Sort, f.Dir, f.Page-1)
	}
	if page.More {
		data["Next"] = f.URL(f.Sort, f.Dir, f.Page+1)
	}
	c.render(w, s, http.StatusOK, "certs", "Certificates", data)
	return nil
}

// decoded is a certificate as `sshca inspect` describes it.
type decoded struct {
	Type, CertType, KeyType, KeyFP, CAFP, SigAlg string
	Serial                                       uint64
	KeyID                                        string
	Principals                                   []string
	ValidAfter, ValidBefore                      string
	Options                                      [][2]string
	Extensions                                   []string
}

func certTime(v uint64) string {
	if v == ssh.CertTimeInfinity {
		return "forever"
	}
	return time.Unix(int64(min(v, 253402300799)), 0).UTC().Format("2006-01-02 15:04:05Z")
}

func decodeCert(line string) (*decoded, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, err
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("not a certificate")
	}
	d := &decoded{Type: cert.Type(), CertType: "user", KeyType: cert.Key.Type(), KeyFP: ssh.FingerprintSHA256(cert.Key),
		CAFP: ssh.FingerprintSHA256(cert.SignatureKey), Serial: cert.Serial, KeyID: cert.KeyId, Principals: cert.ValidPrincipals,
		ValidAfter: certTime(cert.ValidAfter), ValidBefore: certTime(cert.ValidBefore)}
	if cert.CertType == ssh.HostCert {
		d.CertType = "host"
	}
	if cert.Signature != nil {
		d.SigAlg = cert.Signature.Format
	}
	for k, v := range cert.CriticalOptions {
		d.Options = append(d.Options, [2]string{k, v})
	}
	sort.Slice(d.Options, func(i, j int) bool { return d.Options[i][0] < d.Options[j][0] })
	for k := range cert.Extensions {
		d.Extensions = append(d.Extensions, k)
	}
	sort.Strings(d.Extensions)
	return d, nil
}

// maxLineage bounds how far a certificate page follows renewals.
const maxLineage = 50

func parseSerial(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, &pageError{status: http.StatusNotFound, msg: "No such certificate."}
	}
	return v, nil
}

func (c *Console) certPage(w http.ResponseWriter, r *http.Request, s *session) error {
	serial, err := parseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	rec, err := c.st.GetCert(ctx, serial)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &pageError{status: http.StatusNotFound, msg: "No such certificate.", err: err}
		}
		return err
	}
	now := c.now()
	data := map[string]any{"Now": now, "Done": r.URL.Query().Get("done")}
	if rec.Cert != "" {
		d, err := decodeCert(rec.Cert)
		if err != nil {
			data["DecodeError"] = err.Error()
		} else {
			data["D"] = d
		}
	}
	// The lineage: the certificates this one renews, back to the first,
	// and those that renew it.
	var back []store.CertRecord
	for p := rec.Lineage.Renews; p != 0 && len(back) < maxLineage; {
		prev, err := c.st.GetCert(ctx, p)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return err
		}
		back = append(back, *prev)
		p = prev.Lineage.Renews
	}
	slices.Reverse(back)
	var fwd []store.CertRecord
	if id := identityOf(rec); id != "" {
		certs, err := c.st.QueryCerts(ctx, store.CertQuery{Identity: id, Sort: "serial", Limit: 500})
		if err != nil {
			return err
		}
		next := serial
		for _, cr := range certs.Certs {
			if cr.Lineage.Renews == next && cr.Serial > next {
				fwd = append(fwd, cr)
				next = cr.Serial
			}
		}
	}
	// One status lookup for the whole lineage, this certificate included.
	lineage, err := c.rows(ctx, append(append(back, *rec), fwd...), now, time.Hour)
	if err != nil {
		return err
	}
	data["C"], data["Lineage"] = lineage[len(back)], lineage
	trail, err := c.st.AuditEntries(ctx, store.AuditFilter{Serial: serial, Limit: 200})
	if err != nil {
		return err
	}
	data["Audit"] = trail
	c.render(w, s, http.StatusOK, "cert", fmt.Sprintf("Certificate %d", serial), data)
	return nil
}

// revoke revokes one certificate by serial, or every still-valid
// certificate of its identity, through the ca package as `sshca revoke`
// does; the revocations are audited there, under the session's actor.
func (c *Console) revoke(w http.ResponseWriter, r *http.Request, s *session) error {
	serial, err := parseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		return badInput("A reason is required to revoke.")
	}
	if len(reason) > 1024 || !utf8.ValidString(reason) || strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return badInput("The reason must be one line of at most 1024 bytes.")
	}
	ctx := r.Context()
	rec, err := c.st.GetCert(ctx, serial)
	if err != nil {
		return err
	}
	actor := s.caller().Actor()
	now := c.now()
	done := "revoked"
	switch r.PostForm.Get("scope") {
	case "", "certificate":
		if _, err := ca.Revoke(ctx, c.st, ca.Revocation{CAType: rec.CAType, Lo: serial, Hi: serial, Reason: reason, Actor: actor}, now); err != nil {
			return err
		}
	case "identity":
		id := identityOf(rec)
		if id == "" {
			return badInput("This certificate names no identity.")
		}
		if _, err := ca.RevokeIdentity(ctx, c.st, id, reason, actor, now); err != nil {
			return err
		}
		done = "revoked-identity"
	default:
		return badInput("Unknown scope.")
	}
	http.Redirect(w, r, fmt.Sprintf("/ui/certs/%d?done=%s", serial, done), http.StatusSeeOther)
	return nil
}

// auditTrail is a helper for templates: an entry's details in key order.
func detailsOf(e audit.Entry) [][2]string {
	var out [][2]string
	for k, v := range e.Details {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
