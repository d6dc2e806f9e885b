package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/sshca/sshca/internal/store"
)

// A dump (store.Dumper) is the tables below, column by column as stored:
// nothing is decoded and encoded again, so every row reads back on the
// target exactly as it did on the source, whichever engine either is.

// dumpMeta is the first table of a dump: one row, the format version.
const dumpMeta = "sshca_dump"

// dumpSequences is a table that exists only in dumps: the highest value
// each engine-managed ID sequence ever handed out (revocation IDs name
// rows in audit seals, so the target must not hand one out again).
const dumpSequences = "sequences"

type dumpColumn struct {
	name  string
	isInt bool
}

type dumpTable struct {
	name    string
	columns []dumpColumn
	order   string // ORDER BY of the export
	// singleton tables hold one row that the schema creates (the import
	// updates it); they are not counted.
	singleton bool
	// optional tables came after the first dump format: a dump of an older
	// sshca has none, and imports with them empty.
	optional bool
}

func cols(spec string) []dumpColumn {
	var out []dumpColumn
	for _, f := range strings.Fields(spec) {
		name, typ, _ := strings.Cut(f, ":")
		out = append(out, dumpColumn{name: name, isInt: typ == "i"})
	}
	return out
}

// dumpTables are the tables of a dump in export order ("name:i" is an
// integer column, "name" a text one). Renewal challenges are left out:
// they live for minutes and a client whose challenge vanished asks again.
var dumpTables = []dumpTable{
	{name: "serial_counter", columns: cols("id:i next:i"), order: "id", singleton: true},
	{name: "audit_head", columns: cols("id:i seq:i hash"), order: "id", singleton: true},
	{name: dumpSequences, columns: cols("name last:i"), singleton: true},
	{name: "ca_keys", columns: cols("ca_type generation:i state key_type fingerprint public_key signer file created_us:i updated_us:i"), order: "ca_type, generation"},
	{name: "krl_versions", columns: cols("ca_type version:i"), order: "ca_type"},
	{name: "revocations", columns: cols("id:i ca_type kind lo:i hi:i key_id value reason actor created_us:i expires_us:i"), order: "id"},
	{name: "tokens", columns: cols("id name kind roles principals hash created_by created_us:i expires_us:i revoked_us:i used_us:i"), order: "id"},
	{name: "totp", columns: cols("identity secret last_step:i created_us:i"), order: "identity"},
	{name: "hosts", columns: cols("name last_seen_us:i krl_version:i ca_keys cert_expiry_us:i stale:i detail host_cert_ca"), order: "name"},
	{name: "local_users", columns: cols("name groups_json created_by created_us:i"), order: "name", optional: true},
	{name: "local_user_keys", columns: cols("fingerprint name public_key added_us:i"), order: "fingerprint", optional: true},
	{name: "certs", columns: cols("serial:i ca_type ca_fp role key_id principals valid_after:i valid_before:i subject_fp subject_type requester issued_us:i cert lineage"), order: "serial"},
	{name: "audit", columns: cols("seq:i time_us:i actor action role serial:i key_id outcome reason details prev_hash hash"), order: "seq"},
}

func findDumpTable(name string) *dumpTable {
	for i := range dumpTables {
		if dumpTables[i].name == name {
			return &dumpTables[i]
		}
	}
	return nil
}

func (t *dumpTable) columnNames() []string {
	out := make([]string, len(t.columns))
	for i, c := range t.columns {
		out[i] = c.name
	}
	return out
}

