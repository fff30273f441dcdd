package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// storageFlags are shared by every command that opens the database.
type storageFlags struct {
	Data     string // data directory: SQLite file, keys, secrets
	Database string // "" = SQLite in Data
}

func (s *storageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.Data, "data", envString("TRAIL_DATA", "./trail-data"), "data directory (SQLite database, signing key, secrets) [TRAIL_DATA]")
	fs.StringVar(&s.Database, "database", envString("TRAIL_DATABASE", ""), "database URL; empty means SQLite in the data directory [TRAIL_DATABASE]")
}

func (s *storageFlags) sqlitePath() string { return filepath.Join(s.Data, "trail.db") }

func (s *storageFlags) validate() error {
	switch {
	case s.Database == "", s.postgres(),
		strings.HasPrefix(s.Database, "sqlite:"), strings.HasPrefix(s.Database, "file:"):
		return nil
	}
	return fmt.Errorf("--database %q: use postgres://user:password@host:5432/dbname for PostgreSQL, or leave it empty for the embedded SQLite database in --data", redactURL(s.Database))
}

// postgres reports whether --database names a PostgreSQL server.
func (s *storageFlags) postgres() bool {
	return strings.HasPrefix(s.Database, "postgres://") || strings.HasPrefix(s.Database, "postgresql://")
}

// databasePath returns the SQLite file to open.
func (s *storageFlags) databasePath() string {
	if p, ok := strings.CutPrefix(s.Database, "sqlite:"); ok && p != "" {
		return p
	}
	if p, ok := strings.CutPrefix(s.Database, "file:"); ok && p != "" {
		return p
	}
	return s.sqlitePath()
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int64) int64 {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "trail: ignoring %s=%q: not a whole number\n", name, v)
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "trail: ignoring %s=%q: not a number\n", name, v)
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "trail: ignoring %s=%q: not a duration such as 30s\n", name, v)
	}
	return def
}
