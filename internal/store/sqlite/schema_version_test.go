package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// A database migrated by a newer Trail is refused, with both versions in
// the message, rather than used or reported up to date.
func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trail.db")
	s, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlite.Open(context.Background(), path, nil)
	if err == nil {
		s.Close()
		t.Fatal("a database at schema version 9999 was opened")
	}
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("Open = %v; want ErrSchemaTooNew naming version 9999", err)
	}
}
