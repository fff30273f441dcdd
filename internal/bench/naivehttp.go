package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
)

// NaiveApp is the application Trail replaces, over HTTP: a handler that
// decodes the WorkOS single-event body (POST /audit_logs/events), checks
// that it names an organization and an action, and stores the event with
// one INSERT in its own durable transaction before answering 201. It is
// what a team writes when it "builds a table and hopes"; measured with
// the same HTTP client as Trail, the difference between the two is what
// Trail's guarantees cost (docs/PERFORMANCE.md).
type NaiveApp struct {
	insert func(ctx context.Context, org, id string, received time.Time, event []byte) error
	close  func()
}

// NewNaiveApp opens the naive app's database: a postgres:// URL (a pool of
// conns connections, autocommit) or a SQLite file path (WAL,
// synchronous=FULL, conns connections), creating its one table.
func NewNaiveApp(ctx context.Context, database string, conns int) (*NaiveApp, error) {
	const table = `CREATE TABLE IF NOT EXISTS audit_events (
		pk %s PRIMARY KEY, organization_id text NOT NULL, id text NOT NULL,
		received_at %s NOT NULL, event %s NOT NULL)`
	if strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://") {
		cfg, err := pgxpool.ParseConfig(database)
		if err != nil {
			return nil, fmt.Errorf("the naive app's database URL: %w", err)
		}
		cfg.MaxConns = int32(conns)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("connecting the naive app: %w", err)
		}
		if _, err := pool.Exec(ctx, fmt.Sprintf(table, "bigserial", "timestamptz", "bytea")); err != nil {
			pool.Close()
			return nil, fmt.Errorf("creating the naive app's table: %w", err)
		}
		return &NaiveApp{close: pool.Close, insert: func(ctx context.Context, org, id string, received time.Time, event []byte) error {
			_, err := pool.Exec(ctx, `INSERT INTO audit_events (organization_id, id, received_at, event) VALUES ($1, $2, $3, $4)`, org, id, received, event)
			return err
		}}, nil
	}
	db, err := sql.Open("sqlite", sqliteDSN(database))
	if err != nil {
		return nil, fmt.Errorf("opening the naive app's SQLite file: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(table, "INTEGER", "TEXT", "BLOB")); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the naive app's table: %w", err)
	}
	return &NaiveApp{close: func() { db.Close() }, insert: func(ctx context.Context, org, id string, received time.Time, event []byte) error {
		_, err := db.ExecContext(ctx, `INSERT INTO audit_events (organization_id, id, received_at, event) VALUES (?, ?, ?, ?)`,
			org, id, received.Format(time.RFC3339Nano), event)
		return err
	}}, nil
}

// Close closes the app's database.
func (a *NaiveApp) Close() { a.close() }

// ServeHTTP stores one event per request.
func (a *NaiveApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrganizationID string          `json:"organization_id"`
		Event          json.RawMessage `json:"event"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var ev struct {
		Action string `json:"action"`
	}
	if body.OrganizationID == "" || json.Unmarshal(body.Event, &ev) != nil || ev.Action == "" {
		http.Error(w, "organization_id and event.action are required", http.StatusBadRequest)
		return
	}
	now := time.Now()
	id := ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
	if err := a.insert(r.Context(), body.OrganizationID, id, now, body.Event); err != nil {
		http.Error(w, "storing the event: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write([]byte(`{"success":true}`))
}

// ServeHandler serves h on ln until ctx ends.
func ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
