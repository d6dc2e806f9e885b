package krl

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

var cmpKeys = cmp.Comparer(func(a, b ssh.PublicKey) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return bytes.Equal(a.Marshal(), b.Marshal())
})

type specCase struct {
	name     string
	in       string
	wildcard bool
	noCA     bool
	want     []SpecEntry // for ok cases; Line is checked
	err      string      // for fail cases: substring
}

func specCases(t *testing.T) (cases []specCase, ca ssh.PublicKey) {
	caSigner, ca := edKey(t, 1)
	_, user := edKey(t, 2)
	_, other := edKey(t, 3)
	rsaUser := readPub(t, filepath.Join(goldenDir, "user3.pub"))
	c42 := cert(t, caSigner, user, 42, "alice")
	c0 := cert(t, caSigner, other, 0, "no serial")
	line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	userSum := sha256.Sum256(user.Marshal())
	b64 := base64.RawStdEncoding.EncodeToString(userSum[:])
	b64Bits := b64[:42] + "B" // the last character carries non-zero unused bits

	ser := func(n int, lo, hi uint64) SpecEntry {
		return SpecEntry{Line: n, Kind: SpecSerial, CA: ca, Lo: lo, Hi: hi}
	}
	id := func(n int, s string) SpecEntry { return SpecEntry{Line: n, Kind: SpecKeyID, CA: ca, KeyID: s} }
	cases = []specCase{
		{name: "ok/empty", in: ""},
		{name: "ok/blank lines and comments", in: "\n  \n\t# comment\n   # indented comment\n#\n"},
		{name: "ok/single serial", in: "serial: 5\n", want: []SpecEntry{ser(1, 5, 5)}},
		{name: "ok/directive is case-insensitive, blank optional", in: "SeRiAl:7-9", want: []SpecEntry{ser(1, 7, 9)}},
		{name: "ok/hex and octal", in: "serial: 0x10-0X20\nserial: 010\n", want: []SpecEntry{ser(1, 16, 32), ser(2, 8, 8)}},
		{name: "ok/plus sign", in: "serial: +5", want: []SpecEntry{ser(1, 5, 5)}},
		{name: "ok/minus one wraps like strtoull", in: "serial: -1", want: []SpecEntry{ser(1, math.MaxUint64, math.MaxUint64)}},
		{name: "ok/negative range end wraps", in: "serial: 5--3", want: []SpecEntry{ser(1, 5, math.MaxUint64-2)}},
		{name: "ok/largest serial", in: "serial: 18446744073709551615\nserial: 1-18446744073709551615",
			want: []SpecEntry{ser(1, math.MaxUint64, math.MaxUint64), ser(2, 1, math.MaxUint64)}},
		{name: "ok/comment and blanks around", in: "  serial:\t 5\t # five\n", want: []SpecEntry{ser(1, 5, 5)}},
		{name: "ok/NUL ends the line", in: "serial: 5\x00garbage\n", want: []SpecEntry{ser(1, 5, 5)}},
		{name: "ok/key IDs", in: "id: x y  \nid:\nID:#c\nid:\t\tz#w\n", want: []SpecEntry{id(1, "x y"), id(2, ""), id(3, ""), id(4, "z")}},
		{name: "ok/wildcard CA", in: "serial: 3\nid: w", wildcard: true, want: []SpecEntry{
			{Line: 1, Kind: SpecSerial, Lo: 3, Hi: 3}, {Line: 2, Kind: SpecKeyID, KeyID: "w"}}},
		{name: "ok/hash without and with padding", in: "hash: SHA256:" + b64 + "\nhash:SHA256:" + b64 + "=\n", noCA: true,
			want: []SpecEntry{{Line: 1, Kind: SpecSHA256, SHA256: userSum}, {Line: 2, Kind: SpecSHA256, SHA256: userSum}}},
		{name: "ok/key, sha1 and sha256 of keys and certificates", noCA: true,
			in: "key: " + line(user) + " comment\nsha1: " + line(c42) + "\nSHA256: " + line(other) + "\nKey:\t" + line(c0) + "\n",
			want: []SpecEntry{
				{Line: 1, Kind: SpecKey, Key: user},
				{Line: 2, Kind: SpecSHA1, SHA1: sha1.Sum(user.Marshal())},
				{Line: 3, Kind: SpecSHA256, SHA256: sha256.Sum256(other.Marshal())},
				{Line: 4, Kind: SpecKey, Key: other},
			}},
		{name: "ok/bare lines: key, certificate by serial, certificate by key ID", noCA: true,
			in: line(user) + "\n" + line(c42) + "\n" + line(c0) + " trailing comment\n",
			want: []SpecEntry{
				{Line: 1, Kind: SpecKey, Key: user},
				{Line: 2, Kind: SpecSerial, CA: ca, Lo: 42, Hi: 42},
				{Line: 3, Kind: SpecKeyID, CA: ca, KeyID: "no serial"},
			}},
		{name: "ok/tab between type and base64", noCA: true, in: "key: ssh-ed25519\t" + strings.Fields(line(user))[1],
			want: []SpecEntry{{Line: 1, Kind: SpecKey, Key: user}}},
		{name: "ok/rsa-sha2-512 names an RSA key", noCA: true, in: "rsa-sha2-512 " + strings.Fields(line(rsaUser))[1],
			want: []SpecEntry{{Line: 1, Kind: SpecKey, Key: rsaUser}}},

		{name: "fail/serial 0", in: "serial: 0", err: "line 1: serial 0 is not allowed"},
		{name: "fail/range from 0", in: "\nserial: 0-5", err: "line 2: serial 0 is not allowed"},
		{name: "fail/range of one", in: "serial: 5-5", err: "invalid serial range 5-5"},
		{name: "fail/reversed range", in: "serial: 6-5", err: "invalid serial range 6-5"},
		{name: "fail/not a number", in: "serial: x", err: "invalid serial"},
		{name: "fail/no number", in: "serial:", err: "invalid serial"},
		{name: "fail/trailing letters", in: "serial: 5x", err: "invalid serial"},
		{name: "fail/bad octal", in: "serial: 08", err: "invalid serial"},
		{name: "fail/bare 0x", in: "serial: 0x", err: "invalid serial"},
		{name: "fail/overflow", in: "serial: 18446744073709551616", err: "out of range"},
		{name: "fail/overflow at range end", in: "serial: 1-99999999999999999999", err: "out of range"},
		{name: "fail/blank before dash", in: "serial: 5 -7", err: "invalid serial"},
		{name: "fail/dash only", in: "serial: -", err: "invalid serial"},
		{name: "fail/open range", in: "serial: 5-", err: "invalid serial"},
		{name: "fail/CRLF line ending", in: "serial: 5\r\n", err: "invalid serial"},
		{name: "fail/serial without CA", in: "serial: 5", noCA: true, err: "needs a CA key"},
		{name: "fail/key ID without CA", in: "id: x", noCA: true, err: "needs a CA key"},
		{name: "fail/hash SHA1", in: "hash: SHA1:abc", err: "unsupported hash algorithm"},
		{name: "fail/hash prefix is case-sensitive", in: "hash: sha256:" + b64, err: "unsupported hash algorithm"},
		{name: "fail/hash too short", in: "hash: SHA256:AAAA", err: "hash of 3 bytes"},
		{name: "fail/hash empty", in: "hash: SHA256:", err: "hash of 0 bytes"},
		{name: "fail/hash bad base64", in: "hash: SHA256:" + b64[:40] + "!!!", err: "invalid base64"},
		{name: "fail/hash unused bits set", in: "hash: SHA256:" + b64Bits, err: "invalid base64"},
		{name: "fail/garbage line", in: "\n\nnonsense", err: "line 3: invalid key"},
		{name: "fail/key without data", in: "key: ssh-ed25519", err: "invalid key"},
		{name: "fail/key with bad base64", in: "key: ssh-ed25519 AAAA-AAA", err: "invalid key"},
		{name: "fail/key directive without key", in: "key:", err: "invalid key"},
		{name: "fail/short type name", in: "ED25519 " + strings.Fields(line(user))[1], err: "invalid key"},
		{name: "fail/type mismatch", in: "ssh-rsa " + strings.Fields(line(user))[1], err: "does not match"},
	}
	return cases, ca
}

