package krl

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// diffEnv holds the keys shared by all randomized sets.
type diffEnv struct {
	mu       sync.Mutex
	matches  map[string]int // Match sections seen over all sets, "" = not revoked
	keygen   string
	dir      string
	cas      []ssh.Signer    // CA pool
	caPaths  []string        // their .pub files
	subjects []ssh.PublicKey // subject key pool (no private keys needed)
}

// diffSet is one randomized revocation set and the truth about it.
type diffSet struct {
	id        int
	version   uint64
	scopes    []int // CA pool indexes; -1 is the wildcard
	specs     [][]string
	serials   map[int][]SerialRange // by CA index, -1 wildcard
	keyIDs    map[int]map[string]bool
	keys      map[string]bool // plain blobs
	sha1s     map[[20]byte]bool
	sha256s   map[[32]byte]bool
	oversized bool // ssh-keygen will write a bitmap it cannot read back
	probes    []ssh.PublicKey
	caIndex   map[string]int // CA blob -> pool index
}

// TestDifferential compares Marshal, Parse and Check with ssh-keygen -k/-Q
// on randomized revocation sets (§3.5-3.7), with the ssh-keygen of every
// OpenSSH release. The newest gets fewer sets of its own (60): its KRL writer
// and reader are the same code as 9.2's, apart from what 9.2 refuses and
// it skips (TestParseAgreesWithSSHKeygen).
func TestDifferential(t *testing.T) {
	for i, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			sets := 300
			if testing.Short() {
				sets = 60
			}
			if i > 0 {
				sets = 60 // as many as the short mode, which reaches every verdict
			}
			differential(t, rel.Keygen, sets, 1000*i)
		})
	}
}

