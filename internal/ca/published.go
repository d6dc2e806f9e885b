package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// PublishedKRL is the KRL of one CA type for one state of the store, built
// and signed: what the service publishes and what renewal checks against.
type PublishedKRL struct {
	Data   []byte    // the binary KRL
	Sig    []byte    // its detached SSHSIG signature by the active CA key (armored)
	ETag   string    // quoted strong validator of Data
	Date   time.Time // the KRL's generation date
	Parsed *krl.KRL
	key    string // version + CA key set it was built from
}

// krlCache keeps the latest PublishedKRL per CA type.
type krlCache struct {
	mu sync.Mutex
	m  map[string]*PublishedKRL
}

// CurrentKRL returns the KRL of caType for the store's current state,
// building and signing it only when the KRL version or the CA keys changed.
// The store must be able to build KRLs (KRLStore).
func (a *Authority) CurrentKRL(ctx context.Context, caType string) (*PublishedKRL, error) {
	ks, ok := a.Store.(KRLStore)
	if !ok {
		return nil, errors.New("ca: the store cannot build a KRL")
	}
	v, err := ks.KRLVersion(ctx, caType)
	if err != nil {
		return nil, err
	}
	keys, err := ks.ListCAKeys(ctx, caType)
	if err != nil {
		return nil, err
	}
	var kb strings.Builder
	fmt.Fprintf(&kb, "%d", v)
	for _, k := range keys {
		fmt.Fprintf(&kb, "|%d:%s:%s", k.Generation, k.State, k.Fingerprint)
	}
	cacheKey := kb.String()
	c := &a.krls
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[caType]; e != nil && e.key == cacheKey {
		return e, nil
	}
	k, err := BuildKRL(ctx, ks, caType, a.now())
	if err != nil {
		return nil, err
	}
	data, err := MarshalKRL(k)
	if err != nil {
		return nil, err
	}
	active, err := ActiveKey(ctx, a.Store, caType)
	if err != nil {
		return nil, err
	}
	sgn, err := a.Signer(ctx, active)
	if err != nil {
		return nil, err
	}
	sig, err := sshsig.Sign(sgn, sshsig.Namespace, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	e := &PublishedKRL{key: cacheKey, Data: data, Sig: sig, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`,
		Date: time.Unix(int64(k.GeneratedDate), 0).UTC(), Parsed: k}
	if c.m == nil {
		c.m = map[string]*PublishedKRL{}
	}
	c.m[caType] = e
	return e, nil
}
