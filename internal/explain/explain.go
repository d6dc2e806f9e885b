package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// The checks a Verdict can name, in the order sshd runs them.
const (
	// CheckPubkeyDisabled: PubkeyAuthentication is no.
	CheckPubkeyDisabled = "pubkey-disabled"
	// CheckMalformed: sshd cannot parse the certificate: the CA's
	// signature over it does not verify, its type is neither user nor
	// host, it has more than 256 principals, or its CA is a certificate.
	CheckMalformed = "malformed-cert"
	// CheckSigAlg: the CA signed with an algorithm that
	// CASignatureAlgorithms does not allow (typically ssh-rsa, SHA-1).
	CheckSigAlg = "sigalg-not-allowed"
	// CheckRSASize: the certified RSA key is shorter than RequiredRSASize.
	CheckRSASize = "rsa-key-too-small"
	// CheckRevokedKeysUnreadable: a RevokedKeys file is missing, unreadable
	// or malformed, which makes sshd refuse every public key.
	CheckRevokedKeysUnreadable = "revoked-keys-unreadable"
	// CheckRevokedSerial: a KRL revokes the certificate's serial (alone or
	// in a range) under its CA.
	CheckRevokedSerial = "revoked-serial"
	// CheckRevokedKeyID: a KRL revokes the certificate's key ID.
	CheckRevokedKeyID = "revoked-key-id"
	// CheckRevokedKey: the certified key itself is revoked (KRL explicit
	// key or fingerprint, or a line of a plain key list).
	CheckRevokedKey = "revoked-key"
	// CheckRevokedCA: the key of the CA that signed the certificate is
	// revoked.
	CheckRevokedCA = "revoked-ca"
	// CheckCANotTrusted: the CA is not listed in TrustedUserCAKeys.
	CheckCANotTrusted = "ca-not-trusted"
	// CheckEmptyPrincipals: the certificate lists no principals.
	CheckEmptyPrincipals = "empty-principals"
	// CheckNoPrincipal: no principal of the certificate is allowed for the
	// account (by the AuthorizedPrincipalsFile, or, without one, the login
	// name is not among the certificate's principals).
	CheckNoPrincipal = "no-principal"
	// CheckWrongCertType: a host certificate offered for a user login.
	CheckWrongCertType = "wrong-cert-type"
	// CheckNotYetValid: the time is before the certificate's valid-after.
	CheckNotYetValid = "not-yet-valid"
	// CheckExpired: the time is at or after the certificate's valid-before.
	CheckExpired = "expired"
	// CheckInvalidOptions: sshd cannot accept the certificate's critical
	// options or extensions (unknown critical option, malformed value).
	CheckInvalidOptions = "invalid-cert-options"
	// CheckSourceAddress: the client address is outside the certificate's
	// source-address list.
	CheckSourceAddress = "source-address"
	// CheckPrincipalsOptions: the options on the matching line of the
	// principals file (from=, expiry-time=, ...) refuse the login.
	CheckPrincipalsOptions = "principals-options"
	// CheckForceCommand: the certificate's force-command and the command=
	// of the matching principals line differ.
	CheckForceCommand = "force-command-conflict"
)

// Checks returns every check name in the order sshd runs the checks.
func Checks() []string {
	return []string{
		CheckPubkeyDisabled, CheckMalformed, CheckSigAlg, CheckRSASize,
		CheckRevokedKeysUnreadable, CheckRevokedKey, CheckRevokedKeyID, CheckRevokedSerial, CheckRevokedCA,
		CheckCANotTrusted, CheckEmptyPrincipals, CheckNoPrincipal,
		CheckWrongCertType, CheckNotYetValid, CheckExpired,
		CheckInvalidOptions, CheckSourceAddress, CheckPrincipalsOptions, CheckForceCommand,
	}
}

