package oidctest

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func claimsOf(t *testing.T, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, claims
}

func TestMint(t *testing.T) {
	iss := New(t)
	rsaKID, ecKID := iss.KeyIDs()
	tests := []struct {
		name    string
		claims  map[string]any
		alg     string
		wantKID string
		check   func(t *testing.T, c map[string]any)
	}{
		{name: "ok/defaults RS256", alg: "RS256", wantKID: rsaKID, check: func(t *testing.T, c map[string]any) {
			if c["iss"] != iss.URL() || c["aud"] != ClientID || c["sub"] != DefaultSubject {
				t.Fatalf("defaults: %v", c)
			}
			if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != iss.Lifetime.Seconds() {
				t.Fatalf("exp-iat = %v", exp-iat)
			}
		}},
		{name: "ok/overrides ES256", alg: "ES256", wantKID: ecKID, claims: map[string]any{"aud": "x", "exp": time.Unix(42, 0), "sub": nil}, check: func(t *testing.T, c map[string]any) {
			if c["aud"] != "x" || c["exp"] != float64(42) {
				t.Fatalf("overrides: %v", c)
			}
			if _, ok := c["sub"]; ok {
				t.Fatal("nil claim not removed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, c := claimsOf(t, iss.Mint(tt.claims, tt.alg))
			if hdr["alg"] != tt.alg || hdr["kid"] != tt.wantKID {
				t.Fatalf("header %v, want alg %s kid %s", hdr, tt.alg, tt.wantKID)
			}
			tt.check(t, c)
		})
	}
}

func TestRotate(t *testing.T) {
	iss := New(t)
	r1, e1 := iss.KeyIDs()
	iss.Rotate()
	r2, e2 := iss.KeyIDs()
	if r1 == r2 || e1 == e2 || r2 == e2 {
		t.Fatalf("kids before %s %s, after %s %s", r1, e1, r2, e2)
	}
	resp, err := iss.Client().Get(iss.URL() + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid, Kty, Alg, Use string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range set.Keys {
		got = append(got, k.Kid+" "+k.Kty+" "+k.Alg+" "+k.Use)
	}
	want := []string{r2 + " RSA RS256 sig", e2 + " EC ES256 sig"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("JWKS after rotation (-want +got):\n%s", diff)
	}
	if iss.JWKSFetches() != 1 {
		t.Fatalf("JWKSFetches = %d, want 1", iss.JWKSFetches())
	}
}

func TestDeviceEndpoints(t *testing.T) {
	iss := New(t)
	c := iss.Client()
	post := func(path string, form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := c.PostForm(iss.URL()+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	start := func() (deviceCode, userCode string) {
		t.Helper()
		st, m := post("/device/code", url.Values{"client_id": {ClientID}, "scope": {"openid"}})
		if st != 200 {
			t.Fatalf("device code: %d %v", st, m)
		}
		return m["device_code"].(string), m["user_code"].(string)
	}
	poll := func(dc string) (int, map[string]any) {
		return post("/token", url.Values{"client_id": {ClientID}, "grant_type": {DeviceGrantType}, "device_code": {dc}})
	}

	t.Run("ok/pending then approved once", func(t *testing.T) {
		dc, uc := start()
		if !slices.Contains(iss.PendingUserCodes(), uc) {
			t.Fatalf("%s not pending: %v", uc, iss.PendingUserCodes())
		}
		if st, m := poll(dc); st != 400 || m["error"] != "authorization_pending" {
			t.Fatalf("first poll: %d %v", st, m)
		}
		iss.ApproveDevice(uc, map[string]any{"preferred_username": "alice"})
		st, m := poll(dc)
		if st != 200 || m["access_token"] == "" {
			t.Fatalf("approved poll: %d %v", st, m)
		}
		if _, claims := claimsOf(t, m["id_token"].(string)); claims["preferred_username"] != "alice" {
			t.Fatalf("id token claims %v", claims)
		}
		if st, m := poll(dc); st != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("reused device code: %d %v", st, m)
		}
		if iss.Polls(uc) != 2 || slices.Contains(iss.PendingUserCodes(), uc) {
			t.Fatalf("polls %d pending %v", iss.Polls(uc), iss.PendingUserCodes())
		}
	})
	t.Run("fail/denied", func(t *testing.T) {
		dc, uc := start()
		iss.DenyDevice(uc)
		if st, m := poll(dc); st != 400 || m["error"] != "access_denied" {
			t.Fatalf("denied poll: %d %v", st, m)
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		dc, uc := start()
		iss.ExpireDevice(uc)
		if st, m := poll(dc); st != 400 || m["error"] != "expired_token" {
			t.Fatalf("expired poll: %d %v", st, m)
		}
	})
	t.Run("fail/wrong client", func(t *testing.T) {
		if st, m := post("/device/code", url.Values{"client_id": {"other"}}); st != 401 || m["error"] != "invalid_client" {
			t.Fatalf("wrong client: %d %v", st, m)
		}
	})
	t.Run("fail/wrong grant", func(t *testing.T) {
		dc, _ := start()
		if st, m := post("/token", url.Values{"client_id": {ClientID}, "grant_type": {"password"}, "device_code": {dc}}); st != 400 || m["error"] != "unsupported_grant_type" {
			t.Fatalf("wrong grant: %d %v", st, m)
		}
	})
}
