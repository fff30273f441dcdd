// Package diskguard keeps the embedded deployment's disk from filling to the
// last byte while Trail still owes work on what it acknowledged.
//
// An acknowledged event must still be integrated into the Merkle tree and
// covered by a signed checkpoint within about a second (docs/DESIGN.md §3), and
// that takes a little disk: the checkpoint row, the integrator's state file.
// If ingest may use every free byte, a full disk leaves acknowledged events
// uncovered until an operator frees space — and freed space is taken again
// at once by the database's own checkpoints (docs/FAULTS.md).
//
// So the guard holds a reserve file in the data directory. When free space
// runs low (or a write fails for lack of it) it deletes the reserve, which
// gives the integrator room to finish, and reports the disk as short:
// ingest is refused (503 with Retry-After) and the search indexer waits.
// When enough space has returned for the reserve and a margin, it writes the
// reserve again and ingest resumes by itself.
package diskguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Debts reports space the data directory's databases have already
// promised: the bytes by which their own WAL checkpoints will still grow
// their files. It is space in use as far as the guard is concerned: were
// ingest to take it, a checkpoint could not complete, the WAL could not
// start over, and nothing else could be written (docs/FAULTS.md).
type Debts interface {
	CheckpointDebt(ctx context.Context) (int64, error)
}

// ReserveFile is the reserve's name in the data directory.
const ReserveFile = "disk-reserve"

// Options tune a Guard. Zero values take the defaults.
type Options struct {
	// Reserve is the size of the reserve file (default 8 MiB): room for
	// many integrator passes and checkpoints.
	Reserve int64
	// Low is the free space below which the guard releases the reserve
	// and refuses ingest (default Reserve/2). Ingest writes at most a few
	// MiB between two polls.
	Low int64
	// Resume is the free space needed, beyond the reserve itself, to
	// resume ingest (default Reserve).
	Resume int64
	// Interval is how often free space is read (default 100 ms: one
	// statfs call).
	Interval time.Duration
	// FreeBytes reports the space available to this process on the data
	// directory's filesystem; default statfs's Bavail × Bsize.
	FreeBytes func(dir string) (int64, error)
	// Debts, when set, is subtracted from free space at every poll.
	Debts Debts
}

// Guard watches one data directory. Its methods are safe for concurrent use.
type Guard struct {
	dir    string
	opts   Options
	logger *slog.Logger
	short  atomic.Bool
	free   atomic.Int64 // at the last poll; -1 before the first
	owed   atomic.Int64 // Debts at the last poll
	// debtFailing is set while Debts fails (Run's goroutine only), so
	// that the warning is logged once, not at every poll.
	debtFailing bool
	trip        chan struct{}

	mu      sync.Mutex
	waiters chan struct{} // closed when the disk stops being short
}

// New returns a guard for dir; Run starts it.
func New(dir string, opts Options, logger *slog.Logger) *Guard {
	if opts.Reserve <= 0 {
		opts.Reserve = 8 << 20
	}
	if opts.Low <= 0 {
		opts.Low = opts.Reserve / 2
	}
	if opts.Resume <= 0 {
		opts.Resume = opts.Reserve
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.FreeBytes == nil {
		opts.FreeBytes = statfsFree
	}
	g := &Guard{dir: dir, opts: opts, logger: logger, trip: make(chan struct{}, 1), waiters: make(chan struct{})}
	g.free.Store(-1)
	return g
}

// Collectors returns the guard's Prometheus gauges: trail_disk_guard_short
// (1 while ingest is refused for lack of disk) and
// trail_disk_guard_free_bytes (free space at the last poll) and
// trail_disk_guard_owed_bytes (what checkpoints still need of it).
func (g *Guard) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_disk_guard_short",
			Help: "1 while the data directory's disk is short and ingest is refused (503) until space is freed, else 0."},
			func() float64 {
				if g.short.Load() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_disk_guard_free_bytes",
			Help: "Free space on the data directory's disk at the disk guard's last poll (bytes; -1 before the first)."},
			func() float64 { return float64(g.free.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_disk_guard_owed_bytes",
			Help: "Bytes the databases' WAL checkpoints will still add to their files, counted as used by the disk guard (at its last poll)."},
			func() float64 { return float64(g.owed.Load()) }),
	}
}

// ErrShort is returned (wrapped) by Check while the disk is short.
var ErrShort = errors.New("the data directory's disk is nearly full")

