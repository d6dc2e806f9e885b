// Package server is the certificate service's HTTP API: it authenticates
// callers (OIDC ID tokens, API tokens, proof of possession), applies the
// access policy, asks the authority to sign, and maps errors to status codes.
// It is the only package that speaks HTTP or exports metrics; it never holds
// private keys itself and never logs secrets.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Limits on requests.
const (
	MaxBodyBytes  = 64 << 10
	ChallengeTTL  = 2 * time.Minute
	maxTokenBytes = 16 << 10
)

// OIDCIdentity is what an ID token verifier returns.
type OIDCIdentity struct {
	User   string
	Groups []string
	MFA    bool // the token's amr claim shows a second factor
}

// IDTokenVerifier checks OIDC ID tokens.
type IDTokenVerifier interface {
	Verify(ctx context.Context, rawIDToken string) (*OIDCIdentity, error)
}

// Options configure a Server.
type Options struct {
	Config    *config.Config
	Store     store.ServiceStore
	Authority *ca.Authority
	OIDC      IDTokenVerifier // nil: SSO disabled
	Logger    *slog.Logger
	Now       func() time.Time
	Metrics   *Metrics
	// Console, when set, serves the admin console under /ui/ (package
	// console; sshca.yaml's service.console turns it on).
	Console http.Handler
}

// Server is the certificate service.
type Server struct {
	o       Options
	log     *slog.Logger
	now     func() time.Time
	limiter *rateLimiter // per caller
	anon    *rateLimiter // per source address, for requests without a valid credential
	tokens  tokenCache
	metrics *Metrics
}

// New returns a Server.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	svc := o.Config.ServiceOrDefault()
	s := &Server{
		o: o, log: o.Logger, now: o.Now, metrics: o.Metrics,
		limiter: newRateLimiter(svc.RateLimit, time.Minute, o.Now),
		anon:    newRateLimiter(svc.AnonymousRateLimit, time.Minute, o.Now),
	}
	if o.Authority != nil {
		s.metrics.commitStats(o.Authority.CommitStats)
	}
	if o.OIDC != nil {
		s.metrics.oidcUp(s.oidcStatus)
	}
	if o.Store != nil {
		s.metrics.expiry(&expiryCollector{s: s})
	}
	return s
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.route(mux, "POST /v1/certs/user", "certs_user", s.handleUserCert)
	s.route(mux, "POST /v1/certs/host", "certs_host", s.handleHostCert)
	s.route(mux, "POST /v1/certs/user/batch", "certs_user_batch", s.handleUserCertBatch)
	s.route(mux, "POST /v1/certs/host/batch", "certs_host_batch", s.handleHostCertBatch)
	s.route(mux, "POST /v1/certs/renew/challenge", "renew_challenge", s.handleChallenge)
	s.route(mux, "POST /v1/certs/renew", "renew", s.handleRenew)
	s.route(mux, "POST /v1/revocations", "revocations", s.handleRevocation)
	s.route(mux, "GET /v1/krl", "krl", s.handleKRL)
	s.route(mux, "GET /v1/krl.sig", "krl_sig", s.handleKRLSig)
	s.route(mux, "GET /v1/ca/{type}", "ca", s.handleCAKeys)
	s.route(mux, "GET /v1/auth/config", "auth_config", s.handleAuthConfig)
	s.route(mux, "GET /v1/accounts", "accounts", s.handleAccounts)
	s.route(mux, "POST /v1/totp/enroll", "totp_enroll", s.handleTOTPEnroll)
	s.route(mux, "POST /v1/hosts/report", "host_report", s.handleHostReport)
	s.route(mux, "GET /healthz", "healthz", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain")
		_, err := io.WriteString(w, "ok\n")
		return err
	})
	s.route(mux, "GET /readyz", "readyz", s.handleReady)
	mux.Handle("GET /metrics", s.metrics.Handler())
	if s.o.Console != nil {
		// Through route, for the request log line, ID and metrics; the
		// console answers its own errors as pages.
		s.route(mux, "/ui/", "console", func(w http.ResponseWriter, r *http.Request) error {
			s.o.Console.ServeHTTP(w, r)
			return nil
		})
	}
	// Through route, so that a 404 carries a request ID like every other error.
	s.route(mux, "/", "not_found", func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{status: http.StatusNotFound, msg: "no such endpoint", code: "not-found"}
	})
	return mux
}

type ctxKey int

const requestIDKey ctxKey = 1

// RequestID returns the request's ID.
func RequestID(ctx context.Context) string {
	v, _ := ctx.Value(requestIDKey).(string)
	return v
}

// newRequestID returns 24 hex digits: 6 bytes of Unix milliseconds, then 6
// random bytes. IDs sort by time, so the key IDs that embed them land at the
// end of the store's key-ID index instead of on a random page.
func newRequestID() string {
	var b [12]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route wraps h with request IDs, logging, metrics and error mapping.
func (s *Server) route(mux *http.ServeMux, pattern, name string, h handlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		id := newRequestID()
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-ID", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err := h(sw, r)
		if err != nil {
			s.writeError(sw, r, err)
		}
		dur := s.now().Sub(start)
		s.metrics.observe(name, sw.status, dur)
		attrs := []any{"request_id", id, "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", float64(dur.Microseconds()) / 1000, "remote", r.RemoteAddr}
		if sw.serial != 0 {
			// One log line per issuance: the request's, naming the certificate.
			attrs = append(attrs, "serial", sw.serial)
		}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		s.log.LogAttrs(ctx, levelFor(sw.status), "request", argsToAttrs(attrs)...)
	})
}

