package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/sshsig"
)

func newKRLVerifyCommand() *command {
	var verifyType string
	var asJSON bool
	return &command{
		name:    "krl verify",
		summary: "check a KRL against its detached signature FILE.sig and this CA's live keys",
		usage:   "[--type user|host] [--json] FILE",
		example: `  sshca krl verify revoked.krl
  sshca krl verify --json revoked.krl | jq .krl_version`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&verifyType, "type", "user", "which CA signed it: user or host")
			fs.BoolVar(&asJSON, "json", false, "print the JSON KRL result of the verified file (docs/json.md)")
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
			if asJSON {
				sum := sha256.Sum256(data)
				return printJSON(e, api.KRLResult{CAType: verifyType, File: args[0], KRLVersion: k.Version, SizeBytes: len(data),
					SHA256: hex.EncodeToString(sum[:]), SignatureFile: args[0] + ".sig", SigningCAFingerprint: signer.Fingerprint(signedBy)})
			}
			fmt.Fprintf(e.stdout, "%s: good signature by %s CA key %s; KRL version %d\n", args[0], verifyType, signer.Fingerprint(signedBy), k.Version)
			return nil
		},
	}
}
