package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/store"
)

// Local users are people without an identity provider: the admin registers
// their SSH keys and groups, and they get certificates at the SSH front
// door (service.ssh_listen; docs/frontdoor.md). Roles name them in
// allow.local_users and allow.local_groups.

// validLocalName checks a local user or group name: letters, digits, '.',
// '_', '-' and '@', at most 64 bytes, not starting with '-' or '.'.
func validLocalName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '@':
		default:
			return false
		}
	}
	return true
}

func checkLocalName(cmd, name string) error {
	if !validLocalName(name) {
		return usagef("%s: %q is not a usable local user name (letters, digits, '.', '_', '-', '@'; at most 64; not starting with '-' or '.')", cmd, name)
	}
	return nil
}

// userKey reads a public key file for a local user: a plain key that sshca
// would certify (no certificate, no private key, no weak key).
func userKey(path string) (store.LocalUserKey, ssh.PublicKey, error) {
	data, err := readLimited(path, ca.MaxKeyFileLen+1)
	if err != nil {
		return store.LocalUserKey{}, nil, err
	}
	pub, err := ca.ParseSubjectKey(data)
	if err != nil {
		return store.LocalUserKey{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	return store.LocalUserKey{Fingerprint: ssh.FingerprintSHA256(pub), PublicKey: line, AddedAt: time.Now().UTC()}, pub, nil
}

func newUserAddCommand() *command {
	var keys stringList
	var groups string
	return &command{
		name:    "user add",
		summary: "register a local user (a person without an identity provider) with SSH keys and groups",
		usage:   "--key FILE [--key FILE ...] [--groups a,b] NAME",
		example: `  sshca user add alice --key alice.pub --groups ops,deployers
  sshca user add bob --key bob_sk.pub            # a FIDO key (sk-ssh-ed25519@openssh.com)

Roles name local users in allow.local_users and their groups in
allow.local_groups. The user gets certificates at the SSH front door
(service.ssh_listen): ssh -p 2222 ca.example.com cert`,
		flags: func(fs *flag.FlagSet) {
			fs.Var(&keys, "key", "public key `file` of the user (repeatable)")
			fs.StringVar(&groups, "groups", "", "comma-separated groups")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			name := args[0]
			if err := checkLocalName("user add", name); err != nil {
				return err
			}
			if len(keys) == 0 {
				return usagef("user add: give at least one --key FILE")
			}
			var gs []string
			if groups != "" {
				for _, g := range strings.Split(groups, ",") {
					if !validLocalName(g) {
						return usagef("user add: %q is not a usable group name", g)
					}
					gs = append(gs, g)
				}
			}
			u := store.LocalUser{Name: name, Groups: gs, CreatedBy: e.actor(), CreatedAt: time.Now().UTC()}
			var fps []string
			for _, path := range keys {
				k, _, err := userKey(path)
				if err != nil {
					return err
				}
				u.Keys = append(u.Keys, k)
				fps = append(fps, k.Fingerprint)
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user added",
				Details: map[string]string{"user": name, "groups": strings.Join(gs, ","), "keys": strings.Join(fps, ",")}}
			if err := h.Store.AddLocalUser(e.ctx, u, ev); err != nil {
				if errors.Is(err, store.ErrExists) {
					return withHint(fmt.Errorf("local user %s or one of the keys is already registered", name), "sshca user list shows who has which key")
				}
				return err
			}
			fmt.Fprintf(e.stdout, "added local user %s (%d key(s): %s)\n", name, len(fps), strings.Join(fps, ", "))
			return nil
		},
	}
}

func newUserListCommand() *command {
	return &command{
		name:    "user list",
		summary: "list the local users, their groups, TOTP enrollment and key fingerprints",
		usage:   "",
		example: `  sshca user list`,
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			us, err := h.Store.ListLocalUsers(e.ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tGROUPS\tTOTP\tKEYS\tCREATED")
			for _, u := range us {
				totp := "no"
				switch _, _, err := h.Store.GetTOTP(e.ctx, "local:"+u.Name); {
				case err == nil:
					totp = "yes"
				case !errors.Is(err, store.ErrNotFound):
					totp = "unreadable"
				}
				var ks []string
				for _, k := range u.Keys {
					ks = append(ks, strings.Fields(k.PublicKey)[0]+" "+k.Fingerprint)
				}
				if len(ks) == 0 {
					ks = []string{"(none)"}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Groups, ","), totp, strings.Join(ks, "; "), u.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

func newUserRemoveCommand() *command {
	var reason string
	return &command{
		name:    "user remove",
		summary: "remove a local user with their keys and TOTP enrollment",
		usage:   "[--reason TEXT] NAME",
		example: `  sshca user remove --reason "left the team" alice

Certificates already issued stay valid until they expire; revoke them with
sshca revoke --key-id if they must stop now.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			name := args[0]
			if err := checkLocalName("user remove", name); err != nil {
				return err
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user removed",
				Details: map[string]string{"user": name, "why": reason}}
			if err := h.Store.RemoveLocalUser(e.ctx, name, ev); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no local user %s", name)
				}
				return err
			}
			fmt.Fprintf(e.stdout, "removed local user %s, their keys and TOTP enrollment\n", name)
			return nil
		},
	}
}

func newUserKeyCommand() *command {
	return &command{
		name:    "user key",
		summary: "add or remove an SSH key of a local user (user key add|remove)",
		usage:   "add NAME FILE | remove NAME FILE|SHA256:...",
		example: `  sshca user key add alice alice-laptop.pub
  sshca user key remove alice SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s
  sshca user key remove alice old-laptop.pub`,
		minArgs: 3, maxArgs: 3,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			switch args[0] {
			case "add":
				return userKeyAdd(e, args[1:])
			case "remove":
				return userKeyRemove(e, args[1:])
			}
			return usagef("user key: %q: use user key add NAME FILE or user key remove NAME FILE|SHA256:...", args[0])
		},
	}
}

// userKeyAdd registers one more key of a local user: NAME FILE.
func userKeyAdd(e *env, args []string) error {
	name := args[0]
	if err := checkLocalName("user key add", name); err != nil {
		return err
	}
	k, _, err := userKey(args[1])
	if err != nil {
		return err
	}
	h, err := e.openHome("")
	if err != nil {
		return err
	}
	defer h.Close()
	ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user key added",
		Details: map[string]string{"user": name, "key": k.Fingerprint}}
	switch err := h.Store.AddLocalUserKey(e.ctx, name, k, ev); {
	case errors.Is(err, store.ErrNotFound):
		return withHint(fmt.Errorf("no local user %s", name), "sshca user add "+name+" --key "+args[1])
	case errors.Is(err, store.ErrExists):
		return withHint(fmt.Errorf("key %s is already registered", k.Fingerprint), "sshca user list shows who has it")
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "added key %s to local user %s\n", k.Fingerprint, name)
	return nil
}

// userKeyRemove removes a key of a local user: NAME FILE|SHA256:....
func userKeyRemove(e *env, args []string) error {
	name := args[0]
	if err := checkLocalName("user key remove", name); err != nil {
		return err
	}
	fp := args[1]
	if !strings.HasPrefix(fp, "SHA256:") {
		pub, err := readPublicKeyFile(fp)
		if err != nil {
			return err
		}
		fp = ssh.FingerprintSHA256(pub)
	}
	h, err := e.openHome("")
	if err != nil {
		return err
	}
	defer h.Close()
	ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user key removed",
		Details: map[string]string{"user": name, "key": fp}}
	if err := h.Store.RemoveLocalUserKey(e.ctx, name, fp, ev); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("local user %s has no key %s", name, fp)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "removed key %s of local user %s\n", fp, name)
	return nil
}
