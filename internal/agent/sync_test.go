package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// testKeys are the keys the trusted-CA tests put in service answers.
type testKeys struct {
	ca        ssh.Signer    // the CA that signs the KRL
	ecdsa     ssh.PublicKey // a second, valid CA key
	rsa2048   ssh.PublicKey
	rsa1024   ssh.PublicKey
	skEd25519 ssh.PublicKey
	cert      *ssh.Certificate // a user certificate signed by ca
}

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	seed := sha256.Sum256([]byte("agent test CA"))
	ca, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &testKeys{ca: ca, ecdsa: mustPub(t, &ec.PublicKey)}
	for _, bits := range []int{2048, 1024} {
		rk, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		if bits == 2048 {
			k.rsa2048 = mustPub(t, &rk.PublicKey)
		} else {
			k.rsa1024 = mustPub(t, &rk.PublicKey)
		}
	}
	// A FIDO key's public half: type, key, application (PROTOCOL.u2f).
	skPub, _, _ := ed25519.GenerateKey(rand.Reader)
	sk, err := ssh.ParsePublicKey(ssh.Marshal(struct {
		Type, Key, App string
	}{ssh.KeyAlgoSKED25519, string(skPub), "ssh:"}))
	if err != nil {
		t.Fatal(err)
	}
	k.skEd25519 = sk
	userPub, _, _ := ed25519.GenerateKey(rand.Reader)
	cert := &ssh.Certificate{Key: mustPub(t, userPub), CertType: ssh.UserCert, KeyId: "alice",
		ValidPrincipals: []string{"role-deploy"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	k.cert = cert
	return k
}

func mustPub(t *testing.T, key any) ssh.PublicKey {
	t.Helper()
	p, err := ssh.NewPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// line is k in authorized_keys form without the newline.
func line(k ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
}

// installed is what the agent writes for keys.
func installed(keys ...ssh.PublicKey) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(line(k) + " sshca-user-ca\n")
	}
	return b.String()
}

// goodService answers like a healthy sshca serve: the CA key (with the
// service's comment), a KRL signed by it, and two accounts.
func goodService(t *testing.T, ca ssh.Signer) fakeService {
	t.Helper()
	k, err := (&krl.KRL{Version: 7}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sshsig.Sign(ca, sshsig.Namespace, bytes.NewReader(k))
	if err != nil {
		t.Fatal(err)
	}
	return fakeService{
		"/v1/ca/user":  []byte(line(ca.PublicKey()) + " sshca-user-ca-1\n"),
		"/v1/krl":      k,
		"/v1/krl.sig":  sig,
		"/v1/accounts": []byte(`{"deploy":["role-deploy","ci"],"root":["role-admin"]}`),
	}
}

// testConfig syncs dir against svc at a clock that moves one minute per
// sync.
func testConfig(dir string, svc fakeService) Config {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return Config{Client: &client.Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: svc}}, Dir: dir,
		Now: func() time.Time { now = now.Add(time.Minute); return now }}
}

