package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/sshsig"
)

var krlMagic = []byte("SSHKRL\n\x00")

func isKRL(data []byte) bool { return bytes.HasPrefix(data, krlMagic) }

// maxKRLFile bounds the KRL files sshca reads (OpenSSH's own limit is 128 MiB).
const maxKRLFile = 128 << 20

func inspectKRL(e *env, name string, data []byte, asJSON bool) error {
	k, err := krl.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(k.Describe())
	}
	fmt.Fprintf(e.stdout, "%s: OpenSSH KRL, %d bytes\n", name, len(data))
	return k.Dump(e.stdout)
}

func checkCAType(cmd, t string) error {
	if t != "user" && t != "host" {
		return usagef("%s: --type must be user or host", cmd)
	}
	return nil
}

// readPublicKeyFile reads one public key or certificate in authorized_keys format.
func readPublicKeyFile(path string) (ssh.PublicKey, error) {
	data, err := readLimited(path, ca.MaxKeyFileLen)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		return nil, fmt.Errorf("%s is a private key; give the public key (.pub)", path)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an OpenSSH public key or certificate", path)
	}
	return pub, nil
}

// parseFingerprint decodes "SHA256:base64" as ssh-keygen -l prints it.
func parseFingerprint(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return nil, errors.New("fingerprint must start with SHA256: (as ssh-keygen -l prints it)")
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("fingerprint %q is not a SHA256 fingerprint", s)
	}
	return b, nil
}

func parseSerialRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("serial range %q must look like A-B", s)
	}
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("serial range %q must be two decimal numbers A-B", s)
	}
	if lo == 0 || hi < lo {
		return 0, 0, fmt.Errorf("serial range %q is invalid (serials start at 1, A <= B)", s)
	}
	return lo, hi, nil
}

