package explain

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

// checkRevoked is user_key_allowed's start (auth2-pubkey.c):
//
//	if (auth_key_is_revoked(key)) return 0;
//	if (sshkey_is_cert(key) && auth_key_is_revoked(key->cert->signature_key)) return 0;
//
// auth_key_is_revoked (auth.c) counts any error as revoked.
func (r *runner) checkRevoked() *refusal {
	files := r.in.Server.RevokedKeys
	if len(files) == 0 {
		r.pass("revoked-keys", "RevokedKeys none")
		return nil
	}
	for _, isCA := range []bool{false, true} {
		key := ssh.PublicKey(r.cert)
		if isCA {
			key = r.cert.SignatureKey
		}
		for i := range files {
			if ref := r.revokedBy(&files[i], key, isCA); ref != nil {
				return ref
			}
		}
	}
	r.pass("revoked-keys", "neither the key nor its CA is revoked by %s", fileNames(files))
	return nil
}

func fileNames(files []File) string {
	s := ""
	for i, f := range files {
		if i > 0 {
			s += ", "
		}
		s += f.Path
	}
	return s
}

const fixUnreadableKRL = "make RevokedKeys name a readable, valid KRL (sshca krl --out FILE writes one; an empty file revokes nothing), or set RevokedKeys none"

// revokedBy is sshkey_check_revoked (authfile.c) for one file: a KRL
// (krl.c ssh_krl_file_contains_key), or, without the KRL magic, a list of
// keys (sshkey_in_file(key, file, 0, 1)).
func (r *runner) revokedBy(f *File, key ssh.PublicKey, isCA bool) *refusal {
	if f.Err != nil {
		return &refusal{
			check:  CheckRevokedKeysUnreadable,
			reason: fmt.Sprintf("the RevokedKeys file %s cannot be read (%v); sshd then refuses every public key and certificate, whoever signed it", f.Path, f.Err),
			fix:    fixUnreadableKRL,
		}
	}
	// Strict: OpenSSH before 9.4 refuses what newer releases skip.
	k, err := krl.ParseWith(f.Data, krl.Options{Strict: r.version.strictKRL()})
	switch {
	case err == nil:
		m := k.Check(key)
		if m == nil {
			return nil
		}
		return r.krlRefusal(f, isCA, m)
	case errors.Is(err, krl.ErrBadMagic):
		return r.revokedByList(f, key, isCA)
	default:
		return &refusal{
			check:  CheckRevokedKeysUnreadable,
			reason: fmt.Sprintf("the RevokedKeys file %s starts like a KRL but %s cannot load it (%v); sshd then refuses every public key and certificate", f.Path, r.version, err),
			fix:    fixUnreadableKRL,
		}
	}
}

func (r *runner) krlRefusal(f *File, isCA bool, m *krl.Match) *refusal {
	ca := r.cert.SignatureKey
	ref := &refusal{fix: "get a new certificate (sshca login, or sshca sign user); if the revocation was a mistake, remove it and redistribute the KRL"}
	switch {
	case isCA || m.Section == krl.MatchCAKey:
		ref.check = CheckRevokedCA
		ref.reason = fmt.Sprintf("the KRL %s revokes the key of the CA that signed this certificate, %s, so every certificate it signed is refused (%s)", f.Path, fingerprint(ca), m.Detail)
		ref.fix = "get a certificate signed by the CA's current key (sshca ca list shows the generations; after sshca ca revoke-key a fresh key signs)"
	case m.Section == krl.MatchSerial:
		ref.check = CheckRevokedSerial
		ref.reason = fmt.Sprintf("the KRL %s revokes the certificate by serial: %s", f.Path, m.Detail)
	case m.Section == krl.MatchKeyID:
		ref.check = CheckRevokedKeyID
		ref.reason = fmt.Sprintf("the KRL %s revokes the certificate by key ID: %s", f.Path, m.Detail)
	default: // SHA-1, SHA-256 or explicit key: the certified key itself.
		ref.check = CheckRevokedKey
		ref.reason = fmt.Sprintf("the KRL %s revokes the certified key %s itself (%s section: %s), so every certificate for that key is refused", f.Path, fingerprint(r.cert.Key), m.Section, m.Detail)
		ref.fix = "generate a new key pair (ssh-keygen -t ed25519) and get the new public key certified"
	}
	return ref
}

// revokedByList is sshkey_in_file(key, file, strict_type 0, check_ca 1):
// a line revokes the key if it holds the same plain key, or, for a
// certificate, its CA's key; a line that is not a key is an error, which
// counts as revoked.
func (r *runner) revokedByList(f *File, key ssh.PublicKey, isCA bool) *refusal {
	var ref *refusal
	keyLines(f.Data, func(n int, line string) bool {
		pub, err := parseKeyLine(line)
		if err != nil {
			ref = &refusal{
				check:  CheckRevokedKeysUnreadable,
				reason: fmt.Sprintf("the RevokedKeys file %s is not a KRL, so sshd reads it as a list of public keys, and line %d is not one (%v); sshd then refuses every public key and certificate", f.Path, n, err),
				fix:    fixUnreadableKRL,
			}
			return false
		}
		cert, isCert := key.(*ssh.Certificate)
		switch {
		case samePlainKey(key, pub) && isCA:
			ref = &refusal{
				check:  CheckRevokedCA,
				reason: fmt.Sprintf("line %d of the revoked-keys list %s holds the key of the CA that signed this certificate, %s, so every certificate it signed is refused", n, f.Path, fingerprint(pub)),
				fix:    "get a certificate signed by the CA's current key (sshca ca list shows the generations)",
			}
		case samePlainKey(key, pub):
			ref = &refusal{
				check:  CheckRevokedKey,
				reason: fmt.Sprintf("line %d of the revoked-keys list %s holds the certified key %s itself, so every certificate for that key is refused", n, f.Path, fingerprint(pub)),
				fix:    "generate a new key pair (ssh-keygen -t ed25519) and get the new public key certified",
			}
		case isCert && samePlainKey(cert.SignatureKey, pub):
			ref = &refusal{
				check:  CheckRevokedCA,
				reason: fmt.Sprintf("line %d of the revoked-keys list %s holds the key of the CA that signed this certificate, %s, so every certificate it signed is refused", n, f.Path, fingerprint(pub)),
				fix:    "get a certificate signed by the CA's current key (sshca ca list shows the generations)",
			}
		default:
			return true
		}
		return false
	})
	return ref
}
