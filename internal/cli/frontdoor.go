package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/frontdoor"
	"github.com/sshca/sshca/internal/home"
)

// FrontDoorHostKey is the front door's host key file in the home.
const FrontDoorHostKey = "frontdoor_host_ed25519_key"

// startFrontDoor starts the SSH front door of `sshca serve` when
// service.ssh_listen is set: its host key (created in the home on first
// start) certified by the host CA through the issuance path, renewed when
// half its validity has passed. It returns a stop function (nil when the
// front door is off).
func startFrontDoor(ctx context.Context, e *env, h *home.Home, svc config.Service, log *slog.Logger) (stop func(), err error) {
	if svc.SSHListen == "" {
		return nil, nil
	}
	key, err := frontdoor.LoadOrCreateHostKey(filepath.Join(h.Dir, FrontDoorHostKey))
	if err != nil {
		return nil, err
	}
	hs, cert, err := frontdoor.CertifyHost(ctx, h.Authority, key, svc.SSHHostRole, svc.SSHHostNames)
	if err != nil {
		return nil, withHint(err, "service.ssh_host_names must match the host patterns of role "+svc.SSHHostRole)
	}
	fd, err := frontdoor.New(frontdoor.Options{Authority: h.Authority, Users: h.Store, HostSigner: hs, Log: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", svc.SSHListen)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		if err := fd.Serve(ln); err != frontdoor.ErrClosed {
			log.Error("front door stopped", "error", err.Error())
		}
	}()
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if !frontdoor.RenewDue(cert, time.Now()) {
				continue
			}
			nhs, ncert, err := frontdoor.CertifyHost(ctx, h.Authority, key, svc.SSHHostRole, svc.SSHHostNames)
			if err != nil {
				log.Warn("front door: host certificate renewal failed; retrying in a minute", "error", err.Error())
				continue
			}
			fd.SetHostSigner(nhs)
			cert = ncert
			log.Info("front door: host certificate renewed", "serial", ncert.Serial)
		}
	}()
	fmt.Fprintf(e.stdout, "front door listening on ssh://%s (host certificate serial %d for %v)\n", ln.Addr(), cert.Serial, svc.SSHHostNames)
	log.Info("front door started", "addr", ln.Addr().String(), "host_cert_serial", cert.Serial)
	return func() {
		close(done)
		fd.Close()
	}, nil
}
