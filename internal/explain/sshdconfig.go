package explain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// SSHDConfig is the part of an sshd_config that decides certificate
// logins. Zero-valued fields mean sshd's defaults.
type SSHDConfig struct {
	// PubkeyAuthentication is false only for "PubkeyAuthentication no".
	PubkeyAuthentication bool
	// TrustedUserCAKeys is the file path; "" for none (the default).
	TrustedUserCAKeys string
	// AuthorizedPrincipalsFile is the path template with its %-tokens;
	// "" for none (the default).
	AuthorizedPrincipalsFile string
	// RevokedKeys are the file paths; nil for none (the default).
	RevokedKeys []string
	// CASignatureAlgorithms is the value as written; "" for the default.
	CASignatureAlgorithms string
	// AuthorizedKeysFile are the path templates; sshd's default is
	// ".ssh/authorized_keys .ssh/authorized_keys2", and nil means "none".
	AuthorizedKeysFile []string
	// AuthorizedPrincipalsCommand is the command, "" for none.
	AuthorizedPrincipalsCommand string
	// RequiredRSASize is the value, 0 for the default (1024).
	RequiredRSASize int
	// Notes say what was ignored: Match blocks, Include, keywords whose
	// effect is out of scope.
	Notes []string
}

// IncludeFunc returns the files an Include pattern names (relative
// patterns are under /etc/ssh), in the order sshd reads them: glob
// matches sorted by name.
type IncludeFunc func(pattern string) ([]File, error)

// ParseSSHDConfig reads an sshd_config for the keywords that decide a
// certificate login: PubkeyAuthentication, TrustedUserCAKeys,
// AuthorizedPrincipalsFile, RevokedKeys, CASignatureAlgorithms,
// RequiredRSASize, AuthorizedKeysFile and AuthorizedPrincipalsCommand.
// Like sshd (servconf.c), it takes keywords without case, a value after
// blanks or one '=', quoted arguments, '#' comments, and keeps the first
// value of each keyword. It stops at the first Match block and does not
// follow Include; both are recorded in Notes. Other keywords are ignored.
func ParseSSHDConfig(r io.Reader) (*SSHDConfig, error) {
	return ParseSSHDConfigInclude(r, nil)
}

// ParseSSHDConfigInclude is ParseSSHDConfig that follows Include
// directives through include (nil: do not follow).
func ParseSSHDConfigInclude(r io.Reader, include IncludeFunc) (*SSHDConfig, error) {
	p := &configParser{c: &SSHDConfig{PubkeyAuthentication: true}, include: include}
	if err := p.parse(r, "sshd_config", 0); err != nil {
		return nil, err
	}
	c := p.c
	if !p.seen["authorizedkeysfile"] {
		c.AuthorizedKeysFile = []string{".ssh/authorized_keys", ".ssh/authorized_keys2"}
	}
	if len(c.AuthorizedKeysFile) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("sshd first tries the AuthorizedKeysFile files (%s); a cert-authority line there can accept a certificate this explanation refuses, and is not checked", strings.Join(c.AuthorizedKeysFile, " ")))
	}
	if c.AuthorizedPrincipalsCommand != "" {
		c.Notes = append(c.Notes, fmt.Sprintf("AuthorizedPrincipalsCommand %s is not run: when the principals file allows none of the certificate's principals, the command's output may still allow one", c.AuthorizedPrincipalsCommand))
	}
	return c, nil
}

type configParser struct {
	c       *SSHDConfig
	include IncludeFunc
	seen    map[string]bool
	stopped bool
}

// maxIncludeDepth is servconf.c SERVCONF_MAX_DEPTH.
const maxIncludeDepth = 16

func (p *configParser) parse(r io.Reader, name string, depth int) error {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() && !p.stopped {
		n++
		if err := p.line(sc.Text(), name, n, depth); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("explain: read %s: %w", name, err)
	}
	return nil
}

