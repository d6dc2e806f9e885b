package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/console"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/signer"
)

// startOIDC runs the issuer's discovery. An issuer that cannot be reached
// does not stop the service: everything but ID tokens works meanwhile, and
// discovery is retried in the background with bounded, jittered back-off;
// each failed attempt logs one warning (so at most one per back-off
// interval, 1s growing to 2 minutes), and the recovery one info line.
func startOIDC(ctx context.Context, c oidc.Config, log *slog.Logger) (*oidc.Pending, error) {
	return oidc.Discover(ctx, c, oidc.DefaultBackoff, func(a oidc.Attempt) {
		if a.Err != nil {
			log.Warn("OIDC issuer unavailable: ID tokens get 503 oidc-unavailable until discovery succeeds; API tokens and renewal work",
				"issuer", c.Issuer, "attempt", a.N, "retry_in", a.Retry.Round(time.Millisecond).String(), "error", a.Err.Error())
			return
		}
		log.Info("OIDC issuer reachable again: ID tokens are accepted", "issuer", c.Issuer, "attempts", a.N,
			"unavailable_for", time.Since(a.Since).Round(time.Second).String())
	})
}

func newServeCommand() *command {
	var listen, passFile, logLevel, cpuProfile string
	return &command{
		name:    "serve",
		summary: "run the certificate service (HTTPS JSON API; see docs/api.md)",
		usage:   "[--listen ADDR] [--passphrase-file F] [--log-level info|debug]",
		example: `  sshca serve --listen 127.0.0.1:8443
  sshca serve --passphrase-file /run/secrets/ca-pass     # encrypted CA keys are unlocked at start`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "", "address to listen on (default: service.listen in sshca.yaml, or 127.0.0.1:8443)")
			fs.StringVar(&passFile, "passphrase-file", "", "`file` with the passphrase of encrypted CA keys")
			fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
			fs.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the service to `file` until it stops (diagnostics; see BENCHMARKS.md)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("serve: --log-level %q is not debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			if e.ownsProcess {
				tuneGC(e.getenv)
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile, "serve: --cpuprofile")
				if err != nil {
					return err
				}
				defer stop()
			}
			h, err := e.openHome(passFile)
			if err != nil {
				return err
			}
			defer h.Close()
			svc := h.Config.ServiceOrDefault()
			if listen == "" {
				listen = svc.Listen
			}
			// Unlock the signing keys now: a wrong passphrase or a key file
			// others can read stops the service before it listens. Keys that
			// do not sign yet (next) or any more (retiring) are trusted too,
			// so their files must be private as well.
			if err := h.CheckKeyFiles(e.ctx); err != nil {
				return err
			}
			for _, t := range []string{"user", "host"} {
				k, err := ca.ActiveKey(e.ctx, h.Store, t)
				if err != nil {
					return err
				}
				if _, err := h.Authority.Signer(e.ctx, k); err != nil {
					if errors.Is(err, signer.ErrWrongPassphrase) {
						return withHint(errors.New("wrong passphrase for the CA key"), "check --passphrase-file")
					}
					return fmt.Errorf("open %s CA key: %w", t, err)
				}
			}
			// The authority's own "certificate issued" line is left off: the
			// request's log line names the serial, and the audit log has the rest.
			var verifier server.IDTokenVerifier
			var idp *oidc.Pending // also the front door's device flow
			if o := h.Config.OIDC; o != nil {
				p, err := startOIDC(e.ctx, oidc.Config{Issuer: o.Issuer, ClientID: o.ClientID, Audience: o.Audience,
					UserClaim: o.UserClaim, GroupsClaim: o.GroupsClaim}, log)
				if err != nil {
					return err
				}
				verifier = server.OIDC(p)
				idp = p
			}
			// Every committed audit entry reaches service.audit_file through
			// the home (home.Open), as for every other command.
			var ui http.Handler
			if svc.Console != nil {
				var sso *console.SSO
				if o := h.Config.OIDC; o != nil && svc.Console.PublicURL != "" {
					sso = &console.SSO{Issuer: o.Issuer, ClientID: o.ClientID,
						RedirectURL: strings.TrimSuffix(svc.Console.PublicURL, "/") + "/ui/oidc/callback",
						Verify: func(ctx context.Context, raw string) (string, []string, error) {
							id, err := verifier.Verify(ctx, raw)
							if err != nil {
								return "", nil, err
							}
							return id.User, id.Groups, nil
						}}
				}
				c, err := console.New(console.Options{Config: h.Config, Store: h.Store, Logger: log, SSO: sso})
				if err != nil {
					return err
				}
				ui = c
			}
			srv := server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, OIDC: verifier, Logger: log, Console: ui})
			host, _, _ := net.SplitHostPort(listen)
			cert, err := server.LoadOrCreateTLS(svc.TLSCert, svc.TLSKey, h.Dir, []string{host})
			if err != nil {
				return fmt.Errorf("tls: %w", err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			inflight := &requestCounter{h: srv.Handler()}
			hs := &http.Server{
				Handler:           inflight,
				TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      60 * time.Second,
				IdleTimeout:       120 * time.Second,
				MaxHeaderBytes:    32 << 10,
				ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			}
			stopFrontDoor, err := startFrontDoor(e.ctx, e, h, svc, idp, log)
			if err != nil {
				ln.Close()
				return fmt.Errorf("front door: %w", err)
			}
			if stopFrontDoor != nil {
				defer stopFrontDoor()
			}
			fmt.Fprintf(e.stdout, "TLS certificate fingerprint: %s\n", server.CertFingerprint(cert.Certificate[0]))
			fmt.Fprintf(e.stdout, "listening on https://%s\n", ln.Addr())
			if f, ok := e.stdout.(interface{ Sync() error }); ok {
				_ = f.Sync()
			}
			log.Info("service started", "addr", ln.Addr().String(), "oidc", verifier != nil, "console", ui != nil)
			errc := make(chan error, 1)
			go func() { errc <- hs.ServeTLS(ln, "", "") }()
			go func() {
				// Retire CA keys once everything they signed has expired.
				t := time.NewTicker(time.Minute)
				defer t.Stop()
				for {
					for _, typ := range []string{"user", "host"} {
						if done, err := ca.AutoRetire(e.ctx, h.Store, typ, h.Config.RetireGraceOrDefault(), time.Now()); err != nil {
							log.Warn("auto-retire failed", "type", typ, "error", err.Error())
						} else if len(done) > 0 {
							log.Info("retired CA keys", "type", typ, "generations", done)
						}
					}
					select {
					case <-e.ctx.Done():
						return
					case <-t.C:
					}
				}
			}()
			select {
			case err := <-errc:
				return err
			case <-e.ctx.Done():
			}
			log.Info("shutting down: finishing in-flight requests")
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := gracefulShutdown(sctx, hs, inflight); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
}

// startCPUProfile profiles the process into path until stop is called;
// what names the setting in errors.
func startCPUProfile(path, what string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// tuneGC trades some memory for CPU: the service allocates little that lives
// long, so collecting at 5× the live heap (GOGC=400) instead of 2× cuts the
// collector's share of each request, while a soft limit keeps the process
// far below the 200 MiB it is allowed at peak. GOGC or GOMEMLIMIT in the
// environment win.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128 << 20)
	}
}

// requestCounter counts the requests being served.
type requestCounter struct {
	h    http.Handler
	busy atomic.Int64
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.busy.Add(1)
	defer c.busy.Add(-1)
	c.h.ServeHTTP(w, r)
}

// gracefulShutdown stops accepting connections and waits for the requests
// being served, then closes what is left. http.Server.Shutdown alone can
// wait until its deadline for an HTTP/2 connection whose TLS handshake
// finished after its one GOAWAY sweep and that never opens a stream
// (golang/go#81153): once no request has been in flight for a moment after
// Shutdown began, such connections carry nothing and are closed.
func gracefulShutdown(ctx context.Context, hs *http.Server, c *requestCounter) error {
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(ctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	idle := 0
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if c.busy.Load() != 0 {
				idle = 0
				continue
			}
			if idle++; idle >= 10 { // 500 ms without a request in flight
				_ = hs.Close()
				<-done
				return nil
			}
		}
	}
}
