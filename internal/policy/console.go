package policy

import (
	"slices"
	"time"
)

// CallerConsole is a person signed in to the admin console (sshca serve's
// /ui/), through a one-time login link made on the CA host or through the
// identity provider. A console session obtains no certificates: Decide
// refuses it (unknown-caller); what it may do is MayAdministerConsole's.
const CallerConsole = "console"

// ConsoleAdmins names who may use the admin console: sshca.yaml's
// service.console.admins. Users are matched against the signed-in name
// (the --user of a login link, or the identity provider's user claim),
// groups against the identity provider's groups.
type ConsoleAdmins struct {
	Users  []string `yaml:"users,omitempty"`
	Groups []string `yaml:"groups,omitempty"`
}

// MayAdministerConsole decides whether c, signed in to the admin console,
// may read the CA's state and change it (revoke, manage tokens, reset
// TOTP): only a console caller named in admins, by user or by group. It is
// the console's one access rule, asked on every request.
func MayAdministerConsole(c Caller, admins ConsoleAdmins) error {
	if c.Kind != CallerConsole {
		return deny(RuleAdminOnly, "the console needs a console session")
	}
	if c.User != "" && slices.Contains(admins.Users, c.User) {
		return nil
	}
	for _, g := range c.Groups {
		if slices.Contains(admins.Groups, g) {
			return nil
		}
	}
	return deny(RuleAdminOnly, "%s is not a console admin (service.console.admins)", quote(c.User))
}

// TokenConsoleLink is the kind of a one-time login link to the console
// (`sshca console link --user NAME`, made on the CA host); its Principals
// hold the user name it signs in.
const TokenConsoleLink = "console-link"

// RuleLoginLink refuses a console login link that is not (or no longer) one.
const RuleLoginLink = "login-link"

// MayUseLoginLink decides whether link signs a person in to the console
// now: a login link, neither revoked, used nor expired, naming one user.
// Whether that user may then do anything is MayAdministerConsole's.
func MayUseLoginLink(link *Token, now time.Time) error {
	switch {
	case link == nil || link.Kind != TokenConsoleLink || len(link.Principals) != 1:
		return deny(RuleLoginLink, "this is not a console login link")
	case !link.RevokedAt.IsZero():
		return deny(RuleLoginLink, "this login link was revoked")
	case !link.UsedAt.IsZero():
		return deny(RuleLoginLink, "this login link was already used")
	case !now.Before(link.ExpiresAt):
		return deny(RuleLoginLink, "this login link expired at %s", link.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
