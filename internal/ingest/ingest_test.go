package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

// gateAppender records every Append call and, while gate is set, holds each
// call until the test releases it: that is how a slow commit looks to the
// committer.
type gateAppender struct {
	mu      sync.Mutex
	calls   [][]store.Submission
	gate    chan struct{} // nil: never block
	entered chan struct{} // receives once per call, before blocking
	err     error
}

func (a *gateAppender) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	a.mu.Lock()
	a.calls = append(a.calls, append([]store.Submission(nil), subs...))
	gate, err := a.gate, a.err
	a.mu.Unlock()
	if a.entered != nil {
		a.entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if err != nil {
		return nil, err
	}
	out := make([]store.AppendResult, len(subs))
	for i, s := range subs {
		for _, e := range s.Events {
			out[i].Events = append(out[i].Events, event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID})
		}
	}
	return out, nil
}

func (a *gateAppender) batches() [][]store.Submission {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]store.Submission(nil), a.calls...)
}

func sub(id string, n int) store.Submission {
	var s store.Submission
	for i := range n {
		s.Events = append(s.Events, store.PendingEvent{OrganizationID: "org_a", ID: fmt.Sprintf("%s-%d", id, i)})
	}
	return s
}

// While one transaction commits, every submission that arrives gathers into
// the next one, and each caller gets its own result.
func TestCommitterGroupsWhileCommitting(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	var commits atomic.Int32
	c := New(app, Options{OnCommit: func() { commits.Add(1) }}, nil, nil)
	c.Start()
	defer c.Stop()

	first := make(chan store.AppendResult, 1)
	go func() {
		res, err := c.Submit(context.Background(), sub("first", 1))
		if err != nil {
			t.Error(err)
		}
		first <- res
	}()
	<-app.entered // the first transaction is in progress and blocked

	const waiting = 20
	var wg sync.WaitGroup
	results := make([]store.AppendResult, waiting)
	for i := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Submit(context.Background(), sub(fmt.Sprint("w", i), 2))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	// Let them all queue, then release both transactions.
	deadline := time.Now().Add(5 * time.Second)
	for len(c.queue) < waiting && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(app.gate)
	wg.Wait()
	if r := <-first; len(r.Events) != 1 || r.Events[0].ID != "first-0" {
		t.Errorf("first result %+v", r)
	}
	for i, r := range results {
		if len(r.Events) != 2 || r.Events[0].ID != fmt.Sprintf("w%d-0", i) {
			t.Errorf("result %d = %+v: routed to the wrong caller", i, r)
		}
	}
	b := app.batches()
	if len(b) != 2 || len(b[1]) != waiting {
		sizes := []int{}
		for _, x := range b {
			sizes = append(sizes, len(x))
		}
		t.Fatalf("transactions carried %v submissions, want [1 %d]", sizes, waiting)
	}
	if commits.Load() != 2 {
		t.Errorf("OnCommit called %d times, want 2", commits.Load())
	}
}

// A batch never grows past MaxBatchEvents (beyond the submission that
// crosses it).
func TestCommitterBoundsBatches(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	c := New(app, Options{MaxBatchEvents: 10}, nil, nil)
	c.Start()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.Submit(context.Background(), sub("x", 1)) }()
	<-app.entered
	for i := range 12 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Submit(context.Background(), sub(fmt.Sprint(i), 3)) }()
	}
	for len(c.queue) < 12 {
		time.Sleep(time.Millisecond)
	}
	close(app.gate)
	wg.Wait()
	c.Stop()
	for i, b := range app.batches() {
		n := 0
		for _, s := range b {
			n += len(s.Events)
		}
		if n > 10+3 {
			t.Errorf("transaction %d carried %d events, bound is 10 (+ one submission)", i, n)
		}
	}
}

// A full queue answers at once instead of growing memory.
func TestCommitterOverload(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	c := New(app, Options{QueueSize: 2}, nil, nil)
	c.Start()
	var wg sync.WaitGroup
	submit := func() {
		defer wg.Done()
		c.Submit(context.Background(), sub("q", 1))
	}
	wg.Add(1)
	go submit()
	<-app.entered
	wg.Add(2)
	go submit()
	go submit()
	for len(c.queue) < 2 {
		time.Sleep(time.Millisecond)
	}
	// The store is held at app.gate until after this answer: getting one at
	// all shows the refusal waits for no commit.
	_, err := c.Submit(context.Background(), sub("over", 1))
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Submit on a full queue = %v, want ErrOverloaded", err)
	}
	close(app.gate)
	wg.Wait()
	c.Stop()
}

