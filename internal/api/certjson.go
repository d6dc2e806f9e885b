package api

import (
	"strconv"
	"time"

	"github.com/sshca/sshca/internal/jsonenc"
)

// AppendCertificateJSON appends what encoding/json.Marshal writes for c,
// without reflection: the service answers every certificate with it. ok is
// false, and nothing appended, where it cannot promise the same bytes (a
// revocation to show, a time MarshalJSON refuses); the caller then uses
// encoding/json. TestCertificateJSONMatchesMarshal holds the two equal.
func AppendCertificateJSON(b []byte, c *Certificate) (_ []byte, ok bool) {
	if c.Revoked != nil || !jsonenc.TimeOK(c.ValidAfter) || !jsonenc.TimeOK(c.ValidBefore) || !jsonenc.TimeOK(c.IssuedAt) {
		return b, false
	}
	b = append(b, '{')
	field := func(name string) {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), name...), `":`...)
	}
	str := func(name, v string, omitEmpty bool) {
		if v != "" || !omitEmpty {
			field(name)
			b = jsonenc.String(b, v)
		}
	}
	tm := func(name string, t time.Time) {
		field(name)
		b = jsonenc.Time(b, t)
	}
	str("certificate", c.Certificate, true)
	str("file", c.File, true)
	str("type", c.Type, true)
	str("cert_type", c.CertType, false)
	field("serial")
	b = strconv.AppendUint(b, c.Serial, 10)
	str("key_id", c.KeyID, false)
	field("principals")
	b = jsonenc.Strings(b, c.Principals)
	tm("valid_after", c.ValidAfter)
	if !c.ValidBefore.IsZero() {
		tm("valid_before", c.ValidBefore)
	}
	if c.RemainingSeconds != nil {
		field("remaining_seconds")
		b = strconv.AppendInt(b, *c.RemainingSeconds, 10)
	}
	str("status", c.Status, false)
	str("key_type", c.KeyType, false)
	str("key_fingerprint", c.KeyFingerprint, false)
	str("ca_fingerprint", c.CAFingerprint, false)
	str("signature_algorithm", c.SignatureAlgorithm, true)
	field("critical_options")
	if c.CriticalOptions == nil {
		b = append(b, "null"...)
	} else {
		b = jsonenc.Map(b, c.CriticalOptions)
	}
	field("extensions")
	b = jsonenc.Strings(b, c.Extensions)
	str("role", c.Role, true)
	str("requester", c.Requester, true)
	if !c.IssuedAt.IsZero() {
		tm("issued_at", c.IssuedAt)
	}
	str("request_id", c.RequestID, true)
	return append(b, '}'), true
}
