package hostile

// The generator of the binary corpus: malformed KRLs, certificates, public
// keys and SSHSIG signatures, built byte by byte so that each breaks exactly
// one rule. Its output is deterministic (keys and nonces derive from fixed
// labels); the expectations live in testdata/hostile/*.json.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// update rewrites testdata/hostile/files from the generator.
var update = flag.Bool("update", false, "rewrite testdata/hostile/files from the generator")

// TestGenerated checks that testdata/hostile/files is exactly what the
// generator makes, so the binary corpus can always be reproduced and
// reviewed through this code. With -update it rewrites the directory.
func TestGenerated(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(corpusDir, "files")
	if *update {
		if err := writeFiles(dir, files); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want, ok := files[e.Name()]
		if !ok {
			t.Errorf("files/%s is not made by the generator (run go test ./internal/hostile -run TestGenerated -update)", e.Name())
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("files/%s differs from the generator's output (run with -update)", e.Name())
		}
		delete(files, e.Name())
	}
	for name := range files {
		t.Errorf("files/%s is missing (run with -update)", name)
	}
}

// TestGeneratorControls checks that the unbroken forms the generator
// starts from are accepted, so that each hostile file fails for the one
// defect it was built with and not for a mistake in the generator.
func TestGeneratorControls(t *testing.T) {
	caKey, err := Signer("rogue-ca")
	if err != nil {
		t.Fatal(err)
	}
	subj, err := Signer("subject")
	if err != nil {
		t.Fatal(err)
	}
	g := &gen{files: map[string][]byte{}, ca: caKey, caPub: caKey.PublicKey(), subj: subj.PublicKey()}
	t.Run("ok/certificate", func(t *testing.T) {
		pub, _, _, rest, err := ssh.ParseAuthorizedKey(certLine(ssh.CertAlgoED25519v01, g.signed(g.baseFields())))
		if err != nil || len(rest) != 0 {
			t.Fatalf("base certificate: %v (%d bytes left)", err, len(rest))
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok {
			t.Fatalf("base certificate is a %T", pub)
		}
		checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), caKey.PublicKey().Marshal()) }}
		if _, err := checker.Authenticate(connMeta("role-deploy"), cert); err != nil {
			t.Fatalf("base certificate does not verify: %v", err)
		}
	})
	t.Run("ok/sshsig", func(t *testing.T) {
		if _, err := sshsig.Parse(armor(g.goodSig().blob())); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/krl", func(t *testing.T) {
		k, err := krl.Parse(krlHeader(7, "").raw(certSection(caKey.PublicKey().Marshal(), sub(0x20, wire(nil).u64(5)), sub(0x21, wire(nil).u64(10).u64(20)),
			sub(0x22, wire(nil).u64(100).mpint(big.NewInt(5))), sub(0x23, wire(nil).s("alice")))).u8(5).str(wire(nil).str(make([]byte, 32))))
		if err != nil {
			t.Fatal(err)
		}
		if k.Version != 7 {
			t.Fatalf("version %d", k.Version)
		}
	})
	t.Run("ok/keys", func(t *testing.T) {
		for _, blob := range [][]byte{rsaBlob(2048, big.NewInt(65537)), rsaBlob(16384, big.NewInt(65537))} {
			if _, err := ca.ParseSubjectKey(keyLine(blob, "ok")); err != nil {
				t.Error(err)
			}
		}
		if _, err := ssh.ParsePublicKey(dsaBlob()); err != nil {
			t.Errorf("DSA blob: %v", err)
		}
	})
	g.krls()
	if g.err != nil {
		t.Fatal(g.err)
	}
	t.Run("ok/krl-valid-v1", func(t *testing.T) {
		if _, err := krl.Parse(g.files["krl-valid-v1.krl"]); err != nil {
			t.Fatal(err)
		}
	})
}

// connMeta is the login a certificate is checked against.
type connMeta string