func TestParseSpec(t *testing.T) {
	cases, ca := specCases(t)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var c ssh.PublicKey
			if !tt.wildcard && !tt.noCA {
				c = ca
			}
			got, err := ParseSpec(strings.NewReader(tt.in), c, tt.wildcard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "krl: spec line ") {
					t.Fatalf("ParseSpec error = %v, want one naming the line and %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpKeys); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("fail/CA and wildcard together", func(t *testing.T) {
		if _, err := ParseSpec(strings.NewReader(""), ca, true); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("fail/certificate as CA", func(t *testing.T) {
		s, _ := edKey(t, 7)
		_, u := edKey(t, 8)
		if _, err := ParseSpec(strings.NewReader(""), cert(t, s, u, 1, "x"), false); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("fail/line too long", func(t *testing.T) {
		_, err := ParseSpec(strings.NewReader("id: "+strings.Repeat("x", maxSpecLine)), ca, false)
		if err == nil || !strings.Contains(err.Error(), "line 1: line longer") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ok/long line under the limit", func(t *testing.T) {
		long := strings.Repeat("x", 100000)
		got, err := ParseSpec(strings.NewReader("id: "+long+"\nserial: 1"), ca, false)
		if err != nil || len(got) != 2 || got[0].KeyID != long || got[1].Line != 2 {
			t.Fatalf("got %d entries, %v", len(got), err)
		}
	})
}

// TestParseSpecAgreesWithSSHKeygen feeds every case to ssh-keygen -k: it
// must fail where ParseSpec fails, and where both succeed our KRL must be
// byte-identical to ssh-keygen's.
func TestParseSpecAgreesWithSSHKeygen(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			parseSpecAgrees(t, rel.Keygen)
		})
	}
}

func parseSpecAgrees(t *testing.T, keygen string) {
	cases, ca := specCases(t)
	dir := t.TempDir()
	caPath := writeFile(t, dir, "ca.pub", ssh.MarshalAuthorizedKey(ca))
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			spec := writeFile(t, dir, fmt.Sprintf("%d.spec", i), []byte(tt.in))
			out := filepath.Join(dir, fmt.Sprintf("%d.krl", i))
			args := []string{"-q", "-k", "-f", out}
			var c ssh.PublicKey
			switch {
			case tt.wildcard:
				args = append(args, "-s", "none")
			case !tt.noCA:
				args = append(args, "-s", caPath)
				c = ca
			}
			msg, kerr := exec.Command(keygen, append(args, spec)...).CombinedOutput()
			entries, err := ParseSpec(strings.NewReader(tt.in), c, tt.wildcard)
			if (kerr == nil) != (err == nil) {
				t.Fatalf("ssh-keygen: %v %s; ParseSpec: %v", kerr, msg, err)
			}
			if err != nil {
				return
			}
			theirs, rerr := os.ReadFile(out)
			if rerr != nil {
				t.Fatal(rerr)
			}
			dec, perr := Parse(theirs)
			if perr != nil {
				t.Fatalf("Parse(ssh-keygen's): %v", perr)
			}
			k := &KRL{GeneratedDate: dec.GeneratedDate}
			if err := k.Apply(entries); err != nil {
				t.Fatal(err)
			}
			ours, merr := k.Marshal()
			if merr != nil {
				t.Fatal(merr)
			}
			if !bytes.Equal(ours, theirs) {
				t.Errorf("bytes differ\nours   %x\ntheirs %x", ours, theirs)
			}
		})
	}
}

