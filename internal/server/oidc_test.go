package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/totp"
)

// newOIDCFixture is a service that accepts ID tokens from an in-test issuer
// (real discovery and JWKS over HTTPS) with the default user claim, sub.
func newOIDCFixture(t *testing.T) (*fixture, *oidctest.Issuer) {
	t.Helper()
	return newOIDCFixtureWith(t, "", "")
}

// newOIDCFixtureWith is newOIDCFixture with a user claim and a policy (empty:
// the defaults).
func newOIDCFixtureWith(t *testing.T, userClaim, policy string) (*fixture, *oidctest.Issuer) {
	t.Helper()
	iss := oidctest.New(t)
	v, err := oidc.NewVerifier(context.Background(), oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID,
		UserClaim: userClaim, HTTPClient: iss.Client(), RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return newFixture(t, fixtureOptions{oidc: server.OIDC(v), policy: policy}), iss
}

// TestOIDCTokenAttacks sends ID tokens that a careless verifier would take
// (issue 18, item 7): each is signed by the real issuer and names a user the
// role allows, yet none may obtain a certificate.
func TestOIDCTokenAttacks(t *testing.T) {
	t.Parallel()
	f, iss := newOIDCFixture(t)
	emailPolicy := strings.Replace(testkit.Policy, "users: [alice]\n", "users: [alice@example.com]\n", 1)
	if emailPolicy == testkit.Policy {
		t.Fatal("test policy changed: deploy no longer allows alice")
	}
	fe, isse := newOIDCFixtureWith(t, "email", emailPolicy)
	fp, issp := newOIDCFixtureWith(t, "preferred_username", "")
	_, key := newKey(t)
	now := time.Now()
	alice := func(extra map[string]any) map[string]any {
		m := map[string]any{"sub": "alice"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	email := func(extra map[string]any) map[string]any {
		m := map[string]any{"sub": "u-1f6e", "email": "alice@example.com"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		f      *fixture
		token  func() string
		status int
		code   string
	}{
		// The controls: the same service takes well-formed tokens.
		{"ok/sub", f, func() string { return iss.Mint(alice(nil), "RS256") }, 200, ""},
		{"ok/several-audiences-azp-ours", f, func() string {
			return iss.Mint(alice(map[string]any{"aud": []string{oidctest.ClientID, "other"}, "azp": oidctest.ClientID}), "ES256")
		}, 200, ""},
		{"ok/lifetime-a-day", f, func() string {
			return iss.Mint(alice(map[string]any{"iat": now, "exp": now.Add(oidc.MaxLifetime)}), "RS256")
		}, 200, ""},
		{"ok/email-verified", fe, func() string { return isse.Mint(email(map[string]any{"email_verified": true}), "RS256") }, 200, ""},
		{"ok/preferred-username-configured", fp, func() string { return issp.Mint(map[string]any{"preferred_username": "alice"}, "RS256") }, 200, ""},

		{"fail/iat-in-the-future", f, func() string {
			return iss.Mint(alice(map[string]any{"iat": now.Add(10 * time.Minute), "exp": now.Add(15 * time.Minute)}), "RS256")
		}, 401, "unauthorized"},
		{"fail/exp-a-year-away", f, func() string { return iss.Mint(alice(map[string]any{"exp": now.AddDate(1, 0, 0)}), "RS256") }, 401, "unauthorized"},
		{"fail/exp-a-year-away-no-iat", f, func() string {
			return iss.Mint(alice(map[string]any{"iat": nil, "exp": now.AddDate(1, 0, 0)}), "ES256")
		}, 401, "unauthorized"},
		{"fail/several-audiences-no-azp", f, func() string {
			return iss.Mint(alice(map[string]any{"aud": []string{oidctest.ClientID, "other"}}), "RS256")
		}, 401, "unauthorized"},
		{"fail/azp-another-client", f, func() string {
			return iss.Mint(alice(map[string]any{"aud": []string{oidctest.ClientID, "other"}, "azp": "other"}), "RS256")
		}, 401, "unauthorized"},
		{"fail/azp-another-client-one-audience", f, func() string { return iss.Mint(alice(map[string]any{"azp": "other"}), "ES256") }, 401, "unauthorized"},
		{"fail/email-not-verified", fe, func() string { return isse.Mint(email(map[string]any{"email_verified": false}), "RS256") }, 401, "unauthorized"},
		{"fail/email-verified-absent", fe, func() string { return isse.Mint(email(nil), "RS256") }, 401, "unauthorized"},
		{"fail/email-verified-false-string", fe, func() string { return isse.Mint(email(map[string]any{"email_verified": "false"}), "ES256") }, 401, "unauthorized"},
		// preferred_username is no longer the identity: alice's name in a
		// profile someone else controls signs in as that someone (sub).
		{"fail/preferred-username-not-default", f, func() string {
			return iss.Mint(map[string]any{"sub": "u-mallory", "preferred_username": "alice"}, "RS256")
		}, 403, "role-not-allowed"},
		{"fail/preferred-username-without-sub", f, func() string {
			return iss.Mint(map[string]any{"sub": nil, "preferred_username": "alice"}, "RS256")
		}, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.f.state()
			r, _, cert := tc.f.userCert(tc.token(), api.CertRequest{PublicKey: key, Role: "deploy"})
			if tc.status == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("got %d %s: %s", r.status, r.err.Code, r.err.Error)
				}
				if !strings.HasPrefix(cert.KeyId, "oidc:alice") {
					t.Errorf("key ID %q does not name alice", cert.KeyId)
				}
				return
			}
			wantError(t, r, tc.status, tc.code)
			if after := tc.f.state(); after.maxSerial != before.maxSerial || after.certs != before.certs || after.denials != before.denials+1 {
				t.Errorf("refusal: serial %d -> %d, certs %d -> %d, denials %d -> %d", before.maxSerial, after.maxSerial, before.certs, after.certs, before.denials, after.denials)
			}
		})
	}
	for _, fx := range []*fixture{f, fe, fp} {
		fx.verifyAudit()
	}
}

// TestOIDC covers acceptance 2 at the service: ID tokens signed with RS256
// and ES256 by a real issuer are accepted, and every broken one is a 401
// recorded as a denial.
func TestOIDC(t *testing.T) {
	t.Parallel()
	f, iss := newOIDCFixture(t)
	_, key := newKey(t)
	rogueRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rogueEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alice := map[string]any{"sub": "alice"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"sub": "alice"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	rsaKID, ecKID := iss.KeyIDs()
	for _, tc := range []struct {
		name   string
		token  func() string
		role   string
		status int
		code   string
	}{
		{"ok/rs256", func() string { return iss.Mint(alice, "RS256") }, "deploy", 200, ""},
		{"ok/es256", func() string { return iss.Mint(alice, "ES256") }, "deploy", 200, ""},
		{"ok/group-grants-role", func() string {
			return iss.Mint(map[string]any{"sub": "gina", "groups": []string{"staff", "deployers"}}, "ES256")
		}, "deploy", 200, ""},
		{"fail/wrong-audience", func() string { return iss.Mint(with(map[string]any{"aud": "another-client"}), "RS256") }, "deploy", 401, "unauthorized"},
		{"fail/expired", func() string {
			return iss.Mint(with(map[string]any{"iat": time.Now().Add(-time.Hour), "exp": time.Now().Add(-2 * time.Minute)}), "RS256")
		}, "deploy", 401, "unauthorized"},
		{"fail/wrong-issuer", func() string { return iss.Mint(with(map[string]any{"iss": "https://idp.evil.example"}), "ES256") }, "deploy", 401, "unauthorized"},
		{"fail/unknown-key-id", func() string { return iss.MintWithKey(alice, "RS256", rogueRSA, "rogue-1") }, "deploy", 401, "unauthorized"},
		{"fail/foreign-key-known-id-rs256", func() string { return iss.MintWithKey(alice, "RS256", rogueRSA, rsaKID) }, "deploy", 401, "unauthorized"},
		{"fail/foreign-key-known-id-es256", func() string { return iss.MintWithKey(alice, "ES256", rogueEC, ecKID) }, "deploy", 401, "unauthorized"},
		{"fail/tampered-payload", func() string {
			parts := strings.Split(iss.Mint(map[string]any{"sub": "mallory"}, "RS256"), ".")
			claims, _ := json.Marshal(with(map[string]any{"iss": iss.URL(), "aud": oidctest.ClientID, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()}))
			parts[1] = base64.RawURLEncoding.EncodeToString(claims)
			return strings.Join(parts, ".")
		}, "deploy", 401, "unauthorized"},
		{"fail/no-user-claim", func() string { return iss.Mint(map[string]any{"sub": nil, "email": "alice@example.com"}, "RS256") }, "deploy", 401, "unauthorized"},
		{"fail/user-not-allowed", func() string { return iss.Mint(map[string]any{"sub": "mallory"}, "RS256") }, "deploy", 403, "role-not-allowed"},
		{"fail/group-not-allowed", func() string {
			return iss.Mint(map[string]any{"sub": "gina", "groups": []string{"deployers-not"}}, "RS256")
		}, "deploy", 403, "role-not-allowed"},
		{"fail/role-without-allow", func() string { return iss.Mint(alice, "RS256") }, "other", 403, "role-not-allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			r, cr, cert := f.userCert(tc.token(), api.CertRequest{PublicKey: key, Role: tc.role})
			after := f.state()
			if tc.status == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("got %d %s: %s", r.status, r.err.Code, r.err.Error)
				}
				if !strings.HasPrefix(cert.KeyId, "oidc:") || !strings.Contains(cert.KeyId, "req="+cr.RequestID) {
					t.Errorf("key ID %q does not name the identity and request", cert.KeyId)
				}
				return
			}
			wantError(t, r, tc.status, tc.code)
			if after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
				t.Errorf("refusal: serial %d -> %d, denials %d -> %d", before.maxSerial, after.maxSerial, before.denials, after.denials)
			}
		})
	}

	t.Run("ok/rotated-jwks", func(t *testing.T) {
		old := iss.Mint(alice, "RS256")
		iss.Rotate()
		fetches := iss.JWKSFetches()
		for _, alg := range []string{"RS256", "ES256"} {
			r, _, _ := f.userCert(iss.Mint(alice, alg), api.CertRequest{PublicKey: key, Role: "deploy"})
			if r.status != http.StatusOK {
				t.Fatalf("%s token signed with the rotated key: %d %s", alg, r.status, r.err.Error)
			}
		}
		if iss.JWKSFetches() == fetches {
			t.Error("the service did not fetch the rotated JWKS")
		}
		// The issuer dropped the old key: its tokens stop working.
		r, _, _ := f.userCert(old, api.CertRequest{PublicKey: key, Role: "deploy"})
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
	})
	f.verifyAudit()
}

