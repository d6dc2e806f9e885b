package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/explain"
)

// maxServerFile bounds the sshd files explain reads (OpenSSH itself cannot
// load a KRL over 128 MiB).
const maxServerFile = 128 << 20

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func newExplainCommand() *command {
	var certPath, account, from, sshdConfig, trustedCA, principalsFile, caSigAlgs, at, host, sshdVersion string
	var port int
	var krls, knownHosts stringList
	var verbose, asJSON bool
	return &command{
		name:    "explain",
		summary: "say whether sshd would accept a certificate login, and if not, why and how to fix it",
		usage:   "--cert FILE --user ACCOUNT [--from IP] [--sshd-config FILE | --trusted-ca F [--principals-file F] [--krl F]] [--at TIME] [--sshd-version V]\n       sshca explain --cert HOST-CERT --host NAME [--port N] --known-hosts FILE [--krl F] [--at TIME] [--sshd-version V]",
		example: `  sshca explain --cert ~/.ssh/id_ed25519-cert.pub --user deploy --sshd-config /etc/ssh/sshd_config
  sshca explain --cert alice-cert.pub --user root --from 10.1.2.3 \
      --trusted-ca /etc/ssh/sshca_user_ca.pub --principals-file /etc/ssh/principals/root --krl /etc/ssh/revoked.krl
  sshca explain --cert alice-cert.pub --user deploy --sshd-config /etc/ssh/sshd_config --at +2h
  sshca explain --cert alice-cert.pub --user deploy --trusted-ca ca.pub --at 2026-11-22T10:00:00Z --verbose
  sshca explain --cert /etc/ssh/ssh_host_ed25519_key-cert.pub --host web1.corp --known-hosts ~/.ssh/known_hosts
  sshca explain --cert alice-cert.pub --user deploy --sshd-config /etc/ssh/sshd_config --sshd-version auto
  sshca explain --cert web-cert.pub --host web1.corp --known-hosts kh --sshd-version 10.5

Prints "accept" (exit 0) or "refuse: REASON" with "check:" and "fix:" lines
(exit 1). The checks run in the order of OpenSSH's sshd, by the rules of
OpenSSH 9.2 (Debian 12) unless --sshd-version names the release: a version
(10.5, OpenSSH_10.5p1), the path of an sshd or ssh program whose -V output
says it, or auto for this machine's sshd (with --host, its ssh client).
From 10.3 on RevokedKeys takes several files and host certificate principals
are patterns ("*.corp"); from 9.4 on KRL signature sections are skipped.
Flags given with --sshd-config override what the file says. With --host, the
certificate is a server's host certificate and the checks are those the ssh
client makes (--krl is then RevokedHostKeys).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&certPath, "cert", "", "the certificate `file` (*-cert.pub)")
			fs.StringVar(&account, "user", "", "the `account` the client logs in as")
			fs.StringVar(&from, "from", "", "the client's `IP` address as sshd sees it (checks source-address)")
			fs.StringVar(&sshdConfig, "sshd-config", "", "read TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys, CASignatureAlgorithms... from this sshd_config `file`")
			fs.StringVar(&trustedCA, "trusted-ca", "", "the TrustedUserCAKeys `file`")
			fs.StringVar(&principalsFile, "principals-file", "", "the account's AuthorizedPrincipalsFile (without it and without --sshd-config: none, so the login name must be a principal)")
			fs.Var(&krls, "krl", "a RevokedKeys `file` (KRL or key list); repeatable")
			fs.StringVar(&caSigAlgs, "ca-signature-algorithms", "", "the CASignatureAlgorithms `value` (default: OpenSSH 9.2's)")
			fs.StringVar(&at, "at", "", "judge at this `time`: RFC 3339, or relative to now like +2h, -30m, +1d")
			fs.StringVar(&host, "host", "", "explain a host certificate as the ssh client checks it when connecting to this host `name` (or HostKeyAlias)")
			fs.IntVar(&port, "port", 22, "the server `port`, with --host (known_hosts names other ports [host]:port)")
			fs.Var(&knownHosts, "known-hosts", "a known_hosts `file`, with --host; repeatable")
			fs.StringVar(&sshdVersion, "sshd-version", "", "replay this OpenSSH `release`: 9.2 (default), 10.5, a path to sshd or ssh to read it from, or auto")
			fs.BoolVar(&verbose, "verbose", false, "also print every check that ran")
			fs.BoolVar(&asJSON, "json", false, "print the verdict as JSON")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			switch {
			case certPath == "":
				return withHint(usagef("explain: --cert is required"), "run `sshca explain -h` for usage")
			case host != "" && (account != "" || sshdConfig != "" || trustedCA != "" || principalsFile != "" || from != ""):
				return usagef("explain: --host explains a host certificate; --user, --from, --sshd-config, --trusted-ca and --principals-file do not apply")
			case host != "" && len(knownHosts) == 0:
				return withHint(usagef("explain: --host needs --known-hosts FILE"), "the ssh client trusts a host CA through @cert-authority lines in known_hosts")
			case host == "" && account == "":
				return withHint(usagef("explain: --user is required (or --host for a host certificate)"), "run `sshca explain -h` for usage")
			case host == "" && sshdConfig == "" && trustedCA == "":
				return withHint(usagef("explain: give --sshd-config FILE, or --trusted-ca FILE"), "without a trusted CA sshd refuses every certificate")
			case port <= 0 || port > 65535:
				return usagef("explain: --port %d is not a port", port)
			}
			now := time.Now()
			when, err := parseAt(at, now)
			if err != nil {
				return withHint(usagef("explain: --at: %v", err), "use RFC 3339 (2026-11-22T10:00:00Z) or +2h / -30m")
			}
			var addr netip.Addr
			if from != "" {
				if addr, err = netip.ParseAddr(from); err != nil {
					return usagef("explain: --from %q is not an IP address", from)
				}
			}
			data, err := readLimited(certPath, 1<<20)
			if err != nil {
				return err
			}
			cert, err := parseCertFile(data)
			if err != nil {
				return fmt.Errorf("%s: %w", certPath, err)
			}
			version, err := resolveSSHDVersion("explain", sshdVersion, host != "")
			if err != nil {
				return err
			}
			var srv explain.Server
			if host != "" {
				srv, err = explainHostSide(caSigAlgs, krls, knownHosts, version)
			} else {
				srv, err = explainServer(account, sshdConfig, trustedCA, principalsFile, caSigAlgs, krls, fs, version)
			}
			if err != nil {
				return err
			}
			v, err := explain.Explain(explain.Input{Cert: cert, User: account, From: addr, At: when, Server: srv, Host: host, Port: port})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				printVerdict(e, v, verbose)
			}
			if !v.Accept {
				return &exitCodeError{code: exitError}
			}
			return nil
		},
	}
}

// parseAt reads --at: empty for now, RFC 3339, or a signed duration.
func parseAt(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return now, nil
	case s[0] == '+' || s[0] == '-':
		d, err := config.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	return time.Parse(time.RFC3339, s)
}

// resolveSSHDVersion reads the --sshd-version flag of command cmd: "" for
// the default (9.2), a version, a program to run with -V, or "auto" for
// this machine's sshd (or, with client set, ssh).
func resolveSSHDVersion(cmd, s string, client bool) (explain.Version, error) {
	program := ""
	switch {
	case s == "":
		return explain.Version{}, nil
	case s == "auto":
		name, fallback := "sshd", "/usr/sbin/sshd"
		if client {
			name, fallback = "ssh", "/usr/bin/ssh"
		}
		program = fallback
		if p, err := exec.LookPath(name); err == nil {
			program = p
		}
	case strings.ContainsRune(s, '/'):
		program = s
	default:
		v, err := explain.ParseVersion(s)
		if err != nil {
			return explain.Version{}, withHint(usagef("%s: --sshd-version: %v", cmd, err), "give a version such as 9.2 or 10.5, a path to sshd, or auto")
		}
		return v, nil
	}
	// Older sshd have no -V and print their version in the usage message,
	// so the exit status says nothing.
	out, runErr := exec.Command(program, "-V").CombinedOutput()
	v, err := explain.VersionFromOutput(string(out))
	if err != nil {
		if runErr != nil {
			err = runErr
		}
		return explain.Version{}, withHint(fmt.Errorf("%s: --sshd-version %s: cannot read the OpenSSH version of %s: %w", cmd, s, program, err), "give the version itself, such as --sshd-version 10.5")
	}
	return v, nil
}

// explainServer builds the server side from --sshd-config and the flags
// that override it.
func explainServer(account, sshdConfig, trustedCA, principalsFile, caSigAlgs string, krls []string, fs *flag.FlagSet, version explain.Version) (explain.Server, error) {
	cfg := &explain.SSHDConfig{PubkeyAuthentication: true}
	if sshdConfig != "" {
		data, err := readLimited(sshdConfig, 4<<20)
		if err != nil {
			return explain.Server{}, err
		}
		cfg, err = explain.ParseSSHDConfigInclude(strings.NewReader(string(data)), includeFiles)
		if err != nil {
			return explain.Server{}, err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["trusted-ca"] {
		cfg.TrustedUserCAKeys = trustedCA
	}
	if set["principals-file"] {
		// An explicit file path: relative to here, no tokens to expand.
		abs, err := filepath.Abs(principalsFile)
		if err != nil {
			return explain.Server{}, err
		}
		cfg.AuthorizedPrincipalsFile = strings.ReplaceAll(abs, "%", "%%")
	}
	if set["krl"] {
		cfg.RevokedKeys = krls
	}
	if set["ca-signature-algorithms"] {
		if _, err := explain.CASignatureAlgorithmsOf(caSigAlgs, version); err != nil {
			return explain.Server{}, withHint(usagef("%v", err), "--ca-signature-algorithms takes a CASignatureAlgorithms value, such as +ssh-rsa or ssh-ed25519,rsa-sha2-512")
		}
		cfg.CASignatureAlgorithms = caSigAlgs
	}
	acct := explain.Account{Name: account}
	if u, err := user.Lookup(account); err == nil {
		acct.Home, acct.UID = u.HomeDir, u.Uid
	}
	srv, err := cfg.Server(acct, func(p string) ([]byte, error) { return readLimited(p, maxServerFile) })
	if err != nil {
		return explain.Server{}, withHint(err, "give the account's principals file with --principals-file FILE")
	}
	srv.Version = version
	return srv, nil
}

// explainHostSide builds the ssh client's side for --host.
func explainHostSide(caSigAlgs string, krls, knownHosts []string, version explain.Version) (explain.Server, error) {
	if _, err := explain.CASignatureAlgorithmsOf(caSigAlgs, version); err != nil {
		return explain.Server{}, withHint(usagef("%v", err), "--ca-signature-algorithms takes a CASignatureAlgorithms value, such as +ssh-rsa or ssh-ed25519,rsa-sha2-512")
	}
	srv := explain.Server{CASignatureAlgorithms: caSigAlgs, Version: version}
	for _, p := range knownHosts {
		data, err := readLimited(p, maxServerFile)
		srv.KnownHosts = append(srv.KnownHosts, explain.File{Path: p, Data: data, Err: err})
	}
	for _, p := range krls {
		data, err := readLimited(p, maxServerFile)
		srv.RevokedKeys = append(srv.RevokedKeys, explain.File{Path: p, Data: data, Err: err})
	}
	return srv, nil
}

// includeFiles resolves an sshd_config Include pattern on this machine.
func includeFiles(pattern string) ([]explain.File, error) {
	names, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []explain.File
	for _, n := range names {
		data, err := readLimited(n, 4<<20)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, explain.File{Path: n, Data: data, Err: err})
	}
	return out, nil
}

func printVerdict(e *env, v explain.Verdict, verbose bool) {
	if verbose {
		fmt.Fprintf(e.stdout, "rules: %s\n", v.OpenSSH)
		for _, s := range v.Steps {
			status := "ok"
			if !s.OK {
				status = "FAIL"
			}
			fmt.Fprintf(e.stdout, "step: %s: %s: %s\n", s.Name, status, oneLine(s.Detail))
		}
	}
	if v.Accept {
		fmt.Fprintln(e.stdout, "accept")
	} else {
		fmt.Fprintf(e.stdout, "refuse: %s\n", oneLine(v.Reason))
		fmt.Fprintf(e.stdout, "check: %s\n", v.Check)
		fmt.Fprintf(e.stdout, "fix: %s\n", oneLine(v.Fix))
	}
	for _, n := range v.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", oneLine(n))
	}
}
