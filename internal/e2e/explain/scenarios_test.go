package e2eexplain

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/explain"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
)

// buildScenarios generates the scenarios: every CA type against every
// server and subject key type, then each refusal reason in several
// variations spread over the servers, and cases where two checks fail so
// that sshd's order decides.
//
// The servers: "files" has an AuthorizedPrincipalsFile and the default
// CASignatureAlgorithms; "names" has none (the login name must be a
// principal) and allows ssh-rsa ("+ssh-rsa"); "strict" has a principals
// file, allows only ECDSA and Ed25519 CA signatures and RequiredRSASize
// 2048.
func buildScenarios(t *testing.T, rel *opensshtest.Flavour, account string, files, names, strict *server, cas []*caKey, subjects []*subject) []scenario {
	t.Helper()
	caEd, caEC, caEC384, caRSA, caOther := cas[0], cas[1], cas[2], cas[3], cas[4]
	sEd, sEd2, sEd3, sEC, sRSA, sRSA1024 := subjects[0], subjects[1], subjects[2], subjects[3], subjects[4], subjects[5]
	servers := []*server{files, names, strict}
	withFile := []*server{files, strict}
	rot, rotF := 0, 0
	next := func() *server { rot++; return servers[rot%3] }     // rotates over all servers
	nextF := func() *server { rotF++; return withFile[rotF%2] } // over those with a principals file
	cycle := []*caKey{caEd, caEC, caEC384}
	nextCA := func(i int) *caKey { return cycle[i%len(cycle)] }

	base := func(srv *server, ca *caKey, subj *subject) scenario {
		sc := scenario{srv: srv, ca: ca, subj: subj, after: -5 * time.Minute, before: time.Hour}
		if srv.principals {
			sc.principals = []string{"role-a"}
		} else {
			sc.principals = []string{account}
		}
		return sc
	}
	krlOf := func(build func(c *ssh.Certificate, k *krl.KRL) error) func(c *ssh.Certificate) []byte {
		return func(c *ssh.Certificate) []byte {
			return mustKRL(t, func(k *krl.KRL) error { return build(c, k) })
		}
	}

	var out []scenario
	add := func(sc scenario, name string, want string) {
		sc.name, sc.want = name, want
		out = append(out, sc)
	}

	// 1. Every CA type on every server, with each subject key type once:
	//    accepted, except where CASignatureAlgorithms says no.
	keys := []*subject{sEd, sEC, sRSA}
	for si, srv := range servers {
		for ci, ca := range []*caKey{caEd, caEC, caEC384, caRSA} {
			subj := keys[(si+ci)%len(keys)]
			want := ""
			if srv == strict && ca == caRSA {
				want = explain.CheckSigAlg
			}
			add(base(srv, ca, subj), fmt.Sprintf("%s-ca-%s-key", ca.name, subj.name), want)
		}
	}

	// 2. CA signature algorithm: ssh-rsa (SHA-1) certificates, refused
	//    unless "+ssh-rsa", and checked before revocation and trust.
	for _, srv := range servers {
		sha1 := func(subj *subject) scenario {
			sc := base(srv, caRSA, subj)
			sc.sha1 = true
			return sc
		}
		want := explain.CheckSigAlg
		if srv == names {
			want = ""
		}
		add(sha1(sEd), "ssh-rsa-signed", want)
		sc := sha1(sRSA)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKey(caRSA.pub) })
		if srv == names {
			add(sc, "ssh-rsa-signed-by-revoked-ca", explain.CheckRevokedCA)
		} else {
			add(sc, "ssh-rsa-signed-by-revoked-ca", explain.CheckSigAlg)
		}
		sc = sha1(sEd)
		sc.trust = []string{caEd.line()}
		if srv == names {
			add(sc, "ssh-rsa-signed-untrusted", explain.CheckCANotTrusted)
		} else {
			add(sc, "ssh-rsa-signed-untrusted", explain.CheckSigAlg)
		}
	}
	sc := base(strict, caRSA, sEC)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeSerials(caRSA.pub, c.Serial, c.Serial) })
	add(sc, "rsa-sha2-512-not-allowed-before-revoked", explain.CheckSigAlg)

	// 3. RequiredRSASize.
	add(base(strict, caEd, sRSA1024), "rsa-1024-below-required-size", explain.CheckRSASize)
	add(base(files, caEC, sRSA1024), "rsa-1024-default-required-size", "")

	// 4. Revocation: serial, range, key ID, key and CA key, in KRLs (under
	//    the CA or the wildcard) and in plain key lists.
	for i, srv := range servers {
		ca := nextCA(i)
		sc := base(srv, ca, sEd)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeSerials(ca.pub, c.Serial, c.Serial) })
		add(sc, "serial-"+ca.name, explain.CheckRevokedSerial)

		sc = base(srv, ca, sEC)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeSerials(ca.pub, c.Serial-3, c.Serial+40) })
		add(sc, "serial-range-"+ca.name, explain.CheckRevokedSerial)

		sc = base(srv, ca, sRSA)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKeyID(ca.pub, c.KeyId) })
		add(sc, "key-id-"+ca.name, explain.CheckRevokedKeyID)

		sc = base(srv, ca, sEd2)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKey(sEd2.pub) })
		add(sc, "explicit-key-"+ca.name, explain.CheckRevokedKey)

		sc = base(srv, ca, sEd)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKey(ca.pub) })
		add(sc, "ca-key-"+ca.name, explain.CheckRevokedCA)
	}
	sc = base(next(), caEd, sEd)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeSerials(nil, c.Serial, c.Serial) })
	add(sc, "wildcard-serial", explain.CheckRevokedSerial)

	sc = base(next(), caEC, sEd)
	sc.keyID = "alice@example"
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKeyID(nil, "alice@example") })
	add(sc, "wildcard-key-id", explain.CheckRevokedKeyID)

	sc = base(next(), caEd, sEC)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { k.RevokeSHA256(krl.FingerprintSHA256(sEC.pub)); return nil })
	add(sc, "sha256-of-key", explain.CheckRevokedKey)

	sc = base(next(), caEd, sRSA)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { k.RevokeSHA1(krl.FingerprintSHA1(sRSA.pub)); return nil })
	add(sc, "sha1-of-key", explain.CheckRevokedKey)

	sc = base(next(), caEC, sEd)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error {
		k.RevokeSHA256(krl.FingerprintSHA256(caEC.pub))
		return nil
	})
	add(sc, "sha256-of-ca", explain.CheckRevokedCA)

	for _, srv := range servers {
		// A serial revoked under another CA, a neighbouring range, and a
		// key ID of another certificate do not revoke this one.
		sc = base(srv, caEd, sEd)
		sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error {
			if err := k.RevokeSerials(caEC.pub, c.Serial, c.Serial); err != nil {
				return err
			}
			if err := k.RevokeKeyID(caEd.pub, c.KeyId+"-other"); err != nil {
				return err
			}
			return k.RevokeSerials(caEd.pub, c.Serial+1, c.Serial+100)
		})
		add(sc, "revocations-of-others", "")
	}

	sc = base(next(), caEd, sEd3)
	sc.revoke = func(c *ssh.Certificate) []byte {
		return []byte("# revoked keys\n" + string(ssh.MarshalAuthorizedKey(sEd3.pub)))
	}
	add(sc, "key-list-key", explain.CheckRevokedKey)

	sc = base(next(), caEC, sEd)
	sc.revoke = func(c *ssh.Certificate) []byte {
		return []byte(string(ssh.MarshalAuthorizedKey(sRSA.pub)) + string(ssh.MarshalAuthorizedKey(caEC.pub)))
	}
	add(sc, "key-list-ca", explain.CheckRevokedCA)

	sc = base(next(), caEd, sEd)
	sc.revoke = func(c *ssh.Certificate) []byte { return ssh.MarshalAuthorizedKey(sRSA.pub) }
	add(sc, "key-list-other-key", "")

	// Unusable RevokedKeys files refuse everything.
	for _, srv := range servers {
		sc = base(srv, caEd, sEd)
		sc.missingKRL = true
		add(sc, "krl-missing", explain.CheckRevokedKeysUnreadable)
	}
	sc = base(next(), caEC, sEC)
	sc.revoke = func(c *ssh.Certificate) []byte { return []byte("this is not a key\n") }
	add(sc, "krl-garbage", explain.CheckRevokedKeysUnreadable)

	sc = base(next(), caEd, sEd)
	sc.revoke = func(c *ssh.Certificate) []byte { return []byte("SSHKRL\n\x00\x00\x00\x00\x01truncated") }
	add(sc, "krl-truncated", explain.CheckRevokedKeysUnreadable)

	// What changed after 9.2: 9.4 skips KRL signature sections and
	// extension sections that are not critical, which 9.2 cannot load; 10.3
	// reads several RevokedKeys files (see agreeWithSSHD).
	skipped := ""
	if !rel.AtLeast(9, 4) {
		skipped = explain.CheckRevokedKeysUnreadable
	}
	sc = base(next(), caEd, sEd)
	sc.revoke = func(c *ssh.Certificate) []byte {
		// A legacy signature section: a key, then a signature that is
		// garbage.
		return appendSection(mustKRL(t, func(k *krl.KRL) error { return k.RevokeSerials(caEC.pub, 5, 9) }), 4,
			sshString(caOther.pub.Marshal()), sshString([]byte("not a signature")))
	}
	add(sc, "krl-legacy-signature-section", skipped)

	sc = base(next(), caEC, sEC)
	sc.revoke = func(c *ssh.Certificate) []byte {
		body := append(append(sshString([]byte("x-ext@example.com")), 0), sshString(nil)...)
		return appendSection(mustKRL(t, func(k *krl.KRL) error { return nil }), 255, sshString(body))
	}
	add(sc, "krl-extension-section", skipped)

	if rel.AtLeast(10, 3) {
		for _, srv := range servers {
			sc = base(srv, caEC, sEd)
			sc.keyID = secondKRLKeyID
			add(sc, "revoked-by-second-revoked-keys-file", explain.CheckRevokedKeyID)
		}
	}

	// Revocation is checked before trust and validity.
	sc = base(next(), caOther, sEd)
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeSerials(caOther.pub, c.Serial, c.Serial) })
	add(sc, "revoked-and-untrusted", explain.CheckRevokedSerial)

	sc = base(next(), caEd, sEd)
	sc.after, sc.before = -3*time.Hour, -time.Hour
	sc.revoke = krlOf(func(c *ssh.Certificate, k *krl.KRL) error { return k.RevokeKeyID(caEd.pub, c.KeyId) })
	add(sc, "revoked-and-expired", explain.CheckRevokedKeyID)

	// 5. Trust.
	for _, srv := range servers {
		add(base(srv, caOther, sEd), "untrusted-ca", explain.CheckCANotTrusted)
		// Trust is checked before validity.
		sc = base(srv, caOther, sEC)
		sc.after, sc.before = -2*time.Hour, -time.Hour
		add(sc, "untrusted-and-expired", explain.CheckCANotTrusted)
	}
	sc = base(next(), caEd, sEd)
	sc.trust = []string{caEC.line()}
	add(sc, "ca-not-in-file", explain.CheckCANotTrusted)

	sc = base(next(), caEd, sEd)
	sc.trust = []string{}
	add(sc, "empty-trust-file", explain.CheckCANotTrusted)

	// sshd stops reading TrustedUserCAKeys at a line that is not a key.
	sc = base(next(), caEd, sEd)
	sc.trust = []string{caEC.line(), "cert-authority " + caEd.line()}
	add(sc, "trust-file-options-line", explain.CheckCANotTrusted)

	sc = base(next(), caEd, sEd)
	sc.trust = []string{"not a key", caEd.line()}
	add(sc, "trust-file-garbage-before-ca", explain.CheckCANotTrusted)

	sc = base(next(), caEd, sEd)
	sc.trust = []string{"# CAs", "", "  " + caEd.line(), "not a key"}
	add(sc, "trust-file-garbage-after-ca", "")

	// 6. Principals.
	for _, srv := range withFile {
		sc = base(srv, caEd, sEd)
		sc.principals = []string{"role-b", "role-c"}
		add(sc, "principal-not-in-file", explain.CheckNoPrincipal)

		sc = base(srv, caEd, sEd)
		sc.principals = nil
		add(sc, "empty-principals-with-file", explain.CheckEmptyPrincipals)
	}
	sc = base(nextF(), caEd, sEd)
	sc.principals = []string{"role-b", "role-a"}
	sc.plines = []string{"# roles", "role-x", "  role-a  # the deployers"}
	add(sc, "second-principal-in-file", "")

	sc = base(nextF(), caEC, sEd)
	sc.noPFile = true
	add(sc, "no-principals-file", explain.CheckNoPrincipal)

	sc = base(nextF(), caEd, sEd)
	sc.principals = []string{account}
	add(sc, "login-name-not-enough-with-file", explain.CheckNoPrincipal)

	sc = base(nextF(), caEd, sEd)
	sc.plines = []string{"bogus-option role-a"}
	add(sc, "principals-line-bad-options", explain.CheckNoPrincipal)

	sc = base(nextF(), caEd, sEd)
	sc.plines = []string{"role-a\r"}
	add(sc, "principals-file-crlf", explain.CheckNoPrincipal)

	// The principals file is read before validity is checked.
	sc = base(nextF(), caEd, sEd)
	sc.after, sc.before = -2*time.Hour, -time.Hour
	sc.principals = []string{"role-z"}
	add(sc, "expired-and-no-principal", explain.CheckNoPrincipal)

	sc = base(names, caEd, sEd)
	sc.principals = []string{"role-a", "deploy"}
	sc.log = "Certificate invalid: name is not a listed principal"
	add(sc, "login-name-not-a-principal", explain.CheckNoPrincipal)

	sc = base(names, caEC, sEC)
	sc.principals = []string{"deploy", account}
	add(sc, "login-name-second-principal", "")

	sc = base(names, caEd, sRSA)
	sc.principals = nil
	sc.log = "Certificate lacks principal list"
	add(sc, "empty-principals-no-file", explain.CheckEmptyPrincipals)

	// Validity is checked before the login name.
	sc = base(names, caEd, sEd)
	sc.principals = []string{"someone-else"}
	sc.after, sc.before = time.Hour, 2*time.Hour
	add(sc, "not-yet-valid-and-wrong-name", explain.CheckNotYetValid)

	// 7. Certificate type. The OpenSSH client does not offer a host
	//    certificate as a user identity, so these log in with x/crypto's
	//    client, which does, and sshd judges as always.
	for i, srv := range servers {
		sc = base(srv, nextCA(i), sEd)
		sc.host = true
		add(sc, "host-certificate", explain.CheckWrongCertType)
	}
	sc = base(next(), caEd, sEC)
	sc.host = true
	sc.after, sc.before = -2*time.Hour, -time.Hour
	add(sc, "host-certificate-expired", explain.CheckWrongCertType)

	sc = base(names, caEC, sEd)
	sc.principals = nil
	sc.host = true
	add(sc, "host-certificate-no-principals", explain.CheckWrongCertType)

	// The principals file is read before the type is checked.
	sc = base(nextF(), caEd, sEd)
	sc.host = true
	sc.principals = []string{"host.example"}
	add(sc, "host-cert-principal-not-in-file", explain.CheckNoPrincipal)

	// 8. Validity.
	for _, v := range []struct {
		name          string
		after, before time.Duration
		want          string
	}{
		{"expired-an-hour-ago", -3 * time.Hour, -time.Hour, explain.CheckExpired},
		{"expired-two-minutes-ago", -time.Hour, -2 * time.Minute, explain.CheckExpired},
		{"expired-three-days-ago", -10 * 24 * time.Hour, -3 * 24 * time.Hour, explain.CheckExpired},
		{"valid-in-an-hour", time.Hour, 3 * time.Hour, explain.CheckNotYetValid},
		{"valid-in-three-minutes", 3 * time.Minute, 3 * time.Hour, explain.CheckNotYetValid},
		{"valid-in-two-days", 48 * time.Hour, 72 * time.Hour, explain.CheckNotYetValid},
		{"valid-for-one-more-minute", -time.Hour, time.Minute, ""},
	} {
		for i := 0; i < 2; i++ {
			sc = base(next(), nextCA(rot), keys[rot%len(keys)])
			sc.after, sc.before = v.after, v.before
			add(sc, v.name, v.want)
		}
	}
	sc = base(next(), caEd, sEC)
	sc.forever = true
	add(sc, "valid-forever", "")

	// 9. Critical options and extensions.
	for _, v := range []struct {
		name, list, want string
	}{
		{"source-address-mismatch", "10.0.0.0/8", explain.CheckSourceAddress},
		{"source-address-ipv6-only", "::1/128", explain.CheckSourceAddress},
		{"source-address-other-host", "127.0.0.2/32", explain.CheckSourceAddress},
		{"source-address-match", "127.0.0.1/32", ""},
		{"source-address-list-match", "192.168.0.0/16,127.0.0.0/8", ""},
		{"source-address-bare-ip", "127.0.0.1", ""},
		{"source-address-host-bits", "127.0.0.1/8", explain.CheckInvalidOptions},
		{"source-address-hostname", "localhost", explain.CheckInvalidOptions},
	} {
		sc = base(next(), nextCA(rot), sEd)
		sc.crit = map[string]string{"source-address": v.list}
		add(sc, v.name, v.want)
	}
	for _, srv := range servers {
		sc = base(srv, caEd, sEd)
		sc.crit = map[string]string{"source-address": "10.0.0.0/8"}
		add(sc, "source-address-mismatch-"+srv.name, explain.CheckSourceAddress)
	}
	sc = base(next(), caEC, sEd)
	sc.crit = map[string]string{"no-such-option": ""}
	add(sc, "unknown-critical-option", explain.CheckInvalidOptions)

	sc = base(next(), caEd, sEd)
	sc.crit = map[string]string{"force-command": "echo sshca-login-ok"}
	add(sc, "force-command", "")

	sc = base(next(), caEd, sEd)
	sc.ext = map[string]string{"permit-pty": "", "x-unknown@example.com": ""}
	add(sc, "unknown-extension-ignored", "")

	// Options come after validity.
	sc = base(next(), caEd, sEd)
	sc.crit = map[string]string{"source-address": "10.0.0.0/8"}
	sc.after, sc.before = -2*time.Hour, -time.Hour
	add(sc, "expired-and-wrong-source", explain.CheckExpired)

	// 10. Options on the principals line.
	for _, v := range []struct {
		name, line string
		crit       map[string]string
		want       string
	}{
		{"principals-from-mismatch", `from="10.0.0.0/8" role-a`, nil, explain.CheckPrincipalsOptions},
		{"principals-from-match", `from="127.0.0.1" role-a`, nil, ""},
		{"principals-from-pattern", `from="127.0.0.*,!10.*" role-a`, nil, ""},
		{"principals-expired-line", `expiry-time="20200101" role-a`, nil, explain.CheckPrincipalsOptions},
		{"principals-future-expiry", `expiry-time="20991231Z" role-a`, nil, ""},
		{"principals-command-same", `command="echo sshca-login-ok" role-a`, map[string]string{"force-command": "echo sshca-login-ok"}, ""},
		{"principals-command-conflict", `command="echo other" role-a`, map[string]string{"force-command": "echo sshca-login-ok"}, explain.CheckForceCommand},
		{"principals-cert-authority", `cert-authority role-a`, nil, explain.CheckPrincipalsOptions},
		{"principals-source-and-from", `from="127.0.0.1" role-a`, map[string]string{"source-address": "10.0.0.0/8"}, explain.CheckSourceAddress},
	} {
		sc = base(nextF(), caEd, sEd)
		sc.plines = []string{v.line}
		sc.crit = v.crit
		add(sc, v.name, v.want)
	}
	return out
}

// sshString encodes b as an SSH string (RFC 4251).
func sshString(b []byte) []byte {
	return append([]byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b...)
}

// appendSection appends a KRL section of type typ (PROTOCOL.krl): the
// type byte, then its parts as they are. A signature section (4) is two
// strings; any other one string.
func appendSection(k []byte, typ byte, parts ...[]byte) []byte {
	k = append(k, typ)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}
