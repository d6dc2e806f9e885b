package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

const weekPolicy = `roles:
  week:
    type: user
    principals: [ci]
    default_ttl: 1h
    max_ttl: 168h
`

// TestSignValidityWindow signs with ssh-keygen -V's seed workflow and the
// --valid-from/--valid-until forms, and reads the windows back with
// ssh-keygen -L; windows the role does not allow are refused and audited.
func TestSignValidityWindow(t *testing.T) {
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, weekPolicy)
	work := t.TempDir()
	pub := newKey(t, work, "id", "-t", "ed25519")
	start := time.Now().Truncate(time.Second)
	future := start.Add(48 * time.Hour).UTC()
	tests := []struct {
		name     string
		args     []string
		from, to time.Duration // expected offsets from start, before the 5m backdate
		fail     string        // expected rule or usage text
	}{
		{name: "ok/validity -5m:+1w", args: []string{"--validity", "-5m:+1w"}, from: -5 * time.Minute, to: 7 * 24 * time.Hour},
		{name: "ok/validity +2d alone", args: []string{"--validity", "+2d"}, from: 0, to: 48 * time.Hour},
		{name: "ok/valid-from, valid-until relative", args: []string{"--valid-from", "+1h", "--valid-until", "+1d"}, from: time.Hour, to: 24 * time.Hour},
		{name: "ok/valid-from RFC 3339 with ttl", args: []string{"--valid-from", future.Format(time.RFC3339), "--ttl", "2h"}, from: 48 * time.Hour, to: 50 * time.Hour},
		{name: "ok/validity keygen absolute", args: []string{"--validity", future.Format("20060102150405") + "Z:" + future.Add(time.Hour).Format("2006-01-02T15:04:05") + "Z"},
			from: 48 * time.Hour, to: 49 * time.Hour},
		{name: "fail/longer than max_ttl", args: []string{"--validity", "-5m:+1w1h"}, fail: "beyond max_ttl 168h"},
		{name: "fail/in the past", args: []string{"--valid-from", "-2h", "--valid-until", "-1h"}, fail: "in the past"},
		{name: "fail/too far ahead", args: []string{"--valid-from", "+32d"}, fail: "more than 31 days ahead"},
		{name: "fail/ttl and until", args: []string{"--valid-until", "+1h", "--ttl", "1h"}, fail: "not both"},
		{name: "fail/always", args: []string{"--validity", "always:forever"}, fail: "max_ttl"},
		{name: "fail/garbage", args: []string{"--valid-from", "tomorrow"}, fail: "not a time"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(work, "cert"+string(rune('a'+i))+".pub")
			args := append([]string{"--home", h, "sign", "user", "--role", "week", "--id", "w" + tc.name, "--out", out}, tc.args...)
			r := runCLI(t, append(args, pub)...)
			if tc.fail != "" {
				if r.code == 0 || !strings.Contains(r.stderr, tc.fail) {
					t.Fatalf("exit %d, stderr %q; want a refusal with %q", r.code, r.stderr, tc.fail)
				}
				if _, err := os.Stat(out); err == nil {
					t.Fatal("a certificate was written")
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			c := readCert(t, out)
			gotFrom := time.Unix(int64(c.ValidAfter), 0)
			gotTo := time.Unix(int64(c.ValidBefore), 0)
			wantFrom := start.Add(tc.from - 5*time.Minute)
			wantTo := start.Add(tc.to)
			if d := gotFrom.Sub(wantFrom); d < 0 || d > 5*time.Second {
				t.Errorf("valid after %s, want %s", gotFrom, wantFrom)
			}
			if d := gotTo.Sub(wantTo); d < 0 || d > 5*time.Second {
				t.Errorf("valid before %s, want %s", gotTo, wantTo)
			}
			// ssh-keygen reads the same window.
			l := keygen(t, "-L", "-f", out)
			want := "Valid: from " + gotFrom.Local().Format("2006-01-02T15:04:05") + " to " + gotTo.Local().Format("2006-01-02T15:04:05")
			if !strings.Contains(l, want) {
				t.Errorf("ssh-keygen -L:\n%s\nwant %q", l, want)
			}
		})
	}
	// The policy refusals are audited with their rule.
	st := readStore(t, h)
	var rules []string
	for _, e := range st.audit {
		if e.Action == audit.ActionDeny {
			rules = append(rules, strings.SplitN(e.Reason, ":", 2)[0])
		}
	}
	if strings.Join(rules, ",") != "ttl-exceeds-max,bad-validity,bad-validity" {
		t.Errorf("denials audited: %v", rules)
	}
}

