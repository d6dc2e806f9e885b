package console_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// browserPolicy: the console for alice; a user role whose principal the
// test's sshd maps to the current account, and a host role for the
// enrolled "servers".
const browserPolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
  console:
    admins:
      users: [alice]
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
  ops:
    type: user
    principals: [role-ops]
    max_ttl: 8h
  servers:
    type: host
    principals: ["*.test"]
    default_ttl: 2h
    max_ttl: 52w
accounts:
  %s: [role-deploy]
`

// screenshotDir is where SSHCA_UPDATE_SCREENSHOTS=1 writes the README's
// screenshots.
var screenshotDir = filepath.Join("..", "..", "docs", "console")

// hostileKeyID and hostileReason go through the real doors (sshca sign
// --id, the Revoke form typed into the browser) and must stay text.
const (
	hostileKeyID  = `<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">`
	hostileReason = `"><img src=x onerror="window.__pwned=3"> <b>lost laptop</b>`
	// Token names are principals: no spaces or commas, markup allowed.
	hostileTokenName = `<b>ci</b><img/src=x/onerror=window.__pwned=4>`
)

// TestBrowser drives a real headless Chromium through the console: sign in
// with a one-time link, find a certificate by identity, revoke it from its
// page (keyboard only, through the form), and then a real sshd, once
// `sshca sync` has installed the new KRL, refuses that certificate while
// it still accepts another. Hostile key IDs and reasons render inert, the
// link does not work twice, and each page is screenshotted.
func TestBrowser(t *testing.T) {
	chrome := testkit.RequireTool(t, "chromium")
	testkit.RequireTool(t, sshdtest.KeygenPath)
	user := e2etest.CurrentUser(t)

	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"USER": "carol"}}
	h.Must("init")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(browserPolicy, user)), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	victim, victimCert := h.SignUser(keys, "--role", "deploy", "--id", "carol-laptop", "--ttl", "50m")
	bystander, _ := h.With(map[string]string{"USER": "dave"}).SignUser(keys, "--role", "deploy", "--id", "dave-laptop", "--ttl", "50m")
	h.With(map[string]string{"USER": "erin"}).SignUser(keys, "--role", "ops", "--id", hostileKeyID, "--ttl", "7h")
	for i := range 3 {
		h.With(map[string]string{"USER": fmt.Sprintf("ci-%d", i)}).SignUser(keys, "--role", "deploy", "--id", fmt.Sprintf("ci-runner-%d", i), "--ttl", "20m")
	}
	ciToken := filepath.Join(keys, "ci-token")
	if err := os.WriteFile(ciToken, []byte(h.Must("token", "create", "--role", "deploy", "--name", "ci-deploy", "--ttl", "30d")), 0o600); err != nil {
		t.Fatal(err)
	}

	// A rotation in progress for the CA keys page: the user CA signs with
	// generation 2 while 1 retires, the host CA publishes a next key.
	h.Must("ca", "rotate", "--type", "user")
	h.Must("ca", "rotate", "--type", "user", "--promote")
	h.Must("ca", "rotate", "--type", "host")

	srv, err := h.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errs, code := e2etest.RunCLI(map[string]string{"USER": "carol"}, args...)
		if code != 0 {
			t.Fatalf("sshca %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	// The CI token obtains a certificate of its role and is refused
	// another role: an issuance and denials for the audit chart.
	login := func(role string) int {
		_, _, code := e2etest.RunCLI(map[string]string{"USER": "carol"}, "login", "--server", srv.URL, "--ca-fingerprint", srv.Fingerprint,
			"--role", role, "--token-file", ciToken, "--key", filepath.Join(keys, "ci-"+role), "--no-agent")
		return code
	}
	if login("deploy") != 0 || login("ops") == 0 || login("ops") == 0 {
		t.Fatal("the CI token's logins did not go as its scope says")
	}
	// Two enrolled servers report to the fleet; the first runs a real sshd
	// configured from its sync directory.
	var syncDir, hostKey string
	for i, name := range []string{"web1.test", "db1.test"} {
		base, err := os.MkdirTemp("", "console-host-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(base, "ssh_host_ed25519_key")
		if out, err := exec.Command(sshdtest.KeygenPath, "-q", "-N", "", "-t", "ed25519", "-C", name, "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		tokFile := filepath.Join(base, "token")
		tok := h.Must("token", "create", "--enroll", "--role", "servers", "--principals", name, "--ttl", "10m", "--name", "enroll-"+name)
		if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		cli("host", "enroll", "--server", srv.URL, "--ca-fingerprint", srv.Fingerprint, "--token-file", tokFile, "--host-key", key)
		dir := filepath.Join(base, "sshca")
		cli("sync", "--server", srv.URL, "--ca-fingerprint", srv.Fingerprint, "--dir", dir, "--host-key", key)
		if i == 0 {
			syncDir, hostKey = dir, key
		}
	}
	// sshd trusts what sync installed: the user CA keys, the principals of
	// the accounts, the KRL. The harness keeps its own host key.
	var extra []string
	for _, l := range strings.Split(strings.TrimSpace(h.Must("sshd-config", "--dir", syncDir, "--host-key", hostKey)), "\n") {
		for _, kw := range []string{"TrustedUserCAKeys ", "AuthorizedPrincipalsFile ", "RevokedKeys "} {
			if strings.HasPrefix(l, kw) {
				extra = append(extra, l)
			}
		}
	}
	if len(extra) != 3 {
		t.Fatalf("sshd-config lines: %q", extra)
	}
	sshd := sshdtest.Start(t, sshdtest.Config{Extra: extra})
	for _, k := range []string{victim, bystander} {
		if r := sshd.Login(t, sshdtest.LoginOptions{IdentityFile: k}); !r.OK {
			t.Fatalf("login with %s before revocation refused:\n%s\n%s", filepath.Base(k), r.Stderr, r.ServerLog)
		}
	}

	link := strings.TrimSpace(h.Must("console", "link", "--user", "alice", "--url", srv.URL))

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.IgnoreCertErrors, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first run starts the browser; its context must have no timeout.
	if err := chromedp.Do(ctx); err != nil {
		testkit.SkipOrFatal(t, "chromium does not start: %v", err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v\nserve log:\n%s", what, err, srv.Log())
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}

	// Sign in: the link's page, then its button.
	do("sign in", chromedp.Navigate(link), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("find")))
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/ui/certs") {
		t.Fatalf("after sign-in at %s (%v)", loc, err)
	}
	screenshot(t, ctx, "certificates")

	// Find carol's certificate: type the identity and press Enter.
	do("find", chromedp.SendKeys(chromedp.CSS(`input[name="identity"]`), "carol\r"))
	waitURL(t, ctx, "identity=carol")
	do("results", chromedp.WaitVisible(chromedp.CSS("caption#certs-caption")))
	rows := text("table.list tbody")
	if !strings.Contains(rows, "carol-laptop") || strings.Contains(rows, "dave-laptop") || strings.Contains(rows, "ci-runner") {
		t.Fatalf("identity carol finds:\n%s", rows)
	}
	do("open certificate", chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/ui/certs/%d"]`, victimCert.Serial))),
		chromedp.WaitVisible(chromedp.ID("revoke")))
	if keyID := text("#key-id"); keyID != "carol-laptop" {
		t.Fatalf("certificate page shows key ID %q", keyID)
	}
	screenshot(t, ctx, "certificate")

	// Revoke it from its page: the reason, then the button, by keyboard.
	do("revoke", chromedp.SendKeys(chromedp.ID("reason"), hostileReason), chromedp.Focus(chromedp.ID("revoke")),
		chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if status := text("p .status"); status != "revoked" {
		t.Fatalf("status after revoking: %q", status)
	}
	checkInert(t, ctx, "certificate page")
	if main := text("main"); !strings.Contains(main, hostileReason) {
		t.Fatalf("the revocation reason is not shown as text:\n%s", main)
	}
	screenshot(t, ctx, "certificate-revoked")

	// The hostile key ID, found by a substring of it.
	do("hostile key ID", chromedp.Navigate(srv.URL+"/ui/certs?key_id=%3Cscript"), chromedp.WaitVisible(chromedp.ID("find")))
	if rows := text("table.list tbody"); !strings.Contains(rows, hostileKeyID) {
		t.Fatalf("hostile key ID not shown as text:\n%s", rows)
	}
	checkInert(t, ctx, "inventory")

	for _, p := range []struct{ path, name string }{
		{"/ui/certs?status=revoked", "certificates-revoked"}, {"/ui/fleet", "fleet"}, {"/ui/keys", "ca-keys"},
		{"/ui/tokens", "tokens"}, {"/ui/audit", "audit"},
	} {
		do(p.path, chromedp.Navigate(srv.URL+p.path), chromedp.WaitVisible(chromedp.CSS("h1")))
		checkInert(t, ctx, p.path)
		screenshot(t, ctx, p.name)
	}
	// A token named with markup, created in the browser: its secret is shown
	// once and never again, and the name stays text.
	do("create token", chromedp.Navigate(srv.URL+"/ui/tokens"), chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), hostileTokenName),
		chromedp.Click(chromedp.CSS(`input[name="kind"][value="admin"]`)), chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("secret")))
	checkInert(t, ctx, "token created")
	if title := text("#h-secret"); !strings.Contains(title, hostileTokenName) {
		t.Fatalf("token heading %q", title)
	}
	if secret := strings.TrimSpace(text("#secret")); !strings.HasPrefix(secret, "sshca_") {
		t.Fatalf("secret %q", secret)
	}
	do("tokens again", chromedp.Navigate(srv.URL+"/ui/tokens"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if body := text("main"); strings.Contains(body, "sshca_") {
		t.Fatal("the token's secret is shown again")
	}
	checkInert(t, ctx, "tokens")

	do("audit", chromedp.Navigate(srv.URL+"/ui/audit"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if chain := text("#h-chain + p"); !strings.Contains(chain, "Intact") {
		t.Fatalf("audit chain: %q", chain)
	}
	if bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`)); err != nil || bars < 2 {
		t.Fatalf("the chart has %d bars (%v)", bars, err)
	}

	// The link does not sign in twice, even in the same browser.
	do("reuse link", chromedp.Navigate(link), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS("p.problem")))
	if body := text("p.problem"); !strings.Contains(body, "already used") {
		t.Fatalf("reused link: %q", body)
	}

	// After the next sync, sshd refuses the revoked certificate and still
	// takes the other.
	cli("sync", "--server", srv.URL, "--ca-fingerprint", srv.Fingerprint, "--dir", syncDir, "--host-key", hostKey)
	r := sshd.Login(t, sshdtest.LoginOptions{IdentityFile: victim})
	if r.OK {
		t.Fatal("the certificate revoked in the browser still logs in after sshca sync")
	}
	if !strings.Contains(r.ServerLog, "revoked") {
		t.Fatalf("sshd refused, but not as revoked:\n%s", r.ServerLog)
	}
	if r := sshd.Login(t, sshdtest.LoginOptions{IdentityFile: bystander}); !r.OK {
		t.Fatalf("the other certificate is refused too:\n%s", r.ServerLog)
	}
}

// waitURL waits until the page's address contains part: a form's GET has
// loaded its answer.
func waitURL(t *testing.T, ctx context.Context, part string) {
	t.Helper()
	for range 200 {
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil && strings.Contains(loc, part) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the page never reached an address with %q", part)
}

// checkInert fails the test if the page holds any element that markup in
// the data could have injected, or if anything set window.__pwned.
func checkInert(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("script, img, iframe, object, embed, b, [onerror], [onload]").length`))
	if err != nil {
		t.Fatal(err)
	}
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[string](`typeof window.__pwned`))
	if err != nil {
		t.Fatal(err)
	}
	if injected != 0 || pwned != "undefined" {
		t.Fatalf("%s: %d injected elements, window.__pwned is %s", where, injected, pwned)
	}
}

// screenshot takes a full-page PNG and checks it decodes; with
// SSHCA_UPDATE_SCREENSHOTS=1 it is written to docs/console/NAME.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Fatalf("screenshot %s is %v", name, b)
	}
	if os.Getenv("SSHCA_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}
