package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/sshca/sshca/internal/policy"
)

const (
	hour  = time.Hour
	weekD = 7 * 24 * time.Hour
)

// exampleConfig is what Parse(Example) must return.
func exampleConfig() *Config {
	return &Config{
		Backdate: Duration(5 * time.Minute),
		Roles: map[string]*policy.Role{
			"deploy": {
				Type:          policy.UserCert,
				Principals:    []string{"role-deploy", "ci"},
				DefaultTTL:    8 * hour,
				MaxTTL:        12 * hour,
				Extensions:    []string{"permit-pty", "permit-port-forwarding"},
				SourceAddress: []string{"10.0.0.0/8", "192.168.0.0/16"},
			},
			"rsync": {
				Type:         policy.UserCert,
				Principals:   []string{"role-rsync"},
				DefaultTTL:   48 * hour,
				MaxTTL:       48 * hour,
				ForceCommand: "/usr/local/bin/rsync-wrapper",
				Extensions:   []string{},
			},
			"servers": {
				Type:       policy.HostCert,
				Principals: []string{"*.corp", "10.0.1.0/24"},
				DefaultTTL: 52 * weekD,
				MaxTTL:     52 * weekD,
			},
		},
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Config
		wantErr string // exact Error() of the joined errors
	}{
		{name: "ok/example", in: Example, want: exampleConfig()},
		{name: "ok/empty-roles", in: "roles: {}\n", want: Default()},
		{name: "ok/null-roles-backdate-zero", in: "backdate: 0\nroles:\n", want: &Config{Roles: map[string]*policy.Role{}}},
		{name: "ok/only-backdate", in: "backdate: 90s\n", want: &Config{Backdate: Duration(90 * time.Second), Roles: map[string]*policy.Role{}}},
		{
			name: "ok/default-ttl-omitted-is-max-ttl-and-aliases",
			in:   "roles:\n  a: &r\n    type: user\n    principals: &p [x, \"{{.User}}\"]\n    max_ttl: 1w2d\n  b: *r\n  \"123\":\n    type: user\n    principals: *p\n    max_ttl: \"90m\"\n    default_ttl: 1h\n",
			want: &Config{Backdate: Duration(5 * time.Minute), Roles: map[string]*policy.Role{
				"a":   {Type: policy.UserCert, Principals: []string{"x", "{{.User}}"}, MaxTTL: weekD + 48*hour, DefaultTTL: weekD + 48*hour},
				"b":   {Type: policy.UserCert, Principals: []string{"x", "{{.User}}"}, MaxTTL: weekD + 48*hour, DefaultTTL: weekD + 48*hour},
				"123": {Type: policy.UserCert, Principals: []string{"x", "{{.User}}"}, MaxTTL: 90 * time.Minute, DefaultTTL: time.Hour},
			}},
		},
		{
			name:    "fail/unknown-role-key",
			in:      "roles:\n  deploy:\n    type: user\n    max_tl: 8h\n",
			wantErr: "config: roles.deploy.max_tl: unknown field (line 4)",
		},
		{
			name:    "fail/unknown-top-level-key",
			in:      "backdate: 5m\nrole: {}\n",
			wantErr: "config: role: unknown field (line 2)",
		},
		{
			name:    "fail/bad-duration",
			in:      "roles:\n  x:\n    type: user\n    max_ttl: 8x\n",
			wantErr: `config: roles.x.max_ttl: invalid duration "8x" (line 4)`,
		},
		{
			name:    "fail/overflowing-duration",
			in:      "roles:\n  x:\n    max_ttl: 999999999w\n",
			wantErr: `config: roles.x.max_ttl: invalid duration "999999999w": too large (line 3)`,
		},
		{
			name:    "fail/negative-backdate",
			in:      "backdate: -5m\n",
			wantErr: `config: backdate: invalid duration "-5m": negative (line 1)`,
		},
		{
			name:    "fail/null-duration",
			in:      "backdate:\n",
			wantErr: `config: backdate: invalid duration "" (line 1)`,
		},
		{
			name:    "fail/number-without-unit",
			in:      "backdate: 300\n",
			wantErr: `config: backdate: invalid duration "300": missing unit (e.g. 90m, 8h, 7d) (line 1)`,
		},
		{
			name:    "fail/duration-list",
			in:      "backdate: [5m]\n",
			wantErr: `config: backdate: must be a duration such as "8h", not a list (line 1)`,
		},
		{
			name: "fail/several-problems-all-reported",
			in:   "roles:\n  deploy:\n    type: user\n    max_tl: 8h\n    principals: ci\n    extensions: {a: b}\n    force_command: [a]\n",
			wantErr: "config: roles.deploy.max_tl: unknown field (line 4)\n" +
				`config: roles.deploy.principals: must be a list, not the value "ci" (line 5)` + "\n" +
				"config: roles.deploy.extensions: must be a list, not a mapping (line 6)\n" +
				"config: roles.deploy.force_command: must be a string, not a list (line 7)",
		},
		{
			name:    "fail/duplicate-key",
			in:      "roles:\n  x:\n    type: user\n    type: host\n",
			wantErr: "config: roles.x.type: duplicate key (first at line 3) (line 4)",
		},
		{
			name:    "fail/duplicate-role",
			in:      "roles:\n  x: {type: user}\n  x: {type: host}\n",
			wantErr: "config: roles.x: duplicate key (first at line 2) (line 3)",
		},
		{
			name:    "fail/duplicate-top-level",
			in:      "backdate: 1m\nbackdate: 2m\n",
			wantErr: "config: backdate: duplicate key (first at line 1) (line 2)",
		},
		{
			name:    "fail/merge-key",
			in:      "base: &b {type: user}\nroles:\n  x:\n    <<: *b\n",
			wantErr: "config: base: unknown field (line 1)\nconfig: roles.x.\"<<\": merge keys (<<) are not supported (line 4)",
		},
		{
			name:    "fail/roles-list",
			in:      "roles: [deploy]\n",
			wantErr: "config: roles: must be a mapping, not a list (line 1)",
		},
		{
			name:    "fail/role-null",
			in:      "roles:\n  deploy:\n",
			wantErr: "config: roles.deploy: must be a mapping, not null (line 2)",
		},
		{
			name:    "fail/role-key-not-scalar",
			in:      "roles:\n  ? [a]\n  : {type: user}\n",
			wantErr: "config: roles: keys must be strings, not a list (line 2)",
		},
		{
			name:    "fail/role-key-null",
			in:      "roles:\n  ~: {type: user}\n",
			wantErr: "config: roles: keys must be strings, not null (line 2)",
		},
		{
			name:    "fail/odd-role-name-quoted-in-path",
			in:      "roles:\n  \"a b\":\n    typ: user\n",
			wantErr: `config: roles."a b".typ: unknown field (line 3)`,
		},
		{
			name:    "fail/empty-force-command",
			in:      "roles:\n  x:\n    type: user\n    force_command: \"\"\n",
			wantErr: "config: roles.x.force_command: must not be empty when present; omit it to allow any command (line 4)",
		},
		{
			name:    "fail/multiple-documents",
			in:      "backdate: 5m\n---\nroles: {}\n",
			wantErr: "config: line 2: more than one YAML document",
		},
		{
			name:    "fail/empty-file",
			in:      "",
			wantErr: "config: empty file: expected a mapping with backdate and roles",
		},
		{
			name:    "fail/only-comments",
			in:      "# nothing\n",
			wantErr: "config: empty file: expected a mapping with backdate and roles",
		},
		{
			name:    "fail/top-level-list",
			in:      "- roles\n",
			wantErr: "config: line 1: top level must be a mapping with backdate and roles, not a list",
		},
		{
			name:    "fail/top-level-scalar",
			in:      "roles\n",
			wantErr: `config: line 1: top level must be a mapping with backdate and roles, not the value "roles"`,
		},
		{
			name:    "fail/yaml-syntax",
			in:      "roles: [\n",
			wantErr: "config: yaml: line 1: did not find expected node content",
		},
		{
			name:    "fail/tab-indentation",
			in:      "roles:\n\tx: {}\n",
			wantErr: "config: yaml: line 2: found character that cannot start any token",
		},
		{
			name:    "fail/binary-tag",
			in:      "database: !!binary aGVsbG8=\n",
			wantErr: `config: database: explicit YAML tag "!!binary" not supported (line 1)`,
		},
		{
			name:    "fail/custom-tag",
			in:      "roles:\n  x:\n    type: !foo user\n",
			wantErr: `config: roles.x.type: explicit YAML tag "!foo" not supported (line 3)`,
		},
		{
			name:    "fail/tagged-key",
			in:      "roles:\n  !!str x: {}\n",
			wantErr: `config: roles: explicit YAML tag "!!str" not supported (line 2)`,
		},
		{
			name:    "fail/too-large",
			in:      "# " + strings.Repeat("x", maxFileSize) + "\n",
			wantErr: "config: file larger than 1048576 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse() = %+v, want error %q", got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("Parse() error:\n%s\nwant:\n%s", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Parse() returned a config with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseAliasBomb checks that aliases cannot make the checker visit
// more than maxNodes nodes: 300 roles each naming a list of 1000
// principals through one alias would be 300,000.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("roles:\n  r0: {type: user, max_ttl: 1h, principals: &p [")
	for i := range 1000 {
		fmt.Fprintf(&b, "p%d, ", i)
	}
	b.WriteString("x]}\n")
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&b, "  r%d: {type: user, max_ttl: 1h, principals: *p}\n", i)
	}
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "document too large or too deeply aliased") {
		t.Fatalf("Parse() error = %v", err)
	}
	if n := strings.Count(err.Error(), "\n"); n != 0 {
		t.Errorf("Parse() reported %d extra errors", n)
	}
}

