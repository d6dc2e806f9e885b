package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/totp"
)

// session is what one authenticated connection proved: who (a local user
// as stored now, or a person the identity provider signed in for this
// connection), with which key, and which second factor.
type session struct {
	s      *Server
	sc     *ssh.ServerConn
	src    string
	start  time.Time
	key    ssh.PublicKey
	kind   string // policy.CallerLocal or policy.CallerPerson
	name   string
	groups []string

	mu     sync.Mutex // guards the factor: a code is spent by the first cert
	sk     bool       // an sk key's signature with user presence
	idpMFA bool       // the identity provider's multi-factor sign-in
	code   string     // a TOTP code given at keyboard-interactive, unverified
	totp   bool       // that code was verified by a cert in this connection
}

// newSession reads the authenticated local user again (a user removed
// during the handshake gets nothing) and the key the connection proved;
// a person signed in by the device flow holds the key bound to them.
func (s *Server) newSession(sc *ssh.ServerConn, src string, start time.Time) *session {
	ext := sc.Permissions.Extensions
	if p := ext[extPerson]; p != "" {
		key, err := ssh.ParsePublicKey([]byte(ext[extBound]))
		if err != nil {
			return nil
		}
		var groups []string
		if ext[extGroups] != "" {
			groups = strings.Split(ext[extGroups], "\n")
		}
		return &session{s: s, sc: sc, src: src, start: start, key: key, kind: policy.CallerPerson, name: p, groups: groups, idpMFA: ext[extMFA] == "1",
			code: ext[extTOTP]}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	u, err := s.o.Users.LocalUserByKey(ctx, ext[extKey])
	if err != nil || u.Name != ext[extUser] {
		return nil
	}
	var key ssh.PublicKey
	for _, k := range u.Keys {
		if k.Fingerprint == ext[extKey] {
			key, _, _, _, err = ssh.ParseAuthorizedKey([]byte(k.PublicKey))
			if err != nil {
				return nil
			}
		}
	}
	if key == nil {
		return nil
	}
	return &session{s: s, sc: sc, src: src, start: start, key: key, kind: policy.CallerLocal, name: u.Name, groups: u.Groups,
		sk: ext[extSK] == "1", code: ext[extTOTP]}
}

// caller is the policy's view of this connection.
func (se *session) caller() policy.Caller {
	se.mu.Lock()
	defer se.mu.Unlock()
	return policy.Caller{Kind: se.kind, Identity: policy.Identity{User: se.name, Groups: slices.Clone(se.groups)},
		MFA: se.sk || se.totp || se.idpMFA, AuthTime: se.start}
}

// who names the caller for messages: "local user alice", "alice".
func (se *session) who() string {
	if se.kind == policy.CallerLocal {
		return "local user " + se.name
	}
	return se.name
}

// maxExecLen bounds the command line of an exec request.
const maxExecLen = 1024

// serveChannel serves one session channel: one exec (or a shell request,
// answered with help), nothing else.
func (se *session) serveChannel(ch ssh.Channel, reqs <-chan *ssh.Request, idle *idleTimer) {
	defer ch.Close()
	for r := range reqs {
		idle.touch()
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if len(r.Payload) > maxExecLen+4 || ssh.Unmarshal(r.Payload, &p) != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			status := se.run(ch, ch.Stderr(), p.Command)
			idle.touch()
			se.exit(ch, status)
			return
		case "shell":
			_ = r.Reply(true, nil)
			fmt.Fprint(ch.Stderr(), "sshca: error: the front door has no shell; run a command: ssh HOST cert | roles | status | help\r\n")
			se.exit(ch, 2)
			return
		default:
			// pty-req, env, subsystem, x11-req, auth-agent-req, signals...
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

func (se *session) exit(ch ssh.Channel, status uint32) {
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	_ = ch.CloseWrite()
}

// usageError is a command line the front door does not understand (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run runs one command line and returns its exit status: 0, 1 for a
// refusal or failure, 2 for a usage error. Errors are one line on stderr.
func (se *session) run(stdout io.Writer, stderr io.Writer, line string) uint32 {
	args := strings.Fields(line)
	if len(args) == 0 {
		args = []string{"help"}
	}
	var err error
	switch args[0] {
	case "cert":
		err = se.cert(stdout, stderr, args[1:])
	case "roles":
		err = se.roles(stdout, args[1:])
	case "status":
		err = se.status(stdout, args[1:])
	case "totp-enroll":
		err = se.enrollTOTP(stdout, stderr, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, helpText)
	default:
		err = &usageError{fmt.Sprintf("unknown command %s; run: help", policyQuote(args[0]))}
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "sshca: error: %s\n", oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const helpText = `sshca front door: certificates for the key you connected with.

  cert [--role R] [--principals a,b] [--ttl D]   print a certificate (save it as <key>-cert.pub)
  roles                                          the roles you may use, with their limits
  status                                         who you are here, and your second factor
  totp-enroll CODE                               enroll TOTP with an admin's code (sshca totp invite local:NAME)
  help                                           this text

Example: ssh -p 2222 ca.example.com cert --role deploy > ~/.ssh/id_ed25519-cert.pub
`

// oneLine keeps an error on one bounded line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r < 0x20 && r != '\t' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// policyQuote quotes a bounded piece of input for a message.
func policyQuote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// flagSet is a flag set whose errors come back as usage errors.
func flagSet(name string) (*flag.FlagSet, *bytes.Buffer) {
	var buf bytes.Buffer
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(&buf)
	return fs, &buf
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &usageError{fs.Name() + ": see help"}
		}
		return &usageError{fs.Name() + ": " + err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected argument %s", fs.Name(), policyQuote(fs.Arg(0)))}
	}
	return nil
}

func (se *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(se.s.ctx, 30*time.Second)
}

// cert asks the one issuance path for a certificate for the connection's key.
func (se *session) cert(stdout, stderr io.Writer, args []string) error {
	fs, _ := flagSet("cert")
	role := fs.String("role", "", "role to use (default: your only role)")
	princ := fs.String("principals", "", "comma-separated principals (default: all of the role's)")
	ttlS := fs.String("ttl", "", "lifetime, e.g. 1h (default: the role's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var ttl time.Duration
	if *ttlS != "" {
		d, err := time.ParseDuration(*ttlS)
		if err != nil || d <= 0 {
			return &usageError{"cert: --ttl must be a positive duration such as 30m or 8h"}
		}
		ttl = d
	}
	if !se.s.usrLim.allow(se.caller().Actor(), se.s.o.Now()) {
		return errors.New("rate limit: too many certificate requests; wait a minute")
	}
	ctx, cancel := se.ctx()
	defer cancel()
	if *role == "" {
		mine := se.allowedRoles(ctx)
		switch len(mine) {
		case 1:
			*role = mine[0]
		case 0:
			return errors.New("no role is open to " + se.who() + "; ask an admin")
		default:
			return &usageError{"cert: name a role with --role: " + strings.Join(mine, ", ")}
		}
	}
	var principals []string
	if *princ != "" {
		principals = strings.Split(*princ, ",")
	}
	se.mu.Lock()
	code := se.code
	se.mu.Unlock()
	c := se.caller()
	req := ca.Request{Caller: c, Type: policy.UserCert, Role: *role, Principals: principals, TTL: ttl, PublicKey: se.key,
		Details: map[string]string{"request_id": newRequestID(), "door": "ssh", "source": se.src}}
	if !c.MFA && code != "" {
		req.TOTP = code
	}
	if se.sk {
		req.Details["factor"] = "sk-user-presence"
	}
	cert, err := se.s.o.Authority.Sign(ctx, req)
	if req.TOTP != "" {
		// The code is spent whatever the outcome: it was verified (and so
		// proves the factor for this connection), or refused.
		var de *policy.DenyError
		se.mu.Lock()
		se.code = ""
		se.totp = !(errors.As(err, &de) && de.Rule == "mfa-failed")
		se.mu.Unlock()
	}
	if err != nil {
		return publicError(err)
	}
	_, _ = stdout.Write(ssh.MarshalAuthorizedKey(cert))
	fmt.Fprintf(stderr, "certificate serial %d for %s, principals %s, valid until %s\n", cert.Serial, ssh.FingerprintSHA256(se.key),
		strings.Join(cert.ValidPrincipals, ","), time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	return nil
}

// publicError is what a requester may see of an error: refusals in full,
// internal failures by kind only (the log has the rest).
func publicError(err error) error {
	var de *policy.DenyError
	var ke *ca.KeyError
	var ce *ca.CredentialError
	switch {
	case errors.As(err, &de):
		return errors.New(de.Error() + " [" + de.Rule + "]")
	case errors.As(err, &ke), errors.As(err, &ce):
		return err
	}
	return errors.New("internal error; the CA's log has the details")
}

// allowedRoles lists the user roles this connection may use, ignoring the
// second factor (which the cert request itself proves or not).
func (se *session) allowedRoles(ctx context.Context) []string {
	var out []string
	c := se.caller()
	c.MFA = true
	for _, name := range sortedRoles(se.s.o.Authority.Roles) {
		r := se.s.o.Authority.Roles[name]
		if r.Type != policy.UserCert {
			continue
		}
		if _, err := policy.Decide(se.s.o.Authority.Roles, c, policy.Request{Type: policy.UserCert, Role: name, Now: se.s.o.Now()}); err == nil {
			out = append(out, name)
		}
	}
	return out
}

func sortedRoles(m map[string]policy.Role) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// roles prints the roles this caller may use, with what they grant.
func (se *session) roles(stdout io.Writer, args []string) error {
	fs, _ := flagSet("roles")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := se.ctx()
	defer cancel()
	mine := se.allowedRoles(ctx)
	if len(mine) == 0 {
		fmt.Fprintf(stdout, "no role is open to %s\n", se.who())
		return nil
	}
	c := se.caller()
	c.MFA = true
	for _, name := range mine {
		r := se.s.o.Authority.Roles[name]
		g, err := policy.Decide(se.s.o.Authority.Roles, c, policy.Request{Type: policy.UserCert, Role: name, Now: se.s.o.Now()})
		if err != nil {
			continue
		}
		mfa := ""
		if r.RequireMFA {
			mfa = "  second factor required"
		}
		fmt.Fprintf(stdout, "%s\tprincipals=%s\tdefault_ttl=%s\tmax_ttl=%s%s\n", name, strings.Join(g.Principals, ","), r.DefaultTTL, r.MaxTTL, mfa)
	}
	return nil
}

// status prints who this connection is and what factor it carries.
func (se *session) status(stdout io.Writer, args []string) error {
	fs, _ := flagSet("status")
	if err := parse(fs, args); err != nil {
		return err
	}
	se.mu.Lock()
	factor := "none"
	switch {
	case se.sk:
		factor = "FIDO security key (user presence)"
	case se.idpMFA:
		factor = "multi-factor sign-in at the identity provider"
	case se.totp:
		factor = "TOTP (verified)"
	case se.code != "":
		factor = "TOTP code given (verified by the first cert)"
	}
	se.mu.Unlock()
	kind := "local user:   "
	if se.kind == policy.CallerPerson {
		kind = "signed in as: "
	}
	fmt.Fprintf(stdout, "%s %s\ngroups:        %s\nkey:           %s %s\nsecond factor: %s\nserver time:   %s\n",
		kind, se.name, strings.Join(se.groups, ","), se.key.Type(), ssh.FingerprintSHA256(se.key), factor,
		se.s.o.Now().UTC().Format(time.RFC3339))
	return nil
}

// enrollTOTP enrolls a TOTP second factor with an admin's one-time code,
// through the authority (which applies policy.MayEnrollTOTP and audits).
func (se *session) enrollTOTP(stdout, stderr io.Writer, args []string) error {
	fs, _ := flagSet("totp-enroll")
	if err := fs.Parse(args); err != nil {
		return &usageError{"totp-enroll: " + err.Error()}
	}
	if fs.NArg() != 1 {
		return &usageError{"totp-enroll: give the one enrollment code: totp-enroll CODE"}
	}
	ctx, cancel := se.ctx()
	defer cancel()
	c := se.caller()
	secret, err := se.s.o.Authority.EnrollTOTP(ctx, se.s.o.Users, c, fs.Arg(0), map[string]string{"request_id": newRequestID(), "door": "ssh", "source": se.src})
	if err != nil {
		if errors.Is(err, ca.ErrAlreadyEnrolled) {
			return errors.New("TOTP is already enrolled for " + se.who() + "; an admin resets it with: sshca totp reset " + c.FactorID())
		}
		return publicError(err)
	}
	fmt.Fprintln(stdout, totp.URI(secret, "sshca", c.FactorID()))
	fmt.Fprintln(stderr, "TOTP enrolled: add the otpauth URI above to your authenticator app; it is shown only now")
	return nil
}
