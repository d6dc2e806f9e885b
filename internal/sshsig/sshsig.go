// Package sshsig makes and checks detached SSHSIG signatures, the format of
// `ssh-keygen -Y sign` and `ssh-keygen -Y verify` (PROTOCOL.sshsig in
// openssh-portable). sshca uses it to sign KRLs under the namespace
// "sshca-krl" so that servers can tell where a KRL came from.
//
// The package never signs or accepts SHA-1 (the legacy "ssh-rsa" signature
// algorithm), never reads allowed_signers files or any other file (callers
// pass the trusted keys), and never trusts the key embedded in a signature on
// its own: Verify only succeeds for a key the caller listed.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"golang.org/x/crypto/ssh"
)

// Namespace is the namespace sshca signs KRLs under.
const Namespace = "sshca-krl"

// Hash algorithm names of PROTOCOL.sshsig §2.
const (
	HashSHA512 = "sha512"
	HashSHA256 = "sha256"
)

const (
	magic      = "SSHSIG" // MAGIC_PREAMBLE, PROTOCOL.sshsig §2 and §3
	sigVersion = 1        // SIG_VERSION

	armorBegin = "-----BEGIN SSH SIGNATURE-----"
	armorEnd   = "-----END SSH SIGNATURE-----"
	// armorWidth is where ssh-keygen wraps the base64 body (sshsig_armor);
	// the specification only says lines SHOULD be short.
	armorWidth = 70

	// MaxArmoredSize bounds the armored input Parse and Verify accept. The
	// largest signature OpenSSH can make (a 16384-bit RSA key) armors to
	// about 5.6 KiB.
	MaxArmoredSize = 16 << 10
	// maxNamespaceLen bounds the namespace; OpenSSH sets no limit, but a
	// namespace is a short label.
	maxNamespaceLen = 256
)

// Signature is a decoded SSHSIG blob (PROTOCOL.sshsig §2). Parse only returns
// signatures that are well formed; it does not mean the signature is valid.
type Signature struct {
	// PublicKey is the key that claims to have made the signature.
	PublicKey ssh.PublicKey
	// Namespace is the interpretation domain, e.g. "sshca-krl".
	Namespace string
	// HashAlgorithm is how the message was hashed: HashSHA512 or HashSHA256.
	HashAlgorithm string
	// Signature is the SSH signature over the signed data (§3); its Format
	// is the signature algorithm, e.g. "ssh-ed25519" or "rsa-sha2-512".
	Signature *ssh.Signature
}

// Sign returns the armored signature of message by signer under namespace,
// hashing with SHA-512, as `ssh-keygen -Y sign -n namespace` would.
//
// RSA signers must implement ssh.AlgorithmSigner (a MultiAlgorithmSigner must
// allow "rsa-sha2-512"): the signature is always made with rsa-sha2-512, never
// with ssh-rsa (SHA-1). The signature is checked against the signer's public
// key before it is returned, so a faulty signer (agent, token) is caught here.
func Sign(signer ssh.Signer, namespace string, message io.Reader) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("sshsig: nil signer")
	}
	if message == nil {
		return nil, errors.New("sshsig: nil message")
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	formats, err := sigFormats(pub)
	if err != nil {
		return nil, err
	}
	digest, err := hashMessage(HashSHA512, message)
	if err != nil {
		return nil, err
	}
	data := signedData(namespace, HashSHA512, digest)

	var sig *ssh.Signature
	if pub.Type() == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("sshsig: RSA signer cannot choose rsa-sha2-512 (not an ssh.AlgorithmSigner)")
		}
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: sign with %s key %s: %w", pub.Type(), ssh.FingerprintSHA256(pub), err)
	}
	if sig == nil {
		return nil, errors.New("sshsig: signer returned no signature")
	}
	// For RSA only rsa-sha2-512 is acceptable here even though Verify also
	// takes rsa-sha2-256 from other signers.
	if pub.Type() == ssh.KeyAlgoRSA {
		formats = []string{ssh.KeyAlgoRSASHA512}
	}
	if !slices.Contains(formats, sig.Format) {
		return nil, fmt.Errorf("sshsig: signer returned a %q signature for a %s key", sig.Format, pub.Type())
	}
	if len(sig.Rest) != 0 {
		return nil, errors.New("sshsig: signer returned a signature with trailing data")
	}
	if err := pub.Verify(data, sig); err != nil {
		return nil, fmt.Errorf("sshsig: signer produced an invalid signature: %w", err)
	}
	s := &Signature{PublicKey: pub, Namespace: namespace, HashAlgorithm: HashSHA512, Signature: sig}
	return armor(s.marshal()), nil
}

