package explain

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// authOptions are the options of an authorized_keys or principals line,
// as auth-options.c sshauthopt_parse reads them (OpenSSH 9.2). Only what
// decides a login is kept.
type authOptions struct {
	restricted    bool
	certAuthority bool
	pty           bool
	command       *string
	principals    *string
	from          *string
	validBefore   uint64 // Unix seconds; 0 = none
	expiryText    string
}

// parseAuthOptions is sshauthopt_parse: a comma-separated list of options
// ending at the first blank (or the end). Names are compared without case
// and by prefix, like OpenSSH's opt_flag and opt_match.
func parseAuthOptions(s string, tz *time.Location) (*authOptions, error) {
	o := &authOptions{pty: true}
	for s != "" && s[0] != ' ' && s[0] != '\t' {
		var err error
		switch {
		case hasPrefixFold(s, "restrict"):
			s = s[len("restrict"):]
			o.restricted, o.pty = true, false
		case hasPrefixFold(s, "cert-authority"):
			s = s[len("cert-authority"):]
			o.certAuthority = true
		case hasPrefixFold(s, "no-touch-required"):
			s = s[len("no-touch-required"):]
		case hasPrefixFold(s, "verify-required"):
			s = s[len("verify-required"):]
		case negFlag(&s, "port-forwarding") >= 0, negFlag(&s, "agent-forwarding") >= 0,
			negFlag(&s, "x11-forwarding") >= 0:
		case peekFlag(s, "pty"):
			o.pty = negFlag(&s, "pty") == 1
		case negFlag(&s, "user-rc") >= 0:
		case optMatch(&s, "command"):
			if o.command != nil {
				return nil, errors.New(`multiple "command" clauses`)
			}
			var v string
			v, err = dequote(&s)
			o.command = &v
		case optMatch(&s, "principals"):
			if o.principals != nil {
				return nil, errors.New(`multiple "principals" clauses`)
			}
			var v string
			v, err = dequote(&s)
			o.principals = &v
		case optMatch(&s, "from"):
			if o.from != nil {
				return nil, errors.New(`multiple "from" clauses`)
			}
			var v string
			v, err = dequote(&s)
			o.from = &v
		case optMatch(&s, "expiry-time"):
			var v string
			if v, err = dequote(&s); err == nil {
				t, ok := parseAbsoluteTime(v, tz)
				if !ok || t == 0 {
					return nil, errors.New("invalid expires time")
				}
				if o.validBefore == 0 || t < o.validBefore {
					o.validBefore, o.expiryText = t, v
				}
			}
		case optMatch(&s, "environment"):
			var v string
			if v, err = dequote(&s); err == nil {
				name, _, ok := strings.Cut(v, "=")
				if !ok || strings.IndexFunc(name, func(c rune) bool {
					return !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
				}) >= 0 {
					return nil, errors.New("invalid environment string")
				}
			}
		case optMatch(&s, "permitopen"):
			err = permit(&s, false)
		case optMatch(&s, "permitlisten"):
			err = permit(&s, true)
		case optMatch(&s, "tunnel"):
			var v string
			if v, err = dequote(&s); err == nil && v != "any" {
				if n, perr := strconv.ParseUint(v, 10, 31); perr != nil || n > 0x7fffffff {
					return nil, errors.New("invalid tun device")
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if s == "" || s[0] == ' ' || s[0] == '\t' {
			break
		}
		if s[0] != ',' {
			return nil, errors.New("unknown key option")
		}
		s = s[1:]
		if s == "" {
			return nil, errors.New("unexpected end-of-options")
		}
	}
	return o, nil
}

// peekFlag reports whether negFlag(&s, name) would consume something.
func peekFlag(s, name string) bool { return negFlag(&s, name) >= 0 }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// negFlag is opt_flag(name, 1, &s): it consumes "name" or "no-name" and
// returns 1 or 0, or -1 when neither is there.
func negFlag(s *string, name string) int {
	t, neg := *s, 0
	if hasPrefixFold(t, "no-") {
		t, neg = t[3:], 1
	}
	if !hasPrefixFold(t, name) {
		return -1
	}
	*s = t[len(name):]
	return 1 - neg
}

// optMatch is opt_match: it consumes "name=".
func optMatch(s *string, name string) bool {
	if hasPrefixFold(*s, name) && len(*s) > len(name) && (*s)[len(name)] == '=' {
		*s = (*s)[len(name)+1:]
		return true
	}
	return false
}

// dequote is opt_dequote: a double-quoted value in which \" stands for ".
func dequote(s *string) (string, error) {
	t := *s
	if t == "" || t[0] != '"' {
		return "", errors.New("missing start quote")
	}
	t = t[1:]
	var b strings.Builder
	for t != "" && t[0] != '"' {
		if t[0] == '\\' && len(t) > 1 && t[1] == '"' {
			t = t[1:]
		}
		b.WriteByte(t[0])
		t = t[1:]
	}
	if t == "" {
		return "", errors.New("missing end quote")
	}
	*s = t[1:]
	return b.String(), nil
}

// permit checks a permitopen/permitlisten value as handle_permit does:
// host:port, where port is "*" or 1-65535 (permitlisten also takes a bare
// port).
func permit(s *string, bare bool) error {
	v, err := dequote(s)
	if err != nil {
		return err
	}
	if bare && !strings.Contains(v, ":") {
		v = "*:" + v
	}
	var port string
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]")
		if end < 0 || end+1 >= len(v) || v[end+1] != ':' {
			return errors.New("invalid permission hostname")
		}
		port = v[end+2:]
	} else {
		i := strings.Index(v, ":")
		if i < 0 {
			return errors.New("invalid permission port")
		}
		port = v[i+1:]
	}
	if port == "*" {
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return errors.New("invalid permission port")
	}
	return nil
}

// parseAbsoluteTime is misc.c parse_absolute_time: YYYYMMDD, YYYYMMDDHHMM
// or YYYYMMDDHHMMSS, in the server's time zone unless it ends in "Z" or
// "UTC".
func parseAbsoluteTime(s string, tz *time.Location) (uint64, bool) {
	if tz == nil {
		tz = time.Local
	}
	switch {
	case len(s) > 1 && strings.EqualFold(s[len(s)-1:], "Z"):
		s, tz = s[:len(s)-1], time.UTC
	case len(s) > 3 && strings.EqualFold(s[len(s)-3:], "UTC"):
		s, tz = s[:len(s)-3], time.UTC
	}
	var layout string
	switch len(s) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return 0, false
	}
	t, err := time.ParseInLocation(layout, s, tz)
	if err != nil || t.Unix() < 0 {
		return 0, false
	}
	return uint64(t.Unix()), true
}
