package cli_test

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// inspectPolicy grants every standard extension and both critical options,
// so that the listings exercise every section of ssh-keygen -L.
const inspectPolicy = `backdate: 5m
roles:
  full:
    type: user
    principals: [role-deploy, ci, ops]
    default_ttl: 8h
    max_ttl: 12h
    extensions: [permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc]
    source_address: [10.0.0.0/8, 192.168.0.0/16]
    force_command: /usr/local/bin/rsync-wrapper --server
  bare:
    type: user
    principals: [ci]
    max_ttl: 1h
    extensions: []
  servers:
    type: host
    principals: ["*.corp", "10.0.1.0/24"]
    max_ttl: 52w
`

// TestInspectMatchesSSHKeygen is acceptance 1 of issue 2: ssh-keygen -L
// parses every certificate sshca issues, for every CA key type, user and
// host, and prints exactly what `sshca inspect` prints; --json carries the
// same fields.
func TestInspectMatchesSSHKeygen(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	caTypes := []struct {
		keyType    string
		subject    []string // ssh-keygen type arguments of the certified key
		sigAlgo    string   // expected certificate signature algorithm
		caTypeName string   // ssh-keygen's name of the CA key type
	}{
		{"ed25519", []string{"-t", "ed25519"}, ssh.KeyAlgoED25519, "ED25519"},
		{"ecdsa-p256", []string{"-t", "ecdsa", "-b", "256"}, ssh.KeyAlgoECDSA256, "ECDSA"},
		{"ecdsa-p384", []string{"-t", "ecdsa", "-b", "384"}, ssh.KeyAlgoECDSA384, "ECDSA"},
		{"ecdsa-p521", []string{"-t", "ecdsa", "-b", "521"}, ssh.KeyAlgoECDSA521, "ECDSA"},
		{"rsa-3072", []string{"-t", "rsa", "-b", "2048"}, ssh.KeyAlgoRSASHA512, "RSA"},
		{"rsa-4096", []string{"-t", "ed25519"}, ssh.KeyAlgoRSASHA512, "RSA"},
	}
	certs := []struct {
		name string
		args []string // sign arguments before PUBKEY
	}{
		{"user", []string{"sign", "user", "--role", "full", "--id", "vasya 2026-11-22", "--ttl", "2h"}},
		{"user-bare", []string{"sign", "user", "--role", "bare", "--id", "ci-42"}},
		{"host", []string{"sign", "host", "--role", "servers", "--id", "app-01", "--principals", "app-01.corp,10.0.1.10"}},
	}
	for _, ct := range caTypes {
		t.Run("ok/"+ct.keyType, func(t *testing.T) {
			t.Parallel()
			h := initHome(t, "--key-type", ct.keyType)
			writePolicy(t, h, inspectPolicy)
			work := t.TempDir()
			for i, c := range certs {
				t.Run(c.name, func(t *testing.T) {
					pub := newKey(t, work, "id_"+c.name, ct.subject...)
					mustRun(t, append(append([]string{"--home", h}, c.args...), pub)...)
					certFile := strings.TrimSuffix(pub, ".pub") + "-cert.pub"
					cert := readCert(t, certFile)

					// Byte for byte: same path argument, same time zone
					// (ssh-keygen inherits this process's TZ).
					want := keygen(t, "-L", "-f", certFile)
					got := mustRun(t, "--home", h, "inspect", certFile)
					if got != want {
						t.Errorf("sshca inspect differs from ssh-keygen -L (-want +got):\n%s", cmp.Diff(want, got))
					}
					if cert.Signature.Format != ct.sigAlgo {
						t.Errorf("signature algorithm %q, want %q", cert.Signature.Format, ct.sigAlgo)
					}
					if strings.HasPrefix(ct.keyType, "rsa") && !strings.Contains(want, "(using rsa-sha2-512)") {
						t.Errorf("ssh-keygen -L does not show rsa-sha2-512 for an RSA CA:\n%s", want)
					}
					if cert.Serial != uint64(i+1) {
						t.Errorf("serial %d, want %d (serials count up from 1)", cert.Serial, i+1)
					}

					// --json against OpenSSH's listing and against the
					// certificate itself.
					var js inspectJSON
					if err := json.Unmarshal([]byte(mustRun(t, "--home", h, "inspect", "--json", certFile)), &js); err != nil {
						t.Fatalf("inspect --json: %v", err)
					}
					if diff := cmp.Diff(parseKeygenL(t, want), js.asListing(t)); diff != "" {
						t.Errorf("inspect --json differs from ssh-keygen -L (-keygen +json):\n%s", diff)
					}
					if diff := cmp.Diff(listingOf(cert), js.asListing(t)); diff != "" {
						t.Errorf("inspect --json differs from the certificate (-cert +json):\n%s", diff)
					}
				})
			}
		})
	}
}