// TestMFA checks require_mfa roles: the amr claim, TOTP enrolled through
// the API, a replayed code, and API tokens, which cannot carry a second factor.
func TestMFA(t *testing.T) {
	t.Parallel()
	f, iss := newOIDCFixture(t)
	_, key := newKey(t)
	req := api.CertRequest{PublicKey: key, Role: "secure"}
	mint := func(user string, amr []string) string {
		c := map[string]any{"sub": user}
		if amr != nil {
			c["amr"] = amr
		}
		return iss.Mint(c, "RS256")
	}

	t.Run("fail/no-amr", func(t *testing.T) {
		before := f.state()
		r, _, _ := f.userCert(mint("alice", nil), req)
		wantError(t, r, http.StatusForbidden, "mfa-required")
		if after := f.state(); after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
			t.Errorf("refusal changed state: %+v -> %+v", before, after)
		}
	})
	t.Run("fail/one-factor-amr", func(t *testing.T) {
		r, _, _ := f.userCert(mint("alice", []string{"pwd"}), req)
		wantError(t, r, http.StatusForbidden, "mfa-required")
	})
	t.Run("ok/amr-pwd-otp", func(t *testing.T) {
		r, _, cert := f.userCert(mint("alice", []string{"pwd", "otp"}), req)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.err.Error)
		}
		if !slices.Equal(cert.ValidPrincipals, []string{"role-secure"}) {
			t.Errorf("principals %v", cert.ValidPrincipals)
		}
	})
	t.Run("fail/role-token", func(t *testing.T) {
		r, _, _ := f.userCert(f.roleToken("ci-secure", "secure"), req)
		wantError(t, r, http.StatusForbidden, "mfa-required")
	})
	t.Run("fail/totp-not-enrolled", func(t *testing.T) {
		withCode := req
		withCode.TOTP = "123456"
		r, _, _ := f.userCert(mint("carol", nil), withCode)
		wantError(t, r, http.StatusForbidden, "mfa-required")
	})
	t.Run("fail/totp-enroll-with-api-token", func(t *testing.T) {
		r := f.post("/v1/totp/enroll", f.roleToken("ci-totp", "deploy"), struct{}{})
		wantError(t, r, http.StatusForbidden, "oidc-only")
	})

	// The attack of issue 18: a single-factor session must not bootstrap a
	// permanent second factor.
	t.Run("fail/totp-enroll-one-factor", func(t *testing.T) {
		before := f.state()
		r := f.post("/v1/totp/enroll", mint("carol", []string{"pwd"}), struct{}{})
		wantError(t, r, http.StatusForbidden, "mfa-required")
		if _, _, err := f.home.Store.GetTOTP(context.Background(), "carol"); err == nil {
			t.Fatal("a one-factor session enrolled a TOTP secret")
		}
		if after := f.state(); after.entries != before.entries+1 {
			t.Errorf("refusal not audited: %+v -> %+v", before, after)
		}
	})
	invite := func(user string, ttl time.Duration) string {
		t.Helper()
		code, tok, err := ca.NewToken("totp-invite-"+user+fmt.Sprint(time.Now().UnixNano()), ca.TokenTOTPInvite, nil, []string{user}, "test", f.clock.Now(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		ev := audit.Entry{Time: f.clock.Now(), Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created", Details: map[string]string{"token": tok.ID}}
		if err := f.home.Store.CreateToken(context.Background(), tok, ev); err != nil {
			t.Fatal(err)
		}
		return code
	}
	t.Run("fail/totp-enroll-someone-elses-invite", func(t *testing.T) {
		r := f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": invite("dave", time.Hour)})
		wantError(t, r, http.StatusForbidden, "enrollment-code")
	})
	t.Run("fail/totp-enroll-expired-invite", func(t *testing.T) {
		r := f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": invite("carol", -time.Minute)})
		wantError(t, r, http.StatusForbidden, "enrollment-code")
	})
	t.Run("fail/totp-enroll-forged-invite", func(t *testing.T) {
		code := invite("carol", time.Hour)
		r := f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": code[:len(code)-4] + "AAAA"})
		wantError(t, r, http.StatusForbidden, "enrollment-code")
	})
	t.Run("ok/totp-enroll-with-mfa-sign-in", func(t *testing.T) {
		r := f.post("/v1/totp/enroll", mint("erin", []string{"pwd", "otp"}), struct{}{})
		if r.status != http.StatusOK {
			t.Fatalf("enroll: %d %s", r.status, r.err.Error)
		}
	})

	var secret []byte
	t.Run("ok/totp-enroll", func(t *testing.T) {
		code := invite("carol", time.Hour)
		r := f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": code})
		if r.status != http.StatusOK {
			t.Fatalf("enroll: %d %s", r.status, r.err.Error)
		}
		var en api.TOTPEnrollment
		if err := json.Unmarshal(r.body, &en); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(en.URI)
		if err != nil || u.Scheme != "otpauth" {
			t.Fatalf("enrollment URI %q: %v", en.URI, err)
		}
		secret, err = base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(u.Query().Get("secret"), "=")))
		if err != nil || len(secret) == 0 {
			t.Fatalf("secret in %q: %v", en.URI, err)
		}
		again := f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": code})
		wantError(t, again, http.StatusForbidden, "enrollment-code") // spent
		again = f.post("/v1/totp/enroll", mint("carol", nil), map[string]string{"invite": invite("carol", time.Hour)})
		wantError(t, again, http.StatusConflict, "already-enrolled")
	})
	if secret == nil {
		t.Fatal("no TOTP secret")
	}
	t.Run("fail/totp-wrong-code", func(t *testing.T) {
		withCode := req
		withCode.TOTP = wrongCode(totp.Code(secret, f.clock.Now()))
		r, _, _ := f.userCert(mint("carol", nil), withCode)
		wantError(t, r, http.StatusForbidden, "mfa-failed")
	})
	code := totp.Code(secret, f.clock.Now())
	t.Run("ok/totp-code", func(t *testing.T) {
		withCode := req
		withCode.TOTP = code
		r, _, _ := f.userCert(mint("carol", nil), withCode)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s: %s", r.status, r.err.Code, r.err.Error)
		}
	})
	t.Run("fail/totp-replayed", func(t *testing.T) {
		withCode := req
		withCode.TOTP = code
		before := f.state()
		r, _, _ := f.userCert(mint("carol", nil), withCode)
		wantError(t, r, http.StatusForbidden, "mfa-failed")
		if after := f.state(); after.maxSerial != before.maxSerial {
			t.Error("replayed code issued a certificate")
		}
	})
	t.Run("ok/totp-next-step", func(t *testing.T) {
		f.clock.Advance(30 * time.Second)
		withCode := req
		withCode.TOTP = totp.Code(secret, f.clock.Now())
		r, _, _ := f.userCert(mint("carol", nil), withCode)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s: %s", r.status, r.err.Code, r.err.Error)
		}
	})
	f.verifyAudit()
}

