package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrOIDCUnavailable is what an IDTokenVerifier returns (wrapped) while it
// cannot check any ID token because the identity provider is unreachable.
// Such a request is answered 503 oidc-unavailable, not 401: the credential
// may be fine, and retrying later will work.
var ErrOIDCUnavailable = errors.New("identity provider unavailable")

// OIDCHealth is implemented by an IDTokenVerifier that can be unavailable
// (its issuer's discovery has not succeeded yet). /readyz and the
// sshca_oidc_up metric report it.
type OIDCHealth interface {
	// OIDCStatus reports whether ID tokens can be checked; when not, since
	// when and after how many failed attempts to reach the issuer.
	OIDCStatus() (ok bool, since time.Time, attempts int)
}

// oidcUnavailable is the response to an ID token that cannot be checked.
func oidcUnavailable(err error) error {
	return &httpError{status: http.StatusServiceUnavailable, code: "oidc-unavailable",
		msg: "the identity provider is unreachable, so ID tokens cannot be checked now; retry later (API tokens and renewal still work)", err: err}
}

// retryAfterOIDC is the Retry-After of a 503 oidc-unavailable, in seconds.
const retryAfterOIDC = "30"

// oidcStatus reports the verifier's health: ok when SSO is off or the
// verifier cannot be unavailable.
func (s *Server) oidcStatus() (ok bool, since time.Time, attempts int) {
	if h, isH := s.o.OIDC.(OIDCHealth); isH && s.o.OIDC != nil {
		return h.OIDCStatus()
	}
	return true, time.Time{}, 0
}

// handleReady is the readiness probe. It fails (503 not-ready) only when
// the database does not answer: without it nothing can be served. An
// unreachable identity provider leaves the service ready but degraded —
// API tokens, host enrollment, renewal, KRLs, CA keys and host reports all
// work, and taking the replica out of a load balancer would take them down
// too — so the probe stays 200 and its body says what is degraded, one
// check per line in the style of Kubernetes' /readyz?verbose:
//
//	[+]database ok
//	[-]oidc unavailable: issuer unreachable since 2025-01-02T03:04:05Z (7 attempts); ID tokens get 503 oidc-unavailable
//	ready (degraded: oidc)
//
// With everything healthy the body is "ready\n" (all the checks with
// ?verbose).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.o.Store.KRLVersion(r.Context(), "user"); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, code: "not-ready", msg: "database unavailable", err: err}
	}
	var b strings.Builder
	b.WriteString("[+]database ok\n")
	var degraded []string
	if s.o.OIDC != nil {
		if ok, since, n := s.oidcStatus(); ok {
			b.WriteString("[+]oidc ok\n")
		} else {
			degraded = append(degraded, "oidc")
			fmt.Fprintf(&b, "[-]oidc unavailable: issuer unreachable since %s (%d attempts); ID tokens get 503 oidc-unavailable\n",
				since.UTC().Format(time.RFC3339), n)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	body := "ready\n"
	if len(degraded) > 0 {
		body = b.String() + "ready (degraded: " + strings.Join(degraded, ", ") + ")\n"
	} else if r.URL.Query().Has("verbose") {
		body = b.String() + body
	}
	_, err := io.WriteString(w, body)
	return err
}

// oidcUp exports whether ID tokens can be checked (sshca_oidc_up), like
// commitStats: the first server sharing the metrics keeps it.
func (m *Metrics) oidcUp(status func() (bool, time.Time, int)) {
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sshca_oidc_up",
		Help: "1 when the OIDC issuer's discovery has succeeded and ID tokens are checked, 0 while it is unreachable (ID tokens get 503)."},
		func() float64 {
			if ok, _, _ := status(); ok {
				return 1
			}
			return 0
		}))
}
