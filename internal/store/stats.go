package store

import (
	"context"
	"time"
)

// CAExpiry is what one CA key signed, in aggregate: how many certificates
// and the latest expiry among them.
type CAExpiry struct {
	CAType        string
	CAFingerprint string
	LastExpiry    time.Time
	Issued        int
}

// StatsStore is the monitoring read model: aggregates whose size is
// bounded by the number of CA keys, never by the number of certificates.
type StatsStore interface {
	// CAExpiries returns, per CA key that signed anything, the number of
	// certificates it signed and the latest expiry among them.
	CAExpiries(ctx context.Context) ([]CAExpiry, error)
	// GenerationStats is CAExpiries for one CA type as rotation counts it:
	// a host certificate renewed by a later one does not hold its key back.
	GenerationStats(ctx context.Context, caType string) (map[string]GenerationStat, error)
}
