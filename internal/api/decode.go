package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxNesting is the deepest nesting of objects and arrays DecodeStrict
// accepts. Requests of this API are at most three levels deep; the bound
// keeps a hostile body from costing more than its size.
const MaxNesting = 32

// DecodeStrict reads r to its end and decodes the one JSON value it holds
// into v, which must be a non-nil pointer. It is as strict as docs/api.md
// says requests are decoded, and stricter than encoding/json, which matches
// field names case-insensitively (with Unicode folding: "public_\u212aey",
// with a Kelvin sign, fills PublicKey) and keeps the last of duplicate keys,
// so that two parsers of the same body could disagree about what it asks.
// DecodeStrict refuses:
//
//   - a key that names no field of the struct it decodes into, including one
//     that differs from the field's JSON name only in case;
//   - a key repeated in one object, at any depth (also in maps and in values
//     decoded into any or json.RawMessage), compared after unescaping;
//   - anything but white space after the value, and an empty body or a
//     top-level null;
//   - text that is not UTF-8, escapes of unpaired UTF-16 surrogates (which
//     encoding/json would turn into U+FFFD), and nesting deeper than
//     MaxNesting;
//   - everything encoding/json refuses (syntax, a value of the wrong type).
//
// Field names follow encoding/json: the name in the json tag, else the Go
// field name; fields of embedded structs without a tag are promoted. Values
// of types that decode themselves (json.Unmarshaler,
// encoding.TextUnmarshaler) are checked for duplicate keys but not for
// field names.
//
// DecodeStrict reads all of r: bound it (http.MaxBytesReader) before. A read
// error is returned wrapped, so errors.As finds e.g. *http.MaxBytesError.
// Other errors start with "api: " and are one line, fit for a client.
func DecodeStrict(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return &decodeError{msg: "read body: " + err.Error(), err: err}
	}
	return decodeStrict(data, v)
}

// decodeError keeps the cause of a refusal for errors.As/Is and says it in
// one line.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return "api: " + e.msg }
func (e *decodeError) Unwrap() error { return e.err }

func errorf(format string, a ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, a...)}
}

func decodeStrict(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errorf("decode into %T: want a non-nil pointer", v)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errorf("empty body")
	}
	if err := checkText(data); err != nil {
		return err
	}
	if !fastCheck(data, rv.Type().Elem()) {
		if err := scanStrict(data, rv.Type().Elem()); err != nil {
			return err
		}
	}
	// The pre-scan has checked every key against the exact field names, so
	// encoding/json's case-insensitive matching can no longer pick a field
	// the client did not name; DisallowUnknownFields is a second lock.
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &decodeError{msg: strings.TrimPrefix(err.Error(), "json: "), err: err}
	}
	return nil
}

// scanStrict is the token scan: it refuses what DecodeStrict refuses
// beyond encoding/json, and words why.
func scanStrict(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // scalars are skipped: no need to convert numbers
	s := &scanner{dec: dec}
	tok, err := s.token()
	if err != nil {
		return err
	}
	if tok == nil {
		return errorf("the body is null; want a JSON value")
	}
	if err := s.value(tok, t); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf("data after the JSON value (offset %d)", dec.InputOffset())
	}
	return nil
}

// checkText refuses input that is not UTF-8 (encoding/json would replace the
// bad bytes with U+FFFD) and \u escapes of surrogates that do not form a
// pair (the same). RFC 8259 sections 8.1 and 8.2.
func checkText(data []byte) error {
	if !utf8.Valid(data) {
		return errorf("invalid UTF-8")
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			if i+1 >= len(data) {
				return nil // the decoder reports the truncation
			}
			i++
			if data[i] != 'u' {
				continue
			}
			r, ok := hex4(data, i+1)
			if !ok {
				continue // the decoder reports the bad escape
			}
			i += 4
			switch {
			case r >= 0xdc00 && r <= 0xdfff:
				return errorf("unpaired surrogate escape at offset %d", i-5)
			case r >= 0xd800 && r <= 0xdbff:
				lo, ok := rune(0), false
				if i+2 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
					lo, ok = hex4(data, i+3)
				}
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return errorf("unpaired surrogate escape at offset %d", i-5)
				}
				i += 6
			}
		}
	}
	return nil
}

// hex4 decodes the four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
	return rune(n), err == nil
}

// scanner walks the token stream beside the Go type it will be decoded into.
type scanner struct {
	dec  *json.Decoder
	path []string // keys and indexes down to the current value, for errors
}

