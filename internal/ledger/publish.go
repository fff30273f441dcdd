package ledger

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/storeerr"
)

// Replica is a copy of the database kept elsewhere (package replicate),
// which a PublishGate waits on.
type Replica interface {
	// Sync returns once everything committed to the database before the
	// call is held by the replica.
	Sync(ctx context.Context) error
}

// PublishedLog is one log's newest published checkpoint, and how many of
// its records had been accepted when it was published.
type PublishedLog struct {
	OrganizationID string
	Size           int64
	Checkpoint     []byte
	Accepted       int64
	// AcceptedAt is when Accepted was counted: every record of the log
	// acknowledged before it is among the Accepted.
	AcceptedAt time.Time
}

// GateOptions tune a PublishGate.
type GateOptions struct {
	// Record, when set, is called after the replica holds a round's
	// checkpoints and before they are published, with the newest
	// checkpoint to be published of every log: the replica's own record
	// of publication, so that it is never behind what outsiders hold. An
	// error holds the round back, to be retried.
	Record func(ctx context.Context, logs []PublishedLog) error
	// Published, when set, gets each log's newest checkpoint once it is
	// published (the witness client); it must not block.
	Published func(org string, size int64, checkpoint []byte)
	// Retry is the wait after a failed round (default 1s).
	Retry time.Duration
}

// PublishGate holds back each checkpoint the integrator signs until a
// replica of the database holds the records it covers: a checkpoint is
// published (served, handed to witnesses, put in bundles) only then, so a
// restore from the replica is never behind anything an outsider holds.
//
// The integrator hands it checkpoints through Signed (Options.Signed); the
// API, bundles and witnesses read checkpoints through Storage, which shows
// each log as of its newest published checkpoint. Until the first round
// after startup, when everything stored before is known to be replicated,
// Storage answers storeerr.ErrUnavailable for checkpoints.
type PublishGate struct {
	st     Storage
	rep    Replica
	opts   GateOptions
	logger *slog.Logger

	wake chan struct{}

	mu        sync.Mutex
	ready     bool
	published map[string]PublishedLog // organization → newest published
	pending   []heldCheckpoint
	recorded  map[string]PublishedLog // as last handed to Record

	delay prometheus.Histogram
}

type heldCheckpoint struct {
	org   string
	size  int64
	note  []byte
	since time.Time
}

// NewPublishGate returns a gate publishing the checkpoints stored in st
// once rep holds them. Call Run.
func NewPublishGate(st Storage, rep Replica, opts GateOptions, logger *slog.Logger, reg prometheus.Registerer) *PublishGate {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &PublishGate{st: st, rep: rep, opts: opts, logger: logger, wake: make(chan struct{}, 1),
		published: map[string]PublishedLog{}, recorded: map[string]PublishedLog{}}
	g.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "trail_checkpoint_publication_delay_seconds",
		Help:    "From a checkpoint's commit to its publication, once the replica holds what it covers (the lag replication adds to checkpoints).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60},
	})
	if reg != nil {
		reg.MustRegister(g.delay,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_checkpoints_held",
				Help: "Checkpoints signed but not yet published, waiting for the replica to hold what they cover."},
				func() float64 { g.mu.Lock(); defer g.mu.Unlock(); return float64(len(g.pending)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_checkpoint_held_seconds",
				Help: "How long the oldest checkpoint not yet published has waited for the replica (0 when none waits)."},
				g.oldestHeld))
	}
	return g
}

func (g *PublishGate) oldestHeld() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		return 0
	}
	return time.Since(g.pending[0].since).Seconds()
}