func (c connMeta) User() string        { return string(c) }
func (connMeta) SessionID() []byte     { return nil }
func (connMeta) ClientVersion() []byte { return nil }
func (connMeta) ServerVersion() []byte { return nil }
func (connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// writeFiles replaces the content of dir with files.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range old {
		if _, ok := files[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// wire builds SSH wire encodings (RFC 4251 §5).
type wire []byte

func (w wire) u8(v byte) wire    { return append(w, v) }
func (w wire) u32(v uint32) wire { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) raw(b []byte) wire { return append(w, b...) }
func (w wire) str(b []byte) wire { return w.u32(uint32(len(b))).raw(b) }
func (w wire) s(v string) wire   { return w.str([]byte(v)) }

// mpint encodes a non-negative integer as an SSH mpint.
func (w wire) mpint(n *big.Int) wire {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return w.str(b)
}

type gen struct {
	files map[string][]byte
	caPub ssh.PublicKey // the rogue CA of generated certificates
	ca    ssh.Signer
	subj  ssh.PublicKey // the subject key of generated certificates
	err   error         // the first failure of a step that cannot return one
}

// generate returns every generated file by name.
func generate() (map[string][]byte, error) {
	ca, err := Signer("rogue-ca")
	if err != nil {
		return nil, err
	}
	subj, err := Signer("subject")
	if err != nil {
		return nil, err
	}
	g := &gen{files: map[string][]byte{}, ca: ca, caPub: ca.PublicKey(), subj: subj.PublicKey()}
	g.krls()
	for _, step := range []func() error{g.certs, g.keys, g.sigs} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	g.policies()
	if g.err != nil {
		return nil, g.err
	}
	return g.files, nil
}

func (g *gen) add(name string, data []byte) {
	if _, dup := g.files[name]; dup && g.err == nil {
		g.err = fmt.Errorf("generator: duplicate file %s", name)
	}
	g.files[name] = data
}

// ---- KRLs (PROTOCOL.krl; spec §3) ----

const krlMagic = "SSHKRL\n\x00"

// krlHeader is a complete header with the given comment.
func krlHeader(version uint64, comment string) wire {
	return wire(krlMagic).u32(1).u64(version).u64(1767225600).u64(0).s("").s(comment)
}

// certSection is a CERTIFICATES section for caBlob holding subsections.
func certSection(caBlob []byte, subs ...wire) wire {
	body := wire(nil).str(caBlob).s("")
	for _, s := range subs {
		body = body.raw(s)
	}
	return wire(nil).u8(1).str(body)
}

func sub(typ byte, body wire) wire { return wire(nil).u8(typ).str(body) }

func (g *gen) krls() {
	ca := g.caPub.Marshal()
	h := func() wire { return krlHeader(7, "") }
	g.add("krl-empty.krl", nil)
	g.add("krl-magic-only.krl", []byte(krlMagic))
	g.add("krl-format-version-2.krl", wire(krlMagic).u32(2).u64(1).u64(0).u64(0).s("").s(""))
	g.add("krl-header-truncated.krl", wire(krlMagic).u32(1).u64(1).raw([]byte{0, 0, 0, 0}))
	g.add("krl-comment-length-overflow.krl", wire(krlMagic).u32(1).u64(1).u64(0).u64(0).s("").u32(0xFFFFFFFF).raw([]byte("abc")))
	g.add("krl-comment-nul.krl", krlHeader(1, "sshca\x00evil"))
	g.add("krl-section-length-overflow.krl", h().u8(1).u32(0xFFFFFFFF).raw([]byte("xx")))
	g.add("krl-unknown-section.krl", h().u8(7).s(""))
	g.add("krl-trailing-byte.krl", h().raw(certSection(ca, sub(0x20, wire(nil).u64(5)))).u8(1))
	g.add("krl-serial-zero.krl", h().raw(certSection(ca, sub(0x20, wire(nil).u64(3).u64(0)))))
	g.add("krl-range-reversed.krl", h().raw(certSection(ca, sub(0x21, wire(nil).u64(10).u64(5)))))
	g.add("krl-range-min-zero.krl", h().raw(certSection(ca, sub(0x21, wire(nil).u64(0).u64(5)))))
	g.add("krl-range-trailing.krl", h().raw(certSection(ca, sub(0x21, wire(nil).u64(1).u64(5).u8(0)))))
	g.add("krl-list-trailing.krl", h().raw(certSection(ca, sub(0x20, wire(nil).u64(1).u8(0)))))
	g.add("krl-list-truncated-section.krl", h().raw(wire(nil).u8(1).u32(200).raw(wire(nil).str(ca).s("").u8(0x20).u32(8).u64(3))))
	big16385 := new(big.Int).Lsh(big.NewInt(1), 16384) // 16385 bits
	g.add("krl-bitmap-oversized.krl", h().raw(certSection(ca, sub(0x22, wire(nil).u64(1).mpint(big16385)))))
	g.add("krl-bitmap-negative.krl", h().raw(certSection(ca, sub(0x22, wire(nil).u64(1).str([]byte{0x80, 0x01})))))
	g.add("krl-bitmap-wrap.krl", h().raw(certSection(ca, sub(0x22, wire(nil).u64(0xFFFFFFFFFFFFFFF0).mpint(new(big.Int).Lsh(big.NewInt(1), 40))))))
	g.add("krl-bitmap-serial-zero.krl", h().raw(certSection(ca, sub(0x22, wire(nil).u64(0).mpint(big.NewInt(1))))))
	g.add("krl-keyid-nul.krl", h().raw(certSection(ca, sub(0x23, wire(nil).s("alice\x00root")))))
	g.add("krl-keyid-length-overflow.krl", h().raw(certSection(ca, sub(0x23, wire(nil).u32(0xFFFFFFFF).raw([]byte("x"))))))
	g.add("krl-unknown-subsection.krl", h().raw(certSection(ca, sub(0x24, nil))))
	g.add("krl-critical-cert-extension.krl", h().raw(certSection(ca, sub(0x39, wire(nil).s("evil@example.com").u8(1).s("")))))
	g.add("krl-critical-extension.krl", h().u8(255).str(wire(nil).s("evil@example.com").u8(1).s("")))
	g.add("krl-cert-section-no-reserved.krl", h().u8(1).str(wire(nil).str(ca)))
	g.add("krl-ca-key-garbage.krl", h().raw(certSection(wire(nil).s("ssh-ed25519").s("short"), sub(0x20, wire(nil).u64(1)))))
	g.add("krl-ca-key-dsa.krl", h().raw(certSection(dsaBlob(), sub(0x20, wire(nil).u64(1)))))
	g.add("krl-sha256-short.krl", h().u8(5).str(wire(nil).str(make([]byte, 31))))
	g.add("krl-sha1-long.krl", h().u8(3).str(wire(nil).str(make([]byte, 21))))
	g.add("krl-explicit-key-overflow.krl", h().u8(2).str(wire(nil).u32(0x7FFFFFFF).raw([]byte("ssh"))))
	// A well-formed KRL older than the one the agent has installed.
	g.add("krl-valid-v1.krl", krlHeader(1, "rolled back"))
}

// dsaBlob is a syntactically valid ssh-dss public key (its numbers need not
// form a real group for a parser to accept it).
func dsaBlob() []byte {
	p := new(big.Int).SetBytes(bytes.Repeat([]byte{0xb5}, 128))
	q := new(big.Int).SetBytes(bytes.Repeat([]byte{0x9d}, 20))
	gg := new(big.Int).SetBytes(bytes.Repeat([]byte{0x42}, 128))
	y := new(big.Int).SetBytes(bytes.Repeat([]byte{0x17}, 128))
	return wire(nil).s("ssh-dss").mpint(p).mpint(q).mpint(gg).mpint(y)
}

// rsaBlob is an ssh-rsa public key with an n of the given bit length.
func rsaBlob(bits int, e *big.Int) []byte {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Or(n, new(big.Int).SetBytes(bytes.Repeat([]byte{0x5b}, bits/8-1)))
	n.SetBit(n, 0, 1)
	return wire(nil).s("ssh-rsa").mpint(e).mpint(n)
}

// ---- certificates (PROTOCOL.certkeys; spec §1) ----

// certFields are the fields of an ed25519 user certificate in wire order,
// each already encoded, so that one can be replaced by hostile bytes.
type certFields struct {
	typ, nonce, key, serial, certType, keyID, principals, after, before, crit, ext, reserved, sigKey wire
}

func (g *gen) baseFields() certFields {
	// The ed25519 key field is the string after the type in the plain blob.
	var kb struct {
		Name string
		Key  []byte
	}
	if err := ssh.Unmarshal(g.subj.Marshal(), &kb); err != nil && g.err == nil {
		g.err = err
	}
	return certFields{
		typ:        wire(nil).s(ssh.CertAlgoED25519v01),
		nonce:      wire(nil).str(bytes.Repeat([]byte{0x11}, 32)),
		key:        wire(nil).str(kb.Key),
		serial:     wire(nil).u64(4242),
		certType:   wire(nil).u32(ssh.UserCert),
		keyID:      wire(nil).s("hostile"),
		principals: wire(nil).str(wire(nil).s("role-deploy")),
		after:      wire(nil).u64(1767225600),
		before:     wire(nil).u64(4102444800),
		crit:       wire(nil).s(""),
		ext:        wire(nil).str(wire(nil).s("permit-pty").s("")),
		reserved:   wire(nil).s(""),
		sigKey:     wire(nil).str(g.caPub.Marshal()),
	}
}

// signed encodes f and appends a valid signature by the rogue CA over it.
func (g *gen) signed(f certFields) []byte {
	body := wire(nil).raw(f.typ).raw(f.nonce).raw(f.key).raw(f.serial).raw(f.certType).raw(f.keyID).raw(f.principals).
		raw(f.after).raw(f.before).raw(f.crit).raw(f.ext).raw(f.reserved).raw(f.sigKey)
	sig, err := g.ca.Sign(Rand("sig"), body)
	if err != nil {
		if g.err == nil {
			g.err = err
		}
		return body
	}
	return body.str(ssh.Marshal(sig))
}

func certLine(typ string, blob []byte) []byte {
	return []byte(typ + " " + base64.StdEncoding.EncodeToString(blob) + " hostile\n")
}

// validCert signs a certificate for the subject key with the rogue CA,
// after mod has adjusted it.
func (g *gen) validCert(mod func(c *ssh.Certificate)) ([]byte, error) {
	c := &ssh.Certificate{
		Key: g.subj, Serial: 4242, CertType: ssh.UserCert, KeyId: "hostile",
		ValidPrincipals: []string{"role-deploy"}, ValidAfter: 1767225600, ValidBefore: 4102444800,
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{"permit-pty": ""}},
	}
	if mod != nil {
		mod(c)
	}
	if err := c.SignCert(Rand("nonce"), g.ca); err != nil {
		return nil, err
	}
	return ssh.MarshalAuthorizedKey(c), nil
}

func (g *gen) certs() error {
	typ := ssh.CertAlgoED25519v01
	f := g.baseFields
	good := g.signed(f())
	g.add("cert-truncated.pub", certLine(typ, good[:len(good)-10]))
	c := f()
	c.principals = wire(nil).u32(0xFFFFFFFF).raw([]byte("role-deploy"))
	g.add("cert-principals-length-overflow.pub", certLine(typ, g.signed(c)))
	c = f()
	c.principals = wire(nil).str(wire(nil).u32(0x7FFFFFFF).raw([]byte("root")))
	g.add("cert-principal-inner-overflow.pub", certLine(typ, g.signed(c)))
	c = f()
	c.keyID = wire(nil).u32(0xFFFFFFF0).raw([]byte("id"))
	g.add("cert-keyid-length-overflow.pub", certLine(typ, g.signed(c)))
	c = f()
	fc := wire(nil).str(wire(nil).s("/bin/true"))
	c.crit = wire(nil).str(wire(nil).s("force-command").str(fc).s("force-command").str(wire(nil).str(wire(nil).s("/bin/sh"))))
	g.add("cert-duplicate-critical-option.pub", certLine(typ, g.signed(c)))
	c = f()
	c.ext = wire(nil).str(wire(nil).s("permit-pty").s("").s("permit-agent-forwarding").s(""))
	g.add("cert-unsorted-extensions.pub", certLine(typ, g.signed(c)))
	c = f()
	c.crit = wire(nil).str(wire(nil).s("force-command").str(wire(nil).s("/bin/true").raw([]byte("junk"))))
	g.add("cert-option-trailing-data.pub", certLine(typ, g.signed(c)))
	nested, err := g.validCert(nil)
	if err != nil {
		return err
	}
	nestedKey, _, _, _, err := ssh.ParseAuthorizedKey(nested)
	if err != nil {
		return err
	}
	c = f()
	c.sigKey = wire(nil).str(nestedKey.Marshal())
	g.add("cert-signature-key-is-certificate.pub", certLine(typ, g.signed(c)))
	g.add("cert-line-type-mismatch.pub", certLine(ssh.CertAlgoRSAv01, good))
	c = f()
	c.typ = wire(nil).s("ssh-foo-cert-v01@openssh.com")
	g.add("cert-unknown-type.pub", certLine("ssh-foo-cert-v01@openssh.com", g.signed(c)))
	c = f()
	c.key = wire(nil).str(make([]byte, 31))
	g.add("cert-ed25519-key-short.pub", certLine(typ, g.signed(c)))
	body := bytes.Clone(good[:len(good)-4-83]) // drop the signature field (83 bytes for ed25519)
	g.add("cert-signature-garbage.pub", certLine(typ, wire(body).str([]byte("not a signature"))))
	g.add("cert-trailing-bytes.pub", certLine(typ, append(append([]byte{}, good...), 0, 0, 0, 1, 'x')))
	line := certLine(typ, good)
	withNUL := append([]byte{}, line...)
	withNUL[len(typ)+20] = 0
	g.add("cert-nul-in-base64.pub", withNUL)
	g.add("cert-non-utf8.pub", []byte("\xff\xfe\xfd ssh-ed25519-cert-v01@openssh.com \xc3\x28\n"))
	g.add("cert-two-certificates.pub", append(append([]byte{}, line...), line...))

	// Well-formed certificates signed by a CA nobody trusts, each with a
	// field that must never pass for a subject key, a CA key or a renewal.
	weird := []struct {
		name string
		mod  func(c *ssh.Certificate)
	}{
		{"weird-keyid-nul", func(c *ssh.Certificate) { c.KeyId = "alice\x00root" }},
		{"weird-keyid-non-utf8", func(c *ssh.Certificate) { c.KeyId = "al\xffice\xc3\x28" }},
		{"weird-keyid-terminal-escape", func(c *ssh.Certificate) { c.KeyId = "alice\x1b[2J\x1b[1;1Hroot\r\nforged" }},
		{"weird-257-principals", func(c *ssh.Certificate) {
			c.ValidPrincipals = nil
			for i := range 257 {
				c.ValidPrincipals = append(c.ValidPrincipals, fmt.Sprintf("p%d", i))
			}
		}},
		{"weird-principal-comma", func(c *ssh.Certificate) { c.ValidPrincipals = []string{"role-deploy,root"} }},
		{"weird-principal-space", func(c *ssh.Certificate) { c.ValidPrincipals = []string{"role-deploy root"} }},
		{"weird-principal-wildcard", func(c *ssh.Certificate) { c.ValidPrincipals = []string{"*"} }},
		{"weird-no-principals", func(c *ssh.Certificate) { c.ValidPrincipals = nil }},
		{"weird-serial-zero", func(c *ssh.Certificate) { c.Serial = 0 }},
		{"weird-forever", func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 0, ssh.CertTimeInfinity }},
		{"weird-host-cert", func(c *ssh.Certificate) { c.CertType = ssh.HostCert; c.ValidPrincipals = []string{"web1.corp"} }},
		{"weird-cert-type-3", func(c *ssh.Certificate) { c.CertType = 3 }},
		{"weird-unknown-critical-option", func(c *ssh.Certificate) { c.CriticalOptions["evil@example.com"] = "" }},
		{"weird-expired", func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 1, 2 }},
	}
	for _, w := range weird {
		data, err := g.validCert(w.mod)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		g.add(w.name+".pub", data)
	}
	return nil
}

