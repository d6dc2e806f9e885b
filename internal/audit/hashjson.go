package audit

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendHashJSON appends the JSON that encoding/json.Marshal writes for e
// — byte for byte: the hash of every entry ever stored is the SHA-256 of
// that encoding — without reflection. ok is false where it cannot promise
// the same bytes (a time outside years 0–9999, which Marshal refuses); the
// caller then uses Marshal. TestHashJSONMatchesMarshal holds the two equal.
func appendHashJSON(b []byte, e *Entry) (_ []byte, ok bool) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","actor":`...)
	b = AppendJSONString(b, e.Actor)
	b = append(b, `,"action":`...)
	b = AppendJSONString(b, e.Action)
	if e.Role != "" {
		b = append(b, `,"role":`...)
		b = AppendJSONString(b, e.Role)
	}
	if e.Serial != 0 {
		b = append(b, `,"serial":`...)
		b = strconv.AppendUint(b, e.Serial, 10)
	}
	if e.KeyID != "" {
		b = append(b, `,"key_id":`...)
		b = AppendJSONString(b, e.KeyID)
	}
	b = append(b, `,"outcome":`...)
	b = AppendJSONString(b, e.Outcome)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, e.Reason)
	}
	if len(e.Details) > 0 {
		b = AppendMapJSON(append(b, `,"details":`...), e.Details)
	}
	b = append(b, `,"prev_hash":`...)
	b = AppendJSONString(b, e.PrevHash)
	b = append(b, `,"hash":`...)
	b = AppendJSONString(b, e.Hash)
	return append(b, '}'), true
}

// AppendMapJSON appends what encoding/json.Marshal writes for a non-nil m:
// an object with the keys sorted.
func AppendMapJSON(b []byte, m map[string]string) []byte {
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
		b = append(AppendJSONString(b, k), ':')
		b = AppendJSONString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s quoted as encoding/json quotes it with HTML escaping on
// (its default): <, > and & as \u003c, \u003e, \u0026; control characters
// as \b \f \n \r \t or \u00XX; invalid UTF-8 as \ufffd; U+2028 and U+2029
// escaped.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
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