// File is one file sshd reads, as the caller found it.
type File struct {
	// Path names the file in messages.
	Path string
	// Data is the content; ignored when Err is set.
	Data []byte
	// Err, when set, says why the file could not be read (it is missing,
	// not readable, not a regular file). sshd treats each file's absence
	// in its own way; see Server.
	Err error
}

// Server is the part of an sshd's configuration and files that decides
// about a certificate login. Build it by hand, or with ParseSSHDConfig and
// SSHDConfig.Server.
type Server struct {
	// PubkeyAuthenticationDisabled is set for "PubkeyAuthentication no".
	PubkeyAuthenticationDisabled bool

	// TrustedUserCAKeys is the TrustedUserCAKeys file; nil means "none",
	// which trusts no CA. An unreadable file trusts no CA either.
	TrustedUserCAKeys *File

	// AuthorizedPrincipals is the AuthorizedPrincipalsFile of the account,
	// its tokens already expanded; nil means "none", in which case the
	// login name itself must be one of the certificate's principals. A
	// missing file allows no principal at all.
	AuthorizedPrincipals *File

	// RevokedKeys are the RevokedKeys files (OpenSSH 9.2 takes one; 10.3
	// and later several); none means "none". Each is a KRL or, without the
	// KRL magic, a list of public keys. A missing, unreadable or malformed
	// file makes sshd refuse every key.
	RevokedKeys []File

	// CASignatureAlgorithms is the CASignatureAlgorithms value as written in
	// sshd_config (a list, or one prefixed with +, - or ^); "" means the
	// release's default, which excludes ssh-rsa (SHA-1).
	CASignatureAlgorithms string

	// Version is the OpenSSH release whose rules apply: the sshd's, or in
	// host mode the ssh client's. The zero value means DefaultVersion
	// (9.2); see Version for what changes.
	Version Version

	// RequiredRSASize is the RequiredRSASize value; 0 means the default,
	// 1024 bits.
	RequiredRSASize int

	// TimeZone is the server's local time zone, in which sshd reads an
	// expiry-time="YYYYMMDD..." option without a trailing Z; nil means
	// time.Local.
	TimeZone *time.Location

	// KnownHosts are the client's known_hosts files, for host mode (see
	// Input.Host).
	KnownHosts []File

	// Notes are carried into every Verdict (ParseSSHDConfig writes here
	// what it ignored).
	Notes []string
}

// Input is one login to explain.
type Input struct {
	// Cert is the certificate the client offers.
	Cert *ssh.Certificate
	// User is the account name the client logs in as.
	User string
	// From is the client's address; the zero Addr means unknown, and the
	// address checks (source-address, from=) are then reported as notes
	// instead of decided.
	From netip.Addr
	// At is the time of the login (sshd's clock).
	At time.Time
	// Server is the server side.
	Server Server

	// Host, when set, turns the question around: the certificate is the
	// host certificate a server presents, and the checks are those the
	// OpenSSH client makes when connecting to Host (the name given to
	// ssh, or its HostKeyAlias), against Server.KnownHosts, with
	// Server.RevokedKeys as RevokedHostKeys and Server.CASignatureAlgorithms
	// as the client's. User and From are then not used.
	Host string
	// Port is the server's port in host mode; 0 means 22. known_hosts
	// names a host on another port as "[host]:port".
	Port int
}

// Verdict is what sshd would decide, and why.
type Verdict struct {
	// OpenSSH names the release whose rules were replayed ("OpenSSH 9.2").
	OpenSSH string `json:"openssh"`
	// Accept is true when every check passes.
	Accept bool `json:"accept"`
	// Check is the machine name of the first failing check (one of the
	// Check* constants); empty when Accept.
	Check string `json:"check,omitempty"`
	// Reason says in plain words why the check fails, with the numbers
	// that matter (how long ago, which principals, which fingerprints).
	Reason string `json:"reason,omitempty"`
	// Fix says what would make the login work.
	Fix string `json:"fix,omitempty"`
	// Notes are things worth knowing that did not decide the verdict:
	// restrictions that apply after an accept, configuration that was
	// ignored, checks that could not be made.
	Notes []string `json:"notes,omitempty"`
	// Steps records every check that ran, in order, the last one being
	// the failing one unless Accept.
	Steps []Step `json:"steps"`
}

