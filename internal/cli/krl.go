package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/sshsig"
)

var krlMagic = []byte("SSHKRL\n\x00")

func isKRL(data []byte) bool { return bytes.HasPrefix(data, krlMagic) }

// maxKRLFile bounds the KRL files sshca reads (OpenSSH's own limit is 128 MiB).
const maxKRLFile = 128 << 20

func newKRLCommand() *command {
	var krlType, out, passFileKRL string
	var sign, prune, asJSON bool
	return &command{
		name:    "krl",
		summary: "write the binary OpenSSH KRL of a CA (default: user CA, to stdout)",
		usage:   "[--type user|host] [--out F [--sign] [--json]] [--prune-expired]",
		example: `  sshca krl --out /srv/krl/revoked.krl --sign      # also writes revoked.krl.sig (SSHSIG, namespace sshca-krl)
  sshca krl --type host --out revoked_hosts.krl
  sshca krl --prune-expired --out revoked.krl        # drop revocations of long-expired certificates
  sshca krl --out revoked.krl --json | jq .krl_version`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&krlType, "type", "user", "which CA: user or host")
			fs.StringVar(&out, "out", "", "write to this `file` atomically instead of stdout")
			fs.BoolVar(&sign, "sign", false, "also write FILE.sig, an SSHSIG signature by the active CA key (needs --out)")
			fs.BoolVar(&prune, "prune-expired", false, "first drop revocations whose certificates expired over an hour ago")
			fs.BoolVar(&asJSON, "json", false, "print the JSON KRL result (docs/json.md; needs --out)")
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
			if asJSON && out == "" {
				return withHint(usagef("krl: --json needs --out"), "without --out the KRL itself goes to stdout")
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
			var pruned *int
			if prune {
				n, err := ca.PruneExpired(e.ctx, h.Store, krlType, e.actor(), now)
				if err != nil {
					return err
				}
				pruned = &n
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
			var signedBy string
			if sign {
				if sig, signedBy, err = signKRL(e, h, krlType, data); err != nil {
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
			if asJSON {
				sum := sha256.Sum256(data)
				res := api.KRLResult{CAType: krlType, File: out, KRLVersion: k.Version, SizeBytes: len(data), SHA256: hex.EncodeToString(sum[:]),
					SigningCAFingerprint: signedBy, Pruned: pruned}
				if sign {
					res.SignatureFile = out + ".sig"
				}
				return printJSON(e, res)
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

// signKRL signs data with the active key of caType, and returns the
// signature and that key's fingerprint.
func signKRL(e *env, h *home.Home, caType string, data []byte) ([]byte, string, error) {
	k, err := ca.ActiveKey(e.ctx, h.Store, caType)
	if err != nil {
		return nil, "", err
	}
	s, err := h.Authority.Signer(e.ctx, k)
	if err != nil {
		if errors.Is(err, signer.ErrWrongPassphrase) {
			return nil, "", withHint(errors.New("wrong passphrase for the CA key"), "check --passphrase-file")
		}
		return nil, "", err
	}
	sig, err := sshsig.Sign(s, sshsig.Namespace, bytes.NewReader(data))
	return sig, k.Fingerprint, err
}
