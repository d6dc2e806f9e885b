//go:build !unix

package opensshtest

import "errors"

func lockFile(string) (func(), error) {
	return nil, errors.New("building OpenSSH needs a Unix system")
}
