package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
)

// autoRetire retires keys whose certificates have all expired (plus grace).
func autoRetire(e *env, h *home.Home) error {
	for _, t := range []string{"user", "host"} {
		done, err := ca.AutoRetire(e.ctx, h.Store, t, h.Config.RetireGraceOrDefault(), time.Now())
		if err != nil {
			return err
		}
		for _, g := range done {
			fmt.Fprintf(e.stderr, "retired %s CA generation %d: every certificate it signed has expired\n", t, g)
		}
	}
	return nil
}

func newCARotateCommand() *command {
	var caType, keyType, agentPub, passFile string
	var promote bool
	return &command{
		name:    "ca rotate",
		summary: "add a next CA key (published, not signing); --promote makes it active and the old one retiring",
		usage:   "--type user|host [--key-type T | --ca-agent PUBFILE] | --type user|host --promote",
		example: `  sshca ca rotate --type user                 # 1. publish the next key; let every server pick it up (sshca sync)
  sshca ca rotate --type user --promote       # 2. sign with it; the old key stays trusted until its certificates expire
  sshca ca rotate --type user --ca-agent token-ca.pub   # the next key lives in ssh-agent (e.g. a PKCS#11 token)`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "which CA: user or host")
			fs.StringVar(&keyType, "key-type", "", "key type of the new key (default: the active key's type)")
			fs.StringVar(&agentPub, "ca-agent", "", "public key `file` of a key held by ssh-agent ($SSH_AUTH_SOCK) to use as the new CA key")
			fs.BoolVar(&promote, "promote", false, "make the next key active and the active one retiring")
			fs.StringVar(&passFile, "passphrase-file", "", "`file` with the passphrase of the home's encrypted CA keys (the new key gets it too)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "user" && caType != "host" {
				return usagef("ca rotate: --type must be user or host")
			}
			if promote && (keyType != "" || agentPub != "") {
				return usagef("ca rotate: --promote takes no --key-type or --ca-agent")
			}
			if keyType != "" && agentPub != "" {
				return usagef("ca rotate: --key-type and --ca-agent exclude each other")
			}
			if keyType != "" && !slices.Contains(signer.KeyTypes(), keyType) {
				return usagef("ca rotate: unknown --key-type %q (want one of %s)", keyType, strings.Join(signer.KeyTypes(), ", "))
			}
			h, err := e.openHome(passFile)
			if err != nil {
				return err
			}
			defer h.Close()
			now := time.Now()
			if promote {
				keys, err := h.Store.ListCAKeys(e.ctx, caType)
				if err != nil {
					return err
				}
				// The new key must open before it becomes the only one that signs.
				for _, k := range keys {
					if k.State == store.StateNext {
						if _, err := h.Authority.Signer(e.ctx, k); err != nil {
							return fmt.Errorf("cannot open the next key, not promoting: %w", err)
						}
					}
				}
				gen, err := ca.Promote(e.ctx, h.Store, caType, e.actor(), now)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s CA generation %d is now active; the previous key is retiring and stays published until its certificates expire\n", caType, gen)
				return nil
			}
			keys, err := h.Store.ListCAKeys(e.ctx, caType)
			if err != nil {
				return err
			}
			gen := ca.NextGeneration(keys)
			var k store.CAKey
			if agentPub != "" {
				pub, err := readPublicKeyFile(agentPub)
				if err != nil {
					return err
				}
				//lint:ignore SA1019 DSA is named only to refuse it
				if _, isCert := pub.(*ssh.Certificate); isCert || pub.Type() == ssh.KeyAlgoDSA {
					return fmt.Errorf("%s cannot be a CA key", agentPub)
				}
				k = store.CAKey{CAType: caType, Generation: gen, KeyType: signer.KeyTypeOf(pub), Fingerprint: signer.Fingerprint(pub),
					PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), Signer: "agent"}
				// Prove the agent holds it before anyone is told to trust it.
				if _, err := h.Authority.Signer(e.ctx, k); err != nil {
					return err
				}
			} else {
				if keyType == "" {
					active, err := ca.ActiveKey(e.ctx, h.Store, caType)
					if err != nil {
						return err
					}
					keyType = active.KeyType
				}
				if k, err = e.newCAKeyFile(h, keys, caType, gen, keyType, passFile); err != nil {
					return err
				}
			}
			if err := ca.AddNext(e.ctx, h.Store, k, e.actor(), now); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added %s CA generation %d (%s, %s) as the next key; it is published but does not sign yet\n", caType, gen, k.KeyType, k.Fingerprint)
			fmt.Fprintf(e.stdout, "once every server trusts it (sshca fleet status), run: sshca ca rotate --type %s --promote\n", caType)
			return nil
		},
	}
}

// newCAKeyFile creates the key file of a new generation. A key type sshca
// cannot create (an agent key's, say) falls back to ed25519; when the
// home's keys are encrypted, the new one is encrypted with the same
// passphrase.
func (e *env) newCAKeyFile(h *home.Home, keys []store.CAKey, caType string, gen int, keyType, passFile string) (store.CAKey, error) {
	if !slices.Contains(signer.KeyTypes(), keyType) {
		keyType = "ed25519"
	}
	var pass []byte
	if home.KeysEncrypted(h.Dir, keys) {
		pf := firstNonEmpty(passFile, e.getenv("SSHCA_PASSPHRASE_FILE"))
		if pf == "" {
			return store.CAKey{}, withHint(errors.New("the home's CA keys are encrypted; the new key must be too"), "give --passphrase-file")
		}
		var err error
		if pass, err = readNewPassphraseFile(pf, true); err != nil {
			return store.CAKey{}, err
		}
	}
	return home.NewKeyFile(h.Dir, caType, gen, keyType, pass, nil)
}
