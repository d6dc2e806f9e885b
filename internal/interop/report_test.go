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
	// dirHostWild is a host certificate whose principal is a pattern
	// (127.0.0.*), issued only for a role with wildcard_principals: OpenSSH
	// 10.3 and later match it, older clients compare names exactly.
	dirHostWild = "host-wildcard"
)

// serverGo names the in-process Go server in cell keys; sshd servers are
// named by their OpenSSH release (opensshtest.Flavour.Name).
const serverGo = "go"

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

// dirLabel describes a cell's direction, with its server, in prose.
func dirLabel(k cellKey) string {
	switch k.Dir {
	case dirUser:
		return "user certificates to " + k.Server + " sshd"
	case dirServer:
		return "user certificates to the Go server"
	case dirKeyFile:
		return "subject keys in OpenSSH format"
	case dirHost:
		return "host certificates presented by " + k.Server + " sshd"
	case dirHostName:
		return "a host certificate for another name"
	case dirHostWild:
		return "a host certificate with a wildcard principal"
	}
	return k.Dir
}

// cellKey names one cell of the matrix. Server is the sshd release the
// client connects to (or serverGo); Subject is the user key's type, and in
// the host directions the (fixed) type of the sshd host key.
type cellKey struct {
	Dir, Server, CA, Subject, Client string
}

