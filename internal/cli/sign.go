package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
)

// newSignCommand builds "sign user" or "sign host".
func newSignCommand(kind string) *command {
	var role, keyID, principals, ttl, out, passFile, keysFrom string
	var validFrom, validUntil, validity string
	var asJSON bool
	c := &command{
		name:    "sign " + kind,
		minArgs: 0, maxArgs: -1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "role from sshca.yaml (required)")
			fs.StringVar(&keyID, "id", "", "key ID recorded in the certificate and logged by sshd (required)")
			fs.StringVar(&ttl, "ttl", "", "lifetime from now, e.g. 8h or 7d (default: the role's default_ttl)")
			fs.StringVar(&validFrom, "valid-from", "", "start of the validity `time`: -5m, +1d, 2026-05-01[T09:00[:00]], RFC 3339 or YYYYMMDD[HHMM[SS]] (default: now)")
			fs.StringVar(&validUntil, "valid-until", "", "end of the validity `time`, in the same forms (default: start + --ttl)")
			fs.StringVar(&validity, "validity", "", "validity window as ssh-keygen -V takes it: `FROM:TO` (-5m:+1w) or TO alone (+1w, from now)")
			fs.StringVar(&out, "out", "", "write the certificate to this `file` instead of <key>-cert.pub")
			fs.StringVar(&passFile, "passphrase-file", "", "`file` with the passphrase of an encrypted CA key")
			fs.BoolVar(&asJSON, "json", false, "print one JSON certificate object per certificate signed (docs/json.md)")
			fs.StringVar(&keysFrom, "keys-from", "", "also sign the public key files listed in this `file` (- for stdin): one path per line, # comments")
			if kind == "user" {
				fs.StringVar(&principals, "principals", "", "comma-separated subset of the role's principals (default: all of them)")
			} else {
				fs.StringVar(&principals, "principals", "", "comma-separated host names and IP addresses (required)")
			}
		},
	}
	if kind == "user" {
		c.summary = "sign a user certificate under a role"
		c.usage = "--role R --id KEYID [--principals a,b] [--ttl D | --valid-from T --valid-until T | --validity FROM:TO] [--out F] PUBKEY... (or --keys-from FILE|-)"
		c.example = `  sshca sign user --role deploy --id alice-2026-11-22 --ttl 8h ~/.ssh/id_ed25519.pub
  sshca sign user --role deploy --id ci-42 --principals ci --out /tmp/ci-cert.pub ci.pub
  sshca sign user --role deploy --id alice-week --validity -5m:+1w ~/.ssh/id_ed25519.pub   # like ssh-keygen -V
  sshca sign user --role deploy --id maint --valid-from 2026-05-01T22:00 --valid-until 2026-05-02T02:00 key.pub
  cat key.pub | sshca sign user --role deploy --id bob -          # certificate to stdout
  sshca sign user --role deploy --id ci-pool r1.pub r2.pub r3.pub   # batch: r1-cert.pub, r2-cert.pub, ...
  find runners -name '*.pub' ! -name '*-cert.pub' | sshca sign user --role deploy --id ci-pool --keys-from -

Batch mode (several PUBKEYs, or --keys-from): every key is read and checked
before anything is signed, and one bad key refuses the whole batch. Each
certificate is written beside its key as <key>-cert.pub; stdout has one
"SERIAL CERTFILE" line per certificate, then a summary line. All keys get the
same --id, principals and lifetime, like ssh-keygen -s given several keys.

Validity window: --valid-from/--valid-until (or --validity FROM:TO, as
ssh-keygen -V) take times relative to now (-5m, +1w2d) or absolute
(2026-05-01, 2026-05-01T09:00, RFC 3339, YYYYMMDD[HHMM[SS]]; local time
unless a zone or a trailing Z is given). The window may start up to 24h ago
or 31 days ahead and must end in the future; the part of it from now (or its
start, if later) is bounded by the role's max_ttl; the configured backdate
is subtracted from its start as from every certificate's.`
	} else {
		c.summary = "sign a host certificate under a host role"
		c.usage = "--role R --id KEYID --principals h1,h2 [--ttl D | --valid-from T --valid-until T | --validity FROM:TO] [--out F] PUBKEY... (or --keys-from FILE|-)"
		c.example = `  sshca sign host --role servers --id app-01 --principals app-01.corp,10.0.1.10 /etc/ssh/ssh_host_ed25519_key.pub
  sshca sign host --role servers --id app-01 --principals app-01.corp /etc/ssh/ssh_host_*_key.pub   # batch

Batch mode (several PUBKEYs, or --keys-from FILE|- with one path per line)
checks every key before signing any, writes <key>-cert.pub beside each, and
prints one "SERIAL CERTFILE" line per certificate, then a summary line.`
	}
	c.run = func(e *env, fs *flag.FlagSet, args []string) error {
		if len(args) == 0 && keysFrom == "" {
			return withHint(usagef("%s: wrong number of arguments (usage: sshca %s %s)", c.name, c.name, c.usage), "run `sshca "+c.name+" -h` for usage")
		}
		if role == "" {
			return usagef("sign %s: --role is required", kind)
		}
		if keyID == "" {
			return usagef("sign %s: --id is required", kind)
		}
		var plist []string
		if principals != "" {
			for _, p := range strings.Split(principals, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					return usagef("sign %s: --principals has an empty entry", kind)
				}
				plist = append(plist, p)
			}
		}
		if kind == "host" && len(plist) == 0 {
			return usagef("sign host: --principals is required (the host's names and addresses)")
		}
		var d time.Duration
		if ttl != "" {
			var err error
			if d, err = config.ParseDuration(ttl); err != nil {
				return usagef("sign %s: --ttl: %v", kind, err)
			}
			if d <= 0 {
				return usagef("sign %s: --ttl must be > 0", kind)
			}
		}
		from, until, err := validityFlags("sign "+kind, validFrom, validUntil, validity, ttl != "", time.Now())
		if err != nil {
			return err
		}
		if keysFrom != "" || len(args) > 1 {
			if out != "" {
				return withHint(usagef("sign %s: --out takes one certificate; with several keys each is written beside its key", kind),
					"drop --out, or sign one key at a time")
			}
			if slices.Contains(args, "-") {
				return withHint(usagef("sign %s: - (a key on stdin) works only as the only PUBKEY", kind),
					"to read a list of key files on stdin, use --keys-from -")
			}
			b := batchSign{kind: kind, role: role, keyID: keyID, principals: plist, ttl: d, validFrom: from, validUntil: until, passFile: passFile, asJSON: asJSON}
			return b.run(e, args, keysFrom)
		}
		pubPath := args[0]
		var data []byte
		if pubPath == "-" {
			data, err = io.ReadAll(io.LimitReader(e.stdin, ca.MaxKeyFileLen+1))
		} else {
			data, err = os.ReadFile(pubPath)
		}
		if err != nil {
			return fmt.Errorf("read public key: %w", err)
		}
		dest := out
		if dest == "" && pubPath != "-" {
			dest = certPath(pubPath)
		}
		if dest != "" {
			// Refuse before signing: a certificate that cannot be written
			// would still use up a serial.
			if fi, err := os.Stat(filepath.Dir(dest)); err != nil || !fi.IsDir() {
				return fmt.Errorf("cannot write the certificate to %s: directory %s does not exist", dest, filepath.Dir(dest))
			}
		}
		h, err := e.openHome(passFile)
		if err != nil {
			return err
		}
		defer h.Close()
		pub, perr := ca.ParseSubjectKey(data)
		t := policy.UserCert
		if kind == "host" {
			t = policy.HostCert
		}
		req := ca.Request{Type: t, Role: role, KeyID: keyID, Principals: plist, TTL: d, ValidAfter: from, ValidBefore: until, PublicKey: pub, Caller: e.caller(),
			Details: map[string]string{"source": "cli"}}
		if perr != nil {
			// Record the refusal like any other, then report it.
			return fmt.Errorf("%s: %w", pubPath, h.Authority.Deny(e.ctx, req, "bad-key", perr))
		}
		cert, err := h.Authority.Sign(e.ctx, req)
		if errors.Is(err, signer.ErrWrongPassphrase) || errors.Is(err, errNoPassphrase) {
			// A failed attempt to unlock the CA key is a refusal the
			// audit log must show, like a policy denial.
			err = h.Authority.Deny(e.ctx, req, "ca-key-locked", err)
		}
		if err != nil {
			var de *policy.DenyError
			if errors.As(err, &de) {
				if de.Rule == policy.RuleUnknownRole {
					return withHint(err, rolesHint(h.Config.Roles, t))
				}
				return withHint(err, denyHint(de.Rule, kind))
			}
			if errors.Is(err, signer.ErrWrongPassphrase) {
				return withHint(errors.New("wrong passphrase for the CA key"), "check --passphrase-file")
			}
			return err
		}
		line := ssh.MarshalAuthorizedKey(cert)
		if dest == "" && !asJSON {
			_, err = e.stdout.Write(line)
			return err
		}
		if dest != "" {
			if err := atomicfile.Write(dest, line, 0o644); err != nil {
				return fmt.Errorf("certificate %d was issued but could not be written: %w", cert.Serial, err)
			}
		}
		if asJSON {
			out, err := issuedJSON(e, h, cert, map[uint64]string{cert.Serial: dest})
			if err != nil {
				return err
			}
			return printJSON(e, out...)
		}
		fmt.Fprintf(e.stdout, "Signed %s certificate %s\n", kind, dest)
		fmt.Fprintf(e.stdout, "  serial:     %d\n", cert.Serial)
		fmt.Fprintf(e.stdout, "  key id:     %q\n", cert.KeyId)
		fmt.Fprintf(e.stdout, "  principals: %s\n", strings.Join(cert.ValidPrincipals, ","))
		fmt.Fprintf(e.stdout, "  valid:      %s to %s\n",
			time.Unix(int64(cert.ValidAfter), 0).UTC().Format(time.RFC3339), time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
		return nil
	}
	return c
}

