package audit

import (
	"strconv"

	"github.com/sshca/sshca/internal/jsonenc"
)

// appendHashJSON appends the JSON that encoding/json.Marshal writes for e
// — byte for byte: the hash of every entry ever stored is the SHA-256 of
// that encoding — without reflection. ok is false where it cannot promise
// the same bytes (a time Marshal refuses, jsonenc.TimeOK); the
// caller then uses Marshal. TestHashJSONMatchesMarshal holds the two equal.
// details, if not nil, is e.Details already encoded by jsonenc.Map.
func appendHashJSON(b []byte, e *Entry, details []byte) (_ []byte, ok bool) {
	if !jsonenc.TimeOK(e.Time) {
		return b, false
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = jsonenc.Time(append(b, `,"time":`...), e.Time)
	b = append(b, `,"actor":`...)
	b = jsonenc.String(b, e.Actor)
	b = append(b, `,"action":`...)
	b = jsonenc.String(b, e.Action)
	if e.Role != "" {
		b = append(b, `,"role":`...)
		b = jsonenc.String(b, e.Role)
	}
	if e.Serial != 0 {
		b = append(b, `,"serial":`...)
		b = strconv.AppendUint(b, e.Serial, 10)
	}
	if e.KeyID != "" {
		b = append(b, `,"key_id":`...)
		b = jsonenc.String(b, e.KeyID)
	}
	b = append(b, `,"outcome":`...)
	b = jsonenc.String(b, e.Outcome)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = jsonenc.String(b, e.Reason)
	}
	if len(e.Details) > 0 {
		b = append(b, `,"details":`...)
		if details != nil {
			b = append(b, details...) // jsonenc.Map of e.Details, made by the caller
		} else {
			b = jsonenc.Map(b, e.Details)
		}
	}
	b = append(b, `,"prev_hash":`...)
	b = jsonenc.String(b, e.PrevHash)
	b = append(b, `,"hash":`...)
	b = jsonenc.String(b, e.Hash)
	return append(b, '}'), true
}