func wrongCode(c string) string {
	b := []byte(c)
	b[0] = '0' + (b[0]-'0'+5)%10
	return string(b)
}

// TestHostileClaims feeds claim values that a user who edits their own IdP
// profile could set; none may yield a principal outside the policy.
func TestHostileClaims(t *testing.T) {
	t.Parallel()
	f, iss := newOIDCFixture(t)
	_, key := newKey(t)
	for _, tc := range []struct {
		name       string
		user       string
		groups     []string
		principals []string // requested
		want       []string // granted; nil: refused
	}{
		{"fail/user-comma", "alice,root", []string{"admins"}, nil, nil},
		{"fail/user-wildcard", "*", []string{"admins"}, nil, nil},
		{"fail/user-empty", "", []string{"admins"}, nil, nil},
		{"fail/user-newline", "bob\nroot", []string{"admins"}, nil, nil},
		{"fail/user-space", "bob root", []string{"admins"}, nil, nil},
		{"fail/user-comma-asks-root", "alice,root", []string{"admins"}, []string{"root"}, nil},
		{"ok/group-outside-template-groups", "dave", []string{"admins"}, nil, []string{"u-dave"}},
		{"fail/asks-group-outside-template-groups", "dave", []string{"admins"}, []string{"grp-admins"}, nil},
		{"ok/group-in-template-groups", "erin", []string{"dev"}, nil, []string{"u-erin", "grp-dev"}},
		{"ok/hostile-group-dropped", "frank", []string{"admins", "dev,root", "*", ""}, nil, []string{"u-frank"}},
		{"fail/asks-hostile-group", "frank", []string{"admins", "dev,root"}, []string{"grp-dev,root"}, nil},
		{"fail/asks-other-user", "dave", []string{"admins"}, []string{"u-root"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			claims := map[string]any{"sub": tc.user, "groups": tc.groups}
			r, _, cert := f.userCert(iss.Mint(claims, "ES256"), api.CertRequest{PublicKey: key, Role: "personal", Principals: tc.principals})
			if tc.want == nil {
				if r.status < 400 || r.status >= 500 {
					t.Fatalf("got %d; want a refusal", r.status)
				}
				if after := f.state(); after.maxSerial != before.maxSerial {
					t.Fatal("a certificate was issued")
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("%d %s: %s", r.status, r.err.Code, r.err.Error)
			}
			if !slices.Equal(cert.ValidPrincipals, tc.want) {
				t.Fatalf("principals %q, want %q", cert.ValidPrincipals, tc.want)
			}
		})
	}
	// Whatever happened above, no certificate carries a principal that the
	// policy cannot produce for a valid identity.
	certs, err := f.home.Store.ListCerts(context.Background(), store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		for _, p := range c.Principals {
			if !(strings.HasPrefix(p, "u-") || p == "grp-dev") || strings.ContainsAny(p, ",* \n") {
				t.Errorf("serial %d carries principal %q", c.Serial, p)
			}
		}
	}
}
