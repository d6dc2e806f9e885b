package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Login links.
const (
	DefaultLinkTTL = 10 * time.Minute
	MaxLinkTTL     = 24 * time.Hour
)

// NewLoginLink records a one-time login link for user, made by actor (the
// admin at the CA host), valid for ttl, and returns its URL under base
// (https://host:port). Only a hash of its secret is stored; the link is
// shown once.
func NewLoginLink(ctx context.Context, st store.ServiceStore, base, user, actor string, now time.Time, ttl time.Duration) (string, store.Token, error) {
	if err := policy.ValidPrincipal(user); err != nil {
		return "", store.Token{}, fmt.Errorf("console link: user %q: %w", user, err)
	}
	if ttl <= 0 || ttl > MaxLinkTTL {
		return "", store.Token{}, fmt.Errorf("console link: lifetime must be between 1s and %v", MaxLinkTTL)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", store.Token{}, fmt.Errorf("console link: %q is not a base URL such as https://ca.example.com:8443", base)
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return "", store.Token{}, err
	}
	name := fmt.Sprintf("console-link-%x", nb)
	secret, tok, err := ca.NewToken(name, policy.TokenConsoleLink, nil, []string{user}, actor, now, ttl)
	if err != nil {
		return "", store.Token{}, err
	}
	ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionToken, Outcome: "ok", Reason: "token created",
		Details: map[string]string{"token": tok.ID, "name": name, "kind": tok.Kind, "principals": user,
			"expires": tok.ExpiresAt.UTC().Format(time.RFC3339)}}
	if err := st.CreateToken(ctx, tok, ev); err != nil {
		return "", store.Token{}, err
	}
	return "https://" + u.Host + "/ui/login?" + url.Values{"t": {secret}}.Encode(), tok, nil
}

// loginPage shows the sign-in button of a login link. A GET never spends
// the link (link previewers and prefetchers send GETs); the button's POST
// does.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	if _, _, err := ca.SplitToken(tok); err != nil {
		c.fail(w, r, nil, &pageError{status: http.StatusBadRequest, msg: "This is not a login link. Run `sshca console link --user NAME` on the CA host for one."})
		return
	}
	c.render(w, nil, http.StatusOK, "login", "Sign in", map[string]string{"Token": tok})
}

// login spends a login link and starts a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, nil, badInput("Unreadable form."))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			c.fail(w, r, nil, &pageError{status: http.StatusForbidden, msg: "Cross-origin sign-in refused."})
			return
		}
	}
	now := c.now()
	user, err := c.spendLink(r.Context(), r.PostForm.Get("t"), now)
	if err != nil {
		var de *policy.DenyError
		msg := "This login link is not valid."
		if errors.As(err, &de) {
			msg = "Sign-in refused: " + strings.TrimPrefix(de.Error(), "policy: ") + ". Run `sshca console link --user NAME` on the CA host for a new one."
		}
		c.audit(r.Context(), nil, "denied", "console sign-in refused: "+err.Error(), nil)
		c.fail(w, r, nil, &pageError{status: http.StatusForbidden, msg: msg, err: err})
		return
	}
	s := c.sessions.start(w, user, nil, now)
	c.audit(r.Context(), s, "ok", "console sign-in with a login link", nil)
	http.Redirect(w, r, "/ui/certs", http.StatusSeeOther)
}

// spendLink checks a login link's secret and the policy's rule, then marks
// it used; a link used concurrently is refused by the store.
func (c *Console) spendLink(ctx context.Context, cred string, now time.Time) (string, error) {
	id, secret, err := ca.SplitToken(cred)
	if err != nil {
		return "", err
	}
	t, err := c.st.GetToken(ctx, id)
	if err != nil {
		return "", err
	}
	if !ca.TokenSecretMatches(t, secret) {
		return "", errors.New("wrong secret")
	}
	if err := policy.MayUseLoginLink(ca.PolicyToken(t), now); err != nil {
		return "", err
	}
	user := t.Principals[0]
	ev := audit.Entry{Time: now, Actor: "console:" + user, Action: audit.ActionToken, Outcome: "ok", Reason: "console login link used",
		Details: map[string]string{"token": t.ID, "name": t.Name}}
	if err := c.st.ConsumeToken(ctx, t.ID, now, ev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", policy.MayUseLoginLink(&policy.Token{Kind: policy.TokenConsoleLink, Principals: t.Principals, UsedAt: now, ExpiresAt: t.ExpiresAt}, now)
		}
		return "", err
	}
	return user, nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	c.sessions.end(w, r)
	c.audit(r.Context(), s, "ok", "console sign-out", nil)
	c.render(w, nil, http.StatusOK, "error", "Signed out", map[string]any{"Status": 0, "Message": "Signed out."})
	return nil
}