// readTree returns every file under dir but the agent's state, by path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == stateFile {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestSyncTrustedCAKeys is the lock-out attack of issue 18: a service (or
// whoever answers in its place) sends a CA key list with a line sshd cannot
// read as a plain key. The agent must refuse it, name the problem, keep
// the installed file byte for byte and record the failure; good lists are
// installed re-serialised, never as sent.
func TestSyncTrustedCAKeys(t *testing.T) {
	k := newTestKeys(t)
	caLine := line(k.ca.PublicKey())
	caBlob := k.ca.PublicKey().Marshal()
	certBlob := b64(k.cert.Marshal())
	// An RSA key whose modulus carries a superfluous leading zero byte:
	// it parses, but is not the encoding the key marshals to.
	rsaWire := struct {
		Type string
		E    *big.Int
		N    []byte
	}{}
	if err := ssh.Unmarshal(k.rsa2048.Marshal(), &rsaWire); err != nil {
		t.Fatal(err)
	}
	padded := ssh.Marshal(struct {
		Type string
		E    *big.Int
		N    []byte
	}{rsaWire.Type, rsaWire.E, append([]byte{0}, rsaWire.N...)})
	dsa := ssh.Marshal(struct {
		Type       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", big.NewInt(23), big.NewInt(11), big.NewInt(4), big.NewInt(8)})
	var many strings.Builder
	for i := range maxTrustedCAKeys + 1 {
		seed := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
		many.WriteString(line(mustPub(t, ed25519.NewKeyFromSeed(seed[:]).Public())) + "\n")
	}

	cases := []struct {
		name        string
		answer      string
		wantFile    string // ok: the installed file
		wantErr     string // fail: in the returned error
		wantRefused string // fail: in Result.Refused ("" when the client cannot read the answer at all)
	}{
		{name: "ok/service-form", answer: caLine + " sshca-user-ca-1\n", wantFile: installed(k.ca.PublicKey())},
		{name: "ok/no-comment-no-final-newline", answer: caLine, wantFile: installed(k.ca.PublicKey())},
		{name: "ok/tab-separated", answer: strings.Replace(caLine, " ", "\t", 1) + "\tc\n", wantFile: installed(k.ca.PublicKey())},
		{
			name:     "ok/rotation-every-ca-type",
			answer:   line(k.ecdsa) + " next\n" + caLine + " active\n" + line(k.rsa2048) + " x\n" + line(k.skEd25519) + " sk\n",
			wantFile: installed(k.ecdsa, k.ca.PublicKey(), k.rsa2048, k.skEd25519),
		},
		{
			name:        "fail/options-restrict",
			answer:      "restrict " + caLine + " sshca-user-ca-1\n",
			wantErr:     `line 1: options "restrict" before the key`,
			wantRefused: `trusted_user_ca_keys: line 1: options "restrict" before the key`,
		},
		{
			name:        "fail/options-cert-authority",
			answer:      "cert-authority " + caLine + "\n",
			wantErr:     `options "cert-authority" before the key`,
			wantRefused: `options "cert-authority" before the key`,
		},
		{
			name:        "fail/options-quoted",
			answer:      line(k.ecdsa) + "\n" + `from="10.0.0.0/8",principals="a b" ` + caLine + "\n",
			wantErr:     `line 2: options "from=\"10.0.0.0/8\",principals=\"a b\"" before the key`,
			wantRefused: "line 2: options",
		},
		{
			name:        "fail/junk-line",
			answer:      "this is not a key\n" + caLine + "\n",
			wantErr:     `line 1: not a public key: "this is not a key"`,
			wantRefused: "line 1: not a public key",
		},
		{
			name:        "fail/junk-after-the-key",
			answer:      caLine + "\nthis is not a key\n",
			wantRefused: "line 2: not a public key",
		},
		{
			name:        "fail/only-junk",
			answer:      "<html>502 Bad Gateway</html>\n",
			wantRefused: "line 1: not a public key",
		},
		{
			name:        "fail/certificate-line",
			answer:      caLine + "\n" + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.cert))) + "\n",
			wantErr:     "line 2: a certificate in the list, not a plain key (ssh-ed25519-cert-v01@openssh.com)",
			wantRefused: "a certificate in the list",
		},
		{
			name:        "fail/certificate-under-a-plain-type",
			answer:      "ssh-ed25519 " + certBlob + "\n" + caLine + "\n",
			wantErr:     "line 1: a certificate in the list, not a plain key",
			wantRefused: "a certificate in the list",
		},
		{
			name:        "fail/dsa",
			answer:      "ssh-dss " + b64(dsa) + "\n" + caLine + "\n",
			wantErr:     "line 1: a DSA key; sshd does not accept DSA CAs",
			wantRefused: "DSA",
		},
		{
			name:        "fail/rsa-1024",
			answer:      line(k.rsa1024) + "\n" + caLine + "\n",
			wantErr:     "line 1: an RSA key of 1024 bits; a CA key has 2048 to 16384",
			wantRefused: "1024 bits",
		},
		{
			name:        "fail/unknown-type",
			answer:      "ssh-foo " + b64(caBlob) + "\n" + caLine + "\n",
			wantErr:     `line 1: unknown key type "ssh-foo"`,
			wantRefused: "unknown key type",
		},
		{
			name:        "fail/type-mismatch",
			answer:      "ecdsa-sha2-nistp256 " + b64(caBlob) + "\n" + line(k.ecdsa) + "\n",
			wantErr:     "line 1: the line says ecdsa-sha2-nistp256 but the key is ssh-ed25519",
			wantRefused: "the line says",
		},
		{
			name:        "fail/trailing-junk-in-the-key",
			answer:      "ssh-ed25519 " + b64(append(bytes.Clone(caBlob), "junk"...)) + "\n" + line(k.ecdsa) + "\n",
			wantErr:     "line 1: the ssh-ed25519 key does not parse",
			wantRefused: "does not parse",
		},
		{
			name:        "fail/trailing-text-after-comment",
			answer:      caLine + " sshca-user-ca-1 and more\n",
			wantErr:     `line 1: text after the key and its comment: "and more"`,
			wantRefused: "text after the key",
		},
		{
			name:        "fail/non-canonical-rsa",
			answer:      "ssh-rsa " + b64(padded) + "\n",
			wantErr:     "line 1: the ssh-rsa key is not canonically encoded",
			wantRefused: "not canonically encoded",
		},
		{
			name:        "fail/duplicate",
			answer:      caLine + " one\n" + caLine + " two\n",
			wantErr:     "line 2: duplicate of line 1 (" + ssh.FingerprintSHA256(k.ca.PublicKey()) + ")",
			wantRefused: "duplicate of line 1",
		},
		{
			name:        "fail/crlf",
			answer:      caLine + "\r\n",
			wantErr:     "line 1: byte 0x0d",
			wantRefused: "byte 0x0d",
		},
		{
			name:        "fail/blank-line-between-keys",
			answer:      caLine + "\n\n" + line(k.ecdsa) + "\n",
			wantErr:     "line 2: an empty line",
			wantRefused: "an empty line",
		},
		{
			name:        "fail/comment-line",
			answer:      "# keys\n" + caLine + "\n",
			wantErr:     `line 1: a comment line "# keys"`,
			wantRefused: "a comment line",
		},
		{
			name:        "fail/nul-byte",
			answer:      caLine + " c\x00mment\n",
			wantErr:     "line 1: byte 0x00",
			wantRefused: "byte 0x00",
		},
		{
			name:        "fail/too-many-keys",
			answer:      many.String(),
			wantErr:     fmt.Sprintf("more than %d keys", maxTrustedCAKeys),
			wantRefused: "more than",
		},
		{
			name:        "fail/empty",
			answer:      "",
			wantErr:     "trusted CA keys: refused an empty list; keeping the installed one",
			wantRefused: "the service published no keys",
		},
		{
			name:        "fail/whitespace-only",
			answer:      " \n\n\t\n",
			wantErr:     "refused an empty list",
			wantRefused: "the service published no keys",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sshca")
			svc := goodService(t, k.ca)
			c := testConfig(dir, svc)
			if _, err := Sync(t.Context(), c); err != nil {
				t.Fatalf("first sync against good answers: %v", err)
			}
			before, st0 := readTree(t, dir), LoadState(dir)
			if got, want := before[TrustedCAFile], installed(k.ca.PublicKey()); got != want {
				t.Fatalf("first sync installed %q, want %q", got, want)
			}

			svc["/v1/ca/user"] = []byte(tc.answer)
			res, err := Sync(t.Context(), c)
			after, st := readTree(t, dir), LoadState(dir)
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil {
					t.Fatalf("sync: %v (refused %q)", err, res.Refused)
				}
				if d := cmp.Diff(tc.wantFile, after[TrustedCAFile]); d != "" {
					t.Errorf("installed file (-want +got):\n%s", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantRefused != "" && !strings.Contains(strings.Join(res.Refused, "\n"), tc.wantRefused) {
				t.Errorf("refused %q, want an entry containing %q", res.Refused, tc.wantRefused)
			}
			if d := cmp.Diff(before, after); d != "" {
				t.Errorf("installed files changed (-before +after):\n%s", d)
			}
			if st.LastError == "" || !st.LastSuccess.Equal(st0.LastSuccess) || !st.LastAttempt.After(st0.LastAttempt) {
				t.Errorf("state does not show the refused sync as stale: %+v", st)
			}
			if st.KRLVersion != 7 || cmp.Diff(st0.CAKeys, st.CAKeys) != "" {
				t.Errorf("state changed what it says is installed: %+v", st)
			}
		})
	}
}