func TestParseErrorsAreFieldErrors(t *testing.T) {
	_, err := Parse([]byte("roles:\n  deploy:\n    max_tl: 8h\n"))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v holds no *FieldError", err)
	}
	want := &FieldError{Path: "roles.deploy.max_tl", Line: 3, Msg: "unknown field"}
	if diff := cmp.Diff(want, fe); diff != "" {
		t.Errorf("FieldError mismatch (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string // exact Error(); "" for valid
	}{
		{name: "ok/example", edit: func(*Config) {}},
		{name: "ok/no-roles", edit: func(c *Config) { c.Roles = nil }},
		{name: "ok/backdate-zero", edit: func(c *Config) { c.Backdate = 0 }},
		{name: "ok/backdate-1h", edit: func(c *Config) { c.Backdate = Duration(hour) }},
		{name: "ok/default-equals-max", edit: func(c *Config) { c.Roles["deploy"].DefaultTTL = 12 * hour }},
		{name: "ok/templates", edit: func(c *Config) {
			c.Roles["deploy"].Principals = []string{"{{.User}}", "grp-{{ .Groups }}", "ci"}
		}},
		{name: "ok/vendor-extension-and-all-known", edit: func(c *Config) {
			c.Roles["deploy"].Extensions = []string{"login@github.com", "no-touch-required", "permit-X11-forwarding",
				"permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"}
		}},
		{name: "ok/ipv6-and-single-addresses", edit: func(c *Config) {
			c.Roles["deploy"].SourceAddress = []string{"2001:db8::/32", "10.1.2.3", "::1"}
		}},
		{name: "ok/host-patterns", edit: func(c *Config) {
			c.Roles["servers"].Principals = []string{"app-??.corp", "*", "2001:db8::/48", "10.0.0.5", "_x.corp"}
		}},
		{name: "ok/wildcard-principals", edit: func(c *Config) { c.Roles["servers"].WildcardPrincipals = true }},
		{name: "fail/wildcard-principals-user-role", edit: func(c *Config) { c.Roles["deploy"].WildcardPrincipals = true },
			wantErr: "roles.deploy.wildcard_principals: only for host roles"},
		{name: "fail/wildcard-principals-without-glob", edit: func(c *Config) {
			c.Roles["servers"].WildcardPrincipals = true
			c.Roles["servers"].Principals = []string{"10.0.1.0/24", "db.corp"}
		}, wantErr: `roles.servers.wildcard_principals: needs a host-name glob in principals (such as "*.corp") for the wildcard principals to lie inside`},
		{name: "ok/role-names", edit: func(c *Config) {
			c.Roles["0"] = c.Roles["rsync"]
			c.Roles["a_b-c"+strings.Repeat("x", 59)] = c.Roles["rsync"]
		}},
		{name: "ok/database", edit: func(c *Config) {
			c.Database = "postgres://sshca@db.example.com:5432/sshca?sslmode=verify-full&passfile=/etc/sshca/pgpass"
		}},
		{name: "fail/max-ttl-zero", edit: func(c *Config) { c.Roles["deploy"].MaxTTL = 0 },
			wantErr: "roles.deploy.max_ttl: must be > 0"},
		{name: "fail/default-above-max", edit: func(c *Config) { c.Roles["deploy"].DefaultTTL = 12*hour + 1 },
			wantErr: "roles.deploy.default_ttl: must not exceed max_ttl (12h)"},
		{name: "fail/default-zero", edit: func(c *Config) { c.Roles["deploy"].DefaultTTL = 0 },
			wantErr: "roles.deploy.default_ttl: must be > 0"},
		{name: "fail/negative-ttls", edit: func(c *Config) { c.Roles["rsync"].MaxTTL, c.Roles["rsync"].DefaultTTL = -1, -1 },
			wantErr: "roles.rsync.max_ttl: must be > 0"},
		{name: "fail/negative-default", edit: func(c *Config) { c.Roles["rsync"].DefaultTTL = -1 },
			wantErr: "roles.rsync.default_ttl: must be > 0"},
		{name: "fail/type", edit: func(c *Config) { c.Roles["deploy"].Type = 7 },
			wantErr: `roles.deploy.type: must be "user" or "host"`},
		{name: "fail/type-missing", edit: func(c *Config) { c.Roles["deploy"].Type = 0 },
			wantErr: `roles.deploy.type: must be "user" or "host"`},
		{name: "fail/role-name-upper", edit: func(c *Config) { c.Roles["Deploy"] = c.Roles["deploy"] },
			wantErr: "roles.Deploy: invalid role name: use 1 to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit"},
		{name: "fail/role-name-leading-dash", edit: func(c *Config) { c.Roles["-x"] = c.Roles["deploy"] },
			wantErr: "roles.-x: invalid role name: use 1 to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit"},
		{name: "fail/role-name-dot", edit: func(c *Config) { c.Roles["a.b"] = c.Roles["deploy"] },
			wantErr: `roles."a.b": invalid role name: use 1 to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit`},
		{name: "fail/role-name-65", edit: func(c *Config) { c.Roles[strings.Repeat("a", 65)] = c.Roles["deploy"] },
			wantErr: "roles." + strings.Repeat("a", 65) + ": invalid role name: use 1 to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit"},
		{name: "fail/role-nil", edit: func(c *Config) { c.Roles["x"] = nil },
			wantErr: "roles.x: missing role definition"},
		{name: "fail/principals-empty", edit: func(c *Config) { c.Roles["deploy"].Principals = nil },
			wantErr: "roles.deploy.principals: must not be empty"},
		{name: "fail/principal-space", edit: func(c *Config) { c.Roles["deploy"].Principals = []string{"ci", "a b"} },
			wantErr: `roles.deploy.principals[1]: invalid principal "a b": contains whitespace`},
		{name: "fail/principal-wildcard-in-user-role", edit: func(c *Config) { c.Roles["deploy"].Principals = []string{"*"} },
			wantErr: `roles.deploy.principals[0]: invalid principal "*": contains a wildcard`},
		{name: "fail/principal-template-field", edit: func(c *Config) { c.Roles["deploy"].Principals = []string{"{{.Email}}"} },
			wantErr: `roles.deploy.principals[0]: invalid principal template "{{.Email}}": unknown placeholder "{{.Email}}" (only {{.User}} and {{.Groups}})`},
		{name: "fail/principal-duplicate", edit: func(c *Config) { c.Roles["deploy"].Principals = []string{"ci", "x", "ci"} },
			wantErr: "roles.deploy.principals[2]: duplicate of principals[0]"},
		{name: "fail/user-principals-257", edit: func(c *Config) {
			ps := make([]string, 257)
			for i := range ps {
				ps[i] = fmt.Sprintf("p%d", i)
			}
			c.Roles["deploy"].Principals = ps
		}, wantErr: "roles.deploy.principals: has 257 entries; a certificate holds at most 256"},
		{name: "fail/host-pattern-host-bits", edit: func(c *Config) { c.Roles["servers"].Principals = []string{"10.0.1.1/24"} },
			wantErr: `roles.servers.principals[0]: invalid host pattern "10.0.1.1/24": host bits set (network is 10.0.1.0/24)`},
		{name: "fail/host-pattern-negation", edit: func(c *Config) { c.Roles["servers"].Principals = []string{"!x.corp"} },
			wantErr: `roles.servers.principals[0]: invalid host pattern "!x.corp": host patterns use letters, digits, '.', '-', '_', '*' and '?', not '!'`},
		{name: "fail/host-role-user-only-fields", edit: func(c *Config) {
			s := c.Roles["servers"]
			s.Extensions, s.SourceAddress, s.ForceCommand = []string{"permit-pty"}, []string{"10.0.0.0/8"}, "/bin/true"
		}, wantErr: "roles.servers.extensions: not allowed for host roles\n" +
			"roles.servers.source_address: not allowed for host roles (ssh refuses host certificates with critical options)\n" +
			"roles.servers.force_command: not allowed for host roles (ssh refuses host certificates with critical options)"},
		{name: "fail/extension-unknown", edit: func(c *Config) { c.Roles["deploy"].Extensions = []string{"permit-ptty"} },
			wantErr: `roles.deploy.extensions[0]: unknown extension "permit-ptty" (OpenSSH defines no-touch-required, permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc; vendor extensions look like name@example.com)`},
		{name: "fail/extension-case", edit: func(c *Config) { c.Roles["deploy"].Extensions = []string{"permit-x11-forwarding"} },
			wantErr: `roles.deploy.extensions[0]: unknown extension "permit-x11-forwarding"; did you mean "permit-X11-forwarding"?`},
		{name: "fail/extension-duplicate", edit: func(c *Config) { c.Roles["deploy"].Extensions = []string{"permit-pty", "permit-pty"} },
			wantErr: "roles.deploy.extensions[1]: duplicate of extensions[0]"},
		{name: "fail/extension-bad-vendor", edit: func(c *Config) { c.Roles["deploy"].Extensions = []string{"@example.com", "a b@c"} },
			wantErr: `roles.deploy.extensions[0]: unknown extension "@example.com" (OpenSSH defines no-touch-required, permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc; vendor extensions look like name@example.com)` + "\n" +
				`roles.deploy.extensions[1]: unknown extension "a b@c" (OpenSSH defines no-touch-required, permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc; vendor extensions look like name@example.com)`},
		{name: "fail/source-address-host-bits", edit: func(c *Config) { c.Roles["deploy"].SourceAddress = []string{"10.0.0.1/8"} },
			wantErr: `roles.deploy.source_address[0]: invalid source address "10.0.0.1/8": host bits set (network is 10.0.0.0/8)`},
		{name: "fail/source-address-name", edit: func(c *Config) { c.Roles["deploy"].SourceAddress = []string{"gw.corp"} },
			wantErr: `roles.deploy.source_address[0]: invalid source address "gw.corp": not an IP address or CIDR prefix`},
		{name: "fail/source-address-duplicate", edit: func(c *Config) { c.Roles["deploy"].SourceAddress = []string{"::1", "::1"} },
			wantErr: "roles.deploy.source_address[1]: duplicate of source_address[0]"},
		{name: "fail/force-command-newline", edit: func(c *Config) { c.Roles["rsync"].ForceCommand = "a\nb" },
			wantErr: "roles.rsync.force_command: must not contain NUL or line breaks"},
		{name: "fail/backdate-too-large", edit: func(c *Config) { c.Backdate = Duration(hour + 1) },
			wantErr: "backdate: must be at most 1h"},
		{name: "fail/backdate-negative", edit: func(c *Config) { c.Backdate = -1 },
			wantErr: "backdate: must be >= 0"},
		{name: "fail/database-scheme", edit: func(c *Config) { c.Database = "mysql://db/sshca" },
			wantErr: "database: must be a postgres:// URL"},
		{name: "fail/database-password", edit: func(c *Config) { c.Database = "postgresql://sshca:hunter2@db/sshca" },
			wantErr: "database: must not contain a password; put it in a passfile (passfile=... or PGPASSFILE)"},
		{name: "fail/database-password-param", edit: func(c *Config) { c.Database = "postgres://db/sshca?password=hunter2" },
			wantErr: "database: must not contain a password; put it in a passfile (passfile=... or PGPASSFILE)"},
		{name: "fail/sorted-by-role", edit: func(c *Config) {
			c.Roles["servers"].MaxTTL = 0
			c.Roles["deploy"].MaxTTL = 0
		}, wantErr: "roles.deploy.max_ttl: must be > 0\nroles.servers.max_ttl: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := exampleConfig()
			tt.edit(c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("Validate() error:\n%s\nwant:\n%s", got, tt.wantErr)
			}
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Path == "" {
					t.Errorf("Validate() error %v holds no *FieldError", err)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", Example)
	parseErr := write("unknown.yaml", "roles:\n  deploy:\n    max_tl: 8h\n    typo: 1\n")
	invalid := write("invalid.yaml", "roles:\n  deploy:\n    type: user\n    principals: [ci]\n    max_ttl: 0s\n")
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "ok/example", path: good},
		{name: "fail/parse-errors-name-the-file", path: parseErr,
			wantErr: "config: " + parseErr + ": roles.deploy.max_tl: unknown field (line 3)\nconfig: " + parseErr + ": roles.deploy.typo: unknown field (line 4)"},
		{name: "fail/validate-errors-name-the-file", path: invalid,
			wantErr: "config: " + invalid + ": roles.deploy.max_ttl: must be > 0"},
		{name: "fail/missing-file", path: filepath.Join(dir, "nope.yaml"),
			wantErr: "config: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(exampleConfig(), c); diff != "" {
					t.Errorf("Load() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Load() error:\n%v\nwant:\n%s", err, tt.wantErr)
			}
		})
	}
	t.Run("fail/missing-file-is-not-exist", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.yaml"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load() error %v is not os.ErrNotExist", err)
		}
	})
}

