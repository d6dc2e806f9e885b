package sshdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
)

// GenerateKey makes an unencrypted key pair with ssh-keygen in dir and
// returns the private key's path (the public key is beside it, with
// ".pub") and the public key. typ is as Config.HostKeyType: "ed25519",
// "ecdsa", "rsa", "rsa-2048", "ecdsa-384", ... The file is named
// id_<typ>, or id_<typ>_N if that exists.
func GenerateKey(t testing.TB, dir, typ string) (privPath string, pub ssh.PublicKey) {
	t.Helper()
	testkit.RequireTool(t, KeygenPath)
	typeArgs, err := keygenTypeArgs(typ)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "id_"+typ)
	privPath = base
	for n := 2; ; n++ {
		if _, err := os.Lstat(privPath); os.IsNotExist(err) {
			break
		}
		privPath = fmt.Sprintf("%s_%d", base, n)
	}
	return privPath, keygen(t, KeygenPath, privPath, typeArgs, "sshdtest-user")
}

// WriteCertificate writes cert to <keyPath>-cert.pub, where ssh and ssh-add
// look for the certificate of keyPath, and returns that path.
func WriteCertificate(t testing.TB, keyPath string, cert *ssh.Certificate) string {
	t.Helper()
	path := keyPath + "-cert.pub"
	writeFile(t, path, string(ssh.MarshalAuthorizedKey(cert)), 0o644)
	return path
}

// StartAgent starts a real ssh-agent and returns its socket path, for
// "SSH_AUTH_SOCK="+sock in LoginOptions.Env. The agent is killed at
// t.Cleanup.
func StartAgent(t testing.TB) (sockPath string) {
	t.Helper()
	testkit.RequireTool(t, AgentPath)
	// Not t.TempDir: a long test name would exceed the 108-byte limit of a
	// Unix socket path.
	dir, err := os.MkdirTemp("", "sshdtest-agent-")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sockPath = filepath.Join(dir, "agent.sock")
	cmd := exec.Command(AgentPath, "-D", "-a", sockPath)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshdtest: start ssh-agent: %v", err)
	}
	proc := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()
	t.Cleanup(proc.kill)
	deadline := time.Now().Add(startTimeout)
	for {
		if fi, err := os.Stat(sockPath); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return sockPath
		}
		select {
		case <-proc.done:
			t.Fatalf("sshdtest: ssh-agent exited: %v", proc.err)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshdtest: ssh-agent socket %s did not appear", sockPath)
		}
	}
}

// AgentAdd loads the private key at keyPath into the agent at sock with
// the real ssh-add, which also loads <keyPath>-cert.pub if it exists.
func AgentAdd(t testing.TB, sock, keyPath string) {
	t.Helper()
	testkit.RequireTool(t, SSHAddPath)
	cmd := exec.Command(SSHAddPath, keyPath)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SSH_AUTH_SOCK=" + sock}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sshdtest: ssh-add %s: %v: %s", keyPath, err, out)
	}
}
