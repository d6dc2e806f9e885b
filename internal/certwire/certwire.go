// Package certwire writes OpenSSH certificates in their wire format
// (PROTOCOL.certkeys) without reflection: the bytes
// golang.org/x/crypto/ssh's Certificate.Marshal writes, at a fraction of
// its cost, for the paths that write every certificate issued (its record,
// the service's answer). TestMarshalMatches holds the two equal.
package certwire

import (
	"encoding/base64"
	"encoding/binary"
	"slices"

	"golang.org/x/crypto/ssh"
)

// Marshal returns c in the wire format, as c.Marshal() does.
func Marshal(c *ssh.Certificate) []byte {
	key := c.Key.Marshal()
	// The certified key's fields follow the nonce without the key's own
	// algorithm name (its first string).
	if len(key) >= 4 {
		if n := binary.BigEndian.Uint32(key); uint64(n) <= uint64(len(key)-4) {
			key = key[4+n:]
		}
	}
	sigKey := c.SignatureKey.Marshal()
	b := make([]byte, 0, 256+len(key)+len(sigKey)+len(c.KeyId)+16*len(c.ValidPrincipals))
	b = appendString(b, c.Type())
	b = appendBytes(b, c.Nonce)
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, c.Serial)
	b = binary.BigEndian.AppendUint32(b, c.CertType)
	b = appendString(b, c.KeyId)
	n := 0
	for _, p := range c.ValidPrincipals {
		n += 4 + len(p)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, p := range c.ValidPrincipals {
		b = appendString(b, p)
	}
	b = binary.BigEndian.AppendUint64(b, c.ValidAfter)
	b = binary.BigEndian.AppendUint64(b, c.ValidBefore)
	b = appendTuples(b, c.CriticalOptions)
	b = appendTuples(b, c.Extensions)
	b = appendBytes(b, c.Reserved)
	b = appendBytes(b, sigKey)
	if s := c.Signature; s != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(8+len(s.Format)+len(s.Blob)+len(s.Rest)))
		b = appendString(b, s.Format)
		b = appendBytes(b, s.Blob)
		b = append(b, s.Rest...)
	} else {
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	return b
}

// Line returns c as an authorized_keys line without the newline: what
// strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))) gives.
func Line(c *ssh.Certificate) string {
	wire := Marshal(c)
	typ := c.Type()
	b := make([]byte, 0, len(typ)+1+base64.StdEncoding.EncodedLen(len(wire)))
	b = append(append(b, typ...), ' ')
	b = base64.StdEncoding.AppendEncode(b, wire)
	return string(b)
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

func appendBytes(b []byte, s []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// appendTuples writes critical options or extensions: sorted by name, each
// a name and a value string that holds the value as a string again when it
// is not empty (PROTOCOL.certkeys; x/crypto issue 10569).
func appendTuples(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		keys = append(keys, k)
		n += 8 + len(k)
		if v != "" {
			n += 4 + len(v)
		}
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, k := range keys {
		b = appendString(b, k)
		if v := m[k]; v != "" {
			b = binary.BigEndian.AppendUint32(b, uint32(4+len(v)))
			b = appendString(b, v)
		} else {
			b = binary.BigEndian.AppendUint32(b, 0)
		}
	}
	return b
}