// Signed takes a checkpoint the integrator stored; it is published once
// the replica holds it. It never blocks.
func (g *PublishGate) Signed(org string, size int64, checkpoint []byte) {
	g.mu.Lock()
	g.pending = append(g.pending, heldCheckpoint{org: org, size: size, note: checkpoint, since: time.Now()})
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Run publishes checkpoints until ctx ends. It first takes every log's
// stored checkpoint as held: the replica may not have it yet.
func (g *PublishGate) Run(ctx context.Context) {
	for {
		if err := g.holdStored(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			g.logger.Warn("couldn't read the stored checkpoints; retrying", "err", err)
		}
		if !sleepCtx(ctx, g.opts.Retry) {
			return
		}
	}
	failing := false
	for {
		err := g.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				g.logger.Warn("checkpoints wait for the replica; they are published once it holds what they cover", "err", err)
			}
			failing = true
			if !sleepCtx(ctx, g.opts.Retry) {
				return
			}
			continue
		}
		if failing {
			g.logger.Info("the replica caught up; publishing checkpoints again")
		}
		failing = false
		g.mu.Lock()
		more := len(g.pending) > 0
		g.mu.Unlock()
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// holdStored takes the newest stored checkpoint of every log as held.
func (g *PublishGate) holdStored(ctx context.Context) error {
	logs, err := g.st.IntegratedLogs(ctx)
	if err != nil {
		return fmt.Errorf("couldn't list the integrated logs: %w", err)
	}
	var held []heldCheckpoint
	now := time.Now()
	for _, l := range logs {
		note, err := g.st.Checkpoint(ctx, l.OrganizationID, l.IntegratedSize)
		if err != nil {
			return fmt.Errorf("couldn't read the checkpoint of %s: %w", l.OrganizationID, err)
		}
		held = append(held, heldCheckpoint{org: l.OrganizationID, size: l.IntegratedSize, note: note, since: now})
	}
	g.mu.Lock()
	g.pending = append(held, g.pending...)
	g.mu.Unlock()
	return nil
}

// round publishes the checkpoints held when it starts, once the replica
// holds them and (with Record) the record of publication says so.
func (g *PublishGate) round(ctx context.Context) error {
	g.mu.Lock()
	batch := slices.Clone(g.pending) // Delete below clears what it removes
	ready := g.ready
	g.mu.Unlock()
	if len(batch) == 0 && ready {
		return nil
	}
	if err := g.rep.Sync(ctx); err != nil {
		return fmt.Errorf("the replica does not hold the newest records: %w", err)
	}
	g.mu.Lock()
	next := maps.Clone(g.published)
	g.mu.Unlock()
	newest := map[string]heldCheckpoint{}
	for _, h := range batch {
		if p, ok := next[h.org]; !ok || h.size > p.Size {
			next[h.org] = PublishedLog{OrganizationID: h.org, Size: h.size, Checkpoint: h.note}
			newest[h.org] = h
		}
	}
	if g.opts.Record != nil && len(newest) > 0 {
		if err := g.accepted(ctx, next); err != nil {
			return err
		}
		logs := slices.SortedFunc(maps.Values(next), func(a, b PublishedLog) int {
			return cmp.Compare(a.OrganizationID, b.OrganizationID)
		})
		if err := g.opts.Record(ctx, logs); err != nil {
			return fmt.Errorf("couldn't record the checkpoints to publish with the replica: %w", err)
		}
	}
	now := time.Now()
	g.mu.Lock()
	g.published = next
	g.ready = true
	g.pending = slices.Delete(g.pending, 0, len(batch))
	g.mu.Unlock()
	for _, h := range batch {
		g.delay.Observe(now.Sub(h.since).Seconds())
	}
	if g.opts.Published != nil {
		for _, h := range newest {
			g.opts.Published(h.org, h.size, h.note)
		}
	}
	return nil
}

// accepted fills in how many records each log had accepted, read after
// the replica caught up: a restore holding fewer lost the rest.
func (g *PublishGate) accepted(ctx context.Context, logs map[string]PublishedLog) error {
	// Taken before the reads: a record acknowledged before this instant
	// was committed before it, so the reads below count it.
	at := time.Now()
	for org, p := range logs {
		p.AcceptedAt = at
		logs[org] = p
	}
	for _, list := range []func(context.Context) ([]LogState, error){g.st.IntegratedLogs, g.st.PendingLogs} {
		states, err := list(ctx)
		if err != nil {
			return fmt.Errorf("couldn't read how many records the logs accepted: %w", err)
		}
		for _, s := range states {
			if p, ok := logs[s.OrganizationID]; ok && s.NextSeq > p.Accepted {
				p.Accepted = s.NextSeq
				logs[s.OrganizationID] = p
			}
		}
	}
	return nil
}

// Storage returns st as outsiders may see it: each log as of its newest
// published checkpoint.
func (g *PublishGate) Storage() Storage { return gatedStorage{Storage: g.st, g: g} }

// publishedSize returns org's newest published size; ok is false when
// none was published. Before the first round it fails.
func (g *PublishGate) publishedSize(org string) (size int64, ok bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ready {
		return 0, false, fmt.Errorf("%w: checkpoints are published once the replica holds them (starting up)", storeerr.ErrUnavailable)
	}
	p, ok := g.published[org]
	return p.Size, ok, nil
}

type gatedStorage struct {
	Storage
	g *PublishGate
}

func (s gatedStorage) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	size, ok, err := s.g.publishedSize(org)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no checkpoint of %s was published yet: %w", org, storeerr.ErrNotFound)
	}
	return s.Storage.Checkpoint(ctx, org, size)
}

func (s gatedStorage) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	max, ok, err := s.g.publishedSize(org)
	if err != nil {
		return nil, err
	}
	if !ok || size > max {
		return nil, fmt.Errorf("no checkpoint of size %d of %s was published yet: %w", size, org, storeerr.ErrNotFound)
	}
	return s.Storage.Checkpoint(ctx, org, size)
}

func (s gatedStorage) LogState(ctx context.Context, org string) (LogState, error) {
	st, err := s.Storage.LogState(ctx, org)
	if err != nil {
		return st, err
	}
	return s.cap(st)
}

func (s gatedStorage) IntegratedLogs(ctx context.Context) ([]LogState, error) {
	logs, err := s.Storage.IntegratedLogs(ctx)
	if err != nil {
		return nil, err
	}
	out := logs[:0]
	for _, l := range logs {
		if l, err = s.cap(l); err != nil {
			return nil, err
		}
		if l.IntegratedSize > 0 {
			out = append(out, l)
		}
	}
	return out, nil
}

// cap lowers a log's integrated size to its newest published checkpoint's.
func (s gatedStorage) cap(st LogState) (LogState, error) {
	size, ok, err := s.g.publishedSize(st.OrganizationID)
	if err != nil {
		return st, err
	}
	if !ok {
		size = 0
	}
	st.IntegratedSize = min(st.IntegratedSize, size)
	return st, nil
}