// differential runs sets randomized sets, seeded from first on, against
// the ssh-keygen at keygen.
func differential(t *testing.T, keygen string, sets, first int) {
	env := &diffEnv{keygen: keygen, dir: t.TempDir(), matches: map[string]int{}}
	// Two Ed25519 and four ECDSA CAs: ssh-keygen verifies every probe
	// certificate, and OpenSSH's reference Ed25519 code costs it about
	// 1.5 ms per verification, ten times ECDSA's.
	for i := range 6 {
		if i%3 == 0 {
			s, _ := edKey(t, byte(100+i))
			env.cas = append(env.cas, s)
			continue
		}
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		es, err := ssh.NewSignerFromKey(ek)
		if err != nil {
			t.Fatal(err)
		}
		env.cas = append(env.cas, es)
	}
	for i, s := range env.cas {
		env.caPaths = append(env.caPaths, writeFile(t, env.dir, fmt.Sprintf("ca%d.pub", i), ssh.MarshalAuthorizedKey(s.PublicKey())))
	}
	for i := range 12 {
		_, p := edKey(t, byte(150+i))
		env.subjects = append(env.subjects, p)
	}
	ek2, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := ssh.NewPublicKey(&ek2.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	env.subjects = append(env.subjects, ep, readPub(t, filepath.Join(goldenDir, "user3.pub")))

	t.Cleanup(func() {
		// The sets must reach every kind of verdict.
		t.Logf("verdicts over all probes: %v", env.matches)
		for _, sec := range []string{"", MatchSHA1, MatchSHA256, MatchExplicitKey, MatchKeyID, MatchSerial, MatchCAKey} {
			if env.matches[sec] == 0 && !t.Failed() {
				t.Errorf("no probe got verdict %q", sec)
			}
		}
	})
	for i := first; i < first+sets; i++ {
		t.Run(fmt.Sprintf("ok/set-%03d", i), func(t *testing.T) {
			t.Parallel()
			env.run(t, i)
		})
	}
}

func (env *diffEnv) run(t *testing.T, id int) {
	rng := mrand.New(mrand.NewPCG(0x6b726c, uint64(id)))
	ds := env.generate(t, rng, id)
	dir := filepath.Join(env.dir, fmt.Sprintf("set%d", id))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// ssh-keygen -k, one invocation per scope.
	theirsPath := filepath.Join(dir, "theirs.krl")
	var specPaths []string
	for i, scope := range ds.scopes {
		sp := writeFile(t, dir, fmt.Sprintf("s%d.spec", i), []byte(strings.Join(ds.specs[i], "\n")+"\n"))
		specPaths = append(specPaths, sp)
		args := []string{"-q", "-k", "-f", theirsPath}
		if i == 0 {
			args = append(args, "-z", fmt.Sprint(ds.version))
		} else {
			args = append(args, "-u")
		}
		if scope < 0 {
			args = append(args, "-s", "none")
		} else {
			args = append(args, "-s", env.caPaths[scope])
		}
		if out, err := exec.Command(env.keygen, append(args, sp)...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
		}
	}
	theirs, err := os.ReadFile(theirsPath)
	if err != nil {
		t.Fatal(err)
	}

	// Ours, from the same specification files.
	k := &KRL{Version: ds.version, GeneratedDate: binary.BigEndian.Uint64(theirs[20:28])}
	for i, scope := range ds.scopes {
		var ca ssh.PublicKey
		if scope >= 0 {
			ca = env.cas[scope].PublicKey()
		}
		f, err := os.Open(specPaths[i])
		if err != nil {
			t.Fatal(err)
		}
		entries, err := ParseSpec(f, ca, scope < 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Apply(entries); err != nil {
			t.Fatal(err)
		}
	}
	ours, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	oursPath := writeFile(t, dir, "ours.krl", ours)

	want := make([]bool, len(ds.probes))
	var probePaths []string
	for i, p := range ds.probes {
		want[i] = ds.truth(p)
		probePaths = append(probePaths, writeFile(t, dir, fmt.Sprintf("p%d.pub", i), ssh.MarshalAuthorizedKey(p)))
		m := k.Check(p)
		if got := m != nil; got != want[i] {
			t.Errorf("probe %d (%s): our Check says revoked=%v, truth %v", i, describeProbe(p), got, want[i])
		}
		env.mu.Lock()
		if m == nil {
			env.matches[""]++
		} else {
			env.matches[m.Section]++
		}
		env.mu.Unlock()
	}

	// (a) ssh-keygen -Q on our KRL.
	got, err := keygenCheck(env.keygen, oursPath, probePaths)
	if err != nil {
		t.Fatalf("ssh-keygen -Q on our KRL: %v", err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("probe %d (%s): ssh-keygen -Q on ours says revoked=%v, truth %v", i, describeProbe(ds.probes[i]), got[i], want[i])
		}
	}

	// (b) our Parse and Check on ssh-keygen's KRL; (c) sizes and bytes.
	parsed, perr := Parse(theirs)
	if ds.oversized {
		if perr == nil || !strings.Contains(perr.Error(), "16384") {
			t.Errorf("Parse(ssh-keygen's oversized KRL) = %v, want the bitmap limit error", perr)
		}
		if _, err := keygenCheck(env.keygen, theirsPath, probePaths[:1]); err == nil {
			t.Errorf("ssh-keygen -Q loaded its own oversized KRL; expected its bignum limit to reject it")
		}
		// Splitting costs 17-19 bytes per extra subsection, less what the
		// gaps at the split points save.
		if extra := len(ours) - len(theirs); extra > 200 {
			t.Errorf("ours is %d bytes, ssh-keygen's %d: more than 200 bytes larger", len(ours), len(theirs))
		}
		t.Logf("oversized bitmap: ours %d bytes (loadable), ssh-keygen %d bytes (unloadable)", len(ours), len(theirs))
		return
	}
	if perr != nil {
		t.Fatalf("Parse(ssh-keygen's): %v", perr)
	}
	for i, p := range ds.probes {
		if got := parsed.Check(p) != nil; got != want[i] {
			t.Errorf("probe %d (%s): Check on ssh-keygen's KRL says revoked=%v, truth %v", i, describeProbe(p), got, want[i])
		}
	}
	if len(ours) > len(theirs) {
		t.Errorf("ours is %d bytes, ssh-keygen's %d", len(ours), len(theirs))
	}
	if !bytes.Equal(ours, theirs) {
		t.Errorf("bytes differ\nours   %x\ntheirs %x", ours, theirs)
	}
}

func describeProbe(p ssh.PublicKey) string {
	if c, ok := p.(*ssh.Certificate); ok {
		return fmt.Sprintf("cert serial=%d id=%q ca=%s", c.Serial, c.KeyId, ssh.FingerprintSHA256(c.SignatureKey))
	}
	return "key " + ssh.FingerprintSHA256(p)
}

// keygenCheck runs ssh-keygen -Q once for all probes and returns whether
// each is revoked.
func keygenCheck(keygen, krlPath string, probes []string) ([]bool, error) {
	cmd := exec.Command(keygen, append([]string{"-Q", "-f", krlPath}, probes...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var out []bool
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Text()
		if len(out) >= len(probes) || !strings.HasPrefix(line, probes[len(out)]) {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		switch {
		case strings.HasSuffix(line, ": ok"):
			out = append(out, false)
		case strings.HasSuffix(line, ": REVOKED"):
			out = append(out, true)
		default:
			return nil, fmt.Errorf("unexpected line %q", line)
		}
	}
	if len(out) != len(probes) {
		return nil, fmt.Errorf("%d verdicts for %d probes", len(out), len(probes))
	}
	return out, nil
}

// truth is the independent model of §3.7.
func (ds *diffSet) truth(p ssh.PublicKey) bool {
	plainRevoked := func(k ssh.PublicKey) bool {
		b := plainBlob(k)
		return ds.keys[string(b)] || ds.sha1s[sha1.Sum(b)] || ds.sha256s[sha256.Sum256(b)]
	}
	if plainRevoked(p) {
		return true
	}
	c, ok := p.(*ssh.Certificate)
	if !ok {
		return false
	}
	for _, scope := range []int{ds.caIndexOf(c.SignatureKey), -1} {
		if scope == -2 {
			continue
		}
		if ds.keyIDs[scope][c.KeyId] {
			return true
		}
		if c.Serial != 0 {
			for _, r := range ds.serials[scope] {
				if r.Lo <= c.Serial && c.Serial <= r.Hi {
					return true
				}
			}
		}
	}
	return plainRevoked(c.SignatureKey)
}

// caIndexOf returns the pool index of a CA key, -2 if it is not in the pool.
func (ds *diffSet) caIndexOf(k ssh.PublicKey) int {
	if i, ok := ds.caIndex[string(k.Marshal())]; ok {
		return i
	}
	return -2
}

func (env *diffEnv) generate(t *testing.T, rng *mrand.Rand, id int) *diffSet {
	ds := &diffSet{
		id:      id,
		version: rng.Uint64N(1000),
		serials: map[int][]SerialRange{},
		keyIDs:  map[int]map[string]bool{},
		keys:    map[string]bool{},
		sha1s:   map[[20]byte]bool{},
		sha256s: map[[32]byte]bool{},
		caIndex: map[string]int{},
	}
	for i, s := range env.cas {
		ds.caIndex[string(s.PublicKey().Marshal())] = i
	}
	// Scopes: 1-3 CAs (mostly one: each costs an ssh-keygen run) and,
	// half of the time, the wildcard, in random order.
	perm := rng.Perm(len(env.cas))
	nCA := 1
	if r := rng.IntN(10); r >= 8 {
		nCA = 3
	} else if r >= 5 {
		nCA = 2
	}
	ds.scopes = append(ds.scopes, perm[:nCA]...)
	if rng.IntN(2) == 0 {
		ds.scopes = append(ds.scopes, -1)
	}
	rng.Shuffle(len(ds.scopes), func(i, j int) { ds.scopes[i], ds.scopes[j] = ds.scopes[j], ds.scopes[i] })
	ds.specs = make([][]string, len(ds.scopes))
	oversizedScope := -1
	if id%20 == 7 {
		// The last scope: ssh-keygen -u cannot load its own oversized KRL.
		oversizedScope = len(ds.scopes) - 1
		ds.oversized = true
	}

	// Serial and key-ID lines per scope.
	for i, scope := range ds.scopes {
		if ds.keyIDs[scope] == nil {
			ds.keyIDs[scope] = map[string]bool{}
		}
		add := func(lo, hi uint64) {
			ds.serials[scope] = append(ds.serials[scope], SerialRange{lo, hi})
			ds.specs[i] = append(ds.specs[i], serialLine(rng, lo, hi))
		}
		if i == oversizedScope {
			stride := uint64(2 + rng.IntN(2))
			start := 1 + rng.Uint64N(1<<20)
			span := uint64(33000 + rng.IntN(30000))
			for s := start; s < start+span; s += stride {
				add(s, s)
			}
		}
		for range 1 + rng.IntN(4) {
			switch rng.IntN(6) {
			case 0: // scattered
				bits := 8 + rng.IntN(57)
				for range 1 + rng.IntN(40) {
					s := 1 + rng.Uint64N(1<<bits-1)
					add(s, s)
				}
			case 1: // dense run with holes: bitmaps
				start := 1 + rng.Uint64N(1<<30)
				p := 2 + rng.IntN(8)
				for s := start; s < start+uint64(50+rng.IntN(400)); s++ {
					if rng.IntN(10) < p {
						add(s, s)
					}
				}
			case 2: // long ranges, sometimes overlapping
				for range 1 + rng.IntN(4) {
					lo := 1 + rng.Uint64N(1<<40)
					add(lo, lo+1+rng.Uint64N(1<<uint(4+rng.IntN(28))))
				}
			case 3: // short runs with short gaps: bitmap/list/range trade-offs
				s := 1 + rng.Uint64N(1<<20)
				for range 5 + rng.IntN(40) {
					n := 1 + rng.Uint64N(6)
					if n == 1 {
						add(s, s)
					} else {
						add(s, s+n-1)
					}
					s += n + rng.Uint64N(150)
				}
			case 4: // near 2^64
				lo := math.MaxUint64 - rng.Uint64N(1000)
				if rng.IntN(2) == 0 {
					add(lo, lo)
				} else if lo < math.MaxUint64 {
					add(lo, math.MaxUint64)
				}
			case 5: // key IDs
				for range 1 + rng.IntN(6) {
					kid := randomKeyID(rng)
					ds.keyIDs[scope][kid] = true
					ds.specs[i] = append(ds.specs[i], "id: "+kid)
				}
			}
		}
	}

	// Probes (certificates) need the revocation model, so pick them now;
	// some certificates are also revoked by bare lines.
	pickScope := func() int { return rng.IntN(len(ds.scopes)) }
	randomCA := func() int { return rng.IntN(len(env.cas)) }
	subject := func() ssh.PublicKey { return env.subjects[rng.IntN(len(env.subjects))] }
	mkCert := func(ca int, serial uint64, kid string) *ssh.Certificate {
		return cert(t, env.cas[ca], subject(), serial, kid)
	}
	var probes []ssh.PublicKey
	for _, scope := range ds.scopes {
		ca := scope
		if ca < 0 {
			ca = randomCA()
		}
		rs := ds.serials[scope]
		for range 3 {
			if len(rs) == 0 {
				break
			}
			r := rs[rng.IntN(len(rs))]
			for _, s := range []uint64{r.Lo, r.Hi, r.Lo + rng.Uint64N(r.Hi-r.Lo+1), r.Lo - 1, r.Hi + 1} {
				if rng.IntN(2) == 0 {
					probes = append(probes, mkCert(ca, s, randomKeyID(rng)))
				}
			}
		}
		probes = append(probes, mkCert(ca, 1+rng.Uint64N(1<<40), randomKeyID(rng)))
		for kid := range ds.keyIDs[scope] {
			probes = append(probes, mkCert(ca, rng.Uint64N(3), kid))
			break
		}
		probes = append(probes, mkCert(ca, 0, randomKeyID(rng)))
	}
	// Bare certificate lines revoke under the certificate's own CA.
	for range rng.IntN(3) {
		ca := randomCA()
		serial := uint64(0)
		if rng.IntN(3) > 0 {
			serial = 1 + rng.Uint64N(1<<32)
		}
		c := mkCert(ca, serial, randomKeyID(rng))
		i := pickScope()
		ds.specs[i] = append(ds.specs[i], strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))))
		if serial == 0 {
			if ds.keyIDs[ca] == nil {
				ds.keyIDs[ca] = map[string]bool{}
			}
			ds.keyIDs[ca][c.KeyId] = true
		} else {
			ds.serials[ca] = append(ds.serials[ca], SerialRange{serial, serial})
		}
		probes = append(probes, c, mkCert(ca, serial+1, "other"))
	}
	// Keys and fingerprints, spread over the specification files.
	for range rng.IntN(5) {
		k := subject()
		if rng.IntN(4) == 0 {
			k = mkCert(randomCA(), 1+rng.Uint64N(100), "k") // a certificate stands for its key
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
		b := plainBlob(k)
		i := pickScope()
		switch rng.IntN(5) {
		case 0:
			ds.specs[i] = append(ds.specs[i], "key: "+line)
			ds.keys[string(b)] = true
		case 1:
			if _, isCert := k.(*ssh.Certificate); isCert {
				continue // a bare certificate line means something else
			}
			ds.specs[i] = append(ds.specs[i], line)
			ds.keys[string(b)] = true
		case 2:
			ds.specs[i] = append(ds.specs[i], "sha1: "+line)
			ds.sha1s[sha1.Sum(b)] = true
		case 3:
			ds.specs[i] = append(ds.specs[i], "sha256: "+line)
			ds.sha256s[sha256.Sum256(b)] = true
		case 4:
			sum := sha256.Sum256(b)
			ds.specs[i] = append(ds.specs[i], "hash: SHA256:"+base64.RawStdEncoding.EncodeToString(sum[:]))
			ds.sha256s[sum] = true
		}
		probes = append(probes, plainKey(k), mkCert(randomCA(), 5, "x"))
	}
	// Now and then revoke a CA key itself.
	if rng.IntN(6) == 0 {
		ca := env.cas[randomCA()].PublicKey()
		b := ca.Marshal()
		i := pickScope()
		if rng.IntN(2) == 0 {
			ds.specs[i] = append(ds.specs[i], "key: "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca))))
			ds.keys[string(b)] = true
		} else {
			sum := sha256.Sum256(b)
			ds.specs[i] = append(ds.specs[i], "hash: SHA256:"+base64.StdEncoding.EncodeToString(sum[:]))
			ds.sha256s[sum] = true
		}
		probes = append(probes, cert(t, env.cas[ds.caIndexOf(ca)], subject(), 1, "y"))
	}
	probes = append(probes, subject(), subject())
	for i := range ds.specs {
		rng.Shuffle(len(ds.specs[i]), func(a, b int) { ds.specs[i][a], ds.specs[i][b] = ds.specs[i][b], ds.specs[i][a] })
	}
	// Each probe costs ssh-keygen a certificate verification.
	if len(probes) > 20 {
		rng.Shuffle(len(probes), func(a, b int) { probes[a], probes[b] = probes[b], probes[a] })
		probes = probes[:20]
	}
	ds.probes = probes
	return ds
}

