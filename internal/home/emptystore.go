package home

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/sshca/sshca/internal/store/sqlstore"
)

// ErrNoCA is returned by Open when the home's database holds no CA key at
// all: a new, empty database (a PostgreSQL database the home was just
// pointed at, say) rather than this CA's state, which `sshca store migrate`
// or `sshca restore` would copy there.
var ErrNoCA = errors.New("the database holds no CA")

// checkHasCA refuses a database without any CA key generation.
func checkHasCA(ctx context.Context, db *sqlstore.DB, dbURL string) error {
	for _, t := range caTypes {
		keys, err := db.ListCAKeys(ctx, t)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			return nil
		}
	}
	where := DBFile
	if dbURL != "" {
		where = RedactURL(dbURL)
	}
	return fmt.Errorf("%w: %s has no CA keys (a new, empty database?)", ErrNoCA, where)
}

// RedactURL returns a database URL fit to print: without its password.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "the database"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
