package retention_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/testclock"
)

func TestValidDaysAndPeriods(t *testing.T) {
	var valid []int
	for d := -400; d <= 4000; d++ {
		if retention.ValidDays(d) {
			valid = append(valid, d)
		}
	}
	want := "[30 60 90 120 150 180 210 240 270 300 330 365 730 1095 1460 1825 2190 2555 2920 3285 3650]"
	if got := fmt.Sprint(valid); got != want {
		t.Errorf("ValidDays holds %s, want %s", got, want)
	}
	for _, tc := range []struct {
		period string
		days   int
	}{
		{"1_MONTH", 30}, {"2_MONTHS", 60}, {"11_MONTHS", 330}, {"1_YEAR", 365}, {"2_YEARS", 730}, {"10_YEARS", 3650},
		{"", 0}, {"1_MONTHS", 0}, {"2_MONTH", 0}, {"12_MONTHS", 0}, {"0_MONTHS", 0}, {"1_YEARS", 0}, {"11_YEARS", 0},
		{"01_YEAR", 0}, {"+1_YEAR", 0}, {"1_year", 0}, {"1 YEAR", 0}, {"1__YEAR", 0}, {"YEAR", 0}, {"3_WEEKS", 0}, {"1_YEAR ", 0},
	} {
		days, ok := retention.ParsePeriod(tc.period)
		if days != tc.days || ok != (tc.days > 0) {
			t.Errorf("ParsePeriod(%q) = %d, %v; want %d", tc.period, days, ok, tc.days)
		}
		if tc.days > 0 && retention.FormatPeriod(tc.days) != tc.period {
			t.Errorf("FormatPeriod(%d) = %q, want %q", tc.days, retention.FormatPeriod(tc.days), tc.period)
		}
	}
	if p := retention.FormatPeriod(45); p != "" {
		t.Errorf("FormatPeriod(45) = %q, want \"\"", p)
	}
	for _, tc := range []struct {
		days, def int
		set       bool
		want      int
	}{{0, 30, false, 30}, {365, 30, true, 365}, {0, 7, false, 7}} {
		if got := retention.Days(tc.days, tc.set, tc.def); got != tc.want {
			t.Errorf("Days(%d, %v, %d) = %d, want %d", tc.days, tc.set, tc.def, got, tc.want)
		}
	}
}

// faulty fails PruneRecords for one organization.
type faulty struct {
	*sqlite.Store
	failOrg string
	err     error
	calls   atomic.Int32
}

func (f *faulty) PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error) {
	f.calls.Add(1)
	if org == f.failOrg {
		return 0, f.err
	}
	return f.Store.PruneRecords(ctx, org, cutoff, limit)
}

// setup opens a SQLite store with organizations a, b and c, each with n
// events received 100 days before now, integrated (with placeholder tiles:
// the sweeper only needs the integrated size) and indexed.
func setup(t testing.TB, now time.Time, n int) *sqlite.Store {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d, err := event.ParseEvent([]byte(`{"action":"a.b","occurred_at":"`+testclock.Format(now.AddDate(0, -5, 0))+`","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"}}`),
		now, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"org_a", "org_b", "org_c"} {
		if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		var sub store.Submission
		received := now.Add(-100 * 24 * time.Hour)
		for range n {
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail})
		}
		if res, err := st.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		var tiles []ledger.TileData
		for _, tl := range tlog.NewTiles(ledger.TileHeight, 0, int64(n)) {
			tiles = append(tiles, ledger.TileData{Tile: tl, Data: make([]byte, 32*tl.W)})
		}
		if err := st.Integrate(ctx, org, 0, int64(n), tiles, []byte("note\n")); err != nil {
			t.Fatal(err)
		}
	}
	for {
		k, err := st.IndexPending(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			return st
		}
	}
}

func TestSweepGoesOnPastAFailingOrganization(t *testing.T) {
	now := testclock.Now(t)
	st := setup(t, now, 10)
	f := &faulty{Store: st, failOrg: "org_b", err: errors.New("disk on fire")}
	reg := prometheus.NewRegistry()
	sw := retention.New(f, retention.Options{BatchSize: 3, Now: func() time.Time { return now }}, nil, reg)
	res, err := sw.Sweep(t.Context())
	if err == nil || !strings.Contains(err.Error(), "org_b") || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Sweep error = %v, want org_b's failure", err)
	}
	if res.Records != 20 {
		t.Errorf("Sweep deleted %d records, want 20 (org_a and org_c)", res.Records)
	}
	if got := metric(t, reg, "trail_retention_records_deleted_total"); got != 20 {
		t.Errorf("records deleted metric = %v, want 20", got)
	}
	if got := metric(t, reg, "trail_retention_sweep_errors_total"); got != 1 {
		t.Errorf("sweep errors metric = %v, want 1", got)
	}
	if got := metric(t, reg, "trail_retention_last_sweep_timestamp_seconds"); got != 0 {
		t.Errorf("last sweep metric = %v after a failed sweep, want 0", got)
	}
	// Batches of 3: 10 records take 4 calls per organization; org_b one.
	if n := f.calls.Load(); n != 4+1+4 {
		t.Errorf("PruneRecords called %d times, want 9", n)
	}

	// An unavailable database stops the sweep at once.
	f.err = fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	f.failOrg = "org_a"
	f.calls.Store(0)
	if _, err := sw.Sweep(t.Context()); !errors.Is(err, store.ErrUnavailable) || f.calls.Load() != 1 {
		t.Errorf("Sweep with the database unavailable = %v after %d calls; want ErrUnavailable after 1", err, f.calls.Load())
	}
	f.failOrg = ""
	if _, err := sw.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg, "trail_retention_last_sweep_timestamp_seconds"); got != float64(now.UnixNano())/1e9 {
		t.Errorf("last sweep metric = %v, want %v", got, float64(now.UnixNano())/1e9)
	}
	if n := count(t, st, "org_b"); n != 0 {
		t.Errorf("org_b holds %d records after a good sweep", n)
	}
}

