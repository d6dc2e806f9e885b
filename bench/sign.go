package main

// The sign suite: what one signature costs the CA, bare and as a
// certificate, on one core and on all of them. It is the physical limit
// that every other suite (batch signing, the service) is compared with.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/signer"
)

// signRounds is how many alternating slices a cell is measured in.
const signRounds = 4

// signKeyTypes are the CA key types the suite measures.
var signKeyTypes = []string{"ed25519", "ecdsa-p256", "rsa-3072"}

// signCell bounds one measurement in time and count.
func signCell(o *options) (time.Duration, int64) {
	if o.Short {
		return 100 * time.Millisecond, 200_000
	}
	return 2 * time.Second, 5_000_000
}

// newCASigner generates a CA key of keyType in-process and wraps it the way
// sshca does (signer.FromKey: RSA pinned to rsa-sha2-512).
func newCASigner(keyType string) (ssh.Signer, error) {
	priv, err := signer.Generate(keyType, rand.Reader)
	if err != nil {
		return nil, err
	}
	return signer.FromKey(priv)
}

// newSubjectKey returns a fresh ed25519 user key.
func newSubjectKey() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// userCert is a realistic user certificate as sshca issues it: an ed25519
// subject key, two principals, permit-pty, a serial, a key ID and ten
// minutes of validity.
func userCert(subject ssh.PublicKey, serial uint64, now time.Time) *ssh.Certificate {
	return &ssh.Certificate{
		Key:             subject,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           "alice@example.com-" + strconv.FormatUint(serial, 10),
		ValidPrincipals: []string{"alice", "deploy"},
		ValidAfter:      uint64(now.Unix()),
		ValidBefore:     uint64(now.Add(10 * time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
}

// signedBytes signs a realistic certificate with ca and returns it with
// the exact bytes its signature covers (everything but the signature).
func signedBytes(ca ssh.Signer) (*ssh.Certificate, []byte, error) {
	sub, err := newSubjectKey()
	if err != nil {
		return nil, nil, err
	}
	c := userCert(sub, 1_234_567, time.Now())
	if err := c.SignCert(rand.Reader, ca); err != nil {
		return nil, nil, err
	}
	full := c.Marshal()
	n := len(full) - 4 - len(ssh.Marshal(c.Signature))
	if n <= 0 {
		return nil, nil, errors.New("certificate shorter than its signature")
	}
	return c, full[:n:n], nil
}

// signMeasure runs op on workers goroutines until d has passed or maxOps
// operations were started, and returns the number completed and the wall
// time they took.
func signMeasure(ctx context.Context, workers int, d time.Duration, maxOps int64, op func(worker int, i int64) error) (int64, time.Duration, error) {
	var started, done atomic.Int64
	errs := make([]error, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := started.Add(1)
				if i > maxOps {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				if err := op(w, i); err != nil {
					errs[w] = err
					return
				}
				done.Add(1)
				if time.Now().After(deadline) {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	if done.Load() == 0 {
		return 0, 0, errors.New("no operation completed")
	}
	return done.Load(), elapsed, nil
}

// signCertOp returns an operation that issues a fresh realistic
// certificate (new struct, serial i) with ca, one subject key per worker.
func signCertOp(ca ssh.Signer, workers int) (func(w int, i int64) error, error) {
	subs := make([]ssh.PublicKey, workers)
	for w := range subs {
		var err error
		if subs[w], err = newSubjectKey(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	return func(w int, i int64) error {
		return userCert(subs[w], uint64(i), now).SignCert(rand.Reader, ca)
	}, nil
}

// signCertRate is the rate at which workers goroutines sign realistic user
// certificates with (*ssh.Certificate).SignCert under a fresh CA key of
// keyType ("ed25519", "ecdsa-p256", "rsa-3072", ...), wrapped as sshca wraps
// it, for about d. It is the same-run reference for the suites that sign
// through sshca: signCertRate(ctx, "ed25519", runtime.NumCPU(), d) is the
// raw all-core SignCert rate.
func signCertRate(ctx context.Context, keyType string, workers int, d time.Duration) (perSec float64, err error) {
	if workers < 1 {
		return 0, errors.New("signCertRate: workers must be at least 1")
	}
	ca, err := newCASigner(keyType)
	if err != nil {
		return 0, err
	}
	op, err := signCertOp(ca, workers)
	if err != nil {
		return 0, err
	}
	if err := op(0, 1); err != nil { // warm up
		return 0, err
	}
	n, elapsed, err := signMeasure(ctx, workers, d, 50_000_000, op)
	if err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// signResult is one measured cell.
type signResult struct {
	n       int64
	elapsed time.Duration
}

func (r signResult) perSec() float64      { return float64(r.n) / r.elapsed.Seconds() }
func (r signResult) perOp() time.Duration { return r.elapsed / time.Duration(r.n) }
func (r signResult) String() string       { return signRate(r.perSec()) }
func signRatio(slow, fast signResult) string {
	return fmt.Sprintf("%.2f×", fast.perSec()/slow.perSec())
}

func runSign(ctx context.Context, o *options) ([]section, error) {
	d, maxOps := signCell(o)
	cores := runtime.NumCPU()
	sec := section{
		Title:   "Raw signing: the CA signer in-process",
		Command: "go run ./bench -suite sign     # go test -bench . ./internal/signer for the Go benchmarks",
		Header: []string{"CA key", "operation", "1 core: µs/op", "1 core: ops/s",
			fmt.Sprintf("%d cores: ops/s", cores), "scaling", "SignCert ÷ Sign (1 core / all)"},
	}
	var sizes []string
	for _, kt := range signKeyTypes {
		o.logf("sign: %s", kt)
		ca, err := newCASigner(kt)
		if err != nil {
			return nil, err
		}
		cert, msg, err := signedBytes(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kt, err)
		}
		sizes = append(sizes, fmt.Sprintf("%s %d B", kt, len(msg)))
		sec.Checks = append(sec.Checks, signChecks(o, kt, cert)...)

		bare := func(int, int64) error {
			_, err := ca.Sign(rand.Reader, msg)
			return err
		}
		certOp, err := signCertOp(ca, cores)
		if err != nil {
			return nil, err
		}
		// Bare and certificate signatures alternate in rounds so that both
		// see the same noise from the machine's neighbours.
		ops := []func(int, int64) error{bare, certOp}
		for _, op := range ops {
			if err := op(0, 0); err != nil { // warm up
				return nil, fmt.Errorf("%s: %w", kt, err)
			}
		}
		var res [2][2]signResult // [bare, cert][1 core, all cores]
		for j, workers := range []int{1, cores} {
			for range signRounds {
				for i, op := range ops {
					n, el, err := signMeasure(ctx, workers, d/signRounds, maxOps/signRounds, op)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", kt, err)
					}
					res[i][j].n += n
					res[i][j].elapsed += el
				}
			}
		}
		for i, name := range []string{fmt.Sprintf("bare `Sign` (%d B)", len(msg)), "`SignCert` (user cert)"} {
			ratio := ""
			if i == 1 {
				ratio = fmt.Sprintf("%.2f× / %.2f×", res[0][0].perSec()/res[1][0].perSec(), res[0][1].perSec()/res[1][1].perSec())
			}
			sec.Rows = append(sec.Rows, []string{kt, name,
				signMicros(res[i][0].perOp()), res[i][0].String(), res[i][1].String(),
				signRatio(res[i][0], res[i][1]), ratio})
		}
	}
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("Each cell signs for %s (at most %d operations) after one warm-up signature, in %d slices "+
			"alternating with the other operation of the same row pair so both see the same machine noise; "+
			"\"1 core\" is one goroutine, \"%d cores\" is runtime.NumCPU() goroutines, and ops/s is operations per "+
			"second of wall time. The CA keys are generated in-process and wrapped by signer.FromKey, as sshca "+
			"wraps them (RSA pinned to rsa-sha2-512 for both Sign and SignCert). Bare `Sign` signs a buffer of "+
			"exactly the bytes a realistic certificate's signature covers (%s). `SignCert` builds and signs a "+
			"fresh user certificate each time: ed25519 subject, principals alice and deploy, permit-pty, serial, "+
			"key ID, 10 minutes of validity, 32-byte nonce from crypto/rand.",
			d, maxOps, signRounds, cores, strings.Join(sizes, ", ")),
		"SignCert ÷ Sign is the time of a certificate signature over the time of the bare signature: "+
			"how close issuing a certificate comes to the cost of the signature alone (1.00× is the limit).",
		"Load average at the end of the suite: "+loadAvg()+".")
	return []section{sec}, nil
}

// signChecks verifies a certificate signed by the CA signer of keyType: it
// verifies in Go, RSA uses rsa-sha2-512, and ssh-keygen -L reads it (which
// checks the signature too).
func signChecks(o *options, keyType string, cert *ssh.Certificate) []check {
	var out []check
	cc := ssh.CertChecker{Clock: func() time.Time { return time.Unix(int64(cert.ValidAfter)+1, 0) }}
	err := cc.CheckCert("alice", cert)
	out = append(out, check{Name: keyType + ": SignCert output verifies", OK: err == nil, Detail: signErrDetail(err, "signature, principal and validity check with x/crypto/ssh")})
	if cert.SignatureKey.Type() == ssh.KeyAlgoRSA {
		ok := cert.Signature.Format == ssh.KeyAlgoRSASHA512
		out = append(out, check{Name: keyType + ": certificates signed with rsa-sha2-512", OK: ok, Detail: "signature format " + cert.Signature.Format})
	}
	path := filepath.Join(o.Work, "sign-"+keyType+"-cert.pub")
	err = os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o600)
	var outp []byte
	if err == nil {
		outp, err = exec.Command(o.Keygen, "-L", "-f", path).CombinedOutput()
	}
	detail := "ssh-keygen -L reads it"
	if err == nil && cert.SignatureKey.Type() == ssh.KeyAlgoRSA && !strings.Contains(string(outp), "rsa-sha2-512") {
		err = errors.New("ssh-keygen -L does not show rsa-sha2-512")
	}
	if err != nil {
		detail = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(outp)))
	}
	out = append(out, check{Name: keyType + ": OpenSSH reads the certificate", OK: err == nil, Detail: detail})
	return out
}

func signErrDetail(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// signMicros formats a duration in µs.
func signMicros(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us >= 100 {
		return fmt.Sprintf("%.0f", us)
	}
	return fmt.Sprintf("%.1f", us)
}

// signRate formats a rate with thousands separators.
func signRate(perSec float64) string {
	if perSec < 100 {
		return fmt.Sprintf("%.1f", perSec)
	}
	return krlGroup(int64(perSec + 0.5))
}

// krlGroup formats n with thousands separators: 1,234,567.
func krlGroup(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
