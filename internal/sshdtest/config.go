package sshdtest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// Config describes the sshd a test wants. The zero value starts an sshd
// that trusts no user CA, reads no authorized_keys and presents a plain
// ed25519 host key.
type Config struct {
	// TrustedUserCAKeys are authorized-keys-format lines ("ssh-ed25519
	// AAAA..."), written to a file named by TrustedUserCAKeys. The file
	// always exists (empty when no lines are given, which trusts no CA), so
	// a test can rewrite it later with Server.SetTrustedUserCAKeys; sshd
	// reads it at every authentication.
	TrustedUserCAKeys []string

	// Principals maps an account to the principals that may log in as it.
	// Each list is written to <Dir>/principals/<account> and sshd gets
	// "AuthorizedPrincipalsFile <Dir>/principals/%u". An account without an
	// entry then has no file, and sshd refuses every certificate for it.
	// A nil map gives "AuthorizedPrincipalsFile none": the certificate must
	// then list the account name itself. An entry may carry
	// authorized_keys options before the principal, as sshd allows.
	Principals map[string][]string

	// RevokedKeysFile is an absolute path given to RevokedKeys. The test
	// owns the file and may rewrite it between logins; sshd rereads it at
	// every authentication. A missing file makes sshd refuse every key, an
	// empty one revokes nothing. "" means "RevokedKeys none".
	RevokedKeysFile string

	// HostKeyType is the type of host key the harness generates with
	// ssh-keygen: "ed25519" (default), "ecdsa", "rsa", or a type with a bit
	// size such as "ecdsa-384" or "rsa-2048".
	HostKeyType string

	// SignHostKey, when set, is called with the new host public key and
	// returns a host certificate for it in authorized-keys format; the
	// harness installs it with HostCertificate.
	SignHostKey func(hostPub ssh.PublicKey) ([]byte, error)

	// AuthorizedKeysFile is the AuthorizedKeysFile value; default "none".
	AuthorizedKeysFile string

	// Extra holds further sshd_config lines. sshd keeps the first value it
	// reads for most keywords, so these lines are written before the
	// harness's own defaults and override them; lines from the first
	// "Match" on are written at the end. They may not lower LogLevel below
	// VERBOSE: the harness learns that sshd listens from its log.
	Extra []string

	// OpenSSH is the release whose sshd runs (and whose ssh-keygen makes
	// the host key); nil means the system's (opensshtest.System).
	OpenSSH *opensshtest.Flavour

	// pickPort, when set, replaces the free-port finder (tests only).
	pickPort func() (int, error)
}

// normalize returns a copy of c with the trailing newline that
// ssh.MarshalAuthorizedKey leaves on CA lines removed.
func (c Config) normalize() Config {
	cas := make([]string, len(c.TrustedUserCAKeys))
	for i, l := range c.TrustedUserCAKeys {
		cas[i] = strings.TrimRight(l, "\r\n")
	}
	c.TrustedUserCAKeys = cas
	return c
}

// quietLevel reports whether sshd does not log "Server listening on ...",
// which Start waits for, at this LogLevel.
func quietLevel(level string) bool {
	switch strings.ToUpper(level) {
	case "QUIET", "FATAL", "ERROR", "INFO":
		return true
	}
	return false
}

// validate checks everything that would otherwise become a confusing sshd
// failure or an injected config line.
func (c *Config) validate() error {
	if _, err := keygenTypeArgs(c.hostKeyType()); err != nil {
		return err
	}
	for i, line := range c.TrustedUserCAKeys {
		if err := oneLine(line); err != nil {
			return fmt.Errorf("sshdtest: TrustedUserCAKeys[%d]: %w", i, err)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return fmt.Errorf("sshdtest: TrustedUserCAKeys[%d]: %w", i, err)
		}
	}
	for account, principals := range c.Principals {
		if account == "" || account == "." || account == ".." || strings.ContainsAny(account, "/%\x00\r\n \t") {
			return fmt.Errorf("sshdtest: Principals: bad account name %q", account)
		}
		for i, p := range principals {
			if err := oneLine(p); err != nil {
				return fmt.Errorf("sshdtest: Principals[%q][%d]: %w", account, i, err)
			}
			if t := strings.TrimLeft(p, " \t"); t == "" || t[0] == '#' {
				return fmt.Errorf("sshdtest: Principals[%q][%d]: empty or comment %q", account, i, p)
			}
		}
	}
	if c.RevokedKeysFile != "" {
		if err := oneLine(c.RevokedKeysFile); err != nil {
			return fmt.Errorf("sshdtest: RevokedKeysFile: %w", err)
		}
		if !filepath.IsAbs(c.RevokedKeysFile) {
			return fmt.Errorf("sshdtest: RevokedKeysFile %q is not absolute", c.RevokedKeysFile)
		}
	}
	if err := oneLine(c.AuthorizedKeysFile); err != nil {
		return fmt.Errorf("sshdtest: AuthorizedKeysFile: %w", err)
	}
	for i, line := range c.Extra {
		if err := oneLine(line); err != nil {
			return fmt.Errorf("sshdtest: Extra[%d]: %w", i, err)
		}
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], "LogLevel") && quietLevel(f[1]) {
			return fmt.Errorf("sshdtest: Extra[%d]: LogLevel %s hides \"Server listening\"; use VERBOSE or DEBUG*", i, f[1])
		}
	}
	return nil
}

