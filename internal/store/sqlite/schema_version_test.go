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
	for name, open := range map[string]func() (*sqlite.Store, error){
		"Open":        func() (*sqlite.Store, error) { return sqlite.Open(context.Background(), path, nil) },
		"OpenCurrent": func() (*sqlite.Store, error) { return sqlite.OpenCurrent(context.Background(), path, nil) },
	} {
		s, err := open()
		if err == nil {
			s.Close()
			t.Fatalf("%s opened a database at schema version 9999", name)
		}
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "at version 9999 and this binary knows versions up to ") {
			t.Fatalf("%s = %v; want ErrSchemaTooNew naming version 9999 and the binary's", name, err)
		}
	}
}
