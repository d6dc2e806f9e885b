package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// Directions of a matrix cell.
const (
	dirUser     = "user"            // user certificate, login to OpenSSH sshd
	dirServer   = "server"          // user certificate, login to the Go x/crypto/ssh server
	dirKeyFile  = "keyfile"         // user certificate, subject key in OpenSSH format, login to sshd
	dirHost     = "host"            // host certificate of sshd, verified by the client
	dirHostName = "host-wrong-name" // host certificate for another name: must be refused
)

// Cell statuses, as docs/compatibility.md and testdata/expected.json spell them.
const (
	statusWorks       = "works"
	statusFails       = "fails"
	statusUnsupported = "unsupported"
	statusRefuses     = "refuses" // a certificate that must be refused was refused
	statusAccepts     = "accepts" // ... and was accepted
)

// good reports whether a status is the right behaviour: a test fails when
// a cell expected to be good is not.
func good(status string) bool { return status == statusWorks || status == statusRefuses }

// dirLabel describes a direction in prose.
func dirLabel(dir string) string {
	switch dir {
	case dirUser:
		return "user certificates to sshd"
	case dirServer:
		return "user certificates to the Go server"
	case dirKeyFile:
		return "subject keys in OpenSSH format"
	case dirHost:
		return "host certificates"
	case dirHostName:
		return "a host certificate for another name"
	}
	return dir
}

// cellKey names one cell of the matrix. Subject is the user key's type; in
// the host direction it is the (fixed) type of the sshd host key.
type cellKey struct {
	Dir, CA, Subject, Client string
}

func (k cellKey) String() string {
	return k.Dir + "/" + k.CA + "/" + k.Subject + "/" + k.Client
}

// outcome is what one cell came to; Error is the client's message, set
// whenever Status is not statusWorks.
type outcome struct {
	Status string
	Error  string
}

// report is everything docs/compatibility.md shows.
type report struct {
	clients     []string          // column order
	versions    map[string]string // client -> version
	debs        map[string]string // client -> Debian "package version", if any
	servers     map[string]string // "sshd", "go" -> version
	caTypes     []string
	subjects    []string
	hostKeyType string
	hostTrust   map[string]string // client -> how it was told to trust the host CA
	pemClients  []string          // clients given RSA and ECDSA keys in PEM format
	keyFileCA   string            // CA key type of the keyfile and host-wrong-name cells
	outcomes    map[cellKey]outcome
	guidance    string // hand-written part of the Guidance section
}

// expectations returns the status of every cell, for testdata/expected.json.
func (r *report) expectations() map[string]string {
	m := make(map[string]string, len(r.outcomes))
	for k, o := range r.outcomes {
		m[k.String()] = o.Status
	}
	return m
}

// marshalExpectations renders expectations as stable, diff-friendly JSON.
func marshalExpectations(m map[string]string) []byte {
	b, err := json.MarshalIndent(m, "", "  ") // map keys are sorted
	if err != nil {
		panic(err) // a map[string]string always marshals
	}
	return append(b, '\n')
}

// failure groups the cells one client failed with one message.
type failure struct {
	id      string // "F1"
	client  string
	message string
	status  string
	cells   []cellKey
}

// failures numbers the distinct (client, status, message) triples in the
// order the tables show them.
func (r *report) failures() ([]*failure, map[cellKey]*failure) {
	var list []*failure
	byKey := map[string]*failure{}
	byCell := map[cellKey]*failure{}
	for _, k := range r.orderedCells() {
		o, ok := r.outcomes[k]
		if !ok || good(o.Status) {
			continue
		}
		id := k.Client + "\x00" + o.Status + "\x00" + o.Error
		f := byKey[id]
		if f == nil {
			f = &failure{id: fmt.Sprintf("F%d", len(list)+1), client: k.Client, message: o.Error, status: o.Status}
			byKey[id] = f
			list = append(list, f)
		}
		f.cells = append(f.cells, k)
		byCell[k] = f
	}
	return list, byCell
}

// orderedCells lists every cell in table order: user, server, keyfile,
// host, host-wrong-name; rows by CA key type and subject; columns by client.
func (r *report) orderedCells() []cellKey {
	var out []cellKey
	for _, dir := range []string{dirUser, dirServer} {
		for _, ca := range r.caTypes {
			for _, subj := range r.subjects {
				for _, c := range r.clients {
					out = append(out, cellKey{dir, ca, subj, c})
				}
			}
		}
	}
	for _, subj := range r.subjects {
		for _, c := range r.clients {
			out = append(out, cellKey{dirKeyFile, r.keyFileCA, subj, c})
		}
	}
	for _, ca := range r.caTypes {
		for _, c := range r.clients {
			out = append(out, cellKey{dirHost, ca, r.hostKeyType, c})
		}
	}
	for _, c := range r.clients {
		out = append(out, cellKey{dirHostName, r.keyFileCA, r.hostKeyType, c})
	}
	return out
}

