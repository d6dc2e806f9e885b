package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// chainVerifier verifies the audit chain a part at a time: it remembers
// the last entry it verified, so that each page load hashes only the
// entries appended since.
type chainVerifier struct {
	mu      sync.Mutex
	seq     uint64 // verified through this entry
	hash    string
	err     error // the first break found; sticky
	checked time.Time
	started time.Time // of the current pass from the first entry
}

// reverifyAfter is when a verification pass starts again from the first
// entry, so that a row changed after it was verified is found too.
const reverifyAfter = time.Hour

// chainStatus is what the audit page says of the chain.
type chainStatus struct {
	OK       bool
	Through  uint64 // entries verified
	Head     uint64 // the store's head
	Problem  string
	Checked  time.Time
	Complete bool // verification reached the head
}

// verifyBudget bounds the entries one page load verifies; the rest are
// verified by the next loads.
const verifyBudget = 50_000

func (c *Console) verifyChain(ctx context.Context) (chainStatus, error) {
	v := &c.chain
	v.mu.Lock()
	defer v.mu.Unlock()
	now := c.now()
	if v.hash == "" || (v.err == nil && v.started.Before(now.Add(-reverifyAfter))) {
		v.seq, v.hash, v.started = 0, audit.GenesisHash, now
	}
	for n := 0; v.err == nil && n < verifyBudget; {
		entries, err := c.st.AuditAfter(ctx, v.seq, 10_000)
		if err != nil {
			return chainStatus{}, err
		}
		if len(entries) == 0 {
			break
		}
		if err := audit.VerifyFrom(v.seq, v.hash, entries); err != nil {
			v.err = err
			break
		}
		last := entries[len(entries)-1]
		v.seq, v.hash = last.Seq, last.Hash
		n += len(entries)
	}
	v.checked = now
	headSeq, headHash, err := c.st.AuditHead(ctx)
	if err != nil {
		return chainStatus{}, err
	}
	st := chainStatus{OK: v.err == nil, Through: v.seq, Head: headSeq, Checked: v.checked, Complete: v.seq >= headSeq}
	switch {
	case v.err != nil:
		st.Problem = v.err.Error()
	case st.Complete && headSeq == v.seq && headHash != v.hash:
		st.OK, st.Problem = false, fmt.Sprintf("the store's head names entry %d with another hash", headSeq)
	case v.seq > headSeq:
		st.OK, st.Problem = false, fmt.Sprintf("entries beyond the store's head (%d)", headSeq)
	}
	return st, nil
}

type auditFilter struct {
	Actor, Action, Role, Outcome, Serial, Before string
}