func newRevokeCommand() *command {
	var caType, serial, serialRange, keyID, keyFile, fp, caKeyFile, reason, spec, specCA, identity string
	var force bool
	return &command{
		name:    "revoke",
		summary: "record a revocation (idempotent); `sshca krl` then writes it into the KRL",
		usage:   "(--serial N | --serial-range A-B | --key-id ID | --key PUBFILE | --fingerprint SHA256:... | --ca-key PUBFILE | --identity NAME | --spec FILE) [--type user|host] [--reason TEXT] [--force]",
		example: `  sshca revoke --serial 42 --reason "laptop stolen"
  sshca revoke --key-id alice-2026-11-22
  sshca revoke --key ~/.ssh/id_ed25519.pub          # the key and every certificate over it
  sshca revoke --fingerprint SHA256:S/JAUuf4u2W7qrpBEzzrzGWnYXZYF5oKUO6AiC8fJD4
  sshca revoke --ca-key old_ca.pub                   # everything a CA key signed
  sshca revoke --identity alice --reason "left"      # every valid certificate of a person (or token), renewals included
  sshca revoke --spec revoked.txt --spec-ca old_ca.pub   # import an ssh-keygen -k specification`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "user", "which KRL: user or host")
			fs.StringVar(&serial, "serial", "", "revoke the certificate with this serial")
			fs.StringVar(&serialRange, "serial-range", "", "revoke serials A-B inclusive")
			fs.StringVar(&keyID, "key-id", "", "revoke every certificate with this key ID")
			fs.StringVar(&keyFile, "key", "", "revoke this public key `file` (and every certificate over the key)")
			fs.StringVar(&fp, "fingerprint", "", "revoke the key with this SHA256 `fingerprint`")
			fs.StringVar(&caKeyFile, "ca-key", "", "revoke a whole CA public key `file`: everything it signed")
			fs.StringVar(&identity, "identity", "", "revoke every still-valid certificate issued to this person or token `name` (or oidc:NAME, token:NAME), and their renewals")
			fs.StringVar(&spec, "spec", "", "import an ssh-keygen -k revocation specification `file` (- for stdin)")
			fs.StringVar(&specCA, "spec-ca", "", "CA public key `file` that the spec's serial:/id: lines refer to (default: this CA)")
			fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
			fs.BoolVar(&force, "force", false, "revoke serials or key IDs this CA never issued")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if err := checkCAType("revoke", caType); err != nil {
				return err
			}
			n := 0
			for _, v := range []string{serial, serialRange, keyID, keyFile, fp, caKeyFile, spec, identity} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return usagef("revoke: give exactly one of --serial, --serial-range, --key-id, --key, --fingerprint, --ca-key, --identity, --spec")
			}
			if specCA != "" && spec == "" {
				return usagef("revoke: --spec-ca only applies with --spec")
			}
			if strings.ContainsAny(reason, "\x00\n") {
				return usagef("revoke: --reason must be one line")
			}
			r := ca.Revocation{CAType: caType, Reason: reason, Actor: e.actor(), Force: force}
			var err error
			switch {
			case serial != "":
				v, perr := strconv.ParseUint(serial, 10, 64)
				if perr != nil || v == 0 {
					return usagef("revoke: --serial %q must be a positive decimal number", serial)
				}
				r.Lo, r.Hi = v, v
			case serialRange != "":
				if r.Lo, r.Hi, err = parseSerialRange(serialRange); err != nil {
					return usagef("revoke: --serial-range: %v", err)
				}
			case keyID != "":
				r.KeyID = keyID
			case keyFile != "":
				if r.Key, err = readPublicKeyFile(keyFile); err != nil {
					return err
				}
			case fp != "":
				if r.SHA256, err = parseFingerprint(fp); err != nil {
					return usagef("revoke: --fingerprint: %v", err)
				}
			case caKeyFile != "":
				if r.CAKey, err = readPublicKeyFile(caKeyFile); err != nil {
					return err
				}
				if _, isCert := r.CAKey.(*ssh.Certificate); isCert {
					return fmt.Errorf("%s is a certificate, not a CA key", caKeyFile)
				}
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if spec != "" {
				return importSpec(e, h, caType, spec, specCA, r)
			}
			if identity != "" {
				serials, err := ca.RevokeIdentity(e.ctx, h.Store, identity, reason, e.actor(), time.Now())
				if err != nil {
					return err
				}
				if len(serials) == 0 {
					return withHint(fmt.Errorf("no valid certificate was issued to %q", identity), "`sshca list` shows the certificates and their requesters")
				}
				strs := make([]string, len(serials))
				for i, s := range serials {
					strs[i] = strconv.FormatUint(s, 10)
				}
				fmt.Fprintf(e.stdout, "revoked %d certificate(s) of %s: serials %s (run `sshca krl --out FILE` to publish)\n", len(serials), identity, strings.Join(strs, ","))
				if strings.HasPrefix(identity, "token:") {
					fmt.Fprintf(e.stdout, "the token itself still works: `sshca token revoke` stops it from obtaining new certificates\n")
				}
				return nil
			}
			added, err := ca.Revoke(e.ctx, h.Store, r, time.Now())
			if errors.Is(err, ca.ErrNeverIssued) {
				return withHint(err, "check it with `sshca list`; --force revokes it anyway")
			}
			if err != nil {
				return err
			}
			v, err := h.Store.KRLVersion(e.ctx, caType)
			if err != nil {
				return err
			}
			if added {
				fmt.Fprintf(e.stdout, "revoked; %s KRL version is now %d (run `sshca krl --type %s --out FILE` to publish)\n", caType, v, caType)
			} else {
				fmt.Fprintf(e.stdout, "already revoked; %s KRL version stays %d\n", caType, v)
			}
			return nil
		},
	}
}

