package krl

import (
	"crypto/sha1"
	"crypto/sha256"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestCheck(t *testing.T) {
	ca1, ca1Pub := edKey(t, 1)
	ca2, _ := edKey(t, 2)
	ca3, ca3Pub := edKey(t, 3)
	_, u1 := edKey(t, 11)
	_, u2 := edKey(t, 12)
	_, u3 := edKey(t, 13)
	_, u4 := edKey(t, 14)
	_, u5 := edKey(t, 15)

	k := &KRL{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(k.RevokeSerials(ca1Pub, 10, 20))
	must(k.RevokeSerials(ca1Pub, 30, 30))
	must(k.RevokeKeyID(ca1Pub, "bad-id"))
	must(k.RevokeSerials(nil, 500, 500))
	must(k.RevokeKeyID(nil, "everywhere"))
	must(k.RevokeKey(u1))
	k.RevokeSHA1(sha1.Sum(u2.Marshal()))
	k.RevokeSHA256(sha256.Sum256(u3.Marshal()))
	must(k.RevokeKey(cert(t, ca2, u5, 99, "x"))) // reduced to u5
	k.RevokeSHA256(FingerprintSHA256(ca3Pub))

	tests := []struct {
		name    string
		key     ssh.PublicKey
		section string // "" = not revoked
		detail  string
	}{
		{"ok/plain key not listed", u4, "", ""},
		{"ok/explicit plain key", u1, MatchExplicitKey, "revoked explicitly"},
		{"ok/sha1", u2, MatchSHA1, "SHA-1"},
		{"ok/sha256", u3, MatchSHA256, ssh.FingerprintSHA256(u3)},
		{"ok/certificate given to RevokeKey revokes its key", u5, MatchExplicitKey, ""},
		{"ok/certificate over a revoked key", cert(t, ca1, u1, 1, "a"), MatchExplicitKey, ""},
		{"ok/certificate over a key revoked by sha256", cert(t, ca2, u3, 1, "a"), MatchSHA256, ""},
		{"ok/serial inside range", cert(t, ca1, u4, 15, "a"), MatchSerial, "serial 15 is revoked under CA " + ssh.FingerprintSHA256(ca1Pub) + " (range 10-20)"},
		{"ok/single serial", cert(t, ca1, u4, 30, "a"), MatchSerial, "serial 30 is revoked under CA"},
		{"ok/serial just outside", cert(t, ca1, u4, 21, "a"), "", ""},
		{"ok/same serial other CA", cert(t, ca2, u4, 15, "a"), "", ""},
		{"ok/key ID under its CA", cert(t, ca1, u4, 1000, "bad-id"), MatchKeyID, `key ID "bad-id" is revoked under CA`},
		{"ok/key ID wins over serial", cert(t, ca1, u4, 15, "bad-id"), MatchKeyID, ""},
		{"ok/key ID with serial 0", cert(t, ca1, u4, 0, "bad-id"), MatchKeyID, ""},
		{"ok/serial 0 never matches serials", cert(t, ca1, u4, 0, "a"), "", ""},
		{"ok/key ID under another CA", cert(t, ca2, u4, 1, "bad-id"), "", ""},
		{"ok/wildcard serial", cert(t, ca2, u4, 500, "a"), MatchSerial, "under the wildcard CA"},
		{"ok/wildcard key ID", cert(t, ca3, u4, 0, "everywhere"), MatchKeyID, "under the wildcard CA"},
		{"ok/revoked CA key", cert(t, ca3, u4, 7, "a"), MatchCAKey, "CA key " + ssh.FingerprintSHA256(ca3Pub) + " is revoked: key"},
		{"ok/plain CA key itself", ca3Pub, MatchSHA256, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := k.Check(tt.key)
			if tt.section == "" {
				if m != nil {
					t.Fatalf("Check = %+v, want not revoked", m)
				}
				return
			}
			if m == nil || m.Section != tt.section || !strings.Contains(m.Detail, tt.detail) {
				t.Fatalf("Check = %+v, want section %q with %q", m, tt.section, tt.detail)
			}
		})
	}
	t.Run("ok/nil key", func(t *testing.T) {
		if m := k.Check(nil); m != nil {
			t.Fatal(m)
		}
	})
	t.Run("ok/unnormalised input", func(t *testing.T) {
		u := &KRL{Certs: []*CertSection{
			{CA: ca1Pub.Marshal(), Serials: []SerialRange{{50, 60}, {1, 3}}},
			{CA: ca1Pub.Marshal(), Serials: []SerialRange{{70, 70}}},
		}}
		for _, s := range []uint64{2, 55, 70} {
			if u.Check(cert(t, ca1, u4, s, "a")) == nil {
				t.Errorf("serial %d not revoked", s)
			}
		}
	})
}
