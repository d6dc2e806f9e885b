package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
)

// maxBatchKeys bounds the keys of one batch invocation.
const maxBatchKeys = 100_000

// batchSign is "sign user|host" with several keys: every key is read and
// checked before anything is signed, so one bad key refuses the batch
// (invariant 9) with one audit entry, as the single-key path refuses one key.
type batchSign struct {
	kind       string // "user" or "host"
	role       string
	keyID      string
	principals []string
	ttl        time.Duration
	// validFrom, validUntil: the validity window asked for (zero: none).
	validFrom, validUntil time.Time
	passFile              string
	asJSON                bool
}

// batchKey is one subject key of a batch.
type batchKey struct {
	path, dest string
	data       []byte
	pub        ssh.PublicKey
}

func (b *batchSign) run(e *env, args []string, keysFrom string) error {
	paths := append([]string(nil), args...)
	if keysFrom != "" {
		listed, err := readKeyList(e, keysFrom)
		if err != nil {
			return err
		}
		paths = append(paths, listed...)
	}
	if len(paths) == 0 {
		return fmt.Errorf("sign %s: --keys-from %s lists no key files", b.kind, keysFrom)
	}
	if len(paths) > maxBatchKeys {
		return withHint(fmt.Errorf("sign %s: %d keys; one invocation signs at most %d", b.kind, len(paths), maxBatchKeys), "split the list")
	}

	// Everything that needs no CA: the files, their destinations and the
	// directories the certificates go to.
	keys := make([]batchKey, len(paths))
	byPath := make(map[string]string, len(paths))
	byDest := make(map[string]string, len(paths))
	dirs := map[string]bool{}
	for i, p := range paths {
		clean := filepath.Clean(p)
		if prev, dup := byPath[clean]; dup {
			return withHint(fmt.Errorf("%s: key file given twice (also as %s)", p, prev), "give each key file once")
		}
		byPath[clean] = p
		dest := certPath(p)
		if prev, dup := byDest[filepath.Clean(dest)]; dup {
			return fmt.Errorf("%s and %s would both be certified into %s", prev, p, dest)
		}
		byDest[filepath.Clean(dest)] = p
		keys[i] = batchKey{path: p, dest: dest}
		dirs[filepath.Dir(dest)] = true
	}
	if err := readKeyFiles(keys); err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	for dir := range dirs {
		// Refuse before signing: a certificate that cannot be written would
		// still use up a serial.
		if err := probeWritable(dir); err != nil {
			return fmt.Errorf("cannot write certificates to %s: %w", dir, err)
		}
	}

	h, err := e.openHome(b.passFile)
	if err != nil {
		return err
	}
	defer h.Close()
	t := policy.UserCert
	if b.kind == "host" {
		t = policy.HostCert
	}
	details := map[string]string{"source": "cli", "batch": strconv.Itoa(len(keys))}
	caller := e.caller()
	request := func(pub ssh.PublicKey) ca.Request {
		return ca.Request{Type: t, Role: b.role, KeyID: b.keyID, Principals: b.principals, TTL: b.ttl, ValidAfter: b.validFrom, ValidBefore: b.validUntil, PublicKey: pub,
			Caller: caller, Details: details}
	}

	// Keys: one bad or repeated key refuses the batch, recorded once.
	// Parsed on every CPU; judged in order, so the first bad key is the one named.
	pubs, fps, perrs := make([]ssh.PublicKey, len(keys)), make([]string, len(keys)), make([]error, len(keys))
	inParallel(len(keys), func(i int) {
		if pubs[i], perrs[i] = ca.ParseSubjectKey(keys[i].data); perrs[i] == nil {
			fps[i] = ssh.FingerprintSHA256(pubs[i])
		}
	})
	seen := make(map[string]string, len(keys))
	for i := range keys {
		k := &keys[i]
		pub, err := pubs[i], perrs[i]
		if err != nil {
			return fmt.Errorf("%s: %w", k.path, h.Authority.Deny(e.ctx, request(nil), "bad-key", err))
		}
		fp := fps[i]
		if prev, dup := seen[fp]; dup {
			err := &ca.KeyError{Msg: fmt.Sprintf("same key as %s (%s)", prev, fp)}
			return withHint(fmt.Errorf("%s: %w", k.path, h.Authority.Deny(e.ctx, request(pub), "duplicate-key", err)), "give each key once")
		}
		seen[fp] = k.path
		k.pub = pub
	}

	// Policy: the same role, principals and lifetime for every key, so one
	// decision (and at most one denial) covers the batch.
	first := request(keys[0].pub)
	if rule, err := h.Authority.Check(e.ctx, first); err != nil {
		if rule == "" {
			return err
		}
		err = h.Authority.Deny(e.ctx, first, rule, err)
		if rule == policy.RuleUnknownRole {
			return withHint(err, rolesHint(h.Config.Roles, t))
		}
		return b.refusal(err)
	}
	// Open the CA key before any serial is reserved: a locked key is a
	// refusal, audited like one, as in the single-key path.
	caKey, err := ca.ActiveKey(e.ctx, h.Authority.Store, ca.CAType(t))
	if err != nil {
		return err
	}
	if _, err := h.Authority.Signer(e.ctx, caKey); err != nil {
		if errors.Is(err, signer.ErrWrongPassphrase) || errors.Is(err, errNoPassphrase) {
			return b.refusal(h.Authority.Deny(e.ctx, first, "ca-key-locked", err))
		}
		return fmt.Errorf("open %s CA key: %w", b.kind, err)
	}

	reqs := make([]ca.Request, len(keys))
	for i, k := range keys {
		reqs[i] = request(k.pub)
	}
	batch, err := h.Authority.PrepareMany(e.ctx, reqs)
	if err != nil {
		return err
	}
	// While the batch is recorded, write the certificates to temp files and
	// make them durable; they appear under their names (renames) only once
	// the records are committed, so none leaves before its serial is durable.
	signed := batch.Signed()
	var staged []atomicfile.File
	for i, c := range signed {
		if c != nil {
			staged = append(staged, atomicfile.File{Path: keys[i].dest, Data: ssh.MarshalAuthorizedKey(c), Perm: 0o644})
		}
	}
	type stageResult struct {
		st  *atomicfile.Staged
		err error
	}
	stagedc := make(chan stageResult, 1)
	go func() {
		st, err := atomicfile.StageMany(staged)
		stagedc <- stageResult{st, err}
	}()
	certs, errs, err := batch.Commit(e.ctx)
	stage := <-stagedc
	if err != nil {
		if stage.st != nil {
			stage.st.Abort()
		}
		return err
	}
	var issued []*ssh.Certificate
	var dests []string
	var refused []error
	allIssued := true
	for i, c := range certs {
		if errs[i] != nil {
			refused = append(refused, fmt.Errorf("%s: %w", keys[i].path, errs[i]))
			allIssued = allIssued && signed[i] == nil
			continue
		}
		issued = append(issued, c)
		dests = append(dests, keys[i].dest)
	}
	if stage.err == nil && !allIssued {
		// Some signed certificates were refused at commit (the CA key
		// rotated meanwhile): stage again, only what was recorded.
		stage.st.Abort()
		var files []atomicfile.File
		for i, c := range issued {
			files = append(files, atomicfile.File{Path: dests[i], Data: ssh.MarshalAuthorizedKey(c), Perm: 0o644})
		}
		stage.st, stage.err = atomicfile.StageMany(files)
	}
	if stage.err == nil {
		stage.err = stage.st.Commit()
	}
	if stage.err != nil {
		lo, hi := serialRange(issued)
		return fmt.Errorf("certificates %d-%d were issued but not all could be written: %w", lo, hi, stage.err)
	}
	if err := b.report(e, h, issued, dests); err != nil {
		return err
	}
	if len(refused) > 0 {
		return fmt.Errorf("%d of %d certificates refused: %w", len(refused), len(keys), refused[0])
	}
	return nil
}

