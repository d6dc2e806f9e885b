package sshdtest

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// TestReleases starts the sshd of every OpenSSH release and logs in to it
// with the ssh of every release, through a host certificate, so that the
// harness is known to work for each pair.
func TestReleases(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	userCA, hostCA := newCA(t), newCA(t)
	releases := opensshtest.All(t)
	for _, srvRel := range releases {
		t.Run("sshd-"+srvRel.Name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, Config{
				OpenSSH:           srvRel,
				TrustedUserCAKeys: []string{caLine(userCA)},
				Principals:        map[string][]string{me: {"role-deploy"}},
				SignHostKey: func(pub ssh.PublicKey) ([]byte, error) {
					return ssh.MarshalAuthorizedKey(sign(t, hostCA, pub, ssh.HostCert, []string{"127.0.0.1"}, -time.Minute, time.Hour)), nil
				},
			})
			if s.OpenSSH != srvRel {
				t.Fatalf("Server.OpenSSH = %v, want %v", s.OpenSSH, srvRel)
			}
			key := userKey(t, userCA, []string{"role-deploy"}, -time.Minute, time.Hour)
			for _, cliRel := range releases {
				t.Run("ssh-"+cliRel.Name, func(t *testing.T) {
					res := s.Login(t, LoginOptions{IdentityFile: key, Client: cliRel, KnownHosts: []string{s.CertAuthorityLine(hostCA.PublicKey())},
						Options: []string{"LogLevel=DEBUG1"}})
					checkLogin(t, res, true, "", "Accepted certificate ID")
					// ssh names itself, then the server's version string.
					for _, want := range []string{"OpenSSH_" + cliRel.Version, "remote software version OpenSSH_" + srvRel.SSHDVersion()} {
						if !strings.Contains(res.Stderr, want) {
							t.Errorf("ssh's debug output lacks %q:\n%s", want, res.Stderr)
						}
					}
				})
			}
		})
	}
}
