package cli

import "bytes"

var krlMagic = []byte("SSHKRL\n\x00")

func isKRL(data []byte) bool { return bytes.HasPrefix(data, krlMagic) }

func inspectKRL(e *env, name string, data []byte, asJSON bool) error {
	return usagef("inspect: KRL support is not built yet")
}
