package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// schemaTypes are the objects docs/json.md documents, by the name it
// gives after "Go type:".
var schemaTypes = map[string]reflect.Type{
	"api.Certificate":        reflect.TypeFor[api.Certificate](),
	"api.BatchCertResponse":  reflect.TypeFor[api.BatchCertResponse](),
	"api.BatchError":         reflect.TypeFor[api.BatchError](),
	"api.Revocation":         reflect.TypeFor[api.Revocation](),
	"api.RevocationResponse": reflect.TypeFor[api.RevocationResponse](),
	"api.KRLResult":          reflect.TypeFor[api.KRLResult](),
	"api.KRLCheck":           reflect.TypeFor[api.KRLCheck](),
	"api.CAKey":              reflect.TypeFor[api.CAKey](),
	"api.Token":              reflect.TypeFor[api.Token](),
	"api.FleetHost":          reflect.TypeFor[api.FleetHost](),
	"api.FleetCAKey":         reflect.TypeFor[api.FleetCAKey](),
	"krl.Description":        reflect.TypeFor[krl.Description](),
	"krl.CertDescription":    reflect.TypeFor[krl.CertDescription](),
	"krl.KeyDescription":     reflect.TypeFor[krl.KeyDescription](),
	"audit.Entry":            reflect.TypeFor[audit.Entry](),
}

// jsonField is one field of a schema type, from its json tag.
type jsonField struct {
	name     string
	optional bool // omitempty or omitzero: absent when it does not apply
}

func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || !f.IsExported() {
			panic(fmt.Sprintf("%s.%s: every schema field needs a json name", t, f.Name))
		}
		out = append(out, jsonField{name: name, optional: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")})
	}
	return out
}

// docSection is one object of docs/json.md.
type docSection struct {
	goType   string
	fields   []string
	examples []string
}

var (
	goTypeLine = regexp.MustCompile("^Go type: `([a-zA-Z.]+)`")
	fieldRow   = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
)

func readJSONDoc(t *testing.T) []docSection {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []docSection
	var cur *docSection
	inExample := false
	var example strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case inExample && line == "```":
			inExample = false
			cur.examples = append(cur.examples, example.String())
		case inExample:
			example.WriteString(line + "\n")
		case strings.HasPrefix(line, "#"):
			cur = nil
		case goTypeLine.MatchString(line):
			out = append(out, docSection{goType: goTypeLine.FindStringSubmatch(line)[1]})
			cur = &out[len(out)-1]
		case cur != nil && fieldRow.MatchString(line):
			cur.fields = append(cur.fields, fieldRow.FindStringSubmatch(line)[1])
		case cur != nil && line == "```json":
			inExample = true
			example.Reset()
		}
	}
	return out
}

// checkObject decodes one JSON object strictly (unknown or repeated fields
// refused) into a new value of t, and checks that every field that is not
// optional is there. It returns the decoded value.
func checkObject(t *testing.T, typ reflect.Type, data string) any {
	t.Helper()
	v := reflect.New(typ)
	if err := api.DecodeStrict(strings.NewReader(data), v.Interface()); err != nil {
		t.Fatalf("%s: %v\n%s", typ, err, data)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &keys); err != nil {
		t.Fatal(err)
	}
	for _, f := range jsonFields(typ) {
		if _, ok := keys[f.name]; !ok && !f.optional {
			t.Errorf("%s: field %q missing:\n%s", typ, f.name, data)
		}
		if raw, ok := keys[f.name]; ok && (string(raw) == `""` || string(raw) == "null") {
			t.Errorf("%s: field %q is empty; leave it out instead:\n%s", typ, f.name, data)
		}
	}
	return v.Elem().Interface()
}

