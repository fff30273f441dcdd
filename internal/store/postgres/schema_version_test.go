package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
)

// A database migrated by a newer Trail is refused, with both versions in
// the message, rather than used or reported up to date.
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	s, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	for name, open := range map[string]func() (*postgres.Store, error){
		"Open":        func() (*postgres.Store, error) { return postgres.Open(ctx, url, nil) },
		"OpenCurrent": func() (*postgres.Store, error) { return postgres.OpenCurrent(ctx, url, nil) },
	} {
		s, err := open()
		if err == nil {
			s.Close()
			t.Fatalf("%s opened a database at schema version 9999", name)
		}
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "at version 9999 and this binary knows versions up to ") {
			t.Fatalf("%s = %v; want ErrSchemaTooNew naming version 9999 and the binary's", name, err)
		}
	}
}

// A process that finds the migration lock held says so in its log, naming
// the holder, and keeps waiting; it takes the lock once it is released.
func TestMigrationLockWaitIsLogged(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	pool, err := postgres.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	holderRelease, err := postgres.LockMigrations(ctx, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	took := make(chan error, 1)
	go func() {
		release, err := postgres.LockMigrations(ctx, pool, logger)
		if err == nil {
			release()
		}
		took <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), "waiting for the migration lock held by \\\"trail migrate ") {
		if time.Now().After(deadline) {
			t.Fatalf("no waiting line logged within a minute:\n%s", logs.String())
		}
		select {
		case err := <-took:
			t.Fatalf("took the lock while it was held (err %v)", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	holderRelease()
	select {
	case err := <-took:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the lock was not taken within a minute of its release")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
