package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// TestFaults is acceptance 3 (all but the kill test): the service is down,
// or answers with a corrupt KRL, a KRL with a bad signature, an older KRL,
// an empty trust list, a trust list or principals sshd cannot read as sent
// (issue 18: options, junk lines, certificates). Each time sync fails, refuses what it was given,
// leaves every installed file byte for byte as it was, and sshd keeps
// working: a good certificate still logs in, a revoked one is still
// refused, by the sshd of every OpenSSH release.
func TestFaults(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	h := svc.newHost("1h", "127.0.0.1")
	h.mustSync()
	sshds := svc.startSSHDSet(h, releases)
	alice, _ := svc.userCert("alice")
	mallory, malloryCert := svc.userCert("mallory")

	c, err := client.New(svc.URL, svc.FP)
	if err != nil {
		t.Fatal(err)
	}
	oldKRL, oldSig, _, _, err := c.KRL(t.Context(), "user", "")
	if err != nil {
		t.Fatal(err)
	}
	svc.Must("revoke", "--serial", itoa(malloryCert.Serial), "--reason", "left the company")
	h.mustSync()
	curKRL, curSig, _, _, err := c.KRL(t.Context(), "user", "")
	if err != nil {
		t.Fatal(err)
	}
	_, caList, err := c.CAKeys(t.Context(), "user")
	if err != nil {
		t.Fatal(err)
	}
	hostCertLine := ssh.MarshalAuthorizedKey(h.Cert())
	user := e2etest.CurrentUser(t)
	cur, err := krl.Parse(curKRL)
	if err != nil || cur.Version == 0 {
		t.Fatalf("current KRL: version %v, %v", cur, err)
	}
	sshds.mustLogin(t, alice)
	sshds.mustRefuse(t, mallory, "revoked")

	// The service's CA key signs a KRL that does not parse; an attacker's
	// key signs an empty KRL of a higher version that would unrevoke
	// mallory.
	caKey := loadSigner(t, filepath.Join(svc.Dir, "keys", "user-ca-1"))
	truncated := curKRL[:len(curKRL)-3]
	if _, err := krl.Parse(truncated); err == nil {
		t.Fatal("the truncated KRL parses; the corrupt-KRL case would prove nothing")
	}
	forged, err := (&krl.KRL{Version: cur.Version + 1000, Comment: "nothing is revoked"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	attacker, _ := ssh.NewSignerFromKey(attackerPriv)

	p := newProxy(t, svc)
	t.Run("ok/untampered-proxy", func(t *testing.T) {
		// The control: through the proxy, unchanged answers sync fine.
		if out, errs, code := h.sync(p.URL, p.FP); code != 0 {
			t.Fatalf("sync through the proxy: exit %d\n%s%s", code, out, errs)
		}
	})

	cases := []struct {
		name        string
		override    map[string]canned
		wantRefused string // on stdout; "" when the answer cannot even be read
		wantErr     string // on stderr
		// lockout, when set, is the control: the tampered answer as
		// sent, installed by hand, refuses alice's login with sshd
		// logging why (the proof that the case is a lock-out).
		lockout *lockout
	}{
		{
			name: "fail/corrupt-krl",
			override: map[string]canned{
				"/v1/krl":     {200, truncated},
				"/v1/krl.sig": {200, sign(t, caKey, truncated)},
			},
			wantRefused: "refused revoked.krl: does not parse",
			wantErr:     "KRL: refused",
		},
		{
			name: "fail/krl-signed-by-another-key",
			override: map[string]canned{
				"/v1/krl":     {200, forged},
				"/v1/krl.sig": {200, sign(t, attacker, forged)},
			},
			wantRefused: "refused revoked.krl: signature does not verify",
			wantErr:     "KRL: refused",
		},
		{
			name: "fail/krl-with-the-signature-of-another-krl",
			override: map[string]canned{
				"/v1/krl":     {200, forged},
				"/v1/krl.sig": {200, curSig},
			},
			wantRefused: "refused revoked.krl: signature does not verify",
			wantErr:     "KRL: refused",
		},
		{
			// The service's own KRL (served afresh, not "not modified")
			// with a damaged signature.
			name: "fail/corrupt-signature",
			override: map[string]canned{
				"/v1/krl":     {200, curKRL},
				"/v1/krl.sig": {200, bytes.Replace(curSig, []byte("SIGNATURE-----\n"), []byte("SIGNATURE-----\nAAAA"), 1)},
			},
			wantRefused: "refused revoked.krl: signature does not verify",
			wantErr:     "KRL: refused",
		},
		{
			// A replay of the service's own, validly signed, older KRL.
			name: "fail/older-krl-version",
			override: map[string]canned{
				"/v1/krl":     {200, oldKRL},
				"/v1/krl.sig": {200, oldSig},
			},
			wantRefused: "refused revoked.krl: version 0 is older than the installed " + itoa(cur.Version),
			wantErr:     "KRL: refused",
		},
		{
			name:        "fail/empty-trust-list",
			override:    map[string]canned{"/v1/ca/user": {200, nil}},
			wantRefused: "refused trusted_user_ca_keys: the service published no keys",
			wantErr:     "refused an empty list",
		},
		{
			// Issue 18: the list with an options prefix. Installed as
			// sent, sshd rejects the whole TrustedUserCAKeys file and
			// every certificate login fails.
			name:        "fail/trust-list-with-options",
			override:    map[string]canned{"/v1/ca/user": {200, append([]byte("restrict "), caList...)}},
			wantRefused: `refused trusted_user_ca_keys: line 1: options "restrict" before the key`,
			wantErr:     "trusted CA keys: refused the list",
			lockout: &lockout{file: "trusted_user_ca_keys", data: append([]byte("restrict "), caList...),
				why: "ssh2: ED25519-CERT"}, // sshd says no more than that the certificate failed
		},
		{
			name:        "fail/trust-list-with-a-junk-line",
			override:    map[string]canned{"/v1/ca/user": {200, append([]byte("<html>cached error page</html>\n"), caList...)}},
			wantRefused: "refused trusted_user_ca_keys: line 1: not a public key",
			wantErr:     "trusted CA keys: refused the list",
		},
		{
			name:        "fail/trust-list-with-a-certificate",
			override:    map[string]canned{"/v1/ca/user": {200, append(bytes.Clone(hostCertLine), caList...)}},
			wantRefused: "refused trusted_user_ca_keys: line 1: a certificate in the list, not a plain key",
			wantErr:     "trusted CA keys: refused the list",
		},
		{
			// A principals line with options: installed as sent, sshd
			// would let alice in only from 10.0.0.1.
			name: "fail/principal-with-options",
			override: map[string]canned{"/v1/accounts": {200,
				[]byte(`{"` + user + `":["from=\"10.0.0.1\" role-deploy"],"deploy":["role-deploy","ci"]}`)}},
			wantRefused: "refused principals/" + user + ": invalid principal",
			wantErr:     "principals: refused principals/" + user,
			lockout: &lockout{file: "principals/" + user, data: []byte(`from="10.0.0.1" role-deploy` + "\n"),
				why: "Refused by certificate principals options"},
		},
		{
			name:     "fail/unparsable-trust-list",
			override: map[string]canned{"/v1/ca/user": {200, []byte("ssh-ed25519 AAAA-not-base64\n")}},
			wantErr:  "trusted CA keys: refused the list (line 1: the key is not base64",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if l := tc.lockout; l != nil {
				path := filepath.Join(h.Dir, l.file)
				good, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, l.data, 0o644); err != nil {
					t.Fatal(err)
				}
				sshds.mustRefuse(t, alice, l.why)
				if err := os.WriteFile(path, good, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p.set(tc.override)
			defer p.set(nil)
			before, st0 := h.snapshot(), h.state()
			out, errs, code := h.sync(p.URL, p.FP)
			if code == 0 {
				t.Fatalf("sync succeeded:\n%s", out)
			}
			if tc.wantRefused != "" && !strings.Contains(out, tc.wantRefused) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantRefused, out)
			}
			if !strings.Contains(errs, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errs)
			}
			if !strings.Contains(out, "stale: last successful sync") {
				t.Errorf("sync does not report staleness:\n%s", out)
			}
			if d := cmp.Diff(before, h.snapshot()); d != "" {
				t.Fatalf("installed files changed (-before +after):\n%s", d)
			}
			st := h.state()
			if st.LastError == "" || !st.LastSuccess.Equal(st0.LastSuccess) || st.KRLVersion != cur.Version {
				t.Errorf("state after a refused sync: %+v", st)
			}
			sshds.mustLogin(t, alice)
			sshds.mustRefuse(t, mallory, "revoked")
		})
	}

	t.Run("fail/service-down", func(t *testing.T) {
		svc.shutdown()
		before, st0 := h.snapshot(), h.state()
		time.Sleep(1100 * time.Millisecond) // so that staleness shows as at least 1s
		out, errs, code := h.sync(svc.URL, svc.FP)
		if code != 1 {
			t.Fatalf("sync with the service down: exit %d\n%s%s", code, out, errs)
		}
		if !strings.Contains(errs, "connection refused") {
			t.Errorf("stderr does not say why:\n%s", errs)
		}
		if !strings.Contains(errs, "report:") {
			t.Errorf("stderr does not say the report failed:\n%s", errs)
		}
		if !strings.Contains(out, "stale: last successful sync") || strings.Contains(out, "sync 0s ago") {
			t.Errorf("sync does not report staleness:\n%s", out)
		}
		if d := cmp.Diff(before, h.snapshot()); d != "" {
			t.Fatalf("installed files changed (-before +after):\n%s", d)
		}
		st := h.state()
		if !strings.Contains(st.LastError, "connection refused") || !st.LastSuccess.Equal(st0.LastSuccess) || !st.LastAttempt.After(st.LastSuccess) {
			t.Errorf("state does not show staleness: %+v", st)
		}
		sshds.mustLogin(t, alice)
		sshds.mustRefuse(t, mallory, "revoked")

		// A server that never synced still gets an empty, valid KRL, so
		// RevokedKeys can be switched on without locking everyone out.
		fresh := filepath.Join(t.TempDir(), "sshca")
		if _, _, code := sshca("sync", "--server", svc.URL, "--ca-fingerprint", svc.FP, "--dir", fresh); code == 0 {
			t.Fatal("first sync with the service down succeeded")
		}
		data, err := os.ReadFile(filepath.Join(fresh, "revoked.krl"))
		if err != nil {
			t.Fatal(err)
		}
		if k, err := krl.Parse(data); err != nil || len(k.Certs)+len(k.ExplicitKeys)+len(k.SHA1)+len(k.SHA256) != 0 {
			t.Fatalf("first KRL: %+v, %v", k, err)
		}
	})

	t.Run("ok/service-back", func(t *testing.T) {
		svc.restart()
		out := h.mustSync()
		if strings.Contains(out, "stale") {
			t.Errorf("sync after recovery still says stale:\n%s", out)
		}
		if st := h.state(); st.LastError != "" || st.LastSuccess.Before(st.LastAttempt) {
			t.Errorf("state after recovery: %+v", st)
		}
		sshds.mustLogin(t, alice)
	})
}

// lockout is a file of the sync directory written by hand with data, and
// what sshd logs when it then refuses a good certificate.
type lockout struct {
	file, why string
	data      []byte
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func loadSigner(t testing.TB, path string) ssh.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// sign makes an SSHSIG signature of data in the KRL namespace.
func sign(t testing.TB, s ssh.Signer, data []byte) []byte {
	t.Helper()
	sig, err := sshsig.Sign(s, sshsig.Namespace, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
