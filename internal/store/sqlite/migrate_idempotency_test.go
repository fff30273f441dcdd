package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestMigrateIdempotencyKeys upgrades keys stored per (key, body) to keys
// per (organization, key): of a key's rows the earliest stays, under the
// organization its result names.
func TestMigrateIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trail.db")
	db, err := sql.Open("sqlite", dsn(path, false, true, 32<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := Migrator(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		key, body string
		created   int64
		org       string
	}{
		{"k1", "later body", 2000, "org_a"},
		{"k1", "first body", 1000, "org_a"},
		{"k2", "only body", 1500, "org_b"},
	}
	for _, r := range rows {
		result := `[{"id":"evt_` + r.body + `","organization_id":"` + r.org + `","seq":0,"received_at":"2026-01-01T00:00:00Z"}]`
		if _, err := db.ExecContext(ctx, `INSERT INTO idempotency_keys (key, body_hash, created_at, result) VALUES (?, ?, ?, ?)`,
			r.key, []byte(r.body), r.created, []byte(result)); err != nil {
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
	want := map[string]string{"org_a/k1": "first body", "org_b/k2": "only body"}
	if len(got) != len(want) || got["org_a/k1"] != want["org_a/k1"] || got["org_b/k2"] != want["org_b/k2"] {
		t.Errorf("keys after the migration = %v, want %v", got, want)
	}
	// And back down, for `trail migrate down`.
	if _, err := p.DownTo(ctx, 9); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
}
