package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/store"
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

func newHostEnrollCommand() *command {
	var svc serviceFlags
	var tokenFile, hostKey, principals, ttl string
	return &command{
		name:    "host enroll",
		summary: "get this server's first host certificate with a one-time enrollment token",
		usage:   "--server URL [--ca-fingerprint SHA256:...] --token-file F --host-key KEY [--principals h1,h2]",
		example: `  sshca host enroll --server https://ca.corp:8443 --token-file /root/enroll.token --host-key /etc/ssh/ssh_host_ed25519_key`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&tokenFile, "token-file", "", "`file` holding the enrollment token")
			fs.StringVar(&hostKey, "host-key", "", "host private key `file` (its .pub is certified)")
			fs.StringVar(&principals, "principals", "", "host names (default: those the token is bound to)")
			fs.StringVar(&ttl, "ttl", "", "lifetime (default: the host role's)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" || tokenFile == "" || hostKey == "" {
				return usagef("host enroll: --server, --token-file and --host-key are required")
			}
			c, err := svc.client("host enroll")
			if err != nil {
				return err
			}
			tok, err := readTokenFile(tokenFile)
			if err != nil {
				return fmt.Errorf("token file: %w", err)
			}
			c.Bearer = strings.TrimSpace(string(tok))
			pubData, err := os.ReadFile(hostKey + ".pub")
			if err != nil {
				return fmt.Errorf("host public key: %w", err)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
			if err != nil {
				return fmt.Errorf("%s.pub: not a public key", hostKey)
			}
			resp, cert, err := c.RequestCert(e.ctx, "host", api.CertRequest{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
				Principals: splitList(principals), TTL: ttl})
			if err != nil {
				return err
			}
			if string(cert.Key.Marshal()) != string(pub.Marshal()) || cert.CertType != ssh.HostCert {
				return errors.New("the service returned a certificate for another key or type")
			}
			path := client.CertPath(hostKey)
			if err := atomicfile.Write(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: serial %d, principals %s, valid until %s\n", path, resp.Serial, strings.Join(resp.Principals, ","), resp.ValidBefore.Format(time.RFC3339))
			fmt.Fprintf(e.stdout, "add to sshd_config: HostCertificate %s  (then reload sshd; `sshca sync --host-key %s` renews it)\n", path, hostKey)
			return nil
		},
	}
}

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

func newSSHConfigCommand() *command {
	var svc serviceFlags
	var hosts, bastion, bastionUser, keyPath string
	return &command{
		name:    "ssh-config",
		summary: "print the client side: @cert-authority lines for known_hosts and an ~/.ssh/config block",
		usage:   "--server URL [--ca-fingerprint SHA256:...] [--hosts PATTERN] [--bastion HOST [--bastion-user U]]",
		example: `  sshca ssh-config --server https://ca.corp:8443 --hosts '*.corp' --bastion bastion.corp`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&hosts, "hosts", "*", "host `patterns` (comma-separated) the host CA vouches for")
			fs.StringVar(&bastion, "bastion", "", "jump host for the ~/.ssh/config block (ProxyJump)")
			fs.StringVar(&bastionUser, "bastion-user", "", "user on the jump host")
			fs.StringVar(&keyPath, "key", "~/.ssh/id_ed25519", "identity file in the config block")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" {
				return usagef("ssh-config: --server is required")
			}
			if strings.ContainsAny(hosts, " \t\n") || strings.ContainsAny(bastion+bastionUser+keyPath, " \t\n") {
				return usagef("ssh-config: patterns and names may not contain spaces")
			}
			c, err := svc.client("ssh-config")
			if err != nil {
				return err
			}
			keys, _, err := c.CAKeys(e.ctx, "host")
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				return errors.New("the service published no host CA keys")
			}
			fmt.Fprintln(e.stdout, "# ~/.ssh/known_hosts (or /etc/ssh/ssh_known_hosts): trust host certificates from the sshca host CA")
			for _, k := range keys {
				fmt.Fprintf(e.stdout, "@cert-authority %s %s\n", hosts, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
			}
			fmt.Fprintln(e.stdout)
			fmt.Fprintln(e.stdout, "# ~/.ssh/config. RevokedHostKeys is the host KRL, signed by the host CA: ssh refuses revoked host")
			fmt.Fprintln(e.stdout, "# certificates, and every host while the file is missing. `sshca login --key KEY` (and `sshca known-hosts")
			fmt.Fprintln(e.stdout, "# --file PATH`) fetch it, check the signature and install it; run one from cron to keep it current.")
			fmt.Fprintln(e.stdout, "# ~/.ssh/config")
			block := func(pattern, jump string) {
				fmt.Fprintf(e.stdout, "Host %s\n", pattern)
				fmt.Fprintf(e.stdout, "    IdentityFile %s\n", keyPath)
				fmt.Fprintf(e.stdout, "    CertificateFile %s-cert.pub\n", keyPath)
				fmt.Fprintln(e.stdout, "    StrictHostKeyChecking yes")
				fmt.Fprintf(e.stdout, "    RevokedHostKeys %s\n", hostKRLBeside(keyPath))
				fmt.Fprintf(e.stdout, "    ProxyJump %s\n", jump)
			}
			if bastion == "" {
				block(strings.ReplaceAll(hosts, ",", " "), "none")
				return nil
			}
			// ssh takes the first value it finds, so the bastion's own block
			// comes first: otherwise a pattern matching it would jump through itself.
			block(bastion, "none")
			jump := bastion
			if bastionUser != "" {
				jump = bastionUser + "@" + bastion
			}
			block(strings.ReplaceAll(hosts, ",", " "), jump)
			return nil
		},
	}
}

