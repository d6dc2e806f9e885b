package totp

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// rfcSecret is the SHA-1 seed of RFC 6238 appendix B (and RFC 4226 appendix D).
var rfcSecret = []byte("12345678901234567890")

func TestRFC6238Vectors(t *testing.T) {
	// RFC 6238 appendix B, the SHA1 rows (8-digit codes).
	tests := []struct {
		unix int64
		step uint64
		want string
	}{
		{unix: 59, step: 0x1, want: "94287082"},
		{unix: 1111111109, step: 0x23523EC, want: "07081804"},
		{unix: 1111111111, step: 0x23523ED, want: "14050471"},
		{unix: 1234567890, step: 0x273EF07, want: "89005924"},
		{unix: 2000000000, step: 0x3F940AA, want: "69279037"},
		{unix: 20000000000, step: 0x27BC86AA, want: "65353130"},
	}
	for _, tt := range tests {
		t.Run("ok/"+tt.want, func(t *testing.T) {
			at := time.Unix(tt.unix, 0)
			if got := Step(at); got != tt.step {
				t.Fatalf("Step(%d) = %#x, want %#x", tt.unix, got, tt.step)
			}
			if got := hotp(rfcSecret, tt.step, 8); got != tt.want {
				t.Fatalf("8-digit code = %s, want %s", got, tt.want)
			}
			// The 6-digit code is the value mod 10^6: the last six digits.
			want6 := tt.want[2:]
			if got := Code(rfcSecret, at); got != want6 {
				t.Fatalf("Code = %s, want %s", got, want6)
			}
			step, err := Verify(rfcSecret, want6, at, 0)
			if err != nil || step != tt.step {
				t.Fatalf("Verify = %d, %v; want %d, nil", step, err, tt.step)
			}
		})
	}
}

func TestRFC4226Vectors(t *testing.T) {
	// RFC 4226 appendix D: HOTP values for counters 0..9.
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for i, w := range want {
		if got := hotp(rfcSecret, uint64(i), 6); got != w {
			t.Errorf("hotp(counter %d) = %s, want %s", i, got, w)
		}
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1234567890, 0) // step 0x273EF07
	now := Step(at)
	codeAt := func(step uint64) string { return hotp(rfcSecret, step, 6) }
	tests := []struct {
		name     string
		secret   []byte
		code     string
		lastStep uint64
		want     uint64
		wantErr  error
	}{
		{name: "ok/current", code: codeAt(now), want: now},
		{name: "ok/previous step", code: codeAt(now - 1), want: now - 1},
		{name: "ok/next step", code: codeAt(now + 1), want: now + 1},
		{name: "ok/after last use", code: codeAt(now), lastStep: now - 1, want: now},
		{name: "ok/next step after current used", code: codeAt(now + 1), lastStep: now, want: now + 1},
		{name: "fail/two steps back", code: codeAt(now - 2), wantErr: ErrMismatch},
		{name: "fail/two steps ahead", code: codeAt(now + 2), wantErr: ErrMismatch},
		{name: "fail/replay same step", code: codeAt(now), lastStep: now, wantErr: ErrReplay},
		{name: "fail/replay older step", code: codeAt(now - 1), lastStep: now, wantErr: ErrReplay},
		{name: "fail/wrong digits", code: wrong(codeAt(now)), wantErr: ErrMismatch},
		{name: "fail/empty", code: "", wantErr: ErrFormat},
		{name: "fail/five digits", code: codeAt(now)[:5], wantErr: ErrFormat},
		{name: "fail/seven digits", code: codeAt(now) + "0", wantErr: ErrFormat},
		{name: "fail/eight digit RFC code", code: "89005924", wantErr: ErrFormat},
		{name: "fail/space", code: codeAt(now)[:3] + " " + codeAt(now)[3:5], wantErr: ErrFormat},
		{name: "fail/sign", code: "+" + codeAt(now)[1:], wantErr: ErrFormat},
		{name: "fail/unicode digit", code: codeAt(now)[:5] + "\u0661", wantErr: ErrFormat},
		{name: "fail/short secret", secret: rfcSecret[:15], code: hotp(rfcSecret[:15], now, 6), wantErr: ErrSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := tt.secret
			if secret == nil {
				secret = rfcSecret
			}
			got, err := Verify(secret, tt.code, at, tt.lastStep)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify(%q) error = %v, want %v", tt.code, err, tt.wantErr)
				}
				if got != 0 {
					t.Fatalf("Verify(%q) step = %d on error, want 0", tt.code, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Verify(%q) = %d, %v; want %d, nil", tt.code, got, err, tt.want)
			}
		})
	}
}

// wrong changes the last digit of a code.
func wrong(code string) string {
	last := code[len(code)-1]
	return code[:len(code)-1] + string('0'+(last-'0'+1)%10)
}

