package interop

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite docs/compatibility.md and testdata/expected.json from this run")

const (
	docPath      = "../../docs/compatibility.md"
	expectedPath = "testdata/expected.json"
	guidancePath = "testdata/guidance.md"
	// hostSubject is the user key and CA type used in the host direction,
	// and hostKeyType the type of the certified sshd host key.
	hostSubject = "ed25519"
	hostKeyType = "ed25519"
)

// subjectKey is one user key type of the matrix.
type subjectKey struct {
	name    string // column label
	keygen  []string
	kind    string // paramiko key class
	path    string
	pemPath string // "" for ed25519, which has no PEM format
	ppkPath string
	signer  ssh.Signer
	pub     ssh.PublicKey
}

func subjectKeys() []*subjectKey {
	return []*subjectKey{
		{name: "ed25519", keygen: []string{"-t", "ed25519"}, kind: "ed25519"},
		{name: "ecdsa-p256", keygen: []string{"-t", "ecdsa", "-b", "256"}, kind: "ecdsa"},
		{name: "rsa-3072", keygen: []string{"-t", "rsa", "-b", "3072"}, kind: "rsa"},
	}
}

// hostTrust says how each client is told to trust a host CA.
func hostTrust(releases []*opensshtest.Flavour) map[string]string {
	m := map[string]string{
		"go-x-crypto": "`ssh.CertChecker.IsHostAuthority` accepting the CA key, as its `HostKeyCallback`",
		"paramiko":    "the same `@cert-authority` line in the file given to `SSHClient.load_host_keys`, with `RejectPolicy`",
		"net-ssh":     "the same `@cert-authority` line in `user_known_hosts_file`, with `verify_host_key: :always`",
		"plink":       "a PuTTY host CA entry (`~/.putty/sshhostcas/`, what \"Configure host CAs\" writes) valid for every host, in `-batch` mode",
	}
	for _, f := range releases {
		m[f.Name] = "a `@cert-authority [127.0.0.1]:PORT <CA key>` line in known_hosts"
	}
	return m
}

// hostUnsupported names the clients that cannot verify host certificates
// at all, with the reason; their host cells are "unsupported" rather than
// "fails" (the attempt still runs, and its error is recorded).
func hostUnsupported() map[string]string {
	return map[string]string{
		"paramiko": "paramiko has no host-certificate verification: its known_hosts reader skips @cert-authority lines, so a certified host can only be trusted by pinning its plain key",
	}
}