func newKRLCommand() *command {
	var krlType, out, passFileKRL string
	var sign, prune bool
	return &command{
		name:    "krl",
		summary: "write the binary OpenSSH KRL of a CA (default: user CA, to stdout)",
		usage:   "[--type user|host] [--out F [--sign]] [--prune-expired]",
		example: `  sshca krl --out /srv/krl/revoked.krl --sign      # also writes revoked.krl.sig (SSHSIG, namespace sshca-krl)
  sshca krl --type host --out revoked_hosts.krl
  sshca krl --prune-expired --out revoked.krl        # drop revocations of long-expired certificates`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&krlType, "type", "user", "which CA: user or host")
			fs.StringVar(&out, "out", "", "write to this `file` atomically instead of stdout")
			fs.BoolVar(&sign, "sign", false, "also write FILE.sig, an SSHSIG signature by the active CA key (needs --out)")
			fs.BoolVar(&prune, "prune-expired", false, "first drop revocations whose certificates expired over an hour ago")
			fs.StringVar(&passFileKRL, "passphrase-file", "", "`file` with the passphrase of an encrypted CA key (for --sign)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if err := checkCAType("krl", krlType); err != nil {
				return err
			}
			if sign && out == "" {
				return usagef("krl: --sign needs --out")
			}
			h, err := e.openHome(passFileKRL)
			if err != nil {
				return err
			}
			defer h.Close()
			if err := autoRetire(e, h); err != nil {
				return err
			}
			now := time.Now()
			if prune {
				n, err := ca.PruneExpired(e.ctx, h.Store, krlType, e.actor(), now)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "pruned %d expired revocations\n", n)
			}
			k, err := ca.BuildKRL(e.ctx, h.Store, krlType, now)
			if err != nil {
				return err
			}
			data, err := ca.MarshalKRL(k)
			if err != nil {
				return err
			}
			if out == "" {
				_, err = e.stdout.Write(data)
				return err
			}
			var sig []byte
			if sign {
				if sig, err = signKRL(e, h, krlType, data); err != nil {
					return err
				}
				// The signature goes in first so a reader never sees a new KRL with an old signature.
				if err := atomicfile.Write(out+".sig", sig, 0o644); err != nil {
					return err
				}
			}
			if err := atomicfile.Write(out, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: %s KRL version %d, %d bytes", out, krlType, k.Version, len(data))
			if sign {
				fmt.Fprintf(e.stdout, ", signature %s.sig", out)
			}
			fmt.Fprintln(e.stdout)
			return nil
		},
	}
}

func newKRLCheckCommand() *command {
	var checkKRL, checkType string
	var verbose bool
	return &command{
		name:    "krl check",
		summary: "check keys or certificates against a KRL, like ssh-keygen -Q (exit 1 if any is revoked)",
		usage:   "[--krl F | --type user|host] [-v] KEYFILE...",
		example: `  sshca krl check --krl /etc/ssh/sshca/revoked.krl ~/.ssh/id_ed25519-cert.pub
  sshca krl check ~/.ssh/id_ed25519-cert.pub        # against the KRL built from this CA's store`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&checkKRL, "krl", "", "KRL `file` to check against (default: build from the store)")
			fs.StringVar(&checkType, "type", "user", "with no --krl: which CA's KRL")
			fs.BoolVar(&verbose, "v", false, "say which KRL section revokes each revoked key")
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

func newKRLVerifyCommand() *command {
	var verifyType string
	return &command{
		name:    "krl verify",
		summary: "check a KRL against its detached signature FILE.sig and this CA's live keys",
		usage:   "[--type user|host] FILE",
		example: `  sshca krl verify revoked.krl`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&verifyType, "type", "user", "which CA signed it: user or host")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if err := checkCAType("krl verify", verifyType); err != nil {
				return err
			}
			data, err := readLimited(args[0], maxKRLFile)
			if err != nil {
				return err
			}
			sig, err := readLimited(args[0]+".sig", sshsig.MaxArmoredSize)
			if err != nil {
				return withHint(err, "sign KRLs with `sshca krl --out FILE --sign`")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			trusted, err := liveKeys(e, h, verifyType)
			if err != nil {
				return err
			}
			signedBy, err := sshsig.Verify(sig, bytes.NewReader(data), sshsig.Namespace, trusted)
			if err != nil {
				return fmt.Errorf("%s: signature does not verify: %w", args[0], err)
			}
			k, err := krl.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: signed but not a valid KRL: %w", args[0], err)
			}
			fmt.Fprintf(e.stdout, "%s: good signature by %s CA key %s; KRL version %d\n", args[0], verifyType, signer.Fingerprint(signedBy), k.Version)
			return nil
		},
	}
}

