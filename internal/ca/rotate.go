package ca

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// RotationStore is the storage CA key rotation needs.
type RotationStore interface {
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	AddCAKey(ctx context.Context, k store.CAKey, ev audit.Entry) error
	SetCAKeyStates(ctx context.Context, caType string, states map[int]string, ev audit.Entry) error
	GenerationStats(ctx context.Context, caType string) (map[string]store.GenerationStat, error)
}

// Generation describes a CA key generation with what it signed.
type Generation struct {
	store.CAKey
	// LastExpiry is the latest expiry among the certificates it signed
	// (zero if it signed none).
	LastExpiry time.Time
	// Issued is how many certificates it signed.
	Issued int
}

// GenerationStore is what Generations reads.
type GenerationStore interface {
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	// GenerationStats counts, per CA key fingerprint, the certificates it
	// signed and the latest expiry of those not renewed by a later one
	// (host certificates only), without reading certificate bodies.
	GenerationStats(ctx context.Context, caType string) (map[string]store.GenerationStat, error)
}

// Generations lists caType's keys with the expiry of their last certificate
// that holds the key back; `ca retire`, the service's auto-retire and the
// /metrics gauges (Monitor) all read it from here. A host certificate that
// was renewed (its host proved possession of the host key and took the new
// certificate: what sync does after a promotion) no longer holds its
// generation back, although it stays valid until it expires. Certificates
// signed by hand are not renewals and still count.
func Generations(ctx context.Context, st GenerationStore, caType string) ([]Generation, error) {
	keys, err := st.ListCAKeys(ctx, caType)
	if err != nil {
		return nil, err
	}
	stats, err := st.GenerationStats(ctx, caType)
	if err != nil {
		return nil, err
	}
	out := make([]Generation, len(keys))
	for i, k := range keys {
		out[i] = Generation{CAKey: k}
		if s, ok := stats[k.Fingerprint]; ok {
			out[i].Issued, out[i].LastExpiry = s.Issued, s.LastExpiry
		}
	}
	return out, nil
}

// NextGeneration returns the number the next key of caType gets.
func NextGeneration(keys []store.CAKey) int {
	n := 0
	for _, k := range keys {
		n = max(n, k.Generation)
	}
	return n + 1
}

// AddNext records a new `next` key: published, not yet signing.
func AddNext(ctx context.Context, st RotationStore, k store.CAKey, actor string, now time.Time) error {
	keys, err := st.ListCAKeys(ctx, k.CAType)
	if err != nil {
		return err
	}
	for _, e := range keys {
		if e.State == store.StateNext {
			return fmt.Errorf("rotate: %s CA generation %d is already the next key; promote it first", k.CAType, e.Generation)
		}
		if e.Fingerprint == k.Fingerprint {
			return fmt.Errorf("rotate: key %s is already %s CA generation %d", k.Fingerprint, k.CAType, e.Generation)
		}
	}
	k.State = store.StateNext
	k.CreatedAt = now
	ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionCARotate, Outcome: "ok",
		Details: map[string]string{"ca": k.CAType, "generation": fmt.Sprint(k.Generation), "fingerprint": k.Fingerprint, "key_type": k.KeyType, "signer": k.Signer}}
	return st.AddCAKey(ctx, k, ev)
}

// Promote makes the `next` key active and the active one retiring.
func Promote(ctx context.Context, st RotationStore, caType, actor string, now time.Time) (int, error) {
	keys, err := st.ListCAKeys(ctx, caType)
	if err != nil {
		return 0, err
	}
	states := map[int]string{}
	next := 0
	for _, k := range keys {
		switch k.State {
		case store.StateNext:
			next = k.Generation
			states[k.Generation] = store.StateActive
		case store.StateActive:
			states[k.Generation] = store.StateRetiring
		}
	}
	if next == 0 {
		return 0, fmt.Errorf("rotate: the %s CA has no next key; run `sshca ca rotate --type %s` first and let servers pick it up", caType, caType)
	}
	ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionCAPromote, Outcome: "ok",
		Details: map[string]string{"ca": caType, "generation": fmt.Sprint(next)}}
	return next, st.SetCAKeyStates(ctx, caType, states, ev)
}

// ErrUnexpired is returned when retiring a key that still has valid certificates.
var ErrUnexpired = errors.New("certificates it signed are still valid")

// Retire moves a retiring (or next) generation to retired. Without force
// it refuses while certificates it signed are valid (plus grace).
func Retire(ctx context.Context, st RotationStore, caType string, gen int, force bool, grace time.Duration, actor string, now time.Time) error {
	gens, err := Generations(ctx, st, caType)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g.Generation != gen {
			continue
		}
		switch g.State {
		case store.StateActive:
			return fmt.Errorf("retire: %s CA generation %d is the active key; promote another first", caType, gen)
		case store.StateRetired, store.StateRevoked:
			return fmt.Errorf("retire: %s CA generation %d is already %s", caType, gen, g.State)
		}
		if !force && now.Before(g.LastExpiry.Add(grace)) {
			return fmt.Errorf("retire: %s CA generation %d: %w until %s", caType, gen, ErrUnexpired, g.LastExpiry.Add(grace).UTC().Format(time.RFC3339))
		}
		ev := audit.Entry{Time: now, Actor: actor, Action: audit.ActionCARetire, Outcome: "ok",
			Details: map[string]string{"ca": caType, "generation": fmt.Sprint(gen), "forced": fmt.Sprint(force)}}
		return st.SetCAKeyStates(ctx, caType, map[int]string{gen: store.StateRetired}, ev)
	}
	return fmt.Errorf("retire: %s CA has no generation %d", caType, gen)
}

// AutoRetire retires every retiring key whose certificates have all expired
// for at least grace. It returns the generations retired.
func AutoRetire(ctx context.Context, st RotationStore, caType string, grace time.Duration, now time.Time) ([]int, error) {
	gens, err := Generations(ctx, st, caType)
	if err != nil {
		return nil, err
	}
	var done []int
	for _, g := range gens {
		if g.State != store.StateRetiring || now.Before(g.LastExpiry.Add(grace)) {
			continue
		}
		if err := Retire(ctx, st, caType, g.Generation, false, grace, "sshca:auto-retire", now); err != nil {
			return done, err
		}
		done = append(done, g.Generation)
	}
	return done, nil
}

// RevokeKeyStates computes the state changes of an emergency revocation of
// generation gen: it becomes revoked, and if it was active, newGen (already
// added as next) becomes active.
func RevokeKeyStates(keys []store.CAKey, gen, newGen int) (map[int]string, error) {
	states := map[int]string{}
	found := false
	for _, k := range keys {
		if k.Generation == gen {
			found = true
			if k.State == store.StateRevoked {
				return nil, fmt.Errorf("revoke-key: generation %d is already revoked", gen)
			}
			states[gen] = store.StateRevoked
			if k.State == store.StateActive {
				states[newGen] = store.StateActive
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("revoke-key: no generation %d", gen)
	}
	return states, nil
}

// PublicKeyOf parses a generation's public key.
func PublicKeyOf(k store.CAKey) (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(k.PublicKey)))
	return pub, err
}