// Export implements store.Dumper.
func (s *DB) Export(ctx context.Context, fn func(store.DumpRecord) error) (store.DumpCounts, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.Name == "postgres" {
		// One snapshot for every table: REPEATABLE READ sees no commit made
		// after its first query. (SQLite's read transaction in WAL mode
		// does the same.)
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("store: export: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	if err := fn(store.DumpRecord{Table: dumpMeta, Columns: []string{"version"}}); err != nil {
		return nil, err
	}
	if err := fn(store.DumpRecord{Table: dumpMeta, Row: []any{int64(store.DumpVersion)}}); err != nil {
		return nil, err
	}
	counts := store.DumpCounts{}
	for i := range dumpTables {
		t := &dumpTables[i]
		if err := fn(store.DumpRecord{Table: t.name, Columns: t.columnNames()}); err != nil {
			return nil, err
		}
		if t.name == dumpSequences {
			last, err := s.lastRevocationID(ctx, tx)
			if err != nil {
				return nil, err
			}
			if err := fn(store.DumpRecord{Table: t.name, Row: []any{"revocations", last}}); err != nil {
				return nil, err
			}
			continue
		}
		n, err := s.exportTable(ctx, tx, t, fn)
		if err != nil {
			return nil, err
		}
		if !t.singleton {
			counts[t.name] = n
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: export: %w", err)
	}
	return counts, nil
}

func (s *DB) exportTable(ctx context.Context, tx *sql.Tx, t *dumpTable, fn func(store.DumpRecord) error) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(t.columnNames(), ", ")+` FROM `+t.name+` ORDER BY `+t.order)
	if err != nil {
		return 0, fmt.Errorf("store: export %s: %w", t.name, err)
	}
	defer rows.Close()
	ints := make([]int64, len(t.columns))
	strs := make([]string, len(t.columns))
	dest := make([]any, len(t.columns))
	for i, c := range t.columns {
		if c.isInt {
			dest[i] = &ints[i]
		} else {
			dest[i] = &strs[i]
		}
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, fmt.Errorf("store: export %s: %w", t.name, err)
		}
		row := make([]any, len(t.columns))
		for i, c := range t.columns {
			if c.isInt {
				row[i] = ints[i]
			} else {
				row[i] = strs[i]
			}
		}
		if err := fn(store.DumpRecord{Table: t.name, Row: row}); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("store: export %s: %w", t.name, err)
	}
	return n, nil
}

// lastRevocationID is the highest revocation ID the engine ever handed
// out, pruned rows included (0 if none).
func (s *DB) lastRevocationID(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (int64, error) {
	var v sql.NullInt64
	var err error
	if s.d.Name == "postgres" {
		err = q.QueryRowContext(ctx, `SELECT pg_sequence_last_value(pg_get_serial_sequence('revocations', 'id')::regclass)`).Scan(&v)
	} else {
		err = q.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'revocations'`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("store: read the revocation ID sequence: %w", err)
	}
	var max sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(id) FROM revocations`).Scan(&max); err != nil {
		return 0, fmt.Errorf("store: read the revocation ID sequence: %w", err)
	}
	return maxInt64(v.Int64, max.Int64), nil
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Counts implements store.Dumper.
func (s *DB) Counts(ctx context.Context) (store.DumpCounts, error) {
	counts := store.DumpCounts{}
	for _, t := range dumpTables {
		if t.singleton {
			continue
		}
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&n); err != nil {
			return nil, fmt.Errorf("store: count %s: %w", t.name, err)
		}
		counts[t.name] = n
	}
	return counts, nil
}

// dataTables are what must be empty for an import.
var dataTables = []string{"ca_keys", "certs", "revocations", "krl_versions", "audit", "tokens", "totp", "hosts", "local_users", "local_user_keys"}

// BeginImport implements store.Dumper.
func (s *DB) BeginImport(ctx context.Context) (store.Import, error) {
	tx, err := s.d.BeginWrite(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("store: import: begin: %w", err)
	}
	imp := &importTx{s: s, tx: tx, seen: map[string]bool{}, counts: store.DumpCounts{}}
	if err := imp.checkEmpty(ctx); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return imp, nil
}

type importTx struct {
	s    *DB
	tx   *sql.Tx
	done bool

	seen    map[string]bool
	version int64
	table   *dumpTable
	pos     []int // pos[i]: index in the record's row of table column i, or -1
	width   int   // values in a row of the dump's table
	stmt    *sql.Stmt
	counts  store.DumpCounts

	counter, lastRevocation int64
}

func (m *importTx) checkEmpty(ctx context.Context) error {
	var full []string
	for _, t := range dataTables {
		var one int
		err := m.tx.QueryRowContext(ctx, `SELECT 1 FROM `+t+` LIMIT 1`).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: import: inspect %s: %w", t, err)
		}
		full = append(full, t)
	}
	var seq int64
	err := m.tx.QueryRowContext(ctx, `SELECT seq FROM audit_head WHERE id = 1`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: import: inspect audit_head: %w", err)
	}
	if seq != 0 && len(full) == 0 {
		full = append(full, "audit_head")
	}
	if len(full) > 0 {
		return fmt.Errorf("%w (it holds %s)", store.ErrNotEmpty, strings.Join(full, ", "))
	}
	return nil
}