// serialLine writes a serial directive in one of the forms ssh-keygen
// accepts.
func serialLine(rng *mrand.Rand, lo, hi uint64) string {
	num := func(v uint64) string {
		switch rng.IntN(8) {
		case 0:
			return fmt.Sprintf("0x%x", v)
		case 1:
			return fmt.Sprintf("0%o", v)
		}
		return fmt.Sprint(v)
	}
	d := "serial:"
	if rng.IntN(10) == 0 {
		d = "SERIAL:\t"
	} else if rng.IntN(2) == 0 {
		d = "serial: "
	}
	s := d + num(lo)
	if hi != lo {
		s += "-" + num(hi)
	}
	if rng.IntN(10) == 0 {
		s += " # comment"
	}
	return s
}

func randomKeyID(rng *mrand.Rand) string {
	words := []string{"alice", "bob", "ci-deploy", "host.example.com", "Zoë", "user@corp", "a b", "x"}
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf("id-%d", rng.IntN(1000))
	case 1:
		if rng.IntN(4) == 0 {
			return ""
		}
	}
	return words[rng.IntN(len(words))] + fmt.Sprint(rng.IntN(4))
}

// TestLargeKRLAgreesWithSSHKeygen revokes 100,000 serials, dense runs and
// scattered ones, and has the ssh-keygen -Q of every OpenSSH release load
// the KRL and judge certificates inside, beside and outside them.
func TestLargeKRLAgreesWithSSHKeygen(t *testing.T) {
	releases := opensshtest.All(t)
	dir := t.TempDir()
	ca, caPub := edKey(t, 77)
	_, subject := edKey(t, 78)
	rng := mrand.New(mrand.NewPCG(100000, 1))
	k := &KRL{Version: 7, Comment: "100,000 serials"}
	var scattered []uint64
	for n := uint64(1); n <= 70000; n++ {
		if err := k.RevokeSerials(caPub, 3*n, 3*n); err != nil {
			t.Fatal(err)
		}
	}
	for len(scattered) < 30000 {
		s := 1_000_000 + rng.Uint64N(1<<40)
		scattered = append(scattered, s)
		if err := k.RevokeSerials(caPub, s, s); err != nil {
			t.Fatal(err)
		}
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	krlPath := writeFile(t, dir, "large.krl", b)
	probes := []struct {
		serial  uint64
		revoked bool
	}{{3, true}, {4, false}, {210000, true}, {210003, false}, {scattered[12345], true}, {scattered[12345] + 1, false}, {1 << 50, false}}
	var paths []string
	for i, p := range probes {
		c := cert(t, ca, subject, p.serial, fmt.Sprintf("probe-%d", i))
		paths = append(paths, writeFile(t, dir, fmt.Sprintf("p%d-cert.pub", i), ssh.MarshalAuthorizedKey(c)))
		if got := k.Check(c) != nil; got != p.revoked {
			t.Errorf("our Check on serial %d: revoked=%v, want %v", p.serial, got, p.revoked)
		}
	}
	t.Logf("KRL of %d bytes revoking 100,000 serials", len(b))
	for _, rel := range releases {
		t.Run(rel.Name, func(t *testing.T) {
			got, err := keygenCheck(rel.Keygen, krlPath, paths)
			if err != nil {
				t.Fatalf("ssh-keygen -Q: %v", err)
			}
			for i, p := range probes {
				if got[i] != p.revoked {
					t.Errorf("ssh-keygen -Q on serial %d: revoked=%v, want %v", p.serial, got[i], p.revoked)
				}
			}
		})
	}
}
