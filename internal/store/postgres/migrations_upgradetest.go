//go:build trail_upgrade_test

package postgres

import (
	"embed"
	"io/fs"
	"testing/fstest"
)

// upgradeMigrations is one extra, additive migration, built only into the
// binary test/ops upgrades a running fleet to: it stands for the next
// release's schema change without shipping in any release.
//
//go:embed upgradetest_migrations/*.sql
var upgradeMigrations embed.FS

// migrationSource is the schema's migrations and the extra one.
func migrationSource() fs.FS {
	merged := fstest.MapFS{}
	for _, src := range []fs.FS{mustSub(migrations, "migrations"), mustSub(upgradeMigrations, "upgradetest_migrations")} {
		names, err := fs.Glob(src, "*.sql")
		if err != nil {
			panic(err) // embedded at build time
		}
		for _, name := range names {
			data, err := fs.ReadFile(src, name)
			if err != nil {
				panic(err)
			}
			merged[name] = &fstest.MapFile{Data: data, Mode: 0o444}
		}
	}
	return merged
}