// report prints what was issued: one "SERIAL CERTFILE" line each and a
// summary, or with --json one certificate object each.
func (b *batchSign) report(e *env, h *home.Home, issued []*ssh.Certificate, dests []string) error {
	if len(issued) == 0 {
		return nil
	}
	if b.asJSON {
		files := make(map[uint64]string, len(issued))
		for i, c := range issued {
			files[c.Serial] = dests[i]
		}
		out, err := issuedJSON(e, h, issued[0], files)
		if err != nil {
			return err
		}
		return printJSON(e, out...)
	}
	w := bufio.NewWriter(e.stdout)
	for i, c := range issued {
		fmt.Fprintf(w, "%d %s\n", c.Serial, dests[i])
	}
	lo, hi := serialRange(issued)
	after, before := issued[0].ValidAfter, issued[0].ValidBefore
	for _, c := range issued {
		after, before = min(after, c.ValidAfter), max(before, c.ValidBefore)
	}
	fmt.Fprintf(w, "Signed %d %s certificates: serials %d-%d, key id %q, principals %s, valid %s to %s\n",
		len(issued), b.kind, lo, hi, b.keyID, strings.Join(issued[0].ValidPrincipals, ","),
		time.Unix(int64(after), 0).UTC().Format(time.RFC3339), time.Unix(int64(before), 0).UTC().Format(time.RFC3339))
	return w.Flush()
}

// refusal adds the hint the single-key path gives to a policy denial.
func (b *batchSign) refusal(err error) error {
	var de *policy.DenyError
	if errors.As(err, &de) {
		return withHint(err, denyHint(de.Rule, b.kind))
	}
	if errors.Is(err, signer.ErrWrongPassphrase) {
		return withHint(errors.New("wrong passphrase for the CA key"), "check --passphrase-file")
	}
	return err
}

// readKeyList reads --keys-from: one public key file path per line;
// surrounding blanks, blank lines and lines starting with # are ignored.
func readKeyList(e *env, from string) ([]string, error) {
	var r io.Reader = e.stdin
	if from != "-" {
		f, err := os.Open(from)
		if err != nil {
			return nil, fmt.Errorf("--keys-from: %w", err)
		}
		defer f.Close()
		r = f
	}
	var paths []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(paths) == maxBatchKeys {
			return nil, withHint(fmt.Errorf("--keys-from %s: more than %d keys", from, maxBatchKeys), "split the list")
		}
		paths = append(paths, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--keys-from %s: %w", from, err)
	}
	return paths, nil
}

// readKeyFiles reads every key file, on every CPU (opening a file is mostly
// kernel time), and returns the error of the first file in order that
// could not be read.
func readKeyFiles(keys []batchKey) error {
	errs := make([]error, len(keys))
	inParallel(len(keys), func(i int) { keys[i].data, errs[i] = readKeyFile(keys[i].path) })
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// readKeyFile reads at most one byte more than a public key file may hold
// (ParseSubjectKey refuses a longer one).
func readKeyFile(path string) ([]byte, error) {
	return atomicfile.ReadSmall(path, ca.MaxKeyFileLen+1)
}

// probeWritable checks that a file can be created in dir.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".sshca-probe-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// serialRange returns the lowest and highest serial of certs.
func serialRange(certs []*ssh.Certificate) (lo, hi uint64) {
	for i, c := range certs {
		if i == 0 || c.Serial < lo {
			lo = c.Serial
		}
		hi = max(hi, c.Serial)
	}
	return lo, hi
}

// inParallel runs fn(0..n-1) on every CPU.
func inParallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
