package ca

import (
	"context"
	"time"

	"github.com/sshca/sshca/internal/store"
)

// MonitorStore is what Monitor reads.
type MonitorStore interface {
	StatusStore      // revocations and CA keys
	store.StatsStore // CA expiries and generation stats
	// EachCert streams the certificates f selects (memory does not grow
	// with their number).
	EachCert(ctx context.Context, f store.CertFilter, fn func(store.CertRecord) error) error
	ListHosts(ctx context.Context) ([]store.Host, error)
	KRLVersion(ctx context.Context, caType string) (uint64, error)
}

// GenerationExpiry is one CA key generation as a pager sees it.
type GenerationExpiry struct {
	CAType     string
	Generation int
	State      string
	// LastExpiry is when the last certificate it signed expires (zero if
	// it signed none): until then servers must keep trusting it.
	LastExpiry time.Time
	// RetireDeadline, for a retiring generation, is the earliest time it
	// may be retired (LastExpiry plus the retire grace): the service
	// retires it then, and `ca retire` refuses before.
	RetireDeadline time.Time
}

// RoleCount counts the outstanding certificates of one role.
type RoleCount struct {
	CAType, Role string
	Count        int
}

// Snapshot is the state of the CA that expiry alerts watch.
type Snapshot struct {
	At          time.Time
	Generations []GenerationExpiry
	// Outstanding counts certificates valid at At and not revoked, by
	// type and role (as recorded; roles no longer in the policy included).
	Outstanding []RoleCount
	// Hosts are the servers' last reports.
	Hosts []store.Host
	// KRLVersion is the current KRL version by CA type.
	KRLVersion map[string]uint64
}

// Monitor reads a Snapshot at now. Its cost is one aggregate query over
// certificates (rows per CA key), the certificates valid now checked
// against the KRLs (to tell the outstanding ones), and the host reports; it is
// meant to be cached for a few seconds by whoever serves it.
func Monitor(ctx context.Context, st MonitorStore, grace time.Duration, now time.Time) (*Snapshot, error) {
	snap := &Snapshot{At: now, KRLVersion: map[string]uint64{}}
	exp, err := st.CAExpiries(ctx)
	if err != nil {
		return nil, err
	}
	last := map[[2]string]time.Time{}
	for _, e := range exp {
		last[[2]string{e.CAType, e.CAFingerprint}] = e.LastExpiry
	}
	for _, typ := range []string{"user", "host"} {
		keys, err := st.ListCAKeys(ctx, typ)
		if err != nil {
			return nil, err
		}
		if typ == "host" && hasRetiring(keys) {
			// A host certificate its host renewed under another key no
			// longer holds its generation back (see Generations): the
			// deadline a pager sees is the one `ca retire` enforces (only
			// while a host generation is retiring; otherwise the aggregate
			// is the same).
			gens, err := Generations(ctx, st, typ)
			if err != nil {
				return nil, err
			}
			for _, g := range gens {
				last[[2]string{typ, g.Fingerprint}] = g.LastExpiry
			}
		}
		for _, k := range keys {
			g := GenerationExpiry{CAType: typ, Generation: k.Generation, State: k.State, LastExpiry: last[[2]string{typ, k.Fingerprint}]}
			if k.State == store.StateRetiring {
				g.RetireDeadline = g.LastExpiry.Add(grace)
				if g.LastExpiry.IsZero() {
					g.RetireDeadline = now // nothing signed: retirable at once
				}
			}
			snap.Generations = append(snap.Generations, g)
		}
		v, err := st.KRLVersion(ctx, typ)
		if err != nil {
			return nil, err
		}
		snap.KRLVersion[typ] = v
	}
	// Revoked means what `sshca list` says (RevokedCerts): a revocation
	// covers the certificate, by serial or key ID under its generation, by
	// key or by CA key. The certificates are streamed: a store of millions
	// costs time here, not memory.
	rx, err := LoadRevocations(ctx, st, "user", "host")
	if err != nil {
		return nil, err
	}
	counts := map[[2]string]int{}
	err = st.EachCert(ctx, store.CertFilter{ActiveAt: now}, func(c store.CertRecord) error {
		if _, revoked := rx.Revoked(&c); revoked {
			return nil
		}
		counts[[2]string{c.CAType, c.Role}]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, n := range counts {
		snap.Outstanding = append(snap.Outstanding, RoleCount{CAType: k[0], Role: k[1], Count: n})
	}
	if snap.Hosts, err = st.ListHosts(ctx); err != nil {
		return nil, err
	}
	return snap, nil
}

func hasRetiring(keys []store.CAKey) bool {
	for _, k := range keys {
		if k.State == store.StateRetiring {
			return true
		}
	}
	return false
}
