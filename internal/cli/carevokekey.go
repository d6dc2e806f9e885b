package cli

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/store"
)

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