// ---- subject keys ----

func keyLine(blob []byte, comment string) []byte {
	var kb struct{ Name string }
	_ = ssh.Unmarshal(blob, &kb)
	typ := kb.Name
	if typ == "" {
		typ = "ssh-ed25519"
	}
	return []byte(typ + " " + base64.StdEncoding.EncodeToString(blob) + " " + comment + "\n")
}

func (g *gen) keys() error {
	f4 := big.NewInt(65537)
	g.add("key-dsa.pub", keyLine(dsaBlob(), "dsa"))
	g.add("key-rsa-1024.pub", keyLine(rsaBlob(1024, f4), "rsa1024"))
	g.add("key-rsa-512.pub", keyLine(rsaBlob(512, f4), "rsa512"))
	g.add("key-rsa-16392.pub", keyLine(rsaBlob(16392, f4), "rsa16392"))
	g.add("key-rsa-exponent-huge.pub", keyLine(rsaBlob(2048, new(big.Int).Lsh(big.NewInt(1), 40)), "bige"))
	g.add("key-rsa-exponent-even.pub", keyLine(rsaBlob(2048, big.NewInt(65536)), "evene"))
	g.add("key-ed25519-short.pub", keyLine(wire(nil).s("ssh-ed25519").str(make([]byte, 31)), "short"))
	g.add("key-ed25519-trailing.pub", keyLine(wire(g.subj.Marshal()).raw([]byte("junk")), "trailing"))
	g.add("key-ecdsa-off-curve.pub", keyLine(wire(nil).s("ecdsa-sha2-nistp256").s("nistp256").str(append([]byte{4}, bytes.Repeat([]byte{1}, 64)...)), "offcurve"))
	g.add("key-ecdsa-curve-mismatch.pub", keyLine(wire(nil).s("ecdsa-sha2-nistp256").s("nistp384").str(append([]byte{4}, bytes.Repeat([]byte{1}, 96)...)), "mismatch"))
	g.add("key-unknown-type.pub", keyLine(wire(nil).s("ssh-foo").s("bar"), "foo"))
	g.add("key-line-type-mismatch.pub", []byte("ssh-rsa "+base64.StdEncoding.EncodeToString(g.subj.Marshal())+" mismatch\n"))
	g.add("key-private-openssh", privateKeyFile())
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(g.subj)))
	g.add("key-nul-in-base64.pub", []byte(line[:30]+"\x00"+line[31:]+"\n"))
	g.add("key-oversized.pub", []byte(line+" "+strings.Repeat("A", 17<<10)+"\n"))
	g.add("key-non-utf8-type.pub", []byte("ssh-ed25519\xff "+line[len("ssh-ed25519 "):]+"\n"))
	return nil
}

