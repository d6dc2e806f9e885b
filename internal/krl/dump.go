package krl

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Description is a JSON-friendly summary of a KRL, for `sshca inspect`.
// Serials are strings ("42" or "40-50") so that no JSON reader rounds them.
type Description struct {
	Version       uint64            `json:"version"`
	GeneratedDate uint64            `json:"generated_date"`
	Generated     string            `json:"generated"` // RFC 3339, UTC
	Comment       string            `json:"comment,omitempty"`
	Certificates  []CertDescription `json:"certificates"`
	ExplicitKeys  []KeyDescription  `json:"explicit_keys"`
	SHA256        []string          `json:"sha256"` // SHA256:base64, as ssh-keygen -l prints
	SHA1          []string          `json:"sha1"`   // hex
}

// CertDescription summarises one certificates section.
type CertDescription struct {
	Wildcard      bool     `json:"wildcard"`
	CAType        string   `json:"ca_type,omitempty"`
	CAFingerprint string   `json:"ca_fingerprint,omitempty"`
	Serials       []string `json:"serials"`
	KeyIDs        []string `json:"key_ids"`
}

// KeyDescription names an explicitly revoked key.
type KeyDescription struct {
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
}

// Describe returns a summary of the normalised KRL.
func (k *KRL) Describe() *Description {
	n := k.normalized()
	d := &Description{
		Version:       n.Version,
		GeneratedDate: n.GeneratedDate,
		Generated:     formatDate(n.GeneratedDate),
		Comment:       n.Comment,
		Certificates:  []CertDescription{},
		ExplicitKeys:  []KeyDescription{},
		SHA256:        []string{},
		SHA1:          []string{},
	}
	for _, s := range n.Certs {
		cd := CertDescription{Wildcard: s.Wildcard(), Serials: []string{}, KeyIDs: s.KeyIDs}
		if cd.KeyIDs == nil {
			cd.KeyIDs = []string{}
		}
		if !cd.Wildcard {
			cd.CAType = blobType(s.CA)
			cd.CAFingerprint = fingerprint(sha256.Sum256(caIdentity(s.CA)))
		}
		for _, r := range s.Serials {
			cd.Serials = append(cd.Serials, formatRange(r))
		}
		d.Certificates = append(d.Certificates, cd)
	}
	for _, b := range n.ExplicitKeys {
		d.ExplicitKeys = append(d.ExplicitKeys, KeyDescription{Type: blobType(b), Fingerprint: fingerprint(sha256.Sum256(b))})
	}
	for _, h := range n.SHA256 {
		d.SHA256 = append(d.SHA256, fingerprint(h))
	}
	for _, h := range n.SHA1 {
		d.SHA1 = append(d.SHA1, hex.EncodeToString(h[:]))
	}
	return d
}

// Dump writes a human-readable listing of every section, close to
// `ssh-keygen -Q -l`: lines that are directives of a specification file
// revoke the same keys when fed back to `ssh-keygen -k` (an explicit key
// becomes its SHA-256 hash), everything else is a # comment. Unlike
// ssh-keygen, SHA-256 fingerprints are printed in base64, so they can be
// fed back, and times are in UTC.
func (k *KRL) Dump(w io.Writer) error {
	d := k.Describe()
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# KRL version %d\n", d.Version)
	fmt.Fprintf(bw, "# Generated at %s\n", d.Generated)
	if d.Comment != "" {
		fmt.Fprintf(bw, "# Comment: %s\n", escapeText(d.Comment))
	}
	for _, c := range d.Certificates {
		bw.WriteString("\n")
		if c.Wildcard {
			bw.WriteString("# Wildcard CA\n")
		} else {
			fmt.Fprintf(bw, "# CA key %s %s\n", c.CAType, c.CAFingerprint)
		}
		for _, s := range c.Serials {
			fmt.Fprintf(bw, "serial: %s\n", s)
		}
		for _, id := range c.KeyIDs {
			if specSafe(id) {
				fmt.Fprintf(bw, "id: %s\n", id)
			} else {
				// Not representable in a specification file.
				fmt.Fprintf(bw, "# id: %s\n", strconv.QuoteToASCII(id))
			}
		}
	}
	if len(d.ExplicitKeys) > 0 {
		bw.WriteString("\n# Explicitly revoked keys\n")
		for _, e := range d.ExplicitKeys {
			fmt.Fprintf(bw, "hash: %s # %s\n", e.Fingerprint, escapeText(e.Type))
		}
	}
	if len(d.SHA256) > 0 {
		bw.WriteString("\n# Revoked SHA-256 fingerprints\n")
		for _, h := range d.SHA256 {
			fmt.Fprintf(bw, "hash: %s\n", h)
		}
	}
	if len(d.SHA1) > 0 {
		bw.WriteString("\n# Revoked SHA-1 fingerprints (no specification directive exists)\n")
		for _, h := range d.SHA1 {
			fmt.Fprintf(bw, "# hash SHA1:%s\n", h)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("krl: dump: %w", err)
	}
	return nil
}

func formatDate(secs uint64) string {
	if secs > 1<<62 {
		return strconv.FormatUint(secs, 10)
	}
	return time.Unix(int64(secs), 0).UTC().Format(time.RFC3339)
}

func formatRange(r SerialRange) string {
	if r.Lo == r.Hi {
		return strconv.FormatUint(r.Lo, 10)
	}
	return strconv.FormatUint(r.Lo, 10) + "-" + strconv.FormatUint(r.Hi, 10)
}

// blobType returns the type name at the start of a key blob, or "unknown".
func blobType(b []byte) string {
	if len(b) < 4 {
		return "unknown"
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) || n == 0 {
		return "unknown"
	}
	return string(b[4 : 4+n])
}

// specSafe reports whether an `id:` line reproduces id exactly: ssh-keygen
// strips leading and trailing blanks and everything from a '#'.
func specSafe(id string) bool {
	if strings.ContainsAny(id, "#\n\r") || strings.TrimLeft(id, " \t") != id ||
		strings.TrimRight(id, " \t") != id {
		return false
	}
	return escapeText(id) == id
}

// escapeText makes untrusted text safe for a terminal.
func escapeText(s string) string {
	if !utf8.ValidString(s) {
		q := strconv.QuoteToASCII(s)
		return q[1 : len(q)-1]
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			q := strconv.QuoteToASCII(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
