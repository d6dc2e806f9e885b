// Package postgres opens sshca's shared store: a PostgreSQL database reached
// through pgx's database/sql adapter, migrated on open, which several sshca
// replicas may use at once. It only connects, migrates and supplies the SQL
// dialect; the queries live in sqlstore. It never creates databases or roles.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sshca/sshca/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises schema
// migrations of replicas starting at once ("sshcamig" in ASCII).
const migrationLock int64 = 0x737368636d6d6967

// lockHead takes the audit head row lock. Every write transaction takes it
// first, so writers are serialised exactly as in SQLite (BEGIN IMMEDIATE):
// the audit chain never forks, a duplicate revocation is seen rather than
// hitting the unique index, and the one-active-key check cannot race.
const lockHead = `SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE`

// uniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const uniqueViolation = "23505"

var dialect = sqlstore.Dialect{
	Name:   "postgres",
	Rebind: rebind,
	BeginWrite: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, lockHead); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("postgres: lock audit head: %w", err)
		}
		return tx, nil
	},
	// BeginWrite already holds the head lock; sqlstore need not take it again.
	LockAudit: "",
	// pgx's default query mode prepares and caches statements by their text.
	DriverCachesStatements: true,
	IsUniqueViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == uniqueViolation
	},
}

// rebind rewrites '?' placeholders as $1, $2, ... in order, leaving quoted
// literals and identifiers alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte // ' or " while inside a quoted literal or identifier
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0 // a doubled quote reopens at once on the next byte
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string), applies any pending schema migrations and
// returns the store.
func Open(ctx context.Context, url string) (*sqlstore.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords in its parse errors.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	// Every connection is a server process; keep a small warm pool instead
	// of database/sql's default of 2 idle connections, which churns under load.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect %s: %w", where, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", where, err)
	}
	return sqlstore.New(db, dialect), nil
}

type migration struct {
	version int64
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: name must start with a positive version and '_'", base)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].name, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// migrate applies the pending migrations in one transaction. The
// transaction-scoped advisory lock makes replicas that start together take
// turns: the first applies, the others then find nothing to do.
func migrate(ctx context.Context, db *sql.DB) error {
	return migrateTo(ctx, db, 1<<62)
}

// migrateTo is migrate stopping after version upTo (tests of upgrades).
func migrateTo(ctx context.Context, db *sql.DB, upTo int64) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if latest := all[len(all)-1].version; current.Int64 > latest {
		return fmt.Errorf("database schema version %d is newer than this sshca knows (%d); upgrade sshca", current.Int64, latest)
	}
	for _, m := range all {
		if m.version <= current.Int64 || m.version > upTo {
			continue
		}
		// No arguments: pgx sends the simple protocol, which allows the
		// several statements of one migration file.
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return fmt.Errorf("record %s: %w", m.name, err)
		}
	}
	return tx.Commit()
}
