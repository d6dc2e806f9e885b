package oidc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"testing"
)

// FuzzParseJWKS feeds arbitrary JWK Set documents to parseJWKS, the decoder
// of what the identity provider publishes: no panic; on success at least one
// key, every key public, meant for signatures, and RSA keys of at least
// minRSABits.
func FuzzParseJWKS(f *testing.F) {
	for _, seed := range []string{
		`{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"ec","use":"sig"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}]}`,
		`{"keys":null}`, `{"keys":{}}`, `[]`, `null`, ``, `{"keys":[1,"x",null]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if !k.IsPublic() {
				t.Fatalf("key %q is not public", k.KeyID)
			}
			if k.Use != "" && k.Use != "sig" {
				t.Fatalf("key %q has use %q", k.KeyID, k.Use)
			}
			switch pub := k.Key.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < minRSABits {
					t.Fatalf("RSA key %q of %d bits", k.KeyID, pub.N.BitLen())
				}
			case *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("key %q of type %T", k.KeyID, k.Key)
			}
		}
	})
}
