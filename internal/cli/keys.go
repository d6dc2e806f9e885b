package cli

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
)

func checkCAType(cmd, t string) error {
	if t != "user" && t != "host" {
		return usagef("%s: --type must be user or host", cmd)
	}
	return nil
}

// readPublicKeyFile reads one public key or certificate in authorized_keys format.
func readPublicKeyFile(path string) (ssh.PublicKey, error) {
	data, err := readLimited(path, ca.MaxKeyFileLen)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		return nil, fmt.Errorf("%s is a private key; give the public key (.pub)", path)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an OpenSSH public key or certificate", path)
	}
	return pub, nil
}

// liveKeys returns the published keys of a CA (next, active, retiring).
func liveKeys(e *env, h *home.Home, caType string) ([]ssh.PublicKey, error) {
	keys, err := h.Store.ListCAKeys(e.ctx, caType)
	if err != nil {
		return nil, err
	}
	var out []ssh.PublicKey
	for _, k := range keys {
		if !published(k) {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return nil, err
		}
		out = append(out, pub)
	}
	return out, nil
}
