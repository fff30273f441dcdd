package pgtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// userRelations counts tables, indexes, sequences… outside the system schemas.
const userRelations = `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`

func databaseExists(t *testing.T, admin, name string) bool {
	t.Helper()
	return queryInt(t, connect(t, admin), "SELECT count(*) FROM pg_database WHERE datname = $1", name) == 1
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// checkDistinctEmptyUsable checks that two databases from New are separate,
// start empty and take writes.
func checkDistinctEmptyUsable(t *testing.T, a, b string) {
	t.Helper()
	if a == b {
		t.Fatalf("two New calls returned the same database %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	for _, c := range []*pgx.Conn{ca, cb} {
		if n := queryInt(t, c, userRelations); n != 0 {
			t.Fatalf("new database %s has %d relations, want none", c.Config().Database, n)
		}
	}
	ctx := context.Background()
	if _, err := ca.Exec(ctx, "CREATE TABLE t (id bigint PRIMARY KEY, body text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Exec(ctx, "INSERT INTO t VALUES (1, 'é ✓')"); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := ca.QueryRow(ctx, "SELECT body FROM t WHERE id = 1").Scan(&body); err != nil || body != "é ✓" {
		t.Fatalf("read back %q, %v; want %q", body, err, "é ✓")
	}
	if n := queryInt(t, cb, userRelations); n != 0 {
		t.Fatalf("a table created in one database shows in the other (%d relations)", n)
	}
	var enc, collate string
	if err := cb.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database
		WHERE datname = current_database()`).Scan(&enc, &collate); err != nil {
		t.Fatal(err)
	}
	if enc != "UTF8" || collate != "C" {
		t.Fatalf("encoding %s, collation %s; want UTF8, C", enc, collate)
	}
}

func TestNewGivesDistinctEmptyUsableDatabases(t *testing.T) {
	checkDistinctEmptyUsable(t, New(t), New(t))
}

func TestThrowawayServerSettings(t *testing.T) {
	if testingExternal() {
		t.Skip(EnvDatabase + " is set: no throwaway server to check")
	}
	conn := connect(t, New(t))
	if n := queryInt(t, conn, "SELECT current_setting('max_connections')::int"); n < 200 {
		t.Fatalf("max_connections = %d, want at least 200", n)
	}
	var fsync string
	if err := conn.QueryRow(context.Background(), "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync = %q, %v; want off", fsync, err)
	}
}

func TestDatabaseDroppedAtCleanupEvenWithOpenConnections(t *testing.T) {
	admin := adminURL(t)
	var name string
	var leftOpen *pgx.Conn
	t.Run("sub", func(t *testing.T) {
		dsn := New(t)
		name = dbName(t, dsn)
		// Opened outside this subtest's cleanups, so still open at the drop.
		var err error
		leftOpen, err = pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		if !databaseExists(t, admin, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if leftOpen != nil {
		defer leftOpen.Close(context.Background())
	}
	if name == "" {
		t.Fatal("subtest did not run")
	}
	if databaseExists(t, admin, name) {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestEnvDatabase(t *testing.T) {
	// Point TRAIL_TEST_DATABASE at the server in use (the throwaway one
	// unless it is already set): New must then create databases there.
	admin := adminURL(t)
	t.Setenv(EnvDatabase, admin)
	a, b := New(t), New(t)
	if ua, uu := mustParse(t, a), mustParse(t, admin); ua.Host != uu.Host || ua.User.String() != uu.User.String() ||
		ua.RawQuery != uu.RawQuery {
		t.Fatalf("New returned %s, not a database on %s", a, admin)
	}
	checkDistinctEmptyUsable(t, a, b)

}

func TestEnvDatabaseMustBeAURL(t *testing.T) {
	for _, bad := range []string{"host=localhost dbname=x", "mysql://u@h/db", "postgres:///db"} {
		if _, err := parseEnvURL(bad); err == nil || !strings.Contains(err.Error(), EnvDatabase) {
			t.Errorf("parseEnvURL(%q) = %v, want an error naming %s", bad, err, EnvDatabase)
		}
	}
	good := "postgres://u:secret@db.example:5432/postgres?sslmode=require"
	if got, err := parseEnvURL(good); err != nil || got != good {
		t.Errorf("parseEnvURL(%q) = %q, %v", good, got, err)
	}
}

func testingExternal() bool { return os.Getenv(EnvDatabase) != "" }

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDatabaseName(t *testing.T) {
	seen := map[string]bool{}
	for _, in := range []string{
		"TestX",
		"TestStore/Append/émoji ✓ and spaces",
		strings.Repeat("TestVeryLongName/", 20),
	} {
		name := databaseName(in)
		if len(name) > 63 {
			t.Errorf("databaseName(%q) = %q: %d bytes, over PostgreSQL's 63", in, name, len(name))
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				t.Errorf("databaseName(%q) = %q: contains %q", in, name, r)
			}
		}
		if seen[name] {
			t.Errorf("databaseName(%q) = %q twice", in, name)
		}
		seen[name] = true
		if again := databaseName(in); again == name {
			t.Errorf("databaseName(%q) gave %q twice: no random suffix", in, name)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"9.6", "15", true},
		{"15", "9.6", false},
		{"13", "16", true},
		{"16", "16", false},
	} {
		if got := versionLess(c.a, c.b); got != c.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
