package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/trailtest"
)

// migrateBackends are the two databases the migration tests run on: each
// gives the storage flags and a goose provider on the same database (for
// putting it at a given version).
var migrateBackends = []struct {
	name  string
	setup func(t *testing.T) (flags []string, provider func() (*goose.Provider, func()))
}{
	{"sqlite", func(t *testing.T) ([]string, func() (*goose.Provider, func())) {
		dir := t.TempDir()
		path := (&storageFlags{Data: dir}).databasePath()
		return []string{"--data", dir}, func() (*goose.Provider, func()) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := sqlite.Migrator(db)
			if err != nil {
				t.Fatal(err)
			}
			return p, func() { db.Close() }
		}
	}},
	{"postgres", func(t *testing.T) ([]string, func() (*goose.Provider, func())) {
		dsn := pgtest.New(t)
		return []string{"--data", t.TempDir(), "--database", dsn}, func() (*goose.Provider, func()) {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			p, err := postgres.Migrator(db)
			if err != nil {
				t.Fatal(err)
			}
			return p, func() { db.Close() }
		}
	}},
}

// Only `trail migrate` (or serve --migrate) changes the schema: on a
// database one migration behind, the other commands and serve refuse,
// naming both versions and the command to run, and change nothing;
// `trail migrate status` lists the pending migration; `trail migrate`
// applies it, River's tables included, and then everything works.
func TestMigrationsOnlyByMigrate(t *testing.T) {
	for _, b := range migrateBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			flags, provider := b.setup(t)
			trail := func(words []string, extra ...string) (int, string, string) {
				t.Helper()
				var stdout, stderr bytes.Buffer
				code := run(ctx, append(append(append([]string{}, words...), flags...), extra...), &stdout, &stderr)
				return code, stdout.String(), stderr.String()
			}
			// A database one migration behind this binary.
			p, done := provider()
			sources := p.ListSources()
			// The version before the newest (numbers may skip: versions
			// are reserved per change).
			latest, last, prev := sources[len(sources)-1].Version, sources[len(sources)-1], sources[len(sources)-2].Version
			if _, err := p.UpTo(ctx, prev); err != nil {
				t.Fatal(err)
			}
			done()
			lastName := last.Path[strings.LastIndex(last.Path, "/")+1:]
			behind := fmt.Sprintf("at version %d and this binary requires version %d", prev, latest)

			for _, cmd := range [][]string{{"key", "list"}, {"org", "list"}, {"deployment", "show"}} {
				code, _, errOut := trail(cmd)
				if code != 1 || !strings.Contains(errOut, behind) || !strings.Contains(errOut, "trail migrate") {
					t.Errorf("trail %s on a database behind: exit %d, %q; want exit 1 naming %q and trail migrate", strings.Join(cmd, " "), code, errOut, behind)
				}
			}
			code, _, errOut := trail([]string{"serve"}, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--log-origin", "trail.test/log")
			if code != 1 || !strings.Contains(errOut, behind) {
				t.Errorf("trail serve on a database behind: exit %d, %q; want exit 1 naming %q", code, errOut, behind)
			}

			code, out, errOut := trail([]string{"migrate", "status"})
			want := fmt.Sprintf("Trail schema: database at version %d, this binary %d; 1 pending: %s", prev, latest, lastName)
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("trail migrate status: exit %d, %q %q; want %q", code, out, errOut, want)
			}
			if b.name == "postgres" && !strings.Contains(out, "River schema: database at version 0") {
				t.Errorf("trail migrate status: %q; want River's tables listed, none applied yet", out)
			}

			code, out, errOut = trail([]string{"migrate"})
			if code != 0 || !strings.Contains(out, "Applied "+lastName) || !strings.Contains(out, "up to date") {
				t.Fatalf("trail migrate: exit %d, %q %q", code, out, errOut)
			}
			if b.name == "postgres" && !strings.Contains(out, "Applied river ") {
				t.Errorf("trail migrate: %q; want River's migrations applied in the same command", out)
			}
			code, out, _ = trail([]string{"migrate", "status"})
			if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, fmt.Sprintf("database at version %d, this binary %d; up to date", latest, latest)) {
				t.Fatalf("trail migrate status after migrating: exit %d, %q", code, out)
			}
			if code, _, errOut := trail([]string{"key", "list"}); code != 0 {
				t.Fatalf("trail key list after migrating: exit %d, %q", code, errOut)
			}
		})
	}
}

// A database migrated by a newer binary is refused by every command,
// trail migrate included, naming both versions; nothing reports it up to
// date.
func TestNewerSchemaRefused(t *testing.T) {
	for _, b := range migrateBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			flags, provider := b.setup(t)
			trail := func(words ...string) (int, string, string) {
				t.Helper()
				var stdout, stderr bytes.Buffer
				code := run(ctx, append(append([]string{}, words...), flags...), &stdout, &stderr)
				return code, stdout.String(), stderr.String()
			}
			if code, _, errOut := trail("migrate"); code != 0 {
				t.Fatalf("trail migrate: %d %q", code, errOut)
			}
			p, done := provider()
			sources := p.ListSources()
			latest := sources[len(sources)-1].Version
			done()
			insertVersion(t, ctx, flags, 9999)
			want := fmt.Sprintf("at version 9999 and this binary knows versions up to %d", latest)
			for _, cmd := range [][]string{{"migrate"}, {"key", "list"}} {
				code, out, errOut := trail(cmd...)
				if code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "up to date") {
					t.Errorf("trail %s on a newer schema: exit %d, %q %q; want exit 1 naming %q", strings.Join(cmd, " "), code, out, errOut, want)
				}
			}
			code, out, _ := trail("migrate", "status")
			if code != 0 || !strings.Contains(out, "database at version 9999") || !strings.Contains(out, "NEWER than this binary") {
				t.Errorf("trail migrate status on a newer schema: exit %d, %q", code, out)
			}
		})
	}
}

// insertVersion records schema version v as applied, as a newer binary's
// migration would.
func insertVersion(t *testing.T, ctx context.Context, flags []string, v int64) {
	t.Helper()
	sf := &storageFlags{}
	for i := 0; i+1 < len(flags); i += 2 {
		switch flags[i] {
		case "--data":
			sf.Data = flags[i+1]
		case "--database":
			sf.Database = flags[i+1]
		}
	}
	driver, dsn := "sqlite", sf.databasePath()
	if sf.postgres() {
		driver, dsn = "pgx", sf.Database
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, v); err != nil {
		t.Fatal(err)
	}
}

// trail serve --migrate applies the pending migrations before serving,
// on either backend, where trail serve alone refuses.
func TestServeMigrate(t *testing.T) {
	for _, b := range migrateBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			flags, provider := b.setup(t)
			p, done := provider()
			sources := p.ListSources()
			latest := sources[len(sources)-1].Version
			if _, err := p.UpTo(ctx, latest-1); err != nil {
				t.Fatal(err)
			}
			done()
			data := flags[1]
			srv := trailtest.Start(t, trailtest.Options{Data: data, Args: append(flags[2:], "--migrate", "--log-origin", "trail.test/log")})
			if err := srv.Stop(t); err != nil {
				t.Fatalf("trail serve --migrate: %v\n%s", err, srv.Logs())
			}
			var stdout, stderr bytes.Buffer
			code := run(ctx, append([]string{"migrate", "status"}, flags...), &stdout, &stderr)
			if code != 0 || strings.Contains(stdout.String(), "pending") {
				t.Fatalf("trail migrate status after serve --migrate: %d %q %q", code, stdout.String(), stderr.String())
			}
		})
	}
}