// Add implements store.Import.
func (m *importTx) Add(ctx context.Context, r store.DumpRecord) error {
	if m.done {
		return errors.New("store: import: already ended")
	}
	if r.Columns != nil {
		return m.header(ctx, r)
	}
	if m.table == nil || m.table.name != r.Table {
		if r.Table == dumpMeta && m.version == 0 && m.seen[dumpMeta] {
			return m.meta(r.Row)
		}
		return fmt.Errorf("store: import: a row of table %q comes before its header", r.Table)
	}
	if len(r.Row) != m.width {
		return fmt.Errorf("store: import: a row of %s has %d values, want %d", r.Table, len(r.Row), m.width)
	}
	// One value per column of the dump, in table order; a column the
	// dump lacks is left to the schema's default.
	var args []any
	for i, c := range m.table.columns {
		if m.pos[i] < 0 {
			continue
		}
		v, err := dumpValue(r.Row[m.pos[i]], c.isInt)
		if err != nil {
			return fmt.Errorf("store: import: %s.%s: %w", r.Table, c.name, err)
		}
		args = append(args, v)
	}
	switch m.table.name {
	case "serial_counter":
		m.counter = maxInt64(m.counter, args[1].(int64))
		return nil
	case dumpSequences:
		if args[0] == "revocations" {
			m.lastRevocation = maxInt64(m.lastRevocation, args[1].(int64))
		}
		return nil
	case "audit_head":
		args = []any{args[1], args[2]}
	}
	if _, err := m.stmt.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("store: import %s: %w", r.Table, err)
	}
	if !m.table.singleton {
		m.counts[r.Table]++
	}
	return nil
}

func (m *importTx) meta(row []any) error {
	if len(row) != 1 {
		return errors.New("store: import: bad dump header")
	}
	v, err := dumpValue(row[0], true)
	if err != nil {
		return fmt.Errorf("store: import: dump version: %w", err)
	}
	if v.(int64) != store.DumpVersion {
		return fmt.Errorf("store: import: dump format version %d; this sshca reads version %d", v, store.DumpVersion)
	}
	m.version = v.(int64)
	return nil
}