// Step is one check that ran.
type Step struct {
	// Name is the stage: "pubkey-authentication", "signature",
	// "ca-signature-algorithm", "rsa-key-size", "revoked-keys",
	// "trusted-ca", "principals-file", "certificate-type", "validity",
	// "principal-list", "certificate-options", "source-address",
	// "principals-options"; in host mode also "known-hosts".
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// refusal is a failed check.
type refusal struct{ check, reason, fix string }

// runner carries one evaluation.
type runner struct {
	in      Input
	cert    *ssh.Certificate
	now     time.Time
	version Version // never the zero value
	notes   []string
	steps   []Step
}

func (r *runner) pass(name, format string, args ...any) {
	r.steps = append(r.steps, Step{Name: name, OK: true, Detail: fmt.Sprintf(format, args...)})
}

func (r *runner) fail(name string, ref *refusal) *refusal {
	r.steps = append(r.steps, Step{Name: name, OK: false, Detail: ref.reason})
	return ref
}

func (r *runner) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// Explain runs sshd's checks on in (or, with in.Host, the ssh client's) and
// returns the verdict. It returns an error only for input it cannot judge:
// no certificate, no user, or a CASignatureAlgorithms value that OpenSSH
// itself would refuse to start with.
func Explain(in Input) (Verdict, error) {
	if in.Cert == nil {
		return Verdict{}, errors.New("explain: no certificate")
	}
	if in.User == "" && in.Host == "" {
		return Verdict{}, errors.New("explain: no account name")
	}
	if in.Cert.Key == nil || in.Cert.SignatureKey == nil || in.Cert.Signature == nil {
		return Verdict{}, errors.New("explain: incomplete certificate")
	}
	algs, err := CASignatureAlgorithmsOf(in.Server.CASignatureAlgorithms, in.Server.Version)
	if err != nil {
		return Verdict{}, err
	}
	if in.From.IsValid() {
		// sshd reports an IPv4 client on an IPv6 socket as plain IPv4
		// (canohost.c ipv64_normalise_mapped).
		in.From = in.From.Unmap()
	}
	r := &runner{in: in, cert: in.Cert, now: in.At, version: in.Server.Version.orDefault()}
	r.notes = append(r.notes, in.Server.Notes...)
	if n := len(in.Server.RevokedKeys); n > 1 && in.Host == "" && !r.version.severalRevokedKeys() {
		r.note("sshd_config names %d RevokedKeys files: %s takes one and refuses to start with several (OpenSSH 10.3 takes several); all of them were checked", n, r.version)
	}
	var ref *refusal
	if in.Host != "" {
		ref = r.runHost(algs)
	} else {
		ref = r.run(algs)
	}
	v := Verdict{OpenSSH: r.version.String(), Accept: ref == nil, Notes: r.notes, Steps: r.steps}
	if ref != nil {
		v.Check, v.Reason, v.Fix = ref.check, ref.reason, ref.fix
	}
	return v, nil
}

// run is user_key_allowed and its callers, in order.
func (r *runner) run(algs []string) *refusal {
	if r.in.Server.PubkeyAuthenticationDisabled {
		return r.fail("pubkey-authentication", &refusal{
			check:  CheckPubkeyDisabled,
			reason: "sshd has PubkeyAuthentication no, so it accepts no key or certificate at all",
			fix:    "set PubkeyAuthentication yes in sshd_config (it is the default) and reload sshd",
		})
	}
	r.pass("pubkey-authentication", "PubkeyAuthentication yes")
	// userauth_pubkey: sshkey_from_blob verifies the certificate while
	// parsing it (sshkey.c cert_parse).
	if ref := r.checkSignature(); ref != nil {
		return r.fail("signature", ref)
	}
	r.pass("signature", "the CA signature over the certificate verifies (%s)", r.cert.Signature.Format)
	// userauth_pubkey: sshkey_check_cert_sigtype.
	if ref := r.checkSigAlg(algs); ref != nil {
		return r.fail("ca-signature-algorithm", ref)
	}
	r.pass("ca-signature-algorithm", "%s is in CASignatureAlgorithms", r.cert.Signature.Format)
	// userauth_pubkey: sshkey_check_rsa_length.
	if ref := r.checkRSASize(); ref != nil {
		return r.fail("rsa-key-size", ref)
	}
	// user_key_allowed: auth_key_is_revoked(key), then of its CA key.
	if ref := r.checkRevoked(); ref != nil {
		return r.fail("revoked-keys", ref)
	}
	// user_key_allowed tries the AuthorizedKeysFile files first; they
	// are out of scope (see Server.Notes), then user_cert_trusted_ca:
	if ref := r.checkTrustedCA(); ref != nil {
		return r.fail("trusted-ca", ref)
	}
	popts, ref := r.checkPrincipalsFile()
	if ref != nil {
		return r.fail("principals-file", ref)
	}
	// sshkey_cert_check_authority_now(key, 0, 1, 0, name).
	if ref := r.checkAuthority(); ref != nil {
		return ref // checkAuthority records its own steps
	}
	// sshauthopt_from_cert, auth_authorise_keyopts(cert options).
	copts, ref := r.checkCertOptions()
	if ref != nil {
		return r.fail("certificate-options", ref)
	}
	if ref := r.checkSourceAddress(copts); ref != nil {
		return r.fail("source-address", ref)
	}
	// auth_authorise_keyopts(principals options), sshauthopt_merge.
	if popts != nil {
		if ref := r.checkPrincipalsOptions(popts, copts); ref != nil {
			return r.fail("principals-options", ref)
		}
	}
	r.acceptNotes(copts, popts)
	return nil
}

// acceptNotes describes what still restricts an accepted login.
func (r *runner) acceptNotes(copts *certOptions, popts *authOptions) {
	cmd := copts.forceCommand
	if popts != nil && popts.command != nil {
		cmd = popts.command
	}
	if cmd != nil {
		r.note("sshd runs the forced command %q instead of any command the client asks for", *cmd)
	}
	if !copts.extensions["permit-pty"] || (popts != nil && !popts.pty) {
		r.note("no terminal (PTY) will be allocated: interactive shells will not work well (the certificate lacks permit-pty or the principals line forbids it)")
	}
	for _, name := range copts.unknownExtensions {
		r.note("sshd ignores the unknown extension %q", name)
	}
}

// checkSignature verifies the CA signature, as cert_parse does.
func (r *runner) checkSignature() *refusal {
	c := r.cert
	if c.CertType != ssh.UserCert && c.CertType != ssh.HostCert {
		return &refusal{
			check:  CheckMalformed,
			reason: fmt.Sprintf("the certificate's type is %d, neither user (1) nor host (2); OpenSSH cannot parse it", c.CertType),
			fix:    "get a user certificate from the CA (sshca sign user)",
		}
	}
	if len(c.ValidPrincipals) > maxPrincipals {
		return &refusal{
			check:  CheckMalformed,
			reason: fmt.Sprintf("the certificate lists %d principals; OpenSSH cannot parse a certificate with more than %d", len(c.ValidPrincipals), maxPrincipals),
			fix:    "get a certificate with fewer principals",
		}
	}
	if r.version.noDSA() && (c.Key.Type() == keyAlgoDSA || c.SignatureKey.Type() == keyAlgoDSA) {
		return &refusal{
			check:  CheckMalformed,
			reason: fmt.Sprintf("the certificate is of a DSA key or signed by a DSA CA; %s cannot parse it (DSA was removed in OpenSSH 10.1)", r.version),
			fix:    "generate an ed25519 key (ssh-keygen -t ed25519) and get it certified by a CA that is not DSA",
		}
	}
	if _, isCert := c.SignatureKey.(*ssh.Certificate); isCert {
		return &refusal{
			check:  CheckMalformed,
			reason: "the certificate is signed by another certificate, not by a plain CA key; OpenSSH cannot parse such a certificate",
			fix:    "sign the key with the CA's plain key (sshca sign user)",
		}
	}
	if err := c.SignatureKey.Verify(signedBytes(c), c.Signature); err != nil {
		return &refusal{
			check:  CheckMalformed,
			reason: fmt.Sprintf("the CA signature over the certificate does not verify with the CA key %s (%v): the certificate was altered or is corrupt, and OpenSSH cannot even parse it", fingerprint(c.SignatureKey), err),
			fix:    "get a fresh certificate from the CA; do not edit certificate files by hand",
		}
	}
	return nil
}

// keyAlgoDSA names DSA keys, which OpenSSH 10.1 removed.
const keyAlgoDSA = "ssh-dss"

// maxPrincipals is SSHKEY_CERT_MAX_PRINCIPALS (sshkey.h).
const maxPrincipals = 256

// signedBytes returns the part of the certificate blob the CA signed:
// everything but the trailing signature string (PROTOCOL.certkeys).
func signedBytes(c *ssh.Certificate) []byte {
	blob := c.Marshal()
	sig := ssh.Marshal(c.Signature)
	n := len(blob) - 4 - len(sig)
	if n < 0 {
		return nil
	}
	return blob[:n]
}

func (r *runner) checkSigAlg(algs []string) *refusal {
	alg := r.cert.Signature.Format
	if matchPatternList(alg, strings.Join(algs, ","), false) == 1 {
		return nil
	}
	fix := "re-sign the certificate with an allowed algorithm; sshca always signs RSA certificates with rsa-sha2-512 (with ssh-keygen: ssh-keygen -t rsa-sha2-512 -s CA_KEY ...)"
	if alg == ssh.KeyAlgoRSA {
		fix += "; adding ssh-rsa to CASignatureAlgorithms would work but re-enables SHA-1, which OpenSSH disabled in 8.2"
	} else {
		fix += fmt.Sprintf(", or add %s to CASignatureAlgorithms", alg)
	}
	setting := "the default CASignatureAlgorithms of " + r.version.String()
	if r.in.Server.CASignatureAlgorithms != "" {
		setting = fmt.Sprintf("CASignatureAlgorithms %s", r.in.Server.CASignatureAlgorithms)
	}
	what := alg
	if alg == ssh.KeyAlgoRSA {
		what = "ssh-rsa (RSA with SHA-1)"
	}
	return &refusal{
		check:  CheckSigAlg,
		reason: fmt.Sprintf("the CA signed the certificate with %s, which %s does not allow (allowed: %s); sshd checks this before anything else about the certificate", what, setting, strings.Join(algs, ", ")),
		fix:    fix,
	}
}

func (r *runner) checkRSASize() *refusal {
	min := r.in.Server.RequiredRSASize
	if min <= 0 {
		min = 1024
	}
	bits, ok := rsaBits(r.cert.Key)
	if !ok {
		return nil
	}
	if bits < 1024 || bits < min {
		return &refusal{
			check:  CheckRSASize,
			reason: fmt.Sprintf("the certified RSA key has %d bits, below RequiredRSASize %d", bits, min),
			fix:    "generate a larger key (ssh-keygen -t ed25519, or -t rsa -b 3072) and get it certified",
		}
	}
	r.pass("rsa-key-size", "RSA key of %d bits (RequiredRSASize %d)", bits, min)
	return nil
}
