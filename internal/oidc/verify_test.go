package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sshca/sshca/internal/oidc/oidctest"
)

// newVerifier returns a Verifier for iss with the test's defaults, changed by mod.
func newVerifier(t *testing.T, iss *oidctest.Issuer, mod func(*Config)) *Verifier {
	t.Helper()
	c := Config{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()}
	if mod != nil {
		mod(&c)
	}
	v, err := NewVerifier(t.Context(), c)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// mustErr checks that err wraps want and says so in words, with the package prefix.
func mustErr(t *testing.T, err, want error, phrase string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "oidc: ") || !strings.Contains(msg, phrase) {
		t.Fatalf("error %q: want prefix %q and phrase %q", msg, "oidc: ", phrase)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVerifier(t, iss, nil)
	vSub := newVerifier(t, iss, func(c *Config) { c.UserClaim = "sub"; c.GroupsClaim = "roles" })
	vPref := newVerifier(t, iss, func(c *Config) { c.UserClaim = "preferred_username" })
	vEmail := newVerifier(t, iss, func(c *Config) { c.UserClaim = "email" })
	vAud := newVerifier(t, iss, func(c *Config) { c.Audience = "sshca-server" })

	now := time.Now()
	rsaKID, ecKID := iss.KeyIDs()
	foreignRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	foreignEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The default user claim is sub: tokens name alice there.
	alice := map[string]any{"sub": "alice"}
	aliceID := &Identity{Subject: "alice", User: "alice"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"sub": "alice"}
		for k, x := range extra {
			m[k] = x
		}
		return m
	}
	good := iss.Mint(alice, "RS256")
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(`{"iss":"`+iss.URL()+`","aud":"`+oidctest.ClientID+`","sub":"x","preferred_username":"root","exp":`+fmt.Sprint(now.Add(time.Hour).Unix())+`}`) + "." + parts[2]
	algNone := b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."
	// HS256 keyed with public material: the classic algorithm-confusion forgery.
	hsInput := b64(`{"alg":"HS256","kid":"`+rsaKID+`"}`) + "." + parts[1]
	mac := hmac.New(sha256.New, []byte(iss.URL()+"/jwks"))
	mac.Write([]byte(hsInput))
	algHS := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name    string
		v       *Verifier
		token   string
		want    *Identity
		wantErr error
		phrase  string
	}{
		{name: "ok/RS256", token: good, want: aliceID},
		{name: "ok/ES256", token: iss.Mint(alice, "ES256"), want: aliceID},
		{
			name:  "ok/groups and amr",
			token: iss.Mint(with(map[string]any{"groups": []string{"ops", "dev"}, "amr": []string{"pwd", "otp"}}), "ES256"),
			want:  &Identity{Subject: "alice", User: "alice", Groups: []string{"ops", "dev"}, AMR: []string{"pwd", "otp"}},
		},
		{name: "ok/null groups", token: iss.Mint(with(map[string]any{"groups": json.RawMessage("null")}), "RS256"), want: aliceID},
		{name: "ok/empty groups", token: iss.Mint(with(map[string]any{"groups": []string{}}), "RS256"), want: &Identity{Subject: "alice", User: "alice", Groups: []string{}}},
		{
			name:  "ok/hostile values returned as they are",
			v:     vPref,
			token: iss.Mint(map[string]any{"preferred_username": "alice,root", "sub": "../../x", "groups": []string{"*", "", "a b", "x\ny", "{{.User}}", "admins,wheel"}}, "RS256"),
			want:  &Identity{Subject: "../../x", User: "alice,root", Groups: []string{"*", "", "a b", "x\ny", "{{.User}}", "admins,wheel"}},
		},
		{name: "ok/hostile sub returned as it is", token: iss.Mint(map[string]any{"sub": "alice,root"}, "RS256"), want: &Identity{Subject: "alice,root", User: "alice,root"}},
		{name: "ok/audience in a list with azp", token: iss.Mint(with(map[string]any{"aud": []string{"other", oidctest.ClientID}, "azp": oidctest.ClientID}), "RS256"), want: aliceID},
		{name: "ok/one audience with azp", token: iss.Mint(with(map[string]any{"azp": oidctest.ClientID}), "RS256"), want: aliceID},
		{name: "ok/null azp", token: iss.Mint(with(map[string]any{"azp": json.RawMessage("null")}), "RS256"), want: aliceID},
		{name: "ok/configured audience", v: vAud, token: iss.Mint(with(map[string]any{"aud": "sshca-server"}), "RS256"), want: aliceID},
		{name: "ok/configured audience, azp is the client", v: vAud, token: iss.Mint(with(map[string]any{"aud": []string{"sshca-server", "other"}, "azp": oidctest.ClientID}), "RS256"), want: aliceID},
		{name: "ok/expired within leeway", token: iss.Mint(with(map[string]any{"iat": now.Add(-time.Hour), "exp": now.Add(-10 * time.Second)}), "RS256"), want: aliceID},
		{name: "ok/nbf within leeway", token: iss.Mint(with(map[string]any{"nbf": now.Add(10 * time.Second)}), "RS256"), want: aliceID},
		{name: "ok/iat within skew", token: iss.Mint(with(map[string]any{"iat": now.Add(MaxIssuedAtSkew / 2)}), "RS256"), want: aliceID},
		{name: "ok/lifetime at the maximum", token: iss.Mint(with(map[string]any{"iat": now, "exp": now.Add(MaxLifetime)}), "RS256"), want: aliceID},
		{name: "ok/sub as user, other groups claim", v: vSub, token: iss.Mint(map[string]any{"sub": "u-42", "roles": []string{"r"}, "groups": 7}, "RS256"), want: &Identity{Subject: "u-42", User: "u-42", Groups: []string{"r"}}},
		{name: "ok/preferred_username when configured", v: vPref, token: iss.Mint(map[string]any{"preferred_username": "alice"}, "RS256"), want: &Identity{Subject: oidctest.DefaultSubject, User: "alice"}},
		// An operator who never chose preferred_username gets sub: a name the
		// user typed into their profile does not make them alice.
		{name: "ok/preferred_username is not the default", token: iss.Mint(map[string]any{"preferred_username": "alice"}, "RS256"), want: &Identity{Subject: oidctest.DefaultSubject, User: oidctest.DefaultSubject}},
		{name: "ok/email verified", v: vEmail, token: iss.Mint(map[string]any{"email": "a@example.com", "email_verified": true}, "RS256"), want: &Identity{Subject: oidctest.DefaultSubject, User: "a@example.com"}},
		{name: "ok/email verified as string", v: vEmail, token: iss.Mint(map[string]any{"email": "a@example.com", "email_verified": "true"}, "RS256"), want: &Identity{Subject: oidctest.DefaultSubject, User: "a@example.com"}},

		{name: "fail/wrong audience", token: iss.Mint(with(map[string]any{"aud": "another-client"}), "RS256"), wantErr: ErrAudience, phrase: "wrong audience"},
		// OpenID Connect Core 1.0 section 3.1.3.7 items 4 and 5.
		{name: "fail/several audiences without azp", token: iss.Mint(with(map[string]any{"aud": []string{"other", oidctest.ClientID}}), "RS256"), wantErr: ErrAudience, phrase: "2 audiences and no azp"},
		{name: "fail/several audiences, azp of another client", token: iss.Mint(with(map[string]any{"aud": []string{"other", oidctest.ClientID}, "azp": "other"}), "ES256"), wantErr: ErrAudience, phrase: `azp "other", want "sshca-test"`},
		{name: "fail/one audience, azp of another client", token: iss.Mint(with(map[string]any{"azp": "other"}), "RS256"), wantErr: ErrAudience, phrase: `azp "other"`},
		{name: "fail/azp is the audience, not the client", v: vAud, token: iss.Mint(with(map[string]any{"aud": []string{"sshca-server", "x"}, "azp": "sshca-server"}), "RS256"), wantErr: ErrAudience, phrase: `want "sshca-test"`},
		{name: "fail/configured audience, several without azp", v: vAud, token: iss.Mint(with(map[string]any{"aud": []string{"sshca-server", oidctest.ClientID}}), "RS256"), wantErr: ErrAudience, phrase: "no azp"},
		{name: "fail/azp not a string", token: iss.Mint(with(map[string]any{"azp": []string{oidctest.ClientID}}), "RS256"), wantErr: ErrMalformed, phrase: "azp is not a string"},
		{name: "fail/iat in the future", token: iss.Mint(with(map[string]any{"iat": now.Add(5 * time.Minute), "exp": now.Add(10 * time.Minute)}), "RS256"), wantErr: ErrNotYetValid, phrase: "issued in the future"},
		{name: "fail/iat a year ahead", token: iss.Mint(with(map[string]any{"iat": now.AddDate(1, 0, 0), "exp": now.AddDate(1, 0, 0).Add(time.Hour)}), "ES256"), wantErr: ErrNotYetValid, phrase: "issued in the future"},
		{name: "fail/exp a year away", token: iss.Mint(with(map[string]any{"exp": now.AddDate(1, 0, 0)}), "RS256"), wantErr: ErrLifetime, phrase: "lifetime too long"},
		{name: "fail/lifetime a second over the maximum", token: iss.Mint(with(map[string]any{"iat": now, "exp": now.Add(MaxLifetime + time.Second)}), "RS256"), wantErr: ErrLifetime, phrase: "at most 86400s"},
		{name: "fail/exp a year away, no iat", token: iss.Mint(with(map[string]any{"iat": nil, "exp": now.AddDate(1, 0, 0)}), "RS256"), wantErr: ErrMalformed, phrase: "no iat"},
		{name: "fail/no iat", token: iss.Mint(with(map[string]any{"iat": nil}), "ES256"), wantErr: ErrMalformed, phrase: "no iat"},
		{name: "fail/iat not a number", token: iss.Mint(with(map[string]any{"iat": "yesterday"}), "RS256"), wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/exp before iat", token: iss.Mint(with(map[string]any{"iat": now.Add(-time.Second), "exp": now.Add(-time.Hour)}), "RS256"), wantErr: ErrExpired, phrase: "expired"},
		{name: "fail/exp before iat, within leeway", token: iss.Mint(with(map[string]any{"iat": now, "exp": now.Add(-time.Second)}), "RS256"), wantErr: ErrMalformed, phrase: "before iat"},
		{name: "fail/client ID when audience configured", v: vAud, token: good, wantErr: ErrAudience, phrase: `want "sshca-server"`},
		{name: "fail/expired", token: iss.Mint(with(map[string]any{"iat": now.Add(-time.Hour), "exp": now.Add(-time.Minute)}), "RS256"), wantErr: ErrExpired, phrase: "expired"},
		{name: "fail/expired ES256", token: iss.Mint(with(map[string]any{"exp": now.Add(-time.Minute)}), "ES256"), wantErr: ErrExpired, phrase: "expired"},
		{name: "fail/no exp", token: iss.Mint(with(map[string]any{"exp": nil}), "RS256"), wantErr: ErrMalformed, phrase: "no exp"},
		{name: "fail/not yet valid", token: iss.Mint(with(map[string]any{"nbf": now.Add(5 * time.Minute)}), "RS256"), wantErr: ErrNotYetValid, phrase: "not yet valid"},
		{name: "fail/wrong issuer", token: iss.Mint(with(map[string]any{"iss": "https://evil.example"}), "RS256"), wantErr: ErrIssuer, phrase: "wrong issuer"},
		{name: "fail/issuer with trailing slash", token: iss.Mint(with(map[string]any{"iss": iss.URL() + "/"}), "ES256"), wantErr: ErrIssuer, phrase: "wrong issuer"},
		{name: "fail/no issuer", token: iss.Mint(with(map[string]any{"iss": nil}), "RS256"), wantErr: ErrIssuer, phrase: "wrong issuer"},
		{name: "fail/unknown key ID", token: iss.MintWithKey(alice, "RS256", foreignRSA, "not-published"), wantErr: ErrUnknownKey, phrase: `unknown key ID "not-published"`},
		{name: "fail/known key ID, foreign key", token: iss.MintWithKey(alice, "ES256", foreignEC, ecKID), wantErr: ErrBadSignature, phrase: "bad signature"},
		{name: "fail/no key ID, foreign key", token: iss.MintWithKey(alice, "RS256", foreignRSA, ""), wantErr: ErrBadSignature, phrase: "bad signature"},
		{name: "fail/key ID of the other algorithm", token: iss.MintWithKey(alice, "ES256", foreignEC, rsaKID), wantErr: ErrBadSignature, phrase: "bad signature"},
		{name: "fail/tampered payload", token: tampered, wantErr: ErrBadSignature, phrase: "bad signature"},
		{name: "fail/alg none", token: algNone, wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/alg HS256 with public key", token: algHS, wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/alg not advertised", token: iss.MintWithKey(alice, "PS256", foreignRSA, rsaKID), wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/not a JWT", token: "a.b.c", wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/empty", token: "", wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/empty sub", token: iss.Mint(with(map[string]any{"sub": ""}), "RS256"), wantErr: ErrMalformed, phrase: "empty sub"},
		{name: "fail/no sub, preferred_username is not the default", token: iss.Mint(map[string]any{"sub": nil, "preferred_username": "alice"}, "RS256"), wantErr: ErrMalformed, phrase: "empty sub"},
		{name: "fail/numeric sub", token: iss.Mint(map[string]any{"sub": 0}, "RS256"), wantErr: ErrMalformed, phrase: "malformed"},
		{name: "fail/missing user claim", v: vPref, token: iss.Mint(map[string]any{"email": "a@example.com"}, "RS256"), wantErr: ErrUserClaim, phrase: `"preferred_username" missing`},
		{name: "fail/null user claim", v: vPref, token: iss.Mint(map[string]any{"preferred_username": json.RawMessage("null")}, "RS256"), wantErr: ErrUserClaim, phrase: "missing"},
		{name: "fail/empty user claim", v: vPref, token: iss.Mint(map[string]any{"preferred_username": ""}, "RS256"), wantErr: ErrUserClaim, phrase: "empty"},
		{name: "fail/numeric user claim", v: vPref, token: iss.Mint(map[string]any{"preferred_username": 0}, "RS256"), wantErr: ErrUserClaim, phrase: "not a string"},
		{name: "fail/list user claim", v: vPref, token: iss.Mint(map[string]any{"preferred_username": []string{"alice", "root"}}, "ES256"), wantErr: ErrUserClaim, phrase: "not a string"},
		{name: "fail/object user claim", v: vPref, token: iss.Mint(map[string]any{"preferred_username": map[string]string{"name": "root"}}, "RS256"), wantErr: ErrUserClaim, phrase: "not a string"},
		{name: "fail/email not verified", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com", "email_verified": false}, "RS256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/email_verified absent", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com"}, "RS256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/email_verified null", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com", "email_verified": json.RawMessage("null")}, "RS256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/email_verified false as string", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com", "email_verified": "false"}, "ES256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/email_verified 1", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com", "email_verified": 1}, "RS256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/email_verified True", v: vEmail, token: iss.Mint(map[string]any{"email": "boss@example.com", "email_verified": "True"}, "RS256"), wantErr: ErrUserClaim, phrase: "not verified"},
		{name: "fail/groups is a string", token: iss.Mint(with(map[string]any{"groups": "admins"}), "RS256"), wantErr: ErrClaim, phrase: `"groups" is not an array of strings`},
		{name: "fail/groups has a number", token: iss.Mint(with(map[string]any{"groups": []any{"a", 1}}), "RS256"), wantErr: ErrClaim, phrase: "groups"},
		{name: "fail/groups has null", token: iss.Mint(with(map[string]any{"groups": []any{"a", nil}}), "RS256"), wantErr: ErrClaim, phrase: "groups"},
		{name: "fail/amr is a string", token: iss.Mint(with(map[string]any{"amr": "mfa"}), "RS256"), wantErr: ErrClaim, phrase: `"amr"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vv := tt.v
			if vv == nil {
				vv = v
			}
			id, err := vv.Verify(t.Context(), tt.token)
			if tt.wantErr != nil {
				mustErr(t, err, tt.wantErr, tt.phrase)
				if id != nil {
					t.Fatalf("identity %+v returned with error", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Expiry.IsZero() || id.IssuedAt.IsZero() {
				t.Fatalf("times: iat %v exp %v", id.IssuedAt, id.Expiry)
			}
			if diff := cmp.Diff(tt.want, id, cmpopts.IgnoreFields(Identity{}, "Expiry", "IssuedAt")); diff != "" {
				t.Fatalf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVerifyTimes checks the exact exp/iat values, the leeway boundary and
// the iat skew boundary against an injected clock.
func TestVerifyTimes(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	t0 := time.Now().Truncate(time.Second)
	var offset atomic.Int64
	v := newVerifier(t, iss, func(c *Config) {
		c.Now = func() time.Time { return t0.Add(time.Duration(offset.Load())) }
	})
	tok := iss.Mint(map[string]any{"sub": "alice", "iat": t0, "exp": t0.Add(time.Minute)}, "ES256")
	tests := []struct {
		name    string
		offset  time.Duration
		wantErr error
		phrase  string
	}{
		{name: "ok/at issue", offset: 0},
		{name: "ok/just before exp+leeway", offset: time.Minute + Leeway - time.Second},
		{name: "ok/clock behind the issuer by the skew", offset: -MaxIssuedAtSkew},
		{name: "fail/at exp+leeway", offset: time.Minute + Leeway, wantErr: ErrExpired, phrase: "expired"},
		{name: "fail/clock behind the issuer by more than the skew", offset: -MaxIssuedAtSkew - time.Second, wantErr: ErrNotYetValid, phrase: "issued in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offset.Store(int64(tt.offset))
			id, err := v.Verify(t.Context(), tok)
			if tt.wantErr != nil {
				mustErr(t, err, tt.wantErr, tt.phrase)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !id.IssuedAt.Equal(t0) || !id.Expiry.Equal(t0.Add(time.Minute)) {
				t.Fatalf("iat %v exp %v, want %v %v", id.IssuedAt, id.Expiry, t0, t0.Add(time.Minute))
			}
		})
	}
}

func TestVerifyRotation(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	t0 := time.Now()
	var offset atomic.Int64
	v := newVerifier(t, iss, func(c *Config) {
		c.Now = func() time.Time { return t0.Add(time.Duration(offset.Load())) }
	})
	claims := map[string]any{"sub": "alice"}
	verify := func(tok string) error {
		_, err := v.Verify(t.Context(), tok)
		return err
	}
	fetches := func(want int) {
		t.Helper()
		if got := iss.JWKSFetches(); got != want {
			t.Fatalf("JWKS fetched %d times, want %d", got, want)
		}
	}

	oldRS, oldES := iss.Mint(claims, "RS256"), iss.Mint(claims, "ES256")
	if err := verify(oldRS); err != nil {
		t.Fatalf("old RS256 before rotation: %v", err)
	}
	if err := verify(oldES); err != nil {
		t.Fatalf("old ES256 before rotation: %v", err)
	}
	fetches(1) // the one at NewVerifier

	iss.Rotate()
	newRS, newES := iss.Mint(claims, "RS256"), iss.Mint(claims, "ES256")

	// Within the refresh interval of the last fetch, unknown key IDs cost
	// the issuer nothing.
	for range 5 {
		mustErr(t, verify(newRS), ErrUnknownKey, "unknown key ID")
	}
	fetches(1)

	offset.Store(int64(DefaultRefreshInterval + time.Second))
	if err := verify(newRS); err != nil {
		t.Fatalf("new RS256 after rotation: %v", err)
	}
	if err := verify(newES); err != nil {
		t.Fatalf("new ES256 after rotation: %v", err)
	}
	fetches(2)
	mustErr(t, verify(oldRS), ErrUnknownKey, "unknown key ID")
	mustErr(t, verify(oldES), ErrUnknownKey, "not in the issuer's JWKS")
	fetches(2)

	offset.Store(int64(2 * (DefaultRefreshInterval + time.Second)))
	mustErr(t, verify(oldRS), ErrUnknownKey, "unknown key ID")
	fetches(3) // looked again, and the old key is really gone
}

// TestVerifyWithdrawnKey checks that a key the issuer withdrew stops
// verifying once the cached JWKS is older than maxKeyAge, even though no new
// key ID ever triggered a refresh.
func TestVerifyWithdrawnKey(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	t0 := time.Now()
	var offset atomic.Int64
	v := newVerifier(t, iss, func(c *Config) {
		c.Now = func() time.Time { return t0.Add(time.Duration(offset.Load())) }
	})
	old := iss.Mint(map[string]any{"sub": "alice", "exp": t0.Add(2 * maxKeyAge)}, "RS256")
	iss.Rotate()
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatalf("cached key within maxKeyAge: %v", err)
	}
	if got := iss.JWKSFetches(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}
	offset.Store(int64(maxKeyAge + time.Second))
	if _, err := v.Verify(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("withdrawn key after maxKeyAge: %v, want ErrUnknownKey", err)
	}
	if got := iss.JWKSFetches(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", got)
	}
}

// TestVerifyRotationFastRefresh shows what a service sees with a short
// refresh interval and the real clock: the rotated key is picked up at once.
func TestVerifyRotationFastRefresh(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVerifier(t, iss, func(c *Config) { c.RefreshInterval = time.Nanosecond })
	old := iss.Mint(map[string]any{"sub": "alice"}, "RS256")
	iss.Rotate()
	id, err := v.Verify(t.Context(), iss.Mint(map[string]any{"sub": "bob"}, "ES256"))
	if err != nil || id.User != "bob" {
		t.Fatalf("after rotation: %+v, %v", id, err)
	}
	if _, err := v.Verify(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old key after rotation: %v, want ErrUnknownKey", err)
	}
}

func TestVerifyMFA(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVerifier(t, iss, nil)
	tests := []struct {
		name string
		amr  any
		want bool
	}{
		{name: "ok/missing amr is not MFA", amr: nil, want: false},
		{name: "ok/password only", amr: []string{"pwd"}, want: false},
		{name: "ok/password and otp", amr: []string{"pwd", "otp"}, want: true},
		{name: "ok/mfa", amr: []string{"mfa"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), iss.Mint(map[string]any{"sub": "alice", "amr": tt.amr}, "RS256"))
			if err != nil {
				t.Fatal(err)
			}
			if got := id.HasMFA(); got != tt.want {
				t.Fatalf("HasMFA(%v) = %v, want %v", id.AMR, got, tt.want)
			}
		})
	}
}

func TestHasMFA(t *testing.T) {
	tests := []struct {
		amr  []string
		want bool
	}{
		{nil, false},
		{[]string{}, false},
		{[]string{"pwd"}, false},
		{[]string{"otp"}, false},
		{[]string{"hwk"}, false},
		{[]string{"pwd", "kba", "pin"}, false},     // all knowledge
		{[]string{"otp", "sms", "hwk"}, false},     // all possession
		{[]string{"pwd", "geo", "rba"}, false},     // context signals are no factor
		{[]string{"hwk", "user"}, false},           // presence is no factor
		{[]string{"pwd", "mca"}, false},            // channels are not factors
		{[]string{"MFA"}, false},                   // case-sensitive
		{[]string{"pwd", "OTP"}, false},            // case-sensitive
		{[]string{"pwd", "otp"}, true},             // the usual second factor
		{[]string{"mfa"}, true},                    // asserted by the issuer
		{[]string{"pwd", "mfa"}, true},             // asserted by the issuer
		{[]string{"hwk", "pin"}, true},             // security key with PIN
		{[]string{"swk", "fpt"}, true},             // platform passkey with fingerprint
		{[]string{"pop", "face"}, true},            // key plus face
		{[]string{"pwd", "sms"}, true},             // weak, but a second factor
		{[]string{"pwd", "pwd", "pwd"}, false},     // repetition is not a factor
		{[]string{"iris", "retina", "vbm"}, false}, // all inherence
	}
	for _, tt := range tests {
		name := "fail/"
		if tt.want {
			name = "ok/"
		}
		label := strings.Join(tt.amr, "+")
		if tt.amr == nil {
			label = "absent"
		} else if label == "" {
			label = "empty"
		}
		t.Run(name+label, func(t *testing.T) {
			if got := (&Identity{AMR: tt.amr}).HasMFA(); got != tt.want {
				t.Fatalf("HasMFA(%q) = %v, want %v", tt.amr, got, tt.want)
			}
		})
	}
}

// fakeIssuer serves a discovery document built from doc (with "{{URL}}"
// replaced by the server's URL) and the given extra handlers.
func fakeIssuer(t *testing.T, doc string, handlers map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, strings.ReplaceAll(doc, "{{URL}}", srv.URL))
	})
	for p, h := range handlers {
		mux.HandleFunc(p, h)
	}
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestNewVerifier(t *testing.T) {
	t.Parallel()
	tlsIss := oidctest.New(t)
	httpIss := oidctest.NewHTTP(t)
	jwks := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}
	}
	ecJWK := `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}`
	discovery := `{"issuer":"{{URL}}","jwks_uri":"{{URL}}/jwks","id_token_signing_alg_values_supported":["ES256"]}`
	tests := []struct {
		name   string
		cfg    func() Config
		phrase string // empty: success
	}{
		{name: "ok/https issuer", cfg: func() Config {
			return Config{Issuer: tlsIss.URL(), ClientID: oidctest.ClientID, HTTPClient: tlsIss.Client()}
		}},
		{name: "ok/http on loopback", cfg: func() Config { return Config{Issuer: httpIss.URL(), ClientID: oidctest.ClientID} }},
		{name: "ok/audience without client ID", cfg: func() Config { return Config{Issuer: httpIss.URL(), Audience: "x"} }},
		{name: "ok/jwks skips unusable keys", cfg: func() Config {
			srv := fakeIssuer(t, discovery, map[string]http.HandlerFunc{"GET /jwks": jwks(200, `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"},{"kty":"OKP","crv":"X448","x":"AA","kid":"x"},`+ecJWK+`]}`)})
			return Config{Issuer: srv.URL, ClientID: "c"}
		}},
		{name: "fail/no client ID", cfg: func() Config { return Config{Issuer: httpIss.URL()} }, phrase: "client ID or audience required"},
		{name: "fail/http not loopback", cfg: func() Config { return Config{Issuer: "http://idp.example.com", ClientID: "c"} }, phrase: "http is allowed only for localhost"},
		{name: "fail/other scheme", cfg: func() Config { return Config{Issuer: "ftp://127.0.0.1", ClientID: "c"} }, phrase: "scheme must be https"},
		{name: "fail/empty issuer", cfg: func() Config { return Config{ClientID: "c"} }, phrase: "issuer URL missing"},
		{name: "fail/issuer with query", cfg: func() Config { return Config{Issuer: "https://idp.example.com/?x=1", ClientID: "c"} }, phrase: "want https://host"},
		{name: "fail/issuer with user info", cfg: func() Config { return Config{Issuer: "https://u:p@idp.example.com", ClientID: "c"} }, phrase: "want https://host"},
		{name: "fail/issuer differs from discovery", cfg: func() Config {
			return Config{Issuer: tlsIss.URL() + "/", ClientID: "c", HTTPClient: tlsIss.Client()}
		}, phrase: "did not match"},
		{name: "fail/untrusted certificate", cfg: func() Config { return Config{Issuer: tlsIss.URL(), ClientID: "c"} }, phrase: "certificate"},
		{name: "fail/nothing listening", cfg: func() Config { return Config{Issuer: "http://127.0.0.1:1", ClientID: "c"} }, phrase: "discovery"},
		{name: "fail/jwks status", cfg: func() Config {
			srv := fakeIssuer(t, discovery, map[string]http.HandlerFunc{"GET /jwks": jwks(500, "{}")})
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "500"},
		{name: "fail/jwks too large", cfg: func() Config {
			srv := fakeIssuer(t, discovery, map[string]http.HandlerFunc{"GET /jwks": jwks(200, `{"keys":[`+ecJWK+`],"pad":"`+strings.Repeat("a", maxJWKSSize)+`"}`)})
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "larger than"},
		{name: "fail/jwks only symmetric keys", cfg: func() Config {
			srv := fakeIssuer(t, discovery, map[string]http.HandlerFunc{"GET /jwks": jwks(200, `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}`)})
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "no usable signing keys"},
		{name: "fail/jwks not JSON", cfg: func() Config {
			srv := fakeIssuer(t, discovery, map[string]http.HandlerFunc{"GET /jwks": jwks(200, `<html>`)})
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "decode"},
		{name: "fail/no jwks_uri", cfg: func() Config {
			srv := fakeIssuer(t, `{"issuer":"{{URL}}"}`, nil)
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "jwks_uri URL missing"},
		{name: "fail/jwks_uri over plain http elsewhere", cfg: func() Config {
			srv := fakeIssuer(t, `{"issuer":"{{URL}}","jwks_uri":"http://keys.example.com/jwks"}`, nil)
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "jwks_uri"},
		{name: "fail/only HMAC advertised", cfg: func() Config {
			srv := fakeIssuer(t, `{"issuer":"{{URL}}","jwks_uri":"{{URL}}/jwks","id_token_signing_alg_values_supported":["HS256","none"]}`, nil)
			return Config{Issuer: srv.URL, ClientID: "c"}
		}, phrase: "supports none of the signing algorithms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(t.Context(), tt.cfg())
			if tt.phrase == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier succeeded, want error with %q", tt.phrase)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "oidc: ") || !strings.Contains(msg, tt.phrase) {
				t.Fatalf("error %q: want prefix %q and phrase %q", msg, "oidc: ", tt.phrase)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecD, err := ec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(m map[string]any) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ecPub := func(extra map[string]any) map[string]any {
		m := map[string]any{
			"kty": "EC", "crv": "P-256", "kid": "ec",
			"x": base64.RawURLEncoding.EncodeToString(ec.X.FillBytes(make([]byte, 32))),
			"y": base64.RawURLEncoding.EncodeToString(ec.Y.FillBytes(make([]byte, 32))),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name     string
		body     string
		wantKIDs []string
	}{
		{name: "ok/ec key", body: `{"keys":[` + jwk(ecPub(nil)) + `]}`, wantKIDs: []string{"ec"}},
		{name: "ok/private part dropped", body: `{"keys":[` + jwk(ecPub(map[string]any{"d": base64.RawURLEncoding.EncodeToString(ecD)})) + `]}`, wantKIDs: []string{"ec"}},
		{name: "ok/encryption key skipped", body: `{"keys":[` + jwk(ecPub(map[string]any{"use": "enc", "kid": "e"})) + `,` + jwk(ecPub(nil)) + `]}`, wantKIDs: []string{"ec"}},
		{name: "ok/small RSA skipped", body: `{"keys":[` + jwk(map[string]any{"kty": "RSA", "kid": "small", "n": base64.RawURLEncoding.EncodeToString(small.N.Bytes()), "e": "AQAB"}) + `,` + jwk(ecPub(nil)) + `]}`, wantKIDs: []string{"ec"}},
		{name: "ok/unknown kty skipped", body: `{"keys":[{"kty":"PQC","kid":"q"},` + jwk(ecPub(nil)) + `]}`, wantKIDs: []string{"ec"}},
		{name: "fail/empty set", body: `{"keys":[]}`},
		{name: "fail/only small RSA", body: `{"keys":[` + jwk(map[string]any{"kty": "RSA", "kid": "small", "n": base64.RawURLEncoding.EncodeToString(small.N.Bytes()), "e": "AQAB"}) + `]}`},
		{name: "fail/not an object", body: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tt.body))
			if tt.wantKIDs == nil {
				if err == nil {
					t.Fatalf("parseJWKS accepted %s", tt.body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range keys {
				if !k.IsPublic() {
					t.Fatalf("key %q is not public", k.KeyID)
				}
				kids = append(kids, k.KeyID)
			}
			if diff := cmp.Diff(tt.wantKIDs, kids); diff != "" {
				t.Fatalf("kids (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVerifyConcurrent runs verifications across a rotation in parallel, for
// the race detector: tokens from the new key always pass; tokens from the
// withdrawn key pass only until some verification has refetched the JWKS.
func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	iss := oidctest.New(t)
	v := newVerifier(t, iss, func(c *Config) { c.RefreshInterval = time.Nanosecond })
	oldTok := iss.Mint(map[string]any{"sub": "a"}, "RS256")
	iss.Rotate()
	newTok := iss.Mint(map[string]any{"sub": "b"}, "ES256")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		old bool
		err error
	}
	results := make(chan result, 16)
	for i := range 16 {
		go func() {
			tok := newTok
			if i%2 == 0 {
				tok = oldTok
			}
			_, err := v.Verify(ctx, tok)
			results <- result{old: i%2 == 0, err: err}
		}()
	}
	for range 16 {
		r := <-results
		if r.err != nil && (!r.old || !errors.Is(r.err, ErrUnknownKey)) {
			t.Errorf("old key %v: unexpected error %v", r.old, r.err)
		}
	}
	if _, err := v.Verify(ctx, oldTok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("withdrawn key after refresh: %v, want ErrUnknownKey", err)
	}
}
