package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/krl"
)

func newInspectCommand() *command {
	var asJSON bool
	return &command{
		name:    "inspect",
		summary: "describe a certificate (like ssh-keygen -L) or a KRL (every section)",
		usage:   "[--json] FILE",
		example: `  sshca inspect ~/.ssh/id_ed25519-cert.pub
  sshca inspect --json ~/.ssh/id_ed25519-cert.pub | jq .principals
  sshca inspect /etc/ssh/sshca/revoked.krl`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print the JSON certificate object (docs/json.md) or KRL description")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			data, err := readLimited(args[0], 64<<20)
			if err != nil {
				return err
			}
			if isKRL(data) {
				return inspectKRL(e, args[0], data, asJSON)
			}
			cert, err := parseCertFile(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if asJSON {
				out := api.CertificateOf(cert, time.Now())
				out.File = args[0]
				return printJSON(e, out)
			}
			fmt.Fprint(e.stdout, describeCert(args[0], cert, time.Local))
			return nil
		},
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, limit)
	}
	return data, nil
}

// parseCertFile reads an OpenSSH certificate in authorized_keys format.
func parseCertFile(data []byte) (*ssh.Certificate, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("file is empty")
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, errors.New("not an OpenSSH certificate or KRL")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("file holds more than one key")
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("this is a plain %s public key, not a certificate", pub.Type())
	}
	return cert, nil
}

// sshKeyTypeName is ssh-keygen's short key type name ("ED25519-CERT", "RSA").
func sshKeyTypeName(pub ssh.PublicKey) string {
	t := pub.Type()
	cert := false
	if c, ok := pub.(*ssh.Certificate); ok {
		cert = true
		t = c.Key.Type()
	}
	var name string
	switch t {
	case ssh.KeyAlgoED25519:
		name = "ED25519"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		name = "ECDSA"
	case ssh.KeyAlgoRSA:
		name = "RSA"
	case ssh.KeyAlgoSKECDSA256:
		name = "ECDSA-SK"
	case ssh.KeyAlgoSKED25519:
		name = "ED25519-SK"
	//lint:ignore SA1019 DSA keys are named, never accepted
	case ssh.KeyAlgoDSA:
		name = "DSA"
	default:
		name = strings.ToUpper(t)
	}
	if cert {
		name += "-CERT"
	}
	return name
}

func certTypeName(t uint32) string { return api.CertTypeName(t) }

// formatValidity renders the validity window as ssh-keygen -L does.
func formatValidity(after, before uint64, loc *time.Location) string {
	f := func(v uint64) string {
		return time.Unix(int64(v), 0).In(loc).Format("2006-01-02T15:04:05")
	}
	switch {
	case after == 0 && before == ssh.CertTimeInfinity:
		return "forever"
	case after == 0:
		return "before " + f(before)
	case before == ssh.CertTimeInfinity:
		return "after " + f(after)
	}
	return "from " + f(after) + " to " + f(before)
}

// safeText escapes control characters and invalid UTF-8, so that a hostile
// key ID or principal cannot drive the terminal that shows it.
func safeText(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// describeCert renders a certificate exactly as ssh-keygen -L prints it.
func describeCert(name string, c *ssh.Certificate, loc *time.Location) string {
	var b strings.Builder
	const in = "        "
	fmt.Fprintf(&b, "%s:\n", name)
	fmt.Fprintf(&b, "%sType: %s %s certificate\n", in, c.Type(), certTypeName(c.CertType))
	fmt.Fprintf(&b, "%sPublic key: %s %s\n", in, sshKeyTypeName(c), ssh.FingerprintSHA256(c.Key))
	sigAlg := ""
	if c.Signature != nil {
		sigAlg = c.Signature.Format
	}
	fmt.Fprintf(&b, "%sSigning CA: %s %s (using %s)\n", in, sshKeyTypeName(c.SignatureKey), ssh.FingerprintSHA256(c.SignatureKey), sigAlg)
	fmt.Fprintf(&b, "%sKey ID: \"%s\"\n", in, safeText(c.KeyId))
	fmt.Fprintf(&b, "%sSerial: %d\n", in, c.Serial)
	fmt.Fprintf(&b, "%sValid: %s\n", in, formatValidity(c.ValidAfter, c.ValidBefore, loc))
	if len(c.ValidPrincipals) == 0 {
		fmt.Fprintf(&b, "%sPrincipals: (none)\n", in)
	} else {
		fmt.Fprintf(&b, "%sPrincipals: \n", in)
		for _, p := range c.ValidPrincipals {
			fmt.Fprintf(&b, "%s%s%s\n", in, in, safeText(p))
		}
	}
	writeOpts := func(title string, m map[string]string) {
		if len(m) == 0 {
			fmt.Fprintf(&b, "%s%s: (none)\n", in, title)
			return
		}
		fmt.Fprintf(&b, "%s%s: \n", in, title)
		for _, k := range sortedKeys(m) {
			if v := m[k]; v != "" {
				fmt.Fprintf(&b, "%s%s%s %s\n", in, in, safeText(k), safeText(v))
			} else {
				fmt.Fprintf(&b, "%s%s%s\n", in, in, safeText(k))
			}
		}
	}
	writeOpts("Critical Options", c.CriticalOptions)
	writeOpts("Extensions", c.Extensions)
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func inspectKRL(e *env, name string, data []byte, asJSON bool) error {
	k, err := krl.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if asJSON {
		return printJSON(e, k.Describe())
	}
	fmt.Fprintf(e.stdout, "%s: OpenSSH KRL, %d bytes\n", name, len(data))
	return k.Dump(e.stdout)
}
