package jsonenc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// hostile are the inputs where a JSON encoder's choices show: escapes,
// HTML characters, control characters, invalid UTF-8, line and paragraph
// separators, surrogate halves, the replacement character.
var hostile = []string{
	"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f\x7f",
	"bad \xff\xfe utf8 \xc3", "sep \u2028 para \u2029 end", "\xed\xa0\x80 surrogate", "\ufffd replacement", "emoji 🔑 ключ 鍵",
	"tab\tnew\nline\rret", "\u2027\u202a", "trailing \xe2\x80",
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return hostile[r.IntN(len(hostile))]
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		if r.IntN(4) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = byte(0x20 + r.IntN(0x5f))
		}
	}
	return string(b)
}

func TestMatchesMarshal(t *testing.T) {
	check := func(v any, got []byte) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", v, got, want)
		}
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 20000 {
		s := randomString(r)
		check(s, String(nil, s))
		m := map[string]string{}
		var ss []string
		if r.IntN(3) > 0 {
			ss = []string{}
		}
		for range r.IntN(8) {
			m[randomString(r)] = randomString(r)
			ss = append(ss, randomString(r))
		}
		check(m, Map(nil, m))
		check(ss, Strings(nil, ss))
	}
	for c := rune(0); c < 0x3000; c++ {
		check(string(c), String(nil, string(c)))
	}
	for range 20000 {
		tm := time.Unix(r.Int64N(1<<38)-1<<37, r.Int64N(1e9)).In(time.FixedZone("z", r.IntN(48*3600)-24*3600))
		want, err := json.Marshal(tm)
		if ok := TimeOK(tm); ok != (err == nil) {
			t.Fatalf("TimeOK(%v) = %v, Marshal error %v", tm, ok, err)
		}
		if err == nil && !bytes.Equal(Time(nil, tm), want) {
			t.Fatalf("%v: got %s want %s", tm, Time(nil, tm), want)
		}
	}
}

func BenchmarkString(b *testing.B) {
	s := "v1 737b0aa55400ebab16aa96a5cced683d serial=60b749,ca_type=2d3756,ca_fingerprint=32b766,role=0da271,key_id=357268,principals=a979fe,valid_after=02eb2d,valid_before=8b9ce3,subject_fingerprint=b69ab7,subject_type=3d2cec,requester=18b34a,issued_at=c91de3,cert=6e1d92,lineage=2ddd9e"
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = String(buf[:0], s)
	}
}

// FuzzString: any string is quoted as encoding/json quotes it.
func FuzzString(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := String(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
