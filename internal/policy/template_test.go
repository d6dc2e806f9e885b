package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpandTemplate(t *testing.T) {
	alice := Identity{User: "alice", Groups: []string{"dev", "ops", "dev"}}
	tests := []struct {
		name    string
		tmpl    string
		id      Identity
		want    []string
		wantErr string
	}{
		{name: "ok/literal", tmpl: "role-deploy", id: alice, want: []string{"role-deploy"}},
		{name: "ok/literal-zero-identity", tmpl: "ops", want: []string{"ops"}},
		{name: "ok/user", tmpl: "{{.User}}", id: alice, want: []string{"alice"}},
		{name: "ok/user-spaces", tmpl: "{{ .User }}", id: alice, want: []string{"alice"}},
		{name: "ok/prefix-suffix", tmpl: "u-{{.User}}-x", id: alice, want: []string{"u-alice-x"}},
		{name: "ok/user-twice", tmpl: "{{.User}}.{{.User}}", id: alice, want: []string{"alice.alice"}},
		{name: "ok/groups-deduplicated", tmpl: "grp-{{.Groups}}", id: alice, want: []string{"grp-dev", "grp-ops"}},
		{name: "ok/user-and-groups", tmpl: "{{.User}}@{{.Groups}}", id: alice, want: []string{"alice@dev", "alice@ops"}},
		{name: "ok/no-groups", tmpl: "{{.Groups}}", id: Identity{User: "bob"}, want: []string{}},
		{name: "ok/placeholder-text-in-value-not-reexpanded", tmpl: "{{.User}}", id: Identity{User: "{{x"}, want: []string{"{{x"}},
		{name: "fail/no-user", tmpl: "u-{{.User}}", wantErr: `policy: principal template "u-{{.User}}" needs a user name`},
		{name: "fail/unknown-field", tmpl: "{{.Env}}", id: alice, wantErr: `policy: invalid principal template "{{.Env}}": unknown placeholder "{{.Env}}" (only {{.User}} and {{.Groups}})`},
		{name: "fail/function-call", tmpl: `{{printf "%s" .User}}`, id: alice, wantErr: `policy: invalid principal template "{{printf \"%s\" .User}}": unknown placeholder "{{printf \"%s\" .User}}" (only {{.User}} and {{.Groups}})`},
		{name: "fail/unclosed", tmpl: "{{.User", id: alice, wantErr: `policy: invalid principal template "{{.User": "{{" without "}}"`},
		{name: "fail/stray-close", tmpl: "a}}", id: alice, wantErr: `policy: invalid principal template "a}}": "}}" without "{{"`},
		{name: "fail/groups-twice", tmpl: "{{.Groups}}-{{.Groups}}", id: alice, wantErr: `policy: invalid principal template "{{.Groups}}-{{.Groups}}": {{.Groups}} may appear only once`},
		{name: "fail/user-with-space", tmpl: "{{.User}}", id: Identity{User: "a b"}, wantErr: `policy: principal template "{{.User}}" expands to invalid principal "a b": contains whitespace`},
		{name: "fail/group-with-comma", tmpl: "g-{{.Groups}}", id: Identity{Groups: []string{"ok", "a,root"}}, wantErr: `policy: principal template "g-{{.Groups}}" expands to invalid principal "g-a,root": contains a comma`},
		{name: "fail/empty-group", tmpl: "g-{{.Groups}}", id: Identity{Groups: []string{""}}, wantErr: `policy: principal template "g-{{.Groups}}": empty group name`},
		{name: "fail/literal-wildcard", tmpl: "*", id: alice, wantErr: `policy: invalid principal "*": contains a wildcard`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandTemplate(tt.tmpl, tt.id)
			if tt.wantErr != "" {
				var de *DenyError
				if !errors.As(err, &de) || de.Rule != RuleBadPrincipal {
					t.Fatalf("ExpandTemplate() = %q, %v; want bad-principal", got, err)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("Error() = %q\nwant      %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ExpandTemplate() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpandTemplate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidTemplate(t *testing.T) {
	tests := []struct {
		name, tmpl, wantErr string
	}{
		{name: "ok/literal", tmpl: "ci"},
		{name: "ok/user", tmpl: "{{.User}}"},
		{name: "ok/groups-prefix", tmpl: "grp-{{ .Groups }}"},
		{name: "fail/literal-space", tmpl: "a b", wantErr: `policy: invalid principal "a b": contains whitespace`},
		{name: "fail/template-literal-comma", tmpl: "a,{{.User}}", wantErr: `policy: invalid principal template "a,{{.User}}": contains a comma`},
		{name: "fail/unknown", tmpl: "{{.Name}}", wantErr: `policy: invalid principal template "{{.Name}}": unknown placeholder "{{.Name}}" (only {{.User}} and {{.Groups}})`},
		{name: "fail/empty-braces", tmpl: "{{}}", wantErr: `policy: invalid principal template "{{}}": unknown placeholder "{{}}" (only {{.User}} and {{.Groups}})`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidTemplate(tt.tmpl)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("ValidTemplate(%q) = %q, want %q", tt.tmpl, got, tt.wantErr)
			}
		})
	}
}

// TestTemplateSplitUTF8 checks that halves of a UTF-8 sequence in the
// literal parts, or in a literal and an identity value, never combine into
// a valid principal.
func TestTemplateSplitUTF8(t *testing.T) {
	for _, tmpl := range []string{"\xcd{{.User}}\xbb", "\xcd{{.User}}"} {
		if err := ValidTemplate(tmpl); err == nil {
			t.Errorf("ValidTemplate(%q) accepted invalid UTF-8", tmpl)
		}
		if got, err := ExpandTemplate(tmpl, Identity{User: "\xbb"}); err == nil {
			t.Errorf("ExpandTemplate(%q) = %q, want an error", tmpl, got)
		}
	}
}
