package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// A row seal binds one row of a security table (certificates, revocations,
// CA keys, tokens) to the audit entry that last wrote it. The store puts it
// in that entry's Details, inside the transaction that writes the row and
// before the entry is sealed into the hash chain, under the row's key
// (CertRowKey, TokenRowKey, ...); audit verify recomputes the seal of every
// current row and compares it with the one in the last entry that named the
// row, so a column changed behind sshca's back is found and named.
//
// A seal is computed from the row as the store reads it back (CertRecord,
// Revocation, CAKey, Token): every exported field, whatever its type, so
// that a field added to one of these types later is covered without this
// code knowing it. Fields holding their zero value are left out, so a
// field added later does not change the seals of rows written before it.
// The form is
//
//	v1 <digest> <column>=<short>,<column>=<short>,...
//
// where digest is 128 bits of SHA-256 over every non-zero column (this is
// what detects a change) and each short is 24 bits of that column's own
// digest (only used to say which column changed).

// rowKeyPrefix starts the Details key of every row seal.
const rowKeyPrefix = "row:"

// sealVersion starts every seal value.
const sealVersion = "v1"

// CertRowKey is the Details key of the seal of certificate serial's row.
func CertRowKey(serial uint64) string {
	return rowKeyPrefix + "cert:" + strconv.FormatUint(serial, 10)
}

// RevocationRowKey is the Details key of the seal of revocation id's row.
func RevocationRowKey(id int64) string {
	return rowKeyPrefix + "revocation:" + strconv.FormatInt(id, 10)
}

// CAKeyRowKey is the Details key of the seal of a CA key generation's row.
func CAKeyRowKey(caType string, generation int) string {
	return rowKeyPrefix + "ca-key:" + caType + ":" + strconv.Itoa(generation)
}

// TokenRowKey is the Details key of the seal of token id's row.
func TokenRowKey(id string) string {
	return rowKeyPrefix + "token:" + id
}

// IsRowKey reports whether a Details key holds a row seal.
func IsRowKey(k string) bool { return strings.HasPrefix(k, rowKeyPrefix) }

// DescribeRowKey names the row of a seal key for people ("token 0f3a...").
func DescribeRowKey(k string) string {
	rest := strings.TrimPrefix(k, rowKeyPrefix)
	kind, id, _ := strings.Cut(rest, ":")
	switch kind {
	case "cert":
		return "certificate " + id
	case "ca-key":
		t, gen, _ := strings.Cut(id, ":")
		return t + " CA generation " + gen
	}
	return kind + " " + id
}

// SealRow returns the seal of row, a struct (or pointer to one) as the
// store reads it back.
func SealRow(row any) string {
	cols := rowColumns(row)
	var b strings.Builder
	b.Grow(len(sealVersion) + 34 + 16*len(cols))
	b.WriteString(sealVersion)
	b.WriteByte(' ')
	b.WriteString(fullDigest(cols))
	b.WriteByte(' ')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.name)
		b.WriteByte('=')
		b.WriteString(hex.EncodeToString(c.sum[:3]))
	}
	return b.String()
}

// CheckRowSeal compares row with seal. It reports whether they match and,
// when they do not, the columns that differ (by their snake_case names),
// which may be empty when the seal cannot tell (a malformed seal, or a
// change that its short column digests miss).
func CheckRowSeal(row any, seal string) (match bool, changed []string) {
	cols := rowColumns(row)
	parts := strings.SplitN(seal, " ", 3)
	if len(parts) < 2 || parts[0] != sealVersion {
		return false, nil
	}
	if parts[1] == fullDigest(cols) {
		return true, nil
	}
	sealed := map[string]string{}
	if len(parts) == 3 && parts[2] != "" {
		for _, kv := range strings.Split(parts[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			sealed[k] = v
		}
	}
	for _, c := range cols {
		if v, ok := sealed[c.name]; !ok || v != hex.EncodeToString(c.sum[:3]) {
			changed = append(changed, c.name)
		}
		delete(sealed, c.name)
	}
	// Columns the seal had that are now empty.
	for k := range sealed {
		changed = append(changed, k)
	}
	return false, changed
}

// column is one non-zero field of a row and its digest.
type column struct {
	name string
	sum  [sha256.Size]byte
}

// fullDigest is the row's digest: over every column's name and digest.
func fullDigest(cols []column) string {
	h := sha256.New()
	for _, c := range cols {
		h.Write([]byte(c.name))
		h.Write([]byte{0})
		h.Write(c.sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

var timeType = reflect.TypeFor[time.Time]()

// field is an exported field of a row type: its index and column name.
type field struct {
	index int
	name  string
}

// fieldCache maps a row type to its exported fields.
var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			fs = append(fs, field{index: i, name: snake(f.Name)})
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

// rowColumns lists the non-zero exported fields of row in declaration
// order, each with the digest of its name and canonical value.
func rowColumns(row any) []column {
	if c, ok := row.(*CertRecord); ok && c != nil {
		if cols, ok := certColumns(c); ok {
			return cols
		}
	}
	return reflectColumns(row)
}

// reflectColumns is rowColumns for any row type.
func reflectColumns(row any) []column {
	v := reflect.ValueOf(row)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		panic(fmt.Sprintf("store: SealRow of %T", row))
	}
	fields := fieldsOf(v.Type())
	cols := make([]column, 0, len(fields))
	var buf []byte
	for _, f := range fields {
		fv := v.Field(f.index)
		if isEmpty(fv) {
			continue
		}
		name := f.name
		buf = append(buf[:0], name...)
		buf = append(buf, 0)
		buf = appendValue(buf, fv)
		cols = append(cols, column{name: name, sum: sha256.Sum256(buf)})
	}
	return cols
}

// isEmpty reports a zero value; an empty slice or map counts as zero, so
// that nil and empty (which the columns do not tell apart) seal alike.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

// appendValue appends an unambiguous encoding of v to b.
func appendValue(b []byte, v reflect.Value) []byte {
	if v.Type() == timeType {
		return appendSealTime(b, v.Interface().(time.Time))
	}
	switch v.Kind() {
	case reflect.String:
		return appendSealString(b, v.String())
	case reflect.Bool:
		return strconv.AppendBool(append(b, 'b'), v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(append(b, 'i'), v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return appendSealUint(b, v.Uint())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			ss := make([]string, v.Len()) // element types may be named
			for i := range ss {
				ss[i] = v.Index(i).String()
			}
			return appendSealStrings(b, ss)
		}
	}
	// Anything else (a nested struct such as Lineage, a map): its JSON,
	// which is deterministic for these (map keys are sorted).
	j, err := json.Marshal(v.Interface())
	if err != nil {
		j = fmt.Appendf(nil, "%#v", v.Interface())
	}
	return append(append(b, 'j'), j...)
}

// The canonical encodings of a column value (appendValue; certColumns
// writes a certificate row with the same ones).

func appendSealTime(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(append(b, 't'), t.Unix(), 10)
	return strconv.AppendInt(append(b, '.'), int64(t.Nanosecond()), 10)
}

func appendSealString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(append(b, 's'), uint64(len(s))), s...)
}

func appendSealUint(b []byte, u uint64) []byte {
	return strconv.AppendUint(append(b, 'u'), u, 10)
}

func appendSealStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(append(b, 'l'), uint64(len(ss)))
	for _, s := range ss {
		b = append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	return b
}

// snake turns a Go field name into the column-like name people read:
// ExpiresAt -> expires_at, CAFingerprint -> ca_fingerprint.
func snake(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				b.WriteByte('_')
			}
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}
