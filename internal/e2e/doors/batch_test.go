package doors_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/client"
)

// The batch doors: POST /v1/certs/user|host/batch through
// client.RequestCerts ("batch") and ca.Authority.SignMany under it
// ("batch-domain"). Every row the HTTPS single door runs is also an element
// of a batch: the rows of one caller and certificate type go together in
// one batch (a batch has one caller), so that the results of rows with
// different outcomes must be kept apart per element.

var batchDoors = []string{"batch", "batch-domain"}

// batchGroup is the rows one batch carries: one caller, one type.
type batchGroup struct {
	name string // the first row's
	c    caller
	typ  string
	rows []row
}

// batchGroups groups the rows that the HTTPS single door runs by caller
// and certificate type, in matrix order.
func batchGroups(rows []row) []*batchGroup {
	var gs []*batchGroup
outer:
	for _, r := range rows {
		if r.c.kind == "admin" || r.c.kind == "local" {
			continue // the admin asks at the CLI, local users at the SSH front door
		}
		for _, g := range gs {
			if g.typ == r.typ && reflect.DeepEqual(g.c, r.c) {
				g.rows = append(g.rows, r)
				continue outer
			}
		}
		gs = append(gs, &batchGroup{name: r.name, c: r.c, typ: r.typ, rows: []row{r}})
	}
	return gs
}

// batchVerdict is what a batch door must answer for row r, whose verdict
// alone is exp. The HTTPS batch door authenticates the caller first (a
// token that is no credential any more refuses the whole batch, 401, as
// alone), then refuses the whole batch for a "totp" field (400; a second
// factor is sent alone); the authority refuses, per element and before
// deciding anything, what only Sign decides: a TOTP code (only SignMany
// sees one), an enrollment token. The rest is decided as alone.
func batchVerdict(door string, r row, exp verdict) verdict {
	switch {
	case door == "batch" && isCredentialRule(exp.rule):
		return exp
	case door == "batch" && r.c.totp != "":
		return verdict{rule: "bad-request", frag: "totp is not accepted in a batch", status: 400}
	case r.c.totp != "":
		return verdict{rule: ca.RuleBatchUnsupported, frag: "a request with a TOTP code is decided alone"}
	case r.c.kind == "enroll":
		return verdict{rule: ca.RuleBatchUnsupported, frag: "an enrollment token obtains one certificate, by a request of its own"}
	}
	return exp
}

// batchElem is one element of a batch run.
type batchElem struct {
	r         row // a companion carries its row without the TOTP code
	pub       ssh.PublicKey
	code      string // the TOTP code sent with it
	s0, s1    snapshot
	o         outcome
	entries   []audit.Entry // its own audit entries; the batch's when refused whole
	whole     bool          // the batch was refused as a whole
	companion bool          // not a row of the matrix
}

