package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/policy"
)

// deviceTimeout is how long a device flow waits for approval by default.
const deviceTimeout = 5 * time.Minute

// deviceFlow signs a person in with the identity provider's device flow,
// shown as the instruction of a keyboard-interactive challenge without
// questions ("open URL and enter CODE"), for the key the connection has
// just proven. The ID token is verified as the HTTPS door verifies it; its
// user, groups and multi-factor sign-in become the connection's caller.
func (s *Server) deviceFlow(st *connState, perms *ssh.Permissions, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	if st.deviceTried {
		// ssh asks again after a failure; one sign-in per connection.
		return nil, errors.New("frontdoor: device flow already failed on this connection")
	}
	st.deviceTried = true
	d := s.o.Device
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = deviceTimeout
	}
	// A person needs time to approve: the handshake deadline moves for this
	// step only (serveConn clears it once authenticated).
	_ = st.raw.SetDeadline(time.Now().Add(timeout + 10*time.Second))
	defer func() { _ = st.raw.SetDeadline(time.Now().Add(s.lim.AuthTimeout)) }()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	var shown error
	raw, err := d.Flow.Login(ctx, func(uri, code, complete string) {
		msg := fmt.Sprintf("sshca front door: key %s is not registered to a local user.\nTo sign in with your identity provider, open %s and enter %s", perms.Extensions[extKey], uri, code)
		if complete != "" {
			msg += "\n(or open " + complete + ")"
		}
		_, shown = client("", msg, nil, nil)
	})
	if shown != nil {
		return nil, shown
	}
	if err != nil {
		return nil, s.deviceFailed(st, perms, client, "device flow: "+deviceReason(err), err)
	}
	id, err := d.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, s.deviceFailed(st, perms, client, "the identity provider's token was refused", err)
	}
	if err := policy.ValidPrincipal(id.User); err != nil {
		return nil, s.deviceFailed(st, perms, client, "the identity provider's user name is unusable", err)
	}
	mfa := ""
	if id.HasMFA() {
		mfa = "1"
	}
	ext := map[string]string{extPerson: id.User, extGroups: strings.Join(id.Groups, "\n"), extMFA: mfa,
		extKey: perms.Extensions[extKey], extBound: perms.Extensions[extBound]}
	// As at the HTTPS door, a person who signed in with one factor may add
	// a TOTP code, verified by the first cert of the connection.
	if _, _, err := s.o.Users.GetTOTP(ctx, id.User); mfa == "" && err == nil {
		ans, err := client("", "sshca front door: signed in as "+id.User+" (one factor)", []string{"TOTP code (empty for none): "}, []bool{false})
		if err != nil {
			return nil, err
		}
		if len(ans) == 1 && ans[0] != "" {
			ext[extTOTP] = ans[0][:min(len(ans[0]), maxCodeLen)]
		}
	} else {
		_, _ = client("", "sshca front door: signed in as "+id.User, nil, nil)
	}
	return &ssh.Permissions{Extensions: ext}, nil
}

// deviceReason is a short public reason of a device flow that did not end
// in a sign-in.
func deviceReason(err error) string {
	switch {
	case errors.Is(err, oidc.ErrAccessDenied):
		return "access denied at the identity provider"
	case errors.Is(err, oidc.ErrDeviceExpired), errors.Is(err, context.DeadlineExceeded):
		return "not approved in time"
	}
	return "the identity provider is unavailable"
}

// deviceFailed tells the client why, audits the refusal and returns err.
func (s *Server) deviceFailed(st *connState, perms *ssh.Permissions, client ssh.KeyboardInteractiveChallenge, public string, err error) error {
	_, _ = client("", "sshca front door: "+public, nil, nil)
	s.log.Info("front door: device flow failed", "source", st.src, "error", err.Error())
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req := ca.Request{Type: policy.UserCert, Details: map[string]string{"door": "ssh", "source": st.src, "key": perms.Extensions[extKey]}}
	_ = s.o.Authority.Deny(ctx, req, "sign-in-failed", fmt.Errorf("frontdoor: device flow for key %s: %s", perms.Extensions[extKey], public))
	st.unregistered = "" // audited here already
	return err
}
