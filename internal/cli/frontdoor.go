package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/frontdoor"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/oidc"
)

// FrontDoorHostKey is the front door's host key file in the home.
const FrontDoorHostKey = "frontdoor_host_ed25519_key"

// startFrontDoor starts the SSH front door of `sshca serve` when
// service.ssh_listen is set: its host key (created in the home on first
// start) certified by the host CA through the issuance path, renewed when
// half its validity has passed. It returns a stop function (nil when the
// front door is off).
func startFrontDoor(ctx context.Context, e *env, h *home.Home, svc config.Service, idp *oidc.Pending, log *slog.Logger) (stop func(), err error) {
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
	// The service's limits: anonymous_rate_limit bounds new connections per
	// source address (before any credential), rate_limit certificates per
	// caller, as at the HTTPS door.
	o := frontdoor.Options{Authority: h.Authority, Users: h.Store, HostSigner: hs, Log: log,
		Limits: frontdoor.Limits{ConnsPerMinute: svc.AnonymousRateLimit, CertsPerMinute: svc.RateLimit}}
	if c := h.Config.OIDC; c != nil && idp != nil {
		// People of the identity provider sign in with its device flow,
		// verified by the HTTPS door's verifier.
		o.Device = &frontdoor.Device{Flow: &oidc.DeviceFlow{Issuer: c.Issuer, ClientID: c.ClientID}, Verifier: idp}
	}
	fd, err := frontdoor.New(o)
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

// frontDoorAddr checks ssh-config's --front-door HOST:PORT (and --role and
// --key, which go into a shell command line) and splits it; "" when not given.
func frontDoorAddr(addr, role, keyPath string) (host, port string, err error) {
	if addr == "" {
		if role != "" {
			return "", "", usagef("ssh-config: --role goes with --front-door")
		}
		return "", "", nil
	}
	host, port, err = net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", "", usagef("ssh-config: --front-door must be HOST:PORT, e.g. ca.corp:2222")
	}
	for _, v := range []struct{ what, s, extra string }{{"--front-door", host, ""}, {"--role", role, ""}, {"--key", keyPath, "~/"}} {
		for _, r := range v.s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-"+v.extra, r)) {
				return "", "", usagef("ssh-config: %s %q cannot go into the Match exec line: letters, digits, '.', '_', '-' only", v.what, v.s)
			}
		}
	}
	return host, port, nil
}

// frontDoorAlias is the Host alias of the front door in ssh-config's output.
const frontDoorAlias = "sshca-front-door"

// printFrontDoor prints the client side of the SSH front door: its Host
// block, and a Match exec line that, before ssh connects to any of hosts,
// fetches a certificate for keyPath from the front door when the current
// one is missing or expired. The fetch uses ssh itself (ssh -F /dev/null,
// so that it does not match the line again) and ssh-keygen -L for the
// expiry: nothing else is needed on the client. %% is ssh_config's
// escape for a literal %.
func printFrontDoor(w io.Writer, host, port, role, hosts, keyPath string) {
	cert := keyPath + "-cert.pub"
	args := "cert"
	if role != "" {
		args += " --role " + role
	}
	// An alias, not the host name: the front door's host is often the
	// bastion too, whose sshd (port 22) ProxyJump must still reach.
	fmt.Fprintln(w, "# ~/.ssh/config: the SSH front door; `ssh "+frontDoorAlias+" cert` prints a certificate for your key.")
	fmt.Fprintf(w, "Host %s\n    HostName %s\n    Port %s\n    HostKeyAlias %s\n    IdentityFile %s\n    IdentitiesOnly yes\n    StrictHostKeyChecking yes\n    ProxyJump none\n",
		frontDoorAlias, host, port, host, keyPath)
	fmt.Fprintln(w, "# Before connecting to "+hosts+": a fresh certificate when "+cert+" is missing or expired (a TOTP")
	fmt.Fprintln(w, "# prompt, if your roles need one, comes from ssh). The line sets nothing: its command always fails.")
	fetch := fmt.Sprintf("ssh -F /dev/null -o UserKnownHostsFile=$HOME/.ssh/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i %s -p %s %s %s > %s.new && mv %s.new %s",
		keyPath, port, host, args, cert, cert, cert)
	check := fmt.Sprintf("t=$(ssh-keygen -L -f %s 2>/dev/null | sed -n 's/^ *Valid: from .* to //p'); [ ${t:-0} \\> $(date +%%%%Y-%%%%m-%%%%dT%%%%H:%%%%M:%%%%S) ] || %s; false",
		cert, fetch)
	fmt.Fprintf(w, "Match host %s exec \"%s\"\n\n", strings.ReplaceAll(hosts, " ", ","), check)
}
