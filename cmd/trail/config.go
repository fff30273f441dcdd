package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store/sqlite"
)

// storageFlags are shared by every command that opens the database.
type storageFlags struct {
	Data     string // data directory: SQLite file, keys, secrets
	Database string // "" = SQLite in Data
	// SQLiteCacheMiB bounds SQLite's page caches, all connections
	// together (sqlite.WithCache); 0 is the default: a quarter of
	// MemoryMiB, or sqlite.DefaultCacheBytes for commands without it.
	SQLiteCacheMiB int64
	// MemoryMiB is the server's memory budget (memory.go), registered by
	// trail serve only; 0 for other commands.
	MemoryMiB int64
}

func (s *storageFlags) register(fs *flag.FlagSet) {
	setting{fs}.StringVar(&s.Data, "data", "TRAIL_DATA", "./trail-data", "data directory (SQLite database, signing key, secrets)")
	setting{fs}.StringVar(&s.Database, "database", "TRAIL_DATABASE", "", "database URL; empty means SQLite in the data directory")
	setting{fs}.Int64Var(&s.SQLiteCacheMiB, "sqlite-cache-mib", "TRAIL_SQLITE_CACHE_MIB", 0, "with SQLite, MiB of memory its page caches may hold, every connection together; 0 means a quarter of --memory-mib with trail serve, 128 otherwise (docs/OPERATIONS.md, \"Memory\")")
}

// registerMemory adds --memory-mib, for trail serve.
func (s *storageFlags) registerMemory(fs *flag.FlagSet) {
	setting{fs}.Int64Var(&s.MemoryMiB, "memory-mib", "TRAIL_MEMORY_MIB", defaultMemoryMiB, "MiB of memory the server plans for: the Go runtime's soft memory limit and, with SQLite, its page caches and the events held for the search indexer are derived from it (docs/OPERATIONS.md, \"Memory\")")
}

// sqliteOptions are the SQLite store options the flags give.
func (s *storageFlags) sqliteOptions() ([]sqlite.Option, error) {
	if s.MemoryMiB != 0 {
		b, err := newMemoryBudget(s.MemoryMiB, s.SQLiteCacheMiB)
		if err != nil {
			return nil, err
		}
		return b.sqliteOptions(), nil
	}
	if s.SQLiteCacheMiB == 0 {
		return []sqlite.Option{sqlite.WithCache(sqlite.DefaultCacheBytes)}, nil
	}
	return []sqlite.Option{sqlite.WithCache(s.SQLiteCacheMiB << 20)}, nil
}

func (s *storageFlags) sqlitePath() string { return filepath.Join(s.Data, "trail.db") }

func (s *storageFlags) validate() error {
	if s.MemoryMiB != 0 && s.SQLiteCacheMiB >= 0 {
		if _, err := newMemoryBudget(s.MemoryMiB, s.SQLiteCacheMiB); err != nil {
			return err
		}
	}
	switch {
	case s.SQLiteCacheMiB < 0:
		return fmt.Errorf("--sqlite-cache-mib %d: give a number of MiB, at least 1 (or 0 for the default)", s.SQLiteCacheMiB)
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

// setting declares the flags of fs together with their TRAIL_… variables
// and help, each name typed once. -h shows the variable's value as the
// default when it is set; the usage ends with "[TRAIL_…]", which parseFlags
// reads to set the flag from the variable with the flag's own parser (a
// value that does not parse fails there, naming the variable).
type setting struct{ fs *flag.FlagSet }

func withEnv(usage, env string) string { return usage + " [" + env + "]" }

// StringVar declares a string flag stored in p.
func (s setting) StringVar(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, envString(env, def), withEnv(usage, env))
}

// String declares a string flag and returns where it is stored.
func (s setting) String(name, env, def, usage string) *string {
	p := new(string)
	s.StringVar(p, name, env, def, usage)
	return p
}

// Int64Var declares an integer flag stored in p.
func (s setting) Int64Var(p *int64, name, env string, def int64, usage string) {
	def, _ = envParsed(env, def, func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) })
	s.fs.Int64Var(p, name, def, withEnv(usage, env))
}

// Float64Var declares a number flag stored in p.
func (s setting) Float64Var(p *float64, name, env string, def float64, usage string) {
	def, _ = envParsed(env, def, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
	s.fs.Float64Var(p, name, def, withEnv(usage, env))
}

// DurationVar declares a duration flag stored in p.
func (s setting) DurationVar(p *time.Duration, name, env string, def time.Duration, usage string) {
	def, _ = envParsed(env, def, time.ParseDuration)
	s.fs.DurationVar(p, name, def, withEnv(usage, env))
}

// BoolVar declares a flag, false unless given, stored in p.
func (s setting) BoolVar(p *bool, name, env, usage string) {
	s.fs.BoolVar(p, name, envString(env, "") == "true", withEnv(usage, env))
}

// envString and envParsed give a flag its default from its variable, so
// that -h shows what is in force. They do not judge the value: parseFlags
// sets every flag from its variable again and refuses a value that does
// not parse.
func envString(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envParsed[T any](name string, def T, parse func(string) (T, error)) (T, bool) {
	if v, ok := os.LookupEnv(name); ok {
		if x, err := parse(v); err == nil {
			return x, true
		}
	}
	return def, false
}

// parseFlags sets each flag of fs from the TRAIL_… variable its usage names
// ("[TRAIL_X]" at the end), or from the file that TRAIL_X_FILE names (for
// secrets such as a database URL, kept out of the environment), then parses
// args, which take precedence. A variable that does not parse fails the
// command like a bad flag does (exit status 2), naming the variable: a
// setting is never silently ignored.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// applyEnv sets each flag of fs from its TRAIL_… variable (see parseFlags).
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envVarOf(f)
		if err != nil || name == "" {
			return
		}
		v, ok, lerr := lookupSetting(name)
		if lerr != nil {
			err = usageError{lerr}
			return
		}
		if !ok || v == "" {
			return // an empty variable counts as unset, as in most deployments' tooling
		}
		// The flag's own parser, without marking the flag as given: code
		// that asks whether a flag was on the command line still can.
		if serr := f.Value.Set(v); serr != nil {
			err = usagef("%s=%q: invalid value for --%s: %v", name, v, f.Name, serr)
		}
	})
	return err
}

// envVarOf is the TRAIL_… variable named at the end of f's usage, or "".
func envVarOf(f *flag.Flag) string {
	u := strings.TrimSpace(f.Usage)
	i := strings.LastIndex(u, "[TRAIL_")
	if i < 0 || !strings.HasSuffix(u, "]") {
		return ""
	}
	return u[i+1 : len(u)-1]
}

// lookupSetting reads name, or the file name_FILE names (its content less
// a trailing newline). Both set at once is a mistake.
func lookupSetting(name string) (string, bool, error) {
	v, ok := os.LookupEnv(name)
	path, fromFile := os.LookupEnv(name + "_FILE")
	if !fromFile || strings.HasSuffix(name, "_FILE") {
		return v, ok, nil
	}
	if ok {
		return "", false, fmt.Errorf("both %s and %s_FILE are set: set one", name, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), true, nil
}
