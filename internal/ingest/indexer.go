package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/store"
)

// IndexerOptions tune the background indexer. Zero values take the defaults.
type IndexerOptions struct {
	// Batch is the most events indexed in one transaction (default 5000).
	// Larger batches amortise index page writes; smaller ones hold the
	// single SQLite writer for less time, which bounds ingest latency.
	Batch int
	// Interval is how often it looks for work without being woken
	// (default 200ms).
	Interval time.Duration
	// Gap is the least time between the starts of two catch-up passes
	// (default 300ms) while passes follow each other (the last two that
	// found work started less than 2×Gap apart). Under a stream of
	// commits each one would wake the indexer for a transaction of a few
	// events; waiting lets one transaction (one FTS5 segment) carry them
	// all, at a bounded cost in freshness (docs/PERFORMANCE.md, "Spacing
	// commits and indexer passes", has the measurements behind 300ms).
	Gap time.Duration
	// Hold, when set, is called before each batch and blocks while
	// indexing must wait (the disk is nearly full: what space is left goes
	// to signing acknowledged events first). It returns ctx's error if ctx
	// ends while waiting.
	Hold func(ctx context.Context) error
}

// Indexer keeps search indexes fresh behind the committer: woken after each
// commit, it indexes until it has caught up.
type Indexer struct {
	ix     store.SearchIndexer
	opts   IndexerOptions
	logger *slog.Logger
	wake   chan struct{}

	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	indexed  prometheus.Counter
	caughtUp chan struct{} // closed and replaced each time a run finds no work (tests wait on it)
	mu       sync.Mutex
	failures int           // consecutive failed runs (the loop's goroutine only)
	lag      *lagCollector // nil unless the store reports its lag and metrics are registered
}

// NewIndexer returns an indexer; call Start to run it.
func NewIndexer(ix store.SearchIndexer, opts IndexerOptions, logger *slog.Logger, reg prometheus.Registerer) *Indexer {
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.Gap <= 0 {
		opts.Gap = 300 * time.Millisecond
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	x := &Indexer{
		ix: ix, opts: opts, logger: logger,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		caughtUp: make(chan struct{}),
		indexed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_search_indexed_events_total", Help: "Events made searchable by the background indexer.",
		}),
	}
	if reg != nil {
		reg.MustRegister(x.indexed)
		if lr, ok := ix.(lagReporter); ok {
			x.lag = &lagCollector{lr: lr, now: time.Now}
			reg.MustRegister(x.lag)
		}
	}
	return x
}

// lagReporter is a search indexer that can say how far behind ingest it is.
type lagReporter interface {
	SearchLag(ctx context.Context) (store.SearchLag, error)
}

// lagCollector exports the indexing lag at each scrape: when events
// arrive faster than they can be indexed for long (batch ingest on two
// cores, beyond about 30,000 events a second), the indexer falls behind,
// and these say by how much. Searches cover the events not indexed yet
// all the same (the store filters them in memory), and past a bounded
// backlog the store refuses ingest until the indexer has caught up.
type lagCollector struct {
	lr  lagReporter
	now func() time.Time
}

var (
	lagEventsDesc = prometheus.NewDesc("trail_search_lag_events",
		"Accepted events not indexed yet (searches cover them from memory).", nil, nil)
	lagSecondsDesc = prometheus.NewDesc("trail_search_lag_seconds",
		"Age of the oldest accepted event not indexed yet (0 when the index is fresh).", nil, nil)
)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEventsDesc
	ch <- lagSecondsDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lag, err := c.lr.SearchLag(ctx)
	if err != nil {
		// Left out of this scrape rather than failing all of /metrics
		// while the database cannot answer.
		return
	}
	age := 0.0
	if !lag.Oldest.IsZero() {
		age = max(c.now().Sub(lag.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(lagEventsDesc, prometheus.GaugeValue, float64(lag.Events))
	ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, age)
}

// Wake asks for an indexing run soon; it never blocks.
func (x *Indexer) Wake() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// CaughtUp returns a channel closed the next time the indexer finds nothing
// left to index.
func (x *Indexer) CaughtUp() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.caughtUp
}

// Start runs the indexer until Stop.
func (x *Indexer) Start(ctx context.Context) {
	ctx, x.cancel = context.WithCancel(ctx)
	go x.run(ctx)
}

// Stop ends the loop after the current transaction and waits for it.
func (x *Indexer) Stop() {
	x.once.Do(func() {
		if x.cancel != nil {
			x.cancel()
		}
	})
	if x.cancel != nil {
		<-x.done
	}
}

func (x *Indexer) run(ctx context.Context) {
	defer close(x.done)
	t := time.NewTicker(x.opts.Interval)
	defer t.Stop()
	var started, before time.Time // starts of the last two passes that found work
	for {
		start := time.Now()
		if x.catchUp(ctx) > 0 {
			before, started = started, start
		}
		select {
		case <-ctx.Done():
			return
		case <-x.wake:
		case <-t.C:
		}
		// Passes are spaced only while they come one after another:
		// after a quiet spell the next commit is indexed at once, so an
		// event sent by hand is searchable as soon as it is answered.
		if before.IsZero() || started.Sub(before) >= 2*x.opts.Gap {
			continue
		}
		if wait := x.opts.Gap - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// catchUp indexes until nothing is pending and reports how many events
// it made searchable.
func (x *Indexer) catchUp(ctx context.Context) (indexed int) {
	for ctx.Err() == nil {
		if x.opts.Hold != nil {
			if err := x.opts.Hold(ctx); err != nil {
				return indexed
			}
		}
		batch := x.opts.Batch >> min(x.failures, 6) // smaller while failing
		n, err := x.ix.IndexPending(ctx, max(batch, 100))
		if err != nil {
			if ctx.Err() != nil {
				return indexed
			}
			// Back off, longer each time: the search index can always
			// catch up later, and while the disk is full every attempt
			// grows its files into space the log and the ledger need more.
			x.failures++
			wait := min(time.Second<<min(x.failures-1, 5), 30*time.Second)
			x.logger.Error("search indexing failed; will retry", "err", err, "retry_in", wait.String())
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			return indexed
		}
		x.failures = 0
		indexed += n
		x.indexed.Add(float64(n))
		if n == 0 {
			x.mu.Lock()
			close(x.caughtUp)
			x.caughtUp = make(chan struct{})
			x.mu.Unlock()
			return indexed
		}
	}
	return indexed
}