// Stop commits what is queued, then refuses new work.
func TestCommitterStopDrains(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	c := New(app, Options{}, nil, nil)
	c.Start()
	errs := make(chan error, 5)
	go func() { _, err := c.Submit(context.Background(), sub("a", 1)); errs <- err }()
	<-app.entered
	for i := range 4 {
		go func() { _, err := c.Submit(context.Background(), sub(fmt.Sprint(i), 1)); errs <- err }()
	}
	for len(c.queue) < 4 {
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { c.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a transaction was still in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(app.gate)
	<-stopped
	for range 5 {
		if err := <-errs; err != nil {
			t.Errorf("queued submission failed at shutdown: %v", err)
		}
	}
	if _, err := c.Submit(context.Background(), sub("late", 1)); !errors.Is(err, ErrStopped) {
		t.Errorf("Submit after Stop = %v, want ErrStopped", err)
	}
	c.Stop() // twice is harmless
}

// A failed transaction fails every submission in it, and nothing is
// reported as committed.
func TestCommitterFailure(t *testing.T) {
	boom := fmt.Errorf("disk full: %w", store.ErrUnavailable)
	app := &gateAppender{err: boom}
	var commits atomic.Int32
	c := New(app, Options{OnCommit: func() { commits.Add(1) }}, nil, nil)
	c.Start()
	defer c.Stop()
	_, err := c.Submit(context.Background(), sub("a", 1))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Submit = %v, want the store's error", err)
	}
	if commits.Load() != 0 {
		t.Error("OnCommit called after a failed transaction")
	}
}

// A caller that stops waiting gets its context's error; the transaction
// still completes for everyone else.
func TestCommitterCallerGivesUp(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	c := New(app, Options{}, nil, nil)
	c.Start()
	defer c.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Submit(ctx, sub("a", 1)); done <- err }()
	<-app.entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit after cancel = %v", err)
	}
	close(app.gate)
	if _, err := c.Submit(context.Background(), sub("b", 1)); err != nil {
		t.Fatalf("next Submit: %v", err)
	}
}

type countingIndexer struct {
	pending atomic.Int64
	calls   atomic.Int64
	fail    atomic.Bool
}

func (x *countingIndexer) IndexPending(ctx context.Context, max int) (int, error) {
	x.calls.Add(1)
	if x.fail.Load() {
		return 0, errors.New("index file is locked")
	}
	n := min(x.pending.Load(), int64(max))
	x.pending.Add(-n)
	return int(n), nil
}

// Woken, the indexer works in batches until nothing is pending; it retries
// after a failure.
func TestIndexerCatchesUp(t *testing.T) {
	ix := &countingIndexer{}
	x := NewIndexer(ix, IndexerOptions{Batch: 10, Interval: time.Hour}, nil, nil)
	// Taken before Start: the first pass may find nothing and replace the
	// channel before this goroutine asks for it, and the next pass is an
	// hour away.
	first := x.CaughtUp()
	x.Start(context.Background())
	defer x.Stop()
	<-first

	ix.pending.Store(95)
	caught := x.CaughtUp()
	x.Wake()
	select {
	case <-caught:
	case <-time.After(5 * time.Second):
		t.Fatal("indexer did not catch up after Wake")
	}
	if p := ix.pending.Load(); p != 0 {
		t.Fatalf("%d events left unindexed", p)
	}

	ix.fail.Store(true)
	ix.pending.Store(5)
	x.Wake()
	time.Sleep(50 * time.Millisecond)
	ix.fail.Store(false)
	caught = x.CaughtUp()
	x.Wake()
	select {
	case <-caught:
	case <-time.After(5 * time.Second):
		t.Fatal("indexer did not recover after a failure")
	}
	if p := ix.pending.Load(); p != 0 {
		t.Fatalf("%d events left unindexed after recovery", p)
	}
}

