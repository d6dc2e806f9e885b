package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// typedService answers GET /v1/ca/host and "PATH?type=host" requests from
// host (404 when it has no entry) and everything else as fakeService does,
// which ignores the query.
type typedService struct {
	fakeService
	host map[string][]byte // by path, for ?type=host
}

func (s typedService) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("type") != "host" && r.URL.Path != "/v1/ca/host" {
		return s.fakeService.RoundTrip(r)
	}
	body, ok := s.host[r.URL.Path]
	status := http.StatusOK
	if !ok {
		status, body = http.StatusNotFound, []byte(`{"error":"no such endpoint","request_id":"x"}`)
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

func signedKRL(t *testing.T, signer ssh.Signer, k *krl.KRL) (data, sig []byte) {
	t.Helper()
	data, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err = sshsig.Sign(signer, sshsig.Namespace, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return data, sig
}

// TestSyncHostKRL: with Config.HostKRL the agent keeps the host CA's KRL
// at that path for sshd's RevokedKeys line (OpenSSH 10.3+), verified
// against the host CA's keys as the user KRL is against the user CA's: an
// empty KRL first, then the service's; one signed by another key (the user
// CA included), an older one, or one that cannot be verified is refused
// and the installed file stays byte for byte, while the user KRL is still
// kept current.
func TestSyncHostKRL(t *testing.T) {
	k := newTestKeys(t)
	seed := sha256.Sum256([]byte("agent test host CA"))
	hostCA, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	stolen := k.rsa2048 // a key revoked as a host key
	v5 := &krl.KRL{Version: 5}
	if err := v5.RevokeKey(stolen); err != nil {
		t.Fatal(err)
	}
	hostKRL5, hostSig5 := signedKRL(t, hostCA, v5)
	hostKRL4, hostSig4 := signedKRL(t, hostCA, &krl.KRL{Version: 4})
	forged, forgedByUserCA := signedKRL(t, k.ca, &krl.KRL{Version: 9})
	hostCAs := []byte(line(hostCA.PublicKey()) + " sshca-host-ca-1\n")

	service := func(host map[string][]byte) typedService {
		return typedService{fakeService: goodService(t, k.ca), host: host}
	}
	good := service(map[string][]byte{"/v1/ca/host": hostCAs, "/v1/krl": hostKRL5, "/v1/krl.sig": hostSig5})

	setup := func(t *testing.T) (dir, path string) {
		dir = t.TempDir()
		return filepath.Join(dir, "sshca"), filepath.Join(dir, "sshca", "revoked-host.krl")
	}

	t.Run("ok/installs-the-host-krl-beside-the-user-krl", func(t *testing.T) {
		dir, path := setup(t)
		c := testConfig(dir, nil)
		c.Client = &client.Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: good}}
		c.HostKRL = path
		res, err := Sync(t.Context(), c)
		if err != nil {
			t.Fatalf("sync: %v (refused %q)", err, res.Refused)
		}
		if got := readFile(t, path); !bytes.Equal(got, hostKRL5) {
			t.Fatal("the installed host KRL is not the service's")
		}
		if got := readFile(t, path+".sig"); !bytes.Equal(got, hostSig5) {
			t.Fatal("the host KRL's signature is not installed beside it")
		}
		if got := readFile(t, filepath.Join(dir, KRLFile)); bytes.Equal(got, hostKRL5) {
			t.Fatal("the host KRL went to the user KRL's path")
		}
		if res.State.HostKRLVersion != 5 || res.State.KRLVersion != 7 {
			t.Fatalf("state: host KRL version %d (want 5), user KRL version %d (want 7)", res.State.HostKRLVersion, res.State.KRLVersion)
		}
		for _, want := range []string{"revoked-host.krl (empty)", "revoked-host.krl", KRLFile} {
			if !contains(res.Installed, want) {
				t.Errorf("Installed %q lacks %q", res.Installed, want)
			}
		}
		parsed, err := krl.Parse(readFile(t, path))
		if err != nil || parsed.Check(stolen) == nil {
			t.Fatalf("the installed host KRL does not revoke the stolen key (%v)", err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("host KRL mode: %v %v, want 0644 (sshd reads it)", fi.Mode(), err)
		}
		// Unchanged: nothing to install again.
		res, err = Sync(t.Context(), c)
		if err != nil || contains(res.Installed, "revoked-host.krl") || res.State.HostKRLVersion != 5 {
			t.Fatalf("second sync: installed %q, host KRL version %d, %v", res.Installed, res.State.HostKRLVersion, err)
		}
	})

	t.Run("ok/empty-host-krl-before-the-first-fetch", func(t *testing.T) {
		// The service is unreachable: sshd must still find a valid file
		// at every RevokedKeys path, or it refuses every key login.
		dir, path := setup(t)
		c := testConfig(dir, fakeService{})
		c.HostKRL = path
		if _, err := Sync(t.Context(), c); err == nil {
			t.Fatal("sync against a service that answers nothing succeeded")
		}
		parsed, err := krl.ParseWith(readFile(t, path), krl.Options{Strict: true})
		if err != nil || parsed.Check(stolen) != nil {
			t.Fatalf("the first host KRL: %v, %v", parsed, err)
		}
	})

	refusals := []struct {
		name        string
		host        map[string][]byte
		wantRefused string
	}{
		{"fail/signed-by-the-user-ca", map[string][]byte{"/v1/ca/host": hostCAs, "/v1/krl": forged, "/v1/krl.sig": forgedByUserCA},
			"revoked-host.krl: signature does not verify"},
		{"fail/signature-of-another-krl", map[string][]byte{"/v1/ca/host": hostCAs, "/v1/krl": forged, "/v1/krl.sig": hostSig5},
			"revoked-host.krl: signature does not verify"},
		{"fail/older-version", map[string][]byte{"/v1/ca/host": hostCAs, "/v1/krl": hostKRL4, "/v1/krl.sig": hostSig4},
			"revoked-host.krl: version 4 is older than the installed 5"},
		{"fail/no-host-ca-keys", map[string][]byte{"/v1/ca/host": nil, "/v1/krl": forged, "/v1/krl.sig": forgedByUserCA},
			"revoked-host.krl: cannot verify it: host CA keys: the service published no host CA keys"},
		{"fail/host-ca-list-with-a-certificate", map[string][]byte{"/v1/ca/host": ssh.MarshalAuthorizedKey(k.cert), "/v1/krl": forged, "/v1/krl.sig": forgedByUserCA},
			"revoked-host.krl: cannot verify it: host CA keys: line 1: a certificate in the list"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := setup(t)
			c := testConfig(dir, nil)
			c.Client = &client.Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: good}}
			c.HostKRL = path
			if _, err := Sync(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			before := readTree(t, filepath.Dir(path))
			c.Client = &client.Client{BaseURL: "https://ca.invalid", HTTP: &http.Client{Transport: service(tc.host)}}
			res, err := Sync(t.Context(), c)
			if err == nil || !strings.Contains(err.Error(), "host KRL: refused") {
				t.Fatalf("sync: %v, want a host KRL refusal", err)
			}
			if !containsPart(res.Refused, tc.wantRefused) {
				t.Fatalf("Refused %q lacks %q", res.Refused, tc.wantRefused)
			}
			if d := cmp.Diff(before, readTree(t, filepath.Dir(path))); d != "" {
				t.Fatalf("files changed (-before +after):\n%s", d)
			}
			if st := LoadState(dir); st.HostKRLVersion != 5 || st.KRLVersion != 7 || !strings.Contains(st.LastError, "host KRL") {
				t.Fatalf("state after the refusal: %+v", st)
			}
		})
	}

	t.Run("fail/bad-paths", func(t *testing.T) {
		dir, _ := setup(t)
		for _, p := range []string{"revoked-host.krl", filepath.Join(dir, KRLFile)} {
			c := testConfig(dir, good.fakeService)
			c.HostKRL = p
			if _, err := Sync(t.Context(), c); err == nil || !strings.Contains(err.Error(), "host KRL") {
				t.Errorf("HostKRL %q: %v, want a host KRL error", p, err)
			}
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("a refused configuration wrote %s (%v)", dir, err)
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func containsPart(list []string, s string) bool {
	for _, e := range list {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}
