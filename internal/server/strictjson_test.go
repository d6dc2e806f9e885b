package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/store"
)

// TestStrictJSON sends bodies that encoding/json alone would decode into
// something the client did not write: a field name in another case (also by
// Unicode folding), a key given twice (the last one wins), and checks that
// each is a 400 bad-json that issues nothing, while the same request with
// exact, single keys succeeds. docs/api.md promises strict decoding.
func TestStrictJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ci := f.roleToken("ci", "deploy")
	admin := f.token("oncall", store.TokenAdmin, nil, nil, f.clock.Now(), time.Hour)
	_, key := newKey(t)
	q := strconv.Quote(key)

	const (
		user = "/v1/certs/user"
		host = "/v1/certs/host"
	)
	for _, tc := range []struct {
		name   string
		path   string
		bearer string
		body   string
	}{
		{"ok/exact-names", user, ci, `{"public_key":` + q + `,"role":"deploy"}`},
		{"ok/escaped-exact-name", user, ci, `{"public_key":` + q + `,"r\u006fle":"deploy"}`},

		{"fail/role-capitalised", user, ci, `{"public_key":` + q + `,"Role":"deploy"}`},
		{"fail/role-upper-case", user, ci, `{"public_key":` + q + `,"ROLE":"deploy"}`},
		{"fail/public-key-upper-case", user, ci, `{"PUBLIC_KEY":` + q + `,"role":"deploy"}`},
		{"fail/kelvin-sign-for-k", user, ci, `{"public_\u212aey":` + q + `,"role":"deploy"}`},
		{"fail/long-s-for-s", user, ci, `{"public_key":` + q + `,"role":"deploy","principal\u017f":["ci"]}`},
		// With last-wins the first three would be deploy requests that the
		// token may make, whatever a proxy or log that keeps the first key
		// showed.
		{"fail/duplicate-role", user, ci, `{"public_key":` + q + `,"role":"other","role":"deploy"}`},
		{"fail/duplicate-role-escaped", user, ci, `{"public_key":` + q + `,"role":"other","r\u006fle":"deploy"}`},
		{"fail/duplicate-role-other-case", user, ci, `{"public_key":` + q + `,"role":"deploy","Role":"deploy"}`},
		{"fail/duplicate-principals", user, ci, `{"public_key":` + q + `,"role":"deploy","principals":["ci"],"principals":["role-deploy"]}`},
		{"fail/duplicate-same-value", user, ci, `{"public_key":` + q + `,"role":"deploy","role":"deploy"}`},
		{"fail/duplicate-host-principals", host, ci, `{"public_key":` + q + `,"role":"servers","principals":["a.corp"],"principals":["b.corp"]}`},
		{"fail/trailing-object", user, ci, `{"public_key":` + q + `,"role":"deploy"}{"role":"other"}`},
		{"fail/top-level-null", user, ci, `null`},
		{"fail/invalid-utf8", user, ci, "{\"public_key\":" + q + ",\"role\":\"dep\xffloy\"}"},
		{"fail/unpaired-surrogate", user, ci, `{"public_key":` + q + `,"role":"deploy\udc00"}`},
		{"fail/revocation-serial-capitalised", "/v1/revocations", admin, `{"Serial":1}`},
		{"fail/revocation-duplicate-serial", "/v1/revocations", admin, `{"serial":1,"serial":2}`},
		{"fail/renew-certificate-capitalised", "/v1/certs/renew", "", `{"Certificate":"x","challenge":"y","signature":"z"}`},
		{"fail/renew-duplicate-ttl", "/v1/certs/renew", "", `{"certificate":"x","challenge":"y","signature":"z","ttl":"1m","ttl":"1h"}`},
		{"fail/totp-invite-capitalised", "/v1/totp/enroll", ci, `{"Invite":"code"}`},
		{"fail/totp-invite-duplicate", "/v1/totp/enroll", ci, `{"invite":"a","invite":"b"}`},
		{"fail/host-report-nested-case", "/v1/hosts/report", "", `{"certificate":"x","challenge":"y","signature":"z","report":{"KRL_Version":1}}`},
		{"fail/host-report-nested-duplicate", "/v1/hosts/report", "", `{"certificate":"x","challenge":"y","signature":"z","report":{},"report":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			r := f.do(http.MethodPost, tc.path, tc.bearer, "application/json", tc.body)
			after := f.state()
			if strings.HasPrefix(tc.name, "ok/") {
				if r.status != http.StatusOK {
					t.Fatalf("got %d %s: %s", r.status, r.err.Code, r.err.Error)
				}
				return
			}
			wantError(t, r, http.StatusBadRequest, "bad-json")
			if !strings.HasPrefix(r.err.Error, "malformed JSON: ") {
				t.Errorf("message %q", r.err.Error)
			}
			if after.maxSerial != before.maxSerial || after.certs != before.certs {
				t.Errorf("refusal changed the certificates: max serial %d -> %d, rows %d -> %d", before.maxSerial, after.maxSerial, before.certs, after.certs)
			}
		})
	}
	f.verifyAudit()
}
