// Package explain answers "why would sshd refuse this certificate?": it
// replays, in the order OpenSSH 9.2's sshd runs them, the checks that sshd
// makes when a user certificate is offered for a login through
// TrustedUserCAKeys, and names the first one that fails, in plain words,
// with numbers and a fix.
//
// The rules are OpenSSH 9.2's (Debian 12) unless Server.Version names
// another release; the order of the checks is the same up to 10.5, and
// Version lists what changed (KRL sections skipped, several RevokedKeys
// files, wildcard and empty host certificate principals, DSA, the default
// CASignatureAlgorithms). Both are held to real sshd and ssh of 9.2 and
// 10.5 by the agreement tests in internal/e2e/explain.
//
// The order is sshd's (OpenSSH 9.2p1, auth2-pubkey.c 1.117):
//
//  1. userauth_pubkey: the certificate parses and its CA signature verifies
//     (sshkey_from_blob/cert_parse), its CA signature algorithm is in
//     CASignatureAlgorithms (sshkey_check_cert_sigtype), an RSA key is at
//     least RequiredRSASize bits (sshkey_check_rsa_length);
//  2. user_key_allowed: the key and then its CA key are not revoked by the
//     RevokedKeys file (auth.c auth_key_is_revoked, authfile.c
//     sshkey_check_revoked, krl.c ssh_krl_check_key);
//  3. user_cert_trusted_ca: the CA is listed in TrustedUserCAKeys
//     (authfile.c sshkey_in_file); a line of the AuthorizedPrincipalsFile
//     names one of the certificate's principals (auth2-pubkeyfile.c
//     auth_process_principals, auth_check_principals_line);
//     sshkey_cert_check_authority (sshkey.c): a user certificate, inside
//     its validity window, with a principal list that, without a principals
//     file, holds the login name; then the certificate's critical options
//     (auth-options.c sshauthopt_from_cert, cert_option_list) and
//     auth2-pubkeyfile.c auth_authorise_keyopts (source-address), then the
//     options of the matching principals line and sshauthopt_merge
//     (force-command).
//
// Note that sshd checks the CA signature algorithm before revocation and
// trust, so an ssh-rsa (SHA-1) certificate from a revoked or unknown CA is
// refused for its algorithm.
//
// With Input.Host set, the question is turned around: the certificate is a
// server's host certificate and the checks are the ssh client's
// (sshconnect.c check_host_key, check_host_cert): RevokedHostKeys,
// @cert-authority and @revoked lines of known_hosts, a host certificate
// valid now naming the host, no critical options, and, last, the CA
// signature algorithm. For a port other than 22 the known_hosts lookup is
// ssh's: "[host]:port" first and, when no line for it holds the CA or a
// @revoked key, the bare host name again ("checking without port
// identifier"); the certificate's principals are always matched against the
// bare name.
//
// The package never reads files, the clock, the network or the user
// database: the caller passes the certificate, the time, the client address
// and the content of the server's files (Server, which ParseSSHDConfig and
// SSHDConfig.Server help build). It never prints. What sshd would decide
// from things it does not see (authorized_keys files with cert-authority
// lines, AuthorizedPrincipalsCommand, Match blocks, PAM, the account's
// state) is out of scope and reported in Verdict.Notes instead of guessed.
package explain