// hostState classifies a reported host.
func hostState(h store.Host, latest uint64, activeCAs []string, now time.Time, staleAfter, expiringWithin time.Duration) []string {
	var flags []string
	if now.Sub(h.LastSeen) > staleAfter {
		flags = append(flags, "stale")
	}
	if h.Stale {
		flags = append(flags, "sync-failing")
	}
	if h.KRLVersion < latest {
		flags = append(flags, fmt.Sprintf("krl-behind-%d", latest-h.KRLVersion))
	}
	for _, fp := range activeCAs {
		found := false
		for _, have := range h.CAKeys {
			if have == fp {
				found = true
			}
		}
		if !found {
			flags = append(flags, "missing-ca-key")
			break
		}
	}
	if !h.HostCertExpiry.IsZero() && h.HostCertExpiry.Sub(now) < expiringWithin {
		if h.HostCertExpiry.Before(now) {
			flags = append(flags, "host-cert-expired")
		} else {
			flags = append(flags, "host-cert-expiring")
		}
	}
	return flags
}

func publishedFingerprints(e *env, st store.Store, caType string) ([]string, error) {
	keys, err := st.ListCAKeys(e.ctx, caType)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if published(k) {
			out = append(out, k.Fingerprint)
		}
	}
	return out, nil
}

