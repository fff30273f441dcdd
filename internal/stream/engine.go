package stream

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/lograte"
	"github.com/trailaudit/trail/internal/store"
)

// Store is what the engine needs from the database: the streams and their
// cursors, and the organizations' records in seq order
// (ledger.Storage.ReadRecords' contract).
type Store interface {
	store.StreamStore
	ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error
}

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	// Poll is how often the engine looks for new events and changed
	// streams without being woken (commits of other replicas); default 1s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (default 1s and 5 min); each failure doubles it, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// SendTimeout bounds one batch's delivery; default 60s.
	SendTimeout time.Duration
	// OnAdvance, when set, is called after a stream's cursor moved to
	// cursor (tests and benchmarks wait on it).
	OnAdvance func(streamID string, cursor int64)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Engine delivers every deliverable stream (active or error) with one
// worker goroutine each. A slow or dead destination holds up only its own
// worker: ingest never waits on delivery, and other streams go on.
type Engine struct {
	st     Store
	codec  *Codec
	opts   Options
	log    *slog.Logger
	wake   chan struct{}
	cycles atomic.Int64
	// delivering is whether the last look found a stream to deliver:
	// without one, Committed need not wake the engine.
	delivering atomic.Bool

	delivered, failures *prometheus.CounterVec // by destination type
	// failLog logs the failures that repeat while the database is out:
	// at most once per 10 s per message, with the count of the others.
	failLog *slog.Logger

	mu        sync.Mutex
	workers   map[string]*worker
	positions map[string]store.StreamPosition
}

// New returns an engine reading streams and records from st and opening
// destinations with codec. Metrics are registered with reg (may be nil).
func New(st Store, codec *Codec, opts Options, logger *slog.Logger, reg prometheus.Registerer) *Engine {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = sendTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{st: st, codec: codec, opts: opts, log: logger, wake: make(chan struct{}, 1),
		workers: map[string]*worker{}, positions: map[string]store.StreamPosition{}}
	e.delivered, e.failures = newDeliveryCounters()
	e.failLog = slog.New(lograte.New(logger.Handler(), 10*time.Second, nil))
	for _, typ := range Types {
		e.delivered.WithLabelValues(typ)
		e.failures.WithLabelValues(typ)
	}
	if reg != nil {
		reg.MustRegister(&collector{e: e})
	}
	return e
}

// Wake makes the engine look for new events now (after a commit, or a
// stream's change). It never blocks.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Committed tells the engine new events were committed. It looks at once
// (Wake) only while it delivers a stream: with none, new events change
// nothing it would see, and a commit every few hundred microseconds would
// otherwise have it read every stream's position up to 50 times a second
// for nothing (docs/PERFORMANCE.md, "The request path's fixed costs").
// A stream created or resumed here calls Wake; one changed on another
// replica is seen at the next poll, as before.
func (e *Engine) Committed() {
	if e.delivering.Load() {
		e.Wake()
	}
}

// wakeGap is the least time between two looks: under load a commit wakes
// the engine hundreds of times a second, and one look per gap serves them
// all.
const wakeGap = 20 * time.Millisecond

// Run delivers until ctx ends, then stops every worker and returns once
// they have stopped. With several replicas, run it on one at a time (the
// caller holds a lease); a brief overlap is safe: cursors advance by
// compare-and-set, so the two resend at most a batch.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		e.mu.Lock()
		for id, w := range e.workers {
			w.cancel()
			delete(e.workers, id)
		}
		// A replica that stops delivering (the lease went to another)
		// reports no streams, so that the fleet's sums count each once.
		clear(e.positions)
		e.delivering.Store(false)
		e.mu.Unlock()
		wg.Wait()
	}()
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		e.sync(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wakeGap):
		}
	}
}

