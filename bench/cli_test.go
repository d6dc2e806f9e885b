package main

import (
	"strings"
	"testing"
)

// TestCLIShort runs the cli suite in short mode: sshca signs the keys in
// one invocation (arguments and stdin list), every certificate verifies,
// and every row has a positive figure.
func TestCLIShort(t *testing.T) {
	secs, err := runCLI(t.Context(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	if len(secs) != 1 {
		t.Fatalf("%d sections, want 1", len(secs))
	}
	rows := secs[0].Rows
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	for _, r := range rows {
		for _, col := range []int{1, 2, 3, 4} { // keys, wall time, certs/s, ratio
			if v := parseFigure(t, r[col]); v <= 0 {
				t.Errorf("%s: column %q = %q, want a positive number", r[0], secs[0].Header[col], r[col])
			}
		}
	}
	if !strings.Contains(rows[2][0], "sshca") || rows[0][4] != "1.0×" {
		t.Errorf("rows out of order: %v", rows)
	}
	timing := false
	for _, c := range secs[0].Checks {
		timing = timing || (c.Timing && strings.Contains(c.Name, "faster than a loop"))
	}
	if !timing {
		t.Error("no timing check for the target")
	}
}
