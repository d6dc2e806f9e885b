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
	dirUser   = "user"   // user certificate, login to OpenSSH sshd
	dirServer = "server" // user certificate, login to the Go x/crypto/ssh server
	dirHost   = "host"   // host certificate of sshd, verified by the client
)

// Cell statuses, as docs/compatibility.md and testdata/expected.json spell them.
const (
	statusWorks       = "works"
	statusFails       = "fails"
	statusUnsupported = "unsupported"
)

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
	servers     map[string]string // "sshd", "go" -> version
	caTypes     []string
	subjects    []string
	hostKeyType string
	hostTrust   map[string]string // client -> how it was told to trust the host CA
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
		if !ok || o.Status == statusWorks {
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

// orderedCells lists every cell in table order: user, server, host; rows
// by CA key type and subject; columns by client.
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
	for _, ca := range r.caTypes {
		for _, c := range r.clients {
			out = append(out, cellKey{dirHost, ca, r.hostKeyType, c})
		}
	}
	return out
}

func (r *report) cellText(k cellKey, byCell map[cellKey]*failure) string {
	o, ok := r.outcomes[k]
	if !ok {
		return "not run"
	}
	if o.Status == statusWorks {
		return "works"
	}
	f := byCell[k]
	return fmt.Sprintf("**%s** ([%s](#%s))", o.Status, f.id, strings.ToLower(f.id))
}

// markdown renders docs/compatibility.md. It depends only on the report,
// never on ports, paths or the time, so that a rerun changes the file only
// when a result changed.
func (r *report) markdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	fails, byCell := r.failures()

	p("# Compatibility of sshca certificates with SSH clients\n\n")
	p("> **Generated** by `go test ./internal/interop -update` (or `SSHCA_UPDATE_COMPAT=1 go test ./internal/interop`)\n")
	p("> from real logins on 127.0.0.1; do not edit by hand. `go test ./internal/interop` fails when a cell\n")
	p("> that works here stops working (expectations in `internal/interop/testdata/expected.json`).\n\n")
	p("Every certificate is issued by sshca's own signing path: a CA home made as by `sshca init --key-type T`,\n")
	p("then the authority that `sshca sign` uses (RSA CAs sign with `rsa-sha2-512`, never SHA-1). Each cell is one\n")
	p("login that runs a command; \"works\" means the command's output came back. A failing cell links to the\n")
	p("client's own error message under [Failures](#failures).\n\n")

	p("## Versions\n\n| client | version |\n|---|---|\n")
	for _, c := range r.clients {
		p("| %s | %s |\n", c, mdEscape(r.versions[c]))
	}
	p("\nServers: OpenSSH sshd %s; Go x/crypto/ssh server %s, authenticating with `interop.Authenticator`\n", mdEscape(r.servers["sshd"]), mdEscape(r.servers["go"]))
	p("(`ssh.CertChecker` plus an sshca KRL, refusing SHA-1 signatures and empty principal lists).\n\n")

	userTable := func(dir string) {
		p("| CA key type | subject key | %s |\n", strings.Join(r.clients, " | "))
		p("|---|---|%s\n", strings.Repeat("---|", len(r.clients)))
		for _, ca := range r.caTypes {
			for _, subj := range r.subjects {
				cells := make([]string, len(r.clients))
				for i, c := range r.clients {
					cells[i] = r.cellText(cellKey{dir, ca, subj, c}, byCell)
				}
				p("| %s | %s | %s |\n", ca, subj, strings.Join(cells, " | "))
			}
		}
		p("\n")
	}
	p("## User certificates, login to OpenSSH sshd\n\n")
	p("One sshd trusts every user CA (`TrustedUserCAKeys`) and maps the certificate's principal to the login\n")
	p("account (`AuthorizedPrincipalsFile`); the client presents the subject key with its certificate.\n\n")
	userTable(dirUser)

	p("## User certificates, login to a Go x/crypto/ssh server\n\n")
	p("The server direction: the same certificates, presented to an in-process `golang.org/x/crypto/ssh`\n")
	p("server that accepts them through `interop.Authenticator`.\n\n")
	userTable(dirServer)

	p("## Host certificates\n\n")
	p("For each CA key type an sshd presents its %s host key with a host certificate from that host CA\n", r.hostKeyType)
	p("(principals %s); the client trusts only the CA, never the host key itself, and logs in with an\n", strings.Join(quoteAll(hostPrincipals()), ", "))
	p("ed25519 user certificate from the ed25519 user CA. How each client was told to trust the CA:\n\n")
	for _, c := range r.clients {
		p("- %s: %s\n", c, r.hostTrust[c])
	}
	p("\n| host CA key type | %s |\n", strings.Join(r.clients, " | "))
	p("|---|%s\n", strings.Repeat("---|", len(r.clients)))
	for _, ca := range r.caTypes {
		cells := make([]string, len(r.clients))
		for i, c := range r.clients {
			cells[i] = r.cellText(cellKey{dirHost, ca, r.hostKeyType, c}, byCell)
		}
		p("| %s | %s |\n", ca, strings.Join(cells, " | "))
	}
	p("\n")

	p("## Failures\n\n")
	if len(fails) == 0 {
		p("None: every combination works.\n\n")
	}
	for _, f := range fails {
		p("<a id=\"%s\"></a>**%s** — %s, %s: `%s`\n\n", strings.ToLower(f.id), f.id, f.client, mdEscape(r.versions[f.client]), mdCode(f.message))
		p("%s in: %s.\n\n", capitalize(f.status), describeCells(f.cells))
	}

	p("## Guidance\n\n")
	p("%s\n", strings.TrimSpace(r.guidance))
	if summary := r.clientLimits(); summary != "" {
		p("\nWhat the tables above show, by CA key type (generated):\n\n%s", summary)
	}
	return b.Bytes()
}

// clientLimits summarises, per CA key type, the clients that fail with
// it in any direction.
func (r *report) clientLimits() string {
	var b strings.Builder
	for _, ca := range r.caTypes {
		failing := map[string][]string{} // client -> directions
		for _, k := range r.orderedCells() {
			o, ok := r.outcomes[k]
			if k.CA != ca || !ok || o.Status == statusWorks {
				continue
			}
			d := map[string]string{dirUser: "user certificates to sshd", dirServer: "user certificates to the Go server", dirHost: "host certificates"}[k.Dir]
			if o.Status == statusUnsupported {
				d += " (not supported by the client at all)"
			}
			if !slices.Contains(failing[k.Client], d) {
				failing[k.Client] = append(failing[k.Client], d)
			}
		}
		if len(failing) == 0 {
			fmt.Fprintf(&b, "- `%s`: every client works in every direction tested.\n", ca)
			continue
		}
		names := make([]string, 0, len(failing))
		for c := range failing {
			names = append(names, c)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, c := range names {
			parts[i] = fmt.Sprintf("%s fails with %s", c, strings.Join(failing[c], " and "))
		}
		fmt.Fprintf(&b, "- `%s`: %s.\n", ca, strings.Join(parts, "; "))
	}
	return b.String()
}

// describeCells lists cells compactly, e.g. "user certificates to sshd:
// CA ecdsa-p384 with subject ed25519, ...".
func describeCells(cells []cellKey) string {
	groups := map[string][]string{}
	var order []string
	for _, k := range cells {
		var label, item string
		switch k.Dir {
		case dirUser:
			label, item = "user certificates to sshd", "CA "+k.CA+" × subject "+k.Subject
		case dirServer:
			label, item = "user certificates to the Go server", "CA "+k.CA+" × subject "+k.Subject
		default:
			label, item = "host certificates", "host CA "+k.CA
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
