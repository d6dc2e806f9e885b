package store

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

var sealStrings = []string{"", "deploy", "<&>", "quote \" back \\", "\x00\x1f\x7f", "bad \xff utf8", "\u2028\u2029", "🔑 ключ", "tab\tnl\n"}

func randomSealString(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return sealStrings[r.IntN(len(sealStrings))]
	}
	b := make([]byte, r.IntN(30))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randomSealTime(r *rand.Rand) time.Time {
	switch r.IntN(5) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, 0) // zero instant in a location: not the zero value
	case 2:
		return time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(time.FixedZone("x", 60*r.IntN(2*23*60)-23*3600+r.IntN(60)))
	}
	return time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).UTC()
}

func randomSealStrings(r *rand.Rand) []string {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, 1+r.IntN(4))
	for i := range out {
		out[i] = randomSealString(r)
	}
	return out
}

// TestCertColumnsMatchReflection holds issuance's seal of a certificate
// row equal to the generic one, which audit verify recomputes from rows.
func TestCertColumnsMatchReflection(t *testing.T) {
	// A field added to either type must be added to certColumns too.
	if n := reflect.TypeFor[CertRecord]().NumField(); n != 14 {
		t.Fatalf("CertRecord has %d fields; certColumns knows 14", n)
	}
	if n := reflect.TypeFor[Lineage]().NumField(); n != 8 {
		t.Fatalf("Lineage has %d fields; appendLineageJSON knows 8", n)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		c := CertRecord{Lineage: Lineage{}}
		if i%4 != 0 {
			c = CertRecord{Serial: r.Uint64() >> r.IntN(64), CAType: randomSealString(r), CAFingerprint: randomSealString(r), Role: randomSealString(r),
				KeyID: randomSealString(r), Principals: randomSealStrings(r), ValidAfter: randomSealTime(r), ValidBefore: randomSealTime(r),
				SubjectFingerprint: randomSealString(r), SubjectType: randomSealString(r), Requester: randomSealString(r), IssuedAt: randomSealTime(r),
				Cert: randomSealString(r)}
		}
		if i%3 != 0 {
			c.Lineage = Lineage{Caller: randomSealString(r), Identity: randomSealString(r), Groups: randomSealStrings(r), MFA: r.IntN(2) == 0,
				AuthTime: randomSealTime(r), TokenID: randomSealString(r), Origin: uint64(r.IntN(3)), Renews: uint64(r.IntN(3))}
		}
		got, ok := certColumns(&c)
		if !ok {
			t.Fatalf("certColumns refused %#v", c)
		}
		if want := reflectColumns(&c); !slices.Equal(got, want) {
			t.Fatalf("record %#v:\n got %v\nwant %v", c, got, want)
		}
		if SealRow(&c) != SealRow(c) {
			t.Fatalf("record %#v: pointer and value seal differently", c)
		}
	}
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 25*3600))} {
		far := CertRecord{Serial: 1, Lineage: Lineage{AuthTime: at}}
		if _, ok := certColumns(&far); ok {
			t.Fatalf("certColumns took authentication time %v, which MarshalJSON refuses", at)
		}
		if !slices.Equal(rowColumns(&far), reflectColumns(&far)) {
			t.Fatalf("rowColumns of authentication time %v differs from the generic path", at)
		}
	}
}

// TestAppendersMatchMarshal: the lineage column issuance writes without
// reflection is the bytes encoding/json writes.
func TestAppendersMatchMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		l := Lineage{Caller: randomSealString(r), Identity: randomSealString(r), Groups: randomSealStrings(r), MFA: r.IntN(2) == 0,
			AuthTime: randomSealTime(r), TokenID: randomSealString(r), Origin: uint64(r.IntN(3)), Renews: uint64(r.IntN(3))}
		want, err := json.Marshal(l)
		got, ok := AppendLineageJSON(nil, &l)
		if err != nil || !ok || string(got) != string(want) {
			t.Fatalf("lineage %#v: got %s (%v) want %s (%v)", l, got, ok, want, err)
		}
	}
	far := Lineage{Identity: "x", AuthTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := AppendLineageJSON(nil, &far); ok {
		t.Fatal("AppendLineageJSON took a year beyond 9999")
	}
}