func (f auditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"actor": f.Actor, "action": f.Action, "role": f.Role, "outcome": f.Outcome, "serial": f.Serial} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) error {
	qs := r.URL.Query()
	f := auditFilter{Actor: qs.Get("actor"), Action: qs.Get("action"), Role: qs.Get("role"), Outcome: qs.Get("outcome"), Serial: qs.Get("serial"), Before: qs.Get("before")}
	for _, v := range []string{f.Actor, f.Action, f.Role, f.Outcome, f.Serial, f.Before} {
		if len(v) > maxFilterLen || !utf8.ValidString(v) {
			return badInput("A filter is longer than %d bytes or not UTF-8.", maxFilterLen)
		}
	}
	q := store.AuditQuery{Actor: f.Actor, Action: f.Action, Role: f.Role, Outcome: f.Outcome, Limit: PageSize}
	var err error
	if f.Serial != "" {
		if q.Serial, err = strconv.ParseUint(f.Serial, 10, 64); err != nil {
			return badInput("serial must be a number.")
		}
	}
	if f.Before != "" {
		if q.Before, err = strconv.ParseUint(f.Before, 10, 64); err != nil {
			return badInput("before must be a number.")
		}
	}
	ctx := r.Context()
	entries, more, err := c.st.QueryAudit(ctx, q)
	if err != nil {
		return err
	}
	chain, err := c.verifyChain(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	hours, err := c.st.AuditHours(ctx, now.Truncate(time.Hour).Add(-(chartHours-1)*time.Hour))
	if err != nil {
		return err
	}
	data := map[string]any{"F": f, "Entries": entries, "Chain": chain, "Chart": drawChart(hours, now),
		"Actions": []string{audit.ActionIssue, audit.ActionDeny, audit.ActionRevoke, audit.ActionToken, audit.ActionAdmin,
			audit.ActionCARotate, audit.ActionCAPromote, audit.ActionCARetire, audit.ActionCARevoke, audit.ActionHostReport, audit.ActionInit}}
	if more && len(entries) > 0 {
		v := f.values()
		v.Set("before", strconv.FormatUint(entries[len(entries)-1].Seq, 10))
		data["Next"] = "/ui/audit?" + v.Encode()
	}
	if f.Before != "" {
		v := f.values()
		data["First"] = "/ui/audit?" + v.Encode()
	}
	c.render(w, s, http.StatusOK, "audit", "Audit log", data)
	return nil
}

// chartHours is how many hours the chart shows, the current one last.
const chartHours = 24

// palette colours the roles of the chart, in order of first appearance;
// denials are drawn hatched-dark below the axis.
var palette = []string{"#2b6cb0", "#2f855a", "#b7791f", "#6b46c1", "#c05621", "#2c7a7b", "#97266d", "#4a5568"}

type chartBar struct {
	X, Y, W, H int
	Fill       string
	Title      string
}

type chartLabel struct {
	X, Y int
	Text string
}

type chart struct {
	W, H, Axis  int
	Bars        []chartBar
	XLabels     []chartLabel
	YLabels     []chartLabel
	Legend      []chartLegend
	Empty       bool
	Description string
}

type chartLegend struct {
	Fill, Role string
	Issued     int
	Denied     int
}

// drawChart lays out issuances (above the axis) and denials (below it)
// per hour, stacked by role, as SVG rectangles the template writes out:
// no script and no library, and every number also in the legend and each
// bar's title for readers that do not see the chart.
func drawChart(hours []store.HourCount, now time.Time) chart {
	const w, h, left, top, barGap = 760, 260, 80, 12, 2
	start := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	type key struct {
		slot int
		role string
	}
	issued, denied := map[key]int{}, map[key]int{}
	totals := map[string]*chartLegend{}
	var roles []string
	maxUp, maxDown := 0, 0
	perSlotUp, perSlotDown := make([]int, chartHours), make([]int, chartHours)
	for _, hc := range hours {
		slot := int(hc.Hour.Sub(start) / time.Hour)
		if slot < 0 || slot >= chartHours {
			continue
		}
		role := hc.Role
		if role == "" {
			role = "(none)"
		}
		if totals[role] == nil {
			totals[role] = &chartLegend{Role: role}
			roles = append(roles, role)
		}
		if hc.Action == audit.ActionIssue && hc.Outcome == "ok" {
			issued[key{slot, role}] += hc.N
			totals[role].Issued += hc.N
			perSlotUp[slot] += hc.N
		} else if hc.Action == audit.ActionDeny || hc.Outcome == "denied" {
			denied[key{slot, role}] += hc.N
			totals[role].Denied += hc.N
			perSlotDown[slot] += hc.N
		}
	}
	for i := range chartHours {
		maxUp, maxDown = max(maxUp, perSlotUp[i]), max(maxDown, perSlotDown[i])
	}
	sort.Strings(roles)
	ch := chart{W: w, H: h}
	plotH := h - top - 28
	scale := max(maxUp+maxDown, 1)
	ch.Axis = top + plotH*maxUp/scale
	if maxUp+maxDown == 0 {
		ch.Axis = top + plotH/2
		ch.Empty = true
	}
	slotW := (w - left) / chartHours
	for i, role := range roles {
		totals[role].Fill = palette[i%len(palette)]
	}
	for slot := range chartHours {
		x := left + slot*slotW
		up, down := ch.Axis, ch.Axis
		hour := start.Add(time.Duration(slot) * time.Hour)
		for _, role := range roles {
			fill := totals[role].Fill
			if n := issued[key{slot, role}]; n > 0 {
				bh := max(plotH*n/scale, 1)
				up -= bh
				ch.Bars = append(ch.Bars, chartBar{X: x + barGap, Y: up, W: slotW - 2*barGap, H: bh, Fill: fill,
					Title: fmt.Sprintf("%s: %d issued to role %s", hour.UTC().Format("15:04Z"), n, role)})
			}
			if n := denied[key{slot, role}]; n > 0 {
				bh := max(plotH*n/scale, 1)
				ch.Bars = append(ch.Bars, chartBar{X: x + barGap, Y: down, W: slotW - 2*barGap, H: bh, Fill: fill,
					Title: fmt.Sprintf("%s: %d denied for role %s", hour.UTC().Format("15:04Z"), n, role)})
				down += bh
			}
		}
		if slot%3 == 0 {
			ch.XLabels = append(ch.XLabels, chartLabel{X: x + slotW/2, Y: h - 8, Text: hour.UTC().Format("15h")})
		}
	}
	ch.YLabels = []chartLabel{{X: left - 6, Y: ch.Axis + 4, Text: "0"}}
	if maxUp > 0 {
		ch.YLabels = append(ch.YLabels, chartLabel{X: left - 6, Y: top + 10, Text: strconv.Itoa(maxUp) + " issued"})
	}
	if maxDown > 0 {
		ch.YLabels = append(ch.YLabels, chartLabel{X: left - 6, Y: top + plotH, Text: strconv.Itoa(maxDown) + " denied"})
	}
	var parts []string
	for _, role := range roles {
		ch.Legend = append(ch.Legend, *totals[role])
		parts = append(parts, fmt.Sprintf("%s: %d issued, %d denied", role, totals[role].Issued, totals[role].Denied))
	}
	ch.Description = "Issuances (above the line) and denials (below) per hour over the last 24 hours, by role. " + strings.Join(parts, "; ")
	return ch
}
