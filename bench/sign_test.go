package main

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSignShort runs the sign suite in short mode: every CA key type signs,
// OpenSSH reads the certificates, and every cell has a positive figure.
func TestSignShort(t *testing.T) {
	secs, err := runSign(t.Context(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	rows := secs[0].Rows
	if want := 2 * len(signKeyTypes); len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	for _, r := range rows {
		for _, col := range []int{2, 3, 4} { // µs/op, 1-core and all-core ops/s
			if v := parseFigure(t, r[col]); v <= 0 {
				t.Errorf("%s %s: column %q = %q, want a positive number", r[0], r[1], secs[0].Header[col], r[col])
			}
		}
	}
	for _, kt := range signKeyTypes {
		found := false
		for _, c := range secs[0].Checks {
			found = found || strings.HasPrefix(c.Name, kt+": OpenSSH reads")
		}
		if !found {
			t.Errorf("no ssh-keygen check for %s", kt)
		}
	}
}

// TestSignCertRate checks the reference rate the service suite uses.
func TestSignCertRate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keyType string
		workers int
		wantErr bool
	}{
		{name: "ok/ed25519-all-cores", keyType: "ed25519", workers: runtime.NumCPU()},
		{name: "ok/ecdsa-p256-one-core", keyType: "ecdsa-p256", workers: 1},
		{name: "fail/unknown-key-type", keyType: "dsa", workers: 1, wantErr: true},
		{name: "fail/no-workers", keyType: "ed25519", workers: 0, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signCertRate(t.Context(), tc.keyType, tc.workers, 50*time.Millisecond)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("rate %v, want an error", got)
				}
				return
			}
			if err != nil || got <= 0 {
				t.Fatalf("signCertRate = %v, %v; want a positive rate", got, err)
			}
		})
	}
}

// parseFigure reads the number at the start of a cell ("1,234", "29.3").
func parseFigure(t *testing.T, cell string) float64 {
	t.Helper()
	f := strings.Fields(strings.ReplaceAll(cell, ",", ""))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "×"), 64)
	if err != nil {
		t.Errorf("cell %q: %v", cell, err)
	}
	return v
}
