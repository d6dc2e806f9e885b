// Package totp implements time-based one-time passwords (RFC 6238) in the one
// profile that authenticator apps support everywhere: HMAC-SHA-1, 6 digits,
// 30-second steps, T0 = 0.
//
// It generates secrets, renders the otpauth:// enrolment URI, computes codes and
// verifies them with a ±1 step window and replay protection. It never stores
// secrets, never remembers which steps were used (the caller persists the step
// Verify returns and passes it back as lastStep), and never rate-limits: six
// digits with a three-step window leave a 3-in-a-million chance per guess, so
// the caller must bound the number of attempts per identity.
package totp

import (
	"crypto/hmac"
	"crypto/sha1" // RFC 6238 as authenticator apps implement it; HMAC-SHA-1 does not rest on collision resistance
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

const (
	// SecretSize is the length in bytes of secrets made by NewSecret (160 bits,
	// the size RFC 4226 section 4 recommends and the HMAC-SHA-1 block output).
	SecretSize = 20
	// MinSecretSize is the shortest secret Verify accepts (RFC 4226 section 4,
	// requirement R6: at least 128 bits).
	MinSecretSize = 16
	// Digits is the number of decimal digits in a code.
	Digits = 6
	// Period is the length of one time step (RFC 6238 section 4.1, X = 30).
	Period = 30 * time.Second
)

// Errors returned by Verify; test with errors.Is.
var (
	// ErrFormat means the code is not exactly six ASCII digits.
	ErrFormat = errors.New("totp: code must be exactly 6 digits")
	// ErrMismatch means the code matches none of the steps in the window.
	ErrMismatch = errors.New("totp: wrong code")
	// ErrReplay means the code is right but its step is not after lastStep:
	// it (or a later one) was already used.
	ErrReplay = errors.New("totp: code already used")
	// ErrSecret means the secret is shorter than MinSecretSize.
	ErrSecret = errors.New("totp: secret too short")
)

// NewSecret reads a SecretSize-byte secret from rand (crypto/rand.Reader in
// production).
func NewSecret(rand io.Reader) ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := io.ReadFull(rand, s); err != nil {
		return nil, fmt.Errorf("totp: read random secret: %w", err)
	}
	return s, nil
}

// b32 is the unpadded base32 alphabet that the Key Uri Format expects.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// URI returns the otpauth://totp/ URI (the "Key Uri Format" understood by
// authenticator apps, usually shown as a QR code) for secret. The label is
// "issuer:account"; issuer may be empty. The parameters repeat the defaults
// (SHA1, 6 digits, 30 s) because some apps ignore an omitted issuer or
// algorithm inconsistently.
func URI(secret []byte, issuer, account string) string {
	label := labelEscape(account)
	if issuer != "" {
		label = labelEscape(issuer) + ":" + label
	}
	q := url.Values{}
	q.Set("secret", b32.EncodeToString(secret))
	if issuer != "" {
		q.Set("issuer", issuer)
	}
	q.Set("algorithm", "SHA1")
	q.Set("digits", "6")
	q.Set("period", "30")
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// labelEscape escapes one half of the label: the colon separates issuer from
// account, so a colon inside either half must be percent-encoded too, which
// url.PathEscape leaves alone.
func labelEscape(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// Step returns the RFC 6238 time step that contains t: floor(unix(t) / 30).
// Times before 1970 are clamped to step 0.
func Step(t time.Time) uint64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return uint64(u) / uint64(Period/time.Second)
}

// Code returns the 6-digit code for secret at time t.
func Code(secret []byte, t time.Time) string {
	return hotp(secret, Step(t), Digits)
}

// hotp is RFC 4226 section 5.3: HMAC-SHA-1 over the 8-byte big-endian
// counter, dynamic truncation, then the low digits in decimal, zero-padded.
func hotp(secret []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// Verify checks code against secret at time t and returns the step it
// matched. It accepts the step containing t and one step either side (clock
// skew, and the seconds a user needs to type), refuses any step <= lastStep
// (pass the step returned by the previous successful Verify, or 0), and
// accepts only exactly six ASCII digits. Comparisons are constant-time and all
// three candidate steps are always computed. When the code happens to match
// several steps, the latest is returned so that replay protection covers all
// of them.
func Verify(secret []byte, code string, t time.Time, lastStep uint64) (step uint64, err error) {
	if len(code) != Digits {
		return 0, ErrFormat
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, ErrFormat
		}
	}
	if len(secret) < MinSecretSize {
		return 0, ErrSecret
	}
	now := Step(t)
	var matched, replayed bool
	for d := -1; d <= 1; d++ {
		s := now + uint64(d)
		if (d < 0 && now == 0) || (d > 0 && s < now) {
			continue // no step before 0; no wrap-around at the far end
		}
		if subtle.ConstantTimeCompare([]byte(hotp(secret, s, Digits)), []byte(code)) != 1 {
			continue
		}
		if s <= lastStep {
			replayed = true
			continue
		}
		matched, step = true, s
	}
	switch {
	case matched:
		return step, nil
	case replayed:
		return 0, ErrReplay
	default:
		return 0, ErrMismatch
	}
}
