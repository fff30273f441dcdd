package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver goose migrates through

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store/postgres"
)

// TestMigrateIdempotencyKeys upgrades keys stored per (organization, key,
// body) to keys per (organization, key): of a key's rows the earliest stays.
func TestMigrateIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := postgres.Migrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		org, key, body, created string
	}{
		{"org_a", "k1", "later body", "2026-01-01T00:00:02Z"},
		{"org_a", "k1", "first body", "2026-01-01T00:00:01Z"},
		{"org_b", "k1", "other org", "2026-01-01T00:00:03Z"},
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO idempotency_keys (organization_id, key, body_hash, created_at, result) VALUES ($1, $2, $3, $4, '[]')`,
			r.org, r.key, []byte(r.body), r.created); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	got := map[string]string{}
	q, err := db.QueryContext(ctx, `SELECT organization_id, key, body_hash FROM idempotency_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for q.Next() {
		var org, key string
		var hash []byte
		if err := q.Scan(&org, &key, &hash); err != nil {
			t.Fatal(err)
		}
		got[org+"/"+key] = string(hash)
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["org_a/k1"] != "first body" || got["org_b/k1"] != "other org" {
		t.Errorf("keys after the migration = %v, want org_a/k1 = first body, org_b/k1 = other org", got)
	}
	if _, err := p.DownTo(ctx, 9); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
}