func (m *importTx) header(ctx context.Context, r store.DumpRecord) error {
	if m.seen[r.Table] {
		return fmt.Errorf("store: import: table %q appears twice in the dump", r.Table)
	}
	if r.Table == dumpMeta {
		if len(m.seen) > 0 || len(r.Columns) != 1 || r.Columns[0] != "version" {
			return errors.New("store: import: bad dump header")
		}
		m.seen[r.Table] = true
		return nil
	}
	if m.version == 0 {
		return errors.New("store: import: the dump does not start with its header (not an sshca dump?)")
	}
	t := findDumpTable(r.Table)
	if t == nil {
		return fmt.Errorf("store: import: the dump has a table %q this sshca does not know (made by a newer sshca?)", r.Table)
	}
	// A dump from an older sshca may lack columns added since (they get
	// the schema's default); a column this sshca does not know is refused.
	known := map[string]bool{}
	for _, c := range t.columns {
		known[c.name] = true
	}
	given := map[string]int{}
	for j, name := range r.Columns {
		if !known[name] {
			return fmt.Errorf("store: import: table %s has a column %q this sshca does not know (made by a newer sshca?)", r.Table, name)
		}
		if _, dup := given[name]; dup {
			return fmt.Errorf("store: import: table %s has column %q twice", r.Table, name)
		}
		given[name] = j
	}
	pos := make([]int, len(t.columns))
	var present []string
	for i, c := range t.columns {
		j, ok := given[c.name]
		if !ok {
			if t.singleton {
				return fmt.Errorf("store: import: table %s lacks column %s", r.Table, c.name)
			}
			j = -1
		} else {
			present = append(present, c.name)
		}
		pos[i] = j
	}
	if m.stmt != nil {
		m.stmt.Close()
		m.stmt = nil
	}
	var query string
	switch t.name {
	case "serial_counter", dumpSequences:
		// Taken in at Commit.
	case "audit_head":
		query = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`
	default:
		names := present
		over := ""
		if t.name == "revocations" && m.s.d.Name == "postgres" {
			// The ID is an identity column; the dump's IDs are kept.
			over = " OVERRIDING SYSTEM VALUE"
		}
		query = `INSERT INTO ` + t.name + ` (` + strings.Join(names, ", ") + `)` + over +
			` VALUES (` + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + `)`
	}
	if query != "" {
		st, err := m.tx.PrepareContext(ctx, m.s.q(query))
		if err != nil {
			return fmt.Errorf("store: import %s: %w", t.name, err)
		}
		m.stmt = st
	}
	m.seen[r.Table] = true
	m.table, m.pos, m.width = t, pos, len(r.Columns)
	if _, ok := m.counts[t.name]; !ok && !t.singleton {
		m.counts[t.name] = 0
	}
	return nil
}

// dumpValue converts a value of a dump record (as exported, or decoded
// from JSON with UseNumber) to what the column stores.
func dumpValue(v any, isInt bool) (any, error) {
	if !isInt {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want text, got %T", v)
		}
		return s, nil
	}
	switch v := v.(type) {
	case int64:
		return v, nil
	case int:
		return int64(v), nil
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %q", v.String())
		}
		return n, nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return nil, fmt.Errorf("want an integer, got %v", v)
		}
		return int64(v), nil
	}
	return nil, fmt.Errorf("want an integer, got %T", v)
}

// Commit implements store.Import.
func (m *importTx) Commit(ctx context.Context) (store.DumpCounts, error) {
	if m.done {
		return nil, errors.New("store: import: already ended")
	}
	err := m.finish(ctx)
	if m.stmt != nil {
		m.stmt.Close()
	}
	m.done = true
	if err != nil {
		_ = m.tx.Rollback()
		return nil, err
	}
	if err := m.tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: import: commit: %w", err)
	}
	return m.counts, nil
}

func (m *importTx) finish(ctx context.Context) error {
	for _, t := range dumpTables {
		if !m.seen[t.name] && !t.optional {
			return fmt.Errorf("store: import: the dump has no table %s (cut short?)", t.name)
		}
	}
	// The counter starts above every serial handed out: the source's
	// counter, and every serial recorded whatever the counter said.
	var maxSerial, next sql.NullInt64
	if err := m.tx.QueryRowContext(ctx, `SELECT MAX(serial) FROM certs`).Scan(&maxSerial); err != nil {
		return fmt.Errorf("store: import: %w", err)
	}
	if err := m.tx.QueryRowContext(ctx, `SELECT next FROM serial_counter WHERE id = 1`).Scan(&next); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: import: %w", err)
	}
	counter := maxInt64(maxInt64(m.counter, next.Int64), maxSerial.Int64+1)
	var err error
	if next.Valid {
		_, err = m.tx.ExecContext(ctx, m.s.q(`UPDATE serial_counter SET next = ? WHERE id = 1`), counter)
	} else {
		_, err = m.tx.ExecContext(ctx, m.s.q(`INSERT INTO serial_counter (id, next) VALUES (1, ?)`), counter)
	}
	if err != nil {
		return fmt.Errorf("store: import: set the serial counter: %w", err)
	}
	last, err := m.s.lastRevocationID(ctx, m.tx)
	if err != nil {
		return err
	}
	if last = maxInt64(last, m.lastRevocation); last > 0 {
		if err := m.setLastRevocationID(ctx, last); err != nil {
			return fmt.Errorf("store: import: set the revocation ID sequence: %w", err)
		}
	}
	return nil
}

func (m *importTx) setLastRevocationID(ctx context.Context, last int64) error {
	if m.s.d.Name == "postgres" {
		_, err := m.tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('revocations', 'id'), $1)`, last)
		return err
	}
	res, err := m.tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'revocations'`, last)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err = m.tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES ('revocations', ?)`, last)
	}
	return err
}

// Rollback implements store.Import.
func (m *importTx) Rollback() error {
	if m.done {
		return nil
	}
	m.done = true
	if m.stmt != nil {
		m.stmt.Close()
	}
	return m.tx.Rollback()
}

var _ store.Dumper = (*DB)(nil)
