package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// supportedAlgs are the JWS algorithms go-oidc verifies; the issuer's
// advertised list is narrowed to these.
var supportedAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// maxJWKSSize bounds the JWKS document; real ones are a few kilobytes.
const maxJWKSSize = 1 << 20

// maxKeyAge is how long fetched keys are used before the JWKS is fetched
// again even though every key ID is known.
const maxKeyAge = 15 * time.Minute

// minRSABits is the smallest RSA signing key accepted from a JWKS, as for
// certificate subject keys.
const minRSABits = 2048

// keySet is go-oidc's KeySet backed by the issuer's JWKS. Unlike go-oidc's
// RemoteKeySet it refetches at most once per interval (a stream of tokens with
// made-up key IDs costs one request to the issuer per interval, not one per
// token), refetches keys older than maxKeyAge (so a withdrawn key stops
// working even when no new key ID shows up), caps the document size, keeps only public signature keys of sane
// size, and reports unknown key IDs and bad signatures as distinct errors.
type keySet struct {
	url      string
	client   *http.Client
	now      func() time.Time
	interval time.Duration

	fetchMu sync.Mutex // held for a whole fetch, so fetches never overlap

	mu      sync.Mutex // guards the fields below
	keys    []jose.JSONWebKey
	fetched time.Time // last fetch attempt, successful or not
	loaded  time.Time // last successful fetch
}

// VerifySignature implements go-oidc's KeySet. Its error, also stored through
// the context's sigErrKey, wraps ErrUnknownKey, ErrBadSignature or
// ErrMalformed.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.verify(ctx, jwt)
	if err != nil {
		if p, ok := ctx.Value(sigErrKey{}).(*error); ok {
			*p = err
		}
		return nil, err
	}
	return payload, nil
}

func (k *keySet) verify(ctx context.Context, jwt string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(supportedAlgs))
	for i, a := range supportedAlgs {
		algs[i] = jose.SignatureAlgorithm(a) // go-oidc has already narrowed the algorithm
	}
	jws, err := jose.ParseSigned(jwt, algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformed, len(jws.Signatures))
	}
	hdr := jws.Signatures[0].Header
	if k.stale() {
		// Keys the issuer has withdrawn must stop working even if no token
		// with a new key ID comes along; on failure the old keys stay.
		_ = k.refresh(context.WithoutCancel(ctx), false)
	}
	payload, _ := verifyWith(jws, hdr, k.current())
	if payload != nil {
		return payload, nil
	}
	// An unknown key ID usually means the issuer rotated its keys (OIDC Core
	// section 10.1.1); a known one that fails may mean a key was replaced
	// under the same ID. Either way, look again, within the rate limit.
	// The fetch ignores the caller's cancellation: a client that hangs up
	// must not record a failed attempt that holds off the refresh others need.
	if err := k.refresh(context.WithoutCancel(ctx), false); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrUnknownKey, clip(hdr.KeyID), err)
	}
	payload, known := verifyWith(jws, hdr, k.current())
	switch {
	case payload != nil:
		return payload, nil
	case !known:
		return nil, fmt.Errorf("%w %s: not in the issuer's JWKS", ErrUnknownKey, clip(hdr.KeyID))
	default:
		return nil, fmt.Errorf("%w: key ID %s", ErrBadSignature, clip(hdr.KeyID))
	}
}

// verifyWith tries the keys that match the token's key ID (all of them when it
// has none) and whose own alg, if any, is the token's. known reports whether
// the key ID was found.
func verifyWith(jws *jose.JSONWebSignature, hdr jose.Header, keys []jose.JSONWebKey) (payload []byte, known bool) {
	for _, key := range keys {
		if hdr.KeyID != "" && key.KeyID != hdr.KeyID {
			continue
		}
		known = true
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		if p, err := jws.Verify(key.Key); err == nil {
			return p, true
		}
	}
	return nil, known
}

// stale reports whether the keys were loaded more than maxKeyAge ago.
func (k *keySet) stale() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	age := k.now().Sub(k.loaded)
	return age > maxKeyAge || age < 0
}

func (k *keySet) current() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys
}

// refresh fetches the JWKS unless another fetch was attempted less than
// interval ago (force skips that check). When it skips, the keys of that
// fetch are already in place, so the caller simply tries again.
func (k *keySet) refresh(ctx context.Context, force bool) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.Lock()
	last := k.fetched
	k.mu.Unlock()
	now := k.now()
	if since := now.Sub(last); !force && !last.IsZero() && since >= 0 && since < k.interval {
		return nil
	}
	keys, err := k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetched = now
	if err != nil {
		return err // keep the keys we had: the issuer may be briefly down
	}
	k.keys, k.loaded = keys, now
	return nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oidc: jwks %s: status %s", k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks %s: %w", k.url, err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("oidc: jwks %s: larger than %d bytes", k.url, maxJWKSSize)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("oidc: jwks %s: %w", k.url, err)
	}
	return keys, nil
}

// parseJWKS keeps the usable keys of a JWK Set: public RSA (>= 2048 bits),
// ECDSA and Ed25519 keys not marked for encryption. Other keys are skipped,
// as RFC 7517 section 5 asks of keys an implementation does not understand.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil {
			continue // unknown kty or curve, or malformed: not a key we could use
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		key = key.Public() // an issuer that publishes private parts gets them ignored
		switch pub := key.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue // symmetric keys never verify an ID token here
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing keys")
	}
	return keys, nil
}
