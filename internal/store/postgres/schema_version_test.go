package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
)

// A database migrated by a newer Trail is refused, with both versions in
// the message, rather than used or reported up to date.
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	s, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s, err = postgres.Open(ctx, url, nil)
	if err == nil {
		s.Close()
		t.Fatal("a database at schema version 9999 was opened")
	}
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("Open = %v; want ErrSchemaTooNew naming version 9999", err)
	}
}
