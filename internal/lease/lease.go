// Package lease runs background work on exactly one replica at a time.
//
// A lease is a row of the leases table in PostgreSQL (migration 00011):
// its holder, a fencing token that grows with every change of holder, and
// an expiry on the database's clock. The holder renews it well before it
// expires; a replica takes it only once it has expired (or was released).
// So a holder that dies, stalls (SIGSTOP, a long GC, a full disk) or is cut
// off from the database loses the lease after TTL, however its connection
// fares, and another replica takes over.
//
// A holder stops its work on its own as soon as it cannot show a renewal
// younger than the TTL less a margin, measured on its own clock from before
// it sent the renewal. The database measures the lease from after the
// renewal arrived, so the holder always stops before the lease can expire
// for others: the two never run together unless a clock runs fast by more
// than the margin. Work run this way must still be safe if they do: for the
// ledger, the storage's compare-and-set (ledger.ErrSizeChanged) keeps two
// integrators from forking a log.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/lograte"
)

// Options tune Run. Zero values take the defaults.
type Options struct {
	// TTL is how long a lease lasts unrenewed (default 10s): the longest
	// a dead or stalled holder keeps others from the work.
	TTL time.Duration
	// Renew is how often the holder renews (default TTL/5), and how often
	// a replica without the lease tries to take it.
	Renew time.Duration
	// Holder names this replica in the table, logs and metrics (default
	// host name and process id).
	Holder string
	// Metrics, when set, exports which leases this replica holds.
	Metrics *Metrics
	// Held, when set, is called each time the lease is found held by
	// another replica.
	Held func()
	// Health, when set, records whether this replica's last attempt to
	// take or renew the lease reached the database (readiness).
	Health *Health
}

func (o *Options) defaults() {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Renew <= 0 || o.Renew > o.TTL/3 {
		o.Renew = o.TTL / 5
	}
	if o.Holder == "" {
		o.Holder = DefaultHolder()
	}
}

// DefaultHolder is this process's name as a lease holder: host name and
// process id.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Metrics are the lease gauges of one process.
type Metrics struct {
	held *prometheus.GaugeVec
}

// NewMetrics registers trail_lease_held{lease,holder} with reg: 1 while
// this replica holds the lease, else 0. Summed over a fleet it names the
// holder of each lease, and shows none or two.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trail_lease_held",
		Help: "1 while this replica holds the lease (integrator, streams, retention), else 0.",
	}, []string{"lease", "holder"})}
	if reg != nil {
		reg.MustRegister(m.held)
	}
	return m
}

func (m *Metrics) set(name, holder string, held bool) {
	if m == nil {
		return
	}
	v := 0.0
	if held {
		v = 1
	}
	m.held.WithLabelValues(name, holder).Set(v)
}

// errLost is a renewal that found the lease no longer this holder's.
var errLost = errors.New("the lease is no longer ours")

