// Package jsonenc appends JSON exactly as encoding/json writes it, for the
// few values written once per certificate issued (audit hashes, row
// columns, the service's answer), where encoding/json's reflection is a
// measurable share of the cost. Its tests hold every function to
// encoding/json's bytes.
package jsonenc

import (
	"slices"
	"time"
	"unicode/utf8"
)

// TimeOK reports whether time.Time.MarshalJSON writes t (a year in
// 0–9999, a zone offset under 24 hours) rather than refusing it; Time
// promises encoding/json's bytes only for such a t.
func TimeOK(t time.Time) bool {
	_, off := t.Zone()
	y := t.Year()
	return y >= 0 && y <= 9999 && off > -24*3600 && off < 24*3600
}

// Time appends what encoding/json.Marshal writes for t when TimeOK(t):
// RFC 3339 with nanoseconds, quoted.
func Time(b []byte, t time.Time) []byte {
	return append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
}

// Strings appends what encoding/json.Marshal writes for ss (null for a nil
// slice).
func Strings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, s)
	}
	return append(b, ']')
}

// Map appends what encoding/json.Marshal writes for a non-nil m: an
// object with the keys sorted.
func Map(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(String(b, k), ':')
		b = String(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes String copies as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// String appends s quoted as encoding/json quotes it with HTML escaping on
// (its default): <, > and & as \u003c, \u003e, \u0026; control characters
// as \b \f \n \r \t or \u00XX; invalid UTF-8 as \ufffd; U+2028 and U+2029
// escaped.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
