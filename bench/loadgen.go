package main

// The service suite's load generator. It shares two CPUs with the server it
// measures, so every request costs it as little as possible: one kept-alive
// TLS connection per client, request bytes built before the clock starts,
// one Write per request, and a response parser that reads only what it
// needs (status, Content-Length or chunked framing) and appends the body to
// one per-client arena. Bodies are checked after the clock stops.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
)

// loadSubjects is a pool of distinct subject keys and their pre-serialised
// request bodies, so that the certificates of a run differ.
type loadSubjects struct {
	Keys   []ssh.PublicKey
	Bodies [][]byte // JSON of api.CertRequest for Keys[i]
}

// newLoadSubjects generates n ed25519 subject keys and their request bodies
// for role with ttl.
func newLoadSubjects(n int, role, ttl string) (*loadSubjects, error) {
	s := &loadSubjects{Keys: make([]ssh.PublicKey, n), Bodies: make([][]byte, n)}
	for i := range n {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if s.Keys[i], err = ssh.NewPublicKey(pub); err != nil {
			return nil, err
		}
		line := string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(s.Keys[i])))
		if s.Bodies[i], err = json.Marshal(api.CertRequest{PublicKey: line, Role: role, TTL: ttl}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loadTarget is a running service and how to ask it for certificates.
type loadTarget struct {
	Addr        string // 127.0.0.1:PORT
	Fingerprint string // SHA256:<base64> of its TLS certificate's DER, as `sshca serve` prints it
	Requests    [][]byte
	Status      int // the success status (step-ca answers 201); 0 means 200
}

// newLoadTarget pre-builds one complete HTTP/1.1 request per subject.
func newLoadTarget(addr, fingerprint, token, path string, subj *loadSubjects) *loadTarget {
	t := &loadTarget{Addr: addr, Fingerprint: fingerprint, Requests: make([][]byte, len(subj.Bodies))}
	for i, body := range subj.Bodies {
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, addr, token, len(body))
		t.Requests[i] = append([]byte(head), body...)
	}
	return t
}

// tlsConfig accepts exactly the server certificate whose fingerprint was
// printed at startup (computed as server.CertFingerprint does).
func (t *loadTarget) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]); got != t.Fingerprint {
				return fmt.Errorf("tls: server certificate is %s, not the pinned %s", got, t.Fingerprint)
			}
			return nil
		},
	}
}

// loadLevel bounds one run in clients, count and time.
type loadLevel struct {
	Clients int
	MaxN    int           // timed requests, all clients together
	MaxTime time.Duration // no request starts after this
}

// loadResult is what one run measured and received.
type loadResult struct {
	N         int             // timed requests completed
	Elapsed   time.Duration   // from the first timed request to the last response
	Latency   []time.Duration // of the timed requests, sorted
	ClientCPU time.Duration   // user+system CPU of this whole process over the timed phase
	ServerCPU time.Duration   // delta of the server's CPU over the timed phase
	Sent      int             // requests sent, warm-ups included
	Received  []loadBody      // every 200 body, warm-ups included
}

// loadBody is one response body and the subject key it was for.
type loadBody struct {
	Body []byte
	Key  int
}

// loadClient is one worker: one connection, one request in flight.
type loadClient struct {
	conn  *tls.Conn
	br    *bufio.Reader
	arena []byte // bodies, back to back
	ends  []int  // end of each body in arena
	keys  []int  // subject index of each body
	lat   []time.Duration
	sent  int
}

// loadStatusError is a response with another status than the run expects.
type loadStatusError struct {
	Status int
	Body   string
}

