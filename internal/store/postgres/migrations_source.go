//go:build !trail_upgrade_test

package postgres

import "io/fs"

// migrationSource is the schema's migrations: the embedded directory.
// (Built with the trail_upgrade_test tag it carries one more, see
// migrations_upgradetest.go.)
func migrationSource() fs.FS { return mustSub(migrations, "migrations") }
