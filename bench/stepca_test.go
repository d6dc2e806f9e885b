package main

import (
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/testkit"
)

// TestStepCAShort runs the stepca suite in short mode against the pinned
// step-ca release, built once per machine into the cache: every response
// of both servers verified, step-ca's one-time tokens enforced. Timing
// targets are logged, never asserted. Outside CI a step-ca that cannot be
// built (no module proxy) skips the test; under CI=true it fails it.
func TestStepCAShort(t *testing.T) {
	o := testOptions(t)
	info, err := stepcaBinary(t.Context(), t.Logf)
	if err != nil {
		testkit.SkipOrFatal(t, "step-ca %s cannot be built here (required under CI): %v", stepcaVersion, err)
	}
	t.Logf("step-ca %s: %s", stepcaVersion, info.Source)
	secs, err := runStepCA(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	if len(secs) != 1 || len(secs[0].Rows) != len(stepcaClients) {
		t.Fatalf("want one section with %d rows, got %+v", len(stepcaClients), secs)
	}
	// The correctness verdicts are there (requireChecks failed any that is false).
	names := map[string]bool{}
	for _, c := range secs[0].Checks {
		names[c.Name] = true
	}
	for _, want := range []string{"sshca: every response verified", "step-ca: every response verified",
		"step-ca refuses a token it has already accepted (its one-time-token store is in use)"} {
		if !names[want] {
			t.Errorf("no check %q", want)
		}
	}
	var md strings.Builder
	writeMarkdown(&md, secs)
	t.Log("\n" + md.String())
}

// TestStepCAParseVersionM: only the pinned release's main package, built
// without cgo and without replacements, is taken from the cache.
func TestStepCAParseVersionM(t *testing.T) {
	good := "/c/step-ca: go1.26.8\n\tpath\tgithub.com/smallstep/certificates/cmd/step-ca\n" +
		"\tmod\tgithub.com/smallstep/certificates\tv0.30.2\th1:abc=\n\tdep\tgo.step.sm/crypto\tv0.77.1\th1:x=\n" +
		"\tbuild\t-buildmode=exe\n\tbuild\tCGO_ENABLED=0\n\tbuild\tGOARCH=amd64\n"
	info, err := stepcaParseVersionM("/c/step-ca", good)
	if err != nil {
		t.Fatalf("good binary refused: %v", err)
	}
	if info.GoVersion != "go1.26.8" || info.Path != "/c/step-ca" {
		t.Errorf("info %+v", info)
	}
	for name, out := range map[string]string{
		"other-version": strings.Replace(good, "v0.30.2", "v0.30.1", 1),
		"other-package": strings.Replace(good, "cmd/step-ca\n", "cmd/step-cli\n", 1),
		"cgo":           strings.Replace(good, "CGO_ENABLED=0", "CGO_ENABLED=1", 1),
		"replaced":      strings.Replace(good, "\tdep\tgo.step.sm", "\t=>\t../fork\t\n\tdep\tgo.step.sm", 1),
		"not-go":        "/c/step-ca: could not read Go build info\n",
	} {
		if _, err := stepcaParseVersionM("/c/step-ca", out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStepCAFlagRefusals: -stepca names a binary that is not the pinned
// step-ca: one error line, exit 1, nothing on stdout, nothing started.
func TestStepCAFlagRefusals(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	goBin := testkit.RequireTool(t, "go")
	for _, tc := range []struct{ name, bin, want string }{
		{"fail/missing", "/nonexistent/step-ca", "-stepca: stat /nonexistent/step-ca"},
		{"fail/another-program", goBin, "is not " + stepcaPackage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := run([]string{"-suite", "stepca", "-sshca", "/nonexistent/sshca", "-stepca", tc.bin}, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), tc.want) || out.Len() != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out.String(), errb.String(), tc.want)
			}
			if n := strings.Count(errb.String(), "bench: error:"); n != 1 {
				t.Errorf("%d error lines: %q", n, errb.String())
			}
		})
	}
}
