// Package ingest owns the write path between the HTTP handlers and the store:
// group commit (many concurrent requests, one durable transaction, each
// request answered only after its batch is durable) and the background search
// indexer that keeps search fresh behind it.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/lograte"
	"github.com/trailaudit/trail/internal/store"
)

var (
	// ErrOverloaded means the intake queue is full: the caller should answer
	// 503 with Retry-After rather than let memory grow without bound.
	ErrOverloaded = errors.New("ingest queue is full")
	// ErrStopped means the committer is shutting down and takes nothing new.
	ErrStopped = errors.New("ingest is stopped")
)

// Appender stores batches durably (store.Store.Append).
type Appender interface {
	Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error)
}

// Options tune the committer. Zero values take the defaults.
type Options struct {
	// MaxBatchEvents bounds one transaction (default 4096 events).
	MaxBatchEvents int
	// QueueSize bounds waiting submissions (default 16384); beyond it
	// Submit fails fast with ErrOverloaded.
	QueueSize int
	// MinInterval is the least time between the starts of two commits
	// (default 1ms; negative for none) while commits carry more than one
	// request (one did in the last 100ms). A request arriving sooner
	// after a commit started waits out the rest of the interval,
	// gathering the requests behind it into the same transaction; a
	// request arriving later, or from a lone client, waits for nothing.
	// Each commit costs a WAL write of every page it touched and an fsync
	// whatever it carries, so fuller commits are cheaper per event
	// (docs/PERFORMANCE.md, "Spacing commits and indexer passes").
	MinInterval time.Duration
	// Concurrency is how many group-commit transactions may be in flight
	// at once, each gathered while the others commit (default 1). A
	// store with one writer (SQLite) gains nothing from more; PostgreSQL
	// runs several on their own connections, but the same load then makes
	// smaller commits, each costing the database its fixed part again
	// (docs/PERFORMANCE.md, "PostgreSQL: more than one commit in
	// flight"). The Appender must be safe for concurrent use, and commits
	// may become durable out of the order they started in: only each
	// organization's own events are ordered, by the store.
	Concurrency int
	// ByOrganization, with Concurrency above 1, gives each transaction
	// in flight its own queue, a submission going to the one of its
	// first event's organization: transactions in flight then lock
	// different organizations' rows, rather than queueing on the same
	// rows, and each queue holds QueueSize/Concurrency submissions.
	ByOrganization bool
	// OnCommit is called after every durable batch (to wake the indexer);
	// with Concurrency above 1, from several goroutines at once.
	OnCommit func()
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

type request struct {
	sub  store.Submission
	done chan outcome
}

type outcome struct {
	res store.AppendResult
	err error
}

// Committer batches concurrent submissions into transactions. While one
// transaction commits (or Options.Concurrency of them), the next batch
// gathers in the queue, so batches grow with load; under concurrent load
// commits also start at least Options.MinInterval apart, so a request arriving right after a commit
// started waits at most that long; a lone client's requests never wait.
type Committer struct {
	app    Appender
	opts   Options
	logger *slog.Logger
	// failLog logs the failures that repeat while the database is out
	// (every batch, every pass, every retry): at most once per 10 s per
	// message, with the count of the others (package lograte).
	failLog *slog.Logger

	mu      sync.RWMutex // guards closed against sends on a closed queue
	closed  bool
	queue   chan *request   // the queue of every worker, or of none with ByOrganization
	lanes   []chan *request // with ByOrganization, each worker's queue
	stopped chan struct{}
	once    sync.Once

	batchEvents  prometheus.Histogram
	commitTime   prometheus.Histogram
	commitErrors prometheus.Counter
}

// New returns a committer; call Start before Submit.
func New(app Appender, opts Options, logger *slog.Logger, reg prometheus.Registerer) *Committer {
	if opts.MinInterval == 0 {
		opts.MinInterval = time.Millisecond
	}
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = 4096
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 16384
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Committer{
		app: app, opts: opts, logger: logger, failLog: slog.New(lograte.New(logger.Handler(), 10*time.Second, nil)),
		queue:   make(chan *request, opts.QueueSize),
		stopped: make(chan struct{}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "trail_ingest_batch_events", Help: "Events per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "trail_ingest_commit_seconds", Help: "Duration of one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_ingest_commit_errors_total", Help: "Group-commit transactions that failed (nothing of them was stored).",
		}),
	}
	if opts.ByOrganization && opts.Concurrency > 1 {
		for range opts.Concurrency {
			c.lanes = append(c.lanes, make(chan *request, max(1, opts.QueueSize/opts.Concurrency)))
		}
	}
	if reg != nil {
		reg.MustRegister(c.batchEvents, c.commitTime, c.commitErrors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "trail_ingest_queue_depth", Help: "Submissions waiting for the next transaction.",
			}, func() float64 { return float64(c.queued()) }))
	}
	return c
}

// Start runs the writer until Stop.
func (c *Committer) Start() {
	go c.run()
}

// Stop refuses new submissions, commits every one already queued, and
// returns when every transaction in flight has finished. Calling it twice
// is harmless.
func (c *Committer) Stop() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.queue)
		for _, l := range c.lanes {
			close(l)
		}
		c.mu.Unlock()
	})
	<-c.stopped
}

