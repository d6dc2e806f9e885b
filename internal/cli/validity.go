package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/api"
)

// Validity windows for `sign --valid-from/--valid-until/--validity`, in the
// forms ssh-keygen -V accepts and a few more:
//
//   - relative to now: [+-]TIME, TIME as ssh-keygen's: a number with an
//     optional unit s, m, h, d or w, units combined ("+1w2d", "-5m",
//     "+90" is 90 seconds);
//   - absolute: RFC 3339 ("2026-05-01T09:00:00Z", "...+02:00"),
//     YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], or ssh-keygen's YYYYMMDD,
//     YYYYMMDDHHMM[SS]; without a zone these are local time, with a trailing
//     Z they are UTC (as ssh-keygen does).
//
// --validity FROM:TO is ssh-keygen's -V: "-5m:+1w"; a single time is the
// end of a window that starts now ("+1w").

// parseValidTime reads one time of a window, relative to now.
func parseValidTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	switch strings.ToLower(s) {
	case "always", "forever":
		return time.Time{}, fmt.Errorf("%q: certificates are bounded by the role's max_ttl; give a time", s)
	case "now":
		return now, nil
	}
	if s[0] == '+' || s[0] == '-' {
		d, err := api.ParseKeygenDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %v", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	loc := time.Local
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		loc, s = time.UTC, s[:len(s)-1]
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05", "20060102", "200601021504", "20060102150405"} {
		if len(layout) != len(s) {
			continue
		}
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: not a time (use -5m, +1w, 2026-05-01, 2026-05-01T09:00, RFC 3339 or YYYYMMDD[HHMM[SS]])", s)
}

// parseValidity reads ssh-keygen's -V: FROM:TO, or TO alone (from now).
// Absolute times may hold colons themselves; the separator is the colon
// that leaves a valid time on both sides.
func parseValidity(spec string, now time.Time) (from, until time.Time, err error) {
	f, u, err := splitValidity(spec, now)
	if err != nil {
		return from, until, err
	}
	if f != "" {
		from, _ = parseValidTime(f, now)
	}
	until, _ = parseValidTime(u, now)
	return from, until, nil
}

// splitValidity splits ssh-keygen's -V into its FROM ("" when only TO is
// given) and TO, each a valid time.
func splitValidity(spec string, now time.Time) (from, until string, err error) {
	for i := 0; i < len(spec); i++ {
		if spec[i] != ':' {
			continue
		}
		_, ferr := parseValidTime(spec[:i], now)
		_, uerr := parseValidTime(spec[i+1:], now)
		if ferr == nil && uerr == nil {
			return spec[:i], spec[i+1:], nil
		}
	}
	_, uerr := parseValidTime(spec, now)
	if uerr == nil {
		return "", spec, nil
	}
	if f, u, ok := strings.Cut(spec, ":"); ok && !strings.Contains(u, ":") {
		if _, err := parseValidTime(f, now); err != nil {
			return "", "", err
		}
		if _, err := parseValidTime(u, now); err != nil {
			return "", "", err
		}
	}
	if strings.Contains(spec, ":") {
		return "", "", fmt.Errorf("%q: not FROM:TO (e.g. -5m:+1w, 20260501:20260508)", spec)
	}
	return "", "", uerr
}

// validityFlags turns the window flags into the request's window; zero
// times where nothing was asked.
func validityFlags(cmd, validFrom, validUntil, validity string, ttlGiven bool, now time.Time) (from, until time.Time, err error) {
	switch {
	case validity != "" && (validFrom != "" || validUntil != ""):
		return from, until, usagef("%s: give --validity or --valid-from/--valid-until, not both", cmd)
	case validUntil != "" && ttlGiven, validity != "" && ttlGiven:
		return from, until, usagef("%s: give --ttl or the end of the validity window, not both", cmd)
	}
	if validity != "" {
		if from, until, err = parseValidity(validity, now); err != nil {
			return from, until, usagef("%s: --validity: %v", cmd, err)
		}
		return from, until, nil
	}
	if validFrom != "" {
		if from, err = parseValidTime(validFrom, now); err != nil {
			return from, until, usagef("%s: --valid-from: %v", cmd, err)
		}
	}
	if validUntil != "" {
		if until, err = parseValidTime(validUntil, now); err != nil {
			return from, until, usagef("%s: --valid-until: %v", cmd, err)
		}
	}
	return from, until, nil
}

// windowRequest turns the window flags into the valid_after and
// valid_before of a certificate request to the service ("" where nothing
// was asked). Relative times ("-5m", "+1w", "now") are sent as they are, so
// that the service's clock, which decides, also places them; absolute ones
// are read here (local time unless a zone is given) and sent in RFC 3339.
func windowRequest(cmd, validFrom, validUntil, validity string, ttlGiven bool, now time.Time) (after, before string, err error) {
	// The same checks, and error messages, as for sign.
	if _, _, err := validityFlags(cmd, validFrom, validUntil, validity, ttlGiven, now); err != nil {
		return "", "", err
	}
	if validity != "" {
		if validFrom, validUntil, err = splitValidity(validity, now); err != nil {
			return "", "", usagef("%s: --validity: %v", cmd, err)
		}
	}
	wire := func(s string) string {
		if s == "" || api.IsRelativeTime(s) {
			return s
		}
		t, _ := parseValidTime(s, now) // checked above
		return t.UTC().Format(time.RFC3339)
	}
	return wire(validFrom), wire(validUntil), nil
}