// listing is the content of ssh-keygen -L in comparable form.
type listing struct {
	Type       string // "ssh-ed25519-cert-v01@openssh.com user certificate"
	PublicKey  string // fingerprint of the certified key
	SigningCA  string // fingerprint of the CA key
	SigAlgo    string
	KeyID      string
	Serial     uint64
	Valid      string // "from 2026-11-22T10:00:00 to ..." in local time
	Principals []string
	Critical   map[string]string
	Extensions []string
}

// parseKeygenL parses the output of ssh-keygen -L for one certificate.
func parseKeygenL(t *testing.T, out string) listing {
	t.Helper()
	l := listing{Principals: []string{}, Critical: map[string]string{}, Extensions: []string{}}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	section := ""
	for _, line := range lines[1:] {
		const field, item = "        ", "                "
		if strings.HasPrefix(line, item) {
			v := strings.TrimPrefix(line, item)
			switch section {
			case "Principals":
				l.Principals = append(l.Principals, v)
			case "Critical Options":
				k, val, _ := strings.Cut(v, " ")
				l.Critical[k] = val
			case "Extensions":
				l.Extensions = append(l.Extensions, v)
			default:
				t.Fatalf("ssh-keygen -L: item %q outside a list", line)
			}
			continue
		}
		name, val, ok := strings.Cut(strings.TrimPrefix(line, field), ": ")
		if !ok {
			name, val, ok = strings.Cut(strings.TrimPrefix(line, field), ":")
		}
		if !ok {
			t.Fatalf("ssh-keygen -L: unexpected line %q", line)
		}
		section = name
		switch name {
		case "Type":
			l.Type = val
		case "Public key":
			_, l.PublicKey, _ = strings.Cut(val, " ")
		case "Signing CA":
			// "ED25519 SHA256:... (using ssh-ed25519)"
			f := strings.Fields(val)
			if len(f) != 4 {
				t.Fatalf("ssh-keygen -L: signing CA %q", val)
			}
			l.SigningCA, l.SigAlgo = f[1], strings.TrimSuffix(f[3], ")")
		case "Key ID":
			l.KeyID = strings.TrimSuffix(strings.TrimPrefix(val, `"`), `"`)
		case "Serial":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				t.Fatalf("ssh-keygen -L: serial %q", val)
			}
			l.Serial = n
		case "Valid":
			l.Valid = val
		case "Principals", "Critical Options", "Extensions":
			if val != "" && val != "(none)" {
				t.Fatalf("ssh-keygen -L: %s: %q", name, val)
			}
		default:
			t.Fatalf("ssh-keygen -L: unknown field %q", name)
		}
	}
	return l
}

// inspectJSON is what `sshca inspect --json` prints for a certificate.
type inspectJSON struct {
	Type            string            `json:"type"`
	CertType        string            `json:"cert_type"`
	PublicKey       string            `json:"key_fingerprint"`
	KeyType         string            `json:"key_type"`
	SigningCA       string            `json:"ca_fingerprint"`
	SignatureAlgo   string            `json:"signature_algorithm"`
	KeyID           string            `json:"key_id"`
	Serial          uint64            `json:"serial"`
	ValidAfter      *time.Time        `json:"valid_after"`
	ValidBefore     *time.Time        `json:"valid_before"`
	Principals      []string          `json:"principals"`
	CriticalOptions map[string]string `json:"critical_options"`
	Extensions      []string          `json:"extensions"`
}

