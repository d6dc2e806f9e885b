package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// keyRow is one CA key generation on the timeline.
type keyRow struct {
	store.CAKey
	LastExpiry  time.Time // of what it signed
	RetireAfter time.Time // retiring keys: the earliest time `ca retire` allows
}

type keyType struct {
	Type     string
	Keys     []keyRow
	Commands []string // what to run next, on the CA host
}

func (c *Console) keysPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	grace := c.cfg.RetireGraceOrDefault()
	var types []keyType
	for _, t := range []string{"user", "host"} {
		keys, err := c.st.ListCAKeys(ctx, t)
		if err != nil {
			return err
		}
		kt := keyType{Type: t}
		states := map[string]int{}
		for _, k := range keys {
			row := keyRow{CAKey: k}
			// Only a retiring key needs it (its earliest retire date); the
			// walk down the expiry index is short for a recently active key.
			if k.State == store.StateRetiring {
				if row.LastExpiry, err = c.st.LastExpiry(ctx, t, k.Fingerprint); err != nil {
					return err
				}
			}
			if k.State == store.StateRetiring {
				row.RetireAfter = row.LastExpiry.Add(grace)
			}
			kt.Keys = append(kt.Keys, row)
			states[k.State]++
		}
		slices.Reverse(kt.Keys) // newest generation first
		switch {
		case states[store.StateNext] > 0:
			kt.Commands = append(kt.Commands, "sshca ca rotate --type "+t+" --promote    # once every server trusts the next key (see Fleet)")
		case states[store.StateRetiring] == 0:
			kt.Commands = append(kt.Commands, "sshca ca rotate --type "+t+"    # publish a next key; servers pick it up with sshca sync")
		}
		for _, k := range kt.Keys {
			if k.State == store.StateRetiring {
				kt.Commands = append(kt.Commands, fmt.Sprintf("sshca ca retire --type %s %d    # after %s, when all it signed has expired (sshca serve does this by itself)",
					t, k.Generation, k.RetireAfter.UTC().Format(time.RFC3339)))
			}
		}
		types = append(types, kt)
	}
	c.render(w, s, http.StatusOK, "keys", "CA keys", map[string]any{"Types": types, "Now": c.now(), "Grace": grace})
	return nil
}

// tokenRow is one API token as the tokens page shows it.
type tokenRow struct {
	store.Token
	Status string
}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.renderTokens(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderTokens(w http.ResponseWriter, r *http.Request, s *session, status int, extra map[string]any) error {
	toks, err := c.st.ListTokens(r.Context())
	if err != nil {
		return err
	}
	now := c.now()
	show := r.URL.Query().Get("show")
	var rows []tokenRow
	for _, t := range toks {
		st := t.Status(now)
		if show != "all" && st != "active" {
			continue
		}
		rows = append(rows, tokenRow{Token: t, Status: st})
	}
	var roles []string
	for name, role := range c.cfg.Roles {
		if role != nil && role.Type == policy.UserCert {
			roles = append(roles, name)
		}
	}
	slices.Sort(roles)
	users, err := c.st.ListLocalUsers(r.Context())
	if err != nil {
		return err
	}
	data := map[string]any{"Tokens": rows, "Roles": roles, "ShowAll": show == "all", "Done": r.URL.Query().Get("done"), "Users": users}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, s, status, "tokens", "Tokens and people", data)
	return nil
}

// tokenTTLs are the lifetimes offered for a new token.
var tokenTTLs = map[string]time.Duration{"1h": time.Hour, "1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour}

// createToken makes a role or admin API token as `sshca token create`
// does, and shows its secret on the response page, once.
func (c *Console) createToken(w http.ResponseWriter, r *http.Request, s *session) error {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	kind := r.PostForm.Get("kind")
	ttl, ok := tokenTTLs[r.PostForm.Get("ttl")]
	if !ok {
		return badInput("Choose a lifetime.")
	}
	if err := policy.ValidPrincipal(name); err != nil || len(name) > 64 {
		return badInput("The name must be 1-64 characters without spaces, commas or wildcards.")
	}
	var roles []string
	switch kind {
	case store.TokenAdmin:
	case store.TokenRole:
		roles = r.PostForm["role"]
		if len(roles) == 0 {
			return badInput("A role token needs at least one role.")
		}
		for _, rn := range roles {
			role, ok := c.cfg.Roles[rn]
			if !ok || role == nil || role.Type != policy.UserCert {
				return badInput("Role tokens obtain user certificates: choose user roles of sshca.yaml.")
			}
		}
	default:
		return badInput("Choose a kind of token.")
	}
	now := c.now()
	actor := s.caller().Actor()
	secret, tok, err := ca.NewToken(name, kind, roles, nil, actor, now, ttl)
	if err != nil {
		return err
	}
	ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionToken, Outcome: "ok", Reason: "token created",
		Details: map[string]string{"token": tok.ID, "name": name, "kind": kind, "roles": strings.Join(roles, ","), "principals": "",
			"expires": tok.ExpiresAt.UTC().Format(time.RFC3339)}}
	if err := c.st.CreateToken(r.Context(), tok, ev); err != nil {
		if errors.Is(err, store.ErrExists) {
			return badInput("A token with this name exists; choose another name or revoke the old one first.")
		}
		return err
	}
	return c.renderTokens(w, r, s, http.StatusOK, map[string]any{"Secret": secret, "SecretName": name})
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if len(id) != 16 {
		return &pageError{status: http.StatusNotFound, msg: "No such token."}
	}
	now := c.now()
	ev := audit.Entry{Time: now, Actor: s.caller().Actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked",
		Details: map[string]string{"token": id}}
	if err := c.st.RevokeToken(r.Context(), id, now, ev); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &pageError{status: http.StatusNotFound, msg: "No such token.", err: err}
		}
		return err
	}
	http.Redirect(w, r, "/ui/tokens?done=revoked", http.StatusSeeOther)
	return nil
}

// resetTOTP removes a person's TOTP enrollment as `sshca totp reset`
// does, so that they can enroll again.
func (c *Console) resetTOTP(w http.ResponseWriter, r *http.Request, s *session) error {
	user := strings.TrimSpace(r.PostForm.Get("user"))
	why := strings.TrimSpace(r.PostForm.Get("reason"))
	if user == "" || len(user) > 256 || !utf8.ValidString(user) {
		return badInput("Name the user whose TOTP enrollment to reset.")
	}
	if why == "" || len(why) > 1024 || strings.ContainsFunc(why, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return badInput("A reason (one line) is required.")
	}
	ev := audit.Entry{Time: c.now(), Actor: s.caller().Actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp reset",
		Details: map[string]string{"user": user, "why": why}}
	if err := c.st.DeleteTOTP(r.Context(), user, ev); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return badInput("This user has no TOTP enrollment.")
		}
		return err
	}
	http.Redirect(w, r, "/ui/tokens?done=totp-reset", http.StatusSeeOther)
	return nil
}