// sync reads every stream's position and starts, pokes or stops workers.
func (e *Engine) sync(ctx context.Context, wg *sync.WaitGroup) {
	e.cycles.Add(1)
	pos, err := e.st.StreamPositions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.failLog.Warn("couldn't read the log streams; retrying", "err", err)
		}
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := make(map[string]store.StreamPosition, len(pos))
	for _, p := range pos {
		seen[p.ID] = p
		w := e.workers[p.ID]
		if w != nil && w.exited() {
			delete(e.workers, p.ID)
			w = nil
		}
		if p.State != store.StreamActive && p.State != store.StreamError {
			if w != nil {
				w.cancel()
				delete(e.workers, p.ID)
			}
			continue
		}
		if w == nil {
			w = e.newWorker(ctx, p)
			e.workers[p.ID] = w
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run()
			}()
		}
		w.observe(p)
	}
	for id, w := range e.workers {
		if _, ok := seen[id]; !ok {
			w.cancel()
			delete(e.workers, id)
		}
	}
	e.positions = seen
	e.delivering.Store(len(e.workers) > 0)
}

// worker delivers one stream.
type worker struct {
	e      *Engine
	id     string
	org    string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	poke   chan struct{}
	log    *slog.Logger

	logSize atomic.Int64
	version atomic.Int64

	// For metrics.
	typ      atomic.Value // string
	cursor   atomic.Int64
	lagSince atomic.Int64 // unix ms of the oldest undelivered event's received_at; 0 when caught up
	state    atomic.Value // string

	arena []byte
	batch []Event
}

func (e *Engine) newWorker(ctx context.Context, p store.StreamPosition) *worker {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{e: e, id: p.ID, org: p.OrganizationID, ctx: wctx, cancel: cancel,
		done: make(chan struct{}), poke: make(chan struct{}, 1),
		log: e.log.With("stream_id", p.ID, "organization_id", p.OrganizationID)}
	w.version.Store(p.Version)
	w.cursor.Store(p.Cursor)
	w.state.Store(p.State)
	w.typ.Store("")
	return w
}

