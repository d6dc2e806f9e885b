package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/oidc"
)

func defaultKeyPath(e *env) string {
	home := e.getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".ssh", "id_ed25519")
}

func newLoginCommand() *command {
	var svc serviceFlags
	var role, keyPath, tokenFile, principals, ttl, totpCode, renewBefore string
	var validFrom, validUntil, validity string
	var renew, noAgent, asJSON bool
	return &command{
		name:    "login",
		summary: "get a user certificate from the service (SSO device flow, API token, or renewal)",
		usage:   "--server URL --role R [--key PATH] [--token-file F | --renew] [--principals a,b] [--ttl D | --valid-from T --valid-until T | --validity FROM:TO] [--totp CODE] [--renew-before D] [--json]",
		example: `  sshca login --server https://ca.corp:8443 --role deploy          # SSO: open the printed URL, enter the code
  sshca login --server https://ca.corp:8443 --ca-fingerprint SHA256:... --role deploy --token-file /run/ci.token
  sshca login --server https://ca.corp:8443 --renew --renew-before 1h   # automation: renew by proof of possession
  sshca login --server https://ca.corp:8443 --role deploy --validity -5m:+1w   # a window, like ssh-keygen -V

--valid-from/--valid-until/--validity take the forms of sshca sign (see
sshca sign user -h). Relative times (-5m, +1w) are sent as they are and
placed by the service's clock; absolute ones are sent in RFC 3339. The
service's policy decides the window as for sshca sign: within the role's
max_ttl, starting at most 24h ago or 31 days ahead.`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&role, "role", "", "role to request")
			fs.StringVar(&keyPath, "key", "", "private key `file` (default ~/.ssh/id_ed25519; created as ed25519 if missing)")
			fs.StringVar(&tokenFile, "token-file", "", "authenticate with the API token in this `file` instead of SSO")
			fs.BoolVar(&renew, "renew", false, "renew the current certificate by proving possession of its key (no token, no SSO)")
			fs.StringVar(&principals, "principals", "", "comma-separated subset of the role's principals")
			fs.StringVar(&ttl, "ttl", "", "lifetime (default: the role's)")
			fs.StringVar(&validFrom, "valid-from", "", "start of the validity `time`: -5m, +1d, 2026-05-01[T09:00[:00]], RFC 3339 (default: now)")
			fs.StringVar(&validUntil, "valid-until", "", "end of the validity `time`, in the same forms (default: start + --ttl)")
			fs.StringVar(&validity, "validity", "", "validity window as ssh-keygen -V takes it: `FROM:TO` (-5m:+1w) or TO alone")
			fs.StringVar(&totpCode, "totp", "", "TOTP code for roles that require a second factor")
			fs.StringVar(&renewBefore, "renew-before", "", "do nothing while the current certificate is valid for longer than this")
			fs.BoolVar(&noAgent, "no-agent", false, "do not add the key and certificate to ssh-agent")
			fs.BoolVar(&asJSON, "json", false, "print the JSON certificate object of the certificate now in place (docs/json.md); the rest goes to stderr")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" {
				return usagef("login: --server is required")
			}
			if tokenFile != "" && renew {
				return usagef("login: --token-file and --renew exclude each other")
			}
			if role == "" && !renew {
				return usagef("login: --role is required")
			}
			for _, d := range []string{ttl, renewBefore} {
				if d != "" {
					if v, err := config.ParseDuration(d); err != nil || v <= 0 {
						return usagef("login: %q is not a positive duration", d)
					}
				}
			}
			if renew && (validFrom != "" || validUntil != "" || validity != "") {
				return usagef("login: --renew takes no validity window (a renewal is decided like the first certificate; give --ttl)")
			}
			validAfter, validBefore, err := windowRequest("login", validFrom, validUntil, validity, ttl != "", time.Now())
			if err != nil {
				return err
			}
			if keyPath == "" {
				keyPath = defaultKeyPath(e)
			}
			// With --json, stdout holds the certificate object alone; what
			// login says besides goes to stderr.
			info := e
			if asJSON {
				je := *e
				je.stdout = e.stderr
				info = &je
			}
			now := time.Now()
			if renewBefore != "" {
				d, _ := config.ParseDuration(renewBefore)
				if data, err := os.ReadFile(client.CertPath(keyPath)); err == nil {
					if cert, err := client.ParseCert(data); err == nil && time.Unix(int64(cert.ValidAfter), 0).Before(now) {
						if left := client.Remaining(cert, now); left > d {
							fmt.Fprintf(info.stdout, "certificate %s is valid for %s more; nothing to do\n", client.CertPath(keyPath), left.Round(time.Second))
							if c, err := svc.client("login"); err == nil {
								updateHostKRL(info, c, keyPath)
							}
							if asJSON {
								out := api.CertificateOf(cert, now)
								out.File = client.CertPath(keyPath)
								return printJSON(e, out)
							}
							return nil
						}
					}
				}
			}
			c, err := svc.client("login")
			if err != nil {
				return err
			}
			sgn, priv, created, err := client.EnsureKey(keyPath)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(e.stderr, "created key %s\n", keyPath)
			}
			var resp *api.CertResponse
			var cert *ssh.Certificate
			if renew {
				data, err := os.ReadFile(client.CertPath(keyPath))
				if err != nil {
					return withHint(fmt.Errorf("no certificate to renew: %w", err), "log in with SSO or --token-file first")
				}
				old, err := client.ParseCert(data)
				if err != nil {
					return err
				}
				if resp, cert, err = c.RenewWithFactor(e.ctx, old, sgn, ttl, totpCode); err != nil {
					return err
				}
			} else {
				if tokenFile != "" {
					tok, err := readTokenFile(tokenFile)
					if err != nil {
						return fmt.Errorf("token file: %w", err)
					}
					c.Bearer = strings.TrimSpace(string(tok))
				} else {
					ac, err := c.AuthConfig(e.ctx)
					if err != nil {
						return err
					}
					if ac.OIDCIssuer == "" {
						return withHint(errors.New("the service has no SSO configured"), "use --token-file")
					}
					df := &oidc.DeviceFlow{Issuer: ac.OIDCIssuer, ClientID: ac.OIDCClientID}
					idt, err := df.Login(e.ctx, func(uri, code, complete string) {
						if complete != "" {
							fmt.Fprintf(e.stderr, "To sign in, open %s\n", complete)
						} else {
							fmt.Fprintf(e.stderr, "To sign in, open %s and enter the code %s\n", uri, code)
						}
					})
					if err != nil {
						return err
					}
					c.Bearer = idt
				}
				req := api.CertRequest{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sgn.PublicKey()))), Role: role,
					Principals: splitList(principals), TTL: ttl, TOTP: totpCode, ValidAfter: validAfter, ValidBefore: validBefore}
				if resp, cert, err = c.RequestCert(e.ctx, "user", req); err != nil {
					return err
				}
			}
			if string(cert.Key.Marshal()) != string(sgn.PublicKey().Marshal()) {
				return errors.New("the service returned a certificate for another key")
			}
			if err := client.WriteCert(keyPath, cert); err != nil {
				return err
			}
			fmt.Fprintf(info.stdout, "wrote %s: serial %d, principals %s, valid until %s\n", client.CertPath(keyPath), resp.Serial,
				strings.Join(resp.Principals, ","), resp.ValidBefore.Format(time.RFC3339))
			if sock := e.getenv("SSH_AUTH_SOCK"); sock != "" && !noAgent {
				if err := client.AddToAgent(sock, priv, cert, time.Now()); err != nil {
					fmt.Fprintf(e.stderr, "sshca: warning: %v\n", err)
				} else {
					fmt.Fprintf(info.stdout, "added to ssh-agent for %s\n", client.Remaining(cert, time.Now()).Round(time.Second))
				}
			}
			updateHostKRL(info, c, keyPath)
			if asJSON {
				// The service's answer is the certificate object already.
				out := *resp
				out.File = client.CertPath(keyPath)
				return printJSON(e, out)
			}
			return nil
		},
	}
}