func (r *report) cellText(k cellKey, byCell map[cellKey]*failure) string {
	o, ok := r.outcomes[k]
	if !ok {
		return "not run"
	}
	f := byCell[k]
	if f == nil {
		return o.Status
	}
	return fmt.Sprintf("**%s** ([%s](#%s))", o.Status, f.id, strings.ToLower(f.id))
}

// markdown renders docs/compatibility.md. It depends only on the report,
// never on ports, paths or the time, so that a rerun changes the file only
// when a result changed.
func (r *report) markdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	fails, byCell := r.failures()
	row := func(label string, keys []cellKey) {
		cells := make([]string, len(keys))
		for i, k := range keys {
			cells[i] = r.cellText(k, byCell)
		}
		p("| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	header := func(labels ...string) {
		p("| %s | %s |\n", strings.Join(labels, " | "), strings.Join(r.clients, " | "))
		p("|%s%s\n", strings.Repeat("---|", len(labels)), strings.Repeat("---|", len(r.clients)))
	}
	keys := func(dir, ca, subj string) []cellKey {
		out := make([]cellKey, len(r.clients))
		for i, c := range r.clients {
			out[i] = cellKey{dir, ca, subj, c}
		}
		return out
	}

	p("# Compatibility of sshca certificates with SSH clients\n\n")
	p("> **Generated** by `go test ./internal/interop -update` (or `SSHCA_UPDATE_COMPAT=1 go test ./internal/interop`)\n")
	p("> from real logins on 127.0.0.1; do not edit by hand. `go test ./internal/interop` fails when a cell\n")
	p("> that works here stops working (expectations in `internal/interop/testdata/expected.json`).\n\n")
	p("Every certificate is issued by sshca's own signing path: a CA home made as by `sshca init --key-type T`,\n")
	p("then the authority that `sshca sign` uses (RSA CAs sign with `rsa-sha2-512`, never SHA-1). Each cell is one\n")
	p("login that runs a command; \"works\" means the command's output came back. A cell that is not right links\n")
	p("to the client's own error message and version under [Failures](#failures). Jump to the [Guidance](#guidance).\n\n")

	p("## Versions\n\n| client | version | Debian package |\n|---|---|---|\n")
	for _, c := range r.clients {
		deb := r.debs[c]
		if deb == "" {
			deb = "-"
		}
		p("| %s | %s | %s |\n", c, mdEscape(r.versions[c]), mdEscape(deb))
	}
	p("\nServers: OpenSSH sshd %s; Go x/crypto/ssh server %s, authenticating with `interop.Authenticator`\n", mdEscape(r.servers["sshd"]), mdEscape(r.servers["go"]))
	p("(`ssh.CertChecker` plus an sshca KRL, refusing SHA-1 signatures and empty principal lists).\n\n")

	userTable := func(dir string) {
		header("CA key type", "subject key")
		for _, ca := range r.caTypes {
			for _, subj := range r.subjects {
				row(ca+" | "+subj, keys(dir, ca, subj))
			}
		}
		p("\n")
	}
	p("## User certificates, login to OpenSSH sshd\n\n")
	p("One sshd trusts every user CA (`TrustedUserCAKeys`) and maps the certificate's principal to the login\n")
	p("account (`AuthorizedPrincipalsFile`); the client presents the subject key with its certificate.\n")
	p("Subject keys are in the OpenSSH format that `ssh-keygen` writes by default")
	if len(r.pemClients) > 0 {
		p(", except that %s got its RSA and ECDSA keys in PEM format (`ssh-keygen -m PEM`), which it can\n", strings.Join(r.pemClients, " and "))
		p("read: see [Subject key files](#subject-key-files-in-openssh-format)")
	}
	p(".\n\n")
	userTable(dirUser)

	p("## User certificates, login to a Go x/crypto/ssh server\n\n")
	p("The server direction: the same certificates and keys, presented to an in-process `golang.org/x/crypto/ssh`\n")
	p("server that accepts them through `interop.Authenticator`.\n\n")
	userTable(dirServer)

	p("## Subject key files in OpenSSH format\n\n")
	p("Whether the client can use each subject key as `ssh-keygen` writes it by default (OpenSSH format), with a\n")
	p("certificate from the %s CA, logging in to sshd. This is about the client's key loading, not about\n", r.keyFileCA)
	p("certificates. For a client that got OpenSSH-format keys in the tables above, a cell here is the\n")
	p("`%s` CA row of the first table.\n\n", r.keyFileCA)
	header("subject key")
	for _, subj := range r.subjects {
		row(subj, keys(dirKeyFile, r.keyFileCA, subj))
	}
	p("\n")

	p("## Host certificates\n\n")
	p("For each CA key type an sshd presents its %s host key with a host certificate from that host CA\n", r.hostKeyType)
	p("(principals %s); the client trusts only the CA, never the host key itself, and logs in with an\n", strings.Join(quoteAll(hostPrincipals()), ", "))
	p("ed25519 user certificate from the ed25519 user CA. How each client was told to trust the CA:\n\n")
	for _, c := range r.clients {
		p("- %s: %s\n", c, r.hostTrust[c])
	}
	p("\n")
	header("host CA key type")
	for _, ca := range r.caTypes {
		row(ca, keys(dirHost, ca, r.hostKeyType))
	}
	p("\nA host certificate that names another host must be refused. Here sshd presents a certificate from the\n")
	p("trusted %s host CA whose only principal is `localhost`, and the client connects to `127.0.0.1`;\n", r.keyFileCA)
	p("\"refuses\" is right, \"accepts\" means the client does not check host certificate principals.\n\n")
	header("host CA key type")
	row(r.keyFileCA, keys(dirHostName, r.keyFileCA, r.hostKeyType))
	p("\n")

	p("## Failures\n\n")
	if len(fails) == 0 {
		p("None: every combination works.\n\n")
	}
	for _, f := range fails {
		p("<a id=\"%s\"></a>**%s** — %s — error: `%s`\n\n", strings.ToLower(f.id), f.id, mdEscape(r.clientVersion(f.client)), mdCode(f.message))
		p("%s in: %s.\n\n", capitalize(f.status), describeCells(f.cells))
	}

	p("## Guidance\n\n")
	p("%s\n", strings.TrimSpace(r.guidance))
	if summary := r.clientLimits(); summary != "" {
		p("\nWhat the tables above show, by CA key type (this list is generated):\n\n%s", summary)
	}
	return b.Bytes()
}

