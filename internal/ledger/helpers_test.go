package ledger_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/ledger/ledgertest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/testclock"
)

const testPrefix = "trail.test"

var testEpoch = testclock.Must().Add(-time.Hour)

// record returns a canonical-looking record of org at seq.
func record(org string, seq int64) []byte {
	return fmt.Appendf(nil, `{"id":"evt_%026d","organization_id":%q,"seq":%d,"received_at":"2026-11-25T18:00:00.000Z","action":"user.signed_in","occurred_at":"2026-11-25T17:59:59.000Z","actor":{"id":"user_%d","type":"user"},"targets":[{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7"}}`,
		seq, org, seq, seq%97)
}

// memStorage is the shared in-memory ledger.Storage.
type memStorage = ledgertest.MemStorage

func newMemStorage() *memStorage { return ledgertest.NewMemStorage() }

// addRecords appends n records to org's log, all at once as a commit
// would.
func addRecords(m *memStorage, org string, n int) {
	m.Mu.Lock()
	defer m.Mu.Unlock()
	l := m.Log(org)
	for range n {
		l.Records = append(l.Records, record(org, int64(len(l.Records))))
	}
}

// fault is what the next Integrate calls of a faultyStorage do.
type fault int

const (
	faultNotPersisted fault = iota + 1 // fail, store nothing
	faultPersisted                     // store, then fail (a lost acknowledgement)
)

// faultyStorage injects Integrate failures into another Storage.
type faultyStorage struct {
	ledger.Storage
	called chan struct{} // if set, signalled (without blocking) on each Integrate
	mu     sync.Mutex
	faults []fault
	calls  int
}

var errInjected = errors.New("injected fault")

func (f *faultyStorage) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

// next returns the fault for this call and signals the call.
func (f *faultyStorage) next() fault {
	f.mu.Lock()
	f.calls++
	var next fault
	if len(f.faults) > 0 {
		next, f.faults = f.faults[0], f.faults[1:]
	}
	f.mu.Unlock()
	if f.called != nil {
		select {
		case f.called <- struct{}{}:
		default:
		}
	}
	return next
}

func (f *faultyStorage) Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []ledger.TileData, checkpoint []byte) error {
	switch f.next() {
	case faultNotPersisted:
		return fmt.Errorf("integrate %s: failed and not persisted: %w", org, errInjected)
	case faultPersisted:
		if err := f.Storage.Integrate(ctx, org, oldSize, newSize, tiles, checkpoint); err != nil {
			return err
		}
		return fmt.Errorf("integrate %s: failed but persisted: %w", org, errInjected)
	}
	return f.Storage.Integrate(ctx, org, oldSize, newSize, tiles, checkpoint)
}

// faultyBatchStorage also injects faults into IntegrateBatch, one per call.
type faultyBatchStorage struct{ *faultyStorage }

func (f faultyBatchStorage) IntegrateBatch(ctx context.Context, batch []ledger.Integration) ([]error, error) {
	inner := f.Storage.(ledger.BatchStorage)
	switch f.next() {
	case faultNotPersisted:
		return nil, fmt.Errorf("integrate %d logs: failed and not persisted: %w", len(batch), errInjected)
	case faultPersisted:
		if _, err := inner.IntegrateBatch(ctx, batch); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("integrate %d logs: failed but persisted: %w", len(batch), errInjected)
	}
	return inner.IntegrateBatch(ctx, batch)
}

// backend is a Storage with a way to append records, for tests that run on
// both the fake and SQLite.
type backend struct {
	name    string
	storage ledger.Storage
	add     func(t testing.TB, org string, n int)
}

// forEachBackend runs f as a subtest on each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, mk := range []struct {
		name string
		new  func(*testing.T) *backend
	}{{"mem", memBackend}, {"sqlite", sqliteBackend}} {
		t.Run(mk.name, func(t *testing.T) { f(t, mk.new(t)) })
	}
}

func memBackend(t *testing.T) *backend {
	m := newMemStorage()
	return &backend{name: "mem", storage: m, add: func(_ testing.TB, org string, n int) { addRecords(m, org, n) }}
}

func sqliteBackend(t *testing.T) *backend {
	st := openSQLite(t, filepath.Join(t.TempDir(), "trail.db"))
	return &backend{name: "sqlite", storage: st, add: func(tb testing.TB, org string, n int) { appendEvents(tb, st, org, n) }}
}

func openSQLite(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

var eventJSON = []byte(`{"action":"user.signed_in","occurred_at":"` + testclock.Format(testEpoch.Add(-877*time.Millisecond)) + `",` +
	`"actor":{"id":"user_1","type":"user","name":"Ada"},"targets":[{"id":"team_1","type":"team"}],` +
	`"context":{"location":"203.0.113.7","user_agent":"test"},"metadata":{"n":1}}`)

// appendEvents appends n events to org (created if needed) through Append.
func appendEvents(tb testing.TB, st *sqlite.Store, org string, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := st.LogState(ctx, org); errors.Is(err, store.ErrNotFound) {
		if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: testEpoch, UpdatedAt: testEpoch}); err != nil {
			tb.Fatalf("CreateOrganization: %v", err)
		}
	}
	d, err := event.ParseEvent(eventJSON, testEpoch, event.DefaultLimits())
	if err != nil {
		tb.Fatalf("ParseEvent: %v", err)
	}
	for n > 0 {
		k := min(n, 4096)
		var sub store.Submission
		now := testEpoch
		for range k {
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
		}
		res, err := st.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			tb.Fatalf("Append: %v %v", err, res[0].Err)
		}
		n -= k
	}
}

// newSigner returns a fresh signer named testPrefix.
func newSigner(tb testing.TB) *ledger.Signer {
	tb.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, testPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// startIntegrator starts an integrator and stops it when the test ends.
func startIntegrator(tb testing.TB, s ledger.Storage, signer *ledger.Signer, dir string, opts ledger.Options) *ledger.Integrator {
	tb.Helper()
	opts.DataDir = dir
	if opts.Interval == 0 {
		opts.Interval = time.Millisecond
	}
	i, err := ledger.NewIntegrator(s, signer, testPrefix, opts, testLogger(tb), nil)
	if err != nil {
		tb.Fatalf("NewIntegrator: %v", err)
	}
	if err := i.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(i.Stop)
	return i
}

func waitIdle(tb testing.TB, i *ledger.Integrator) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := i.WaitIdle(ctx); err != nil {
		tb.Fatalf("WaitIdle: %v", err)
	}
}

// testLogger logs through t.Log, so failing tests show what the integrator said.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

// latest returns the parsed, verified newest checkpoint of org.
func latest(tb testing.TB, s ledger.Storage, signer *ledger.Signer, org string) ledger.Checkpoint {
	tb.Helper()
	msg, err := s.LatestCheckpoint(context.Background(), org)
	if err != nil {
		tb.Fatalf("LatestCheckpoint(%s): %v", org, err)
	}
	c, err := ledger.ParseCheckpoint(msg, signer.Verifier())
	if err != nil {
		tb.Fatalf("ParseCheckpoint: %v", err)
	}
	return c
}

// readAll returns the records [0, n) of org.
func readAll(tb testing.TB, s ledger.Storage, org string, n int64) [][]byte {
	tb.Helper()
	var out [][]byte
	err := s.ReadRecords(context.Background(), org, 0, n, func(seq int64, rec []byte) error {
		out = append(out, slices.Clone(rec))
		return nil
	})
	if err != nil {
		tb.Fatalf("ReadRecords: %v", err)
	}
	return out
}
