package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every setting is judged the same way whether it comes from a flag, a
// TRAIL_… variable or the file a TRAIL_…_FILE variable names: a value that
// does not parse fails the command (exit status 2) naming what to fix, and
// is never ignored.
func TestServeCheckConfig(t *testing.T) {
	dir := t.TempDir()
	dbURL := filepath.Join(dir, "database-url")
	if err := os.WriteFile(dbURL, []byte("postgres://trail:secret@db.example:5432/trail\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badURL := filepath.Join(dir, "bad-url")
	if err := os.WriteFile(badURL, []byte("mysql://nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"defaults", nil, nil, 0, "configuration is valid"},
		{"flags", nil, []string{"--rate-limit", "10", "--trust-proxy-headers"}, 0, "valid"},
		{"variables", map[string]string{"TRAIL_RATE_LIMIT": "10", "TRAIL_TRUST_PROXY_HEADERS": "TRUE", "TRAIL_SHUTDOWN_TIMEOUT": "5s"}, nil, 0, "valid"},
		{"number that is not", map[string]string{"TRAIL_RATE_LIMIT": "abc"}, nil, 2, `TRAIL_RATE_LIMIT="abc": invalid value for --rate-limit`},
		{"boolean that is not", map[string]string{"TRAIL_REQUIRE_SCHEMAS": "yes"}, nil, 2, `TRAIL_REQUIRE_SCHEMAS="yes"`},
		{"duration that is not", map[string]string{"TRAIL_SHUTDOWN_TIMEOUT": "30"}, nil, 2, `TRAIL_SHUTDOWN_TIMEOUT="30"`},
		{"flag beats variable", map[string]string{"TRAIL_RATE_LIMIT": "5"}, []string{"--rate-limit", "-1"}, 2, "--rate-limit -1"},
		{"secret from a file", map[string]string{"TRAIL_DATABASE_FILE": dbURL}, nil, 0, "valid"},
		{"bad value from a file", map[string]string{"TRAIL_DATABASE_FILE": badURL}, nil, 2, "--database"},
		{"missing file", map[string]string{"TRAIL_DATABASE_FILE": filepath.Join(dir, "none")}, nil, 2, "TRAIL_DATABASE_FILE"},
		{"both variable and file", map[string]string{"TRAIL_DATABASE_FILE": dbURL, "TRAIL_DATABASE": "postgres://x@y/z"}, nil, 2, "both TRAIL_DATABASE and TRAIL_DATABASE_FILE"},
		{"listen address", nil, []string{"--listen", "8080"}, 2, "--listen"},
		{"public URL", nil, []string{"--public-url", "trail.example.com"}, 2, "--public-url"},
		{"body limit", map[string]string{"TRAIL_MAX_BODY_BYTES": "0"}, nil, 2, "--max-body-bytes"},
		{"key file", nil, []string{"--signing-key-file", filepath.Join(dir, "absent.key")}, 2, "--signing-key-file"},
		{"shutdown delay and migrate", map[string]string{"TRAIL_SHUTDOWN_DELAY": "10s", "TRAIL_MIGRATE": "true"}, nil, 0, "valid"},
		{"shutdown delay that is not", map[string]string{"TRAIL_SHUTDOWN_DELAY": "5"}, nil, 2, `TRAIL_SHUTDOWN_DELAY="5"`},
		{"negative shutdown delay", nil, []string{"--shutdown-delay", "-1s"}, 2, "--shutdown-delay"},
		{"migrate that is not", map[string]string{"TRAIL_MIGRATE": "yes"}, nil, 2, `TRAIL_MIGRATE="yes"`},
		{"memory budget", map[string]string{"TRAIL_MEMORY_MIB": "256"}, nil, 0, "valid"},
		{"memory budget too small", nil, []string{"--memory-mib", "64"}, 2, "--memory-mib 64"},
		{"memory budget negative", nil, []string{"--memory-mib", "-1"}, 2, "--memory-mib -1"},
		{"memory budget zero", map[string]string{"TRAIL_MEMORY_MIB": "0"}, nil, 2, "--memory-mib 0"},
		{"memory budget that is not", map[string]string{"TRAIL_MEMORY_MIB": "1GiB"}, nil, 2, `TRAIL_MEMORY_MIB="1GiB"`},
		{"SQLite caches beside the budget", nil, []string{"--memory-mib", "256", "--sqlite-cache-mib", "64"}, 0, "valid"},
		{"SQLite caches over the budget", nil, []string{"--memory-mib", "256", "--sqlite-cache-mib", "200"}, 2, "--sqlite-cache-mib 200"},
		{"negative SQLite caches", nil, []string{"--sqlite-cache-mib", "-1"}, 2, "--sqlite-cache-mib -1"},
		{"commits in flight on PostgreSQL", map[string]string{"TRAIL_DATABASE_FILE": dbURL, "TRAIL_COMMIT_CONCURRENCY": "4"}, nil, 0, "valid"},
		{"commits in flight on SQLite", nil, []string{"--commit-concurrency", "2"}, 2, "--commit-concurrency 2: SQLite has one writer"},
		{"one commit in flight on SQLite", nil, []string{"--commit-concurrency", "1"}, 0, "valid"},
		{"negative commits in flight", map[string]string{"TRAIL_DATABASE_FILE": dbURL}, []string{"--commit-concurrency", "-1"}, 2, "--commit-concurrency -1"},
		{"too many commits in flight", map[string]string{"TRAIL_DATABASE_FILE": dbURL}, []string{"--commit-concurrency", "65"}, 2, "--commit-concurrency 65"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--check-config", "--data", t.TempDir()}, tc.args...)
			code := run(t.Context(), args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d and %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "secret") {
				t.Errorf("the output shows the database password: %q", out)
			}
		})
	}
}