// issuedJSON describes certificates just issued, from the CA's records,
// with the files they were written to (by serial; "" for stdout).
func issuedJSON(e *env, h *home.Home, cert *ssh.Certificate, files map[uint64]string) ([]api.Certificate, error) {
	f := store.CertFilter{Serial: cert.Serial}
	if len(files) > 1 {
		// A batch shares its key ID: one query for all of it.
		f = store.CertFilter{KeyID: cert.KeyId, CAType: api.CertTypeName(cert.CertType)}
	}
	recs, err := h.Store.ListCerts(e.ctx, f)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []api.Certificate
	for _, r := range recs {
		file, ok := files[r.Serial]
		if !ok {
			continue
		}
		c := certOfRecord(r, nil, now)
		c.File = file
		out = append(out, c)
	}
	if len(out) != len(files) {
		return nil, fmt.Errorf("issued %d certificates but found %d in the records", len(files), len(out))
	}
	slices.SortFunc(out, func(a, b api.Certificate) int { return cmp.Compare(a.Serial, b.Serial) })
	return out, nil
}

// certPath is where ssh-keygen -s puts the certificate of key file p.
func certPath(p string) string {
	return strings.TrimSuffix(p, ".pub") + "-cert.pub"
}

// rolesHint names the roles sshca.yaml defines for certificates of type t.
func rolesHint(roles map[string]*policy.Role, t policy.CertType) string {
	var names []string
	for name, r := range roles {
		if r != nil && r.Type == t {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("sshca.yaml defines no %s roles; add one under roles:", t)
	}
	slices.Sort(names)
	return fmt.Sprintf("%s roles in sshca.yaml: %s", t, strings.Join(names, ", "))
}

func denyHint(rule, kind string) string {
	switch rule {
	case "unknown-role":
		return "roles are defined in sshca.yaml under roles:"
	case "principal-not-allowed":
		return "ask only for principals the role lists, or leave --principals out to get all of them"
	case "ttl-exceeds-max":
		return "shorten --ttl or the validity window, or raise the role's max_ttl in sshca.yaml"
	case "bad-validity":
		return "the window must end in the future, start at most 24h ago or 31 days ahead; see `sshca " + "sign " + kind + " -h`"
	case ca.RuleRevokedKey:
		return "`sshca list` shows the revoked certificates; generate a new key pair"
	case ca.RuleRevokedKeyID:
		return "pick another --id; `sshca list --id ID` shows the revoked certificates"
	case "cert-type-mismatch":
		if kind == "user" {
			return "this is a host role; use `sshca sign host`, or pick a user role"
		}
		return "this is a user role; use `sshca sign user`, or pick a host role"
	case "host-principal-no-match":
		return "each host principal must match one of the role's host patterns"
	}
	return ""
}
