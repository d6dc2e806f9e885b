package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestParseWindowTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		fail string
	}{
		{in: "now", want: now},
		{in: "-5m", want: now.Add(-5 * time.Minute)},
		{in: "+1w2d", want: now.Add(9 * 24 * time.Hour)},
		{in: "+90", want: now.Add(90 * time.Second)},
		{in: "+1h30M", want: now.Add(90 * time.Minute)},
		{in: "2026-05-01T09:00:00Z", want: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2026-05-01T11:00:00+02:00", want: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "", fail: "empty"},
		{in: "+", fail: "no duration"},
		{in: "+5y", fail: "unknown unit"},
		{in: "+m", fail: "bad duration"},
		{in: "+522w", fail: "too large"},             // just over ten years
		{in: "+300000000w", fail: "too large"},       // overflows with its unit
		{in: "+9223372036854775808s", fail: "large"}, // overflows int64
		{in: "2026-05-01T09:00", fail: "RFC 3339"},   // no zone: the service cannot know the client's
		{in: "tomorrow", fail: "RFC 3339"},
	}
	for _, tc := range tests {
		got, err := ParseWindowTime(tc.in, now)
		switch {
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("%q: got %v, %v; want an error with %q", tc.in, got, err, tc.fail)
		case tc.fail == "" && (err != nil || !got.Equal(tc.want)):
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if !IsRelativeTime("-5m") || !IsRelativeTime("now") || IsRelativeTime("2026-05-01T09:00:00Z") {
		t.Error("IsRelativeTime")
	}
}

func TestCertificateOf(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	caPub, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pub)
	caSigner, _ := ssh.NewSignerFromKey(caPriv)
	caKey, _ := ssh.NewPublicKey(caPub)
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	sign := func(after, before uint64) *ssh.Certificate {
		c := &ssh.Certificate{Key: key, Serial: 7, CertType: ssh.HostCert, KeyId: "h", ValidPrincipals: []string{"a.corp"},
			ValidAfter: after, ValidBefore: before, Permissions: ssh.Permissions{Extensions: map[string]string{"b": "", "a": ""}}}
		if err := c.SignCert(rand.Reader, caSigner); err != nil {
			t.Fatal(err)
		}
		return c
	}
	u := uint64(now.Unix())
	tests := []struct {
		name          string
		after, before uint64
		status        string
		left          int64 // -1: absent
	}{
		{"valid", u - 60, u + 3600, StatusValid, 3600},
		{"not yet valid", u + 60, u + 3600, StatusNotYetValid, 3600},
		{"expired", u - 3600, u - 60, StatusExpired, 0},
		{"forever", 0, ssh.CertTimeInfinity, StatusValid, -1},
		{"beyond year 9999", 0, ssh.CertTimeInfinity - 1, StatusValid, int64(maxJSONTime) - now.Unix()},
	}
	for _, tc := range tests {
		c := CertificateOf(sign(tc.after, tc.before), now)
		if c.Status != tc.status || (tc.left < 0) != (c.RemainingSeconds == nil) || (c.RemainingSeconds != nil && *c.RemainingSeconds != tc.left) {
			t.Errorf("%s: status %s, remaining %v", tc.name, c.Status, c.RemainingSeconds)
		}
		if c.CertType != "host" || c.KeyFingerprint != ssh.FingerprintSHA256(key) || c.CAFingerprint != ssh.FingerprintSHA256(caKey) ||
			strings.Join(c.Extensions, ",") != "a,b" || c.SignatureAlgorithm != ssh.KeyAlgoED25519 {
			t.Errorf("%s: %+v", tc.name, c)
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.before == ssh.CertTimeInfinity && strings.Contains(string(data), "valid_before") {
			t.Errorf("%s: %s", tc.name, data)
		}
	}
}
