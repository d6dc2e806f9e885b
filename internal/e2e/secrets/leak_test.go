package secrets

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// window is the length of the base64 runs of a private key's PEM body that
// count as a leak: any 40 characters of it (30 bytes) are far too many to
// appear anywhere by chance.
const window = 40

// secret is something that must never be written where we look.
type secret struct {
	name string
	// exact values, each a leak when it appears whole.
	exact []string
	// runs maps every window-long run of a PEM body to itself.
	runs map[string]bool
}

// exactSecret is a secret found by exact match only (tokens, passphrases, JWTs).
func exactSecret(name string, values ...string) secret {
	return secret{name: name, exact: slices.DeleteFunc(values, func(v string) bool { return v == "" })}
}

// pemSecret is a private key file: any window-long run of its PEM body is a
// leak, except runs that also occur in public text (an OpenSSH private key
// carries its public key in the clear, and that may be printed). The
// decoded key material, when given, is also looked for in hex and base64.
func pemSecret(t *testing.T, name string, pemData []byte, public string, raw []byte) secret {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatalf("%s: not PEM", name)
	}
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	s := secret{name: name, runs: map[string]bool{}}
	for i := 0; i+window <= len(body); i++ {
		if r := body[i : i+window]; !strings.Contains(public, r) {
			s.runs[r] = true
		}
	}
	if len(s.runs) < len(body)/2 {
		t.Fatalf("%s: only %d of %d runs are private; the public text holds the key?", name, len(s.runs), len(body)-window+1)
	}
	s.exact = append(s.exact, binaryForms(raw)...)
	return s
}

// binaryForms returns how raw bytes look when printed: hex, and the part of
// a base64 stream (standard or URL alphabet) that depends on raw alone, at
// each of the three byte offsets raw may start at inside a larger blob —
// a private key re-encoded in any format shows one of them.
func binaryForms(raw []byte) []string {
	if len(raw) == 0 {
		return nil
	}
	forms := []string{hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw))}
	for k := range 3 {
		padded := append(make([]byte, k), raw...)
		first := (8*k + 5) / 6      // first character made of raw bits only
		last := 8 * len(padded) / 6 // characters before the partial last one
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			forms = append(forms, enc.EncodeToString(padded)[first:last])
		}
	}
	return forms
}

// ed25519Seed returns the seed of an unencrypted OpenSSH ed25519 private key.
func ed25519Seed(t *testing.T, pemData []byte) []byte {
	t.Helper()
	k, err := ssh.ParseRawPrivateKey(pemData)
	if err != nil {
		t.Fatalf("parse private key: %v", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k.Seed()
	case *ed25519.PrivateKey:
		return k.Seed()
	}
	t.Fatalf("private key is %T, want ed25519", k)
	return nil
}

// base64Run finds candidate runs in any text, binary included.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/=_-]{40,}`)

// leaks returns the names of the secrets that appear in text, as written or
// with line breaks (real or JSON-escaped) taken out, since a logger may wrap
// or escape what it prints.
func leaks(secrets []secret, text string) []string {
	views := []string{text, strings.NewReplacer("\r", "", "\n", "", `\n`, "", `\r`, "").Replace(text)}
	var found []string
	for _, s := range secrets {
		if slices.ContainsFunc(views, func(v string) bool { return leaksIn(s, v) }) {
			found = append(found, s.name)
		}
	}
	return found
}

func leaksIn(s secret, text string) bool {
	for _, v := range s.exact {
		if strings.Contains(text, v) {
			return true
		}
	}
	if len(s.runs) == 0 {
		return false
	}
	for _, loc := range base64Run.FindAllStringIndex(text, -1) {
		run := text[loc[0]:loc[1]]
		for i := 0; i+window <= len(run); i++ {
			if s.runs[run[i:i+window]] {
				return true
			}
		}
	}
	return false
}

// TestLeakScanner proves that the scanner finds what the hygiene test looks
// for: whole secrets, parts of PEM bodies, re-wrapped and JSON-escaped
// copies; and that it ignores the public key an OpenSSH private key carries.
func TestLeakScanner(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "scanner test")
	if err != nil {
		t.Fatal(err)
	}
	pemData := pem.EncodeToMemory(block)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubLine := string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	key := pemSecret(t, "key", pemData, pubLine, ed25519Seed(t, pemData))
	other, err := ssh.MarshalPrivateKey(priv, "the same key, encoded again")
	if err != nil {
		t.Fatal(err)
	}
	seedAt := func(k int) string { // the seed inside a blob, k bytes after a 3-byte boundary
		return base64.StdEncoding.EncodeToString(append(append(make([]byte, 3+k), priv.Seed()...), 7, 7, 7))
	}
	tok := exactSecret("token", "sshca_0123456789abcdef_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA")
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	lines := strings.Split(strings.TrimSpace(string(pemData)), "\n")
	secrets := []secret{key, tok}

	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{name: "ok/empty", text: "", want: nil},
		{name: "ok/public-key", text: "CA key: " + pubLine, want: nil},
		{name: "ok/token-id-only", text: `{"msg":"request","token":"0123456789abcdef"}`, want: nil},
		{name: "ok/short-run", text: "x " + body[100:100+window-1] + " y", want: nil},
		{name: "fail/whole-pem", text: string(pemData), want: []string{"key"}},
		{name: "fail/one-pem-line", text: "log: " + lines[2], want: []string{"key"}},
		{name: "fail/run-in-the-middle", text: "err=" + body[len(body)/2:len(body)/2+window] + "!", want: []string{"key"}},
		{name: "fail/json-escaped", text: `{"error":"` + strings.ReplaceAll(string(pemData), "\n", `\n`) + `"}`, want: []string{"key"}},
		{name: "fail/seed-hex", text: "seed " + hex.EncodeToString(priv.Seed()), want: []string{"key"}},
		{name: "fail/seed-base64-offset-0", text: seedAt(0), want: []string{"key"}},
		{name: "fail/seed-base64-offset-1", text: seedAt(1), want: []string{"key"}},
		{name: "fail/seed-base64-offset-2", text: seedAt(2), want: []string{"key"}},
		{name: "fail/seed-base64url", text: base64.RawURLEncoding.EncodeToString(priv), want: []string{"key"}},
		{name: "fail/re-encoded-pem", text: string(pem.EncodeToMemory(other)), want: []string{"key"}},
		{name: "fail/binary-around", text: "\x00\x01" + body[7:7+window] + "\x00", want: []string{"key"}},
		{name: "fail/token", text: "Authorization: Bearer sshca_0123456789abcdef_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", want: []string{"token"}},
		{name: "fail/both", text: string(pemData) + "sshca_0123456789abcdef_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", want: []string{"key", "token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := leaks(secrets, tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("leaks = %v, want %v", got, tc.want)
			}
		})
	}
}
