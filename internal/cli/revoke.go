package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
)

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
	var force, asJSON bool
	return &command{
		name:    "revoke",
		summary: "record a revocation (idempotent); `sshca krl` then writes it into the KRL",
		usage:   "(--serial N | --serial-range A-B | --key-id ID | --key PUBFILE | --fingerprint SHA256:... | --ca-key PUBFILE | --identity NAME | --spec FILE) [--type user|host] [--reason TEXT] [--force] [--json]",
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
			fs.BoolVar(&asJSON, "json", false, "print the JSON revocation result (docs/json.md)")
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
				return importSpec(e, h, caType, spec, specCA, r, asJSON)
			}
			if identity != "" {
				serials, err := ca.RevokeIdentity(e.ctx, h.Store, identity, reason, e.actor(), time.Now())
				if err != nil {
					return err
				}
				if len(serials) == 0 {
					return withHint(fmt.Errorf("no valid certificate was issued to %q", identity), "`sshca list` shows the certificates and their requesters")
				}
				if asJSON {
					v, err := h.Store.KRLVersion(e.ctx, caType)
					if err != nil {
						return err
					}
					return printJSON(e, api.RevocationResponse{Added: true, CAType: caType, KRLVersion: v, RevokedSerials: serials})
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
			if asJSON {
				return printJSON(e, api.RevocationResponse{Added: added, CAType: caType, KRLVersion: v})
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

// importSpec imports an ssh-keygen -k specification into the store.
func importSpec(e *env, h *home.Home, caType, path, specCA string, base ca.Revocation, asJSON bool) error {
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
	if asJSON {
		return printJSON(e, api.RevocationResponse{Added: added > 0, CAType: caType, KRLVersion: v, Entries: len(revs), NewEntries: added})
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