func TestVerifyEpochEdge(t *testing.T) {
	// At step 0 there is no previous step; the window must not wrap to 2^64-1.
	at := time.Unix(5, 0)
	if _, err := Verify(rfcSecret, hotp(rfcSecret, ^uint64(0), 6), at, 0); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrapped step accepted: %v", err)
	}
	// Step 0 (the first 30 s of 1970) is never after lastStep, so it counts as used.
	if _, err := Verify(rfcSecret, Code(rfcSecret, at), at, 0); !errors.Is(err, ErrReplay) {
		t.Fatalf("step 0 with lastStep 0: %v, want ErrReplay", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Run("ok/reads 20 bytes", func(t *testing.T) {
		src := bytes.NewReader(bytes.Repeat([]byte{7}, 64))
		s, err := NewSecret(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s, bytes.Repeat([]byte{7}, SecretSize)) {
			t.Fatalf("secret = %x", s)
		}
		if src.Len() != 64-SecretSize {
			t.Fatalf("read %d bytes, want %d", 64-src.Len(), SecretSize)
		}
	})
	t.Run("fail/short reader", func(t *testing.T) {
		if _, err := NewSecret(bytes.NewReader(make([]byte, 10))); err == nil || !strings.HasPrefix(err.Error(), "totp: ") {
			t.Fatalf("err = %v, want totp: error", err)
		}
	})
	t.Run("fail/reader error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := NewSecret(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want wrapped boom", err)
		}
	})
}

func TestURI(t *testing.T) {
	tests := []struct {
		name, issuer, account string
		wantPath              string
		wantIssuer            string
	}{
		{name: "ok/plain", issuer: "sshca", account: "alice@example.com", wantPath: "/sshca:alice@example.com", wantIssuer: "sshca"},
		{name: "ok/no issuer", account: "alice", wantPath: "/alice"},
		{name: "ok/colon and space escaped", issuer: "Acme: CA", account: "a:b c", wantPath: "/Acme%3A%20CA:a%3Ab%20c", wantIssuer: "Acme: CA"},
		{name: "ok/slash and query chars escaped", issuer: "x/y", account: "a?b#c&d", wantPath: "/x%2Fy:a%3Fb%23c&d", wantIssuer: "x/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := URI(rfcSecret, tt.issuer, tt.account)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("URI %q does not parse: %v", raw, err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" {
				t.Fatalf("URI %q: scheme/host = %q/%q", raw, u.Scheme, u.Host)
			}
			if u.EscapedPath() != tt.wantPath {
				t.Fatalf("URI %q: path %q, want %q", raw, u.EscapedPath(), tt.wantPath)
			}
			q := u.Query()
			if got := q.Get("secret"); got != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
				t.Fatalf("secret param = %q", got)
			}
			if got := q.Get("issuer"); got != tt.wantIssuer {
				t.Fatalf("issuer param = %q, want %q", got, tt.wantIssuer)
			}
			for k, want := range map[string]string{"algorithm": "SHA1", "digits": "6", "period": "30"} {
				if q.Get(k) != want {
					t.Fatalf("%s = %q, want %q", k, q.Get(k), want)
				}
			}
			sec, err := b32.DecodeString(q.Get("secret"))
			if err != nil || !bytes.Equal(sec, rfcSecret) {
				t.Fatalf("secret round trip: %x, %v", sec, err)
			}
		})
	}
}

// FuzzVerify checks that Verify never panics, accepts only six ASCII digits,
// and that whatever it accepts is the code of the step it returns, within the
// window and after lastStep.
func FuzzVerify(f *testing.F) {
	f.Add("287082", int64(59), uint64(0))
	f.Add("005924", int64(1234567890), uint64(0))
	f.Add("005924", int64(1234567890), uint64(0x273EF07))
	f.Add("", int64(0), uint64(0))
	f.Add("12345", int64(-1), uint64(1))
	f.Add("1234567", int64(1<<40), ^uint64(0))
	f.Add("12 456", int64(30), uint64(0))
	f.Add("٠١٢٣٤٥", int64(30), uint64(0))
	f.Fuzz(func(t *testing.T, code string, unix int64, last uint64) {
		at := time.Unix(unix, 0)
		step, err := Verify(rfcSecret, code, at, last)
		if err != nil {
			if step != 0 {
				t.Fatalf("step %d returned with error %v", step, err)
			}
			return
		}
		if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
			t.Fatalf("accepted malformed code %q", code)
		}
		if step <= last {
			t.Fatalf("accepted step %d <= lastStep %d", step, last)
		}
		now := Step(at)
		if step+1 < now || step > now+1 {
			t.Fatalf("accepted step %d outside window around %d", step, now)
		}
		if hotp(rfcSecret, step, 6) != code {
			t.Fatalf("step %d does not produce code %q", step, code)
		}
	})
}
