package agent

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// trustedCAComment is the comment on every line of the installed
// TrustedUserCAKeys file. It is fixed: nothing the service sends reaches the
// file but the parsed keys themselves.
const trustedCAComment = "sshca-user-ca"

// maxTrustedCAKeys bounds the published list, so that a hostile answer
// cannot make sshd scan a huge file on every login. Rotation publishes
// the next, active and retiring keys; the bound leaves room for far more.
const maxTrustedCAKeys = 1024

// RSA modulus bounds for a CA key: sshd refuses RSA keys above 16384 bits,
// and sshca does not trust CAs below 2048.
const (
	minRSABits = 2048
	maxRSABits = 16384
)

// caKeyTypes are the key types sshd accepts as a certificate authority
// (CASignatureAlgorithms in OpenSSH 8.2 and later: no DSA, no certificates).
var caKeyTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoSKECDSA256: true,
	ssh.KeyAlgoRSA:        true,
}

// otherKeyTypes are key types that are real but never CAs; naming them
// gives a clearer refusal than "not a key". DSA is spelled out because
// x/crypto deprecated its constants.
var otherKeyTypes = map[string]string{
	"ssh-dss":                      "a DSA key; sshd does not accept DSA CAs",
	ssh.CertAlgoRSAv01:             "a certificate in the list, not a plain key",
	"ssh-dss-cert-v01@openssh.com": "a certificate in the list, not a plain key",
	ssh.CertAlgoECDSA256v01:        "a certificate in the list, not a plain key",
	ssh.CertAlgoECDSA384v01:        "a certificate in the list, not a plain key",
	ssh.CertAlgoECDSA521v01:        "a certificate in the list, not a plain key",
	ssh.CertAlgoSKECDSA256v01:      "a certificate in the list, not a plain key",
	ssh.CertAlgoED25519v01:         "a certificate in the list, not a plain key",
	ssh.CertAlgoSKED25519v01:       "a certificate in the list, not a plain key",
}

// parseTrustedCAKeys reads the service's user CA key list strictly: every
// line is exactly "TYPE BASE64 [COMMENT]" in printable ASCII, TYPE is a key
// type sshd accepts as a CA and matches the key, the key is canonically
// encoded, RSA keys have 2048 to 16384 bits, and no key appears twice.
// Blank lines, comment lines, options, certificates and any other text are
// refused: the list is installed only as marshalTrustedCAKeys re-serialises
// it, so anything the parser would have to skip is a sign the answer is not
// the service's. An empty list yields no keys and no error; the caller
// decides what that means.
func parseTrustedCAKeys(data []byte) ([]ssh.PublicKey, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	text := strings.TrimSuffix(string(data), "\n")
	var keys []ssh.PublicKey
	seen := map[string]int{} // key blob -> line
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		pub, err := parseTrustedCALine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		blob := string(pub.Marshal())
		if first, dup := seen[blob]; dup {
			return nil, fmt.Errorf("line %d: duplicate of line %d (%s)", n, first, ssh.FingerprintSHA256(pub))
		}
		seen[blob] = n
		keys = append(keys, pub)
		if len(keys) > maxTrustedCAKeys {
			return nil, fmt.Errorf("more than %d keys", maxTrustedCAKeys)
		}
	}
	return keys, nil
}

// parseTrustedCALine parses one line of the list; see parseTrustedCAKeys.
func parseTrustedCALine(line string) (ssh.PublicKey, error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return nil, fmt.Errorf("byte 0x%02x at column %d (control or non-ASCII)", c, i+1)
		}
	}
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	switch {
	case len(fields) == 0:
		return nil, fmt.Errorf("an empty line")
	case strings.HasPrefix(fields[0], "#"):
		return nil, fmt.Errorf("a comment line %s", clip(line))
	}
	typ := fields[0]
	if !caKeyTypes[typ] {
		if why, ok := otherKeyTypes[typ]; ok {
			return nil, fmt.Errorf("%s (%s)", why, typ)
		}
		for j, f := range fields[1:] {
			if caKeyTypes[f] || otherKeyTypes[f] != "" {
				return nil, fmt.Errorf("options %s before the key", clip(strings.Join(fields[:j+1], " ")))
			}
		}
		if len(fields) >= 2 && isBase64(fields[1]) {
			return nil, fmt.Errorf("unknown key type %s", clip(typ))
		}
		return nil, fmt.Errorf("not a public key: %s", clip(line))
	}
	switch {
	case len(fields) < 2:
		return nil, fmt.Errorf("a %s line without a key", typ)
	case len(fields) > 3:
		return nil, fmt.Errorf("text after the key and its comment: %s", clip(strings.Join(fields[3:], " ")))
	}
	blob, err := base64.StdEncoding.Strict().DecodeString(fields[1])
	if err != nil {
		return nil, fmt.Errorf("the key is not base64: %v", err)
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("the %s key does not parse: %v", typ, err)
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return nil, fmt.Errorf("a certificate in the list, not a plain key (%s)", pub.Type())
	}
	if pub.Type() != typ {
		return nil, fmt.Errorf("the line says %s but the key is %s", typ, pub.Type())
	}
	if !bytes.Equal(pub.Marshal(), blob) {
		return nil, fmt.Errorf("the %s key is not canonically encoded", typ)
	}
	if typ == ssh.KeyAlgoRSA {
		ck, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, fmt.Errorf("an RSA key without its parameters")
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("an RSA key without its parameters")
		}
		if bits := rk.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("an RSA key of %d bits; a CA key has %d to %d", bits, minRSABits, maxRSABits)
		}
	}
	return pub, nil
}

// marshalTrustedCAKeys writes the TrustedUserCAKeys file: one plain key per
// line in authorized_keys form with sshca's fixed comment.
func marshalTrustedCAKeys(keys []ssh.PublicKey) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.Write(bytes.TrimSuffix(ssh.MarshalAuthorizedKey(k), []byte("\n")))
		b.WriteString(" " + trustedCAComment + "\n")
	}
	return b.Bytes()
}

// clip quotes s for an error message, cut to a length that keeps a hostile
// answer from filling logs and reports.
func clip(s string) string {
	const max = 48
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.Strict().DecodeString(s)
	return err == nil
}
