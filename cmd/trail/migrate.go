package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// Migrations change the schema only when an operator says so: `trail
// migrate`, or `trail serve --migrate`. Every other command, and serve
// without --migrate, opens the database only if its schema is exactly the
// one this binary knows (store.SchemaStatus.Check), so that a newer binary
// run for a quick `trail key list` never changes the schema under older
// replicas. The one exception is a brand-new database, with no migration
// applied: trail serve initialises it, so that the first start needs one
// command (docs/OPERATIONS.md, "Upgrades and migrations").

type migrateCommand struct {
	stdout, stderr io.Writer
	storage        storageFlags
}

func (c *migrateCommand) Run(ctx context.Context, args []string) error {
	status := len(args) > 0 && args[0] == "status"
	if status {
		args = args[1:]
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c.storage.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: use trail migrate, or trail migrate status", fs.Arg(0))
	}
	if err := c.storage.validate(); err != nil {
		return usageError{err}
	}
	if status {
		statuses, err := schemaStatuses(ctx, &c.storage)
		if err != nil {
			return err
		}
		printSchemaStatuses(c.stdout, statuses)
		return nil
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	applied, err := migrateDatabase(ctx, &c.storage, false, logger)
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(c.stdout, "Applied %s\n", m.Name)
	}
	statuses, err := schemaStatuses(ctx, &c.storage)
	if err != nil {
		return err
	}
	for _, st := range statuses {
		if err := st.Check(); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout, "The database schema is up to date.")
	printSchemaStatuses(c.stdout, statuses)
	return nil
}

func printSchemaStatuses(w io.Writer, statuses []store.SchemaStatus) {
	for _, st := range statuses {
		state := "up to date"
		switch {
		case st.Current > st.Latest:
			state = "NEWER than this binary: run a newer trail"
		case len(st.Pending) > 0:
			names := make([]string, len(st.Pending))
			for i, m := range st.Pending {
				names[i] = m.Name
			}
			state = fmt.Sprintf("%d pending: %s", len(st.Pending), strings.Join(names, ", "))
		}
		fmt.Fprintf(w, "%s schema: database at version %d, this binary %d; %s\n", st.What, st.Current, st.Latest, state)
	}
}

// schemaStatuses reads where every schema of the database stands:
// Trail's and River's (PostgreSQL), or the database file's, its search
// index's, and the exports file's with River's (SQLite). Nothing is changed.
func schemaStatuses(ctx context.Context, sf *storageFlags) ([]store.SchemaStatus, error) {
	if sf.postgres() {
		pool, err := postgres.Connect(ctx, sf.Database)
		if err != nil {
			return nil, fmt.Errorf("couldn't open the PostgreSQL database %s: %w", redactURL(sf.Database), err)
		}
		defer pool.Close()
		trail, err := postgres.ReadSchemaStatus(ctx, pool)
		if err != nil {
			return nil, err
		}
		river, err := export.RiverStatusPostgres(ctx, pool)
		if err != nil {
			return nil, err
		}
		return []store.SchemaStatus{trail, river}, nil
	}
	out, err := sqlite.ReadSchemaStatus(ctx, sf.databasePath())
	if err != nil {
		return nil, err
	}
	xpath := sqlite.ExportsPath(sf.databasePath())
	xs, err := sqlite.ExportsSchemaStatus(ctx, xpath)
	if err != nil {
		return nil, err
	}
	out = append(out, xs)
	if !xs.Empty() {
		x, err := sqlite.OpenExportsCurrent(ctx, xpath)
		if err != nil {
			return nil, err
		}
		defer x.Close()
		river, err := export.RiverStatusSQLite(ctx, x.DB())
		if err != nil {
			return nil, err
		}
		out = append(out, river)
	}
	return out, nil
}

// migrateDatabase applies every pending migration (Trail's and River's),
// or with onlyIfEmpty only those of a schema that has none applied yet,
// and returns what it applied. On PostgreSQL it holds the migration lock
// while it does, logging while another process holds it.
func migrateDatabase(ctx context.Context, sf *storageFlags, onlyIfEmpty bool, logger *slog.Logger) ([]store.Migration, error) {
	if sf.postgres() {
		return migratePostgres(ctx, sf.Database, onlyIfEmpty, logger)
	}
	var applied []store.Migration
	before, err := sqlite.Migrate(ctx, sf.databasePath(), onlyIfEmpty)
	if err != nil {
		return nil, fmt.Errorf("couldn't migrate the database: %w", err)
	}
	for _, st := range before {
		applied = append(applied, st.Pending...)
	}
	xpath := sqlite.ExportsPath(sf.databasePath())
	if onlyIfEmpty {
		xs, err := sqlite.ExportsSchemaStatus(ctx, xpath)
		if err != nil || !xs.Empty() {
			return applied, err
		}
	}
	x, err := sqlite.OpenExports(ctx, xpath) // migrates the exports table
	if err != nil {
		return applied, err
	}
	defer x.Close()
	river, err := export.MigrateRiverSQLite(ctx, x.DB())
	return append(applied, river...), err
}

func migratePostgres(ctx context.Context, dsn string, onlyIfEmpty bool, logger *slog.Logger) ([]store.Migration, error) {
	pool, err := postgres.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the PostgreSQL database %s: %w", redactURL(dsn), err)
	}
	defer pool.Close()
	if onlyIfEmpty {
		// Most starts find a whole schema: no lock needed to see that. One
		// with migrations pending may be another replica initialising the
		// database right now, one migration after another: wait for its
		// lock and look again, rather than refuse a schema half made.
		st, err := postgres.ReadSchemaStatus(ctx, pool)
		if err != nil || !st.Empty() && len(st.Pending) == 0 {
			return nil, err
		}
	}
	release, err := postgres.LockMigrations(ctx, pool, logger)
	if err != nil {
		return nil, err
	}
	defer release()
	if onlyIfEmpty {
		// Another replica may have initialised it meanwhile.
		st, err := postgres.ReadSchemaStatus(ctx, pool)
		if err != nil || !st.Empty() {
			return nil, err
		}
	}
	applied, err := postgres.ApplyMigrations(ctx, pool)
	if err != nil {
		return applied, err
	}
	// River's tables, in the same command; under River's own lock too,
	// which releases of Trail before this one take alone.
	releaseRiver, err := postgres.AdvisoryLock(ctx, pool, export.RiverMigrationLock, "River migration lock", logger)
	if err != nil {
		return applied, err
	}
	defer releaseRiver()
	river, err := export.MigrateRiverPostgres(ctx, pool)
	return append(applied, river...), err
}

// prepareSchema is trail serve's part: with --migrate it applies every
// pending migration; without, only a brand-new database is initialised,
// and openBackend then refuses any other that is not current.
func (c *serveCommand) prepareSchema(ctx context.Context, logger *slog.Logger) error {
	applied, err := migrateDatabase(ctx, &c.storage, !c.migrate, logger)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		names := make([]string, len(applied))
		for i, m := range applied {
			names[i] = m.Name
		}
		logger.Info("migrated the database schema", "applied", names)
	}
	return nil
}