// line is servconf.c process_server_config_line_depth for the keywords we
// need.
func (p *configParser) line(text, name string, n, depth int) error {
	text = strings.TrimRight(text, " \t\r\n\f")
	keyword, rest := splitKeyword(text)
	if keyword == "" || keyword[0] == '#' {
		return nil
	}
	args, err := splitArgs(rest)
	if err != nil {
		return fmt.Errorf("explain: %s line %d: %w", name, n, err)
	}
	if len(args) == 0 {
		return fmt.Errorf("explain: %s line %d: no argument after keyword %q", name, n, keyword)
	}
	kw := strings.ToLower(keyword)
	first := !p.seen[kw]
	switch kw {
	case "match":
		p.c.Notes = append(p.c.Notes, fmt.Sprintf("%s line %d: the Match block from here on is ignored; if it applies to this login, its settings may change the verdict (check with sshd -T -C user=...,addr=...)", name, n))
		p.stopped = true
		return nil
	case "include":
		return p.doInclude(args, name, n, depth)
	case "pubkeyauthentication":
		v, err := yesNo(args[0])
		if err != nil {
			return fmt.Errorf("explain: %s line %d: PubkeyAuthentication: %w", name, n, err)
		}
		if first {
			p.c.PubkeyAuthentication = v
		}
	case "trustedusercakeys":
		if first {
			p.c.TrustedUserCAKeys = noneToEmpty(args[0])
		}
	case "authorizedprincipalsfile":
		if first {
			p.c.AuthorizedPrincipalsFile = noneToEmpty(args[0])
		}
	case "authorizedprincipalscommand":
		if first {
			p.c.AuthorizedPrincipalsCommand = noneToEmpty(strings.Join(args, " "))
		}
	case "revokedkeys":
		if first {
			for _, a := range args {
				if a = noneToEmpty(a); a != "" {
					p.c.RevokedKeys = append(p.c.RevokedKeys, a)
				}
			}
		}
	case "casignaturealgorithms":
		if first {
			// Valid for some release: the release is not known here.
			if _, err := assembleCASigAlgs(args[0], DefaultVersion); err != nil {
				if _, err2 := assembleCASigAlgs(args[0], Version{10, 5}); err2 != nil {
					return fmt.Errorf("explain: %s line %d: CASignatureAlgorithms %q: %w", name, n, args[0], err)
				}
			}
			p.c.CASignatureAlgorithms = args[0]
		}
	case "requiredrsasize":
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 0 {
			return fmt.Errorf("explain: %s line %d: RequiredRSASize %q is not a number", name, n, args[0])
		}
		if first {
			p.c.RequiredRSASize = v
		}
	case "authorizedkeysfile":
		if first {
			p.c.AuthorizedKeysFile = nil
			for _, a := range args {
				if !strings.EqualFold(a, "none") {
					p.c.AuthorizedKeysFile = append(p.c.AuthorizedKeysFile, a)
				}
			}
		}
	default:
		return nil
	}
	p.seen[kw] = true
	return nil
}

func (p *configParser) doInclude(args []string, name string, n, depth int) error {
	if p.include == nil {
		p.c.Notes = append(p.c.Notes, fmt.Sprintf("%s line %d: Include %s was not followed; settings there are not taken into account", name, n, strings.Join(args, " ")))
		return nil
	}
	if depth >= maxIncludeDepth {
		return fmt.Errorf("explain: %s line %d: Include nested too deeply", name, n)
	}
	for _, pattern := range args {
		if !path.IsAbs(pattern) && !strings.HasPrefix(pattern, "~") {
			pattern = path.Join("/etc/ssh", pattern)
		}
		files, err := p.include(pattern)
		if err != nil {
			return fmt.Errorf("explain: %s line %d: Include %s: %w", name, n, pattern, err)
		}
		for _, f := range files {
			if f.Err != nil {
				return fmt.Errorf("explain: %s line %d: Include %s: %w", name, n, f.Path, f.Err)
			}
			if err := p.parse(strings.NewReader(string(f.Data)), f.Path, depth+1); err != nil {
				return err
			}
			if p.stopped {
				return nil
			}
		}
	}
	return nil
}

// splitKeyword is misc.c strdelim on a config line: leading blanks
// skipped, the keyword ends at a blank or at one '=' (with blanks around
// it allowed).
func splitKeyword(s string) (keyword, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return s, ""
	}
	keyword, rest = s[:i], strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	return keyword, rest
}

