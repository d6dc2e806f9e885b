package ca

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sshca/sshca/internal/store"
)

// TestStatusMatcherRanges: the indexed range lookup finds, for every serial,
// the same earliest covering range revocation as a scan of all of them,
// with overlapping, nested and single-serial ranges and the extreme serials.
func TestStatusMatcherRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var revs []store.Revocation
		n := 1 + r.IntN(40)
		for i := 0; i < n; i++ {
			lo := uint64(r.IntN(200))
			hi := lo + uint64(r.IntN(30))
			if r.IntN(5) == 0 {
				hi = lo
			}
			if r.IntN(20) == 0 {
				hi = math.MaxUint64
			}
			revs = append(revs, store.Revocation{ID: int64(i + 1), Kind: store.RevokeSerial, Lo: lo, Hi: hi})
		}
		m := newStatusMatcher(revs)
		for _, serial := range append([]uint64{0, math.MaxUint64}, func() []uint64 {
			var s []uint64
			for i := uint64(0); i < 260; i++ {
				s = append(s, i)
			}
			return s
		}()...) {
			want := int64(0)
			for _, rv := range revs {
				if rv.Lo <= serial && serial <= rv.Hi && (want == 0 || rv.ID < want) {
					want = rv.ID
				}
			}
			got, ok := m.match(&store.CertRecord{Serial: serial})
			if (want != 0) != ok || (ok && got.ID != want) {
				t.Fatalf("round %d serial %d: got %v %v, want revocation %d (revocations %v)", round, serial, got.ID, ok, want, revs)
			}
		}
	}
}
