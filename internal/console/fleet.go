package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Fleet thresholds: a host silent this long is flagged, and a host
// certificate expiring within certSoon is.
const (
	silentAfter = time.Hour
	certSoon    = 7 * 24 * time.Hour
)

// hostRow is one host as the fleet page shows it.
type hostRow struct {
	store.Host
	Lag      uint64 // KRL versions behind the current user KRL
	Silent   bool
	CertSoon bool
	CertGen  string // "user 2" style name of the host certificate's CA key
}

type versionBar struct {
	Version string
	N       int
	Width   int // percent of the fleet
	Current bool
}

func (c *Console) fleetPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	qs := r.URL.Query()
	show, name := qs.Get("show"), qs.Get("name")
	if len(name) > maxFilterLen || !utf8.ValidString(name) {
		return badInput("name is longer than %d bytes or not UTF-8.", maxFilterLen)
	}
	page := 1
	if p := qs.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100_000 {
			return badInput("page must be a number from 1.")
		}
		page = n
	}
	now := c.now()
	userKRL, err := c.st.KRLVersion(ctx, "user")
	if err != nil {
		return err
	}
	hostKRL, err := c.st.KRLVersion(ctx, "host")
	if err != nil {
		return err
	}
	q := store.HostQuery{Name: name, Sort: qs.Get("sort"), Desc: qs.Get("dir") == "desc", Limit: PageSize, Offset: (page - 1) * PageSize}
	switch show {
	case "":
	case "lagging":
		q.BelowKRL = userKRL
	case "stale":
		q.Stale = true
	case "silent":
		q.SilentSince = now.Add(-silentAfter)
	case "cert-expiring":
		q.CertBefore = now.Add(certSoon)
	default:
		return badInput("Unknown host selection.")
	}
	switch q.Sort {
	case "", "name", "last_seen", "krl", "cert_expiry":
	default:
		return badInput("Unknown sort column.")
	}
	sum, err := c.st.SummarizeFleet(ctx, now.Add(-silentAfter), now.Add(certSoon))
	if err != nil {
		return err
	}
	hp, err := c.st.QueryHosts(ctx, q)
	if err != nil {
		return err
	}
	gens := map[string]string{}
	for _, t := range []string{"user", "host"} {
		keys, err := c.st.ListCAKeys(ctx, t)
		if err != nil {
			return err
		}
		for _, k := range keys {
			gens[k.Fingerprint] = fmt.Sprintf("%s gen %d (%s)", t, k.Generation, k.State)
		}
	}
	rows := make([]hostRow, len(hp.Hosts))
	for i, h := range hp.Hosts {
		row := hostRow{Host: h, Silent: now.Sub(h.LastSeen) > silentAfter,
			CertSoon: !h.HostCertExpiry.IsZero() && h.HostCertExpiry.Before(now.Add(certSoon)), CertGen: gens[h.HostCertCA]}
		if h.KRLVersion < userKRL {
			row.Lag = userKRL - h.KRLVersion
		}
		if row.CertGen == "" && h.HostCertCA != "" {
			row.CertGen = "unknown CA " + h.HostCertCA
		}
		rows[i] = row
	}
	var bars []versionBar
	current := 0
	for _, cnt := range sum.ByKRL {
		b := versionBar{Version: cnt.Key, N: cnt.N, Current: cnt.Key == strconv.FormatUint(userKRL, 10)}
		if sum.Total > 0 {
			b.Width = max(cnt.N*100/sum.Total, 1)
		}
		if b.Current {
			current = cnt.N
		}
		bars = append(bars, b)
	}
	var byCA []store.Count
	for _, cnt := range sum.ByHostCA {
		name := gens[cnt.Key]
		switch {
		case cnt.Key == "":
			name = "(not reported)"
		case name == "":
			name = "unknown CA " + cnt.Key
		}
		byCA = append(byCA, store.Count{Key: name, N: cnt.N})
	}
	recent, _, err := c.st.QueryAudit(ctx, store.AuditQuery{Action: audit.ActionRevoke, Limit: 15})
	if err != nil {
		return err
	}
	recent = slices.DeleteFunc(recent, func(e audit.Entry) bool { return e.Outcome != "ok" })
	v := url.Values{}
	if show != "" {
		v.Set("show", show)
	}
	if name != "" {
		v.Set("name", name)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
		v.Set("dir", qs.Get("dir"))
	}
	data := map[string]any{"UserKRL": userKRL, "HostKRL": hostKRL, "Sum": sum, "Bars": bars, "Current": current,
		"Lagging": sum.Total - current, "ByCA": byCA, "Rows": rows, "Show": show, "Name": name, "Recent": recent, "Now": now,
		"Shows": []string{"lagging", "stale", "silent", "cert-expiring"}}
	if page > 1 {
		p := cloneValues(v)
		p.Set("page", strconv.Itoa(page-1))
		data["Prev"] = "/ui/fleet?" + p.Encode()
	}
	if hp.More {
		p := cloneValues(v)
		p.Set("page", strconv.Itoa(page+1))
		data["Next"] = "/ui/fleet?" + p.Encode()
	}
	c.render(w, s, http.StatusOK, "fleet", "Revocation and fleet", data)
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