// runBatch sends the rows of g through door in one batch. A group whose
// caller sends TOTP codes gets, before each of its rows, a companion
// element: the same request without the code, which a batch refused as a
// whole must not answer either.
func (w *world) runBatch(t *testing.T, g *batchGroup, door string) (elems []*batchElem, tok cred, actor string) {
	t.Helper()
	ctx := context.Background()
	label := g.name + "." + door
	if g.c.kind == "token" || g.c.kind == "enroll" {
		tok = w.freshToken(t, g.c, label)
	}
	actor = actorOf(g.c, tok)
	if g.c.tokState == "revoked-after-use" {
		w.useThenRevoke(t, g.rows[0], door, tok)
	}
	for _, r := range g.rows {
		if r.c.totp != "" {
			cr := r
			cr.c.totp = ""
			_, pub := w.newKey(t, cr.name+"."+door+".companion", false)
			elems = append(elems, &batchElem{r: cr, pub: pub, companion: true})
		}
		_, pub := w.newKey(t, r.name+"."+door, false)
		elems = append(elems, &batchElem{r: r, pub: pub, code: w.totpCode(r.c)})
	}
	for _, e := range elems {
		e.s0 = w.snap(t, e.pub)
	}
	var batchID string // the element's request ID is "<batchID>.<i>"
	switch door {
	case "batch":
		cl := *w.client
		cl.Bearer = w.bearer(g.c, tok)
		reqs := make([]api.CertRequest, len(elems))
		for i, e := range elems {
			reqs[i] = api.CertRequest{PublicKey: keyLine(e.pub), Role: e.r.role, Principals: e.r.principals, TTL: fmtTTL(e.r.ttl), TOTP: e.code}
		}
		res, err := cl.RequestCerts(ctx, g.typ, reqs)
		if err != nil {
			o := apiOutcome(t, nil, err) // fails the test unless the service answered
			for _, e := range elems {
				e.o, e.whole = o, true
			}
			break
		}
		for i, e := range elems {
			e.o = apiOutcome(t, res[i].Cert, res[i].Err)
			var id string
			if res[i].Err != nil {
				id = res[i].Err.(*client.APIError).RequestID
			} else if rid := res[i].Response.RequestID; strings.HasSuffix(rid, "."+strconv.Itoa(i)) {
				id = strings.TrimSuffix(rid, "."+strconv.Itoa(i))
			} else {
				t.Errorf("element %d (%s): certificate of request %q, want <batch>.%d", i, e.r.name, rid, i)
			}
			if batchID == "" {
				batchID = id
			} else if id != batchID {
				t.Errorf("element %d (%s): batch request ID %q, the elements before %q", i, e.r.name, id, batchID)
			}
		}
	case "batch-domain":
		batchID = "doors-" + label
		c := w.domainCaller(t, g.c, tok)
		reqs := make([]ca.Request, len(elems))
		for i, e := range elems {
			reqs[i] = ca.Request{Caller: c, Type: certType(g.typ), Role: e.r.role, Principals: e.r.principals, TTL: e.r.ttl, PublicKey: e.pub,
				TOTP: e.code, Details: map[string]string{"request_id": batchID + "." + strconv.Itoa(i), "source": "doors-test"}}
		}
		certs, errs, err := w.h.Authority.SignMany(ctx, reqs)
		if err != nil {
			t.Fatalf("SignMany failed as a whole: %v", err)
		}
		for i, e := range elems {
			e.o = domainOutcome(t, certs[i], errs[i])
		}
	default:
		t.Fatalf("no batch door %q", door)
	}
	for _, e := range elems {
		e.s1 = w.snap(t, e.pub)
	}
	first, last := elems[0], elems[len(elems)-1]
	all := w.appended(t, first.s0, last.s1, actor, "unauthenticated")
	if first.whole {
		if len(all) != 1 || all[0].Action != audit.ActionDeny {
			t.Errorf("batch refused whole: audit %+v, want one cert.deny", all)
		}
		if last.s1.maxSerial != first.s0.maxSerial {
			t.Errorf("batch refused whole: max serial %d -> %d", first.s0.maxSerial, last.s1.maxSerial)
		}
		for _, e := range elems {
			e.entries = all
		}
		return elems, tok, actor
	}
	if len(all) != len(elems) {
		t.Errorf("audit: %d entries for a batch of %d, want one per element: %+v", len(all), len(elems), all)
	}
	for i, e := range elems {
		id := batchID + "." + strconv.Itoa(i)
		for _, a := range all {
			if a.Details["request_id"] == id {
				e.entries = append(e.entries, a)
			}
		}
		if len(e.entries) != 1 {
			t.Errorf("element %d (%s): %d audit entries with request ID %s, want one", i, e.r.name, len(e.entries), id)
		}
		if e.o.cert != nil && door == "batch" && !strings.HasSuffix(e.o.cert.KeyId, " req="+id) {
			t.Errorf("element %d (%s): key ID %q does not end in req=%s", i, e.r.name, e.o.cert.KeyId, id)
		}
	}
	return elems, tok, actor
}

// checkElem checks one element of a batch run against the oracle (through
// batchVerdict), as check checks a run alone. A companion of a TOTP row
// gets nothing from the HTTPS batch door, which refuses the whole batch;
// SignMany decides it as alone.
func (w *world) checkElem(t *testing.T, door string, e *batchElem, tok cred, actor string, exp verdict, backdate time.Duration) {
	t.Helper()
	x := runCtx{pub: e.pub, tok: tok, actor: actor, s0: e.s0, s1: e.s1, batch: true, entries: e.entries}
	if e.companion && door == "batch" {
		if !e.whole {
			t.Fatalf("the batch was not refused whole: %d %s: %s", e.o.status, e.o.code, e.o.msg)
		}
		if e.o.cert != nil || x.s1.certs != x.s0.certs {
			t.Errorf("companion of a refused batch got a certificate")
		}
		return
	}
	w.check(t, e.r, door, exp, &e.o, x, backdate)
}

// ownDoor is the door alone through which what a batch door refused to
// take (an enrollment token, a TOTP code) is sent afterwards.
func ownDoor(batchDoor string, r row) string {
	switch {
	case batchDoor == "batch-domain":
		return "domain"
	case r.c.kind == "enroll" && r.typ == "host":
		return "enroll"
	}
	return "service"
}

// batchOnly says whether a batch door's verdict for r is its own (the
// request needs what a batch does not take) rather than the decision's.
func batchOnly(door string, r row, exp verdict) bool {
	b := batchVerdict(door, r, exp)
	return b.allow != exp.allow || b.rule != exp.rule
}