// Submit queues s and waits until its batch is durable. If ctx ends first the
// submission may still be stored; the caller just stops waiting.
func (c *Committer) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	r := &request{sub: s, done: make(chan outcome, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return store.AppendResult{}, ErrStopped
	}
	q := c.queue
	if c.lanes != nil {
		q = c.lanes[laneOf(s, len(c.lanes))]
	}
	select {
	case q <- r:
	default:
		c.mu.RUnlock()
		return store.AppendResult{}, ErrOverloaded
	}
	c.mu.RUnlock()
	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		return store.AppendResult{}, fmt.Errorf("waiting for commit: %w", ctx.Err())
	}
}

// sharedMemory is how long after a commit that carried several requests the
// committer keeps spacing commits: under load a commit now and then carries
// a single request, and that alone should not end the spacing.
const sharedMemory = 100 * time.Millisecond

// gathering is what the workers of one queue share: one of them at a time
// gathers a batch (so that idle workers do not split what is queued into
// many small transactions), and the spacing of commits counts the starts
// of all of them. With ByOrganization each worker has a queue and a
// gathering of its own.
type gathering struct {
	sync.Mutex
	lastStart  time.Time
	lastShared time.Time // start of the last commit that carried several requests
}

// queued counts the submissions waiting in the queues.
func (c *Committer) queued() int {
	n := len(c.queue)
	for _, l := range c.lanes {
		n += len(l)
	}
	return n
}

// laneOf is the queue, of n, of s's first event's organization: FNV-1a of
// its id, computed here rather than by hash/fnv so that Submit allocates
// nothing for it.
func laneOf(s store.Submission, n int) int {
	if len(s.Events) == 0 {
		return 0
	}
	h := uint32(2166136261)
	for _, b := range []byte(s.Events[0].OrganizationID) {
		h = (h ^ uint32(b)) * 16777619
	}
	return int(h % uint32(n))
}

func (c *Committer) run() {
	defer close(c.stopped)
	var g gathering
	var wg sync.WaitGroup
	for i := range c.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.lanes != nil {
				c.work(&gathering{}, c.lanes[i])
				return
			}
			c.work(&g, c.queue)
		}()
	}
	// The queue is closed by Stop: each worker commits what it gathered
	// and returns once the queue is drained.
	wg.Wait()
}

// work gathers batches and commits them until the queue is closed and
// drained.
func (c *Committer) work(g *gathering, queue chan *request) {
	batch := make([]*request, 0, 256)
	subs := make([]store.Submission, 0, 256)
	linger := time.NewTimer(0)
	<-linger.C
	for {
		g.Lock()
		r, ok := <-queue
		if !ok {
			g.Unlock()
			return
		}
		batch, subs = append(batch[:0], r), append(subs[:0], r.sub)
		n := len(r.sub.Events)
		var wait <-chan time.Time
		// One client sending requests one after another never has
		// company to wait for: only within sharedMemory of a commit that
		// carried several requests is the next one held back.
		if d := c.opts.MinInterval - time.Since(g.lastStart); d > 0 && time.Since(g.lastShared) < sharedMemory {
			linger.Reset(d)
			wait = linger.C
		}
	gather:
		for n < c.opts.MaxBatchEvents {
			var r *request
			var ok bool
			if wait != nil { // lingering: take what arrives until the timer fires
				select {
				case r, ok = <-queue:
				case <-wait:
					wait = nil
					continue
				}
			} else { // take only what is already queued
				select {
				case r, ok = <-queue:
				default:
					break gather
				}
			}
			if !ok {
				break gather
			}
			batch, subs = append(batch, r), append(subs, r.sub)
			n += len(r.sub.Events)
		}
		if wait != nil && !linger.Stop() {
			<-linger.C
		}
		g.lastStart = time.Now()
		if len(batch) > 1 {
			g.lastShared = g.lastStart
		}
		g.Unlock()
		c.commit(batch, subs, n)
	}
}

func (c *Committer) commit(batch []*request, subs []store.Submission, events int) {
	start := time.Now()
	// Not the requests' contexts: a client that hangs up must not abort
	// the transaction that also carries everyone else's events.
	results, err := c.app.Append(context.Background(), subs, c.opts.Now())
	c.commitTime.Observe(time.Since(start).Seconds())
	c.batchEvents.Observe(float64(events))
	if err != nil {
		c.commitErrors.Inc()
		if errors.Is(err, store.ErrBacklog) {
			// Backpressure, not a failure: it ends as search catches up.
			c.failLog.Warn("ingest refused while search indexing catches up; nothing of the batch was stored", "submissions", len(subs), "events", events, "err", err)
		} else {
			c.failLog.Error("group commit failed; nothing of the batch was stored", "submissions", len(subs), "events", events, "err", err)
		}
		if len(batch) == 1 || errors.Is(err, store.ErrUnavailable) {
			// The store itself is failing (or there is no one else to
			// spare): every caller gets the error.
			for _, r := range batch {
				r.done <- outcome{err: err}
			}
			return
		}
		// Something in the batch failed it, perhaps one caller's event
		// the store cannot hold: commit each submission alone, so that
		// one caller's failure is not everyone's.
		stored := false
		for _, r := range batch {
			res, err := c.app.Append(context.Background(), []store.Submission{r.sub}, c.opts.Now())
			if err != nil {
				c.failLog.Error("commit of one submission failed", "events", len(r.sub.Events), "err", err)
				r.done <- outcome{err: err}
				continue
			}
			stored = true
			r.done <- outcome{res: res[0]}
		}
		if stored && c.opts.OnCommit != nil {
			c.opts.OnCommit()
		}
		return
	}
	for i, r := range batch {
		r.done <- outcome{res: results[i]}
	}
	if c.opts.OnCommit != nil {
		c.opts.OnCommit()
	}
}
