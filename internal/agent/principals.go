package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sshca/sshca/internal/policy"
)

// principalsHeader opens every principals file the agent writes.
const principalsHeader = "# written by sshca sync; do not edit\n"

// maxAccountLen is the longest account name Linux's useradd allows.
const maxAccountLen = 32

// accountProblem says why a is not an account name the agent will use as a
// file name in its principals directory, or "". Names are POSIX-style
// (letters, digits, '.', '_', '-'), never start with '-' or '.' (so no
// "..", and no collision with the agent's ".NAME.tmp-*" temp files), and
// hold no path separator.
func accountProblem(a string) string {
	switch {
	case a == "":
		return "empty"
	case len(a) > maxAccountLen:
		return fmt.Sprintf("longer than %d bytes", maxAccountLen)
	case a[0] == '-':
		return "starts with '-'"
	case a[0] == '.':
		return "starts with '.'"
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("byte %q is not a letter, digit, '.', '_' or '-'", c)
		}
	}
	return ""
}

// principalProblem says why p cannot be a line of an AuthorizedPrincipalsFile,
// or "": the service policy's own rule (policy.ValidPrincipal: not empty, at
// most 255 bytes of UTF-8, no control or invisible characters, whitespace,
// commas, wildcards or '#', at which sshd cuts a principals line).
func principalProblem(p string) string {
	if err := policy.ValidPrincipal(p); err != nil {
		msg := strings.TrimPrefix(err.Error(), "policy: ")
		if _, why, ok := strings.Cut(msg, ": "); ok {
			return why
		}
		return msg
	}
	return ""
}

// marshalPrincipals validates one account's entry of the service's account
// map and re-serialises it as its principals file: the agent's header, then
// one principal per line, in the service's order, duplicates dropped. Any
// invalid account name or principal refuses the whole file.
func marshalPrincipals(account string, principals []string) ([]byte, error) {
	if why := accountProblem(account); why != "" {
		return nil, fmt.Errorf("invalid account name %s: %s", clip(account), why)
	}
	if len(principals) == 0 {
		return nil, errors.New("no principals")
	}
	var b strings.Builder
	b.WriteString(principalsHeader)
	seen := map[string]bool{}
	for _, p := range principals {
		if why := principalProblem(p); why != "" {
			return nil, fmt.Errorf("invalid principal %s: %s", clip(p), why)
		}
		if !seen[p] {
			seen[p] = true
			b.WriteString(p + "\n")
		}
	}
	return []byte(b.String()), nil
}
