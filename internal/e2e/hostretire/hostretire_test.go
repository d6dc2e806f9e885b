// Package hostretire checks end to end that, after a host CA rotation,
// the retire deadline /metrics shows for the retiring host generation is
// the one `sshca ca retire --type host` enforces, as hosts renew their
// certificates under the new key with `sshca sync`.
package hostretire

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/testkit"
)

var deadlineRE = regexp.MustCompile(`until (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

const (
	deadlineSeries = `sshca_ca_retire_deadline_timestamp_seconds{generation="1",type="host"}`
	lastSeries     = `sshca_ca_last_certificate_expiry_timestamp_seconds{generation="1",state="retiring",type="host"}`
)

// scrape starts `sshca serve` (a fresh process state, so no cached
// snapshot), reads /metrics, stops it and returns the value of each series
// asked for (absent ones are missing from the map).
func scrape(t *testing.T, h *e2etest.Home, series ...string) map[string]float64 {
	t.Helper()
	s, err := h.Serve("", "--listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(t)
	c := s.Client(t, "")
	resp, err := c.HTTP.Get(c.BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	for _, name := range series {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	return out
}

// retire runs `sshca ca retire --type host 1` (without --force) and
// returns "" when it retired the generation, or the deadline it names.
func retire(t *testing.T, h *e2etest.Home) (deadline time.Time, retired bool) {
	t.Helper()
	out, errs, code := h.Run("ca", "retire", "--type", "host", "1")
	if code == 0 {
		return time.Time{}, true
	}
	m := deadlineRE.FindStringSubmatch(errs)
	if m == nil {
		t.Fatalf("ca retire: exit %d, no deadline in:\n%s%s", code, out, errs)
	}
	d, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d, false
}

func TestHostRetireDeadlineAgrees(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"HOME": t.TempDir()}}
	h.Must("init")
	// The standard test policy, with host certificates of up to a week so
	// that the two hosts' certificates expire at clearly different times.
	pol := strings.Replace(testkit.Policy, "    principals: [\"*.corp\"]\n    max_ttl: 24h", "    principals: [\"*.corp\"]\n    max_ttl: 1w", 1)
	if pol == testkit.Policy {
		t.Fatal("testkit.Policy's host role changed; update this test")
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}

	// Two hosts enroll through the service under host CA generation 1:
	// web for a week, db for two days.
	hosts := map[string]string{}
	s, err := h.Serve("", "--listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for name, ttl := range map[string]string{"web-01.corp": "1w", "db-01.corp": "2d"} {
		dir := t.TempDir()
		key := filepath.Join(dir, "ssh_host_ed25519_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		tok := filepath.Join(dir, "enroll.token")
		secret := strings.TrimSpace(h.Must("token", "create", "--enroll", "--role", "servers", "--principals", name, "--name", "enroll-"+name))
		if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		h.Must("host", "enroll", "--server", s.URL, "--ca-fingerprint", s.Fingerprint, "--token-file", tok, "--host-key", key, "--ttl", ttl)
		hosts[name] = key
	}
	expiry := func(name string) time.Time {
		return time.Unix(int64(e2etest.ReadCert(t, hosts[name]+"-cert.pub").ValidBefore), 0).UTC()
	}
	webExp, dbExp := expiry("web-01.corp"), expiry("db-01.corp")
	if !webExp.After(dbExp) {
		t.Fatalf("web expires %v, db %v; want web later", webExp, dbExp)
	}
	sync := func(name string) {
		t.Helper()
		h.Must("sync", "--server", s.URL, "--ca-fingerprint", s.Fingerprint, "--dir", filepath.Join(filepath.Dir(hosts[name]), "sshca"), "--host-key", hosts[name])
	}
	h.Must("ca", "rotate", "--type", "host")
	h.Must("ca", "rotate", "--type", "host", "--promote")
	grace := time.Hour // retire_grace's default

	// check compares ca retire with the gauges, wanting the last
	// certificate that holds generation 1 back to be last.
	check := func(step string, last time.Time) {
		t.Helper()
		s.Stop(t) // one service at a time on the home; scrape starts its own
		g := scrape(t, h, deadlineSeries, lastSeries)
		d, retired := retire(t, h)
		if retired {
			t.Fatalf("%s: ca retire retired generation 1 while a certificate holds it back", step)
		}
		if !d.Equal(last.Add(grace)) {
			t.Errorf("%s: ca retire waits until %v, want %v (the last certificate + grace)", step, d, last.Add(grace))
		}
		if v, ok := g[deadlineSeries]; !ok || int64(v) != d.Unix() {
			t.Errorf("%s: %s = %v (present %v); ca retire says %v", step, deadlineSeries, int64(v), ok, d.Unix())
		}
		if v, ok := g[lastSeries]; !ok || int64(v) != last.Unix() {
			t.Errorf("%s: %s = %v (present %v), want %v", step, lastSeries, int64(v), ok, last.Unix())
		}
		if s, err = h.Serve("", "--listen", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	check("after the promotion", webExp)

	// web syncs: its certificate is renewed under generation 2, and only db's
	// holds generation 1 back.
	sync("web-01.corp")
	if e := expiry("web-01.corp"); e.Equal(webExp) {
		t.Fatal("sync did not renew web's host certificate after the promotion")
	}
	check("after web renewed", dbExp)

	// db syncs too: nothing holds generation 1 back. Either the service
	// has retired it by itself already (its deadline, now, has passed), or
	// ca retire does it without --force; then /metrics has no retire
	// deadline for it any more.
	sync("db-01.corp")
	s.Stop(t)
	switch list := h.Must("ca", "list"); {
	case regexp.MustCompile(`(?m)^host\s+1\s+retiring\s`).MatchString(list):
		if d, retired := retire(t, h); !retired {
			t.Errorf("ca retire --type host 1 refused after every host renewed (until %v)", d)
		}
	case regexp.MustCompile(`(?m)^host\s+1\s+retired\s`).MatchString(list):
		t.Log("the service retired host CA generation 1 by itself")
	default:
		t.Fatalf("host CA generation 1 after every host renewed:\n%s", list)
	}
	if g := scrape(t, h, deadlineSeries, lastSeries); len(g) != 0 {
		t.Errorf("after the retirement /metrics still has %v", g)
	}
	if out := h.Must("ca", "list"); !regexp.MustCompile(`(?m)^host\s+1\s+retired\s`).MatchString(out) {
		t.Errorf("ca list after the retirement:\n%s", out)
	}
}
