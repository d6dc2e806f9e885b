package server

import (
	"encoding/base64"
	"errors"
	"strings"
)

func parseSHA256Fingerprint(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return nil, errors.New(`fingerprint must start with "SHA256:"`)
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(b) != 32 {
		return nil, errors.New("fingerprint is not a SHA256 fingerprint")
	}
	return b, nil
}
