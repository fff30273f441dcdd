package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/lograte"
)

// ErrStopped is returned by WaitIdle once the integrator has stopped.
var ErrStopped = errors.New("integrator is stopped")

// Options tune the integrator. Zero values take the defaults.
type Options struct {
	// DataDir is where this replica keeps its signed-checkpoints state
	// file (required): the replica's own record, which catches a database
	// restored from an older copy; a file found there at start is copied
	// into Heads.
	DataDir string
	// Heads, when set, is where the newest checkpoint signed for each
	// origin is also recorded (the database), so that a replica with an
	// empty data directory still knows what was signed.
	Heads HeadStorage
	// Held, when set, returns checkpoints that outsiders hold (the
	// replica's record of published checkpoints), read once before the
	// first pass: a log whose stored tree does not extend one of them is
	// refused like one behind a checkpoint signed here. source names
	// them in the refusal. An error is logged and the check skipped (the
	// holder cannot tell).
	Held func(ctx context.Context) (source string, heads []SignedHead, err error)
	// Batch is the most records integrated per log per pass, and per pass
	// in total across logs (default 100,000).
	Batch int
	// Interval is the shortest time between two passes started by Wake,
	// and how often the integrator looks for work unwoken (default 100ms).
	// Each pass signs and stores one checkpoint per log it extends, so
	// Interval bounds how many checkpoints a busy log accumulates.
	Interval time.Duration
	// LogInterval is the shortest time between two checkpoints of one
	// log while it has fewer than LogRecords records waiting: a log that
	// grows by a trickle is signed once per LogInterval instead of once per
	// pass, which bounds the signatures, checkpoint rows and right-edge
	// tile writes per second by the number of logs, however many grow at
	// once. Zero signs every log that grew in every pass. Idle and
	// WaitIdle sign every waiting log at once, whatever the interval.
	LogInterval time.Duration
	// LogRecords is how many waiting records make a log due before
	// LogInterval has passed (default 1,000).
	LogRecords int
	// LogRate is how many checkpoints a second, all logs together, the
	// integrator keeps to when more logs grow at once than LogInterval
	// allows for (default 500): with n logs waiting, a log is signed at
	// most every max(LogInterval, n/LogRate), up to MaxLogInterval. Each
	// checkpoint costs a signature, a row and a rewrite of the log's
	// right-edge tiles however few records it adds, so with a thousand
	// organizations growing by a trickle this, not the records, is the
	// integrator's cost (docs/PERFORMANCE.md).
	LogRate int
	// MaxLogInterval bounds the stretching of LogInterval by LogRate, and
	// with it the wait for a checkpoint under load (default 1.5 ×
	// LogInterval: with the server's 750 ms and its pass every 250 ms,
	// an event's checkpoint is stored within about 1.4 s, under the 2 s
	// its publication may take).
	MaxLogInterval time.Duration
	// CacheLogs is how many logs' right-edge tiles are kept in memory
	// (default 1024); others are re-read from storage when they grow.
	CacheLogs int
	// Signed, when set, is called with each checkpoint once it is stored
	// (from the integrator's goroutine: it must not block; witnesses are
	// asked for cosignatures in the background, see package witness).
	Signed func(org string, size int64, checkpoint []byte)
	// Frozen, when set and reporting true, makes passes sign nothing: the
	// operator froze the log (a suspected key compromise). Records wait,
	// durable, and are integrated once it reports false again.
	Frozen func() bool
}

// Integrator computes the Merkle trees of every organization's log behind
// ingest, and signs and stores a checkpoint for each extension.
//
// It never signs two inconsistent checkpoints for one origin: each new tree
// is built from the stored hashes of the previous one, and before signing it
// checks that the new tree contains the newest checkpoint it ever signed for
// that origin, as recorded in the database (Options.Heads; without it, in
// <DataDir>/signed-checkpoints) before the commit that stores the
// checkpoint. A log whose database state disagrees with that record, with a
// state file left by an older version, or with a checkpoint outsiders hold
// (Options.Held) — a database restored from an old backup, altered tiles —
// is refused: nothing more is signed for it, and Refused says why.
type Integrator struct {
	storage   Storage
	signer    CheckpointSigner
	prefix    string
	opts      Options
	logger    *slog.Logger
	statePath string
	// failLog logs the failures that repeat while the database is out:
	// at most once per 10 s per message, with the count of the others.
	failLog *slog.Logger

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	started  atomic.Bool
	// checked is closed once the startup checks are done: from then on
	// Refusal knows every log the database disagrees with.
	checkedAll chan struct{}

	mu      sync.Mutex
	refused map[string]string // organization → why
	// published holds the refusals recorded in a RefusalStorage; owned
	// by the loop goroutine.
	published map[string]string
	waiters   []chan struct{}
	flushers  []chan struct{} // see Flushed
	stopped   bool

	// Owned by the loop goroutine.
	heads map[string]signedHead // origin → newest signed, as recorded
	// also holds, per origin, heads smaller than or conflicting with
	// heads[origin] that came from other sources (the state file, Held):
	// the tree must extend them too.
	also        map[string][]signedHead
	headsLoaded bool
	seeds       []SignedHead // checked newest checkpoints without a head, to record
	seeded      bool
	checked     map[string]bool // organizations checked against heads and their newest checkpoint
	edges       map[string]*edgeCache
	signedAt    map[string]time.Time // organization → when its last checkpoint was stored (LogInterval)

	m metrics
}

