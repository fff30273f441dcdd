package store

import (
	"context"
	"errors"
	"fmt"

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