// TestMatrix runs the interoperability matrix and compares it with
// testdata/expected.json; with -update (or SSHCA_UPDATE_COMPAT=1) it
// rewrites that file and docs/compatibility.md instead.
func TestMatrix(t *testing.T) {
	rewrite := *update || os.Getenv("SSHCA_UPDATE_COMPAT") == "1"
	// Every OpenSSH release is a client column and an sshd: Debian's
	// and the newest upstream one.
	releases := opensshtest.All(t)
	system, latest := releases[0], releases[len(releases)-1]
	ctx := t.Context()
	start := time.Now()
	phase := func(name string) { t.Logf("phase %s done after %v", name, time.Since(start).Round(time.Millisecond)) }
	work := t.TempDir()
	account := loginAccount(t)
	caTypes := signer.KeyTypes()
	all := clients(releases)

	// Key generation dominates the set-up: make the six CA homes and the
	// subject keys at once.
	subjects := subjectKeys()
	var wg sync.WaitGroup
	keyErrs := make([]error, len(subjects))
	for i, s := range subjects {
		s.path = filepath.Join(work, "keys", s.name, "id")
		wg.Add(1)
		go func() {
			defer wg.Done()
			keyErrs[i] = keygen(s)
		}()
	}
	cas := newAuthorities(t, work, caTypes)
	wg.Wait()
	for i, err := range keyErrs {
		if err != nil {
			t.Fatalf("subject key %s: %v", subjects[i].name, err)
		}
	}
	phase("key generation")
	plinkMissing := needFiles(plinkPath, puttygenPath)()
	if plinkMissing == "" {
		for _, s := range subjects {
			s.ppkPath = s.path + ".ppk"
			if out, err := exec.Command(puttygenPath, s.path, "-O", "private", "-o", s.ppkPath).CombinedOutput(); err != nil {
				t.Fatalf("puttygen %s: %v: %s", s.path, err, out)
			}
		}
	}

	// One user certificate per CA key type and subject key type.
	type certFile struct {
		cert *ssh.Certificate
		path string
	}
	certs := map[[2]string]certFile{}
	for _, ct := range caTypes {
		for _, s := range subjects {
			cert := cas[ct].signUser(t, s.pub, "interop-"+ct+"-"+s.name)
			path := filepath.Join(work, "certs", ct+"_"+s.name+"-cert.pub")
			testkit.WriteFile(t, path, ssh.MarshalAuthorizedKey(cert), 0o644)
			certs[[2]string{ct, s.name}] = certFile{cert, path}
		}
	}

	phase("certificates")
	// Servers, for every OpenSSH release: one sshd for every user CA and
	// one sshd per host CA; then one Go server, and the sshds of the
	// single-row host tables.
	var userCALines []string
	var userCAs []ssh.PublicKey
	for _, ct := range caTypes {
		userCALines = append(userCALines, testkit.AuthorizedKey(cas[ct].userCA))
		userCAs = append(userCAs, cas[ct].userCA)
	}
	principals := map[string][]string{account: {principal}}
	hostServer := func(f *opensshtest.Flavour, sign func(ssh.PublicKey) ([]byte, error)) *sshdtest.Server {
		return sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           f,
			TrustedUserCAKeys: []string{testkit.AuthorizedKey(cas[hostSubject].userCA)},
			Principals:        principals,
			HostKeyType:       hostKeyType,
			SignHostKey:       sign,
		})
	}
	userSSHD := map[string]*sshdtest.Server{}    // release -> sshd
	hostSSHD := map[[2]string]*sshdtest.Server{} // release, CA type -> sshd
	for _, f := range releases {
		userSSHD[f.Name] = sshdtest.Start(t, sshdtest.Config{OpenSSH: f, TrustedUserCAKeys: userCALines, Principals: principals})
		for _, ct := range caTypes {
			hostSSHD[[2]string{f.Name, ct}] = hostServer(f, cas[ct].signHostFunc(ctx))
		}
	}
	emptyKRL, err := (&krl.KRL{}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	goSrv := startGoServer(t, &Authenticator{UserCAs: userCAs, KRL: func() (*krl.KRL, error) { return krl.Parse(emptyKRL) }})

	// A host certificate for another name: a client must refuse it.
	wrongName := hostServer(system, func(pub ssh.PublicKey) ([]byte, error) {
		return cas[hostSubject].signHostNames(ctx, pub, []string{"localhost"})
	})
	// A host certificate whose principal is a pattern: OpenSSH 10.3 and
	// later accept it, and sshca issues it only to a role that opts in.
	wildcard := hostServer(latest, func(pub ssh.PublicKey) ([]byte, error) {
		return cas[hostSubject].signHostRole(ctx, "hosts-wildcard", pub, []string{wildcardPrincipal})
	})

	// Preflight with the real ssh through the harness: it proves the set-up
	// and unlocks a locked account (see sshdtest.LoginOptions.User).
	base := certs[[2]string{hostSubject, hostSubject}]
	var baseKey *subjectKey
	for _, s := range subjects {
		if s.name == hostSubject {
			baseKey = s
		}
	}
	for _, f := range releases {
		if r := userSSHD[f.Name].Login(t, sshdtest.LoginOptions{User: account, IdentityFile: baseKey.path, CertificateFile: base.path}); !r.OK {
			t.Fatalf("preflight: %s's ssh with an ed25519 certificate was refused by its sshd (exit %d): %s\n--- sshd log\n%s", f, r.ExitCode, r.Stderr, r.ServerLog)
		}
	}

	phase("servers")
	knownHosts := func(name, line string) string {
		path := filepath.Join(work, "known_hosts", name)
		testkit.WriteFile(t, path, []byte(line+"\n"), 0o644)
		return path
	}
	pinned := func(host string, port int, key ssh.PublicKey) string {
		return fmt.Sprintf("[%s]:%d %s", host, port, testkit.AuthorizedKey(key))
	}
	khSSHD := map[string]string{}
	for _, f := range releases {
		srv := userSSHD[f.Name]
		khSSHD[f.Name] = knownHosts("sshd-"+f.Name, pinned(srv.Host, srv.Port, srv.HostPublicKey))
	}
	khGo := knownHosts("go", pinned(goSrv.Host, goSrv.Port, goSrv.HostKey))

	var jobs []job
	for _, ct := range caTypes {
		for _, s := range subjects {
			cf := certs[[2]string{ct, s.name}]
			base := job{keyPath: s.path, pemPath: s.pemPath, keyKind: s.kind, ppkPath: s.ppkPath, certPath: cf.path, signer: s.signer, cert: cf.cert}
			for _, f := range releases {
				srv := userSSHD[f.Name]
				j := base
				j.cell = cellKey{Dir: dirUser, Server: f.Name, CA: ct, Subject: s.name}
				j.host, j.port, j.user, j.knownHosts, j.hostKey = srv.Host, srv.Port, account, khSSHD[f.Name], srv.HostPublicKey
				jobs = append(jobs, j)
			}
			j := base
			j.cell = cellKey{Dir: dirServer, Server: serverGo, CA: ct, Subject: s.name}
			j.host, j.port, j.user, j.knownHosts, j.hostKey = goSrv.Host, goSrv.Port, principal, khGo, goSrv.HostKey
			jobs = append(jobs, j)
		}
	}
	sysSSHD := userSSHD[system.Name]
	for _, s := range subjects {
		cf := certs[[2]string{hostSubject, s.name}]
		jobs = append(jobs, job{
			cell: cellKey{Dir: dirKeyFile, Server: system.Name, CA: hostSubject, Subject: s.name},
			host: sysSSHD.Host, port: sysSSHD.Port, user: account, knownHosts: khSSHD[system.Name], hostKey: sysSSHD.HostPublicKey,
			keyPath: s.path, keyKind: s.kind, ppkPath: s.ppkPath, certPath: cf.path, signer: s.signer, cert: cf.cert,
		})
	}
	hostJob := func(dir, ct string, srv *sshdtest.Server) job {
		return job{
			cell: cellKey{Dir: dir, Server: srv.OpenSSH.Name, CA: ct, Subject: hostKeyType},
			host: srv.Host, port: srv.Port, user: account,
			keyPath: baseKey.path, keyKind: baseKey.kind, ppkPath: baseKey.ppkPath, certPath: base.path, signer: baseKey.signer, cert: base.cert,
			knownHosts: knownHosts(dir+"-"+srv.OpenSSH.Name+"-"+ct, srv.CertAuthorityLine(cas[ct].hostCA)),
			hostCA:     cas[ct].hostCA,
		}
	}
	for _, f := range releases {
		for _, ct := range caTypes {
			jobs = append(jobs, hostJob(dirHost, ct, hostSSHD[[2]string{f.Name, ct}]))
		}
	}
	jobs = append(jobs, hostJob(dirHostName, hostSubject, wrongName), hostJob(dirHostWild, hostSubject, wildcard))

	ports := []int{goSrv.Port, wrongName.Port, wildcard.Port}
	for _, srv := range userSSHD {
		ports = append(ports, srv.Port)
	}
	for _, srv := range hostSSHD {
		ports = append(ports, srv.Port)
	}
	clean := sanitizer(work, ports)

	// Every client runs at once: they mostly wait for servers and
	// interpreters, and t.Parallel would run only GOMAXPROCS of them.
	type clientRun struct {
		jobs    []job
		missing string
		version string
		deb     string
		res     []result
		err     error
	}
	runs := make([]clientRun, len(all))
	var cwg sync.WaitGroup
	for i, c := range all {
		if runs[i].missing = c.missing(); runs[i].missing != "" {
			continue
		}
		var cj []job
		for _, j := range jobs {
			j.cell.Client = c.name
			switch {
			case j.cell.Dir == dirKeyFile && !c.pemKeys:
				// Same key, certificate and server as the user cell of
				// the same subject and CA: copied below, not rerun.
				continue
			case c.pemKeys && j.pemPath != "" && j.cell.Dir != dirKeyFile:
				j.keyPath = j.pemPath
			}
			cj = append(cj, j)
		}
		runs[i].jobs = cj
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			r := &runs[i]
			r.version = c.version()
			if c.pkg != "" {
				r.deb = debianVersion(c.pkg)
			}
			r.res, r.err = c.run(ctx, work, cj)
		}()
	}
	cwg.Wait()

	outcomes := map[cellKey]outcome{}
	versions := map[string]string{}
	debs := map[string]string{} // client -> "package version"
	skipped := map[string]string{}
	unsupported := hostUnsupported()
	for i, c := range all {
		r := runs[i]
		t.Run(c.name, func(t *testing.T) {
			if r.missing != "" {
				skipped[c.name] = r.missing
				testkit.SkipOrFatal(t, "interop: client %s not available: %s", c.name, r.missing)
			}
			if r.err != nil {
				t.Fatalf("interop: run %s: %v", c.name, r.err)
			}
			versions[c.name] = r.version
			if r.deb != "" {
				debs[c.name] = c.pkg + " " + r.deb
			}
			for n, res := range r.res {
				cell := r.jobs[n].cell
				o := classify(cell, res, unsupported, clean)
				if !good(o.Status) {
					t.Logf("%s: %s: %s", cell, o.Status, o.Error)
				}
				outcomes[cell] = o
			}
			if !c.pemKeys {
				for _, s := range subjects {
					user := cellKey{Dir: dirUser, Server: system.Name, CA: hostSubject, Subject: s.name, Client: c.name}
					outcomes[cellKey{Dir: dirKeyFile, Server: system.Name, CA: hostSubject, Subject: s.name, Client: c.name}] = outcomes[user]
				}
			}
		})
	}
	phase("logins")
	if t.Failed() {
		return
	}

	names := make([]string, len(all))
	for i, c := range all {
		names[i] = c.name
	}
	subjectNames := make([]string, len(subjects))
	for i, s := range subjects {
		subjectNames[i] = s.name
	}
	guidance, err := os.ReadFile(guidancePath)
	if err != nil {
		t.Fatal(err)
	}
	var pemClients []string
	for _, c := range all {
		if c.pemKeys {
			pemClients = append(pemClients, c.name)
		}
	}
	servers := map[string]string{serverGo: goVersion()}
	var sshds []string
	for _, f := range releases {
		sshds = append(sshds, f.Name)
		servers[f.Name] = sshdVersion(f)
	}
	rep := &report{
		clients: names, versions: versions, debs: debs, sshds: sshds, servers: servers,
		caTypes: caTypes, subjects: subjectNames, hostKeyType: hostKeyType,
		hostTrust: hostTrust(releases), pemClients: pemClients, keyFileCA: hostSubject,
		outcomes: outcomes, guidance: string(guidance),
	}

	want, err := readExpectations(expectedPath)
	if err != nil {
		t.Fatal(err)
	}
	got := rep.expectations()
	regressions, changes := compareExpectations(want, got)
	for _, key := range changes {
		t.Logf("%s: now %s, expected %q (run with -update to record it)", key, got[key], want[key])
	}
	for _, key := range regressions {
		msg := ""
		for k, o := range outcomes {
			if k.String() == key {
				msg = o.Error
			}
		}
		t.Errorf("%s: expected %s, got %s: %s", key, want[key], got[key], msg)
	}

	if !rewrite {
		return
	}
	if len(skipped) > 0 {
		t.Fatalf("interop: refusing to rewrite %s with clients missing: %v", docPath, skipped)
	}
	testkit.WriteFile(t, expectedPath, marshalExpectations(got), 0o644)
	testkit.WriteFile(t, docPath, rep.markdown(), 0o644)
	t.Logf("wrote %s and %s", docPath, expectedPath)
}

