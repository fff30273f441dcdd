package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/pressly/goose/v3"
)

// ErrSchemaTooNew means the database was migrated by a newer Trail than the
// one running: an older binary must neither use such a schema nor report it
// up to date.
var ErrSchemaTooNew = errors.New("the database schema is newer than this trail binary")

// CheckSchemaVersion refuses a database whose schema version is above the
// newest migration p carries, naming both versions. Each backend calls it
// before migrating.
func CheckSchemaVersion(ctx context.Context, p *goose.Provider) error {
	sources := p.ListSources()
	if len(sources) == 0 {
		return nil
	}
	known := sources[len(sources)-1].Version
	have, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read the database schema version: %w", err)
	}
	if have > known {
		return fmt.Errorf("%w: the database is at version %d and this binary knows versions up to %d; run a trail release at least as new as the one that migrated it", ErrSchemaTooNew, have, known)
	}
	return nil
}

// ErrSchemaBehind means the database lacks migrations this binary needs:
// only `trail migrate` (or `trail serve --migrate`) applies them, so that
// no command changes the schema under running replicas by surprise.
var ErrSchemaBehind = errors.New("the database schema is older than this trail binary needs")

// Migration is one schema migration a binary carries.
type Migration struct {
	Version int64
	Name    string // the file it comes from, e.g. 00011_leases.sql
}

// SchemaStatus is where one database's schema stands against the
// migrations this binary carries.
type SchemaStatus struct {
	// What names the schema ("Trail", "search index", "River job tables").
	What string
	// Current is the highest version applied, 0 when none is.
	Current int64
	// Latest is the newest version this binary carries.
	Latest int64
	// Pending are the migrations this binary carries that are not applied.
	Pending []Migration
}

// Empty reports whether no migration was ever applied: a brand-new
// database, which trail serve may initialise on its own.
func (s SchemaStatus) Empty() bool { return s.Current == 0 }

// Check refuses a schema newer than this binary knows (ErrSchemaTooNew) or
// missing migrations it needs (ErrSchemaBehind), naming both versions.
func (s SchemaStatus) Check() error {
	if s.Current > s.Latest {
		return fmt.Errorf("%w: the %s schema is at version %d and this binary knows versions up to %d; run a trail release at least as new as the one that migrated it", ErrSchemaTooNew, s.What, s.Current, s.Latest)
	}
	if s.Current == 0 && len(s.Pending) > 0 {
		return fmt.Errorf("%w: the database has no %s schema yet (version 0; this binary requires version %d); run `trail migrate`, or start `trail serve`, which initialises a new database", ErrSchemaBehind, s.What, s.Latest)
	}
	if len(s.Pending) > 0 {
		return fmt.Errorf("%w: the %s schema is at version %d and this binary requires version %d (%d pending migrations); run `trail migrate` (or start one server with `trail serve --migrate`) first", ErrSchemaBehind, s.What, s.Current, s.Latest, len(s.Pending))
	}
	return nil
}

// NewSchemaStatus compares the versions applied to a database with the
// migrations p carries (without touching the database: goose's own status
// calls create its version table).
func NewSchemaStatus(what string, applied []int64, p *goose.Provider) SchemaStatus {
	st := SchemaStatus{What: what}
	done := make(map[int64]bool, len(applied))
	for _, v := range applied {
		done[v] = true
		st.Current = max(st.Current, v)
	}
	for _, src := range p.ListSources() {
		st.Latest = max(st.Latest, src.Version)
		if !done[src.Version] {
			st.Pending = append(st.Pending, Migration{Version: src.Version, Name: filepath.Base(src.Path)})
		}
	}
	return st
}