// splitArgs is misc.c argv_split(s, ..., terminate_on_comment 1): blank
// separated words in which single or double quotes protect blanks (and may
// start or end mid-word), a backslash escapes a quote, a backslash or,
// outside quotes, a space, and '#' at the start of a word ends the line.
func splitArgs(s string) ([]string, error) {
	var args []string
	i := 0
	for i < len(s) {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		if s[i] == '#' {
			break
		}
		var b strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"' || s[i+1] == '\\' || (quote == 0 && s[i+1] == ' ')):
				i++
				b.WriteByte(s[i])
				continue
			case quote == 0 && (c == ' ' || c == '\t'):
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
				continue
			case quote != 0 && c == quote:
				quote = 0
				continue
			default:
				b.WriteByte(c)
				continue
			}
			break
		}
		if quote != 0 {
			return nil, errors.New("unterminated quote")
		}
		args = append(args, b.String())
	}
	return args, nil
}

func yesNo(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is neither yes nor no", s)
}

func noneToEmpty(s string) string {
	if strings.EqualFold(s, "none") {
		return ""
	}
	return s
}

// Account is the system account a login targets, for expanding the
// %-tokens of AuthorizedPrincipalsFile.
type Account struct {
	Name string // %u
	Home string // %h, and the base of relative paths
	UID  string // %U
}

// PrincipalsPath expands AuthorizedPrincipalsFile for an account as
// auth2-pubkey.c expand_authorized_keys does: %% %h %u %U, and a relative
// result is taken from the home directory. It returns "" for none.
func (c *SSHDConfig) PrincipalsPath(a Account) (string, error) {
	t := c.AuthorizedPrincipalsFile
	if t == "" {
		return "", nil
	}
	var b strings.Builder
	needHome := false
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			b.WriteByte(t[i])
			continue
		}
		i++
		if i == len(t) {
			return "", fmt.Errorf("explain: AuthorizedPrincipalsFile %q ends in %%", t)
		}
		switch t[i] {
		case '%':
			b.WriteByte('%')
		case 'u':
			b.WriteString(a.Name)
		case 'h':
			needHome = true
			b.WriteString(a.Home)
		case 'U':
			if a.UID == "" {
				return "", fmt.Errorf("explain: AuthorizedPrincipalsFile %q needs the account's uid (%%U)", t)
			}
			b.WriteString(a.UID)
		default:
			return "", fmt.Errorf("explain: AuthorizedPrincipalsFile %q: unknown token %%%c", t, t[i])
		}
	}
	p := b.String()
	if !path.IsAbs(p) {
		needHome = true
		p = a.Home + "/" + p
	}
	if needHome && a.Home == "" {
		return "", fmt.Errorf("explain: AuthorizedPrincipalsFile %q needs the home directory of %q", t, a.Name)
	}
	return p, nil
}

// Server reads the files the configuration names for a login to account
// a, with readFile (which should return an error wrapping fs.ErrNotExist
// for a missing file), and returns the Server to explain against.
func (c *SSHDConfig) Server(a Account, readFile func(path string) ([]byte, error)) (Server, error) {
	s := Server{
		PubkeyAuthenticationDisabled: !c.PubkeyAuthentication,
		CASignatureAlgorithms:        c.CASignatureAlgorithms,
		RequiredRSASize:              c.RequiredRSASize,
		Notes:                        append([]string(nil), c.Notes...),
	}
	read := func(p string) *File {
		data, err := readFile(p)
		return &File{Path: p, Data: data, Err: err}
	}
	if c.TrustedUserCAKeys != "" {
		s.TrustedUserCAKeys = read(c.TrustedUserCAKeys)
	}
	pp, err := c.PrincipalsPath(a)
	if err != nil {
		return Server{}, err
	}
	if pp != "" {
		s.AuthorizedPrincipals = read(pp)
	}
	for _, p := range c.RevokedKeys {
		s.RevokedKeys = append(s.RevokedKeys, *read(p))
	}
	return s, nil
}
