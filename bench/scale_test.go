package main

import (
	"strings"
	"testing"
)

// TestScaleShort runs the scale suite in short mode: two small homes filled
// through the issuance path, every command run, their outputs checked
// (list counts, list --id finds one, fleet status lists every host; audit
// verify and krl must succeed). Times are reported, never asserted.
func TestScaleShort(t *testing.T) {
	o := testOptions(t)
	secs, err := runScale(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	if got := len(secs[0].Rows); got != 2 {
		t.Fatalf("%d rows, want one per size (2)", got)
	}
	var md strings.Builder
	writeMarkdown(&md, secs)
	t.Log("\n" + md.String())
}

// TestStormShort runs the renewal storm in short mode: 200 hosts renew
// within 3 s through the real client, each certificate verified, audit
// verify after.
func TestStormShort(t *testing.T) {
	o := testOptions(t)
	secs, err := runStorm(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	if got := secs[0].Rows[0][2]; got != "200" {
		t.Fatalf("%s renewed, want 200", got)
	}
}
