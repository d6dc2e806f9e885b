package api

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fastInner struct {
	Name string `json:"name"`
	N    int    `json:"n,omitempty"`
}

type fastOuter struct {
	Role  string               `json:"role"`
	Inner fastInner            `json:"inner"`
	List  []fastInner          `json:"list"`
	Ptr   *fastInner           `json:"ptr"`
	Map   map[string]fastInner `json:"map"`
	Any   any                  `json:"any"`
	Raw   json.RawMessage      `json:"raw"`
	When  time.Time            `json:"when"`
}

var fastSeeds = []struct {
	body string
	t    reflect.Type
}{
	{`{"public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB","role":"deploy","principals":["a","b"],"ttl":"1h","totp":"123456"}`, reflect.TypeFor[CertRequest]()},
	{` { "role" : "d\u0065ploy" , "principals" : [ ] , "valid_after" : "-5m" } `, reflect.TypeFor[CertRequest]()},
	{`{"serial":7,"force":true,"reason":"key \"lost\"\n"}`, reflect.TypeFor[RevocationRequest]()},
	{`{"role":"r","inner":{"name":"i","n":-12.5e+3},"list":[{"name":"a"},{"n":0}],"ptr":null,"map":{"a b":{"name":"\ud83d\ude00"}},` +
		`"any":[1,{"x":[true,false,null,{}]},"s"],"raw":{"A":1,"a":2},"when":"2024-01-02T03:04:05Z"}`, reflect.TypeFor[fastOuter]()},
	{`{"any":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`, reflect.TypeFor[fastOuter]()},
	{`{"any":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, reflect.TypeFor[fastOuter]()},
	{`[1,2,{"a":1,"b":{"a":2}}]`, reflect.TypeFor[any]()},
}

// TestFastCheckAgreesWithScan: whatever fastCheck passes, the token scan
// passes too (so skipping the scan never lets a body through that
// DecodeStrict refuses), over the seeds and many mutations of them; and
// the seeds that should take the fast path do.
func TestFastCheckAgreesWithScan(t *testing.T) {
	for i, s := range fastSeeds {
		fast := fastCheck([]byte(s.body), s.t)
		if want := i != 5; fast != want { // seed 5 nests 33 deep
			t.Errorf("seed %d: fastCheck = %v, want %v", i, fast, want)
		}
	}
	alphabet := []byte(`{}[]:,"\ u0123456789abcdefnrtluse.-+Ee` + "\t\n\x00\x7f")
	r := rand.New(rand.NewPCG(5, 6))
	passed := 0
	for n := range 200000 {
		s := fastSeeds[n%len(fastSeeds)]
		b := []byte(s.body)
		for range 1 + r.IntN(3) {
			p := r.IntN(len(b) + 1)
			switch r.IntN(3) {
			case 0:
				b = append(b[:p], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[p:]...)...)
			case 1:
				if p < len(b) {
					b = append(b[:p], b[p+1:]...)
				}
			default:
				if p < len(b) {
					b[p] = alphabet[r.IntN(len(alphabet))]
				}
			}
		}
		if checkText(b) != nil || !fastCheck(b, s.t) {
			continue
		}
		passed++
		if err := scanStrict(b, s.t); err != nil {
			t.Fatalf("fastCheck passed %q into %v, the scan refuses it: %v", b, s.t, err)
		}
		if !json.Valid(b) {
			t.Fatalf("fastCheck passed invalid JSON %q", b)
		}
	}
	if passed < 1000 {
		t.Fatalf("only %d mutations passed fastCheck: the comparison says little", passed)
	}
}

func BenchmarkDecodeStrictCertRequest(b *testing.B) {
	body := []byte(fastSeeds[0].body)
	for b.Loop() {
		var req CertRequest
		if err := decodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzFastCheck: whatever the byte scan passes is valid JSON that the
// token scan passes too, for every type a request decodes into.
func FuzzFastCheck(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s.body))
	}
	types := []reflect.Type{reflect.TypeFor[CertRequest](), reflect.TypeFor[RevocationRequest](), reflect.TypeFor[fastOuter](), reflect.TypeFor[any](),
		reflect.TypeFor[BatchCertRequest]()}
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkText(data) != nil {
			return
		}
		for _, typ := range types {
			if !fastCheck(data, typ) {
				continue
			}
			if !json.Valid(data) {
				t.Fatalf("fastCheck passed invalid JSON %q", data)
			}
			if err := scanStrict(data, typ); err != nil {
				t.Fatalf("fastCheck passed %q into %v; the token scan refuses it: %v", data, typ, err)
			}
		}
	})
}
