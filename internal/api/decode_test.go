package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sshca/sshca/internal/api"
)

// Types that exercise what the API's own types do not (yet): nesting,
// embedding, maps, opaque values.
type inner struct {
	Name string `json:"name"`
	N    int    `json:"n,omitempty"`
}

type Embedded struct {
	E string `json:"e"`
}

type outer struct {
	Embedded
	Role    string           `json:"role"`
	Inner   inner            `json:"inner"`
	List    []inner          `json:"list"`
	Ptr     *inner           `json:"ptr"`
	Map     map[string]inner `json:"map"`
	Any     any              `json:"any"`
	Raw     json.RawMessage  `json:"raw"`
	When    time.Time        `json:"when"`
	NoTag   string
	Skip    string `json:"-"`
	private string //lint:ignore U1000 an unexported field must stay invisible to JSON
}

func TestDecodeStrict(t *testing.T) {
	deep := func(n int) string { return `{"any":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	tests := []struct {
		name   string
		body   string
		into   func() any // default *api.CertRequest
		want   any        // for ok cases; nil: only success is checked
		phrase string     // for fail cases
	}{
		{name: "ok/cert request", body: `{"public_key":"ssh-ed25519 AAAA","role":"deploy","principals":["a","b"],"ttl":"1h","totp":"123456"}`,
			want: &api.CertRequest{PublicKey: "ssh-ed25519 AAAA", Role: "deploy", Principals: []string{"a", "b"}, TTL: "1h", TOTP: "123456"}},
		{name: "ok/white space around", body: " \n\t{ \"role\" : \"deploy\" }\r\n ", want: &api.CertRequest{Role: "deploy"}},
		{name: "ok/empty object", body: `{}`, want: &api.CertRequest{}},
		{name: "ok/escaped key is the same name", body: `{"r\u006fle":"deploy"}`, want: &api.CertRequest{Role: "deploy"}},
		{name: "ok/paired surrogates", body: `{"role":"\ud83d\ude00"}`, want: &api.CertRequest{Role: "\U0001F600"}},
		{name: "ok/escaped backslash before u", body: `{"role":"\\udc00"}`, want: &api.CertRequest{Role: `\udc00`}},
		{name: "ok/revocation", body: `{"serial":7,"force":true}`, into: func() any { return new(api.RevocationRequest) }, want: &api.RevocationRequest{Serial: 7, Force: true}},
		{
			name: "ok/nested, embedded, map, opaque",
			body: `{"e":"x","role":"r","inner":{"name":"i"},"list":[{"name":"a"},{"name":"b","n":2}],"ptr":{"name":"p"},` +
				`"map":{"K":{"name":"k"},"k":{"name":"l"}},"any":{"Free":1,"free":[{"x":null}]},"raw":{"A":1,"a":2},"when":"2024-01-02T03:04:05Z","NoTag":"t"}`,
			into: func() any { return new(outer) },
			want: &outer{Embedded: Embedded{E: "x"}, Role: "r", Inner: inner{Name: "i"}, List: []inner{{Name: "a"}, {Name: "b", N: 2}}, Ptr: &inner{Name: "p"},
				Map: map[string]inner{"K": {Name: "k"}, "k": {Name: "l"}}, Any: map[string]any{"Free": 1.0, "free": []any{map[string]any{"x": nil}}},
				Raw: json.RawMessage(`{"A":1,"a":2}`), When: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), NoTag: "t"},
		},
		{name: "ok/scalar into any", body: `"x"`, into: func() any { return new(any) }},
		{name: "ok/nesting at the limit", body: deep(api.MaxNesting - 1), into: func() any { return new(outer) }},

		// encoding/json would take these, each naming a field it was not asked for.
		{name: "fail/field name in another case", body: `{"Role":"x"}`, phrase: `unknown field "Role" at $: field names are case-sensitive, did you mean "role"?`},
		{name: "fail/field name upper case", body: `{"public_key":"k","ROLE":"x"}`, phrase: `did you mean "role"`},
		{name: "fail/Kelvin sign for k", body: `{"public_\u212aey":"k"}`, phrase: "unknown field \"public_\u212aey\" at $: field names are case-sensitive"},
		{name: "fail/Kelvin sign as UTF-8", body: "{\"public_\u212aey\":\"k\"}", phrase: "unknown field"},
		{name: "fail/long s for s", body: `{"principal\u017f":["root"]}`, phrase: "unknown field"},
		{name: "fail/case in nested struct", body: `{"inner":{"Name":"x"}}`, into: func() any { return new(outer) }, phrase: `unknown field "Name" at $.inner`},
		{name: "fail/case in list element", body: `{"list":[{"name":"a"},{"NAME":"b"}]}`, into: func() any { return new(outer) }, phrase: `at $.list[1]`},
		{name: "fail/case in map value", body: `{"map":{"a b":{"nAme":"b"}}}`, into: func() any { return new(outer) }, phrase: `at $.map["a b"]`},
		{name: "fail/case in pointer", body: `{"ptr":{"Name":"b"}}`, into: func() any { return new(outer) }, phrase: `at $.ptr`},
		{name: "fail/case of promoted field", body: `{"E":"x"}`, into: func() any { return new(outer) }, phrase: `did you mean "e"`},
		{name: "fail/case of untagged field", body: `{"notag":"x"}`, into: func() any { return new(outer) }, phrase: `did you mean "NoTag"`},
		{name: "fail/skipped field", body: `{"Skip":"x"}`, into: func() any { return new(outer) }, phrase: `unknown field "Skip"`},
		{name: "fail/unexported field", body: `{"private":"x"}`, into: func() any { return new(outer) }, phrase: `unknown field "private"`},
		{name: "fail/embedded struct by name", body: `{"Embedded":{"e":"x"}}`, into: func() any { return new(outer) }, phrase: `unknown field "Embedded"`},
		{name: "fail/unknown field", body: `{"role":"deploy","admin":true}`, phrase: `unknown field "admin" at $`},

		// encoding/json would keep the last of these.
		{name: "fail/duplicate key", body: `{"role":"deploy","role":"admin"}`, phrase: `duplicate key "role" at $`},
		{name: "fail/duplicate key by escape", body: `{"role":"deploy","r\u006fle":"admin"}`, phrase: `duplicate key "role"`},
		{name: "fail/duplicate of an unknown field", body: `{"x":1,"x":2}`, phrase: `unknown field "x"`},
		{name: "fail/duplicate in nested struct", body: `{"inner":{"name":"a","name":"b"}}`, into: func() any { return new(outer) }, phrase: `duplicate key "name" at $.inner`},
		{name: "fail/duplicate in list element", body: `{"list":[{},{"n":1,"n":2}]}`, into: func() any { return new(outer) }, phrase: `at $.list[1]`},
		{name: "fail/duplicate map key", body: `{"map":{"a":{},"a":{}}}`, into: func() any { return new(outer) }, phrase: `duplicate key "a" at $.map`},
		{name: "fail/duplicate in any", body: `{"any":[{"x":{"y":1,"y":2}}]}`, into: func() any { return new(outer) }, phrase: `duplicate key "y" at $.any[0].x`},
		{name: "fail/duplicate in raw", body: `{"raw":{"a":1,"a":1}}`, into: func() any { return new(outer) }, phrase: `duplicate key "a" at $.raw`},
		{name: "fail/duplicate in time", body: `{"when":{"a":1,"a":1}}`, into: func() any { return new(outer) }, phrase: `duplicate key`},
		{name: "fail/duplicate at top of any", body: `{"a":1,"a":1}`, into: func() any { return new(any) }, phrase: `duplicate key "a" at $`},
		{name: "fail/duplicate with odd key quoted", body: "{\"a\\nb\":1,\"a\\nb\":2}", into: func() any { return new(map[string]int) }, phrase: `duplicate key "a\nb"`},

		{name: "fail/trailing object", body: `{"role":"deploy"} {}`, phrase: "data after the JSON value"},
		{name: "fail/trailing garbage", body: `{"role":"deploy"}x`, phrase: "data after the JSON value"},
		{name: "fail/trailing bracket", body: `{"role":"deploy"}]`, phrase: "data after the JSON value"},
		{name: "fail/trailing null", body: `{} null`, phrase: "data after the JSON value"},
		{name: "fail/empty body", body: ``, phrase: "empty body"},
		{name: "fail/white space only", body: " \n", phrase: "empty body"},
		{name: "fail/null body", body: `null`, phrase: "null"},
		{name: "fail/truncated", body: `{"role":"deploy"`, phrase: "unexpected end"},
		{name: "fail/missing value", body: `{"role":}`, phrase: "invalid character"},
		{name: "fail/missing colon", body: `{"role" "x"}`, phrase: "invalid character"},
		{name: "fail/trailing comma", body: `{"role":"x",}`, phrase: "invalid character"},
		{name: "fail/single quotes", body: `{'role':'x'}`, phrase: "invalid character"},
		{name: "fail/not an object", body: `["deploy"]`, phrase: "cannot unmarshal array"},
		{name: "fail/wrong type", body: `{"serial":"one"}`, into: func() any { return new(api.RevocationRequest) }, phrase: "cannot unmarshal string"},
		{name: "fail/number overflow", body: `{"serial":1e30}`, into: func() any { return new(api.RevocationRequest) }, phrase: "cannot unmarshal number"},
		{name: "fail/invalid UTF-8 in value", body: "{\"role\":\"de\xffploy\"}", phrase: "invalid UTF-8"},
		{name: "fail/invalid UTF-8 in key", body: "{\"rol\xc3\":\"x\"}", phrase: "invalid UTF-8"},
		{name: "fail/lone low surrogate", body: `{"role":"\udc00"}`, phrase: "unpaired surrogate"},
		{name: "fail/lone high surrogate", body: `{"role":"\ud800x"}`, phrase: "unpaired surrogate"},
		{name: "fail/high then high surrogate", body: `{"role":"\ud800\ud800"}`, phrase: "unpaired surrogate"},
		{name: "fail/high surrogate at the end", body: `{"role":"\ud83d"}`, phrase: "unpaired surrogate"},
		{name: "fail/surrogate in key", body: `{"ro\udc00le":"x"}`, phrase: "unpaired surrogate"},
		{name: "fail/nested too deep", body: deep(api.MaxNesting), into: func() any { return new(outer) }, phrase: "nested deeper than 32"},
		{name: "fail/nested far too deep", body: strings.Repeat("[", 100000), into: func() any { return new(any) }, phrase: "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			into := tt.into
			if into == nil {
				into = func() any { return new(api.CertRequest) }
			}
			v := into()
			err := api.DecodeStrict(strings.NewReader(tt.body), v)
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatalf("DecodeStrict(%s): %v", tt.body, err)
				}
				if tt.want != nil {
					if diff := cmp.Diff(tt.want, v, cmpopts.IgnoreUnexported(outer{})); diff != "" {
						t.Fatalf("decoded (-want +got):\n%s", diff)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeStrict(%s) accepted: %+v", tt.body, v)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "api: ") || !strings.Contains(msg, tt.phrase) {
				t.Fatalf("error %q: want prefix %q and phrase %q", msg, "api: ", tt.phrase)
			}
			if strings.ContainsAny(msg, "\n\r") || len(msg) > 300 {
				t.Fatalf("error %q is not one short line", msg)
			}
		})
	}
}

// TestDecodeStrictLenient shows what DecodeStrict is for: encoding/json takes
// each of these bodies and fills the struct with what the key almost said.
func TestDecodeStrictLenient(t *testing.T) {
	for _, body := range []string{
		`{"Role":"admin"}`,
		`{"ROLE":"admin"}`,
		`{"role":"deploy","role":"admin"}`,
		`{"role":"deploy","Role":"admin"}`,
		`{"r\u006fle":"admin"}`,
	} {
		var lenient api.CertRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&lenient); err != nil || lenient.Role != "admin" {
			t.Fatalf("encoding/json on %s: %+v, %v; the premise of this test changed", body, lenient, err)
		}
		var strict api.CertRequest
		err := api.DecodeStrict(strings.NewReader(body), &strict)
		if body == `{"r\u006fle":"admin"}` {
			if err != nil || strict.Role != "admin" {
				t.Fatalf("escaped exact name %s: %+v, %v", body, strict, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("DecodeStrict(%s) accepted: %+v", body, strict)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeStrictReader(t *testing.T) {
	t.Run("fail/read error is wrapped", func(t *testing.T) {
		boom := errors.New("connection reset")
		err := api.DecodeStrict(io.MultiReader(strings.NewReader(`{"role":`), errReader{boom}), new(api.CertRequest))
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "api: read body: ") {
			t.Fatalf("error %v, want one wrapping %v", err, boom)
		}
	})
	t.Run("fail/body over the limit", func(t *testing.T) {
		body := `{"role":"` + strings.Repeat("a", 100) + `"}`
		rec := httptest.NewRecorder()
		err := api.DecodeStrict(http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(body)), 50), new(api.CertRequest))
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); !ok || mbe.Limit != 50 {
			t.Fatalf("error %v, want a *http.MaxBytesError", err)
		}
	})
	t.Run("fail/not a pointer", func(t *testing.T) {
		if err := api.DecodeStrict(strings.NewReader(`{}`), api.CertRequest{}); err == nil {
			t.Fatal("decoded into a value")
		}
		if err := api.DecodeStrict(strings.NewReader(`{}`), (*api.CertRequest)(nil)); err == nil {
			t.Fatal("decoded into a nil pointer")
		}
	})
}

// FuzzDecodeStrict checks DecodeStrict against encoding/json: it never
// panics; its errors are one line starting with "api: "; what it accepts,
// encoding/json accepts with the same result; and what it accepts has no
// duplicate keys (counted independently: the value encoding/json decodes,
// encoded again, has as many tokens as the input) and only exact field names.
func FuzzDecodeStrict(f *testing.F) {
	for _, seed := range []string{
		`{"public_key":"ssh-ed25519 AAAA","role":"deploy","principals":["a"],"ttl":"1h","totp":"1"}`,
		`{"Role":"x"}`,
		`{"role":"a","role":"b"}`,
		`{"role":"a","r\u006fle":"b"}`,
		`{"public_\u212aey":"k"}`,
		`{"principal\u017f":[]}`,
		`{"role":"\ud83d\ude00"}`,
		`{"role":"\udc00"}`,
		`{"role":"\\ud800"}`,
		"{\"role\":\"\xff\"}",
		`{"inner":{"name":"a","n":1},"list":[{"name":"b"}],"map":{"k":{"name":"v"}},"any":{"a":[1,{"b":null}]},"raw":[1],"when":"2024-01-02T03:04:05Z","e":"x"}`,
		`{"any":{"a":{"b":1,"b":2}}}`,
		`{"inner":{"Name":"a"}}`,
		`{"serial":1,"serial_range":"1-2","force":true}`,
		`{} {}`,
		`{}]`,
		`null`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"role":1e999}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(strict, lenient any) {
			t.Helper()
			err := api.DecodeStrict(bytes.NewReader(data), strict)
			if err != nil {
				if msg := err.Error(); !strings.HasPrefix(msg, "api: ") || strings.ContainsAny(msg, "\n\r") {
					t.Fatalf("error %q is not one line starting with api:", msg)
				}
				return
			}
			if err := json.Unmarshal(data, lenient); err != nil {
				t.Fatalf("DecodeStrict accepted what encoding/json refuses (%v): %q", err, data)
			}
			if diff := cmp.Diff(lenient, strict, cmpopts.IgnoreUnexported(outer{}), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("DecodeStrict and encoding/json disagree on %q (-json +strict):\n%s", data, diff)
			}
		}
		check(new(api.CertRequest), new(api.CertRequest))
		check(new(api.RevocationRequest), new(api.RevocationRequest))
		check(new(outer), new(outer))

		var v any
		if api.DecodeStrict(bytes.NewReader(data), &v) != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if in, out := countTokens(t, data), countTokens(t, again); in != out {
			t.Fatalf("accepted %q with duplicate keys: %d tokens, %d after a round trip", data, in, out)
		}
		// Only exact field names: every top-level key is a CertRequest tag.
		var c api.CertRequest
		if api.DecodeStrict(bytes.NewReader(data), &c) == nil {
			if m, ok := v.(map[string]any); ok {
				for k := range m {
					switch k {
					case "public_key", "role", "principals", "ttl", "totp":
					default:
						t.Fatalf("accepted key %q into a CertRequest", k)
					}
				}
			}
		}
	})
}

func countTokens(t *testing.T, data []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		_, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("tokens of accepted input %q: %v", data, err)
		}
		n++
	}
}
