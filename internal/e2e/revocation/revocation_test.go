// Package revocation tests sshca's revocation end to end: the CLI records
// revocations, writes KRLs and signatures, and real OpenSSH (sshd,
// ssh-keygen -Q, ssh-keygen -Y verify) enforces and verifies them.
package revocation

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

const policy = `backdate: 5m
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
`

// newHome creates a CA home with keyType CA keys and the test policy.
func newHome(t *testing.T, keyType string) *e2etest.Home {
	t.Helper()
	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca")}
	h.Must("init", "--key-type", keyType)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSSHDEnforcesKRL revokes by serial, key ID, subject key and CA key and
// checks that a real sshd with RevokedKeys pointing at sshca's KRL refuses
// exactly the revoked certificates: an sshd of each OpenSSH release reads
// the same KRL, each judged with its own ssh and ssh-keygen -Q.
func TestSSHDEnforcesKRL(t *testing.T) {
	releases := opensshtest.All(t)
	h := newHome(t, "ed25519")
	dir := t.TempDir()
	krlPath := filepath.Join(dir, "revoked.krl")
	h.Must("krl", "--out", krlPath) // an empty, valid KRL before sshd starts

	keys := map[string]string{}
	for _, name := range []string{"serial", "keyid", "subject", "fresh"} {
		priv, _ := sshdtest.GenerateKey(t, dir, "ed25519")
		p := filepath.Join(dir, name)
		for _, suffix := range []string{"", ".pub"} {
			if err := os.Rename(priv+suffix, p+suffix); err != nil {
				t.Fatal(err)
			}
		}
		h.Must("sign", "user", "--role", "deploy", "--id", "kid-"+name, "--ttl", "30m", p+".pub")
		keys[name] = p
	}
	var srvs []*sshdtest.Server
	for _, rel := range releases {
		srvs = append(srvs, sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: []string{h.Must("ca", "show", "--type", "user")},
			Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
			RevokedKeysFile:   krlPath,
		}))
	}
	// each logs in with name's certificate to every sshd and checks each
	// result.
	each := func(name string, check func(rel *opensshtest.Flavour, r sshdtest.Result)) {
		t.Helper()
		for _, srv := range srvs {
			check(srv.OpenSSH, srv.Login(t, sshdtest.LoginOptions{IdentityFile: keys[name]}))
		}
	}
	for name := range keys {
		each(name, func(rel *opensshtest.Flavour, r sshdtest.Result) {
			if !r.OK {
				t.Fatalf("%s: %s: login before revocation failed: %s\n%s", rel, name, r.Stderr, r.ServerLog)
			}
		})
	}

	serial := serialOf(t, keys["serial"]+"-cert.pub")
	h.Must("revoke", "--serial", serial, "--reason", "test")
	h.Must("revoke", "--key-id", "kid-keyid")
	h.Must("revoke", "--key", keys["subject"]+".pub")
	h.Must("krl", "--out", krlPath)

	for _, name := range []string{"serial", "keyid", "subject"} {
		each(name, func(rel *opensshtest.Flavour, r sshdtest.Result) {
			if r.OK {
				t.Errorf("%s: %s: revoked certificate still logs in", rel, name)
				return
			}
			if !strings.Contains(r.ServerLog, "revoked") {
				t.Errorf("%s: %s: sshd log does not say revoked:\n%s", rel, name, r.ServerLog)
			}
		})
	}
	each("fresh", func(rel *opensshtest.Flavour, r sshdtest.Result) {
		if !r.OK {
			t.Fatalf("%s: non-revoked certificate refused: %s\n%s", rel, r.Stderr, r.ServerLog)
		}
	})

	// ssh-keygen -Q of every release agrees with sshca krl check on every
	// certificate.
	for name, p := range keys {
		cert := p + "-cert.pub"
		ours, _, code := h.Run("krl", "check", "--krl", krlPath, cert)
		for _, rel := range releases {
			out, _ := exec.Command(rel.Keygen, "-Q", "-f", krlPath, cert).CombinedOutput()
			theirsRevoked := strings.Contains(string(out), "REVOKED")
			if oursRevoked := code == 1 && strings.Contains(ours, "REVOKED"); oursRevoked != theirsRevoked {
				t.Errorf("%s: %s: ssh-keygen -Q says %q, sshca krl check says %q (exit %d)", rel, name, out, ours, code)
			}
			if want := name != "fresh"; theirsRevoked != want {
				t.Errorf("%s: %s: ssh-keygen -Q revoked=%v, want %v", rel, name, theirsRevoked, want)
			}
		}
	}

	// Revoking the CA key itself refuses everything it signed.
	h.Must("revoke", "--ca-key", filepath.Join(h.Dir, "keys", "user-ca-1.pub"), "--reason", "compromised")
	h.Must("krl", "--out", krlPath)
	each("fresh", func(rel *opensshtest.Flavour, r sshdtest.Result) {
		if r.OK {
			t.Fatalf("%s: certificate of a revoked CA key still logs in", rel)
		}
	})
}

