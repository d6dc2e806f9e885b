package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

func TestZZTiming(t *testing.T) {
	srv, err := pgtest.StartServer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	db, _ := sql.Open("pgx", srv.URL())
	defer db.Close()
	for _, q := range []string{"CREATE DATABASE a1", "CREATE DATABASE a2 STRATEGY FILE_COPY", "CREATE DATABASE a3 STRATEGY FILE_COPY", "CREATE DATABASE a4 TEMPLATE template0", "CREATE DATABASE a5 TEMPLATE template0 STRATEGY FILE_COPY", "CREATE DATABASE a6 STRATEGY FILE_COPY", "DROP DATABASE a6"} {
		t0 := time.Now()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
		t.Log(q, time.Since(t0))
	}
}