// compareExpectations compares a run with the recorded expectations. A
// regression is a cell expected to be right (works, refuses) that is not;
// a change is any other difference, including a cell not recorded yet.
// Cells missing from got (a client that was skipped) are not compared.
func compareExpectations(want, got map[string]string) (regressions, changes []string) {
	for _, key := range sortedKeys(got) {
		g := got[key]
		w, known := want[key]
		switch {
		case known && good(w) && g != w:
			regressions = append(regressions, key)
		case g != w:
			changes = append(changes, key)
		}
	}
	return regressions, changes
}

// keygen makes s's key pair with ssh-keygen and loads it.
func keygen(s *subjectKey) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	args := append([]string{"-q", "-N", "", "-C", "interop-" + s.name, "-f", s.path}, s.keygen...)
	if out, err := exec.Command(sshdtest.KeygenPath, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	if s.signer, err = ssh.ParsePrivateKey(b); err != nil {
		return err
	}
	s.pub = s.signer.PublicKey()
	if s.kind == "ed25519" {
		return nil
	}
	s.pemPath = s.path + ".pem"
	if err := os.WriteFile(s.pemPath, b, 0o600); err != nil {
		return err
	}
	// -p rewrites the key file in the format -m names.
	if out, err := exec.Command(sshdtest.KeygenPath, "-q", "-p", "-m", "PEM", "-P", "", "-N", "", "-f", s.pemPath).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen -p -m PEM: %v: %s", err, out)
	}
	return nil
}

