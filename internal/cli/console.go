package cli

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/console"
)

func newConsoleLinkCommand() *command {
	var user, ttl, base string
	return &command{
		name:    "console link",
		summary: "make a one-time login link to the admin console (/ui/ of sshca serve) for one person",
		usage:   "--user NAME [--ttl 10m] [--url https://HOST:PORT]",
		example: `  sshca console link --user alice
  sshca console link --user alice --url https://ca.example.com:8443 --ttl 5m`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&user, "user", "", "who signs in with it; service.console.admins in sshca.yaml decides what they may do")
			fs.StringVar(&ttl, "ttl", "10m", "how long the link stays valid (at most 24h); it works once")
			fs.StringVar(&base, "url", "", "the service's address as browsers reach it (default: https:// and service.listen)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if user == "" {
				return usagef("console link: give --user NAME")
			}
			d, err := config.ParseDuration(ttl)
			if err != nil || d <= 0 || d > console.MaxLinkTTL {
				return usagef("console link: --ttl must be a duration between 1s and 24h")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			svc := h.Config.ServiceOrDefault()
			if svc.Console == nil {
				return withHint(errors.New("the console is off: sshca.yaml sets no service.console"),
					"add service.console.admins (users or groups) to sshca.yaml and restart sshca serve")
			}
			if base == "" {
				host, port, err := net.SplitHostPort(svc.Listen)
				if err != nil {
					return err
				}
				if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
					return withHint(fmt.Errorf("service.listen %q names no host a browser can reach", svc.Listen), "give --url https://HOST:PORT")
				}
				base = "https://" + net.JoinHostPort(host, port)
			}
			now := time.Now()
			link, tok, err := console.NewLoginLink(e.ctx, h.Store, base, user, e.actor(), now, d)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, link)
			fmt.Fprintf(e.stderr, "one-time console login link for %s, valid until %s; it is shown only now\n", user, tok.ExpiresAt.UTC().Format(time.RFC3339))
			if !slices.Contains(svc.Console.Admins.Users, user) {
				fmt.Fprintf(e.stderr, "note: %s is not in service.console.admins.users: the console will refuse them (403)\n", user)
			}
			return nil
		},
	}
}
