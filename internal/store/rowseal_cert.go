package store

import (
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/sshca/sshca/internal/jsonenc"
)

// certColumns is rowColumns for a certificate record without reflection:
// issuance seals one per certificate. It must give exactly the columns the
// reflective path gives (TestCertColumnsMatchReflection); ok is false where
// it cannot promise that (an authentication time RFC 3339 cannot write).
func certColumns(c *CertRecord) (_ []column, ok bool) {
	if !c.Lineage.AuthTime.IsZero() && !jsonenc.TimeOK(c.Lineage.AuthTime) {
		return nil, false
	}
	cols := make([]column, 0, 14)
	buf := make([]byte, 0, 128+len(c.Cert))
	add := func(name string, enc func([]byte) []byte) {
		buf = append(append(buf[:0], name...), 0)
		buf = enc(buf)
		cols = append(cols, column{name: name, sum: sha256.Sum256(buf)})
	}
	str := func(name, v string) {
		if v != "" {
			add(name, func(b []byte) []byte { return appendSealString(b, v) })
		}
	}
	tm := func(name string, t time.Time) {
		if t != (time.Time{}) {
			add(name, func(b []byte) []byte { return appendSealTime(b, t) })
		}
	}
	if c.Serial != 0 {
		add("serial", func(b []byte) []byte { return appendSealUint(b, c.Serial) })
	}
	str("ca_type", c.CAType)
	str("ca_fingerprint", c.CAFingerprint)
	str("role", c.Role)
	str("key_id", c.KeyID)
	if len(c.Principals) > 0 {
		add("principals", func(b []byte) []byte { return appendSealStrings(b, c.Principals) })
	}
	tm("valid_after", c.ValidAfter)
	tm("valid_before", c.ValidBefore)
	str("subject_fingerprint", c.SubjectFingerprint)
	str("subject_type", c.SubjectType)
	str("requester", c.Requester)
	tm("issued_at", c.IssuedAt)
	str("cert", c.Cert)
	if l := &c.Lineage; l.Caller != "" || l.Identity != "" || l.Groups != nil || l.MFA || l.AuthTime != (time.Time{}) || l.TokenID != "" || l.Origin != 0 || l.Renews != 0 {
		add("lineage", func(b []byte) []byte { return appendLineageJSON(append(b, 'j'), l) })
	}
	return cols, true
}

// AppendLineageJSON appends what encoding/json.Marshal writes for l; ok is
// false (and nothing appended) for an authentication time RFC 3339 cannot
// write, which Marshal refuses.
func AppendLineageJSON(b []byte, l *Lineage) (_ []byte, ok bool) {
	if !l.AuthTime.IsZero() && !jsonenc.TimeOK(l.AuthTime) {
		return b, false
	}
	return appendLineageJSON(b, l), true
}

// appendLineageJSON appends what encoding/json.Marshal writes for l.
func appendLineageJSON(b []byte, l *Lineage) []byte {
	b = append(b, '{')
	sep := func() {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
	}
	if l.Caller != "" {
		b = jsonenc.String(append(b, `"caller":`...), l.Caller)
	}
	if l.Identity != "" {
		sep()
		b = jsonenc.String(append(b, `"identity":`...), l.Identity)
	}
	if len(l.Groups) > 0 {
		sep()
		b = jsonenc.Strings(append(b, `"groups":`...), l.Groups)
	}
	if l.MFA {
		sep()
		b = append(b, `"mfa":true`...)
	}
	if !l.AuthTime.IsZero() {
		sep()
		b = jsonenc.Time(append(b, `"auth_time":`...), l.AuthTime)
	}
	if l.TokenID != "" {
		sep()
		b = jsonenc.String(append(b, `"token_id":`...), l.TokenID)
	}
	if l.Origin != 0 {
		sep()
		b = strconv.AppendUint(append(b, `"origin":`...), l.Origin, 10)
	}
	if l.Renews != 0 {
		sep()
		b = strconv.AppendUint(append(b, `"renews":`...), l.Renews, 10)
	}
	return append(b, '}')
}