// While Hold blocks, the indexer indexes nothing; once it returns, the
// indexer catches up.
func TestIndexerHolds(t *testing.T) {
	ix := &countingIndexer{}
	release := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	hold := func(ctx context.Context) error {
		if !holding.Load() {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ix.pending.Store(50)
	x := NewIndexer(ix, IndexerOptions{Batch: 10, Interval: time.Hour, Hold: hold}, nil, nil)
	x.Start(context.Background())
	defer x.Stop()
	time.Sleep(30 * time.Millisecond)
	if c := ix.calls.Load(); c != 0 {
		t.Fatalf("indexed %d times while held", c)
	}
	caught := x.CaughtUp()
	holding.Store(false)
	close(release)
	select {
	case <-caught:
	case <-time.After(5 * time.Second):
		t.Fatal("indexer did not catch up once released")
	}
	if p := ix.pending.Load(); p != 0 {
		t.Fatalf("%d events left unindexed", p)
	}
}

// One client sending requests one after another is never held back by
// MinInterval: each of its commits carries a single request.
func TestCommitterLoneClientNotSpaced(t *testing.T) {
	app := &gateAppender{}
	c := New(app, Options{MinInterval: time.Hour}, nil, nil)
	c.Start()
	defer c.Stop()
	for i := range 3 {
		done := make(chan error, 1)
		go func() {
			_, err := c.Submit(context.Background(), sub(fmt.Sprint("lone", i), 1))
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("request %d of a lone client was held back", i)
		}
	}
}

// After a commit that carried several requests, the requests arriving
// within MinInterval of its start all go into the next transaction.
func TestCommitterSpacesCommitsUnderLoad(t *testing.T) {
	gate := make(chan struct{})
	app := &gateAppender{gate: gate, entered: make(chan struct{}, 100)}
	c := New(app, Options{MinInterval: 2 * time.Second}, nil, nil)
	c.Start()
	defer c.Stop()
	ctx := context.Background()
	var wg sync.WaitGroup
	submit := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(ctx, sub(id, 1)); err != nil {
				t.Error(err)
			}
		}()
	}
	// A pair of requests commits together: queued behind a blocked commit.
	submit("blocked")
	<-app.entered
	submit("pair-a")
	submit("pair-b")
	deadline := time.Now().Add(5 * time.Second)
	for len(c.queue) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	app.mu.Lock()
	app.gate = nil
	app.mu.Unlock()
	close(gate)
	<-app.entered // the pair's commit
	wg.Wait()
	// Right after the pair's commit, five concurrent requests: they wait
	// out the interval together instead of the first committing alone.
	for i := range 5 {
		submit(fmt.Sprint("burst", i))
	}
	wg.Wait()
	batches := app.batches()
	if len(batches) != 3 {
		t.Fatalf("%d commits, want 3 (blocked, pair, burst): %v", len(batches), batches)
	}
	if len(batches[1]) != 2 || len(batches[2]) != 5 {
		t.Errorf("commits carried %d and %d requests, want 2 and 5", len(batches[1]), len(batches[2]))
	}
}

// Passes are spaced by Gap only while they follow each other: the first two
// commits after a quiet spell are indexed at once, the third waits.
func TestIndexerSpacesOnlyBackToBackPasses(t *testing.T) {
	ix := &countingIndexer{}
	x := NewIndexer(ix, IndexerOptions{Interval: time.Hour, Gap: time.Hour}, nil, nil)
	// Taken before Start: the first pass may find nothing and replace the
	// channel before this goroutine asks for it, and the next pass is an
	// hour away.
	first := x.CaughtUp()
	x.Start(context.Background())
	defer x.Stop()
	<-first
	for i := range 2 {
		ix.pending.Store(3)
		caught := x.CaughtUp()
		x.Wake()
		select {
		case <-caught:
		case <-time.After(time.Minute):
			t.Fatalf("commit %d after a quiet spell waited for the gap", i+1)
		}
	}
	ix.pending.Store(3)
	x.Wake()
	time.Sleep(200 * time.Millisecond)
	if p := ix.pending.Load(); p != 3 {
		t.Errorf("a third pass right after two ran at once (%d left); want it to wait out the gap", p)
	}
}

// poisonAppender fails any transaction that carries an event with id
// "poison-0", as a store fails on a value it cannot hold.
type poisonAppender struct {
	gateAppender
}