// TestJSONDocMatchesTypes: docs/json.md names exactly the fields of each
// schema type, in order, and its examples decode strictly into them.
func TestJSONDocMatchesTypes(t *testing.T) {
	sections := readJSONDoc(t)
	seen := map[string]bool{}
	for _, s := range sections {
		typ, ok := schemaTypes[s.goType]
		if !ok {
			t.Errorf("docs/json.md documents %s, which the test does not know", s.goType)
			continue
		}
		seen[s.goType] = true
		var want []string
		for _, f := range jsonFields(typ) {
			want = append(want, f.name)
		}
		if !slices.Equal(s.fields, want) {
			t.Errorf("docs/json.md %s fields\n  %v\nbut the type's json tags are\n  %v", s.goType, s.fields, want)
		}
		if len(s.examples) == 0 {
			t.Errorf("docs/json.md %s has no example", s.goType)
		}
		for _, ex := range s.examples {
			checkObject(t, typ, ex)
		}
	}
	for name := range schemaTypes {
		if !seen[name] {
			t.Errorf("docs/json.md does not document %s", name)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("docs/json.md")) {
		t.Error("README.md does not link docs/json.md")
	}
}

// jsonLines runs sshca and decodes every line of its stdout as a schema
// object of type T.
func jsonLines[T any](t *testing.T, args ...string) []T {
	t.Helper()
	out := mustRun(t, args...)
	return decodeLines[T](t, out)
}

func decodeLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			t.Fatalf("empty line in JSON output %q", out)
		}
		vs = append(vs, checkObject(t, reflect.TypeFor[T](), line).(T))
	}
	return vs
}

const jsonPolicy = `roles:
  deploy:
    type: user
    principals: [deploy, ci]
    default_ttl: 1h
    max_ttl: 8h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 720h
`