func levelFor(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func argsToAttrs(args []any) []slog.Attr {
	var out []slog.Attr
	for i := 0; i+1 < len(args); i += 2 {
		out = append(out, slog.Any(args[i].(string), args[i+1]))
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	serial      uint64 // of the certificate issued, for the request log line
}

// noteSerial records the serial of the certificate a response carries.
func noteSerial(w http.ResponseWriter, serial uint64) {
	if sw, ok := w.(*statusWriter); ok {
		sw.serial = serial
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// httpError is an error with a status and a public message.
type httpError struct {
	status int
	msg    string // public
	code   string
	err    error // logged only
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}
func (e *httpError) Unwrap() error { return e.err }

func badRequest(code, format string, a ...any) error {
	return &httpError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, a...)}
}

// writeError maps an error to a status and a short public message. This is
// the one place where domain errors meet HTTP.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg, code := publicError(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sshca"`)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	if code == "oidc-unavailable" {
		w.Header().Set("Retry-After", retryAfterOIDC)
	}
	writeJSON(w, status, api.Error{Error: msg, Code: code, RequestID: RequestID(r.Context())})
}

// publicError is the status, public message and code of err, as an error
// response (or a refused element of a batch) shows it.
func publicError(err error) (status int, msg, code string) {
	status, msg, code = http.StatusInternalServerError, "internal error", "internal"
	var he *httpError
	var de *policy.DenyError
	var ke *ca.KeyError
	var ce *ca.CredentialError
	switch {
	case errors.As(err, &he):
		status, msg, code = he.status, he.msg, he.code
	case errors.As(err, &de):
		status, msg, code = http.StatusForbidden, de.Error(), de.Rule
	case errors.As(err, &ke):
		status, msg, code = http.StatusBadRequest, ke.Error(), "bad-key"
	case errors.As(err, &ce):
		status, msg, code = http.StatusUnauthorized, strings.TrimPrefix(ce.Error(), "ca: "), "unauthorized"
	case errors.Is(err, ca.ErrNeverIssued):
		// The domain's message names the CLI flag; the API's switch is a field.
		msg = strings.ReplaceAll(oneLine(err.Error()), "use --force", `set "force": true`)
		status, code = http.StatusBadRequest, "never-issued"
	case errors.Is(err, store.ErrTokenInvalid):
		status, msg, code = http.StatusUnauthorized, "API token was revoked or has expired", "unauthorized"
	case errors.Is(err, store.ErrNotFound):
		status, msg, code = http.StatusNotFound, "not found", "not-found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, msg, code = http.StatusServiceUnavailable, "request cancelled", "cancelled"
	}
	return status, msg, code
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v) // what json.Encoder.Encode writes, before its newline
	if err == nil {
		b = append(b, '\n')
	}
	writeRawJSON(w, status, b)
}

// decodeJSON reads a JSON body strictly: the right content type, a bounded
// size, no unknown fields, nothing after the object.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONUpTo(w, r, v, MaxBodyBytes)
}

// decodeJSONUpTo is decodeJSON with a body limit of limit bytes.
func decodeJSONUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &httpError{status: http.StatusUnsupportedMediaType, code: "bad-content-type", msg: "Content-Type must be application/json"}
	}
	// api.DecodeStrict reads the whole (bounded) body, so an oversized one
	// is a 413 even when its start is malformed, and refuses what
	// encoding/json lets through: field names in another case, duplicate
	// keys, trailing data.
	if err := api.DecodeStrict(http.MaxBytesReader(w, r.Body, limit), v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{status: http.StatusRequestEntityTooLarge, code: "too-large", msg: fmt.Sprintf("request body over %d bytes", limit)}
		}
		return badRequest("bad-json", "malformed JSON: %s", strings.TrimPrefix(jsonProblem(err), "api: "))
	}
	return nil
}

func jsonProblem(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return strings.TrimPrefix(msg, "json: ")
}

func (s *Server) handleAuthConfig(w http.ResponseWriter, r *http.Request) error {
	ac := api.AuthConfig{}
	if o := s.o.Config.OIDC; o != nil {
		ac.OIDCIssuer, ac.OIDCClientID = o.Issuer, o.ClientID
	}
	writeJSON(w, http.StatusOK, ac)
	return nil
}

// parseKeyLine parses an authorized_keys line from a request.
func parseKeyLine(line string) (ssh.PublicKey, error) {
	return ca.ParseSubjectKey([]byte(line))
}

// handleAccounts serves the policy's accounts map (system account ->
// principals), from which agents write AuthorizedPrincipalsFile files.
func (s *Server) handleAccounts(w http.ResponseWriter, r *http.Request) error {
	acc := s.o.Config.Accounts
	if acc == nil {
		acc = map[string][]string{}
	}
	writeJSON(w, http.StatusOK, acc)
	return nil
}

// refuse records a refused request that is not a certificate request (a
// revocation, a TOTP enrollment, a host report) in the audit log under
// action, and returns err.
func (s *Server) refuse(r *http.Request, actor, action string, err error) error {
	rule := ruleOf(err)
	s.metrics.denied("", rule)
	ev := audit.Entry{Time: s.now(), Actor: actor, Action: action, Outcome: "denied", Reason: rule + ": " + oneLine(err.Error()),
		Details: map[string]string{"request_id": RequestID(r.Context())}}
	if _, aerr := s.o.Store.Append(r.Context(), ev); aerr != nil {
		return errors.Join(err, fmt.Errorf("record refusal: %w", aerr))
	}
	return err
}
