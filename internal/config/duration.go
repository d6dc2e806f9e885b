package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as a duration string: Go
// syntax plus "d" (24h) and "w" (7d), such as "90m", "8h", "7d", "52w" or
// "1w2d". It is never negative.
type Duration time.Duration

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// unitLen returns the length of a duration unit in nanoseconds.
func unitLen(name string) (uint64, bool) {
	var d time.Duration
	switch name {
	case "ns":
		d = time.Nanosecond
	case "us", "µs", "μs": // U+00B5 micro sign, U+03BC Greek mu
		d = time.Microsecond
	case "ms":
		d = time.Millisecond
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	case "d":
		d = day
	case "w":
		d = week
	default:
		return 0, false
	}
	return uint64(d), true
}

// ParseDuration parses a non-negative duration: a sequence of decimal
// numbers, each with an optional fraction and a unit ("ns", "us", "µs",
// "ms", "s", "m", "h", "d" for 24h, "w" for 7d), or "0". It refuses signs,
// missing units, unknown units and values above about 292 years.
func ParseDuration(s string) (time.Duration, error) {
	d, why := parseDuration(s)
	if why != "" {
		return 0, errors.New("config: " + why)
	}
	return d, nil
}

// parseDuration is ParseDuration returning the problem as text, so that
// callers can put a field path in front of it.
func parseDuration(s string) (time.Duration, string) {
	const max = math.MaxInt64
	fail := func(reason string) (time.Duration, string) {
		msg := "invalid duration " + quote(s)
		if reason != "" {
			msg += ": " + reason
		}
		return 0, msg
	}
	switch {
	case s == "0":
		return 0, ""
	case s == "":
		return fail("")
	case s[0] == '-':
		return fail("negative")
	}
	var total uint64
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		intPart := rest[:i]
		rest = rest[i:]
		var fracPart string
		if rest != "" && rest[0] == '.' {
			rest = rest[1:]
			j := 0
			for j < len(rest) && isDigit(rest[j]) {
				j++
			}
			fracPart = rest[:j]
			rest = rest[j:]
		}
		if intPart == "" && fracPart == "" {
			return fail("")
		}
		k := 0
		for k < len(rest) && rest[k] != '.' && !isDigit(rest[k]) {
			k++
		}
		unitName := rest[:k]
		rest = rest[k:]
		if unitName == "" {
			if rest != "" {
				return fail("")
			}
			return fail("missing unit (e.g. 90m, 8h, 7d)")
		}
		unit, ok := unitLen(unitName)
		if !ok {
			return fail("")
		}

		var v uint64
		for _, c := range []byte(intPart) {
			if v > max/10 {
				return fail("too large")
			}
			v = v*10 + uint64(c-'0')
			if v > max {
				return fail("too large")
			}
		}
		if v > max/unit {
			return fail("too large")
		}
		v *= unit
		if fracPart != "" {
			// Digits beyond what a uint64 holds cannot change the result
			// by a nanosecond; like time.ParseDuration, drop them.
			var f uint64
			scale := 1.0
			for _, c := range []byte(fracPart) {
				if f > max/10 {
					break
				}
				f = f*10 + uint64(c-'0')
				scale *= 10
			}
			v += uint64(float64(f) * (float64(unit) / scale))
			if v > max {
				return fail("too large")
			}
		}
		total += v
		if total > max {
			return fail("too large")
		}
	}
	return time.Duration(total), ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// String formats d with the largest units first, such as "52w", "1w2d",
// "1h30m" or "1s500ms"; ParseDuration reads it back.
func (d Duration) String() string {
	v := time.Duration(d)
	switch {
	case v == 0:
		return "0s"
	case v == math.MinInt64:
		return v.String()
	case v < 0:
		return "-" + Duration(-v).String()
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		len  time.Duration
	}{
		{"w", week}, {"d", day}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second},
		{"ms", time.Millisecond}, {"us", time.Microsecond}, {"ns", time.Nanosecond},
	} {
		if n := v / u.len; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			v -= n * u.len
		}
	}
	return b.String()
}

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("config: line %d: duration must be a string such as \"8h\"", n.Line)
	}
	v, why := parseDuration(n.Value)
	if why != "" {
		return fmt.Errorf("config: line %d: %s", n.Line, why)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
