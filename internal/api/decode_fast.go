package api

import (
	"encoding/json"
	"reflect"
	"sync"
)

// The token scan of DecodeStrict (encoding/json's Decoder.Token) costs a
// request more than decoding it. fastCheck walks the bytes instead and
// says whether the body is certainly accepted by that scan: valid JSON
// whose every object key names a field of the type it decodes into, with
// no key repeated in one object and no nesting beyond MaxNesting. When it
// cannot say so — any refusal, any doubt — the token scan runs and words
// the error, so refusals and their messages are the token scan's alone;
// fastCheck only skips it for bodies it would pass
// (TestFastCheckAgreesWithScan).
func fastCheck(data []byte, t reflect.Type) bool {
	f := fastScanner{data: data}
	f.ws()
	if f.i < len(f.data) && f.data[f.i] == 'n' {
		return false // a top-level null: the scan words it
	}
	if !f.value(t, 0) {
		return false
	}
	f.ws()
	return f.i == len(f.data)
}

type fastScanner struct {
	data []byte
	i    int
}

func (f *fastScanner) ws() {
	for f.i < len(f.data) {
		switch f.data[f.i] {
		case ' ', '\t', '\n', '\r':
			f.i++
		default:
			return
		}
	}
}

// value checks the value at f.i, inside depth containers, to be decoded
// into t (nil: no field names to check).
func (f *fastScanner) value(t reflect.Type, depth int) bool {
	if f.i >= len(f.data) {
		return false
	}
	switch c := f.data[f.i]; {
	case c == '{':
		if depth >= MaxNesting {
			return false
		}
		return f.object(cachedShape(t), depth)
	case c == '[':
		if depth >= MaxNesting {
			return false
		}
		var elem reflect.Type
		if t = cachedShape(t); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		if f.open(']') {
			return true
		}
		for {
			f.ws()
			if !f.value(elem, depth+1) {
				return false
			}
			if more, ok := f.next(']'); !more {
				return ok
			}
		}
	case c == '"':
		_, _, ok := f.str()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return f.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(f.data)-f.i >= len(lit) && string(f.data[f.i:f.i+len(lit)]) == lit {
			f.i += len(lit)
			return true
		}
	}
	return false
}

func (f *fastScanner) object(t reflect.Type, depth int) bool {
	fields, elem := members(t)
	if f.open('}') {
		return true
	}
	var seen []string
	for {
		f.ws()
		if f.i >= len(f.data) || f.data[f.i] != '"' {
			return false
		}
		raw, escaped, ok := f.str()
		if !ok {
			return false
		}
		key := string(raw[1 : len(raw)-1])
		if escaped {
			if json.Unmarshal(raw, &key) != nil {
				return false
			}
		}
		for _, k := range seen {
			if k == key {
				return false
			}
		}
		seen = append(seen, key)
		child := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				return false
			}
			child = ft
		}
		f.ws()
		if f.i >= len(f.data) || f.data[f.i] != ':' {
			return false
		}
		f.i++
		f.ws()
		if !f.value(child, depth+1) {
			return false
		}
		if more, ok := f.next('}'); !more {
			return ok
		}
	}
}

// open steps into the object or array at f.i and reports whether it is
// empty (and then past its end).
func (f *fastScanner) open(end byte) (empty bool) {
	f.i++
	f.ws()
	if f.i < len(f.data) && f.data[f.i] == end {
		f.i++
		return true
	}
	return false
}

// next reads what follows a member or element: a comma (more) or end
// (done, ok); anything else is not ok.
func (f *fastScanner) next(end byte) (more, ok bool) {
	f.ws()
	if f.i >= len(f.data) {
		return false, false
	}
	switch f.data[f.i] {
	case ',':
		f.i++
		return true, true
	case end:
		f.i++
		return false, true
	}
	return false, false
}

// str reads the string at f.i and returns it with its quotes and whether
// it holds escapes. Only the escapes JSON allows are taken; the text is
// UTF-8 with paired surrogate escapes (checkText ran first).
func (f *fastScanner) str() (raw []byte, escaped, ok bool) {
	start := f.i
	f.i++
	for f.i < len(f.data) {
		c := f.data[f.i]
		switch {
		case c == '"':
			f.i++
			return f.data[start:f.i], escaped, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			escaped = true
			if f.i+1 >= len(f.data) {
				return nil, false, false
			}
			switch f.data[f.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				f.i += 2
			case 'u':
				if _, ok := hex4(f.data, f.i+2); !ok {
					return nil, false, false
				}
				f.i += 6
			default:
				return nil, false, false
			}
		default:
			f.i++
		}
	}
	return nil, false, false
}

// number reads a JSON number (RFC 8259 section 6).
func (f *fastScanner) number() bool {
	d := f.data
	if f.i < len(d) && d[f.i] == '-' {
		f.i++
	}
	digits := func() int {
		n := 0
		for f.i < len(d) && d[f.i] >= '0' && d[f.i] <= '9' {
			f.i++
			n++
		}
		return n
	}
	switch {
	case f.i < len(d) && d[f.i] == '0':
		f.i++
	case digits() == 0:
		return false
	}
	if f.i < len(d) && d[f.i] == '.' {
		f.i++
		if digits() == 0 {
			return false
		}
	}
	if f.i < len(d) && (d[f.i] == 'e' || d[f.i] == 'E') {
		f.i++
		if f.i < len(d) && (d[f.i] == '+' || d[f.i] == '-') {
			f.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

var (
	shapeCache  sync.Map // reflect.Type -> reflect.Type (nil stored as a nil interface)
	fieldsCache sync.Map // reflect.Type -> map[string]reflect.Type
)

// members returns what the members of a JSON object decoded into t are
// checked against: the struct's fields, or a map's element type (both nil:
// anything goes).
func members(t reflect.Type) (fields map[string]reflect.Type, elem reflect.Type) {
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = cachedFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	return fields, elem
}

// cachedShape is shape, remembered per type.
func cachedShape(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	if v, ok := shapeCache.Load(t); ok {
		s, _ := v.(reflect.Type)
		return s
	}
	s := shape(t)
	shapeCache.Store(t, s)
	return s
}

// cachedFields is structFields, remembered per type (callers only read it).
func cachedFields(t reflect.Type) map[string]reflect.Type {
	if v, ok := fieldsCache.Load(t); ok {
		return v.(map[string]reflect.Type)
	}
	m := structFields(t)
	fieldsCache.Store(t, m)
	return m
}