// caGenerations names the user CA generations behind fingerprints ("1,2"),
// with "?" for a key this CA does not know.
func caGenerations(fps []string, gens map[string]int) string {
	var out []string
	for _, fp := range fps {
		if g, ok := gens[fp]; ok {
			out = append(out, strconv.Itoa(g))
		} else {
			out = append(out, "?")
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func newFleetStatusCommand() *command {
	var staleAfter, expiringWithin string
	return &command{
		name:    "fleet status",
		summary: "list servers with last report, KRL version lag, trusted CA generations and host certificate expiry",
		usage:   "[--stale-after D] [--expiring-within D]",
		example: `  sshca fleet status
  sshca fleet status --stale-after 30m --expiring-within 7d`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&staleAfter, "stale-after", "15m", "a host not heard from for this long is stale")
			fs.StringVar(&expiringWithin, "expiring-within", "24h", "flag host certificates that expire sooner than this")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			sa, err := config.ParseDuration(staleAfter)
			if err != nil || sa <= 0 {
				return usagef("fleet status: --stale-after must be a positive duration")
			}
			ew, err := config.ParseDuration(expiringWithin)
			if err != nil || ew < 0 {
				return usagef("fleet status: --expiring-within must be a duration")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			hosts, err := h.Store.ListHosts(e.ctx)
			if err != nil {
				return err
			}
			latest, err := h.Store.KRLVersion(e.ctx, "user")
			if err != nil {
				return err
			}
			fps, err := publishedFingerprints(e, h.Store, "user")
			if err != nil {
				return err
			}
			keys, err := h.Store.ListCAKeys(e.ctx, "user")
			if err != nil {
				return err
			}
			gens := map[string]int{}
			for _, k := range keys {
				gens[k.Fingerprint] = k.Generation
			}
			// The host CA generation behind each host certificate: after a
			// host CA rotation, hosts still on the old key are flagged
			// host-cert-old-ca until their agent renews.
			hostKeys, err := h.Store.ListCAKeys(e.ctx, "host")
			if err != nil {
				return err
			}
			hostGens, activeHostCA := map[string]int{}, ""
			for _, k := range hostKeys {
				hostGens[k.Fingerprint] = k.Generation
				if k.State == store.StateActive {
					activeHostCA = k.Fingerprint
				}
			}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "HOST\tLAST SEEN\tKRL\tCA GENS\tHOST CA GEN\tHOST CERT EXPIRES\tSTATUS\n")
			for _, x := range hosts {
				flags := hostState(x, latest, fps, now, sa, ew)
				hostGen := "-"
				if x.HostCertCA != "" {
					hostGen = caGenerations([]string{x.HostCertCA}, hostGens)
					if activeHostCA != "" && x.HostCertCA != activeHostCA {
						flags = append(flags, "host-cert-old-ca")
					}
				}
				status := "ok"
				if len(flags) > 0 {
					status = strings.Join(flags, ",")
				}
				exp := "-"
				if !x.HostCertExpiry.IsZero() {
					exp = x.HostCertExpiry.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s ago\t%d/%d\t%s\t%s\t%s\t%s\n", x.Name, now.Sub(x.LastSeen).Round(time.Second), x.KRLVersion, latest,
					caGenerations(x.CAKeys, gens), hostGen, exp, status)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, x := range hosts {
				if x.Stale && x.Detail != "" {
					fmt.Fprintf(e.stdout, "%s: %s\n", x.Name, x.Detail)
				}
			}
			return nil
		},
	}
}

func newFleetWaitCommand() *command {
	var version, timeout, staleAfter string
	return &command{
		name:    "fleet wait",
		summary: "wait until every live server has installed a KRL version (exit 1 on timeout, listing those behind)",
		usage:   "--krl-version N|latest [--timeout D] [--stale-after D]",
		example: `  sshca revoke --serial 42 && sshca fleet wait --krl-version latest --timeout 10m`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&version, "krl-version", "latest", "KRL version to wait for, or latest")
			fs.StringVar(&timeout, "timeout", "10m", "give up after this long")
			fs.StringVar(&staleAfter, "stale-after", "15m", "hosts not heard from for this long are not waited for (and are listed)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			to, err := config.ParseDuration(timeout)
			if err != nil || to <= 0 {
				return usagef("fleet wait: --timeout must be a positive duration")
			}
			sa, err := config.ParseDuration(staleAfter)
			if err != nil || sa <= 0 {
				return usagef("fleet wait: --stale-after must be a positive duration")
			}
			var want uint64
			if version != "latest" {
				if want, err = strconv.ParseUint(version, 10, 64); err != nil {
					return usagef("fleet wait: --krl-version must be a number or latest")
				}
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if version == "latest" {
				if want, err = h.Store.KRLVersion(e.ctx, "user"); err != nil {
					return err
				}
			}
			deadline := time.Now().Add(to)
			for {
				hosts, err := h.Store.ListHosts(e.ctx)
				if err != nil {
					return err
				}
				now := time.Now()
				var behind, dead []string
				for _, x := range hosts {
					if now.Sub(x.LastSeen) > sa {
						dead = append(dead, x.Name)
						continue
					}
					if x.KRLVersion < want {
						behind = append(behind, fmt.Sprintf("%s (has %d)", x.Name, x.KRLVersion))
					}
				}
				if len(behind) == 0 {
					fmt.Fprintf(e.stdout, "every live host has KRL version %d or later (%d hosts)\n", want, len(hosts)-len(dead))
					if len(dead) > 0 {
						fmt.Fprintf(e.stdout, "not heard from within %s: %s\n", sa, strings.Join(dead, ", "))
					}
					return nil
				}
				if now.After(deadline) {
					return withHint(fmt.Errorf("timed out waiting for KRL version %d; behind: %s", want, strings.Join(behind, ", ")),
						"check `sshca fleet status` and the sync logs on those hosts")
				}
				select {
				case <-e.ctx.Done():
					return e.ctx.Err()
				case <-time.After(time.Second):
				}
			}
		},
	}
}