// NewIntegrator returns an integrator for the logs in storage, signing with
// signer under origins "<originPrefix>/<organization id>". Call Start to
// run it. reg may be nil.
func NewIntegrator(storage Storage, signer CheckpointSigner, originPrefix string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Integrator, error) {
	if err := checkOriginPrefix(originPrefix); err != nil {
		return nil, err
	}
	if opts.DataDir == "" {
		return nil, errors.New("ledger: Options.DataDir is required (older versions kept the signed-checkpoints file there)")
	}
	if opts.Batch <= 0 {
		opts.Batch = 100_000
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.CacheLogs <= 0 {
		opts.CacheLogs = 1024
	}
	if opts.LogRecords <= 0 {
		opts.LogRecords = 1000
	}
	if opts.LogRate <= 0 {
		opts.LogRate = 500
	}
	if opts.MaxLogInterval < opts.LogInterval {
		opts.MaxLogInterval = opts.LogInterval * 3 / 2
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	i := &Integrator{
		storage: storage, signer: signer, prefix: originPrefix, opts: opts, logger: logger,
		failLog:    slog.New(lograte.New(logger.Handler(), 10*time.Second, nil)),
		statePath:  filepath.Join(opts.DataDir, StateFile),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		checkedAll: make(chan struct{}),
		refused:    map[string]string{},
		checked:    map[string]bool{},
		edges:      map[string]*edgeCache{},
		also:       map[string][]signedHead{},
		signedAt:   map[string]time.Time{},
	}
	i.m = newMetrics(reg, func() float64 {
		i.mu.Lock()
		defer i.mu.Unlock()
		return float64(len(i.refused))
	})
	return i, nil
}

// Start reads the signed-checkpoints file, if any, and runs the integrator until Stop
// or until ctx ends. Before its first pass it checks every log the file or the
// database has checkpoints for; see Refused.
func (i *Integrator) Start(ctx context.Context) error {
	if i.started.Load() {
		return errors.New("ledger: integrator already started")
	}
	if err := os.MkdirAll(i.opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("couldn't create data directory %s: %w", i.opts.DataDir, err)
	}
	heads, err := readStateFile(i.statePath)
	if err != nil {
		return fmt.Errorf("couldn't load the checkpoints this server signed (fix or restore the file; deleting it gives up the guarantee that Trail never signs two inconsistent checkpoints): %w", err)
	}
	i.heads = heads
	i.started.Store(true)
	go i.run(ctx)
	return nil
}

// Stop ends the loop after the current pass and waits for it. Calling it
// more than once, or without Start, is harmless.
func (i *Integrator) Stop() {
	i.stopOnce.Do(func() { close(i.stop) })
	if i.started.Load() {
		<-i.done
	}
}

// Wake asks for a pass soon (at most Interval after the previous one
// started); it never blocks. The ingest committer calls it after each commit.
func (i *Integrator) Wake() {
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// Idle returns a channel closed once a pass that starts after this call
// finds nothing to integrate (every record committed before the call is then
// covered by a stored checkpoint, except in refused logs), or once the
// integrator stops. It wakes the integrator.
func (i *Integrator) Idle() <-chan struct{} { return i.register(&i.waiters) }

// Flushed returns a channel closed once a pass that starts after this call
// has signed every record committed before the call (except in refused
// logs), or once the integrator stops. Unlike Idle it does not wait for
// the logs to stop growing: on PostgreSQL other replicas may append all
// the while, and a replica that stops only needs its own acknowledged
// events signed. It wakes the integrator.
func (i *Integrator) Flushed() <-chan struct{} { return i.register(&i.flushers) }

// register adds a channel to a list the loop closes (Idle's waiters,
// Flushed's flushers), or returns it closed if the integrator stopped,
// and wakes the integrator.
func (i *Integrator) register(list *[]chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	i.mu.Lock()
	if i.stopped {
		close(ch)
	} else {
		*list = append(*list, ch)
	}
	i.mu.Unlock()
	i.Wake()
	return ch
}

// wait waits for ch; ErrStopped if the integrator stopped first.
func (i *Integrator) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		i.mu.Lock()
		defer i.mu.Unlock()
		if i.stopped {
			return ErrStopped
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitFlushed waits for Flushed. It returns ErrStopped if the integrator
// stopped first, or ctx's error.
func (i *Integrator) WaitFlushed(ctx context.Context) error { return i.wait(ctx, i.Flushed()) }

// WaitIdle waits for Idle. It returns ErrStopped if the integrator stopped
// first, or ctx's error.
func (i *Integrator) WaitIdle(ctx context.Context) error { return i.wait(ctx, i.Idle()) }

// Refused returns the organizations whose logs the integrator refuses to
// extend, each with the reason, for readiness reporting. It is empty when all
// is well.
func (i *Integrator) Refused() map[string]string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return maps.Clone(i.refused)
}

// RefusedError is Admit's answer for an organization whose log the
// integrator refuses to extend.
type RefusedError struct {
	Organization string
	Reason       string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("Trail refuses to sign checkpoints for %s: %s", e.Organization, e.Reason)
}

// ErrChecking is Admit's answer until the startup checks are done.
var ErrChecking = errors.New("the stored logs are still being checked against the checkpoints this server signed")

// Admit reports whether new events for org may be acknowledged: not while
// the startup checks run (ErrChecking), nor for a log the integrator refuses
// (*RefusedError). Events acknowledged into a refused log would take seqs
// its published checkpoint already covers with other events, and restoring
// the newest database, the cure, would throw them away.
func (i *Integrator) Admit(org string) error {
	select {
	case <-i.checkedAll:
	default:
		return ErrChecking
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if why, ok := i.refused[org]; ok {
		return &RefusedError{Organization: org, Reason: why}
	}
	return nil
}

// CheckedC is closed once the startup checks are done.
func (i *Integrator) CheckedC() <-chan struct{} { return i.checkedAll }

// Checked reports whether the startup checks are done.
func (i *Integrator) Checked() bool {
	select {
	case <-i.checkedAll:
		return true
	default:
		return false
	}
}

// Refuse stops the integrator from extending org's log, for a reason found
// outside it: a witness holding a checkpoint of this log that the database
// does not extend (a fork). Refused reports it from then on.
func (i *Integrator) Refuse(org, reason string) {
	i.mu.Lock()
	_, already := i.refused[org]
	i.refused[org] = reason
	i.mu.Unlock()
	if !already {
		i.logger.Error("refusing to sign checkpoints for this organization's log", "org", org, "reason", reason)
	}
}

func (i *Integrator) isRefused(org string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.refused[org]
	return ok
}

func (i *Integrator) run(ctx context.Context) {
	defer close(i.done)
	defer func() {
		i.mu.Lock()
		i.stopped = true
		for _, ch := range i.waiters {
			close(ch)
		}
		i.waiters = nil
		for _, ch := range i.flushers {
			close(ch)
		}
		i.flushers = nil
		i.mu.Unlock()
	}()

	if !i.startupChecks(ctx) {
		return
	}
	close(i.checkedAll)
	ticker := time.NewTicker(i.opts.Interval)
	defer ticker.Stop()
	// After a failure, wait before retrying so that a database outage is
	// not hammered (and logged) every Interval.
	backoff := min(time.Second, 10*i.opts.Interval)
	var lastStart time.Time
	for {
		// Passes run back to back while logs have more than a batch
		// waiting; otherwise one pass per wake-up.
		for {
			if i.stopping(ctx) {
				return
			}
			lastStart = time.Now()
			backlog, failed := i.passAndNotify(ctx)
			if failed {
				if !i.sleep(ctx, backoff) {
					return
				}
				continue
			}
			if !backlog {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-i.stop:
			return
		case <-i.wake:
		case <-ticker.C:
		}
		if !i.sleep(ctx, i.opts.Interval-time.Since(lastStart)) {
			return
		}
	}
}

// sleep waits for d, or returns false if the integrator is stopping.
func (i *Integrator) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return !i.stopping(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-i.stop:
		return false
	case <-t.C:
		return true
	}
}

func (i *Integrator) stopping(ctx context.Context) bool {
	select {
	case <-i.stop:
		return true
	default:
		return ctx.Err() != nil
	}
}