// classify turns a job's result into the cell's outcome.
func classify(cell cellKey, r result, unsupported map[string]string, clean func(string) string) outcome {
	msg := clean(r.err)
	switch {
	case cell.Dir == dirHostName && r.ok:
		return outcome{Status: statusAccepts, Error: "logged in to 127.0.0.1 although the host certificate names only localhost"}
	case cell.Dir == dirHostName:
		return outcome{Status: statusRefuses, Error: msg}
	case r.ok:
		return outcome{Status: statusWorks}
	}
	if why, ok := unsupported[cell.Client]; ok && (cell.Dir == dirHost || cell.Dir == dirHostWild) {
		return outcome{Status: statusUnsupported, Error: why + "; the attempt ended with: " + msg}
	}
	return outcome{Status: statusFails, Error: msg}
}

// sshdVersion describes a release's sshd: the version it prints, and
// where it comes from.
func sshdVersion(f *opensshtest.Flavour) string {
	// Older sshd have no -V; their usage message carries the version.
	out := commandOutput(f.SSHD, "-V")
	v := "(version unknown)"
	if m := regexp.MustCompile(`OpenSSH_[^\s,]+`).FindString(out); m != "" {
		v = m
	}
	if f.Built {
		return v + " (built from the upstream source by internal/opensshtest)"
	}
	if dv := debianVersion("openssh-server"); dv != "" {
		v += " (Debian openssh-server " + dv + ")"
	}
	return v
}

// sanitizer returns a function that makes client messages independent of
// this run: temporary paths and port numbers are replaced, whitespace is
// collapsed and the message is bounded.
func sanitizer(work string, ports []int) func(string) string {
	portRE := make([]*regexp.Regexp, len(ports))
	for i, p := range ports {
		portRE[i] = regexp.MustCompile(`\b` + strconv.Itoa(p) + `\b`)
	}
	tmpRE := regexp.MustCompile(`/tmp/sshdtest-[A-Za-z0-9]+`)
	fpRE := regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}=?`)
	spaceRE := regexp.MustCompile(`\s+`)
	return func(s string) string {
		s = strings.ReplaceAll(s, work, "$WORK")
		s = tmpRE.ReplaceAllString(s, "$$SSHD")
		s = fpRE.ReplaceAllString(s, "SHA256:<fingerprint>")
		for _, re := range portRE {
			s = re.ReplaceAllString(s, "PORT")
		}
		s = strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
		if len(s) > 400 {
			s = s[:400] + "…"
		}
		return s
	}
}