func TestApply(t *testing.T) {
	_, ca := edKey(t, 1)
	tests := []struct {
		name    string
		entries []SpecEntry
		err     string
	}{
		{"fail/serial 0", []SpecEntry{{Line: 4, Kind: SpecSerial, CA: ca, Lo: 0, Hi: 3}}, "krl: spec line 4: serial 0 cannot be revoked"},
		{"fail/reversed", []SpecEntry{{Line: 5, Kind: SpecSerial, Lo: 9, Hi: 3}}, "krl: spec line 5: serial range 9-3 is reversed"},
		{"fail/unknown kind", []SpecEntry{{Line: 6, Kind: "nope"}}, "krl: spec line 6: unknown entry kind"},
		{"fail/nil key", []SpecEntry{{Line: 7, Kind: SpecKey}}, "krl: spec line 7: nil key"},
		{"fail/key ID with NUL", []SpecEntry{{Line: 8, Kind: SpecKeyID, KeyID: "a\x00"}}, "krl: spec line 8: key ID contains NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&KRL{}).Apply(tt.entries)
			if err == nil || err.Error() != tt.err && !strings.HasPrefix(err.Error(), tt.err) {
				t.Fatalf("Apply = %v, want %q", err, tt.err)
			}
		})
	}
	t.Run("ok/all kinds", func(t *testing.T) {
		k := &KRL{}
		err := k.Apply([]SpecEntry{
			{Kind: SpecSerial, CA: ca, Lo: 1, Hi: 2},
			{Kind: SpecKeyID, KeyID: "w"},
			{Kind: SpecKey, Key: ca},
			{Kind: SpecSHA1, SHA1: [20]byte{1}},
			{Kind: SpecSHA256, SHA256: [32]byte{2}},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := &KRL{
			Certs:        []*CertSection{{CA: ca.Marshal(), Serials: []SerialRange{{1, 2}}}, {KeyIDs: []string{"w"}}},
			ExplicitKeys: [][]byte{ca.Marshal()},
			SHA1:         [][20]byte{{1}},
			SHA256:       [][32]byte{{2}},
		}
		if diff := cmp.Diff(want, k); diff != "" {
			t.Error(diff)
		}
	})
}
