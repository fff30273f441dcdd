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

// The env… functions give a flag its default from its TRAIL_… variable, so
// that -h shows what is in force. They do not judge the value: parseFlags
// sets every flag from its variable again, with the flag's own parser, and
// refuses a value that does not parse.

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
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
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
