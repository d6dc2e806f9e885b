package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/config"
)

func newSyncCommand() *command {
	var svc serviceFlags
	var dir, hostKey, interval, renewBefore, pidFile, reloadCmd, hostKRL string
	return &command{
		name:    "sync",
		summary: "keep this server's trusted CA keys, KRL, principals files and host certificate current (run as root)",
		usage:   "--server URL [--ca-fingerprint SHA256:...] [--dir /etc/ssh/sshca] [--host-key KEY] [--host-krl FILE] [--interval D]",
		example: `  sshca sync --server https://ca.corp:8443 --ca-fingerprint SHA256:... --host-key /etc/ssh/ssh_host_ed25519_key
  sshca sync --server https://ca.corp:8443 --interval 5m --sshd-pid-file /run/sshd.pid    # as a daemon
  sshca sync --server https://ca.corp:8443 --host-krl /etc/ssh/sshca/revoked-host.krl   # for sshd-config --host-krl

--host-krl also keeps the host CA's KRL at FILE, verified against the host CA
keys, for the RevokedKeys line that sshd-config --host-krl prints for OpenSSH
10.3 and later; give both commands the same FILE. An empty KRL is written there
first, since sshd refuses every key login while a RevokedKeys file is missing.`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&dir, "dir", "/etc/ssh/sshca", "`directory` for trusted_user_ca_keys, revoked.krl, principals/")
			fs.StringVar(&hostKey, "host-key", "", "host private key whose certificate (<key>-cert.pub) to renew and to report with")
			fs.StringVar(&interval, "interval", "", "run as a daemon, syncing this often (with jitter and back-off)")
			fs.StringVar(&renewBefore, "renew-before", "", "renew the host certificate when less than this remains (default: a third of its lifetime)")
			fs.StringVar(&pidFile, "sshd-pid-file", "", "send SIGHUP to this sshd after renewing the host certificate")
			fs.StringVar(&reloadCmd, "reload-command", "", "run this command after renewing the host certificate (e.g. \"systemctl reload ssh\")")
			fs.StringVar(&hostKRL, "host-krl", "", "also keep the host KRL at this `file` (the one sshd-config --host-krl names)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" {
				return usagef("sync: --server is required")
			}
			var iv, rb time.Duration
			var err error
			if interval != "" {
				if iv, err = config.ParseDuration(interval); err != nil || iv < time.Second {
					return usagef("sync: --interval must be a duration of at least 1s")
				}
			}
			if renewBefore != "" {
				if rb, err = config.ParseDuration(renewBefore); err != nil || rb <= 0 {
					return usagef("sync: --renew-before must be a positive duration")
				}
			}
			if hostKRL != "" {
				if !filepath.IsAbs(hostKRL) || strings.ContainsAny(hostKRL, " \t\r\n\"'#\\") {
					return withHint(usagef("sync: --host-krl %q must be an absolute path without blanks, quotes or '#'", hostKRL), "give the path sshd-config --host-krl prints on the RevokedKeys line")
				}
				if abs, err := filepath.Abs(filepath.Join(dir, agent.KRLFile)); err == nil && filepath.Clean(hostKRL) == abs {
					return usagef("sync: --host-krl %s is where the user KRL goes; name another file", hostKRL)
				}
			}
			c, err := svc.client("sync")
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			cfg := agent.Config{Client: c, Dir: dir, HostKey: hostKey, RenewBefore: rb, SSHDPidFile: pidFile, ReloadCommand: reloadCmd,
				HostKRL: hostKRL, Log: slog.New(slog.NewTextHandler(e.stderr, nil))}
			if iv > 0 {
				return agent.Run(e.ctx, cfg, iv)
			}
			res, err := agent.Sync(e.ctx, cfg)
			if res != nil {
				for _, f := range res.Installed {
					fmt.Fprintf(e.stdout, "installed %s\n", f)
				}
				for _, f := range res.Refused {
					fmt.Fprintf(e.stdout, "refused %s\n", f)
				}
				fmt.Fprintf(e.stdout, "KRL version %d, %d trusted CA keys\n", res.State.KRLVersion, len(res.State.CAKeys))
				if hostKRL != "" {
					fmt.Fprintf(e.stdout, "host KRL version %d at %s\n", res.State.HostKRLVersion, hostKRL)
				}
				if err != nil && !res.State.LastSuccess.IsZero() {
					fmt.Fprintf(e.stdout, "stale: last successful sync %s ago\n", agent.Staleness(res.State, time.Now()).Round(time.Second))
				}
			}
			return err
		},
	}
}