// TestRevokedIssuanceAndList: a revoked key or key ID is refused at
// issuance, audited with the revocation named; list shows revoked
// certificates and why, and list --active leaves them out.
func TestRevokedIssuanceAndList(t *testing.T) {
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, weekPolicy)
	work := t.TempDir()
	k1 := newKey(t, work, "k1", "-t", "ed25519")
	k2 := newKey(t, work, "k2", "-t", "ed25519")
	k3 := newKey(t, work, "k3", "-t", "ed25519")
	sign := func(id, pub, out string) result {
		return runCLI(t, "--home", h, "sign", "user", "--role", "week", "--id", id, "--out", filepath.Join(work, out), pub)
	}
	for _, s := range [][3]string{{"by-serial", k1, "c1"}, {"by-keyid", k2, "c2"}, {"by-key", k3, "c3"}, {"kept", k1, "c4"}} {
		if r := sign(s[0], s[1], s[2]); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	mustRun(t, "--home", h, "revoke", "--serial", "1", "--reason", "lost laptop")
	mustRun(t, "--home", h, "revoke", "--key-id", "by-keyid", "--reason", "left")
	mustRun(t, "--home", h, "revoke", "--key", k3, "--reason", "key leaked")

	tests := []struct {
		name, id, pub, rule, msg string
	}{
		{name: "fail/revoked key", id: "new", pub: k3, rule: "revoked-key", msg: `"key leaked"`},
		{name: "fail/revoked key ID", id: "by-keyid", pub: k1, rule: "revoked-key-id", msg: `"left"`},
		{name: "ok/serial revocation does not block the key", id: "again", pub: k1},
		{name: "ok/other key ID, other key", id: "fresh", pub: k2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sign(tc.id, tc.pub, "t"+string(rune('a'+i)))
			if tc.rule == "" {
				if r.code != 0 {
					t.Fatalf("refused: %s", r.stderr)
				}
				return
			}
			if r.code == 0 || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, "revoked") {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			st := readStore(t, h)
			last := st.audit[len(st.audit)-1]
			if last.Action != audit.ActionDeny || !strings.HasPrefix(last.Reason, tc.rule+": ") {
				t.Fatalf("last audit entry %+v, want a denial by %s", last, tc.rule)
			}
		})
	}

	out := mustRun(t, "--home", h, "list")
	for _, want := range []string{`revoked (by serial 1 at `, `revoked (by key-id "by-keyid" at `, `revoked (by key at `, `"key leaked"`} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	active := mustRun(t, "--home", h, "list", "--active", "--json")
	var serials []uint64
	for _, line := range strings.Split(strings.TrimSpace(active), "\n") {
		var c struct {
			Serial  uint64 `json:"serial"`
			Revoked *struct {
				Kind string `json:"kind"`
			} `json:"revoked"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		if c.Revoked != nil {
			t.Errorf("list --active shows revoked certificate %d", c.Serial)
		}
		serials = append(serials, c.Serial)
	}
	// 4 kept, 5 again (k1, not revoked by key), 6 fresh.
	if got := strings.Trim(strings.Join(strings.Fields(strings.Trim(jsonSerials(serials), "[]")), ","), ","); got != "4,5,6" {
		t.Errorf("list --active serials %v, want 4,5,6", serials)
	}
	all := mustRun(t, "--home", h, "list", "--json", "--id", "by-keyid")
	if !strings.Contains(all, `"revoked":{"id":2,"ca_type":"user","kind":"key-id","key_id":"by-keyid","reason":"left","actor":`) {
		t.Errorf("list --json: %s", all)
	}
}

func jsonSerials(s []uint64) string {
	b, _ := json.Marshal(s)
	return strings.ReplaceAll(string(b), ",", " ")
}

// TestKeyIDRevocationStaysWithItsGeneration: after a rotation, a key ID
// revoked under the old CA key does not revoke a new-generation
// certificate that shares it — by the KRL as ssh-keygen -Q reads it, by
// issuance and by list.
func TestKeyIDRevocationStaysWithItsGeneration(t *testing.T) {
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, weekPolicy)
	work := t.TempDir()
	k := newKey(t, work, "k", "-t", "ed25519")
	old := filepath.Join(work, "old-cert.pub")
	mustRun(t, "--home", h, "sign", "user", "--role", "week", "--id", "shared", "--out", old, k)
	mustRun(t, "--home", h, "revoke", "--key-id", "shared", "--reason", "rotated out")
	mustRun(t, "--home", h, "revoke", "--key-id", "never-used", "--force")
	mustRun(t, "--home", h, "ca", "rotate", "--type", "user")
	mustRun(t, "--home", h, "ca", "rotate", "--type", "user", "--promote")
	newer := filepath.Join(work, "new-cert.pub")
	// The revocation belongs to generation 1: generation 2 may issue the ID.
	mustRun(t, "--home", h, "sign", "user", "--role", "week", "--id", "shared", "--out", newer, k)
	// The forced one was recorded under the generation active then (1).
	mustRun(t, "--home", h, "sign", "user", "--role", "week", "--id", "never-used", "--out", filepath.Join(work, "nu-cert.pub"), k)

	krlPath := filepath.Join(work, "user.krl")
	mustRun(t, "--home", h, "krl", "--type", "user", "--out", krlPath)
	q := func(cert string) string {
		out, _ := exec.Command(keygenPath, "-Q", "-f", krlPath, cert).CombinedOutput()
		return string(out)
	}
	if out := q(old); !strings.Contains(out, "REVOKED") {
		t.Errorf("old certificate not revoked by the KRL: %s", out)
	}
	if out := q(newer); !strings.Contains(out, "ok") || strings.Contains(out, "REVOKED") {
		t.Errorf("new-generation certificate revoked by the KRL: %s", out)
	}
	list := mustRun(t, "--home", h, "list", "--id", "shared")
	if strings.Count(list, "revoked (") != 1 {
		t.Errorf("list --id shared:\n%s", list)
	}
	// The rows name their generation.
	st, err := sqlite.Open(t.Context(), filepath.Join(h, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	revs, err := st.ListRevocations(t.Context(), "user")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := st.ListCAKeys(t.Context(), "user")
	var gen1 string
	for _, key := range keys {
		if key.Generation == 1 {
			gen1 = strings.Join(strings.Fields(key.PublicKey)[:2], " ")
		}
	}
	for _, r := range revs {
		if r.Kind == store.RevokeKeyID && r.Value != gen1 {
			t.Errorf("revocation %d of %q scoped to %q, want generation 1", r.ID, r.KeyID, r.Value)
		}
	}
}
