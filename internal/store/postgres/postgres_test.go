package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openDSN opens a store on the database at dsn and closes it when t ends.
func openDSN(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openFresh opens a store on a fresh, empty database.
func openFresh(t testing.TB) *postgres.Store {
	t.Helper()
	return openDSN(t, pgtest.New(t))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Driver[*postgres.Store]{
		Open:        func(t *testing.T) *postgres.Store { return openFresh(t) },
		OpenExports: func(t *testing.T) store.ExportStore { return openFresh(t) },
		DeleteRecord: func(t *testing.T, s *postgres.Store, org string, seq int64) {
			exec(t, s, `DELETE FROM events WHERE organization_id = $1 AND seq = $2`, org, seq)
		},
		InsertCheckpoint: func(t *testing.T, s *postgres.Store, org string, size int64, note string) {
			exec(t, s, `INSERT INTO ledger_checkpoints VALUES ($1, $2, $3, now())`, org, size, []byte(note))
		},
		EnsurePartitions: func(ctx context.Context, s *postgres.Store, now time.Time) error {
			return s.EnsurePartitions(ctx, now)
		},
		Sweeper: func(s *postgres.Store, days, batch int, now func() time.Time) storetest.Sweep {
			sw := retention.New(s, retention.Options{DefaultDays: days, BatchSize: batch, Now: now}, nil, nil)
			return func(ctx context.Context) (int64, []string, error) {
				res, err := sw.Sweep(ctx)
				return res.Records, res.Partitions, err
			}
		},
	})
}

// exec runs a statement on the store's database behind its back.
func exec(t testing.TB, s *postgres.Store, query string, args ...any) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://trail@127.0.0.1:1/trail?connect_timeout=5", nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open of a server that is not there = %v, want ErrUnavailable", err)
	}
}

// TestLargeEvent stores the largest event the limits allow (50 metadata
// keys of 500-character values on the actor, 100 targets and the event):
// its search vector stays within PostgreSQL's limits and it is found by
// its words.
func TestLargeEvent(t *testing.T) {
	ctx := context.Background()
	s := openFresh(t)
	createOrg(t, s, "org_large")
	md := func(seed int) map[string]any {
		m := map[string]any{}
		for k := range 50 {
			var b strings.Builder
			for b.Len() < 490 {
				fmt.Fprintf(&b, "w%d_%d ", seed, b.Len()%97)
			}
			m[fmt.Sprintf("key_%d", k)] = b.String()[:490] + fmt.Sprintf(" k%d", k)
		}
		return m
	}
	var targets []any
	for i := range 100 {
		targets = append(targets, map[string]any{"id": fmt.Sprintf("t_%d", i), "type": "doc", "metadata": md(i)})
	}
	raw, err := json.Marshal(map[string]any{
		"action": "big.event", "occurred_at": "2026-01-02T03:04:05.678Z",
		"actor":   map[string]any{"id": "user_big", "type": "user", "metadata": md(1000)},
		"targets": targets, "context": map[string]any{"location": "192.0.2.1"}, "metadata": md(2000),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	now := time.Now()
	res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{{OrganizationID: "org_large", ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}}, now)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Append of a %d-byte event: %v %v", len(raw), err, res)
	}
	for _, text := range []string{"k49", "w2000_5*", "t_99 k7"} {
		page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: "org_large", Text: text})
		if err != nil || len(page.Events) != 1 {
			t.Errorf("search %q = %d events, %v; want the event", text, len(page.Events), err)
		}
	}
}

// TestConformanceSmallCheckWindow runs the search suite with searches that
// check free text or a lone target per event giving up that first step
// after a few events (or at once), so that both steps, and the switch
// between them, are checked against the brute-force answers.
func TestConformanceSmallCheckWindow(t *testing.T) {
	for _, window := range []int{0, 5} {
		t.Run(fmt.Sprint(window), func(t *testing.T) {
			defer postgres.SetCheckWindow(window)()
			storetest.RunSearch(t, func(t *testing.T) *postgres.Store { return openFresh(t) })
		})
	}
}

// TestEventByID finds events whose id was not minted from their
// received_at too (the lookup first narrows to partitions by the id's
// time).
func TestEventByID(t *testing.T) {
	ctx := context.Background()
	s := openFresh(t)
	createOrg(t, s, "org_ids")
	g := newGen(5)
	now := time.Now().UTC().Truncate(time.Millisecond)
	same := g.event(t, "org_ids", now)
	other := g.event(t, "org_ids", now)
	other.ID = event.NewID(now.AddDate(0, -2, 0))
	odd := g.event(t, "org_ids", now)
	odd.ID = "evt_not-a-ulid"
	res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{same, other, odd}}}, now)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Append: %v %v", err, res)
	}
	for i, a := range res[0].Events {
		if e, err := s.Event(ctx, a.ID); err != nil || e.Seq != a.Seq || e.ID != a.ID {
			t.Errorf("Event(%s) = %+v, %v; want seq %d", a.ID, e, err, a.Seq)
		} else if i == 0 && !strings.Contains(string(e.Record), `"id":"`+a.ID+`"`) {
			t.Errorf("Event(%s) record = %s", a.ID, e.Record)
		}
	}
	for _, id := range []string{event.NewID(now), "evt_x", ""} {
		if _, err := s.Event(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Event(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// A log the integrator refuses (ledger.RefusalStorage) takes no events on
// any replica: the append that would advance its seq fails with a
// *ledger.RefusedError and stores nothing, other logs go on, and clearing
// the refusal lets events in again.
func TestLogRefusedAppend(t *testing.T) {
	ctx := context.Background()
	s := openFresh(t)
	createOrg(t, s, "org_refused")
	createOrg(t, s, "org_fine")
	raw := []byte(`{"action":"a.b","occurred_at":"2026-01-02T03:04:05.678Z","actor":{"id":"u","type":"user"},"targets":[{"id":"t","type":"doc"}],"context":{"location":"192.0.2.1"}}`)
	d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	appendTo := func(org string) error {
		now := time.Now()
		res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}}, now)
		if err == nil {
			err = res[0].Err
		}
		return err
	}
	if err := s.SetLogRefused(ctx, "org_refused", "behind a signed checkpoint"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RefusedLogs(ctx); err != nil || len(got) != 1 || got["org_refused"] != "behind a signed checkpoint" {
		t.Fatalf("RefusedLogs = %v, %v", got, err)
	}
	before, _ := s.NextSeq(ctx, "org_refused")
	tests := []struct {
		org     string
		refused bool
	}{{"org_refused", true}, {"org_fine", false}}
	for _, tt := range tests {
		var re *ledger.RefusedError
		err := appendTo(tt.org)
		if got := errors.As(err, &re) && re.Organization == tt.org; got != tt.refused {
			t.Errorf("append to %s: %v, want refused: %v", tt.org, err, tt.refused)
		}
		if !tt.refused && err != nil {
			t.Errorf("append to %s: %v", tt.org, err)
		}
	}
	if after, _ := s.NextSeq(ctx, "org_refused"); after != before {
		t.Errorf("a refused append advanced the log from %d to %d", before, after)
	}
	if err := s.SetLogRefused(ctx, "org_refused", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RefusedLogs(ctx); err != nil || len(got) != 0 {
		t.Errorf("RefusedLogs after clearing = %v, %v", got, err)
	}
	if err := appendTo("org_refused"); err != nil {
		t.Errorf("append after clearing the refusal: %v", err)
	}
}