// privateKeyFile is an unencrypted OpenSSH private key file for the key
// "leaked" (PROTOCOL.key), written by hand because ssh.MarshalPrivateKey
// picks random check bytes.
func privateKeyFile() []byte {
	k := Key("leaked")
	pub := k.Public().(ed25519.PublicKey)
	pubBlob := wire(nil).s(ssh.KeyAlgoED25519).str(pub)
	priv := wire(nil).u32(0x5eed5eed).u32(0x5eed5eed).s(ssh.KeyAlgoED25519).str(pub).str(k).s("leaked")
	for i := byte(1); len(priv)%8 != 0; i++ {
		priv = priv.u8(i)
	}
	blob := wire("openssh-key-v1\x00").s("none").s("none").s("").u32(1).str(pubBlob).str(priv)
	return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: blob})
}

// ---- SSHSIG signatures (PROTOCOL.sshsig) ----

func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return b.Bytes()
}

// sigFields are the fields of an SSHSIG blob after the magic.
type sigFields struct {
	version                                wire
	pub, namespace, reserved, hashAlg, sig wire
	trailing                               []byte
}

func (g *gen) goodSig() sigFields {
	sum := sha256.Sum256([]byte("sshca-hostile"))
	s, err := g.ca.Sign(Rand("sshsig"), sum[:])
	if err != nil {
		if g.err == nil {
			g.err = err
		}
		s = &ssh.Signature{}
	}
	return sigFields{
		version:   wire(nil).u32(1),
		pub:       wire(nil).str(g.caPub.Marshal()),
		namespace: wire(nil).s("sshca-krl"),
		reserved:  wire(nil).s(""),
		hashAlg:   wire(nil).s("sha512"),
		sig:       wire(nil).str(ssh.Marshal(s)),
	}
}

