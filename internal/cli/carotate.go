package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
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

func caTypes(t string) ([]string, error) {
	switch t {
	case "":
		return []string{"user", "host"}, nil
	case "user", "host":
		return []string{t}, nil
	}
	return nil, usagef("--type must be user or host")
}

func newCAListCommand() *command {
	var caType string
	var asJSON bool
	return &command{
		name:    "ca list",
		summary: "list CA key generations with their state, fingerprint and last certificate expiry",
		usage:   "[--type user|host] [--json]",
		example: `  sshca ca list
  sshca ca list --type user --json`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "only the user or host CA")
			fs.BoolVar(&asJSON, "json", false, "print one JSON CA key object per line (docs/json.md)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			types, err := caTypes(caType)
			if err != nil {
				return err
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if err := autoRetire(e, h); err != nil {
				return err
			}
			if asJSON {
				var out []api.CAKey
				for _, t := range types {
					gens, err := ca.Generations(e.ctx, h.Store, t)
					if err != nil {
						return err
					}
					for _, g := range gens {
						out = append(out, caKeyJSON(g))
					}
				}
				return printJSON(e, out...)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CA\tGEN\tSTATE\tTYPE\tSIGNER\tFINGERPRINT\tCREATED\tCERTS\tLAST CERT EXPIRES")
			for _, t := range types {
				gens, err := ca.Generations(e.ctx, h.Store, t)
				if err != nil {
					return err
				}
				for _, g := range gens {
					last := "-"
					if !g.LastExpiry.IsZero() {
						last = g.LastExpiry.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t, g.Generation, g.State, g.KeyType, g.Signer, g.Fingerprint,
						g.CreatedAt.UTC().Format(time.RFC3339), g.Issued, last)
				}
			}
			return tw.Flush()
		},
	}
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

func newCARetireCommand() *command {
	var caType string
	var force bool
	return &command{
		name:    "ca retire",
		summary: "stop publishing a retiring CA key (refused while certificates it signed are valid, unless --force)",
		usage:   "--type user|host [--force] GEN",
		example: `  sshca ca retire --type user 1`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "which CA: user or host")
			fs.BoolVar(&force, "force", false, "retire even though certificates it signed are still valid (they stop working)")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "user" && caType != "host" {
				return usagef("ca retire: --type must be user or host")
			}
			gen, err := strconv.Atoi(args[0])
			if err != nil || gen <= 0 {
				return usagef("ca retire: generation %q is not a positive number", args[0])
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			err = ca.Retire(e.ctx, h.Store, caType, gen, force, h.Config.RetireGraceOrDefault(), e.actor(), time.Now())
			if errors.Is(err, ca.ErrUnexpired) {
				return withHint(err, "wait, or --force (logins with those certificates then fail)")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "retired %s CA generation %d; it is no longer published\n", caType, gen)
			return nil
		},
	}
}

func newCARevokeKeyCommand() *command {
	var caType, reason, keyType, passFile string
	return &command{
		name:    "ca revoke-key",
		summary: "emergency: put a CA key into the KRL (everything it signed is refused) and promote a fresh key",
		usage:   "--type user|host [--reason TEXT] [--key-type T] GEN",
		example: `  sshca ca revoke-key --type user --reason "CA host compromised" 1
  sshca krl --out /srv/krl/revoked.krl --sign && sshca fleet wait --krl-version latest`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "which CA: user or host")
			fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
			fs.StringVar(&keyType, "key-type", "", "key type of the fresh key (default: the revoked key's type)")
			fs.StringVar(&passFile, "passphrase-file", "", "`file` with the passphrase of the home's encrypted CA keys")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "user" && caType != "host" {
				return usagef("ca revoke-key: --type must be user or host")
			}
			gen, err := strconv.Atoi(args[0])
			if err != nil || gen <= 0 {
				return usagef("ca revoke-key: generation %q is not a positive number", args[0])
			}
			h, err := e.openHome(passFile)
			if err != nil {
				return err
			}
			defer h.Close()
			keys, err := h.Store.ListCAKeys(e.ctx, caType)
			if err != nil {
				return err
			}
			var victim *store.CAKey
			for i := range keys {
				if keys[i].Generation == gen {
					victim = &keys[i]
				}
			}
			if victim == nil {
				return fmt.Errorf("the %s CA has no generation %d", caType, gen)
			}
			newGen := 0
			if victim.State == store.StateActive {
				for _, k := range keys {
					if k.State == store.StateNext {
						newGen = k.Generation
					}
				}
				if newGen == 0 {
					if keyType == "" {
						keyType = victim.KeyType
					}
					newGen = ca.NextGeneration(keys)
					nk, err := e.newCAKeyFile(h, keys, caType, newGen, keyType, passFile)
					if err != nil {
						return err
					}
					if err := ca.AddNext(e.ctx, h.Store, nk, e.actor(), time.Now()); err != nil {
						return err
					}
				}
			}
			pub, err := ca.PublicKeyOf(*victim)
			if err != nil {
				return err
			}
			if _, err := ca.Revoke(e.ctx, h.Store, ca.Revocation{CAType: caType, CAKey: pub, Reason: reason, Actor: e.actor()}, time.Now()); err != nil {
				return err
			}
			keys, _ = h.Store.ListCAKeys(e.ctx, caType)
			states, err := ca.RevokeKeyStates(keys, gen, newGen)
			if err != nil {
				return err
			}
			ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionCARevoke, Outcome: "ok", Reason: reason,
				Details: map[string]string{"ca": caType, "generation": strconv.Itoa(gen), "fingerprint": victim.Fingerprint, "new_active": strconv.Itoa(newGen)}}
			if err := h.Store.SetCAKeyStates(e.ctx, caType, states, ev); err != nil {
				return err
			}
			v, _ := h.Store.KRLVersion(e.ctx, caType)
			fmt.Fprintf(e.stdout, "revoked %s CA generation %d (%s); KRL version %d\n", caType, gen, victim.Fingerprint, v)
			if newGen != 0 {
				fmt.Fprintf(e.stdout, "generation %d is now active\n", newGen)
			}
			fmt.Fprintf(e.stdout, "publish now: sshca krl --type %s --out FILE --sign (servers running sshca sync pick it up)\n", caType)
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
