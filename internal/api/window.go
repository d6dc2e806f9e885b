package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseWindowTime reads the valid_after or valid_before of a CertRequest:
// an RFC 3339 time ("2026-05-01T09:00:00Z", "...+02:00"), "now", or a time
// relative to now as ssh-keygen -V takes it: a sign, then numbers each with
// an optional unit s, m, h, d or w ("-5m", "+1w2d"; no unit: seconds). The
// service reads relative times against its own clock, so a client's clock
// does not move the window.
func ParseWindowTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, errors.New("empty time")
	case s == "now":
		return now, nil
	case s[0] == '+' || s[0] == '-':
		d, err := ParseKeygenDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %v", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: not an RFC 3339 time (2026-05-01T09:00:00Z) or a relative one (-5m, +1w)", s)
	}
	return t, nil
}

// IsRelativeTime reports whether s is a time ParseWindowTime reads against
// now ("now", "+1h", "-5m").
func IsRelativeTime(s string) bool {
	return s == "now" || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-")
}

// maxKeygenDuration bounds a relative time: ten years.
const maxKeygenDuration = 10 * 365 * 24 * time.Hour

// ParseKeygenDuration reads ssh-keygen's time format (convtime): numbers
// each followed by an optional unit s, m, h, d or w (no unit: seconds),
// at most ten years in all.
func ParseKeygenDuration(s string) (time.Duration, error) {
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
		digits := s[:i]
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q is too large", digits)
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
		if n > int64(maxKeygenDuration/unit) {
			return 0, fmt.Errorf("duration %q is too large", digits)
		}
		total += time.Duration(n) * unit
		if total > maxKeygenDuration {
			return 0, errors.New("duration is too large")
		}
	}
	return total, nil
}