func oneLine(s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return errors.New("contains a line break or NUL")
	}
	return nil
}

func (c *Config) hostKeyType() string {
	if c.HostKeyType == "" {
		return "ed25519"
	}
	return c.HostKeyType
}

// keygenTypeArgs turns "ed25519", "rsa-3072", "ecdsa-384" into ssh-keygen
// -t/-b arguments.
func keygenTypeArgs(typ string) ([]string, error) {
	name, bits, hasBits := strings.Cut(typ, "-")
	switch name {
	case "ed25519", "ecdsa", "rsa":
	default:
		return nil, fmt.Errorf("sshdtest: key type %q: want ed25519, ecdsa[-BITS] or rsa[-BITS]", typ)
	}
	args := []string{"-t", name}
	if hasBits {
		n, err := strconv.Atoi(bits)
		if err != nil || name == "ed25519" || n <= 0 {
			return nil, fmt.Errorf("sshdtest: key type %q: bad bit size", typ)
		}
		args = append(args, "-b", strconv.Itoa(n))
	}
	return args, nil
}

// paths names the files of one server directory.
type paths struct {
	dir, config, log, stderr, hostKey, hostCert, userCAs, principals string
}

func newPaths(dir string) paths {
	return paths{
		dir:        dir,
		config:     filepath.Join(dir, "sshd_config"),
		log:        filepath.Join(dir, "sshd.log"),
		stderr:     filepath.Join(dir, "sshd.stderr"),
		hostKey:    filepath.Join(dir, "ssh_host_key"),
		hostCert:   filepath.Join(dir, "ssh_host_key-cert.pub"),
		userCAs:    filepath.Join(dir, "trusted_user_ca_keys"),
		principals: filepath.Join(dir, "principals"),
	}
}

// renderConfig writes the sshd_config text. hostCert tells whether a host
// certificate was installed; penalties whether this sshd knows
// PerSourcePenalties (OpenSSH 9.8+), which must be off or repeated refused
// logins from 127.0.0.1 would block later ones.
func renderConfig(c *Config, p paths, port int, hostCert, penalties bool) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
	}
	line("# written by sshdtest")
	var match []string
	for i, l := range c.Extra {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], "Match") {
			match = c.Extra[i:]
			break
		}
		line("%s", l)
	}
	line("Port %d", port)
	line("ListenAddress 127.0.0.1")
	line("AddressFamily inet")
	line("HostKey %s", p.hostKey)
	if hostCert {
		line("HostCertificate %s", p.hostCert)
	}
	line("PidFile none")
	line("UsePAM no")
	line("StrictModes no")
	line("LogLevel DEBUG1")
	line("UseDNS no")
	line("PermitRootLogin prohibit-password")
	line("PubkeyAuthentication yes")
	line("PasswordAuthentication no")
	line("KbdInteractiveAuthentication no")
	line("HostbasedAuthentication no")
	line("X11Forwarding no")
	line("PrintMotd no")
	line("PrintLastLog no")
	line("LoginGraceTime 20")
	line("MaxStartups 100")
	// Debian's bash sources ~/.bashrc when started by sshd unless SHLVL
	// says it is nested; a heavy or chatty .bashrc would slow every login
	// by seconds and pollute the command's output.
	line("SetEnv SHLVL=1")
	if penalties {
		line("PerSourcePenalties no")
	}
	line("TrustedUserCAKeys %s", p.userCAs)
	if c.Principals != nil {
		line("AuthorizedPrincipalsFile %s/%%u", p.principals)
	} else {
		line("AuthorizedPrincipalsFile none")
	}
	if c.AuthorizedKeysFile != "" {
		line("AuthorizedKeysFile %s", c.AuthorizedKeysFile)
	} else {
		line("AuthorizedKeysFile none")
	}
	if c.RevokedKeysFile != "" {
		line("RevokedKeys %s", c.RevokedKeysFile)
	} else {
		line("RevokedKeys none")
	}
	for _, l := range match {
		line("%s", l)
	}
	return b.String()
}

// joinLines renders lines as a file body, one per line.
func joinLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, " \t"))
		b.WriteByte('\n')
	}
	return b.String()
}