func (e *loadStatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// errLoadClosed means the server ended a kept-alive connection.
var errLoadClosed = errors.New("server closed the kept-alive connection (Connection: close)")

// do sends request i and reads its response; the body is kept in the arena.
func (c *loadClient) do(t *loadTarget, i int) error {
	k := i % len(t.Requests)
	if _, err := c.conn.Write(t.Requests[k]); err != nil {
		return err
	}
	c.sent++
	start := len(c.arena)
	status, arena, closing, err := loadReadResponse(c.br, c.arena)
	c.arena = arena
	if err != nil {
		return err
	}
	if want := cmp.Or(t.Status, 200); status != want {
		body := c.arena[start:]
		c.arena = c.arena[:start]
		return &loadStatusError{Status: status, Body: string(bytes.TrimSpace(body))}
	}
	c.ends = append(c.ends, len(c.arena))
	c.keys = append(c.keys, k)
	if closing {
		return errLoadClosed
	}
	return nil
}

// runLoad opens lvl.Clients connections, warms each with one request, then
// has every client send requests back to back, each waiting for its
// response, until lvl.MaxN requests have been sent or lvl.MaxTime has
// passed. serverCPU, if not nil, is sampled right before and after the
// timed phase. Any transport error or non-200 response ends the run with an
// error.
func runLoad(ctx context.Context, t *loadTarget, lvl loadLevel, serverCPU func() (time.Duration, error)) (*loadResult, error) {
	clients := make([]*loadClient, lvl.Clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	cfg := t.tlsConfig()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	// Each request is bounded by the connection's deadline: the level's
	// time bound plus a generous allowance for one slow response.
	deadline := time.Now().Add(lvl.MaxTime + 60*time.Second)
	var next atomic.Int64
	warm := func(c *loadClient) error {
		return c.do(t, int(next.Add(1)-1))
	}
	var wg sync.WaitGroup
	errs := make([]error, lvl.Clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := dialer.DialContext(ctx, "tcp", t.Addr)
			if err != nil {
				errs[w] = fmt.Errorf("client %d: dial: %w", w, err)
				return
			}
			c := &loadClient{conn: nc.(*tls.Conn), br: bufio.NewReaderSize(nc, 16<<10)}
			c.lat = make([]time.Duration, 0, lvl.MaxN/lvl.Clients+16)
			clients[w] = c
			_ = c.conn.SetDeadline(deadline)
			if err := warm(c); err != nil {
				errs[w] = fmt.Errorf("client %d: warm-up request: %w", w, err)
				return
			}
			// Room for this client's share of the bodies, sized by the
			// warm-up's, so that the timed phase does not grow the arena.
			share := lvl.MaxN/lvl.Clients + 16
			c.arena = slices.Grow(c.arena, share*(len(c.arena)+len(c.arena)/8))
			c.ends = slices.Grow(c.ends, share)
			c.keys = slices.Grow(c.keys, share)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Cancellation closes the connections, which ends every blocked read.
	stop := context.AfterFunc(ctx, func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	defer stop()

	res := &loadResult{}
	var cpu0 time.Duration
	if serverCPU != nil {
		var err error
		if cpu0, err = serverCPU(); err != nil {
			return nil, err
		}
	}
	ru0, err := loadRusage()
	if err != nil {
		return nil, err
	}
	var timed atomic.Int64
	begin := time.Now()
	end := begin.Add(lvl.MaxTime)
	for w, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if timed.Add(1) > int64(lvl.MaxN) {
					return
				}
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				if err := c.do(t, int(next.Add(1)-1)); err != nil {
					errs[w] = fmt.Errorf("client %d: %w", w, err)
					// End the others' runs too: no more requests start.
					timed.Store(int64(lvl.MaxN))
					return
				}
				c.lat = append(c.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(begin)
	ru1, err := loadRusage()
	if err != nil {
		return nil, err
	}
	res.ClientCPU = ru1 - ru0
	if serverCPU != nil {
		cpu1, err := serverCPU()
		if err != nil {
			return nil, err
		}
		res.ServerCPU = cpu1 - cpu0
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range clients {
		res.Latency = append(res.Latency, c.lat...)
		res.Sent += c.sent
		from := 0
		for j, to := range c.ends {
			res.Received = append(res.Received, loadBody{Body: c.arena[from:to], Key: c.keys[j]})
			from = to
		}
	}
	res.N = len(res.Latency)
	slices.Sort(res.Latency)
	return res, nil
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted.
func (r *loadResult) percentile(p float64) time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	i := int(float64(len(r.Latency))*p+0.999999) - 1
	return r.Latency[max(0, min(i, len(r.Latency)-1))]
}

// loadRusage returns this process's user+system CPU time so far.
func loadRusage() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// maxLoadBody bounds a response body (a certificate response is about 1 KiB).
const maxLoadBody = 1 << 20

// loadReadResponse reads one HTTP/1.1 response from br, appends its body
// to dst and returns the status code, the extended dst and whether the
// server will close the connection. It understands exactly what a Go
// net/http server sends: a Content-Length or a chunked body.
func loadReadResponse(br *bufio.Reader, dst []byte) (status int, out []byte, closing bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, dst, false, loadEOF(err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		!loadDigits(line[9:12]) || (len(line) > 12 && line[12] != ' ' && line[12] != '\r') {
		return 0, dst, false, fmt.Errorf("malformed status line %q", line)
	}
	status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, dst, false, loadEOF(err)
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, dst, false, fmt.Errorf("malformed header line %q", h)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			n, ok := loadAtoi(v, 10)
			if !ok || n > maxLoadBody {
				return 0, dst, false, fmt.Errorf("bad Content-Length %q", v)
			}
			length = n
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(v, []byte("chunked")) {
				return 0, dst, false, fmt.Errorf("unsupported Transfer-Encoding %q", v)
			}
			chunked = true
		case bytes.EqualFold(k, []byte("Connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case chunked:
		dst, err = loadReadChunked(br, dst)
	case length >= 0:
		dst, err = loadReadN(br, dst, length)
	case status == 204 || status == 304:
	default:
		err = errors.New("response has neither Content-Length nor chunked body")
	}
	return status, dst, closing, err
}

func loadReadChunked(br *bufio.Reader, dst []byte) ([]byte, error) {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, loadEOF(err)
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, ok := loadAtoi(bytes.TrimSpace(size), 16)
		if total += n; !ok || total > maxLoadBody {
			return dst, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			break
		}
		if dst, err = loadReadN(br, dst, n); err != nil {
			return dst, err
		}
		if line, err = br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(line, "\r\n")) != 0 {
			return dst, fmt.Errorf("chunk not followed by CRLF (%v)", loadEOF(err))
		}
	}
	for { // trailers, then the empty line
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, loadEOF(err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return dst, nil
		}
	}
}

// loadReadN appends exactly n bytes from br to dst.
func loadReadN(br *bufio.Reader, dst []byte, n int) ([]byte, error) {
	dst = slices.Grow(dst, n)
	m := len(dst)
	dst = dst[:m+n]
	if _, err := io.ReadFull(br, dst[m:]); err != nil {
		return dst[:m], loadEOF(err)
	}
	return dst, nil
}

func loadEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func loadDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// loadAtoi parses a non-negative number in base 10 or 16 without
// allocating; it refuses empty input and values above maxLoadBody*16.
func loadAtoi(b []byte, base int) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return 0, false
		}
		if n = n*base + d; n > maxLoadBody*16 {
			return 0, false
		}
	}
	return n, true
}
