package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "ok/zero", in: "0", want: 0},
		{name: "ok/zero-with-unit", in: "0s", want: 0},
		{name: "ok/minutes", in: "90m", want: 90 * time.Minute},
		{name: "ok/hours", in: "8h", want: 8 * time.Hour},
		{name: "ok/days", in: "7d", want: 7 * 24 * time.Hour},
		{name: "ok/weeks", in: "52w", want: 52 * 7 * 24 * time.Hour},
		{name: "ok/weeks-and-days", in: "1w2d", want: 9 * 24 * time.Hour},
		{name: "ok/go-compound", in: "1h30m10s", want: time.Hour + 30*time.Minute + 10*time.Second},
		{name: "ok/fraction", in: "1.5h", want: 90 * time.Minute},
		{name: "ok/fraction-of-day", in: ".5d", want: 12 * time.Hour},
		{name: "ok/trailing-dot", in: "5.d", want: 5 * 24 * time.Hour},
		{name: "ok/sub-second", in: "300ms5us7ns", want: 300*time.Millisecond + 5*time.Microsecond + 7},
		{name: "ok/micro-sign", in: "1µs", want: time.Microsecond},
		{name: "ok/greek-mu", in: "1μs", want: time.Microsecond},
		{name: "ok/maximum", in: "2562047h47m16.854775807s", want: math.MaxInt64},
		{name: "ok/maximum-in-weeks", in: "15250w1d23h47m16.854775807s", want: math.MaxInt64},
		{name: "fail/empty", in: "", wantErr: `config: invalid duration ""`},
		{name: "fail/unknown-unit", in: "8x", wantErr: `config: invalid duration "8x"`},
		{name: "fail/year-unit", in: "1y", wantErr: `config: invalid duration "1y"`},
		{name: "fail/negative", in: "-5m", wantErr: `config: invalid duration "-5m": negative`},
		{name: "fail/plus-sign", in: "+5m", wantErr: `config: invalid duration "+5m"`},
		{name: "fail/overflow-weeks", in: "999999999w", wantErr: `config: invalid duration "999999999w": too large`},
		{name: "fail/overflow-by-1ns", in: "2562047h47m16.854775808s", wantErr: `config: invalid duration "2562047h47m16.854775808s": too large`},
		{name: "fail/overflow-sum", in: "15250w15250w", wantErr: `config: invalid duration "15250w15250w": too large`},
		{name: "fail/overflow-digits", in: "99999999999999999999999h", wantErr: `config: invalid duration "99999999999999999999999h": too large`},
		{name: "fail/missing-unit", in: "3600", wantErr: `config: invalid duration "3600": missing unit (e.g. 90m, 8h, 7d)`},
		{name: "fail/missing-last-unit", in: "8h30", wantErr: `config: invalid duration "8h30": missing unit (e.g. 90m, 8h, 7d)`},
		{name: "fail/unit-only", in: "h", wantErr: `config: invalid duration "h"`},
		{name: "fail/dot-only", in: ".h", wantErr: `config: invalid duration ".h"`},
		{name: "fail/two-dots", in: "1.5.5h", wantErr: `config: invalid duration "1.5.5h"`},
		{name: "fail/space", in: "8 h", wantErr: `config: invalid duration "8 h"`},
		{name: "fail/leading-space", in: " 8h", wantErr: `config: invalid duration " 8h"`},
		{name: "fail/exponent", in: "1e3h", wantErr: `config: invalid duration "1e3h"`},
		{name: "fail/long-garbage-shortened", in: strings.Repeat("x", 100), wantErr: `config: invalid duration "` + strings.Repeat("x", 64) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{90 * time.Minute, "1h30m"},
		{12 * time.Hour, "12h"},
		{48 * time.Hour, "2d"},
		{9 * 24 * time.Hour, "1w2d"},
		{52 * 7 * 24 * time.Hour, "52w"},
		{1500 * time.Millisecond, "1s500ms"},
		{time.Microsecond + 1, "1us1ns"},
		{-5 * time.Minute, "-5m"},
		{math.MaxInt64, "15250w1d23h47m16s854ms775us807ns"},
	}
	for _, tt := range tests {
		t.Run("ok/"+tt.want, func(t *testing.T) {
			got := Duration(tt.in).String()
			if got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if tt.in < 0 {
				return
			}
			back, err := ParseDuration(got)
			if err != nil || back != tt.in {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.in)
			}
		})
	}
}

// FuzzParseDuration checks ParseDuration against time.ParseDuration on
// the syntax they share, and that String output parses back.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "90m", "1.5h", ".5d", "52w", "1w2d", "999999999w", "8x", "-5m", "+5m",
		"2562047h47m16.854775807s", "2562047h47m16.854775808s", "0.0000000000000000000001s", "1.h", "5µs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if err == nil {
			if got < 0 {
				t.Fatalf("ParseDuration(%q) = %v, negative", s, got)
			}
			back, err := ParseDuration(Duration(got).String())
			if err != nil || back != got {
				t.Fatalf("round trip of %v via %q: %v, %v", got, Duration(got).String(), back, err)
			}
		}
		if strings.ContainsAny(s, "dw+-") {
			return
		}
		want, werr := time.ParseDuration(s)
		if (err == nil) != (werr == nil) || got != want && err == nil {
			t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration = %v, %v", s, got, err, want, werr)
		}
	})
}