// Verify checks armored, a signature as written by Sign or `ssh-keygen -Y
// sign`, against message and namespace. It returns the signing key, taken
// from trusted, if that key made a valid signature; otherwise it returns an
// error and no key.
//
// Besides a bad signature it rejects: a namespace other than namespace, a key
// not in trusted, ssh-rsa (SHA-1) signatures, hash algorithms other than
// sha512 and sha256, malformed armor or blobs, trailing data, and input over
// MaxArmoredSize. Keys are compared by their wire encoding, so a certificate
// never matches the plain key it certifies.
func Verify(armored []byte, message io.Reader, namespace string, trusted []ssh.PublicKey) (ssh.PublicKey, error) {
	if message == nil {
		return nil, errors.New("sshsig: nil message")
	}
	if err := checkNamespace(namespace); err != nil {
		return nil, err
	}
	sig, err := Parse(armored)
	if err != nil {
		return nil, err
	}
	if sig.Namespace != namespace {
		return nil, fmt.Errorf("sshsig: signature namespace %q, want %q", sig.Namespace, namespace)
	}
	key := findKey(trusted, sig.PublicKey)
	if key == nil {
		return nil, fmt.Errorf("sshsig: signing key %s %s is not trusted", sig.PublicKey.Type(), ssh.FingerprintSHA256(sig.PublicKey))
	}
	digest, err := hashMessage(sig.HashAlgorithm, message)
	if err != nil {
		return nil, err
	}
	if err := key.Verify(signedData(namespace, sig.HashAlgorithm, digest), sig.Signature); err != nil {
		return nil, fmt.Errorf("sshsig: bad signature by %s: %w", ssh.FingerprintSHA256(key), err)
	}
	return key, nil
}

// Parse decodes an armored signature without verifying it, for display. It
// checks everything PROTOCOL.sshsig requires of the blob: magic, version 1,
// a supported plain public key (Ed25519, ECDSA, RSA), a non-empty namespace,
// an empty reserved field, hash algorithm sha512 or sha256, and a signature
// algorithm that fits the key (rsa-sha2-512 or rsa-sha2-256 for RSA, never
// ssh-rsa). Trailing data, in the blob or after the armor, is an error.
//
// OpenSSH ignores a non-empty reserved field; Parse rejects it because no
// signer sets it and its content is not covered by the signature.
func Parse(armored []byte) (*Signature, error) {
	blob, err := dearmor(armored)
	if err != nil {
		return nil, err
	}
	return parseBlob(blob)
}

// parseBlob decodes the blob of PROTOCOL.sshsig §2.
func parseBlob(blob []byte) (*Signature, error) {
	if !bytes.HasPrefix(blob, []byte(magic)) {
		return nil, errors.New("sshsig: missing SSHSIG magic")
	}
	r := reader{buf: blob[len(magic):]}
	version, err := r.uint32("version")
	if err != nil {
		return nil, err
	}
	if version != sigVersion {
		return nil, fmt.Errorf("sshsig: unsupported version %d", version)
	}
	keyBlob, err := r.string("public key")
	if err != nil {
		return nil, err
	}
	namespace, err := r.string("namespace")
	if err != nil {
		return nil, err
	}
	reserved, err := r.string("reserved")
	if err != nil {
		return nil, err
	}
	hashAlg, err := r.string("hash algorithm")
	if err != nil {
		return nil, err
	}
	sigBlob, err := r.string("signature")
	if err != nil {
		return nil, err
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("sshsig: %d bytes of trailing data after signature", len(r.buf))
	}

	pub, err := ssh.ParsePublicKey(keyBlob)
	if err != nil {
		return nil, fmt.Errorf("sshsig: public key: %w", err)
	}
	formats, err := sigFormats(pub)
	if err != nil {
		return nil, err
	}
	if err := checkNamespace(string(namespace)); err != nil {
		return nil, err
	}
	if len(reserved) != 0 {
		return nil, errors.New("sshsig: reserved field not empty")
	}
	if _, err := newHash(string(hashAlg)); err != nil {
		return nil, err
	}

	sr := reader{buf: sigBlob}
	format, err := sr.string("signature algorithm")
	if err != nil {
		return nil, err
	}
	raw, err := sr.string("signature blob")
	if err != nil {
		return nil, err
	}
	if len(sr.buf) != 0 {
		return nil, fmt.Errorf("sshsig: %d bytes of trailing data in signature", len(sr.buf))
	}
	if string(format) == ssh.KeyAlgoRSA {
		return nil, errors.New("sshsig: ssh-rsa (SHA-1) signatures are not accepted")
	}
	if !slices.Contains(formats, string(format)) {
		return nil, fmt.Errorf("sshsig: signature algorithm %q does not fit a %s key", format, pub.Type())
	}
	return &Signature{
		PublicKey:     pub,
		Namespace:     string(namespace),
		HashAlgorithm: string(hashAlg),
		Signature:     &ssh.Signature{Format: string(format), Blob: raw},
	}, nil
}

// marshal encodes s as the blob of PROTOCOL.sshsig §2.
func (s *Signature) marshal() []byte {
	var b []byte
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, sigVersion)
	b = appendString(b, s.PublicKey.Marshal())
	b = appendString(b, []byte(s.Namespace))
	b = appendString(b, nil) // reserved
	b = appendString(b, []byte(s.HashAlgorithm))
	b = appendString(b, ssh.Marshal(s.Signature))
	return b
}