func (k cellKey) String() string {
	return k.Dir + "/" + k.Server + "/" + k.CA + "/" + k.Subject + "/" + k.Client
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
	sshds       []string          // sshd releases (Flavour.Name), the system's first
	servers     map[string]string // sshd release or serverGo -> version
	caTypes     []string
	subjects    []string
	hostKeyType string
	hostTrust   map[string]string // client -> how it was told to trust the host CA
	pemClients  []string          // clients given RSA and ECDSA keys in PEM format
	keyFileCA   string            // CA key type of the keyfile and the other single-row host cells
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

// systemSSHD is the first sshd, the system's: keyfile and host-wrong-name
// cells log in to it.
func (r *report) systemSSHD() string { return r.sshds[0] }

// latestSSHD is the newest sshd, which presents the wildcard certificate.
func (r *report) latestSSHD() string { return r.sshds[len(r.sshds)-1] }

// orderedCells lists every cell in table order: user (per sshd), server,
// keyfile, host (per sshd), host-wrong-name, host-wildcard; rows by CA key
// type and subject; columns by client.
func (r *report) orderedCells() []cellKey {
	var out []cellKey
	servers := append(append([]string(nil), r.sshds...), serverGo)
	for _, srv := range servers {
		dir := dirUser
		if srv == serverGo {
			dir = dirServer
		}
		for _, ca := range r.caTypes {
			for _, subj := range r.subjects {
				for _, c := range r.clients {
					out = append(out, cellKey{dir, srv, ca, subj, c})
				}
			}
		}
	}
	for _, subj := range r.subjects {
		for _, c := range r.clients {
			out = append(out, cellKey{dirKeyFile, r.systemSSHD(), r.keyFileCA, subj, c})
		}
	}
	for _, srv := range r.sshds {
		for _, ca := range r.caTypes {
			for _, c := range r.clients {
				out = append(out, cellKey{dirHost, srv, ca, r.hostKeyType, c})
			}
		}
	}
	for _, c := range r.clients {
		out = append(out, cellKey{dirHostName, r.systemSSHD(), r.keyFileCA, r.hostKeyType, c})
	}
	for _, c := range r.clients {
		out = append(out, cellKey{dirHostWild, r.latestSSHD(), r.keyFileCA, r.hostKeyType, c})
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
	keys := func(dir, srv, ca, subj string) []cellKey {
		out := make([]cellKey, len(r.clients))
		for i, c := range r.clients {
			out[i] = cellKey{dir, srv, ca, subj, c}
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
	p("\nServers:\n\n")
	for _, srv := range r.sshds {
		p("- %s: OpenSSH sshd %s\n", srv, mdEscape(r.servers[srv]))
	}
	p("- %s: Go x/crypto/ssh server %s, authenticating with `interop.Authenticator`\n", serverGo, mdEscape(r.servers[serverGo]))
	p("  (`ssh.CertChecker` plus an sshca KRL, refusing SHA-1 signatures and empty principal lists).\n\n")
	p("Each OpenSSH release is a client column and a server: the same certificates log in to every sshd.\n\n")

	userTable := func(dir, srv string) {
		header("CA key type", "subject key")
		for _, ca := range r.caTypes {
			for _, subj := range r.subjects {
				row(ca+" | "+subj, keys(dir, srv, ca, subj))
			}
		}
		p("\n")
	}
	for i, srv := range r.sshds {
		p("## User certificates, login to OpenSSH sshd %s\n\n", strings.TrimPrefix(srv, "openssh-"))
		if i == 0 {
			p("One sshd trusts every user CA (`TrustedUserCAKeys`) and maps the certificate's principal to the login\n")
			p("account (`AuthorizedPrincipalsFile`); the client presents the subject key with its certificate.\n")
			p("Subject keys are in the OpenSSH format that `ssh-keygen` writes by default")
			if len(r.pemClients) > 0 {
				p(", except that %s got its RSA and ECDSA keys in PEM format (`ssh-keygen -m PEM`), which it can\n", strings.Join(r.pemClients, " and "))
				p("read: see [Subject key files](#subject-key-files-in-openssh-format)")
			}
			p(".\n\n")
		} else {
			p("The same certificates and keys, logging in to %s's sshd, configured the same way.\n\n", srv)
		}
		userTable(dirUser, srv)
	}

	p("## User certificates, login to a Go x/crypto/ssh server\n\n")
	p("The server direction: the same certificates and keys, presented to an in-process `golang.org/x/crypto/ssh`\n")
	p("server that accepts them through `interop.Authenticator`.\n\n")
	userTable(dirServer, serverGo)

	p("## Subject key files in OpenSSH format\n\n")
	p("Whether the client can use each subject key as `ssh-keygen` writes it by default (OpenSSH format), with a\n")
	p("certificate from the %s CA, logging in to sshd. This is about the client's key loading, not about\n", r.keyFileCA)
	p("certificates. For a client that got OpenSSH-format keys in the tables above, a cell here is the\n")
	p("`%s` CA row of the first table (sshd %s).\n\n", r.keyFileCA, r.systemSSHD())
	header("subject key")
	for _, subj := range r.subjects {
		row(subj, keys(dirKeyFile, r.systemSSHD(), r.keyFileCA, subj))
	}
	p("\n")

	p("## Host certificates\n\n")
	p("For each OpenSSH release and CA key type an sshd presents its %s host key with a host certificate from\n", r.hostKeyType)
	p("that host CA (principals %s); the client trusts only the CA, never the host key itself, and logs in\n", strings.Join(quoteAll(hostPrincipals()), ", "))
	p("with an ed25519 user certificate from the ed25519 user CA. How each client was told to trust the CA:\n\n")
	for _, c := range r.clients {
		p("- %s: %s\n", c, r.hostTrust[c])
	}
	p("\n")
	header("sshd", "host CA key type")
	for _, srv := range r.sshds {
		for _, ca := range r.caTypes {
			row(srv+" | "+ca, keys(dirHost, srv, ca, r.hostKeyType))
		}
	}
	p("\nA host certificate that names another host must be refused. Here sshd %s presents a certificate from the\n", r.systemSSHD())
	p("trusted %s host CA whose only principal is `localhost`, and the client connects to `127.0.0.1`;\n", r.keyFileCA)
	p("\"refuses\" is right, \"accepts\" means the client does not check host certificate principals.\n\n")
	header("host CA key type")
	row(r.keyFileCA, keys(dirHostName, r.systemSSHD(), r.keyFileCA, r.hostKeyType))
	p("\n")

	p("## Host certificates with a wildcard principal\n\n")
	p("sshca issues a host certificate whose principal is a pattern only for a host role with\n")
	p("`wildcard_principals: true` (see the README). Here sshd %s presents a certificate from the trusted\n", r.latestSSHD())
	p("%s host CA whose only principal is `%s`, and the client connects to `127.0.0.1`. OpenSSH 10.3 and\n", r.keyFileCA, wildcardPrincipal)
	p("later match host certificate principals as patterns, so \"works\" is what they should do; a client that\n")
	p("compares principals exactly fails, which is why the role must opt in and why every client of such a\n")
	p("fleet must be OpenSSH 10.3 or later.\n\n")
	header("host CA key type")
	row(r.keyFileCA, keys(dirHostWild, r.latestSSHD(), r.keyFileCA, r.hostKeyType))
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
	// A user-certificate failure that happens with every CA key type is
	// about the subject key, not the CA: it gets a line of its own.
	type subjectFailure struct{ client, label, subject string }
	bySubject := map[subjectFailure]int{}
	for _, k := range r.orderedCells() {
		if o, ok := r.outcomes[k]; ok && o.Status == statusFails && (k.Dir == dirUser || k.Dir == dirServer) {
			bySubject[subjectFailure{k.Client, dirLabel(k), k.Subject}]++
		}
	}
	subjectWide := func(k cellKey) bool {
		return (k.Dir == dirUser || k.Dir == dirServer) && bySubject[subjectFailure{k.Client, dirLabel(k), k.Subject}] == len(r.caTypes)
	}
	lacking := map[string][]string{} // client -> features, for every CA
	for _, ca := range r.caTypes {
		failing := map[string][]string{} // client -> directions
		for _, k := range r.orderedCells() {
			o, ok := r.outcomes[k]
			// Key files are not about the CA; wrong-name and wildcard
			// host certificates are about checking, not about the key
			// type.
			if k.CA != ca || !ok || good(o.Status) || k.Dir == dirKeyFile || k.Dir == dirHostName || k.Dir == dirHostWild || subjectWide(k) {
				continue
			}
			label := dirLabel(k)
			if k.Dir == dirHost {
				label = "host certificates" // whichever sshd presents them
			}
			if o.Status == statusUnsupported {
				if !slices.Contains(lacking[k.Client], label) {
					lacking[k.Client] = append(lacking[k.Client], label)
				}
				continue
			}
			if !slices.Contains(failing[k.Client], label) {
				failing[k.Client] = append(failing[k.Client], label)
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
	var subjLines []string
	for f, n := range bySubject {
		if n == len(r.caTypes) {
			subjLines = append(subjLines, fmt.Sprintf("- Whatever the CA key type, %s fails with %s subject keys in %s.\n", f.client, f.subject, f.label))
		}
	}
	sort.Strings(subjLines)
	for _, l := range subjLines {
		b.WriteString(l)
	}
	for _, c := range r.clients {
		if o, ok := r.outcomes[cellKey{dirHostName, r.systemSSHD(), r.keyFileCA, r.hostKeyType, c}]; ok && o.Status == statusAccepts {
			fmt.Fprintf(&b, "- Whatever the CA key type, %s accepts a host certificate that names another host.\n", c)
		}
	}
	var wildOK, wildNot []string
	for _, c := range r.clients {
		o, ok := r.outcomes[cellKey{dirHostWild, r.latestSSHD(), r.keyFileCA, r.hostKeyType, c}]
		switch {
		case !ok:
		case o.Status == statusWorks:
			wildOK = append(wildOK, c)
		default:
			wildNot = append(wildNot, c)
		}
	}
	if len(wildOK)+len(wildNot) > 0 {
		fmt.Fprintf(&b, "- A host certificate with a wildcard principal (a role with `wildcard_principals: true`) works with %s and not with %s.\n",
			orNone(wildOK), orNone(wildNot))
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
		label, item := dirLabel(k), "CA "+k.CA+" × subject "+k.Subject
		switch k.Dir {
		case dirKeyFile:
			item = k.Subject
		case dirHost, dirHostName, dirHostWild:
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

// orNone joins names with commas, or says "none".
func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
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