func (s *scanner) token() (json.Token, error) {
	tok, err := s.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &decodeError{msg: "unexpected end of JSON input", err: io.ErrUnexpectedEOF}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &decodeError{msg: fmt.Sprintf("%s (offset %d)", se.Error(), se.Offset), err: err}
		}
		return nil, &decodeError{msg: strings.TrimPrefix(err.Error(), "json: "), err: err}
	}
	return tok, nil
}

// where names the current position, e.g. $.principals[2].
func (s *scanner) where() string {
	return "$" + strings.Join(s.path, "")
}

// value checks the value that starts with tok, to be decoded into t (nil:
// any type, no field names to check).
func (s *scanner) value(tok json.Token, t reflect.Type) error {
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: encoding/json checks its type
	}
	if len(s.path) >= MaxNesting {
		return errorf("nested deeper than %d at %s", MaxNesting, s.where())
	}
	t = cachedShape(t)
	switch d {
	case '{':
		return s.object(t)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; ; i++ {
			tok, err := s.token()
			if err != nil {
				return err
			}
			if tok == json.Delim(']') {
				return nil
			}
			s.path = append(s.path, "["+strconv.Itoa(i)+"]")
			if err := s.value(tok, elem); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	}
	return nil // '}' and ']' are consumed by object and array
}

func (s *scanner) object(t reflect.Type) error {
	fields, elem := members(t)
	seen := map[string]bool{}
	for {
		tok, err := s.token()
		if err != nil {
			return err
		}
		if tok == json.Delim('}') {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return errorf("object key is not a string at %s", s.where()) // Token never allows it
		}
		if seen[key] {
			return errorf("duplicate key %s at %s", clip(key), s.where())
		}
		seen[key] = true
		child := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return errorf("unknown field %s at %s: field names are case-sensitive, did you mean %q?", clip(key), s.where(), name)
					}
				}
				return errorf("unknown field %s at %s", clip(key), s.where())
			}
			child = ft
		}
		tok, err = s.token()
		if err != nil {
			return err
		}
		s.path = append(s.path, pathKey(key))
		if err := s.value(tok, child); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shape returns the type whose field names constrain a JSON value decoded
// into t: t without pointers, or nil when any keys are the type's own
// business (interfaces, types that decode themselves).
func shape(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) ||
			reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
		case reflect.Interface:
			return nil
		default:
			return t
		}
	}
	return nil
}

// structFields returns the JSON names of t's fields and their types, by
// encoding/json's rules: exported fields, named by the json tag or the Go
// name, "-" skipped, fields of untagged embedded structs promoted, and of
// several fields with one name the shallowest wins (a tagged one among
// equals; with no single winner the name is dropped, as encoding/json does).
func structFields(t reflect.Type) map[string]reflect.Type {
	type field struct {
		typ    reflect.Type
		depth  int
		tagged bool
		count  int // fields with this name, depth and taggedness
	}
	best := map[string]*field{}
	var walk func(t reflect.Type, depth int, visiting map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, visiting map[reflect.Type]bool) {
		if visiting[t] {
			return
		}
		visiting[t] = true
		defer delete(visiting, t)
		for i := range t.NumField() {
			f := t.Field(i)
			ft := f.Type
			if f.Anonymous && ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous {
				if !f.IsExported() && ft.Kind() != reflect.Struct {
					continue
				}
			} else if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if name == "" && f.Anonymous && ft.Kind() == reflect.Struct {
				walk(ft, depth+1, visiting)
				continue
			}
			tagged := name != ""
			if !tagged {
				name = f.Name
			}
			cur, ok := best[name]
			switch {
			case !ok || depth < cur.depth || (depth == cur.depth && tagged && !cur.tagged):
				best[name] = &field{typ: f.Type, depth: depth, tagged: tagged, count: 1}
			case depth == cur.depth && tagged == cur.tagged:
				cur.count++
			}
		}
	}
	walk(t, 0, map[reflect.Type]bool{})
	out := make(map[string]reflect.Type, len(best))
	for name, f := range best {
		if f.count == 1 {
			out[name] = f.typ
		}
	}
	return out
}

// pathKey is key as a step of a path: .name when it is a plain name, else
// ["quoted"], so that an error message stays one printable line.
func pathKey(key string) string {
	plain := key != "" && len(key) <= 40
	for _, c := range []byte(key) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	if plain {
		return "." + key
	}
	return "[" + clip(key) + "]"
}

// clip quotes an untrusted key for an error message, cut to a sane length.
func clip(s string) string {
	return strconv.Quote(clipKey(s))
}

func clipKey(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