func TestExampleValidates(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestExampleEveryKeyCommented checks that each key of Example carries a
// comment, on its own line above or at the end of its line.
func TestExampleEveryKeyCommented(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(Example), &doc); err != nil {
		t.Fatal(err)
	}
	var check func(n *yaml.Node, path string)
	check = func(n *yaml.Node, path string) {
		if n.Kind == yaml.DocumentNode {
			for _, c := range n.Content {
				check(c, path)
			}
			return
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := strings.TrimPrefix(path+"."+k.Value, ".")
			if k.HeadComment == "" && k.LineComment == "" && v.LineComment == "" {
				t.Errorf("key %s (line %d) has no comment", p, k.Line)
			}
			check(v, p)
		}
	}
	check(&doc, "")
}

func TestPolicyRoles(t *testing.T) {
	c := exampleConfig()
	c.Roles["broken"] = nil
	got := c.PolicyRoles()
	want := map[string]policy.Role{
		"deploy": {
			Name: "deploy", Type: policy.UserCert, Principals: []string{"role-deploy", "ci"},
			DefaultTTL: 8 * time.Hour, MaxTTL: 12 * time.Hour,
			Extensions:    []string{"permit-pty", "permit-port-forwarding"},
			SourceAddress: []string{"10.0.0.0/8", "192.168.0.0/16"},
		},
		"rsync": {
			Name: "rsync", Type: policy.UserCert, Principals: []string{"role-rsync"},
			DefaultTTL: 48 * time.Hour, MaxTTL: 48 * time.Hour, Extensions: []string{},
			ForceCommand: "/usr/local/bin/rsync-wrapper",
		},
		"servers": {
			Name: "servers", Type: policy.HostCert, Principals: []string{"*.corp", "10.0.1.0/24"},
			DefaultTTL: 52 * 7 * 24 * time.Hour, MaxTTL: 52 * 7 * 24 * time.Hour,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PolicyRoles() mismatch (-want +got):\n%s", diff)
	}
	got["deploy"].Principals[0] = "root"
	if c.Roles["deploy"].Principals[0] != "role-deploy" {
		t.Error("PolicyRoles() shares slices with the config")
	}
}

// TestExampleDecide runs the example policy end to end through Decide.
func TestExampleDecide(t *testing.T) {
	c, err := Parse([]byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	roles := c.PolicyRoles()
	tests := []struct {
		name     string
		req      policy.Request
		wantRule string
	}{
		{name: "ok/deploy-default", req: policy.Request{Type: policy.UserCert, Role: "deploy"}},
		{name: "ok/rsync-default-ttl-48h", req: policy.Request{Type: policy.UserCert, Role: "rsync", TTL: 48 * time.Hour}},
		{name: "ok/servers", req: policy.Request{Type: policy.HostCert, Role: "servers", Principals: []string{"web1.corp", "10.0.1.9"}}},
		{name: "fail/deploy-root", req: policy.Request{Type: policy.UserCert, Role: "deploy", Principals: []string{"root"}}, wantRule: policy.RulePrincipalNotAllowed},
		{name: "fail/deploy-13h", req: policy.Request{Type: policy.UserCert, Role: "deploy", TTL: 13 * time.Hour}, wantRule: policy.RuleTTLExceedsMax},
		{name: "fail/servers-outside", req: policy.Request{Type: policy.HostCert, Role: "servers", Principals: []string{"10.0.2.9"}}, wantRule: policy.RuleHostPrincipalNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Decide(roles, policy.Caller{Kind: policy.CallerAdmin}, tt.req)
			var de *policy.DenyError
			switch {
			case tt.wantRule == "" && err != nil:
				t.Fatalf("Decide() error = %v", err)
			case tt.wantRule != "" && (!errors.As(err, &de) || de.Rule != tt.wantRule):
				t.Fatalf("Decide() error = %v, want rule %s", err, tt.wantRule)
			}
		})
	}
}

// TestMarshalRoundTrip checks that a Config written with yaml.Marshal
// (durations through MarshalYAML) parses back to the same value.
func TestMarshalRoundTrip(t *testing.T) {
	want := exampleConfig()
	want.Database = "postgres://db/sshca"
	want.Roles["odd"] = &policy.Role{Type: policy.UserCert, Principals: []string{"x"}, MaxTTL: 90*time.Minute + 1500*time.Millisecond, DefaultTTL: time.Second}
	data, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%s) error = %v", data, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s\n%s", diff, data)
	}
}
