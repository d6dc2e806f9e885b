package cli

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/signer"
)

func newInitCommand() *command {
	var keyType, passFile string
	return &command{
		name:    "init",
		summary: "create a CA home: user and host CA keys, sshca.yaml policy, database",
		usage:   "[--key-type T] [--passphrase-file F]",
		example: `  sshca --home ./ca init
  sshca --home ./ca init --key-type ecdsa-p256 --passphrase-file /root/ca.pass`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyType, "key-type", "ed25519", "CA key `type`: "+strings.Join(signer.KeyTypes(), ", "))
			fs.StringVar(&passFile, "passphrase-file", "", "encrypt the CA keys with the passphrase in this `file` (first line)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if !slices.Contains(signer.KeyTypes(), keyType) {
				return usagef("init: unknown --key-type %q (want one of %s)", keyType, strings.Join(signer.KeyTypes(), ", "))
			}
			var pass []byte
			if passFile != "" {
				var err error
				if pass, err = readNewPassphraseFile(passFile, false); err != nil {
					return err
				}
			}
			err := home.Init(e.ctx, e.home, home.InitOptions{KeyType: keyType, Passphrase: pass, Actor: e.actor(), Database: e.database, Notice: e.notice})
			if errors.Is(err, home.ErrExists) {
				return withHint(err, "sshca never overwrites a CA; choose another --home")
			}
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(e.home)
			fmt.Fprintf(e.stdout, "Created CA home %s (%s keys", abs, keyType)
			if pass != nil {
				fmt.Fprint(e.stdout, ", encrypted")
			}
			fmt.Fprintln(e.stdout, ")")
			fmt.Fprintf(e.stdout, "  policy:  %s (edit the roles)\n", filepath.Join(abs, home.ConfigFile))
			fmt.Fprintf(e.stdout, "  servers: sshca --home %s ca show --type user > /etc/ssh/sshca_user_ca.pub\n", e.home)
			fmt.Fprintf(e.stdout, "  clients: sshca --home %s ca show --type host --known-hosts '*.example.com' >> ~/.ssh/known_hosts\n", e.home)
			if hint := keyTypeHint(keyType); hint != "" {
				fmt.Fprintf(e.stdout, "  note:    %s\n", hint)
			}
			return nil
		},
	}
}

// keyTypeHint warns about client support for a CA key type, from the
// evidence in docs/compatibility.md (go test ./internal/interop -update):
// every client tested accepts user and host certificates from ed25519 and
// ECDSA CAs; Ruby net-ssh 7.0 rejects host certificates from RSA CAs.
func keyTypeHint(keyType string) string {
	switch keyType {
	case "rsa-3072", "rsa-4096":
		return "Ruby net-ssh 7.0 (Capistrano, Debian 12) rejects host certificates signed by an RSA CA (it checks their rsa-sha2-512 signature with SHA-1); ed25519 and ECDSA CAs work with every client tested (see docs/compatibility.md)"
	}
	return ""
}
