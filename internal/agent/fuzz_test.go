package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// FuzzLoadState feeds arbitrary state files to LoadState: it must never
// panic, and whatever it returns must survive a save and a reload.
func FuzzLoadState(f *testing.F) {
	for _, seed := range []string{
		`{"krl_version":5,"krl_etag":"\"abc\"","last_success":"2026-01-01T00:00:00Z","ca_keys":["SHA256:x"]}`,
		`{"krl_version":-1}`,
		`{"krl_version":18446744073709551616}`,
		`{"last_success":"yesterday"}`,
		`{"ca_keys":"SHA256:x"}`,
		`null`, `[]`, ``, `{`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := LoadState(dir)
		if err := saveState(dir, s); err != nil {
			t.Fatalf("save of a loaded state: %v", err)
		}
		again := LoadState(dir)
		if again.KRLVersion != s.KRLVersion || again.KRLETag != s.KRLETag || !again.LastSuccess.Equal(s.LastSuccess) || len(again.CAKeys) != len(s.CAKeys) {
			t.Fatalf("state changed across a save: %+v then %+v", s, again)
		}
	})
}

// fakeService answers the agent's requests from memory, without a network.
type fakeService map[string][]byte

func (s fakeService) RoundTrip(r *http.Request) (*http.Response, error) {
	body, ok := s[r.URL.Path]
	status := http.StatusOK
	if !ok {
		status, body = http.StatusNotFound, []byte(`{"error":"no such endpoint","request_id":"x"}`)
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// FuzzSync runs one sync against a service whose CA key list, KRL and
// account map are fuzzed (the KRL validly signed, so that it reaches the
// parser). Whatever the service says, the agent must not panic, must keep
// every file inside its directory, must never install an empty or
// certificate-holding CA key list, a KRL that does not parse, or a
// principals file line that sshd would read as more than one principal.
func FuzzSync(f *testing.F) {
	seed := sha256.Sum256([]byte("agent fuzz CA"))
	caSigner, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		f.Fatal(err)
	}
	caLine := ssh.MarshalAuthorizedKey(caSigner.PublicKey())
	good, err := (&krl.KRL{Version: 3}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(caLine, good, []byte(`{"deploy":["role-deploy"]}`))
	f.Add([]byte(""), good, []byte(`{}`))
	f.Add(caLine, []byte("SSHKRL\n\x00garbage"), []byte(`{"../x":["a"],"root":["a\nb","c,d",""]}`))
	f.Add(append(caLine, "ssh-ed25519-cert-v01@openssh.com AAAA x\n"...), good, []byte(`null`))
	f.Add(caLine, good, []byte(`{"deploy":"role-deploy"}`))
	f.Fuzz(func(t *testing.T, caKeys, krlData, accounts []byte) {
		sig, err := sshsig.Sign(caSigner, sshsig.Namespace, bytes.NewReader(krlData))
		if err != nil {
			t.Fatal(err)
		}
		svc := fakeService{"/v1/ca/user": caKeys, "/v1/krl": krlData, "/v1/krl.sig": sig, "/v1/accounts": accounts}
		root := t.TempDir()
		dir := filepath.Join(root, "sshca")
		c := Config{Client: &client.Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: svc}}, Dir: dir}
		_, _ = Sync(context.Background(), c)
		outside, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(outside) != 1 {
			t.Fatalf("sync wrote outside its directory: %d entries in the parent", len(outside))
		}
		if data, err := os.ReadFile(filepath.Join(dir, TrustedCAFile)); err == nil {
			if len(bytes.TrimSpace(data)) == 0 || bytes.Contains(data, []byte("-cert-v01@openssh.com")) {
				t.Fatalf("installed CA key list %q", data)
			}
			// Installed only as re-serialised: it reads back as the same keys.
			keys, err := parseTrustedCAKeys(data)
			if err != nil || !bytes.Equal(marshalTrustedCAKeys(keys), data) {
				t.Fatalf("installed CA key list %q is not in the agent's own form: %v", data, err)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, KRLFile))
		if err != nil {
			t.Fatalf("no KRL after a sync: %v", err)
		}
		if _, err := krl.Parse(data); err != nil {
			t.Fatalf("installed a KRL that does not parse: %v", err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, PrincipalsDir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, PrincipalsDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if strings.HasPrefix(line, "#") {
					continue
				}
				if line == "" || strings.ContainsAny(line, " \t\r,") {
					t.Fatalf("principals/%s has line %q", e.Name(), line)
				}
			}
		}
	})
}

// FuzzParseTrustedCAKeys feeds arbitrary CA key lists to the strict
// parser: it must never panic, and whatever it accepts must re-serialise to
// a list that OpenSSH's format reads back as the same keys, one plain CA
// key per line, and that the parser accepts again unchanged.
func FuzzParseTrustedCAKeys(f *testing.F) {
	seed := sha256.Sum256([]byte("agent fuzz CA"))
	ca, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		f.Fatal(err)
	}
	caLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.PublicKey())))
	for _, s := range []string{
		caLine + " sshca-user-ca-1\n",
		caLine,
		"restrict " + caLine + "\n",
		"cert-authority " + caLine + "\n",
		"junk\n" + caLine + "\n",
		caLine + "\n" + caLine + "\n",
		caLine + " a b\n",
		"# comment\n" + caLine + "\n",
		caLine + "\r\n",
		"ssh-ed25519-cert-v01@openssh.com AAAA x\n",
		"ssh-dss AAAAB3NzaC1kc3M=\n",
		"ssh-rsa AAAAB3NzaC1yc2E=\n",
		"", "\n", "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseTrustedCAKeys(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys %v with error %v", keys, err)
			}
			return
		}
		out := marshalTrustedCAKeys(keys)
		again, err := parseTrustedCAKeys(out)
		if err != nil || !bytes.Equal(marshalTrustedCAKeys(again), out) {
			t.Fatalf("re-serialised list %q does not read back: %v", out, err)
		}
		rest := out
		for i, k := range keys {
			pub, comment, options, r, err := ssh.ParseAuthorizedKey(rest)
			if err != nil || options != nil || comment != trustedCAComment || !bytes.Equal(pub.Marshal(), k.Marshal()) || !caKeyTypes[pub.Type()] {
				t.Fatalf("line %d of %q: %v %q %q %v", i+1, out, pub, comment, options, err)
			}
			rest = r
		}
		if len(rest) != 0 {
			t.Fatalf("text after the keys in %q", out)
		}
	})
}
