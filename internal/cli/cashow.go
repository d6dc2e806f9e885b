package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/sshca/sshca/internal/store"
)

// publishedStates are the CA key states that servers and clients must trust.
func published(k store.CAKey) bool {
	return k.State == store.StateNext || k.State == store.StateActive || k.State == store.StateRetiring
}

func newCAShowCommand() *command {
	var caType, knownHosts string
	return &command{
		name:    "ca show",
		summary: "print the trusted public keys of a CA (every live generation)",
		usage:   "--type user|host [--known-hosts PATTERN]",
		example: `  sshca ca show --type user > /etc/ssh/sshca_user_ca.pub          # for TrustedUserCAKeys
  sshca ca show --type host --known-hosts '*.corp' >> ~/.ssh/known_hosts`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "which CA: user or host")
			fs.StringVar(&knownHosts, "known-hosts", "", "print @cert-authority lines for host `pattern`s (comma-separated)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "user" && caType != "host" {
				return usagef("ca show: --type must be user or host")
			}
			if knownHosts != "" && caType != "host" {
				return usagef("ca show: --known-hosts only applies to --type host")
			}
			if strings.ContainsAny(knownHosts, " \t\n") {
				return usagef("ca show: --known-hosts patterns may not contain spaces; separate them with commas")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if err := autoRetire(e, h); err != nil {
				return err
			}
			keys, err := h.Store.ListCAKeys(e.ctx, caType)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if !published(k) {
					continue
				}
				comment := fmt.Sprintf("sshca-%s-ca-%d", caType, k.Generation)
				if knownHosts != "" {
					fmt.Fprintf(e.stdout, "@cert-authority %s %s %s\n", knownHosts, k.PublicKey, comment)
				} else {
					fmt.Fprintf(e.stdout, "%s %s\n", k.PublicKey, comment)
				}
			}
			return nil
		},
	}
}
