package frontdoor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/totp"
)

// parseCert parses the certificate printed by cert.
func parseCert(t *testing.T, out string) *ssh.Certificate {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out))
	if err != nil {
		t.Fatalf("cert output %q: %v", out, err)
	}
	c, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("cert output is a %T", k)
	}
	return c
}

// enrollTOTP enrolls local user name's TOTP secret directly in the store.
func enrollTOTP(t *testing.T, d *door, name string) []byte {
	t.Helper()
	return enrollTOTPAs(t, d, "local:"+name)
}

// enrollTOTPAs enrolls a TOTP secret for factor ID id.
func enrollTOTPAs(t *testing.T, d *door, id string) []byte {
	t.Helper()
	secret := []byte("0123456789abcdefghij")
	if err := d.h.Store.PutTOTP(t.Context(), id, secret, audit.Entry{Time: time.Now(), Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestCommands covers the commands of a local user without a second factor.
func TestCommands(t *testing.T) {
	d := startDoor(t, Limits{})
	key := testkit.NewSigner(t)
	d.addUser(t, "alice", []string{"deployers"}, key.PublicKey())
	c, err := d.dial(t, ssh.PublicKeys(key))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("ok/cert-default-role", func(t *testing.T) {
		// deploy is alice's only role without a second factor... but
		// secure and touchless are open to her too: a role must be named.
		_, stderr, code := run(t, c, "cert")
		if code != 2 || !strings.Contains(stderr, "name a role with --role: deploy, secure, touchless") {
			t.Fatalf("cert without role: %d %q", code, stderr)
		}
	})
	t.Run("ok/cert", func(t *testing.T) {
		out, stderr, code := run(t, c, "cert --role deploy --ttl 10m")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		cert := parseCert(t, out)
		if !slices.Equal(cert.ValidPrincipals, []string{"role-deploy", "alice"}) {
			t.Fatalf("principals %v", cert.ValidPrincipals)
		}
		if string(cert.Key.Marshal()) != string(key.PublicKey().Marshal()) {
			t.Fatal("certificate is not for the key the user authenticated with")
		}
		if got := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; got != 15*time.Minute {
			t.Fatalf("validity %s, want 10m + 5m backdate", got)
		}
		if !strings.HasPrefix(cert.KeyId, "local:alice role=deploy") {
			t.Fatalf("key ID %q", cert.KeyId)
		}
		if !strings.Contains(stderr, "certificate serial") {
			t.Fatalf("stderr %q", stderr)
		}
	})
	t.Run("fail/principal-not-allowed", func(t *testing.T) {
		_, stderr, code := run(t, c, "cert --role deploy --principals root")
		if code != 1 || !strings.Contains(stderr, `sshca: error: policy: principal "root" not allowed in role "deploy" [principal-not-allowed]`) {
			t.Fatalf("%d %q", code, stderr)
		}
	})
	t.Run("fail/role-not-allowed", func(t *testing.T) {
		_, stderr, code := run(t, c, "cert --role sso")
		if code != 1 || !strings.Contains(stderr, "[role-not-allowed]") || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("%d %q", code, stderr)
		}
	})
	t.Run("fail/mfa-missing", func(t *testing.T) {
		_, stderr, code := run(t, c, "cert --role secure")
		if code != 1 || !strings.Contains(stderr, "requires a second factor") || !strings.Contains(stderr, "[mfa-required]") {
			t.Fatalf("%d %q", code, stderr)
		}
	})
	t.Run("fail/ttl-over-max", func(t *testing.T) {
		_, stderr, code := run(t, c, "cert --role deploy --ttl 2h")
		if code != 1 || !strings.Contains(stderr, "[ttl-exceeds-max]") {
			t.Fatalf("%d %q", code, stderr)
		}
	})
	t.Run("fail/usage", func(t *testing.T) {
		for _, cmd := range []string{"cert --bogus", "cert --ttl x", "rm -rf /", "roles extra", "cert --role deploy extra"} {
			_, stderr, code := run(t, c, cmd)
			if code != 2 || !strings.HasPrefix(stderr, "sshca: error: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%q: %d %q", cmd, code, stderr)
			}
		}
	})
	t.Run("ok/roles", func(t *testing.T) {
		out, _, code := run(t, c, "roles")
		if code != 0 || !strings.Contains(out, "deploy\tprincipals=role-deploy,alice\tdefault_ttl=30m0s\tmax_ttl=1h0m0s") ||
			!strings.Contains(out, "secure\tprincipals=role-secure") || strings.Contains(out, "sso") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("ok/status", func(t *testing.T) {
		out, _, code := run(t, c, "status")
		if code != 0 || !strings.Contains(out, "local user:    alice") || !strings.Contains(out, "second factor: none") ||
			!strings.Contains(out, ssh.FingerprintSHA256(key.PublicKey())) {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("ok/help", func(t *testing.T) {
		out, _, code := run(t, c, "help")
		if code != 0 || !strings.Contains(out, "cert [--role R]") {
			t.Fatalf("%d %q", code, out)
		}
	})
	// Every refusal above is in the audit log with its rule.
	denied := strings.Join(auditReasons(t, d.h.Store, "denied"), "\n")
	for _, rule := range []string{"principal-not-allowed", "role-not-allowed", "mfa-required", "ttl-exceeds-max"} {
		if !strings.Contains(denied, rule+": ") {
			t.Errorf("no audited denial with rule %s in:\n%s", rule, denied)
		}
	}
}

// TestTOTP covers the second factor of keyboard-interactive: right, wrong,
// replayed and missing codes, each refusal audited.
func TestTOTP(t *testing.T) {
	d := startDoor(t, Limits{})
	key := testkit.NewSigner(t)
	d.addUser(t, "bob", nil, key.PublicKey())
	secret := enrollTOTP(t, d, "bob")
	certWith := func(code string) (string, string, int) {
		t.Helper()
		c, err := d.dial(t, ssh.PublicKeys(key), answer(code))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return run(t, c, "cert --role secure")
	}
	// Publickey alone is not enough once TOTP is enrolled: the server asks
	// for keyboard-interactive next.
	if _, err := d.dial(t, ssh.PublicKeys(key)); err == nil {
		t.Fatal("publickey alone authenticated a user with TOTP enrolled")
	}
	now := time.Now()
	good := totp.Code(secret, now)
	wrong := totp.Code(secret, now.Add(-time.Hour))
	if wrong == good {
		wrong = totp.Code(secret, now.Add(-2*time.Hour))
	}

	_, stderr, code := certWith(wrong)
	if code != 1 || !strings.Contains(stderr, "TOTP code rejected [mfa-failed]") {
		t.Fatalf("wrong code: %d %q", code, stderr)
	}
	_, stderr, code = certWith("")
	if code != 1 || !strings.Contains(stderr, "[mfa-required]") {
		t.Fatalf("no code: %d %q", code, stderr)
	}
	out, stderr, code := certWith(good)
	if code != 0 {
		t.Fatalf("right code: %d %q", code, stderr)
	}
	if cert := parseCert(t, out); !slices.Equal(cert.ValidPrincipals, []string{"role-secure"}) {
		t.Fatalf("principals %v", cert.ValidPrincipals)
	}
	_, stderr, code = certWith(good)
	if code != 1 || !strings.Contains(stderr, "TOTP code already used [mfa-failed]") {
		t.Fatalf("replayed code: %d %q", code, stderr)
	}
	denied := strings.Join(auditReasons(t, d.h.Store, "denied"), "\n")
	for _, want := range []string{"mfa-failed: policy: TOTP code rejected", "mfa-required: ", "mfa-failed: policy: TOTP code already used"} {
		if !strings.Contains(denied, want) {
			t.Errorf("audit has no %q in:\n%s", want, denied)
		}
	}
}

// TestTOTPOneCodePerConnection checks that a verified code proves the
// factor for the rest of its connection, and is not verified again.
func TestTOTPOneCodePerConnection(t *testing.T) {
	d := startDoor(t, Limits{})
	key := testkit.NewSigner(t)
	d.addUser(t, "bob", nil, key.PublicKey())
	secret := enrollTOTP(t, d, "bob")
	c, err := d.dial(t, ssh.PublicKeys(key), answer(totp.Code(secret, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, _, _ := run(t, c, "status")
	if !strings.Contains(out, "TOTP code given") {
		t.Fatalf("status before cert: %q", out)
	}
	for i := range 2 {
		if _, stderr, code := run(t, c, "cert --role secure"); code != 0 {
			t.Fatalf("cert %d: %d %q", i, code, stderr)
		}
	}
	out, _, _ = run(t, c, "status")
	if !strings.Contains(out, "TOTP (verified)") {
		t.Fatalf("status after cert: %q", out)
	}
}

// TestTOTPEnroll enrolls a local user's TOTP at the front door with an
// admin's one-time code, which works once and for that user only.
func TestTOTPEnroll(t *testing.T) {
	d := startDoor(t, Limits{})
	key, other := testkit.NewSigner(t), testkit.NewSigner(t)
	d.addUser(t, "bob", nil, key.PublicKey())
	d.addUser(t, "carol", nil, other.PublicKey())
	code := invite(t, d, "local:bob")
	c, err := d.dial(t, ssh.PublicKeys(other))
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, st := run(t, c, "totp-enroll "+code)
	c.Close()
	if st != 1 || !strings.Contains(stderr, "issued for someone else") {
		t.Fatalf("carol with bob's code: %d %q", st, stderr)
	}
	c, err = d.dial(t, ssh.PublicKeys(key))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, st := run(t, c, "totp-enroll "+code)
	c.Close()
	if st != 0 || !strings.HasPrefix(out, "otpauth://totp/sshca:local%3Abob?") {
		t.Fatalf("enroll: %d %q %q", st, out, stderr)
	}
	// Now the code is asked for, and the secret of the URI answers it.
	secret := secretOf(t, out)
	c, err = d.dial(t, ssh.PublicKeys(key), answer(totp.Code(secret, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, stderr, st := run(t, c, "cert --role secure"); st != 0 {
		t.Fatalf("cert with the enrolled factor: %d %q", st, stderr)
	}
	if _, stderr, st := run(t, c, "totp-enroll "+code); st != 1 || !strings.Contains(stderr, "already") {
		t.Fatalf("second enrollment: %d %q", st, stderr)
	}
}

// TestUnregisteredAndRemoved: a key no local user has, and the key of a
// removed user, authenticate nothing; each refused connection is audited.
func TestUnregisteredAndRemoved(t *testing.T) {
	d := startDoor(t, Limits{})
	key, stranger := testkit.NewSigner(t), testkit.NewSigner(t)
	d.addUser(t, "alice", nil, key.PublicKey())
	var instruction string
	kbd := ssh.KeyboardInteractive(func(name, ins string, q []string, e []bool) ([]string, error) {
		instruction = ins
		return nil, nil
	})
	if _, err := d.dial(t, ssh.PublicKeys(stranger), kbd); err == nil {
		t.Fatal("unregistered key authenticated")
	}
	if !strings.Contains(instruction, "key "+ssh.FingerprintSHA256(stranger.PublicKey())+" is not registered to a local user") {
		t.Fatalf("instruction %q", instruction)
	}
	if err := d.h.Store.RemoveLocalUser(t.Context(), "alice", audit.Entry{Time: time.Now(), Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user removed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.dial(t, ssh.PublicKeys(key), kbd); err == nil {
		t.Fatal("removed user's key authenticated")
	}
	// The server records the refusal after the client has seen it.
	var denied string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		denied = strings.Join(auditReasons(t, d.h.Store, "denied"), "\n")
		if strings.Count(denied, "unregistered-key: ") >= 2 {
			break
		}
	}
	for _, k := range []ssh.Signer{stranger, key} {
		if !strings.Contains(denied, "unregistered-key: frontdoor: key "+ssh.FingerprintSHA256(k.PublicKey())+" is not registered") {
			t.Errorf("no audited refusal of %s in:\n%s", ssh.FingerprintSHA256(k.PublicKey()), denied)
		}
	}
}

// TestSKKeys: FIDO keys whose signatures x/crypto verifies, made in
// software in the security keys' own format. User presence is the second
// factor; a signature without it does not authenticate; no-touch-required
// is in the certificate only where the role grants it.
func TestSKKeys(t *testing.T) {
	d := startDoor(t, Limits{})
	for _, typ := range []string{ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256} {
		t.Run(typ, func(t *testing.T) {
			touched := newSKSigner(t, typ, flagUP)
			name := "sk" + map[string]string{ssh.KeyAlgoSKED25519: "ed", ssh.KeyAlgoSKECDSA256: "ec"}[typ]
			d.addUser(t, name, []string{"deployers"}, touched.PublicKey())
			c, err := d.dial(t, ssh.PublicKeys(touched))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out, _, _ := run(t, c, "status")
			if !strings.Contains(out, "second factor: FIDO security key (user presence)") {
				t.Fatalf("status %q", out)
			}
			// deploy (no factor needed) is open by group; secure needs
			// the factor, which the touch gave.
			for role, wantNoTouch := range map[string]bool{"deploy": false} {
				out, stderr, code := run(t, c, "cert --role "+role)
				if code != 0 {
					t.Fatalf("%s: %d %q", role, code, stderr)
				}
				cert := parseCert(t, out)
				if _, ok := cert.Extensions["no-touch-required"]; ok != wantNoTouch {
					t.Fatalf("%s: no-touch-required %v", role, ok)
				}
				if cert.Key.Type() != typ {
					t.Fatalf("certified key type %s", cert.Key.Type())
				}
			}
			c.Close()
			untouched := newSKSigner(t, typ, 0)
			d.addUserKey(t, name, untouched.PublicKey())
			if _, err := d.dial(t, ssh.PublicKeys(untouched)); err == nil {
				t.Fatal("an sk signature without user presence authenticated")
			}
			verified := newSKSigner(t, typ, flagUP|flagUV)
			d.addUserKey(t, name, verified.PublicKey())
			c2, err := d.dial(t, ssh.PublicKeys(verified))
			if err != nil {
				t.Fatalf("UP+UV signature: %v", err)
			}
			c2.Close()
		})
	}
	t.Run("no-touch-required-only-where-granted", func(t *testing.T) {
		k := newSKSigner(t, ssh.KeyAlgoSKED25519, flagUP)
		d.addUser(t, "bob", nil, k.PublicKey())
		c, err := d.dial(t, ssh.PublicKeys(k))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for role, want := range map[string]bool{"secure": false, "touchless": true} {
			out, stderr, code := run(t, c, "cert --role "+role)
			if code != 0 {
				t.Fatalf("%s: %d %q", role, code, stderr)
			}
			if _, ok := parseCert(t, out).Extensions["no-touch-required"]; ok != want {
				t.Fatalf("%s: no-touch-required %v, want %v", role, ok, want)
			}
		}
	})
}
