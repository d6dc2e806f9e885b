// Package hostile is sshca's hostile-input corpus: the manifest format of
// testdata/hostile (each case names its input, the entry points it is fed
// to and the error it must get) and the deterministic keys that the corpus
// generator (./gen) and the corpus test share.
//
// It is test support only. It never touches a real CA, never signs with a
// key that is not derived from a public label, and holds no state.
package hostile

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key returns the ed25519 key the corpus knows by name. It is derived from
// the name alone, so the generator and the test agree on it without storing
// private keys; it must never certify or trust anything real.
func Key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("sshca-hostile-key:" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Signer is Key as an ssh.Signer.
func Signer(name string) (ssh.Signer, error) {
	s, err := ssh.NewSignerFromKey(Key(name))
	if err != nil {
		return nil, fmt.Errorf("hostile: key %s: %w", name, err)
	}
	return s, nil
}

// Rand returns a deterministic byte stream for label (SHA-256 in counter
// mode), so that generated files are identical on every run.
func Rand(label string) io.Reader { return &stream{label: label} }

type stream struct {
	label string
	n     uint64
	buf   []byte
}

func (s *stream) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], s.n)
		s.n++
		sum := sha256.Sum256(append([]byte(s.label), ctr[:]...))
		s.buf = append(s.buf, sum[:]...)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Case is one hostile input and what every entry point must do with it.
type Case struct {
	// Name is unique in the corpus; the manifest file's base name is
	// prepended on load ("krl/comment-nul").
	Name string `json:"name"`
	// Why says what the case attacks, for the reader.
	Why string `json:"why"`
	// Entries are the entry points the input is fed to (see the test).
	Entries []string `json:"entries"`
	// Input is the input as text; File names a file under testdata/hostile
	// instead (binary, non-UTF-8 or generated input). At most one is set.
	Input string `json:"input,omitempty"`
	File  string `json:"file,omitempty"`
	// Args are the command-line arguments of a "cli" case.
	Args []string `json:"args,omitempty"`
	// HTTP is the request of an "http" case.
	HTTP *Request `json:"http,omitempty"`
	// Agent is the hostile service response of an "agent" case.
	Agent *Response `json:"agent,omitempty"`
	// Want is the expected refusal.
	Want Want `json:"want"`
}

// Request is an HTTP request to the service. Placeholders ($NAME) in
// Path, Auth and Body are replaced by the test; BodyFromInput sends the
// case's input as the body.
type Request struct {
	Method        string `json:"method"`
	Path          string `json:"path"`
	Auth          string `json:"auth,omitempty"` // the whole Authorization header value
	ContentType   string `json:"content_type,omitempty"`
	Body          string `json:"body,omitempty"`
	BodyFromInput bool   `json:"body_from_input,omitempty"`
}

// Response replaces what the fake service answers on Path during an
// "agent" case; the body is the case's input. SignBody makes the fake
// service publish a valid CA signature over that body (for KRLs that must
// get past the signature check).
type Response struct {
	Path        string `json:"path"`
	Status      int    `json:"status,omitempty"` // default 200
	ContentType string `json:"content_type,omitempty"`
	SignBody    bool   `json:"sign_body,omitempty"`
}

// Want is the refusal every entry point must produce.
type Want struct {
	// Msg must appear in the error (error value, "sshca: error:" line or
	// JSON error message); MsgBy overrides it per entry point.
	Msg   string            `json:"msg"`
	MsgBy map[string]string `json:"msg_by,omitempty"`
	// Exit is the CLI exit code (default 1; 2 for usage errors).
	Exit int `json:"exit,omitempty"`
	// Status is the HTTP status (default 400); Code the JSON error code
	// ("" = not checked).
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
}

// MsgFor returns the message expected from entry.
func (w Want) MsgFor(entry string) string {
	if m, ok := w.MsgBy[entry]; ok {
		return m
	}
	return w.Msg
}

// Load reads every *.json manifest in dir and returns the cases in file
// and manifest order, with their inputs read. It refuses duplicate names,
// cases without entries or expectations, missing files, and files under
// dir/files that no case uses.
func Load(dir string) ([]Case, [][]byte, error) {
	manifests, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(manifests)
	var cases []Case
	var inputs [][]byte
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, m := range manifests {
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, nil, err
		}
		var file struct {
			Cases []Case `json:"cases"`
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&file); err != nil {
			return nil, nil, fmt.Errorf("hostile: %s: %w", m, err)
		}
		prefix := strings.TrimSuffix(filepath.Base(m), ".json") + "/"
		for _, c := range file.Cases {
			c.Name = prefix + c.Name
			switch {
			case seen[c.Name]:
				return nil, nil, fmt.Errorf("hostile: %s: duplicate case %q", m, c.Name)
			case len(c.Entries) == 0:
				return nil, nil, fmt.Errorf("hostile: %s: case %q has no entries", m, c.Name)
			case c.Want.Msg == "" && len(c.Want.MsgBy) == 0:
				return nil, nil, fmt.Errorf("hostile: %s: case %q expects no message", m, c.Name)
			case c.Input != "" && c.File != "":
				return nil, nil, fmt.Errorf("hostile: %s: case %q has both input and file", m, c.Name)
			}
			seen[c.Name] = true
			in := []byte(c.Input)
			if c.File != "" {
				if in, err = os.ReadFile(filepath.Join(dir, filepath.FromSlash(c.File))); err != nil {
					return nil, nil, fmt.Errorf("hostile: case %q: %w", c.Name, err)
				}
				used[c.File] = true
			}
			cases = append(cases, c)
			inputs = append(inputs, in)
		}
	}
	files, err := os.ReadDir(filepath.Join(dir, "files"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	for _, f := range files {
		if !used["files/"+f.Name()] {
			return nil, nil, fmt.Errorf("hostile: files/%s is used by no case", f.Name())
		}
	}
	return cases, inputs, nil
}
