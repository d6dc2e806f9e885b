package store

import (
	"context"
	"errors"
)

// ErrNotEmpty: an import's target store already holds state.
var ErrNotEmpty = errors.New("store: target is not empty")

// DumpVersion is the version of the dump format written by Dumper.Export;
// Import refuses other versions.
const DumpVersion = 1

// DumpRecord is one record of a dump: a store's whole state as tables of
// rows, copied verbatim (every column as stored, TOTP secrets still
// encrypted, the audit chain with its sequence numbers and hashes), so that
// row seals, the audit chain and the head kept outside the database verify
// the same on the copy. A table starts with a header record (Columns set);
// its rows follow, each with Row holding one value per column, int64 or
// string. Renewal challenges are not part of a dump.
type DumpRecord struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns,omitempty"`
	Row     []any    `json:"row,omitempty"`
}

// DumpCounts is the number of rows of each table in a dump.
type DumpCounts map[string]int64

// Dumper copies a store's state out and into another, empty store, of any
// backend. Both directions stream: no table is held in memory.
type Dumper interface {
	// Export calls fn with the store's whole state from one consistent
	// snapshot (a read transaction that sees no later commit), table by
	// table, and returns the rows exported per table. An error from fn
	// stops it and is returned.
	Export(ctx context.Context, fn func(DumpRecord) error) (DumpCounts, error)
	// BeginImport starts copying a dump into the store in one write
	// transaction; ErrNotEmpty if the store already holds certificates,
	// CA keys, revocations, tokens, TOTP enrollments, hosts or audit
	// entries. Nothing is visible until Commit.
	BeginImport(ctx context.Context) (Import, error)
	// Counts returns the rows of each table a dump holds, as they are now.
	Counts(ctx context.Context) (DumpCounts, error)
}

// Import is an import in progress (see Dumper.BeginImport).
type Import interface {
	// Add writes one record of the dump.
	Add(ctx context.Context, r DumpRecord) error
	// Commit makes the import durable, after starting the serial counter
	// above every serial the dump holds or had reserved, and returns the
	// rows imported per table.
	Commit(ctx context.Context) (DumpCounts, error)
	// Rollback abandons the import; a no-op after Commit.
	Rollback() error
}
