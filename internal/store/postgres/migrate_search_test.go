package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store/postgres"
)

// TestMigrateSearchPerOrganization rewrites vectors stored with the
// organization's lexeme into the vectors Append now stores, words
// prefixed per organization, and back.
func TestMigrateSearchPerOrganization(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := postgres.Migrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 19); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2045) // indexed before, too long to prefix
	rows := []struct {
		org, text string
		stored    string // the vector as stored before the migration
	}{
		{"org_a", "Café user_01 carol@example.com", "'cafe':1 'user_01':2 'carol':3 'example':4 'com':5 'org:org_a'"},
		{"org_a1", "user_01 user_01 日本語", "'user_01':1,2 '日本語':3 'org:org_a1'"},
		{"org_b", "", "'org:org_b'"},
		{"org_b", "alpha " + long + " beta", "'alpha':1 '" + long + "':2 'beta':3 'org:org_b'"},
		{"org_c", "org org_c", "'org':1 'org_c':2 'org:org_c'"},
	}
	now := time.Now().UTC()
	for i, r := range rows {
		if _, err := db.ExecContext(ctx, `INSERT INTO events (seq, received_at, occurred_at, organization_id, id, action, actor_id, actor_name, search, record)
			VALUES ($1, $2, $2, $3, $4, 'a.b', 'u', 'n', $5::tsvector, '\x7b7d')`, i+1, now, r.org, "ev_"+string(rune('a'+i)), r.stored); err != nil {
			t.Fatalf("inserting %q: %v", r.stored, err)
		}
	}
	if _, err := p.UpTo(ctx, 20); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	for i, r := range rows {
		var same bool
		var got string
		if err := db.QueryRowContext(ctx, `SELECT search = $2::tsvector, search::text FROM events WHERE seq = $1`, i+1, postgres.SearchVector(r.org, r.text)).Scan(&same, &got); err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("%s %q: migrated to %s, not the vector Append stores", r.org, r.text, got)
		}
	}
	// The SQL prefix is the one Append uses.
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE search @@ (trail_search_prefix(organization_id) || 'user_01')::tsquery`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("user_01 found in %d events, want 2", n)
	}

	if _, err := p.DownTo(ctx, 19); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
	for i, r := range rows {
		want := strings.Replace(r.stored, " '"+long+"':2", "", 1)
		var same bool
		var got string
		if err := db.QueryRowContext(ctx, `SELECT search = $2::tsvector, search::text FROM events WHERE seq = $1`, i+1, want).Scan(&same, &got); err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("%s: migrated back to %s, want %s", r.org, got, want)
		}
	}
}
