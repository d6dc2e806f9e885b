package policy

import (
	"math/rand/v2"
	"testing"
)

// TestCharProblemASCII: the byte-by-byte judgement of ASCII principals
// says what the rune-by-rune one says, for every string of a random
// mixture of ordinary, forbidden and non-ASCII bytes.
func TestCharProblemASCII(t *testing.T) {
	alphabet := []byte("az09-_.@:/+=~[]%*?, \t\n\x00\x7f\x1f")
	alphabet = append(alphabet, 0x80, 0xc3, 0xa9, 0xe2, 0x80, 0x8b, 0xff, 0x85)
	r := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := charProblem(string(b)), charProblemRunes(string(b)); got != want {
			t.Fatalf("%q: %q, rune by rune %q", b, got, want)
		}
	}
	for c := range 256 {
		s := "ab" + string([]byte{byte(c)}) + "cd"
		if got, want := charProblem(s), charProblemRunes(s); got != want {
			t.Fatalf("%q: %q, rune by rune %q", s, got, want)
		}
	}
}