func (a *poisonAppender) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	res, err := a.gateAppender.Append(ctx, subs, now)
	for _, s := range subs {
		if len(s.Events) > 0 && s.Events[0].ID == "poison-0" {
			return nil, errors.New("invalid byte sequence")
		}
	}
	return res, err
}

// A submission that fails its group's transaction fails alone: the others
// of the group are committed on their own. A store that is unavailable
// fails the whole group at once, without a retry per caller.
func TestCommitterIsolatesAFailingSubmission(t *testing.T) {
	app := &poisonAppender{gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}}
	var commits atomic.Int32
	c := New(app, Options{OnCommit: func() { commits.Add(1) }}, nil, nil)
	c.Start()
	defer c.Stop()

	go func() { _, _ = c.Submit(context.Background(), sub("first", 1)) }()
	<-app.entered // the first transaction holds the committer

	names := []string{"a", "poison", "b"}
	errs := make([]error, len(names))
	results := make([]store.AppendResult, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Submit(context.Background(), sub(name, 1))
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.queue) < len(names) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(app.gate)
	wg.Wait()
	for i, name := range names {
		switch {
		case name == "poison" && errs[i] == nil:
			t.Errorf("the failing submission succeeded")
		case name != "poison" && (errs[i] != nil || len(results[i].Events) != 1 || results[i].Events[0].ID != name+"-0"):
			t.Errorf("%s: %+v, %v; want it stored despite its neighbour", name, results[i], errs[i])
		}
	}
	if b := app.batches(); len(b) != 2+len(names) {
		t.Errorf("%d transactions, want the first, the failed group, and one per submission", len(b))
	}
}

func TestCommitterUnavailableFailsTheGroup(t *testing.T) {
	app := &gateAppender{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	c := New(app, Options{}, nil, nil)
	c.Start()
	defer c.Stop()
	go func() { _, _ = c.Submit(context.Background(), sub("first", 1)) }()
	<-app.entered
	app.mu.Lock()
	app.err = fmt.Errorf("disk full: %w", store.ErrUnavailable)
	app.mu.Unlock()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(context.Background(), sub(fmt.Sprint("s", i), 1)); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Submit = %v, want the store's error", err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.queue) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(app.gate)
	wg.Wait()
	if b := app.batches(); len(b) != 2 {
		t.Errorf("%d transactions, want 2 (no retry per caller while the store is unavailable)", len(b))
	}
}

// lagIndexer is a countingIndexer that reports a search lag.
type lagIndexer struct {
	countingIndexer
	lag store.SearchLag
	err error
}

func (x *lagIndexer) SearchLag(context.Context) (store.SearchLag, error) { return x.lag, x.err }

// The search lag is on /metrics when the store reports it: events and the
// age of the oldest; a store that cannot answer leaves both out of the
// scrape rather than failing it.
func TestIndexerExportsSearchLag(t *testing.T) {
	now := testclock.Now(t)
	gauges := func(reg *prometheus.Registry) map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("Gather: %v", err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "trail_search_lag_") {
				out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		lag  store.SearchLag
		err  error
		want map[string]float64
	}{
		{"fresh", store.SearchLag{}, nil, map[string]float64{"trail_search_lag_events": 0, "trail_search_lag_seconds": 0}},
		{"behind", store.SearchLag{Events: 1200, Oldest: now.Add(-1500 * time.Millisecond)}, nil,
			map[string]float64{"trail_search_lag_events": 1200, "trail_search_lag_seconds": 1.5}},
		{"unavailable", store.SearchLag{}, errors.New("database is locked"), map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			ix := &lagIndexer{lag: tc.lag, err: tc.err}
			x := NewIndexer(ix, IndexerOptions{}, nil, reg)
			x.lag.now = func() time.Time { return now }
			if got := gauges(reg); !maps.Equal(got, tc.want) {
				t.Errorf("gauges %v, want %v", got, tc.want)
			}
		})
	}
	// A store that does not report it exports nothing of it.
	reg := prometheus.NewRegistry()
	NewIndexer(&countingIndexer{}, IndexerOptions{}, nil, reg)
	if got := gauges(reg); len(got) != 0 {
		t.Errorf("gauges %v without a lag reporter", got)
	}
}