// clientVersion names a client with its version and Debian package.
func (r *report) clientVersion(c string) string {
	v := "client " + c + ", version " + r.versions[c]
	if d := r.debs[c]; d != "" {
		v += ", Debian package " + d
	}
	return v
}

// clientLimits summarises, per CA key type, the clients that fail with it,
// then the clients that lack a feature whatever the CA key type.
func (r *report) clientLimits() string {
	var b strings.Builder
	lacking := map[string][]string{} // client -> features, for every CA
	for _, ca := range r.caTypes {
		failing := map[string][]string{} // client -> directions
		for _, k := range r.orderedCells() {
			o, ok := r.outcomes[k]
			// Key files are not about the CA; a wrong-name host
			// certificate is about checking, not about the key type.
			if k.CA != ca || !ok || good(o.Status) || k.Dir == dirKeyFile || k.Dir == dirHostName {
				continue
			}
			if o.Status == statusUnsupported {
				if !slices.Contains(lacking[k.Client], dirLabel(k.Dir)) {
					lacking[k.Client] = append(lacking[k.Client], dirLabel(k.Dir))
				}
				continue
			}
			if !slices.Contains(failing[k.Client], dirLabel(k.Dir)) {
				failing[k.Client] = append(failing[k.Client], dirLabel(k.Dir))
			}
		}
		if len(failing) == 0 {
			fmt.Fprintf(&b, "- `%s`: no client fails.\n", ca)
			continue
		}
		parts := make([]string, 0, len(failing))
		for _, c := range sortedKeys(failing) {
			parts = append(parts, fmt.Sprintf("%s fails with %s", c, strings.Join(failing[c], " and ")))
		}
		fmt.Fprintf(&b, "- `%s`: %s.\n", ca, strings.Join(parts, "; "))
	}
	for _, c := range sortedKeys(lacking) {
		fmt.Fprintf(&b, "- Whatever the CA key type, %s does not support %s.\n", c, strings.Join(lacking[c], " or "))
	}
	for _, c := range r.clients {
		if o, ok := r.outcomes[cellKey{dirHostName, r.keyFileCA, r.hostKeyType, c}]; ok && o.Status == statusAccepts {
			fmt.Fprintf(&b, "- Whatever the CA key type, %s accepts a host certificate that names another host.\n", c)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describeCells lists cells compactly, e.g. "user certificates to sshd:
// CA ecdsa-p384 with subject ed25519, ...".
func describeCells(cells []cellKey) string {
	groups := map[string][]string{}
	var order []string
	for _, k := range cells {
		label, item := dirLabel(k.Dir), "CA "+k.CA+" × subject "+k.Subject
		switch k.Dir {
		case dirKeyFile:
			item = k.Subject
		case dirHost, dirHostName:
			item = "host CA " + k.CA
		}
		if _, ok := groups[label]; !ok {
			order = append(order, label)
		}
		groups[label] = append(groups[label], item)
	}
	parts := make([]string, len(order))
	for i, l := range order {
		parts[i] = l + " (" + strings.Join(groups[l], ", ") + ")"
	}
	return strings.Join(parts, "; ")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// mdEscape keeps table cells intact.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// mdCode makes s safe inside a single-backtick code span.
func mdCode(s string) string { return strings.ReplaceAll(s, "`", "'") }

// readExpectations loads testdata/expected.json; a missing file is empty.
func readExpectations(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
