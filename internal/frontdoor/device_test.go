package frontdoor

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/totp"
)

// startDeviceDoor starts a front door whose unregistered keys get the test
// issuer's device flow.
func startDeviceDoor(t *testing.T) (*door, *oidctest.Issuer) {
	t.Helper()
	iss := oidctest.New(t)
	v, err := oidc.NewVerifier(t.Context(), oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	d := startDoorWith(t, Options{Device: &Device{Flow: &oidc.DeviceFlow{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()},
		Verifier: v, Timeout: 20 * time.Second}})
	return d, iss
}

// approveNext waits for the next device code at the issuer and decides it.
func approveNext(t *testing.T, iss *oidctest.Issuer, decide func(code string)) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if codes := iss.PendingUserCodes(); len(codes) > 0 {
			decide(codes[0])
			return
		}
	}
	t.Error("no device flow was started at the issuer")
}

// TestDeviceFlowOpenSSH: a person of the identity provider gets a
// certificate with the real ssh client and a key sshca has never seen: the
// front door shows the device flow's URL and code, waits for approval, and
// issues against the identity, groups and MFA of the ID token, as the
// HTTPS door would. A denied sign-in is refused with its reason and audited.
func TestDeviceFlowOpenSSH(t *testing.T) {
	d, iss := startDeviceDoor(t)
	keyPath, pub := sshdtest.GenerateKey(t, t.TempDir(), "ed25519")
	c := newSSHClient(t, d, keyPath)

	type result struct {
		out, stderr string
		code        int
	}
	start := func(cmd ...string) chan result {
		ch := make(chan result, 1)
		go func() {
			out, stderr, code := c.run(t, "", cmd...)
			ch <- result{out, stderr, code}
		}()
		return ch
	}

	ch := start("cert", "--role", "sso")
	approveNext(t, iss, func(code string) {
		iss.ApproveDevice(code, map[string]any{"sub": "alice", "groups": []string{"dev"}, "amr": []string{"pwd", "otp"}})
	})
	r := <-ch
	if r.code != 0 {
		t.Fatalf("cert after approval: %d %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "open "+iss.URL()+"/device and enter ") || !strings.Contains(r.stderr, "signed in as alice") {
		t.Errorf("ssh did not show the device flow: %q", r.stderr)
	}
	cert := parseCert(t, r.out)
	if !slices.Equal(cert.ValidPrincipals, []string{"role-sso"}) || !strings.HasPrefix(cert.KeyId, "oidc:alice role=sso") ||
		string(cert.Key.Marshal()) != string(pub.Marshal()) {
		t.Fatalf("certificate: principals %v, key ID %q", cert.ValidPrincipals, cert.KeyId)
	}

	// Same rules as HTTPS: a person is not a local user.
	ch = start("cert", "--role", "deploy")
	approveNext(t, iss, func(code string) { iss.ApproveDevice(code, map[string]any{"sub": "alice", "amr": []string{"pwd"}}) })
	if r := <-ch; r.code != 1 || !strings.Contains(r.stderr, `"alice" may not use role "deploy" [role-not-allowed]`) {
		t.Errorf("person asking for a local users' role: %d %q", r.code, r.stderr)
	}

	// One factor at the identity provider plus an enrolled TOTP code, as
	// at the HTTPS door: the code is asked after the sign-in. (A local
	// user "alice" of the same name has nothing to do with it: FactorID.)
	secret := enrollTOTPAs(t, d, "alice")
	code := totp.Code(secret, time.Now())
	ch = make(chan result, 1)
	go func() {
		out, stderr, st := c.run(t, code, "cert", "--role", "secure-sso")
		ch <- result{out, stderr, st}
	}()
	approveNext(t, iss, func(code string) { iss.ApproveDevice(code, map[string]any{"sub": "alice", "amr": []string{"pwd"}}) })
	if r := <-ch; r.code != 0 || !strings.Contains(r.stderr, "signed in as alice (one factor)") {
		t.Errorf("one factor + TOTP: %d %q", r.code, r.stderr)
	}
	ch = start("cert", "--role", "secure-sso")
	approveNext(t, iss, func(code string) { iss.ApproveDevice(code, map[string]any{"sub": "alice", "amr": []string{"pwd"}}) })
	if r := <-ch; r.code != 1 || !strings.Contains(r.stderr, "[mfa-required]") {
		t.Errorf("one factor, no code: %d %q", r.code, r.stderr)
	}

	ch = start("cert", "--role", "sso")
	approveNext(t, iss, iss.DenyDevice)
	if r := <-ch; r.code != 255 || !strings.Contains(r.stderr, "access denied at the identity provider") {
		t.Errorf("denied sign-in: %d %q", r.code, r.stderr)
	}
	var denied string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		denied = strings.Join(auditReasons(t, d.h.Store, "denied"), "\n")
		if strings.Contains(denied, "sign-in-failed: ") {
			break
		}
	}
	for _, want := range []string{"role-not-allowed: ", "sign-in-failed: frontdoor: device flow for key " + sshFingerprint(t, keyPath) + ": device flow: access denied"} {
		if !strings.Contains(denied, want) {
			t.Errorf("audit lacks %q:\n%s", want, denied)
		}
	}
}

// sshFingerprint is ssh-keygen's SHA256 fingerprint of a key file.
func sshFingerprint(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(sshdtest.KeygenPath, "-l", "-E", "sha256", "-f", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[1]
}
