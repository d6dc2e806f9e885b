package oidc

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzIdentityClaims feeds arbitrary claim sets to the claim extraction that
// Verify runs after the signature check: it must never panic, must either
// return an identity with a non-empty user or one of its sentinel errors, and
// must return the user claim exactly as sent.
func FuzzIdentityClaims(f *testing.F) {
	for _, seed := range []string{
		`{"preferred_username":"alice","groups":["ops","dev"],"amr":["pwd","otp"]}`,
		`{"preferred_username":"alice,root","groups":["*","","{{.User}}"]}`,
		`{"preferred_username":""}`,
		`{"preferred_username":null,"groups":null}`,
		`{"preferred_username":7}`,
		`{"preferred_username":["a"]}`,
		`{"preferred_username":"a","groups":"admins"}`,
		`{"preferred_username":"a","groups":[1,null,"x"]}`,
		`{"preferred_username":"a","amr":{"x":1}}`,
		`{"preferred_username":"a","nbf":1e300}`,
		`{"preferred_username":"a","nbf":"soon"}`,
		`{"preferred_username":"a","nbf":-1e300}`,
		`{"preferred_username":"\u0000\u202e"}`,
		`{}`,
	} {
		f.Add([]byte(seed), "preferred_username")
	}
	f.Add([]byte(`{"email":"a@b","email_verified":"false"}`), "email")
	f.Add([]byte(`{"email":"a@b","email_verified":1}`), "email")
	f.Add([]byte(`{"sub":"x"}`), "sub")
	now := time.Unix(1_700_000_000, 0)
	sentinels := []error{ErrMalformed, ErrNotYetValid, ErrUserClaim, ErrClaim}
	f.Fuzz(func(t *testing.T, payload []byte, userClaim string) {
		var claims map[string]json.RawMessage
		if json.Unmarshal(payload, &claims) != nil {
			return
		}
		id, err := identityFromClaims(claims, userClaim, "groups", now)
		if err != nil {
			if id != nil {
				t.Fatal("identity returned with error")
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if id.User == "" {
			t.Fatal("empty user accepted")
		}
		var want string
		if json.Unmarshal(claims[userClaim], &want) != nil || want != id.User {
			t.Fatalf("user %q, claim says %q", id.User, want)
		}
	})
}