func (s sigFields) blob() []byte {
	return wire("SSHSIG").raw(s.version).raw(s.pub).raw(s.namespace).raw(s.reserved).raw(s.hashAlg).raw(s.sig).raw(s.trailing)
}

func (g *gen) sigs() error {
	f := g.goodSig
	s := f()
	g.add("sig-wrong-magic.sig", armor(append([]byte("SSHSIH"), s.blob()[6:]...)))
	s = f()
	s.version = wire(nil).u32(2)
	g.add("sig-version-2.sig", armor(s.blob()))
	good := f().blob()
	g.add("sig-truncated.sig", armor(good[:len(good)-20]))
	s = f()
	s.pub = wire(nil).u32(0xFFFFFFFF).raw([]byte("ssh-ed25519"))
	g.add("sig-pubkey-length-overflow.sig", armor(s.blob()))
	s = f()
	s.trailing = []byte{0, 0, 0, 0}
	g.add("sig-trailing-data.sig", armor(s.blob()))
	s = f()
	s.reserved = wire(nil).s("x")
	g.add("sig-reserved-not-empty.sig", armor(s.blob()))
	s = f()
	s.hashAlg = wire(nil).s("md5")
	g.add("sig-hash-md5.sig", armor(s.blob()))
	s = f()
	s.pub = wire(nil).str(rsaBlob(2048, big.NewInt(65537)))
	s.sig = wire(nil).str(wire(nil).s("ssh-rsa").str(make([]byte, 256)))
	g.add("sig-rsa-sha1.sig", armor(s.blob()))
	s = f()
	s.sig = wire(nil).str(wire(nil).s("ecdsa-sha2-nistp256").str(make([]byte, 64)))
	g.add("sig-algorithm-mismatch.sig", armor(s.blob()))
	s = f()
	s.namespace = wire(nil).s(strings.Repeat("n", 300))
	g.add("sig-namespace-too-long.sig", armor(s.blob()))
	s = f()
	s.pub = wire(nil).str(dsaBlob())
	s.sig = wire(nil).str(wire(nil).s("ssh-dss").str(make([]byte, 40)))
	g.add("sig-dsa-key.sig", armor(s.blob()))
	g.add("sig-oversized.sig", append(append([]byte("-----BEGIN SSH SIGNATURE-----\n"), bytes.Repeat([]byte("QUFB\n"), 4000)...), "-----END SSH SIGNATURE-----\n"...))
	if len(g.files["sig-oversized.sig"]) <= 16<<10 {
		return errors.New("sig-oversized.sig is not over the limit")
	}
	return nil
}

// ---- policy files that cannot be written as JSON text ----

func (g *gen) policies() {
	g.add("policy-non-utf8.yaml", []byte("backdate: 5m\nroles:\n  deploy:\n    type: user\n    principals: [\"r\xffoot\"]\n    max_ttl: 1h\n"))
	// Billion laughs: nine levels of nine aliases, inside a key the schema
	// knows, so that only the alias budget can stop it.
	var b strings.Builder
	b.WriteString("backdate: 5m\nroles: {}\naccounts:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	g.add("policy-yaml-bomb.yaml", []byte(b.String()))
}
