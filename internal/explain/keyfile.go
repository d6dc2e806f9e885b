package explain

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyFamily maps the key type names sshkey_type_from_name knows (sshkey.c
// keyimpls: full names, and the short names of plain types, compared
// without case) to a family and whether the name is a certificate type.
func keyFamily(name string) (family string, cert, short, ok bool) {
	switch name {
	case ssh.KeyAlgoED25519:
		return "ed25519", false, false, true
	case ssh.KeyAlgoSKED25519:
		return "ed25519-sk", false, false, true
	case ssh.KeyAlgoRSA:
		return "rsa", false, false, true
	//lint:ignore SA1019 DSA is named only to refuse it
	case ssh.KeyAlgoDSA:
		return "dsa", false, false, true
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return "ecdsa", false, false, true
	case ssh.KeyAlgoSKECDSA256:
		return "ecdsa-sk", false, false, true
	case ssh.CertAlgoED25519v01:
		return "ed25519", true, false, true
	case ssh.CertAlgoSKED25519v01:
		return "ed25519-sk", true, false, true
	case ssh.CertAlgoRSAv01:
		return "rsa", true, false, true
	//lint:ignore SA1019 DSA is named only to refuse it
	case ssh.CertAlgoDSAv01:
		return "dsa", true, false, true
	case ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01:
		return "ecdsa", true, false, true
	case ssh.CertAlgoSKECDSA256v01:
		return "ecdsa-sk", true, false, true
	}
	switch strings.ToUpper(name) {
	case "ED25519":
		return "ed25519", false, true, true
	case "ED25519-SK":
		return "ed25519-sk", false, true, true
	case "RSA":
		return "rsa", false, true, true
	case "DSA":
		return "dsa", false, true, true
	case "ECDSA":
		return "ecdsa", false, true, true
	case "ECDSA-SK":
		return "ecdsa-sk", false, true, true
	}
	return "", false, false, false
}

// errKeyLine is why a line is not a public key.
var errKeyLine = errors.New("not a public key line")

// parseKeyLine reads one public key the way sshkey_read (sshkey.c) does
// for a line of TrustedUserCAKeys or of a RevokedKeys key list: a type
// name, blanks, the base64 blob, and an optional comment; no options. The
// line has its leading blanks and line break removed.
func parseKeyLine(line string) (ssh.PublicKey, error) {
	sp := strings.IndexAny(line, " \t")
	if sp < 0 {
		return nil, fmt.Errorf("%w: no blank after the key type", errKeyLine)
	}
	typ := line[:sp]
	family, isCert, short, ok := keyFamily(typ)
	if !ok {
		return nil, fmt.Errorf("%w: unknown key type %q", errKeyLine, truncate(typ, 40))
	}
	rest := strings.TrimLeft(line[sp:], " \t")
	if rest == "" {
		return nil, fmt.Errorf("%w: no key after the type", errKeyLine)
	}
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i]
	}
	// OpenSSH's base64 decoder skips white space such as the CR of a CR LF
	// line end.
	blob, err := base64.StdEncoding.DecodeString(strings.TrimRight(rest, "\r\n"))
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", errKeyLine)
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errKeyLine, err)
	}
	// sshkey_read: the blob's type must be the type named at the start of
	// the line (for a short name, its plain type).
	pf, pcert, _, _ := keyFamily(pub.Type())
	if short {
		if pf != family || pcert {
			return nil, fmt.Errorf("%w: key type %s does not match %s", errKeyLine, pub.Type(), typ)
		}
	} else if pub.Type() != typ || pcert != isCert {
		return nil, fmt.Errorf("%w: key type %s does not match %s", errKeyLine, pub.Type(), typ)
	}
	return pub, nil
}

// keyLines iterates the lines of a key file as sshkey_in_file (authfile.c)
// does: leading blanks skipped, lines starting with '#' and empty lines
// skipped (a line holding only a CR is not empty, and is not a key
// either). fn gets the 1-based line number and the line; returning false
// stops.
func keyLines(data []byte, fn func(n int, line string) bool) {
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimLeft(raw, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if !fn(n+1, line) {
			return
		}
	}
}

// plainBlob returns the key blob with any certificate stripped, which is
// what sshkey_equal_public compares.
func plainBlob(pub ssh.PublicKey) []byte {
	if c, ok := pub.(*ssh.Certificate); ok {
		return c.Key.Marshal()
	}
	return pub.Marshal()
}

func samePlainKey(a, b ssh.PublicKey) bool { return bytes.Equal(plainBlob(a), plainBlob(b)) }

// fingerprint names a key as ssh-keygen -l does, with its type.
func fingerprint(pub ssh.PublicKey) string {
	t := pub.Type()
	if c, ok := pub.(*ssh.Certificate); ok {
		t = c.Key.Type()
	}
	return ssh.FingerprintSHA256(pub) + " (" + t + ")"
}

// rsaBits returns the size of an RSA key's modulus.
func rsaBits(pub ssh.PublicKey) (int, bool) {
	if pub.Type() != ssh.KeyAlgoRSA {
		return 0, false
	}
	cpk, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return 0, false
	}
	k, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
	if !ok {
		return 0, false
	}
	return k.N.BitLen(), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
