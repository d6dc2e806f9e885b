package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/policy"
)

// Console turns on the admin console under /ui/ of `sshca serve`
// (docs/console/): server-rendered pages of the CA's state for the people
// named in Admins, who sign in with a one-time link made on the CA host
// (`sshca console link --user NAME`).
type Console struct {
	// Admins may use the console; nobody else gets past its sign-in.
	Admins policy.ConsoleAdmins `yaml:"admins"`
	// IdleTimeout ends a session unused this long (default 30m).
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"`
	// MaxSession ends a session this long after sign-in, used or not
	// (default 12h).
	MaxSession Duration `yaml:"max_session,omitempty"`
	// PublicURL is the service's address as browsers reach it
	// (https://ca.example.com:8443). With an oidc: section it turns on
	// single sign-on to the console: the identity provider must allow the
	// redirect URI PublicURL/ui/oidc/callback for oidc.client_id.
	PublicURL string `yaml:"public_url,omitempty"`
}

// Console defaults and bounds.
const (
	DefaultConsoleIdle = 30 * time.Minute
	DefaultConsoleMax  = 12 * time.Hour
	maxConsoleSession  = 7 * 24 * time.Hour
)

// IdleOrDefault is the idle timeout with its default filled in.
func (c *Console) IdleOrDefault() time.Duration {
	if c.IdleTimeout == 0 {
		return DefaultConsoleIdle
	}
	return time.Duration(c.IdleTimeout)
}

// MaxOrDefault is the absolute session lifetime with its default filled in.
func (c *Console) MaxOrDefault() time.Duration {
	if c.MaxSession == 0 {
		return DefaultConsoleMax
	}
	return time.Duration(c.MaxSession)
}

func validateConsole(v *validator, c *Console) {
	if c == nil {
		return
	}
	if len(c.Admins.Users) == 0 && len(c.Admins.Groups) == 0 {
		v.add("service.console.admins", "name at least one user or group who may use the console")
	}
	for i, u := range c.Admins.Users {
		if err := policy.ValidPrincipal(u); err != nil {
			v.add(fmt.Sprintf("service.console.admins.users[%d]", i), "%s", strings.TrimPrefix(err.Error(), "policy: "))
		}
	}
	if c.IdleTimeout < 0 || time.Duration(c.IdleTimeout) > maxConsoleSession {
		v.add("service.console.idle_timeout", "must be between 0 and 7d")
	}
	if c.MaxSession < 0 || time.Duration(c.MaxSession) > maxConsoleSession {
		v.add("service.console.max_session", "must be between 0 and 7d")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			v.add("service.console.public_url", "must be an https:// base URL such as https://ca.example.com:8443")
		}
	}
	if c.IdleOrDefault() > c.MaxOrDefault() {
		v.add("service.console.idle_timeout", "is longer than max_session")
	}
}
