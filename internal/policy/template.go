package policy

import (
	"strings"
)

// A principal template is literal text with placeholders: "{{.User}}" is
// the identity's user name and "{{.Groups}}" stands for each of its groups
// in turn, so "u-{{.User}}" gives one principal and "grp-{{.Groups}}" one
// per group. Spaces inside the braces are allowed ("{{ .User }}").
//
// The substitution is written by hand rather than with text/template so
// that a configuration can reference nothing but these two fields: no
// functions, no method calls, no pipelines.

type placeholder int

const (
	phNone placeholder = iota
	phUser
	phGroups
)

type segment struct {
	lit string      // literal text before the placeholder
	ph  placeholder // phNone only for the last segment
}

// parseTemplate splits t into segments, or says why it is malformed.
func parseTemplate(t string) ([]segment, string) {
	var segs []segment
	groups := 0
	rest := t
	for {
		open := strings.Index(rest, "{{")
		if closeAt := strings.Index(rest, "}}"); closeAt >= 0 && (open < 0 || closeAt < open) {
			return nil, `"}}" without "{{"`
		}
		if open < 0 {
			segs = append(segs, segment{lit: rest})
			break
		}
		end := strings.Index(rest[open+2:], "}}")
		if end < 0 {
			return nil, `"{{" without "}}"`
		}
		var ph placeholder
		switch field := strings.TrimSpace(rest[open+2 : open+2+end]); field {
		case ".User":
			ph = phUser
		case ".Groups":
			ph = phGroups
			groups++
		default:
			return nil, "unknown placeholder " + quote("{{"+field+"}}") + " (only {{.User}} and {{.Groups}})"
		}
		segs = append(segs, segment{lit: rest[:open], ph: ph})
		rest = rest[open+2+end+2:]
	}
	if groups > 1 {
		return nil, "{{.Groups}} may appear only once"
	}
	return segs, ""
}

// isTemplate reports whether t has template syntax at all.
func isTemplate(t string) bool {
	return strings.Contains(t, "{{") || strings.Contains(t, "}}")
}

// ValidTemplate reports whether t is a valid user-role principal: either a
// valid literal principal (see ValidPrincipal) or a well-formed template
// whose literal text is allowed in a principal. It returns nil or a
// *DenyError with rule bad-principal.
func ValidTemplate(t string) error {
	if !isTemplate(t) {
		return ValidPrincipal(t)
	}
	segs, why := parseTemplate(t)
	if why == "" {
		// Each literal part is checked on its own: two invalid halves of a
		// UTF-8 sequence on either side of a placeholder must not pass.
		n := 0
		for _, s := range segs {
			n += len(s.lit)
			if why == "" {
				why = charProblem(s.lit)
			}
		}
		if why == "" && n >= maxPrincipalLen {
			why = "literal text too long"
		}
	}
	if why != "" {
		return deny(RuleBadPrincipal, "invalid principal template %s: %s", quote(t), why)
	}
	return nil
}

// ExpandTemplate expands the principal template tmpl over id. A string
// without placeholders expands to itself. "{{.Groups}}" yields one
// principal per distinct group, so an identity without groups yields none.
// It fails with a *DenyError (rule bad-principal) when tmpl is malformed,
// when it needs a user name or group that id lacks (an empty one), or when
// any result is not a valid principal.
func ExpandTemplate(tmpl string, id Identity) ([]string, error) {
	if !isTemplate(tmpl) {
		if err := ValidPrincipal(tmpl); err != nil {
			return nil, err
		}
		return []string{tmpl}, nil
	}
	// The template as written must be valid on its own: otherwise a literal
	// part (an invalid UTF-8 lead byte, say) could combine with an
	// identity value into a principal nobody wrote.
	if err := ValidTemplate(tmpl); err != nil {
		return nil, err
	}
	segs, why := parseTemplate(tmpl)
	if why != "" {
		return nil, deny(RuleBadPrincipal, "invalid principal template %s: %s", quote(tmpl), why)
	}
	usesGroups := false
	for _, s := range segs {
		switch s.ph {
		case phUser:
			if id.User == "" {
				return nil, deny(RuleBadPrincipal, "principal template %s needs a user name", quote(tmpl))
			}
		case phGroups:
			usesGroups = true
		}
	}
	values := []string{""} // one expansion without groups
	if usesGroups {
		values = dedup(id.Groups)
	}
	out := make([]string, 0, len(values))
	for _, g := range values {
		if usesGroups && g == "" {
			return nil, deny(RuleBadPrincipal, "principal template %s: empty group name", quote(tmpl))
		}
		var b strings.Builder
		for _, s := range segs {
			b.WriteString(s.lit)
			switch s.ph {
			case phUser:
				b.WriteString(id.User)
			case phGroups:
				b.WriteString(g)
			}
		}
		p := b.String()
		if why := principalProblem(p); why != "" {
			return nil, deny(RuleBadPrincipal, "principal template %s expands to invalid principal %s: %s", quote(tmpl), quote(p), why)
		}
		out = append(out, p)
	}
	return dedup(out), nil
}