// signedData is the message the SSH signature covers (PROTOCOL.sshsig §3).
func signedData(namespace, hashAlg string, digest []byte) []byte {
	var b []byte
	b = append(b, magic...)
	b = appendString(b, []byte(namespace))
	b = appendString(b, nil) // reserved
	b = appendString(b, []byte(hashAlg))
	b = appendString(b, digest)
	return b
}

// armor wraps blob as ssh-keygen does (sshsig_armor): header, base64 at
// armorWidth columns, footer, final newline.
func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > armorWidth {
		b.WriteString(enc[:armorWidth])
		b.WriteByte('\n')
		enc = enc[armorWidth:]
	}
	b.WriteString(enc)
	b.WriteString("\n" + armorEnd + "\n")
	return b.Bytes()
}

// dearmor undoes armor (PROTOCOL.sshsig §1). The input must start with the
// header; lines may end in "\n" or "\r\n"; only white space may follow the
// footer.
func dearmor(armored []byte) ([]byte, error) {
	if len(armored) > MaxArmoredSize {
		return nil, fmt.Errorf("sshsig: armored signature is %d bytes, limit %d", len(armored), MaxArmoredSize)
	}
	rest, ok := bytes.CutPrefix(armored, []byte(armorBegin))
	if !ok {
		return nil, errors.New("sshsig: missing " + armorBegin + " header")
	}
	rest, ok = cutNewline(rest)
	if !ok {
		return nil, errors.New("sshsig: no newline after header")
	}
	body, after, ok := bytes.Cut(rest, []byte(armorEnd))
	if !ok {
		return nil, errors.New("sshsig: missing " + armorEnd + " footer")
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, errors.New("sshsig: footer does not start a line")
	}
	if len(bytes.TrimSpace(after)) != 0 {
		return nil, errors.New("sshsig: trailing data after footer")
	}
	var b64 []byte
	for line := range bytes.Lines(body) {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		b64 = append(b64, line...)
	}
	blob := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Strict().Decode(blob, b64)
	if err != nil {
		return nil, fmt.Errorf("sshsig: base64: %w", err)
	}
	return blob[:n], nil
}

func cutNewline(b []byte) ([]byte, bool) {
	if rest, ok := bytes.CutPrefix(b, []byte("\r\n")); ok {
		return rest, true
	}
	return bytes.CutPrefix(b, []byte("\n"))
}

// sigFormats returns the signature algorithms PROTOCOL.sshsig allows for
// pub, or an error for key types this package does not handle: DSA (SHA-1
// only), certificates and security-key types.
func sigFormats(pub ssh.PublicKey) ([]string, error) {
	if pub == nil {
		return nil, errors.New("sshsig: nil public key")
	}
	switch t := pub.Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return []string{t}, nil
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}, nil
	default:
		return nil, fmt.Errorf("sshsig: unsupported key type %q", t)
	}
}

func checkNamespace(ns string) error {
	if ns == "" {
		return errors.New("sshsig: empty namespace")
	}
	if len(ns) > maxNamespaceLen {
		return fmt.Errorf("sshsig: namespace is %d bytes, limit %d", len(ns), maxNamespaceLen)
	}
	return nil
}

func newHash(alg string) (hash.Hash, error) {
	switch alg {
	case HashSHA512:
		return sha512.New(), nil
	case HashSHA256:
		return sha256.New(), nil
	default:
		return nil, fmt.Errorf("sshsig: unsupported hash algorithm %q", alg)
	}
}

func hashMessage(alg string, message io.Reader) ([]byte, error) {
	h, err := newHash(alg)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(h, message); err != nil {
		return nil, fmt.Errorf("sshsig: read message: %w", err)
	}
	return h.Sum(nil), nil
}

func findKey(trusted []ssh.PublicKey, pub ssh.PublicKey) ssh.PublicKey {
	want := pub.Marshal()
	for _, k := range trusted {
		if k != nil && bytes.Equal(k.Marshal(), want) {
			return k
		}
	}
	return nil
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// reader reads RFC 4251 §5 values, naming the field in errors.
type reader struct{ buf []byte }

func (r *reader) uint32(field string) (uint32, error) {
	if len(r.buf) < 4 {
		return 0, fmt.Errorf("sshsig: %s truncated", field)
	}
	v := binary.BigEndian.Uint32(r.buf)
	r.buf = r.buf[4:]
	return v, nil
}

func (r *reader) string(field string) ([]byte, error) {
	n, err := r.uint32(field)
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(r.buf)) {
		return nil, fmt.Errorf("sshsig: %s truncated (length %d, %d bytes left)", field, n, len(r.buf))
	}
	s := r.buf[:n]
	r.buf = r.buf[n:]
	return s, nil
}