func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// observe tells the worker the stream's latest position and pokes it.
func (w *worker) observe(p store.StreamPosition) {
	oldSize, oldVersion := w.logSize.Swap(p.LogSize), w.version.Swap(p.Version)
	if oldSize == p.LogSize && oldVersion == p.Version {
		return // nothing new: an idle stream is not woken
	}
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

var errBatchFull = errors.New("batch full")

func (w *worker) run() {
	defer close(w.done)
	e := w.e
	var (
		dest     Destination
		loaded   int64 = -1
		cursor   int64
		maxBatch int // 0 = the destination's limit; lowered after a 413
		attempt  int
	)
	defer func() {
		if dest != nil {
			dest.Close()
		}
	}()
	for w.ctx.Err() == nil {
		if dest == nil || w.version.Load() != loaded {
			st, err := e.st.Stream(w.ctx, w.id)
			if errors.Is(err, store.ErrNotFound) {
				return
			}
			if err != nil {
				w.log.Warn("couldn't read the stream; retrying", "err", err)
				attempt++
				w.sleep(e.backoff(attempt), 0)
				continue
			}
			if st.State != store.StreamActive && st.State != store.StreamError {
				return
			}
			if dest != nil {
				dest.Close()
				dest = nil
			}
			w.typ.Store(st.Type)
			settings, err := e.codec.Unseal(st.Type, st.Secrets, st.ID)
			if err == nil {
				dest, err = e.codec.Open(settings)
			}
			if err != nil {
				w.fail(store.StreamInvalid, err)
				return
			}
			loaded, cursor, maxBatch = st.Version, st.Cursor, 0
			w.cursor.Store(cursor)
			w.state.Store(st.State)
		}
		size := w.logSize.Load()
		if cursor >= size {
			w.lagSince.Store(0)
			select {
			case <-w.ctx.Done():
				return
			case <-w.poke:
			}
			continue
		}
		lim := dest.Limits()
		if maxBatch > 0 && maxBatch < lim.MaxEvents {
			lim.MaxEvents = maxBatch
		}
		batch, next, err := w.read(cursor, size, lim)
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			w.log.Warn("couldn't read records to deliver; retrying", "err", err)
			attempt++
			w.sleep(e.backoff(attempt), 0)
			continue
		}
		if len(batch) > 0 {
			w.lagSince.Store(batch[0].ReceivedAt().UnixMilli())
			sctx, cancel := context.WithTimeout(w.ctx, e.opts.SendTimeout)
			err = dest.Send(sctx, batch)
			cancel()
		}
		if err == nil {
			// Delivered. If the process dies before this update is durable,
			// the batch is sent again after the restart (at least once).
			err := e.st.AdvanceStream(context.WithoutCancel(w.ctx), w.id, cursor, next, e.opts.Now())
			switch {
			case err == nil:
				cursor, attempt = next, 0
				w.cursor.Store(cursor)
				e.delivered.WithLabelValues(w.typ.Load().(string)).Add(float64(len(batch)))
				w.state.Store(store.StreamActive)
				if e.opts.OnAdvance != nil {
					e.opts.OnAdvance(w.id, cursor)
				}
			case errors.Is(err, store.ErrNotFound):
				return
			case errors.Is(err, store.ErrConflict):
				// Another deliverer moved the cursor: re-read it.
				w.log.Info("the stream's cursor moved under this deliverer; reloading")
				loaded = -1
			default:
				w.log.Warn("couldn't record the delivery; the batch will be sent again", "err", err)
				attempt++
				w.sleep(e.backoff(attempt), 0)
			}
			continue
		}
		if w.ctx.Err() != nil {
			return
		}
		var f *Failure
		if !errors.As(err, &f) {
			f = &Failure{Err: err}
		}
		e.failures.WithLabelValues(w.typ.Load().(string)).Inc()
		if f.TooLarge && len(batch) > 1 {
			maxBatch = max(1, len(batch)/2)
			w.log.Info("the destination refused the batch's size; sending smaller batches", "events", maxBatch)
			continue
		}
		if f.Permanent {
			w.fail(store.StreamInvalid, err)
			return
		}
		attempt++
		w.fail(store.StreamError, err)
		w.sleep(e.backoff(attempt), f.RetryAfter)
	}
}

// fail records a failed delivery in the store (best effort) and the log.
func (w *worker) fail(state string, err error) {
	// Errors can quote what a destination or a library said: stored and
	// shown to the tenant as one line of printable text.
	msg := Excerpt(err.Error(), 1000)
	w.state.Store(state)
	if state == store.StreamInvalid {
		w.log.Warn("log stream is invalid: the destination refused its configuration; nothing is retried until it is updated or resumed", "err", msg)
	} else {
		w.log.Info("log stream delivery failed; retrying with backoff", "err", msg)
	}
	if serr := w.e.st.SetStreamFailure(context.WithoutCancel(w.ctx), w.id, state, msg, w.e.opts.Now()); serr != nil && !errors.Is(serr, store.ErrNotFound) {
		w.log.Warn("couldn't record the stream's failure", "err", serr)
	}
}

// backoff is the wait before attempt n (1, 2, …): exponential from
// MinBackoff, capped at MaxBackoff, with jitter in [d/2, d).
func (e *Engine) backoff(n int) time.Duration {
	d := e.opts.MinBackoff
	for i := 1; i < n && d < e.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d (at least atLeast), or until the stream's settings change
// (an administrator fixing it is worth trying at once), or ctx ends.
func (w *worker) sleep(d, atLeast time.Duration) {
	d = max(d, atLeast)
	v := w.version.Load()
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			return
		case <-w.poke:
			if w.version.Load() != v {
				return
			}
		}
	}
}

