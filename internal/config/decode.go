package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sshca/sshca/internal/policy"
)

// maxNodes bounds the nodes visited while checking a document, aliases
// expanded, so that an alias bomb fails instead of running for ever.
const maxNodes = 100_000

// parse decodes data into a Config with defaults filled in, or returns
// the problems found, each without the "config: " prefix.
//
// The yaml library's own strict mode (KnownFields) reports unknown keys
// with line numbers only and stops at the first one, so the node tree is
// first checked against the Config type here, giving the dotted path of
// every problem. The checked document is then decoded with KnownFields as
// a second line of defence.
func parse(data []byte) (*Config, []error) {
	if len(data) > maxFileSize {
		return nil, []error{fmt.Errorf("file larger than %d bytes", maxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []error{errors.New("empty file: expected a mapping with backdate and roles")}
		}
		return nil, []error{err}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []error{err}
	default:
		return nil, []error{fmt.Errorf("line %d: more than one YAML document", next.Line)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, []error{errors.New("empty file: expected a mapping with backdate and roles")}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []error{fmt.Errorf("line %d: top level must be a mapping with backdate and roles, not %s", root.Line, kindName(root))}
	}

	w := &walker{budget: maxNodes}
	w.walk(root, reflect.TypeFor[Config](), "")
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	if w.rewrote {
		// Durations of policy types (time.Duration) were rewritten in Go
		// syntax; decode the checked tree.
		var err error
		if data, err = yaml.Marshal(&doc); err != nil {
			return nil, []error{err}
		}
	}

	c := Default()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil {
		return nil, []error{err}
	}
	if c.Roles == nil {
		c.Roles = map[string]*policy.Role{}
	}
	if errs := roleDefaults(root, c); len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// roleDefaults applies what depends on whether a key was written at all:
// an omitted default_ttl is max_ttl, and a written force_command must not
// be empty.
func roleDefaults(root *yaml.Node, c *Config) []error {
	var errs []error
	roles := lookup(root, "roles")
	if roles == nil || roles.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(roles.Content); i += 2 {
		name := roles.Content[i].Value
		r := c.Roles[name]
		role := resolve(roles.Content[i+1])
		if r == nil || role == nil {
			continue
		}
		if lookup(role, "default_ttl") == nil {
			r.DefaultTTL = r.MaxTTL
		}
		if fc := lookup(role, "force_command"); fc != nil && r.ForceCommand == "" {
			errs = append(errs, &FieldError{Path: "roles." + pathKey(name) + ".force_command", Line: fc.Line,
				Msg: "must not be empty when present; omit it to allow any command"})
		}
	}
	return errs
}

// lookup returns the value of key in mapping m, aliases resolved, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// walker checks a node tree against a Go type, collecting FieldErrors.
type walker struct {
	errs    []error
	budget  int
	rewrote bool // a time.Duration value was rewritten in Go syntax
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			w.fail(n, path, "document too large or too deeply aliased")
		}
		return
	}
	line := n
	if n = resolve(n); n == nil {
		w.fail(line, path, "unresolvable alias")
		return
	}

	if n.Style&yaml.TaggedStyle != 0 {
		// Tags change how a value decodes (!!binary turns base64 into
		// bytes); a policy file has no use for them.
		w.fail(n, path, "explicit YAML tag %s not supported", quote(n.Tag))
		return
	}

	if t == reflect.TypeFor[Duration]() {
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, `must be a duration such as "8h", not %s`, kindName(n))
			return
		}
		if _, why := parseDuration(n.Value); why != "" {
			w.fail(n, path, "%s", why)
		}
		return
	}

	if t == reflect.TypeFor[time.Duration]() {
		// Fields of policy types are time.Duration, which the yaml library
		// reads in Go syntax only: check the value, then write it so ("7d"
		// becomes "168h0m0s").
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, `must be a duration such as "8h", not %s`, kindName(n))
			return
		}
		d, why := parseDuration(n.Value)
		if why != "" {
			w.fail(n, path, "%s", why)
			return
		}
		n.Value, n.Tag, n.Style = d.String(), "!!str", 0
		w.rewrote = true
		return
	}
	if t == reflect.TypeFor[policy.CertType]() {
		var ct policy.CertType
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || ct.UnmarshalText([]byte(n.Value)) != nil {
			w.fail(n, path, `must be "user" or "host"`)
		}
		return
	}

	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping, not %s", kindName(n))
			return
		}
		fields := yamlFields(t)
		w.mapping(n, path, func(k, v *yaml.Node, p string) {
			ft, ok := fields[k.Value]
			if !ok {
				w.fail(k, p, "unknown field")
				return
			}
			w.walk(v, ft, p)
		})
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "must be a mapping, not %s", kindName(n))
			return
		}
		w.mapping(n, path, func(_, v *yaml.Node, p string) { w.walk(v, t.Elem(), p) })
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "must be a list, not %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "must be a string, not %s", kindName(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			w.fail(n, path, "must be a whole number, not %s", kindName(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.fail(n, path, "must be true or false, not %s", kindName(n))
		}
	default:
		w.fail(n, path, "internal error: no rule for Go type %s", t)
	}
}

// mapping calls each for every key of n, refusing non-string, duplicate
// and merge keys.
func (w *walker) mapping(n *yaml.Node, path string, each func(k, v *yaml.Node, p string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			w.fail(k, path, "keys must be strings, not %s", kindName(k))
			continue
		}
		if k.Style&yaml.TaggedStyle != 0 {
			w.fail(k, path, "explicit YAML tag %s not supported", quote(k.Tag))
			continue
		}
		p := pathKey(k.Value)
		if path != "" {
			p = path + "." + p
		}
		if k.ShortTag() == "!!merge" {
			w.fail(k, p, "merge keys (<<) are not supported")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.fail(k, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, v, p)
	}
}

// yamlFields maps the YAML names of t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names the kind of n for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("the value %s", quote(n.Value))
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}
