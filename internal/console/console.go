// Package console is sshca's admin console: server-rendered HTML pages of
// the CA's state under /ui/ of `sshca serve` — the certificate inventory
// and one certificate's page with its Revoke action, revocation and the
// fleet, CA key generations, API tokens and TOTP enrollments, and the
// audit log with its chain status and an hourly chart.
//
// Admins sign in with a one-time login link made on the CA host (`sshca
// console link --user NAME`); a session is an in-memory record behind a
// Secure, HttpOnly, SameSite=Strict cookie with idle and absolute expiry,
// and every state change carries the session's CSRF token. Whether the
// signed-in person may use the console is the policy's decision
// (policy.MayAdministerConsole), asked on every request; revocations go
// through the ca package exactly as the CLI's do and are audited there.
//
// The pages use no script and load nothing from outside the binary: the
// Content-Security-Policy allows only the console's own style sheet. The
// console never signs certificates and never shows a secret twice.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// Store is what the console reads and changes.
type Store interface {
	store.ServiceStore
	store.ConsoleStore
}

// Options configure a Console.
type Options struct {
	Config *config.Config // Service.Console must be set
	Store  store.ServiceStore
	Logger *slog.Logger
	Now    func() time.Time
	// SSO, when set, offers single sign-on through the identity provider
	// beside login links.
	SSO *SSO
}

// Console serves the admin console.
type Console struct {
	cfg      *config.Config
	admins   policy.ConsoleAdmins
	st       Store
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	chain    chainVerifier
	revoked  revokedFPCache
	sso      *SSO
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css
var styleSheet []byte

// New returns the console of o.Config's service.console.
func New(o Options) (*Console, error) {
	if o.Config == nil || o.Config.Service == nil || o.Config.Service.Console == nil {
		return nil, errors.New("console: service.console is not configured")
	}
	st, ok := o.Store.(Store)
	if !ok {
		return nil, fmt.Errorf("console: store %T has no console queries", o.Store)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cc := o.Config.Service.Console
	c := &Console{cfg: o.Config, admins: cc.Admins, st: st, log: o.Logger, now: o.Now,
		sessions: newSessions(cc.IdleOrDefault(), cc.MaxOrDefault()), sso: o.SSO}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	return c, nil
}

// ServeHTTP serves the console's pages; s is mounted at Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing but the console's own style sheet, and no script at all.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ui/static/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(styleSheet)
	})
	m.HandleFunc("GET /ui/login", c.loginPage)
	m.HandleFunc("POST /ui/login", c.login)
	if c.sso != nil {
		m.HandleFunc("GET /ui/oidc/start", c.ssoStart)
		m.HandleFunc("GET /ui/oidc/callback", c.ssoCallback)
	}
	m.HandleFunc("POST /ui/logout", c.admin(c.logout))
	m.HandleFunc("GET /ui/{$}", c.admin(func(w http.ResponseWriter, r *http.Request, s *session) error {
		http.Redirect(w, r, "/ui/certs", http.StatusSeeOther)
		return nil
	}))
	m.HandleFunc("GET /ui/certs", c.admin(c.certsPage))
	m.HandleFunc("GET /ui/certs/{serial}", c.admin(c.certPage))
	m.HandleFunc("POST /ui/certs/{serial}/revoke", c.admin(c.revoke))
	m.HandleFunc("GET /ui/fleet", c.admin(c.fleetPage))
	m.HandleFunc("GET /ui/keys", c.admin(c.keysPage))
	m.HandleFunc("GET /ui/tokens", c.admin(c.tokensPage))
	m.HandleFunc("POST /ui/tokens", c.admin(c.createToken))
	m.HandleFunc("POST /ui/tokens/{id}/revoke", c.admin(c.revokeToken))
	m.HandleFunc("POST /ui/totp/reset", c.admin(c.resetTOTP))
	m.HandleFunc("GET /ui/audit", c.admin(c.auditPage))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, &pageError{status: http.StatusNotFound, msg: "No such page."})
	})
	c.mux = m
}

// pageError is an error shown to the admin with a status.
type pageError struct {
	status int
	msg    string // public
	err    error  // logged only
}

func (e *pageError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *pageError) Unwrap() error { return e.err }

