package policy

import "slices"

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
