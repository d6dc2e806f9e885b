package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
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
		d, err := parseKeygenDuration(s[1:])
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

// parseKeygenDuration reads ssh-keygen's time format (convtime): numbers
// each followed by an optional unit s, m, h, d or w (no unit: seconds).
func parseKeygenDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("no duration after the sign")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad duration at %q", s)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n > 10*365*24*3600 {
			return 0, fmt.Errorf("duration %q is too large", s[:i])
		}
		unit := time.Second
		s = s[i:]
		if s != "" {
			switch s[0] {
			case 's', 'S':
			case 'm', 'M':
				unit = time.Minute
			case 'h', 'H':
				unit = time.Hour
			case 'd', 'D':
				unit = 24 * time.Hour
			case 'w', 'W':
				unit = 7 * 24 * time.Hour
			default:
				return 0, fmt.Errorf("unknown unit %q (use s, m, h, d or w)", s[:1])
			}
			s = s[1:]
		}
		total += time.Duration(n) * unit
		if total > 10*365*24*time.Hour {
			return 0, errors.New("duration is too large")
		}
	}
	return total, nil
}

// parseValidity reads ssh-keygen's -V: FROM:TO, or TO alone (from now).
// Absolute times may hold colons themselves; the separator is the colon
// that leaves a valid time on both sides.
func parseValidity(spec string, now time.Time) (from, until time.Time, err error) {
	for i := 0; i < len(spec); i++ {
		if spec[i] != ':' {
			continue
		}
		f, ferr := parseValidTime(spec[:i], now)
		u, uerr := parseValidTime(spec[i+1:], now)
		if ferr == nil && uerr == nil {
			return f, u, nil
		}
	}
	u, uerr := parseValidTime(spec, now)
	if uerr == nil {
		return time.Time{}, u, nil
	}
	if f, u, ok := strings.Cut(spec, ":"); ok && !strings.Contains(u, ":") {
		if _, err := parseValidTime(f, now); err != nil {
			return from, until, err
		}
		if _, err := parseValidTime(u, now); err != nil {
			return from, until, err
		}
	}
	if strings.Contains(spec, ":") {
		return from, until, fmt.Errorf("%q: not FROM:TO (e.g. -5m:+1w, 20260501:20260508)", spec)
	}
	return from, until, uerr
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
