// Package sqlite is Trail's embedded storage: one SQLite file in WAL mode with
// synchronous=FULL, through the pure-Go driver modernc.org/sqlite.
//
// Writes go through one connection (SQLite has one writer anyway; serialising
// in Go avoids SQLITE_BUSY retries), reads through a separate read-only pool.
// Search indexes are maintained by IndexPending, after the ingest
// transaction, in batches (see docs/ARCHITECTURE.md for why).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/trailaudit/trail/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of store.Store.
type Store struct {
	path   string
	write  *sql.DB // exactly one connection
	read   *sql.DB
	logger *slog.Logger
	stmts  appendStmts
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.SearchIndexer = (*Store)(nil)
)

// Open opens (creating if needed) the database file at path and migrates it
// to the current schema.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("couldn't create database directory %s: %w", dir, err)
		}
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("couldn't migrate %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("couldn't open %s for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	s := &Store{path: path, write: write, read: read, logger: logger}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds the connection string. synchronous=FULL makes a commit durable
// against power loss in WAL mode, which is what "acknowledged" means here.
func dsn(path string, readOnly bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		v.Add("_pragma", "query_only(1)")
		v.Add("_pragma", "cache_size(-32768)") // 32 MiB per reader
	} else {
		// A large cache keeps the hot right edges of every index in memory,
		// so a commit writes only the pages it dirtied.
		v.Add("_pragma", "cache_size(-262144)") // 256 MiB
		v.Add("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + v.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := Migrator(db)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	return nil
}

// Migrator returns the goose provider for this schema (for `trail migrate`).
func Migrator(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, "migrations"), goose.WithDisableGlobalRegistry(true))
}

// Close closes both pools.
func (s *Store) Close() error {
	s.stmts.close()
	return errors.Join(s.read.Close(), s.write.Close())
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// classify maps driver errors to the store's sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		}
	}
	return err
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}