func TestReader(t *testing.T) {
	now := testclock.Now(t)
	st := setup(t, now, 1)
	if err := st.SetRetention(t.Context(), "org_b", 730, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		def  int
		org  string
		want int
	}{{0, "org_a", 30}, {90, "org_a", 90}, {90, "org_b", 730}} {
		if got, err := (retention.Reader{Store: st, DefaultDays: tc.def}).RetentionDays(t.Context(), tc.org); err != nil || got != tc.want {
			t.Errorf("Reader{default %d}.RetentionDays(%s) = %d, %v; want %d", tc.def, tc.org, got, err, tc.want)
		}
	}
	if _, err := (retention.Reader{Store: st}).RetentionDays(t.Context(), "org_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetentionDays of an unknown organization: %v, want ErrNotFound", err)
	}
}

func TestRunLifecycle(t *testing.T) {
	now := testclock.Now(t)
	st := setup(t, now, 5)
	var clock atomic.Int64
	clock.Store(now.Add(-90 * 24 * time.Hour).UnixNano()) // the events are 10 days old: nothing due
	sw := retention.New(st, retention.Options{Interval: time.Hour, Now: func() time.Time { return time.Unix(0, clock.Load()) }}, nil, nil)
	swept := sw.Swept()
	sw.Start(t.Context())
	defer sw.Stop()
	wait(t, swept) // a sweep runs at start
	if n := count(t, st, "org_a"); n != 5 {
		t.Fatalf("org_a holds %d records after a sweep with nothing due", n)
	}
	clock.Store(now.UnixNano())
	swept = sw.Swept()
	sw.Wake() // no hour passes: the wake-up runs the sweep
	wait(t, swept)
	for _, org := range []string{"org_a", "org_b", "org_c"} {
		if n := count(t, st, org); n != 0 {
			t.Errorf("%s holds %d records after the woken sweep", org, n)
		}
	}
	sw.Stop()
	sw.Stop() // twice is harmless
	retention.New(st, retention.Options{}, nil, nil).Stop()
}

func wait(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatal("no sweep finished within a minute")
	}
}

// metric is the value of the named counter or gauge in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// count is how many records of org are stored.
func count(t *testing.T, st *sqlite.Store, org string) int {
	t.Helper()
	n := 0
	if err := st.ReadRecords(t.Context(), org, 0, 1<<40, func(int64, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// cancelling cancels a context after its first PruneRecords call.
type cancelling struct {
	*sqlite.Store
	cancel context.CancelFunc
	calls  atomic.Int32
}

func (c *cancelling) PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error) {
	c.calls.Add(1)
	defer c.cancel()
	return c.Store.PruneRecords(ctx, org, cutoff, limit)
}

// TestBatchPause checks that the sweeper waits between batches and that a
// stop ends the wait: with an hour's pause, a sweep stopped after its first
// batch returns at once with that batch deleted.
func TestBatchPause(t *testing.T) {
	now := testclock.Now(t)
	st := setup(t, now, 10)
	ctx, cancel := context.WithCancel(t.Context())
	c := &cancelling{Store: st, cancel: cancel}
	sw := retention.New(c, retention.Options{BatchSize: 3, BatchPause: time.Hour, Now: func() time.Time { return now }}, nil, nil)
	res, err := sw.Sweep(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("stopped Sweep = %v, want context.Canceled", err)
	}
	if res.Records != 3 || c.calls.Load() != 1 {
		t.Errorf("stopped Sweep deleted %d records in %d calls, want 3 in 1", res.Records, c.calls.Load())
	}

	// A short pause: the sweep completes, batch by batch.
	sw = retention.New(st, retention.Options{BatchSize: 3, BatchPause: time.Millisecond, Now: func() time.Time { return now }}, nil, nil)
	res, err = sw.Sweep(t.Context())
	if err != nil || res.Records != 27 {
		t.Errorf("Sweep with a pause = %d records, %v; want the 27 left", res.Records, err)
	}
}