// read returns the records from cursor on (below size) that fit lim, and
// the cursor after them. Missing seqs (removed by retention) are passed
// over.
func (w *worker) read(cursor, size int64, lim Limits) ([]Event, int64, error) {
	end := min(size, cursor+int64(lim.MaxEvents))
	next := end
	w.arena, w.batch = w.arena[:0], w.batch[:0]
	type span struct{ seq, from, to int }
	var spans []span
	err := w.e.st.ReadRecords(w.ctx, w.org, cursor, end, func(seq int64, rec []byte) error {
		if len(spans) > 0 && len(w.arena)+len(rec) > lim.MaxBytes {
			next = seq
			return errBatchFull
		}
		spans = append(spans, span{int(seq - cursor), len(w.arena), len(w.arena) + len(rec)})
		w.arena = append(w.arena, rec...)
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, 0, err
	}
	for _, s := range spans {
		w.batch = append(w.batch, Event{OrganizationID: w.org, Seq: cursor + int64(s.seq), Record: w.arena[s.from:s.to]})
	}
	return w.batch, next, nil
}

// collector exports the fleet's delivery status to Prometheus, aggregated
// by destination type (and state): per-stream series (stream_id ×
// organization_id) grow with the tenants, to tens of thousands of series at
// 10,000 organizations. Each stream's own lag, state and last delivery are
// in the API (GET /v1/organizations/{id}/log_streams), which says which
// stream an aggregate alert is about.
type collector struct{ e *Engine }

var (
	descStreams = prometheus.NewDesc("trail_streams",
		"Log streams known to this process's delivery engine, by destination type and state (active, error, invalid, inactive).", []string{"type", "state"}, nil)
	descLag = prometheus.NewDesc("trail_streams_lag_events",
		"Events accepted but not yet delivered, summed over the active and erroring log streams, by destination type.", []string{"type"}, nil)
	descLagSec = prometheus.NewDesc("trail_streams_lag_seconds_max",
		"Age of the oldest undelivered event of any log stream this process delivers (0 when all are caught up), by destination type.", []string{"type"}, nil)
)

// newDeliveryCounters returns the engine's delivery counters by type.
func newDeliveryCounters() (delivered, failures *prometheus.CounterVec) {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trail_streams_delivered_events_total",
			Help: "Events delivered by this process's log streams, by destination type (repeats after a failure included)."}, []string{"type"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trail_streams_delivery_failures_total",
			Help: "Failed delivery attempts of this process's log streams, by destination type."}, []string{"type"})
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreams, descLag, descLagSec} {
		ch <- d
	}
	c.e.delivered.Describe(ch)
	c.e.failures.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	now := e.opts.Now()
	type key struct{ typ, state string }
	// Every type and state has its series, at 0 when it has no stream, so
	// that alert rules and rate() see them before the first stream.
	counts := map[key]int{}
	lag := map[string]int64{}
	lagSec := map[string]float64{}
	for _, typ := range Types {
		for _, state := range []string{store.StreamActive, store.StreamError, store.StreamInvalid, store.StreamInactive} {
			counts[key{typ, state}] = 0
		}
		lag[typ], lagSec[typ] = 0, 0
	}
	e.mu.Lock()
	for id, p := range e.positions {
		state, cursor := p.State, p.Cursor
		w := e.workers[id]
		if w != nil {
			state, cursor = w.state.Load().(string), max(cursor, w.cursor.Load())
		}
		counts[key{p.Type, state}]++
		if state != store.StreamActive && state != store.StreamError {
			continue
		}
		lag[p.Type] += max(0, p.LogSize-cursor)
		sec := 0.0
		if w != nil {
			if since := w.lagSince.Load(); since > 0 {
				sec = max(0, now.Sub(time.UnixMilli(since)).Seconds())
			}
		}
		lagSec[p.Type] = max(lagSec[p.Type], sec)
	}
	e.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(n), k.typ, k.state)
	}
	for typ, n := range lag {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(n), typ)
		ch <- prometheus.MustNewConstMetric(descLagSec, prometheus.GaugeValue, lagSec[typ], typ)
	}
	e.delivered.Collect(ch)
	e.failures.Collect(ch)
}