func badInput(format string, a ...any) error {
	return &pageError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

// caller is the policy's view of a session.
func (s *session) caller() policy.Caller {
	return policy.Caller{Kind: policy.CallerConsole, Identity: policy.Identity{User: s.user, Groups: s.groups}, AuthTime: s.created}
}

type adminHandler func(w http.ResponseWriter, r *http.Request, s *session) error

// admin wraps h: a session is required, the policy must let its person
// administer through the console, and a POST must carry the session's
// CSRF token and come from the console's own origin.
func (c *Console) admin(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r, c.now())
		if s == nil {
			c.fail(w, r, nil, &pageError{status: http.StatusUnauthorized,
				msg: "Not signed in, or the session ended. Sign in with a login link: run `sshca console link --user NAME` on the CA host."})
			return
		}
		if r.Method == http.MethodPost {
			if err := checkPost(r, s); err != nil {
				c.audit(r.Context(), s, "denied", "console request refused: "+err.Error(), nil)
				c.fail(w, r, s, &pageError{status: http.StatusForbidden, msg: "Request refused: " + err.Error() + ". Reload the page and try again."})
				return
			}
		}
		if err := policy.MayAdministerConsole(s.caller(), c.admins); err != nil {
			if r.Method == http.MethodPost {
				c.audit(r.Context(), s, "denied", ruleOf(err)+": "+err.Error(), nil)
			}
			c.fail(w, r, s, &pageError{status: http.StatusForbidden, msg: "Forbidden: " + strings.TrimPrefix(err.Error(), "policy: "), err: err})
			return
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	}
}

func ruleOf(err error) string {
	var de *policy.DenyError
	if errors.As(err, &de) {
		return de.Rule
	}
	return "error"
}

// checkPost refuses a state change without the session's CSRF token or
// from another origin.
func checkPost(r *http.Request, s *session) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errors.New("cross-origin request")
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return errors.New("cross-site request")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return errors.New("unreadable form")
	}
	tok := r.PostForm.Get("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}

// audit records a console event (sign-ins, refusals, TOTP resets) as the
// CLI records its own: action admin.
func (c *Console) audit(ctx context.Context, s *session, outcome, reason string, details map[string]string) {
	actor := "unauthenticated"
	if s != nil {
		actor = s.caller().Actor()
	}
	ev := audit.Entry{Time: c.now(), Actor: actor, Action: audit.ActionAdmin, Outcome: outcome, Reason: oneLine(reason), Details: details}
	if _, err := c.st.Append(ctx, ev); err != nil {
		c.log.Error("console: audit", "error", err.Error())
	}
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}

// fail renders err as an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status, msg := http.StatusInternalServerError, "Internal error; the service log has the details."
	var pe *pageError
	switch {
	case errors.As(err, &pe):
		status, msg = pe.status, pe.msg
	case errors.Is(err, store.ErrNotFound):
		status, msg = http.StatusNotFound, "Not found."
	}
	if status >= 500 {
		c.log.Error("console", "path", r.URL.Path, "error", err.Error())
	} else if err != nil {
		c.log.Info("console", "path", r.URL.Path, "status", status, "error", err.Error())
	}
	c.render(w, s, status, "error", "Error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg,
		"SSO": c.sso != nil && (status == http.StatusUnauthorized || status == http.StatusForbidden) && s == nil})
}

// view is what the layout needs besides the page's data.
type view struct {
	Refresh bool // go on to the certificates at once (after single sign-on)
	Title   string
	Nav     string
	User    string
	CSRF    string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, s *session, status int, page, title string, data any) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "no such template", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Nav: page, Data: data, Refresh: page == "signedin"}
	if s != nil {
		v.User, v.CSRF = s.user, s.csrf
	}
	if m, ok := data.(map[string]any); ok {
		m["CSRF"] = v.CSRF // the forms of a page's content
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.log.Error("console: render", "page", page, "error", err.Error())
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, visibleControls(b.String()))
}

// visibleControls shows the control characters that stored text may hold
// (key IDs and reasons from any door, a restored dump) as the Unicode
// control pictures (␀, ␇, ␛, ␡), and C1 controls and bidirectional
// overrides as U+FFFD, so that a page never carries them: html/template
// escapes markup but passes them through.
func visibleControls(s string) string {
	if !strings.ContainsFunc(s, hiddenRune) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			return r
		case r < 0x20:
			return 0x2400 + r
		case r == 0x7f:
			return 0x2421
		case hiddenRune(r):
			return utf8.RuneError
		}
		return r
	}, s)
}

func hiddenRune(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || (r >= 0x7f && r <= 0x9f) ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join":    strings.Join,
	"add":     func(a, b int) int { return a + b },
	"details": detailsOf,
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"error", "login", "signedin", "certs", "cert", "fleet", "keys", "tokens", "audit"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}