func (j inspectJSON) asListing(t *testing.T) listing {
	t.Helper()
	if j.ValidAfter == nil || j.ValidBefore == nil {
		t.Fatalf("inspect --json: validity missing: %+v", j)
	}
	return listing{
		Type:       j.Type + " " + j.CertType + " certificate",
		PublicKey:  j.PublicKey,
		SigningCA:  j.SigningCA,
		SigAlgo:    j.SignatureAlgo,
		KeyID:      j.KeyID,
		Serial:     j.Serial,
		Valid:      "from " + localTime(*j.ValidAfter) + " to " + localTime(*j.ValidBefore),
		Principals: j.Principals,
		Critical:   j.CriticalOptions,
		Extensions: j.Extensions,
	}
}

// listingOf describes a certificate parsed by x/crypto/ssh.
func listingOf(c *ssh.Certificate) listing {
	kind := "user"
	if c.CertType == ssh.HostCert {
		kind = "host"
	}
	return listing{
		Type:       c.Type() + " " + kind + " certificate",
		PublicKey:  ssh.FingerprintSHA256(c.Key),
		SigningCA:  ssh.FingerprintSHA256(c.SignatureKey),
		SigAlgo:    c.Signature.Format,
		KeyID:      c.KeyId,
		Serial:     c.Serial,
		Valid:      "from " + localTime(time.Unix(int64(c.ValidAfter), 0)) + " to " + localTime(time.Unix(int64(c.ValidBefore), 0)),
		Principals: append([]string{}, c.ValidPrincipals...),
		Critical:   maps.Collect(maps.All(c.CriticalOptions)),
		Extensions: append([]string{}, slices.Sorted(maps.Keys(c.Extensions))...),
	}
}

func localTime(t time.Time) string { return t.In(time.Local).Format("2006-01-02T15:04:05") }

// TestInspectCertificateContent checks what the certificates of
// TestInspectMatchesSSHKeygen must carry, beyond agreeing with ssh-keygen:
// exactly the role's options and extensions, the requested lifetime plus
// the backdate.
func TestInspectCertificateContent(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, inspectPolicy)
	work := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		principals []string
		critical   map[string]string
		extensions []string
		life       time.Duration // valid_before - valid_after
	}{
		{"ok/user-full", []string{"sign", "user", "--role", "full", "--id", "a", "--ttl", "2h", "--principals", "ci,ops"},
			[]string{"ci", "ops"},
			map[string]string{"force-command": "/usr/local/bin/rsync-wrapper --server", "source-address": "10.0.0.0/8,192.168.0.0/16"},
			[]string{"permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"},
			2*time.Hour + 5*time.Minute},
		{"ok/user-bare-default-ttl", []string{"sign", "user", "--role", "bare", "--id", "b"},
			[]string{"ci"}, map[string]string{}, []string{}, time.Hour + 5*time.Minute},
		{"ok/host", []string{"sign", "host", "--role", "servers", "--id", "c", "--principals", "web.corp"},
			[]string{"web.corp"}, map[string]string{}, []string{}, 52*7*24*time.Hour + 5*time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := newKey(t, work, filepath.Base(tt.name), "-t", "ed25519")
			mustRun(t, append(append([]string{"--home", h}, tt.args...), pub)...)
			c := readCert(t, strings.TrimSuffix(pub, ".pub")+"-cert.pub")
			got := listingOf(c)
			if diff := cmp.Diff(tt.principals, got.Principals); diff != "" {
				t.Errorf("principals (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.critical, got.Critical); diff != "" {
				t.Errorf("critical options (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.extensions, got.Extensions); diff != "" {
				t.Errorf("extensions (-want +got):\n%s", diff)
			}
			if life := time.Duration(c.ValidBefore-c.ValidAfter) * time.Second; life != tt.life {
				t.Errorf("lifetime %v, want %v", life, tt.life)
			}
		})
	}
}