func serialOf(t *testing.T, certPath string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-L", "-f", certPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Serial: "); ok {
			return v
		}
	}
	t.Fatalf("no serial in %s", out)
	return ""
}

// TestKRLSignatures signs KRLs with every CA key type; ssh-keygen -Y verify
// accepts them and a flipped byte fails sshca krl verify.
func TestKRLSignatures(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	for _, kt := range []string{"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072", "rsa-4096"} {
		t.Run("ok/"+kt, func(t *testing.T) {
			t.Parallel()
			h := newHome(t, kt)
			h.Must("revoke", "--serial", "7", "--force")
			krlPath := filepath.Join(t.TempDir(), "revoked.krl")
			h.Must("krl", "--out", krlPath, "--sign")
			caLine := strings.TrimSpace(h.Must("ca", "show", "--type", "user"))
			allowed := filepath.Join(t.TempDir(), "allowed_signers")
			if err := os.WriteFile(allowed, []byte(`sshca namespaces="sshca-krl" `+caLine+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			verify := func() ([]byte, error) {
				cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "sshca", "-n", "sshca-krl", "-s", krlPath+".sig")
				f, err := os.Open(krlPath)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdin = f
				return cmd.CombinedOutput()
			}
			if out, err := verify(); err != nil {
				t.Fatalf("ssh-keygen -Y verify: %v: %s", err, out)
			}
			if out, errs, code := h.Run("krl", "verify", krlPath); code != 0 || !strings.Contains(out, "good signature") {
				t.Fatalf("sshca krl verify: exit %d: %s %s", code, out, errs)
			}
			if strings.HasPrefix(kt, "rsa") {
				sig, _ := os.ReadFile(krlPath + ".sig")
				if !strings.Contains(string(sig), "BEGIN SSH SIGNATURE") {
					t.Fatal("not an SSHSIG armor")
				}
			}
			data, _ := os.ReadFile(krlPath)
			data[len(data)-1] ^= 0x01
			if err := os.WriteFile(krlPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, errs, code := h.Run("krl", "verify", krlPath)
			if code != 1 || !strings.Contains(errs, "signature does not verify") {
				t.Fatalf("flipped byte: exit %d, stderr %q", code, errs)
			}
			if out, err := verify(); err == nil {
				t.Fatalf("ssh-keygen accepted a flipped KRL: %s", out)
			}
		})
	}
}

// TestSpecImport brings an ssh-keygen -k specification over and checks that
// the KRL sshca writes revokes the same certificates as ssh-keygen's own.
func TestSpecImport(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	h := newHome(t, "ed25519")
	dir := t.TempDir()
	// A foreign CA that signed certificates with ssh-keygen until now.
	oldCA, _ := sshdtest.GenerateKey(t, dir, "ed25519")
	var certs []string
	for i, serial := range []string{"5", "6", "100", "150", "9"} {
		k, _ := sshdtest.GenerateKey(t, dir, "ed25519")
		id := "old-" + string(rune('a'+i))
		if out, err := exec.Command("ssh-keygen", "-q", "-s", oldCA, "-I", id, "-n", "x", "-z", serial, k+".pub").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		certs = append(certs, k+"-cert.pub")
	}
	spec := filepath.Join(dir, "spec.txt")
	if err := os.WriteFile(spec, []byte("# revoked with ssh-keygen\nserial: 5\nserial: 100-200\nid: old-e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs.krl")
	if out, err := exec.Command("ssh-keygen", "-k", "-f", theirs, "-s", oldCA+".pub", spec).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out := h.Must("revoke", "--spec", spec, "--spec-ca", oldCA+".pub", "--reason", "migrated")
	if !strings.Contains(out, "3 new") {
		t.Fatalf("import output %q", out)
	}
	// Idempotent.
	if out := h.Must("revoke", "--spec", spec, "--spec-ca", oldCA+".pub"); !strings.Contains(out, "0 new") {
		t.Fatalf("second import output %q", out)
	}
	ours := filepath.Join(dir, "ours.krl")
	h.Must("krl", "--out", ours)
	for _, c := range certs {
		a, _ := exec.Command("ssh-keygen", "-Q", "-f", theirs, c).CombinedOutput()
		b, _ := exec.Command("ssh-keygen", "-Q", "-f", ours, c).CombinedOutput()
		if strings.Contains(string(a), "REVOKED") != strings.Contains(string(b), "REVOKED") {
			t.Errorf("%s: ssh-keygen's KRL says %q, ours says %q", c, a, b)
		}
	}
	// A bad line changes nothing.
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("serial: 1\nserial: 0\n"), 0o644)
	before := h.Must("inspect", ours)
	_, errs, code := h.Run("revoke", "--spec", bad, "--spec-ca", oldCA+".pub")
	if code == 0 || !strings.Contains(errs, "line 2") {
		t.Fatalf("bad spec: exit %d, %q", code, errs)
	}
	h.Must("krl", "--out", ours)
	if after := h.Must("inspect", ours); after != before {
		t.Fatalf("a refused import changed the KRL:\n%s\n---\n%s", before, after)
	}
}
