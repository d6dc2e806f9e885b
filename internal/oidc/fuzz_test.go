package oidc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzIdentityClaims feeds arbitrary claim sets to the claim checks that
// Verify runs after the signature check: it must never panic, must either
// return an identity with a non-empty user or one of its sentinel errors,
// must return the user claim exactly as sent, and must never accept a token
// issued in the future, living longer than MaxLifetime, or (for the email
// claim) without email_verified true.
func FuzzIdentityClaims(f *testing.F) {
	// t0 is the fuzz clock; times in the seeds are around it.
	const times = `"iat":1700000000,"exp":1700000300`
	for _, seed := range []string{
		`{` + times + `,"sub":"alice","groups":["ops","dev"],"amr":["pwd","otp"]}`,
		`{` + times + `,"sub":"alice,root","groups":["*","","{{.User}}"]}`,
		`{` + times + `,"sub":""}`,
		`{` + times + `,"sub":null,"groups":null}`,
		`{` + times + `,"sub":7}`,
		`{` + times + `,"sub":["a"]}`,
		`{` + times + `,"sub":"a","groups":"admins"}`,
		`{` + times + `,"sub":"a","groups":[1,null,"x"]}`,
		`{` + times + `,"sub":"a","amr":{"x":1}}`,
		`{` + times + `,"sub":"a","nbf":1e300}`,
		`{` + times + `,"sub":"a","nbf":"soon"}`,
		`{` + times + `,"sub":"a","nbf":-1e300}`,
		`{` + times + `,"sub":"\u0000\u202e"}`,
		`{"iat":1700000000,"exp":1731536000,"sub":"a"}`,     // exp a year away
		`{"iat":1700000600,"exp":1700000900,"sub":"a"}`,     // iat in the future
		`{"iat":1e300,"exp":1e301,"sub":"a"}`,               // beyond int64
		`{"iat":-1e300,"exp":1e300,"sub":"a"}`,              // huge lifetime
		`{"iat":1700000000,"exp":1699999999,"sub":"a"}`,     // exp before iat
		`{"exp":1700000300,"sub":"a"}`,                      // no iat
		`{"iat":"1700000000","exp":1700000300,"sub":"a"}`,   // iat a string
		`{"iat":1700000000,"exp":null,"sub":"a"}`,           // no exp
		`{"iat":1700000000.5,"exp":1700086400.5,"sub":"a"}`, // fractional, at the maximum
		`{"iat":1700000000,"exp":1700086400.001,"sub":"a"}`, // just over the maximum
		`{"iat":1700000060,"exp":1700000100,"sub":"a"}`,     // iat at the skew
		`{"iat":1700000060.001,"exp":1700000100,"sub":"a"}`, // iat just beyond the skew
		`{}`,
	} {
		f.Add([]byte(seed), "sub")
	}
	f.Add([]byte(`{`+times+`,"preferred_username":"alice"}`), "preferred_username")
	f.Add([]byte(`{`+times+`,"email":"a@b","email_verified":"false"}`), "email")
	f.Add([]byte(`{`+times+`,"email":"a@b","email_verified":1}`), "email")
	f.Add([]byte(`{`+times+`,"email":"a@b"}`), "email")
	f.Add([]byte(`{`+times+`,"email":"a@b","email_verified":true}`), "email")
	f.Add([]byte(`{`+times+`,"email":"a@b","email_verified":" \"true\" "}`), "email")
	now := time.Unix(1_700_000_000, 0)
	sentinels := []error{ErrMalformed, ErrNotYetValid, ErrLifetime, ErrUserClaim, ErrClaim}
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
		var iat, exp float64
		if json.Unmarshal(claims["iat"], &iat) != nil || json.Unmarshal(claims["exp"], &exp) != nil {
			t.Fatal("accepted without numeric iat and exp")
		}
		if iat > float64(now.Add(MaxIssuedAtSkew).Unix()) || exp < iat || exp-iat > MaxLifetime.Seconds() {
			t.Fatalf("accepted iat %v exp %v at %d", iat, exp, now.Unix())
		}
		if userClaim == "email" {
			if v := strings.TrimSpace(string(claims["email_verified"])); v != "true" && v != `"true"` {
				t.Fatalf("email accepted with email_verified %s", claims["email_verified"])
			}
		}
	})
}
