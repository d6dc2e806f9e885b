package api

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

var certJSONStrings = []string{"", "ssh-ed25519-cert-v01@openssh.com AAAA", "<&>", `q " b \`, "\x00\x1f\x7f", "bad \xff", "\u2028\u2029", "ключ 🔑"}

func randomCertJSONString(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return certJSONStrings[r.IntN(len(certJSONStrings))]
	}
	b := make([]byte, r.IntN(24))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randomCertJSONTime(r *rand.Rand) time.Time {
	switch r.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<35), r.Int64N(1e9)).In(time.FixedZone("z", r.IntN(47*3600)-23*3600))
	}
	return time.Unix(r.Int64N(1<<35), 0).UTC()
}

// TestCertificateJSONMatchesMarshal holds the service's certificate
// answer to what encoding/json writes for it, field for field.
func TestCertificateJSONMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	strs := func() []string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = randomCertJSONString(r)
		}
		return out
	}
	taken := 0
	for i := range 20000 {
		c := Certificate{Certificate: randomCertJSONString(r), File: randomCertJSONString(r), Type: randomCertJSONString(r), CertType: randomCertJSONString(r),
			Serial: r.Uint64() >> r.IntN(64), KeyID: randomCertJSONString(r), Principals: strs(), ValidAfter: randomCertJSONTime(r), ValidBefore: randomCertJSONTime(r),
			Status: randomCertJSONString(r), KeyType: randomCertJSONString(r), KeyFingerprint: randomCertJSONString(r), CAFingerprint: randomCertJSONString(r),
			SignatureAlgorithm: randomCertJSONString(r), Extensions: strs(), Role: randomCertJSONString(r), Requester: randomCertJSONString(r),
			IssuedAt: randomCertJSONTime(r), RequestID: randomCertJSONString(r)}
		if r.IntN(2) == 0 {
			n := r.Int64N(1 << 40)
			c.RemainingSeconds = &n
		}
		if r.IntN(4) > 0 {
			c.CriticalOptions = map[string]string{}
			for range r.IntN(3) {
				c.CriticalOptions[randomCertJSONString(r)] = randomCertJSONString(r)
			}
		}
		if i%50 == 0 {
			c.Revoked = &Revocation{ID: 1, Kind: "serial"}
		}
		if i%97 == 0 {
			c.ValidAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		got, ok := AppendCertificateJSON(nil, &c)
		want, err := json.Marshal(c)
		if !ok {
			if c.Revoked == nil && err == nil {
				t.Fatalf("AppendCertificateJSON refused %#v, which encoding/json writes", c)
			}
			continue
		}
		taken++
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("certificate %#v:\n got %s\nwant %s (%v)", c, got, want, err)
		}
	}
	if taken < 15000 {
		t.Fatalf("only %d of 20000 took the fast path", taken)
	}
}