// liveKeys returns the published keys of a CA (next, active, retiring).
func liveKeys(e *env, h *home.Home, caType string) ([]ssh.PublicKey, error) {
	keys, err := h.Store.ListCAKeys(e.ctx, caType)
	if err != nil {
		return nil, err
	}
	var out []ssh.PublicKey
	for _, k := range keys {
		if !published(k) {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, err
		}
		out = append(out, pub)
	}
	return out, nil
}

// signKRL signs data with the active key of caType.
func signKRL(e *env, h *home.Home, caType string, data []byte) ([]byte, error) {
	k, err := ca.ActiveKey(e.ctx, h.Store, caType)
	if err != nil {
		return nil, err
	}
	s, err := h.Authority.Signer(e.ctx, k)
	if err != nil {
		if errors.Is(err, signer.ErrWrongPassphrase) {
			return nil, withHint(errors.New("wrong passphrase for the CA key"), "check --passphrase-file")
		}
		return nil, err
	}
	return sshsig.Sign(s, sshsig.Namespace, bytes.NewReader(data))
}

// importSpec imports an ssh-keygen -k specification into the store.
func importSpec(e *env, h *home.Home, caType, path, specCA string, base ca.Revocation) error {
	var scope ssh.PublicKey
	if specCA != "" {
		pub, err := readPublicKeyFile(specCA)
		if err != nil {
			return err
		}
		scope = pub
	}
	var data []byte
	var err error
	if path == "-" {
		data, err = readAllLimited(e.stdin, maxKRLFile)
	} else {
		data, err = readLimited(path, maxKRLFile)
	}
	if err != nil {
		return err
	}
	ours, err := liveKeys(e, h, caType)
	if err != nil {
		return err
	}
	// Without --spec-ca, serial:/id: lines refer to this CA; a stand-in key
	// marks them so they are recorded for every live key of the CA.
	ctxKey := scope
	if ctxKey == nil {
		ctxKey = ours[0]
	}
	entries, err := krl.ParseSpec(bytes.NewReader(data), ctxKey, false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ourBlobs := make([][]byte, len(ours))
	for i, o := range ours {
		ourBlobs[i] = o.Marshal()
	}
	isOurs := func(k ssh.PublicKey) bool {
		b := k.Marshal()
		for _, o := range ourBlobs {
			if bytes.Equal(o, b) {
				return true
			}
		}
		return false
	}
	// Validate every entry first, so that a bad line changes nothing.
	revs := make([]ca.Revocation, 0, len(entries))
	for _, en := range entries {
		r := base
		switch en.Kind {
		case krl.SpecSerial, krl.SpecKeyID:
			if en.CA == nil {
				return fmt.Errorf("%s: line %d: the wildcard CA is not supported; give --spec-ca", path, en.Line)
			}
			if !isOurs(en.CA) {
				r.Scope = en.CA
			} else {
				// Historical serials of our own CA: accept them as given.
				r.Force = true
			}
			if en.Kind == krl.SpecSerial {
				r.Lo, r.Hi = en.Lo, en.Hi
			} else {
				r.KeyID = en.KeyID
			}
		case krl.SpecKey:
			r.Key = en.Key
		case krl.SpecSHA1:
			r.SHA1 = en.SHA1[:]
		case krl.SpecSHA256:
			r.SHA256 = en.SHA256[:]
		default:
			return fmt.Errorf("%s: line %d: unsupported entry %q", path, en.Line, en.Kind)
		}
		revs = append(revs, r)
	}
	added, err := ca.RevokeAll(e.ctx, h.Store, revs, time.Now())
	if err != nil {
		return err
	}
	v, err := h.Store.KRLVersion(e.ctx, caType)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "imported %s: %d entries, %d new; %s KRL version is now %d\n", path, len(revs), added, caType, v)
	return nil
}

func readAllLimited(r interface{ Read([]byte) (int, error) }, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(&limitedReader{r: r, n: limit + 1})
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("input is larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
}

type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, os.ErrClosed
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
