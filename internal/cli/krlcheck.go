package cli

import (
	"flag"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/krl"
)

func newKRLCheckCommand() *command {
	var checkKRL, checkType string
	var verbose, asJSON bool
	return &command{
		name:    "krl check",
		summary: "check keys or certificates against a KRL, like ssh-keygen -Q (exit 1 if any is revoked)",
		usage:   "[--krl F | --type user|host] [-v] [--json] KEYFILE...",
		example: `  sshca krl check --krl /etc/ssh/sshca/revoked.krl ~/.ssh/id_ed25519-cert.pub
  sshca krl check ~/.ssh/id_ed25519-cert.pub        # against the KRL built from this CA's store`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&checkKRL, "krl", "", "KRL `file` to check against (default: build from the store)")
			fs.StringVar(&checkType, "type", "user", "with no --krl: which CA's KRL")
			fs.BoolVar(&verbose, "v", false, "say which KRL section revokes each revoked key")
			fs.BoolVar(&asJSON, "json", false, "print one JSON KRL check object per key (docs/json.md)")
		},
		minArgs: 1, maxArgs: -1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			var k *krl.KRL
			if checkKRL != "" {
				data, err := readLimited(checkKRL, maxKRLFile)
				if err != nil {
					return err
				}
				if k, err = krl.Parse(data); err != nil {
					return fmt.Errorf("%s: %w", checkKRL, err)
				}
			} else {
				if err := checkCAType("krl check", checkType); err != nil {
					return err
				}
				h, err := e.openHome("")
				if err != nil {
					return err
				}
				defer h.Close()
				if k, err = ca.BuildKRL(e.ctx, h.Store, checkType, time.Now()); err != nil {
					return err
				}
			}
			// Read every key first: an unreadable key is an error, and nothing is printed.
			keys := make([]ssh.PublicKey, len(args))
			for i, p := range args {
				pub, err := readPublicKeyFile(p)
				if err != nil {
					return err
				}
				keys[i] = pub
			}
			revoked := false
			if asJSON {
				out := make([]api.KRLCheck, len(args))
				for i, p := range args {
					out[i] = krlCheckJSON(p, keys[i], k.Check(keys[i]))
					revoked = revoked || out[i].Revoked
				}
				if err := printJSON(e, out...); err != nil {
					return err
				}
				if revoked {
					return &exitCodeError{code: exitError}
				}
				return nil
			}
			for i, p := range args {
				if m := k.Check(keys[i]); m != nil {
					revoked = true
					fmt.Fprintf(e.stdout, "%s: REVOKED\n", p)
					if verbose {
						fmt.Fprintf(e.stdout, "  by %s\n", m.Detail)
					}
				} else {
					fmt.Fprintf(e.stdout, "%s: ok\n", p)
				}
			}
			if revoked {
				return &exitCodeError{code: exitError}
			}
			return nil
		},
	}
}

// krlCheckJSON is the KRLCheck object of key file p under a KRL's verdict m.
func krlCheckJSON(p string, pub ssh.PublicKey, m *krl.Match) api.KRLCheck {
	out := api.KRLCheck{File: p, KeyFingerprint: ssh.FingerprintSHA256(pub)}
	if c, ok := pub.(*ssh.Certificate); ok {
		out.KeyFingerprint, out.Serial = ssh.FingerprintSHA256(c.Key), c.Serial
	}
	if m != nil {
		out.Revoked, out.Section, out.Detail = true, m.Section, m.Detail
	}
	return out
}
