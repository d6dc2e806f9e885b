package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// hostileStrings are the inputs where a JSON encoder's choices show:
// escapes, HTML characters, control characters, invalid UTF-8, line and
// paragraph separators, surrogate halves, the replacement character.
var hostileStrings = []string{
	"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f\x7f",
	"bad \xff\xfe utf8 \xc3", "sep \u2028 para \u2029 end", "\xed\xa0\x80 surrogate", "\ufffd replacement", "emoji 🔑 ключ 鍵",
	"tab\tnew\nline\rret", "\u2027\u202a", "trailing \xe2\x80", "oidc:alice role=deploy req=0123456789abcdef",
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return hostileStrings[r.IntN(len(hostileStrings))]
	}
	n := r.IntN(40)
	b := make([]byte, n)
	for i := range b {
		switch r.IntN(4) {
		case 0:
			b[i] = byte(r.IntN(256)) // any byte, invalid UTF-8 included
		default:
			b[i] = byte(0x20 + r.IntN(0x5f))
		}
	}
	return string(b)
}

func TestHashJSONMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(e Entry) {
		t.Helper()
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendHashJSON(nil, &e, nil)
		if !ok {
			t.Fatalf("appendHashJSON refused %+v", e)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("entry %+v:\n got %s\nwant %s", e, got, want)
		}
	}
	for i := range 20000 {
		e := Entry{
			Seq:      r.Uint64() >> r.IntN(64),
			Time:     time.Unix(r.Int64N(253402300799), r.Int64N(1e9)).UTC().Truncate(time.Duration(1+r.IntN(3)) * time.Microsecond),
			Actor:    randomString(r),
			Action:   randomString(r),
			Outcome:  randomString(r),
			PrevHash: randomString(r),
			Hash:     randomString(r),
		}
		if i%2 == 0 {
			e.Role, e.KeyID, e.Reason, e.Serial = randomString(r), randomString(r), randomString(r), uint64(r.IntN(3))
		}
		switch i % 3 {
		case 0:
			e.Details = map[string]string{}
		case 1:
			e.Details = map[string]string{}
			for range r.IntN(6) {
				e.Details[randomString(r)] = randomString(r)
			}
		}
		check(e)
		// Sealing with the details encoded once gives the same hash and
		// the details as the store keeps them.
		sealed := e
		if d := SealDetails(&sealed, nil); sealed.Hash != ComputeHash(sealed) || d != string(mustJSONDetails(t, e.Details)) {
			t.Fatalf("SealDetails of %+v: hash %s details %s, want %s", e, sealed.Hash, d, ComputeHash(sealed))
		}
	}
	for _, s := range hostileStrings {
		check(Entry{Time: time.Unix(0, 0).UTC(), Actor: s, Action: s, Outcome: s, Details: map[string]string{s: s, "a" + s: s}})
	}
	for r := rune(0); r < 0x3000; r++ {
		s := string(r)
		check(Entry{Time: time.Unix(1, 1000).UTC(), Actor: s, Details: map[string]string{s: s}})
	}
	// Times RFC 3339 cannot write are not promised: the caller falls back
	// to Marshal (which refuses them).
	if _, ok := appendHashJSON(nil, &Entry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil); ok {
		t.Fatal("appendHashJSON took a year beyond 9999")
	}
}

func BenchmarkComputeHash(b *testing.B) {
	e := Entry{Seq: 123456, Time: time.Now(), Actor: "token:bench", Action: ActionIssue, Role: "deploy", Serial: 99, KeyID: "token:bench role=deploy req=0123",
		Outcome: "ok", Details: map[string]string{"ca": "SHA256:xkGPt/1xEASbgh3nlzdTF32Db/JTsMWUzyIk43PZ73w", "principals": "role-deploy", "request_id": "0123", "source": "service",
			"row:cert:99": "v1 737b0aa55400ebab16aa96a5cced683d serial=60b749,ca_type=2d3756,ca_fingerprint=32b766,role=0da271,key_id=357268,principals=a979fe"},
		PrevHash: GenesisHash}
	for b.Loop() {
		ComputeHash(e)
	}
}

func mustJSONDetails(t *testing.T, d map[string]string) []byte {
	if len(d) == 0 {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
