// Package certwire writes OpenSSH certificates in their wire format
// (PROTOCOL.certkeys) without reflection: the bytes
// golang.org/x/crypto/ssh's Certificate.Marshal writes, at a fraction of
// its cost, for the paths that write every certificate issued (its record,
// the service's answer). TestMarshalMatches holds the two equal.
package certwire

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Marshal returns c in the wire format, as c.Marshal() does.
func Marshal(c *ssh.Certificate) []byte {
	return appendSignature(unsigned(c), c.Signature)
}

// Sign signs c with authority as x/crypto's Certificate.SignCert does —
// a fresh 32-byte nonce from rand, authority's public key as the signature
// key, the algorithm SignCert would choose (a MultiAlgorithmSigner's first,
// rsa-sha2-512 for an RSA AlgorithmSigner, else the signer's default) over
// the same bytes — without its reflection, and returns the signed
// certificate in the wire format. TestSignMatches holds it to SignCert.
func Sign(c *ssh.Certificate, rand io.Reader, authority ssh.Signer) ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	c.Nonce = nonce
	pub := authority.PublicKey()
	if t := pub.Type(); strings.HasSuffix(t, "-cert-v01@openssh.com") {
		return nil, fmt.Errorf("ssh: certificates cannot be used as authority (public key type %q)", t)
	}
	c.SignatureKey = pub
	data := unsigned(c)
	var sig *ssh.Signature
	var err error
	if v, ok := authority.(ssh.MultiAlgorithmSigner); ok {
		algs := v.Algorithms()
		if len(algs) == 0 {
			return nil, errors.New("the provided authority has no signature algorithm")
		}
		sig, err = v.SignWithAlgorithm(rand, data, algs[0])
	} else if v, ok := authority.(ssh.AlgorithmSigner); ok && pub.Type() == ssh.KeyAlgoRSA {
		sig, err = v.SignWithAlgorithm(rand, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = authority.Sign(rand, data)
	}
	if err != nil {
		return nil, err
	}
	c.Signature = sig
	return appendSignature(data, sig), nil
}

// unsigned returns c in the wire format up to its signature: the bytes a
// CA signs.
func unsigned(c *ssh.Certificate) []byte {
	key := c.Key.Marshal()
	// The certified key's fields follow the nonce without the key's own
	// algorithm name (its first string).
	if len(key) >= 4 {
		if n := binary.BigEndian.Uint32(key); uint64(n) <= uint64(len(key)-4) {
			key = key[4+n:]
		}
	}
	sigKey := c.SignatureKey.Marshal()
	b := make([]byte, 0, 384+len(key)+len(sigKey)+len(c.KeyId)+16*len(c.ValidPrincipals))
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
	return b
}

// appendSignature appends the signature field (empty for nil) to b.
func appendSignature(b []byte, s *ssh.Signature) []byte {
	if s == nil {
		return binary.BigEndian.AppendUint32(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(8+len(s.Format)+len(s.Blob)+len(s.Rest)))
	b = appendString(b, s.Format)
	b = appendBytes(b, s.Blob)
	return append(b, s.Rest...)
}

// Line returns c as an authorized_keys line without the newline: what
// strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))) gives.
func Line(c *ssh.Certificate) string {
	return LineOf(c, Marshal(c))
}

// LineOf is Line given c's wire format (from Marshal or Sign).
func LineOf(c *ssh.Certificate, wire []byte) string {
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
