package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
)

const statusGolden = "testdata/fleet-status.txt"

// TestFleetStatus is acceptance 5: `sshca fleet status` for four enrolled
// hosts that report through `sshca sync` in different states: current,
// one KRL version behind, not heard from (stale), and failing to sync. The
// output is logged and, with -update, written to testdata for the README;
// the host/status pairs of that file must match a fresh run.
func TestFleetStatus(t *testing.T) {
	testkit.RequireTool(t, "/usr/bin/ssh-keygen")
	t.Parallel()
	// db-01's last report is moved an hour back in the database instead of
	// sleeping, so the states do not depend on how fast the machine is.
	const staleAfter = 10 * time.Minute
	svc := newService(t)
	hosts := map[string]*host{}
	for _, name := range []string{"app-01.test", "app-02.test", "db-01.test", "web-01.test"} {
		hosts[name] = svc.newHost("30d", name)
	}

	// db-01 syncs, then is not heard from again.
	hosts["db-01.test"].mustSync()
	ageHost(t, svc.Dir, "db-01.test", time.Hour)
	// app-02 syncs, then a revocation makes its KRL one version old.
	hosts["app-02.test"].mustSync()
	svc.Must("revoke", "--serial", "4242", "--force", "--reason", "fleet status demo")
	hosts["app-01.test"].mustSync()
	// web-01 synced fine, but now its service answers with an empty trust
	// list (a broken proxy, say): it reports that it cannot refresh.
	web := hosts["web-01.test"]
	web.mustSync()
	p := newProxy(t, svc)
	p.set(map[string]canned{"/v1/ca/user": {200, nil}})
	if out, errs, code := web.sync(p.URL, p.FP); code == 0 {
		t.Fatalf("sync through a proxy serving no CA keys succeeded:\n%s%s", out, errs)
	}

	out := svc.Must("fleet", "status", "--stale-after", staleAfter.String())
	t.Logf("$ sshca fleet status --stale-after %s\n%s", staleAfter, out)

	want := map[string]string{
		"app-01.test": "ok",
		"app-02.test": "krl-behind-1",
		"db-01.test":  "stale,krl-behind-1",
		"web-01.test": "sync-failing",
	}
	got := statusColumn(t, out)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("fleet status (-want +got):\n%s\n%s", d, out)
	}
	if !strings.Contains(out, "web-01.test: trusted CA keys: refused an empty list") {
		t.Fatalf("fleet status does not say why web-01 fails:\n%s", out)
	}
	if !strings.HasPrefix(out, "HOST ") || !strings.Contains(out, "LAST SEEN") || !strings.Contains(out, "CA GENS") || !strings.Contains(out, "HOST CERT EXPIRES") {
		t.Fatalf("fleet status header:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "app-01.test ") && !strings.Contains(l, " 1/1 ") {
			t.Fatalf("app-01 KRL column: %q, want 1/1", l)
		}
		if strings.HasPrefix(l, "app-02.test ") && !strings.Contains(l, " 0/1 ") {
			t.Fatalf("app-02 KRL column: %q, want 0/1", l)
		}
	}

	doc := "$ sshca fleet status --stale-after " + staleAfter.String() + "\n" + out
	if *update {
		if err := os.MkdirAll(filepath.Dir(statusGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statusGolden, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(statusGolden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestFleetStatus -update)", err)
	}
	// Times differ from run to run; hosts and their states may not.
	_, body, _ := strings.Cut(string(golden), "\n")
	if d := cmp.Diff(statusColumn(t, body), got); d != "" {
		t.Fatalf("%s is out of date (-file +now); run go test -run TestFleetStatus -update:\n%s", statusGolden, d)
	}
}

// statusColumn maps each host of fleet status output to its STATUS column.
func statusColumn(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	m := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasSuffix(f[0], ":") {
			continue // "host: why it fails" lines after the table
		}
		if len(f) < 3 {
			t.Fatalf("fleet status line %q", l)
		}
		m[f[0]] = f[len(f)-1]
	}
	return m
}

// ageHost moves a host's last report back by d, directly in the home's database.
func ageHost(t *testing.T, home, name string, d time.Duration) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(home, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.SQL().ExecContext(t.Context(), `UPDATE hosts SET last_seen_us = last_seen_us - ? WHERE name = ?`, d.Microseconds(), name)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("host %s: %d rows aged", name, n)
	}
}