// Check returns nil when ingest may proceed, else an error wrapping
// ErrShort that says what to do.
func (g *Guard) Check() error {
	if !g.short.Load() {
		return nil
	}
	return fmt.Errorf("%w: Trail stopped accepting events to finish signing the ones it acknowledged; it resumes by itself once %d MiB are free on %s",
		ErrShort, (g.opts.Reserve+g.opts.Resume)>>20, g.dir)
}

// Short reports whether the disk is short now.
func (g *Guard) Short() bool { return g.short.Load() }

// Trip tells the guard that a write just failed for lack of space, so that
// it acts at once rather than at its next poll.
func (g *Guard) Trip() {
	select {
	case g.trip <- struct{}{}:
	default:
	}
}

// WaitRoom blocks while the disk is short, until ctx ends.
func (g *Guard) WaitRoom(ctx context.Context) error {
	for g.short.Load() {
		g.mu.Lock()
		ch := g.waiters
		g.mu.Unlock()
		if !g.short.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Run places the reserve and watches free space until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	if err := g.placeReserve(); err != nil {
		g.setShort(true)
		g.logger.Error("disk nearly full: couldn't place the disk reserve; refusing ingest until space is free",
			"dir", g.dir, "reserve_mib", g.opts.Reserve>>20, "err", err)
	}
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	for {
		tripped := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.trip:
			tripped = true
		}
		g.poll(ctx, tripped)
	}
}

// poll reads free space, less what checkpoints owe, and trips or resumes.
// The debt counts on both sides: the trip leaves the checkpoints room to
// finish beside the released reserve, and ingest resumes only when space
// beyond them has returned.
func (g *Guard) poll(ctx context.Context, tripped bool) {
	free, err := g.opts.FreeBytes(g.dir)
	if err != nil {
		g.logger.Warn("couldn't read the free space of the data directory's disk", "dir", g.dir, "err", err)
		return
	}
	g.free.Store(free)
	if g.opts.Debts != nil {
		owed, err := g.opts.Debts.CheckpointDebt(ctx)
		if err != nil {
			if ctx.Err() == nil && !g.debtFailing {
				g.logger.Warn("couldn't read what the databases' checkpoints still need; counting the last figure until it can", "dir", g.dir, "err", err)
			}
			owed = g.owed.Load()
		}
		g.debtFailing = err != nil
		g.owed.Store(owed)
		free -= owed
	}
	if !g.short.Load() {
		if !tripped && free >= g.opts.Low {
			return
		}
		released := g.releaseReserve()
		g.setShort(true)
		g.logger.Error("disk nearly full: refusing ingest (503) until space is freed; released the disk reserve so that acknowledged events are still integrated and signed",
			"dir", g.dir, "free_bytes", g.free.Load(), "owed_bytes", g.owed.Load(), "reserve_released", released, "resume_at_free_mib", (g.opts.Reserve+g.opts.Resume)>>20)
		return
	}
	if free < g.opts.Reserve+g.opts.Resume {
		return
	}
	if err := g.placeReserve(); err != nil {
		g.logger.Warn("space returned but the disk reserve couldn't be written; still refusing ingest", "dir", g.dir, "err", err)
		return
	}
	g.setShort(false)
	g.logger.Info("disk space returned: ingest resumes", "dir", g.dir, "free_bytes", g.free.Load(), "owed_bytes", g.owed.Load())
}

func (g *Guard) setShort(short bool) {
	g.short.Store(short)
	if !short {
		g.mu.Lock()
		close(g.waiters)
		g.waiters = make(chan struct{})
		g.mu.Unlock()
	}
}

// placeReserve writes the reserve file at its full size if it is not
// already there, allocating its blocks for real (fallocate, else zeros).
func (g *Guard) placeReserve() error {
	path := filepath.Join(g.dir, ReserveFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() == g.opts.Reserve {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't create the disk reserve: %w", err)
	}
	err = allocate(f, g.opts.Reserve)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("couldn't write the %d MiB disk reserve: %w", g.opts.Reserve>>20, err)
	}
	return nil
}

// releaseReserve deletes the reserve; it reports whether there was one.
func (g *Guard) releaseReserve() bool {
	err := os.Remove(filepath.Join(g.dir, ReserveFile))
	return err == nil
}

func allocate(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.ENOSYS) {
		return err
	}
	// No fallocate on this filesystem: write the zeros.
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return err
		}
	}
	return nil
}

func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