// TestSyncPrincipals is the same attack on the principals files: an
// account map with a principal sshd would read as options, a comment or
// two lines, or an account name that is a path. The refused account keeps
// its installed file byte for byte; the error names the account and the
// problem.
func TestSyncPrincipals(t *testing.T) {
	seed := sha256.Sum256([]byte("agent test CA"))
	ca, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	const (
		deploy0 = principalsHeader + "role-deploy\nci\n"
		root0   = principalsHeader + "role-admin\n"
	)
	cases := []struct {
		name        string
		answer      string
		want        map[string]string // the principals files afterwards, by account
		wantErr     string            // fail: in the returned error
		wantRefused string            // fail: in Result.Refused
	}{
		{
			name:   "ok/unchanged",
			answer: `{"deploy":["role-deploy","ci"],"root":["role-admin"]}`,
			want:   map[string]string{"deploy": deploy0, "root": root0},
		},
		{
			name:   "ok/duplicates-dropped-order-kept",
			answer: `{"deploy":["ci","role-deploy","ci"],"root":["role-admin"]}`,
			want:   map[string]string{"deploy": principalsHeader + "ci\nrole-deploy\n", "root": root0},
		},
		{
			name:   "ok/utf8-principal",
			answer: `{"deploy":["jürgen"],"root":["role-admin"]}`,
			want:   map[string]string{"deploy": principalsHeader + "jürgen\n", "root": root0},
		},
		{
			name:   "ok/account-removed",
			answer: `{"root":["role-admin"],"www-data":["web"]}`,
			want:   map[string]string{"root": root0, "www-data": principalsHeader + "web\n"},
		},
		{
			name:        "fail/principal-with-options",
			answer:      `{"deploy":["role-deploy","command=\"/bin/sh\" role-x"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `principals: refused principals/deploy (invalid principal "command=\"/bin/sh\" role-x": contains whitespace); keeping the installed file`,
			wantRefused: `principals/deploy: invalid principal`,
		},
		{
			name:        "fail/principal-newline",
			answer:      `{"deploy":["role-deploy","x\nrole-admin"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid principal "x\nrole-admin": contains a control character`,
			wantRefused: `principals/deploy: invalid principal`,
		},
		{
			name:        "fail/principal-hash",
			answer:      `{"deploy":["role-deploy"],"root":["role-admin#ops"]}`,
			want:        map[string]string{"deploy": principalsHeader + "role-deploy\n", "root": root0},
			wantErr:     `refused principals/root (invalid principal "role-admin#ops": contains '#'`,
			wantRefused: `principals/root: invalid principal`,
		},
		{
			name:        "fail/principal-comma",
			answer:      `{"deploy":["a,b"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "contains a comma",
			wantRefused: "principals/deploy: invalid principal",
		},
		{
			name:        "fail/principal-wildcard",
			answer:      `{"deploy":["*"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "contains a wildcard",
			wantRefused: "principals/deploy: invalid principal",
		},
		{
			name:        "fail/principal-invisible",
			answer:      `{"deploy":["role\u200bdeploy"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "invisible formatting character",
			wantRefused: "principals/deploy: invalid principal",
		},
		{
			name:        "fail/principal-empty",
			answer:      `{"deploy":["role-deploy",""],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid principal "": empty`,
			wantRefused: "principals/deploy: invalid principal",
		},
		{
			name:        "fail/principal-too-long",
			answer:      `{"deploy":["` + strings.Repeat("a", 256) + `"],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "longer than 255 bytes",
			wantRefused: "principals/deploy: invalid principal",
		},
		{
			name:        "fail/no-principals",
			answer:      `{"deploy":[],"root":["role-admin"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "refused principals/deploy (no principals)",
			wantRefused: "principals/deploy: no principals",
		},
		{
			name:        "fail/account-path-traversal",
			answer:      `{"deploy":["role-deploy","ci"],"root":["role-admin"],"../../etc/cron.d/x":["a"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid account name "../../etc/cron.d/x": starts with '.'`,
			wantRefused: "principals: invalid account name",
		},
		{
			name:        "fail/account-slash",
			answer:      `{"deploy":["role-deploy","ci"],"root":["role-admin"],"a/b":["a"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid account name "a/b": byte '/'`,
			wantRefused: "principals: invalid account name",
		},
		{
			name:        "fail/account-dot-dot",
			answer:      `{"deploy":["role-deploy","ci"],"root":["role-admin"],"..":["a"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid account name "..": starts with '.'`,
			wantRefused: "principals: invalid account name",
		},
		{
			name:        "fail/account-dash",
			answer:      `{"deploy":["role-deploy","ci"],"root":["role-admin"],"-rf":["a"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     `invalid account name "-rf": starts with '-'`,
			wantRefused: "principals: invalid account name",
		},
		{
			name:        "fail/account-too-long",
			answer:      `{"deploy":["role-deploy","ci"],"root":["role-admin"],"` + strings.Repeat("a", 33) + `":["a"]}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "longer than 32 bytes",
			wantRefused: "principals: invalid account name",
		},
		{
			name:        "fail/empty-map",
			answer:      `{}`,
			want:        map[string]string{"deploy": deploy0, "root": root0},
			wantErr:     "principals: refused an empty account list",
			wantRefused: "the service listed no accounts",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sshca")
			svc := goodService(t, ca)
			c := testConfig(dir, svc)
			if _, err := Sync(t.Context(), c); err != nil {
				t.Fatalf("first sync against good answers: %v", err)
			}
			st0 := LoadState(dir)
			svc["/v1/accounts"] = []byte(tc.answer)
			res, err := Sync(t.Context(), c)
			got := map[string]string{}
			for name, data := range readTree(t, dir) {
				if acct, ok := strings.CutPrefix(name, PrincipalsDir+"/"); ok {
					got[acct] = data
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("principals files (-want +got):\n%s", d)
			}
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil {
					t.Fatalf("sync: %v (refused %q)", err, res.Refused)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(strings.Join(res.Refused, "\n"), tc.wantRefused) {
				t.Errorf("refused %q, want an entry containing %q", res.Refused, tc.wantRefused)
			}
			if st := LoadState(dir); st.LastError == "" || !st.LastSuccess.Equal(st0.LastSuccess) {
				t.Errorf("state does not show the refused sync as stale: %+v", st)
			}
		})
	}
}