// Run calls work whenever this process holds the lease name, with a context
// that ends when the lease is lost or ctx ends, and waits for work to return
// before trying to take the lease again. It returns when ctx ends, releasing
// the lease if it holds it.
func Run(ctx context.Context, pool *pgxpool.Pool, name string, opts Options, logger *slog.Logger, work func(ctx context.Context)) {
	opts.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &lease{pool: pool, name: name, opts: opts, logger: logger.With("lease", name, "holder", opts.Holder)}
	l.failLog = slog.New(lograte.New(l.logger.Handler(), 10*time.Second, nil))
	opts.Metrics.set(name, opts.Holder, false)
	for ctx.Err() == nil {
		sent := time.Now()
		token, err := l.take(ctx)
		if ctx.Err() == nil {
			opts.Health.record(name, "couldn't try to take the lease", err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			l.failLog.Warn("couldn't try to take the lease; retrying", "err", err)
		case token > 0:
			l.hold(ctx, token, sent, work)
		case err == nil && opts.Held != nil:
			opts.Held()
		}
		select {
		case <-ctx.Done():
		case <-time.After(opts.Renew):
		}
	}
}

type lease struct {
	pool   *pgxpool.Pool
	name   string
	opts   Options
	logger *slog.Logger
	// failLog logs the failures that repeat while the database is out:
	// at most once per 10 s per message, with the count of the others.
	failLog *slog.Logger
}

// take claims the lease if it is free, expired or already ours, and
// returns its fencing token; 0 when another replica holds it.
func (l *lease) take(ctx context.Context) (int64, error) {
	var token int64
	err := l.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, token, acquired_at, expires_at)
		VALUES ($1, $2, 1, now(), now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET
			holder = EXCLUDED.holder,
			token = leases.token + 1,
			acquired_at = now(),
			expires_at = EXCLUDED.expires_at
		WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder
		RETURNING token`, l.name, l.opts.Holder, l.opts.TTL.Milliseconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't take lease %s: %w", l.name, err)
	}
	return token, nil
}

// renew extends the lease held with token; errLost when it is no longer.
func (l *lease) renew(ctx context.Context, token int64) error {
	tag, err := l.pool.Exec(ctx, `
		UPDATE leases SET expires_at = now() + $4 * interval '1 millisecond'
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now()`,
		l.name, l.opts.Holder, token, l.opts.TTL.Milliseconds())
	if err != nil {
		return fmt.Errorf("couldn't renew lease %s: %w", l.name, err)
	}
	if tag.RowsAffected() == 0 {
		return errLost
	}
	return nil
}

// release gives the lease up at once, so a successor need not wait for it
// to expire.
func (l *lease) release(ctx context.Context, token int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := l.pool.Exec(ctx, `UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND token = $3`,
		l.name, l.opts.Holder, token); err != nil {
		l.logger.Warn("couldn't release the lease; it expires by itself", "err", err)
	}
}

// hold runs work while the lease held with token, taken by a request sent
// at sent, stays renewed.
func (l *lease) hold(ctx context.Context, token int64, sent time.Time, work func(ctx context.Context)) {
	// The holder's deadline: TTL less a margin from before the request
	// that took or last renewed the lease was sent.
	margin := l.opts.TTL / 5
	deadline := sent.Add(l.opts.TTL - margin)
	l.logger.Info("lease taken: this replica now runs the work", "token", token)
	l.opts.Metrics.set(l.name, l.opts.Holder, true)
	defer l.opts.Metrics.set(l.name, l.opts.Holder, false)

	workCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(workCtx)
	}()
	stop := func(why string, err error) {
		cancel()
		<-done
		if ctx.Err() != nil {
			l.release(ctx, token)
			l.logger.Info("lease released")
			return
		}
		l.logger.Warn("lease given up: "+why, "err", err)
		if !errors.Is(err, errLost) {
			l.opts.Health.record(l.name, "lease given up: "+why, err)
		}
	}
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	tick := time.NewTicker(l.opts.Renew)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stop("shutting down", nil)
			return
		case <-done:
			stop("the work returned while holding the lease", nil)
			return
		case <-expire.C:
			// Renewals did not get through in time (the database is
			// unreachable, or this process was stopped): another
			// replica may take the lease at expiry, so stop first.
			stop("no renewal in time", errors.New("lease deadline passed"))
			return
		case <-tick.C:
			sent := time.Now()
			rctx, rcancel := context.WithDeadline(ctx, deadline)
			err := l.renew(rctx, token)
			rcancel()
			if err != nil {
				if ctx.Err() != nil {
					continue // shutting down: the Done case releases
				}
				if errors.Is(err, errLost) {
					stop("another replica holds it", err)
					return
				}
				l.failLog.Warn("couldn't renew the lease; the work stops if it cannot by its deadline", "err", err, "deadline", deadline)
				l.opts.Health.record(l.name, "couldn't renew the lease held by this replica", err)
				continue
			}
			l.opts.Health.record(l.name, "", nil)
			deadline = sent.Add(l.opts.TTL - margin)
			expire.Reset(time.Until(deadline))
		}
	}
}

// Health is what one replica knows of its leases' health: for each lease
// whose last take or renewal failed (the database unreachable, or too slow
// to renew within the deadline), since when and why. Safe for concurrent
// use; a nil *Health records nothing.
type Health struct {
	mu      sync.Mutex
	failing map[string]failure
}

type failure struct {
	since time.Time
	what  string
	err   string
}

// NewHealth returns an empty Health.
func NewHealth() *Health { return &Health{failing: map[string]failure{}} }

func (h *Health) record(name, what string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.failing, name)
		return
	}
	f, ok := h.failing[name]
	if !ok {
		f.since = time.Now()
	}
	f.what, f.err = what, err.Error()
	h.failing[name] = f
}

// Problems names each lease whose last take or renewal failed, with what
// failed, since when and the error: empty while every lease is healthy
// (held here or elsewhere).
func (h *Health) Problems() map[string]string {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]string, len(h.failing))
	for name, f := range h.failing {
		out["lease "+name] = fmt.Sprintf("%s since %s: %s", f.what, f.since.UTC().Format(time.RFC3339), f.err)
	}
	return out
}
