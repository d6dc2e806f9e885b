package cli

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/client"
)

func newSSHDConfigCommand() *command {
	var dir, hostKey, hostKRL, sshdVersion string
	var noAuthorizedKeys bool
	return &command{
		name:    "sshd-config",
		summary: "print the sshd_config lines a server needs",
		usage:   "[--dir /etc/ssh/sshca] [--host-key KEY] [--no-authorized-keys] [--host-krl FILE [--sshd-version V|auto]]",
		example: `  sshca sshd-config >> /etc/ssh/sshd_config.d/sshca.conf
  sshca sshd-config --host-krl /etc/ssh/sshca/revoked-host.krl --sshd-version auto

RevokedKeys names the user KRL that sshca sync keeps current. OpenSSH 10.3 and
later take several files on that line; with --host-krl and an sshd that new,
the host KRL (kept by sshca sync --host-krl FILE) joins it, so that a key revoked
as a host key is refused as a user key too. --sshd-version is the release of
the sshd that reads the lines: a version (10.5), the path of an sshd to run
with -V, or auto for this machine's; without it the lines are for OpenSSH 9.2,
which refuses to start with several files, and the host KRL is left out.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "/etc/ssh/sshca", "the `directory` sshca sync writes to")
			fs.StringVar(&hostKey, "host-key", "/etc/ssh/ssh_host_ed25519_key", "host key whose certificate sshd presents")
			fs.BoolVar(&noAuthorizedKeys, "no-authorized-keys", false, "also turn off authorized_keys files (certificates only)")
			fs.StringVar(&hostKRL, "host-krl", "", "also revoke what this host KRL `file` lists (OpenSSH 10.3 and later)")
			fs.StringVar(&sshdVersion, "sshd-version", "", "the sshd `release` the lines are for: 9.2 (default), 10.5, a path to sshd, or auto")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if hostKRL != "" && (!filepath.IsAbs(hostKRL) || strings.ContainsAny(hostKRL, " \t\r\n\"'#\\")) {
				return withHint(usagef("sshd-config: --host-krl %q must be an absolute path without blanks, quotes or '#'", hostKRL), "sshd reads the path from sshd_config as it is")
			}
			version, err := resolveSSHDVersion("sshd-config", sshdVersion, false)
			if err != nil {
				return err
			}
			userKRL := filepath.Join(dir, agent.KRLFile)
			w := e.stdout
			fmt.Fprintln(w, "# sshca: user certificates signed by these CA keys are accepted (kept current by `sshca sync`).")
			fmt.Fprintf(w, "TrustedUserCAKeys %s\n", filepath.Join(dir, agent.TrustedCAFile))
			fmt.Fprintln(w, "# A certificate logs in as account X if one of its principals is listed in principals/X.")
			fmt.Fprintf(w, "AuthorizedPrincipalsFile %s/%%u\n", filepath.Join(dir, agent.PrincipalsDir))
			fmt.Fprintln(w, "# Revoked certificates and keys. Run `sshca sync` once before enabling this line:")
			fmt.Fprintln(w, "# it writes a valid (empty) KRL first, because sshd refuses every key login if this file is missing.")
			switch {
			case hostKRL != "" && version.AtLeast(10, 3):
				fmt.Fprintf(w, "# With the host KRL too, for %s: OpenSSH before 10.3 refuses to start with two files here.\n", version)
				fmt.Fprintf(w, "# `sshca sync --host-krl %s` writes it (empty first) and keeps it current; run it before enabling this line.\n", hostKRL)
				fmt.Fprintf(w, "RevokedKeys %s %s\n", userKRL, hostKRL)
			case hostKRL != "":
				fmt.Fprintf(w, "# %s takes one file here, so the host KRL %s is left out (OpenSSH 10.3 and later take both: --sshd-version).\n", version, hostKRL)
				fmt.Fprintf(w, "RevokedKeys %s\n", userKRL)
			default:
				fmt.Fprintf(w, "RevokedKeys %s\n", userKRL)
			}
			fmt.Fprintln(w, "# The host certificate clients verify through their @cert-authority line (from `sshca host enroll`).")
			fmt.Fprintf(w, "HostCertificate %s\n", client.CertPath(hostKey))
			if noAuthorizedKeys {
				fmt.Fprintln(w, "# Certificates only: no authorized_keys files.")
				fmt.Fprintln(w, "AuthorizedKeysFile none")
			} else {
				fmt.Fprintln(w, "# Opt in to certificates only with: AuthorizedKeysFile none")
			}
			return nil
		},
	}
}