// TestJSONOutputs runs every command that takes --json against a real home
// and checks each output against the schema: strictly decoded, nothing
// undocumented, nothing required missing, and the values right.
func TestJSONOutputs(t *testing.T) {
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, jsonPolicy)
	work := t.TempDir()
	alice := newKey(t, work, "alice", "-t", "ed25519")
	r1, r2 := newKey(t, work, "r1", "-t", "ed25519"), newKey(t, work, "r2", "-t", "ecdsa")
	hostPub := newKey(t, work, "host", "-t", "ed25519")
	before := time.Now().Add(-time.Second).UTC()

	// sign user, one key.
	got := jsonLines[api.Certificate](t, "--home", h, "sign", "user", "--json", "--role", "deploy", "--id", "alice-1", "--validity", "-5m:+2h", alice)
	if len(got) != 1 {
		t.Fatalf("sign --json printed %d objects", len(got))
	}
	c := got[0]
	file := strings.TrimSuffix(alice, ".pub") + "-cert.pub"
	onDisk := readCert(t, file)
	if c.File != file || c.Serial != onDisk.Serial || c.Certificate != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(onDisk))) {
		t.Errorf("sign --json: file %q serial %d, want %q %d and the certificate written", c.File, c.Serial, file, onDisk.Serial)
	}
	if c.CertType != "user" || c.Role != "deploy" || c.Requester != "cli:clitest" || c.Status != api.StatusValid || c.KeyID != "alice-1" ||
		!slices.Equal(c.Principals, []string{"deploy", "ci"}) || !slices.Equal(c.Extensions, []string{"permit-pty"}) {
		t.Errorf("sign --json: %+v", c)
	}
	if c.KeyFingerprint != ssh.FingerprintSHA256(onDisk.Key) || c.CAFingerprint != ssh.FingerprintSHA256(onDisk.SignatureKey) ||
		!strings.HasPrefix(c.KeyFingerprint, "SHA256:") || c.KeyType != ssh.KeyAlgoED25519 {
		t.Errorf("sign --json fingerprints: %+v", c)
	}
	if c.ValidBefore.Unix() != int64(onDisk.ValidBefore) || c.ValidAfter.Unix() != int64(onDisk.ValidAfter) || c.ValidBefore.Location() != time.UTC {
		t.Errorf("sign --json validity %s..%s, certificate %d..%d", c.ValidAfter, c.ValidBefore, onDisk.ValidAfter, onDisk.ValidBefore)
	}
	if left := *c.RemainingSeconds; left < 2*3600-60 || left > 2*3600 {
		t.Errorf("remaining_seconds %d, want about 7200", left)
	}
	if c.IssuedAt.Before(before) || c.IssuedAt.After(time.Now()) {
		t.Errorf("issued_at %s", c.IssuedAt)
	}

	// A key on stdin, certificate to stdout: the object carries it, with no file.
	var stdout, stderr bytes.Buffer
	pubData, _ := os.ReadFile(alice)
	if code := runWithStdin(t, pubData, &stdout, &stderr, "--home", h, "sign", "user", "--json", "--role", "deploy", "--id", "stdin", "-"); code != 0 {
		t.Fatalf("sign - --json: exit %d: %s", code, stderr.String())
	}
	if s := decodeLines[api.Certificate](t, stdout.String()); len(s) != 1 || s[0].File != "" || !strings.HasPrefix(s[0].Certificate, "ssh-ed25519-cert-v01@openssh.com ") {
		t.Errorf("sign - --json: %s", stdout.String())
	}

	// Batch: one object per certificate, in serial order, each with its file.
	batch := jsonLines[api.Certificate](t, "--home", h, "sign", "user", "--json", "--role", "deploy", "--id", "ci-pool", "--principals", "ci", r1, r2)
	if len(batch) != 2 || batch[0].File != strings.TrimSuffix(r1, ".pub")+"-cert.pub" || batch[1].File != strings.TrimSuffix(r2, ".pub")+"-cert.pub" ||
		batch[1].Serial != batch[0].Serial+1 || batch[1].KeyType != "ecdsa-sha2-nistp256" || !slices.Equal(batch[0].Principals, []string{"ci"}) {
		t.Errorf("batch sign --json: %+v", batch)
	}

	// sign host.
	hc := jsonLines[api.Certificate](t, "--home", h, "sign", "host", "--json", "--role", "servers", "--id", "app-01", "--principals", "app-01.corp", hostPub)
	if len(hc) != 1 || hc[0].CertType != "host" || hc[0].Role != "servers" || len(hc[0].Extensions) != 0 || hc[0].Extensions == nil {
		t.Errorf("sign host --json: %+v", hc)
	}

	// revoke, then list shows it revoked, with the revocation.
	rv := jsonLines[api.RevocationResponse](t, "--home", h, "revoke", "--json", "--serial", fmt.Sprint(batch[0].Serial), "--reason", "runner gone")
	if len(rv) != 1 || !rv[0].Added || rv[0].CAType != "user" || rv[0].KRLVersion == 0 {
		t.Errorf("revoke --json: %+v", rv)
	}
	again := jsonLines[api.RevocationResponse](t, "--home", h, "revoke", "--json", "--serial", fmt.Sprint(batch[0].Serial))
	if again[0].Added || again[0].KRLVersion != rv[0].KRLVersion {
		t.Errorf("revoke --json again: %+v, first %+v", again[0], rv[0])
	}
	byKey := jsonLines[api.RevocationResponse](t, "--home", h, "revoke", "--json", "--key", r2)
	if !byKey[0].Added || byKey[0].KRLVersion <= rv[0].KRLVersion {
		t.Errorf("revoke --key --json: %+v", byKey[0])
	}
	list := jsonLines[api.Certificate](t, "--home", h, "list", "--json")
	if len(list) != 5 {
		t.Fatalf("list --json: %d certificates, want 5", len(list))
	}
	for _, l := range list {
		switch l.Serial {
		case batch[0].Serial:
			r := l.Revoked
			if l.Status != api.StatusRevoked || r == nil || r.Kind != store.RevokeSerial || r.SerialFrom != l.Serial || r.SerialTo != l.Serial ||
				r.Reason != "runner gone" || r.Actor != "cli:clitest" || r.CAType != "user" || r.CoversUntil.IsZero() {
				t.Errorf("list --json, revoked by serial: %+v %+v", l, r)
			}
		case batch[1].Serial:
			if l.Status != api.StatusRevoked || l.Revoked == nil || l.Revoked.Kind != store.RevokeKey || l.Revoked.Fingerprint != batch[1].KeyFingerprint {
				t.Errorf("list --json, revoked by key: %+v %+v", l, l.Revoked)
			}
		default:
			if l.Status != api.StatusValid || l.Revoked != nil || l.Role == "" || l.Certificate == "" {
				t.Errorf("list --json: %+v", l)
			}
		}
		if l.Serial == c.Serial && (l.Certificate != c.Certificate || l.IssuedAt != c.IssuedAt || l.Requester != c.Requester) {
			t.Errorf("list --json and sign --json differ:\n%+v\n%+v", l, c)
		}
	}
	if act := jsonLines[api.Certificate](t, "--home", h, "list", "--json", "--active", "--type", "user"); len(act) != 2 {
		t.Errorf("list --json --active: %d, want 2", len(act))
	}

	// inspect and status: the same certificate object, judged by time.
	in := jsonLines[api.Certificate](t, "inspect", "--json", file)
	want := c
	want.Role, want.Requester, want.IssuedAt = "", "", time.Time{}
	in[0].RemainingSeconds, want.RemainingSeconds = nil, nil
	if !reflect.DeepEqual(in[0], want) {
		t.Errorf("inspect --json\n%+v\nsign --json\n%+v", in[0], want)
	}
	st := jsonLines[api.Certificate](t, "status", "--json", "--key", strings.TrimSuffix(alice, ".pub"))
	if st[0].File != file || st[0].Serial != c.Serial || st[0].Status != api.StatusValid {
		t.Errorf("status --json: %+v", st[0])
	}
	// An expired certificate (ssh-keygen signs one): the object, then exit 1.
	otherCA := strings.TrimSuffix(newKey(t, work, "other-ca", "-t", "ed25519"), ".pub")
	old := newKey(t, work, "old", "-t", "ed25519")
	keygen(t, "-q", "-s", otherCA, "-I", "old", "-n", "bob", "-V", "20200101:20200102", old)
	r := runCLI(t, "status", "--json", "--key", strings.TrimSuffix(old, ".pub"))
	if r.code != 1 {
		t.Errorf("status --json of an expired certificate: exit %d", r.code)
	}
	if exp := decodeLines[api.Certificate](t, r.stdout); exp[0].Status != api.StatusExpired || *exp[0].RemainingSeconds != 0 ||
		exp[0].ValidBefore != time.Date(2020, 1, 2, 0, 0, 0, 0, time.Local).UTC() || exp[0].Role != "" {
		t.Errorf("status --json of an expired certificate: %+v", exp[0])
	}

	// krl --out --json, and inspect of the KRL.
	krlFile := filepath.Join(work, "revoked.krl")
	kr := jsonLines[api.KRLResult](t, "--home", h, "krl", "--json", "--out", krlFile, "--sign")
	data, err := os.ReadFile(krlFile)
	if err != nil {
		t.Fatal(err)
	}
	if k := kr[0]; k.File != krlFile || k.SizeBytes != len(data) || k.KRLVersion != byKey[0].KRLVersion || k.SignatureFile != krlFile+".sig" ||
		k.SigningCAFingerprint != c.CAFingerprint || k.CAType != "user" || k.Pruned != nil || len(k.SHA256) != 64 {
		t.Errorf("krl --json: %+v", k)
	}
	if r := runCLI(t, "--home", h, "krl", "--json"); r.code != 2 || r.stdout != "" {
		t.Errorf("krl --json without --out: exit %d, stdout %q", r.code, r.stdout)
	}
	ver := jsonLines[api.KRLResult](t, "--home", h, "krl", "verify", "--json", krlFile)
	if v := ver[0]; v.File != krlFile || v.KRLVersion != kr[0].KRLVersion || v.SHA256 != kr[0].SHA256 || v.SigningCAFingerprint != kr[0].SigningCAFingerprint ||
		v.SignatureFile != kr[0].SignatureFile || v.Pruned != nil {
		t.Errorf("krl verify --json: %+v, krl --json %+v", v, kr[0])
	}
	r1Cert, aliceCert := strings.TrimSuffix(r1, ".pub")+"-cert.pub", file
	r = runCLI(t, "krl", "check", "--json", "--krl", krlFile, aliceCert, r1Cert, r2)
	if r.code != 1 {
		t.Errorf("krl check --json with revoked keys: exit %d", r.code)
	}
	checks := decodeLines[api.KRLCheck](t, r.stdout)
	if len(checks) != 3 || checks[0].Revoked || checks[0].Serial != c.Serial || checks[0].Section != "" ||
		!checks[1].Revoked || checks[1].Section != krl.MatchSerial || checks[1].Serial != batch[0].Serial || checks[1].KeyFingerprint != batch[0].KeyFingerprint ||
		!checks[2].Revoked || checks[2].Section != krl.MatchExplicitKey || checks[2].Serial != 0 || checks[2].Detail == "" {
		t.Errorf("krl check --json: %+v", checks)
	}
	desc := jsonLines[krl.Description](t, "inspect", "--json", krlFile)
	if d := desc[0]; d.Version != kr[0].KRLVersion || len(d.Certificates) != 1 || len(d.ExplicitKeys) != 1 {
		t.Errorf("inspect --json KRL: %+v", d)
	}

	// ca list, token list.
	keys := jsonLines[api.CAKey](t, "--home", h, "ca", "list", "--json")
	if len(keys) != 2 || keys[0].CAType != "user" || keys[0].State != store.StateActive || keys[0].Fingerprint != c.CAFingerprint ||
		keys[0].Certificates != 4 || keys[1].CAType != "host" || keys[1].Certificates != 1 || keys[1].LastCertExpiry.IsZero() ||
		!strings.HasPrefix(keys[0].PublicKey, "ssh-ed25519 ") {
		t.Errorf("ca list --json: %+v", keys)
	}
	mustRun(t, "--home", h, "token", "create", "--role", "deploy", "--name", "ci-deploy", "--ttl", "30d")
	mustRun(t, "--home", h, "token", "create", "--admin", "--name", "oncall", "--ttl", "1d")
	mustRun(t, "--home", h, "token", "revoke", "oncall")
	toks := jsonLines[api.Token](t, "--home", h, "token", "list", "--json")
	if len(toks) != 2 {
		t.Fatalf("token list --json: %+v", toks)
	}
	for _, tk := range toks {
		switch tk.Name {
		case "ci-deploy":
			if tk.Kind != store.TokenRole || tk.Status != "active" || !slices.Equal(tk.Roles, []string{"deploy"}) || !tk.RevokedAt.IsZero() ||
				tk.ExpiresAt.Sub(tk.CreatedAt) != 30*24*time.Hour || len(tk.ID) != 16 {
				t.Errorf("token list --json: %+v", tk)
			}
		case "oncall":
			if tk.Status != "revoked" || tk.RevokedAt.IsZero() || tk.Roles != nil {
				t.Errorf("token list --json: %+v", tk)
			}
		default:
			t.Errorf("token list --json: %+v", tk)
		}
	}

	// audit list: every entry, strictly, the chain intact.
	entries := jsonLines[audit.Entry](t, "--home", h, "audit", "list", "--json")
	if len(entries) < 10 || entries[len(entries)-1].Action != audit.ActionToken || audit.Verify(entries) != nil {
		t.Errorf("audit list --json: %d entries, last %+v, verify %v", len(entries), entries[len(entries)-1], audit.Verify(entries))
	}

	// fleet status, from a host report recorded as the service records it.
	if out := mustRun(t, "--home", h, "fleet", "status", "--json"); out != "" {
		t.Errorf("fleet status --json with no hosts: %q", out)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(h, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Now().Add(-time.Minute)
	err = db.ReportHost(t.Context(), store.Host{Name: "app-01.corp", LastSeen: seen, KRLVersion: 1, CAKeys: []string{c.CAFingerprint, "SHA256:unknown"},
		HostCertExpiry: hc[0].ValidBefore, HostCertCA: hc[0].CAFingerprint})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	fleet := jsonLines[api.FleetHost](t, "--home", h, "fleet", "status", "--json")
	if len(fleet) != 1 {
		t.Fatalf("fleet status --json: %+v", fleet)
	}
	fh := fleet[0]
	if fh.Name != "app-01.corp" || fh.KRLVersion != 1 || fh.KRLLatest != byKey[0].KRLVersion || fh.OK ||
		!slices.Equal(fh.Flags, []string{fmt.Sprintf("krl-behind-%d", fh.KRLLatest-1)}) || fh.LastSeenAgeSeconds < 59 || fh.LastSeenAgeSeconds > 120 ||
		!fh.LastSeen.Equal(seen.Truncate(time.Second)) || fh.HostCertCAGeneration != 1 || fh.HostCertCAFingerprint != hc[0].CAFingerprint ||
		!fh.HostCertExpiry.Equal(hc[0].ValidBefore) {
		t.Errorf("fleet status --json: %+v", fh)
	}
	if !slices.Equal(fh.CAKeys, []api.FleetCAKey{{Fingerprint: c.CAFingerprint, Generation: 1}, {Fingerprint: "SHA256:unknown"}}) {
		t.Errorf("fleet status --json ca_keys: %+v", fh.CAKeys)
	}
}

// runWithStdin runs sshca in-process with stdin.
func runWithStdin(t *testing.T, stdin []byte, stdout, stderr *bytes.Buffer, args ...string) int {
	t.Helper()
	return cli.Run(t.Context(), args, bytes.NewReader(stdin), stdout, stderr, testEnv)
}
