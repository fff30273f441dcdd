// Package lease runs background work on exactly one replica at a time, using
// PostgreSQL session advisory locks: the replica whose database session holds
// the lock does the work; when that session ends — the process exits, is
// killed, or loses its connection — PostgreSQL releases the lock and another
// replica, polling, takes it over within about a second.
//
// A holder cut off from the database notices at its next health check
// (every Options.Check) and stops its work; a new holder waits two check
// intervals before starting, so the two do not overlap unless the old one is
// stalled for longer than that. Work run this way must therefore still be
// safe if they do: for the ledger, the storage's compare-and-set
// (ledger.ErrSizeChanged) keeps two integrators from forking a log.
package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune Run. Zero values take the defaults.
type Options struct {
	// Retry is how often a replica without the lock tries to take it
	// (default 1s): the takeover time after a holder dies.
	Retry time.Duration
	// Check is how often the holder checks that its session, and with it
	// the lock, is still alive (default 1s).
	Check time.Duration
}

// Key maps a lease name to the advisory lock key, so that unrelated work
// takes unrelated locks.
func Key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("trail lease " + name))
	return int64(h.Sum64())
}

// Run calls work whenever this process holds the lease name, with a context
// that ends when the lease is lost or ctx ends, and waits for work to return
// before trying to take the lease again. It returns when ctx ends.
func Run(ctx context.Context, pool *pgxpool.Pool, name string, opts Options, logger *slog.Logger, work func(ctx context.Context)) {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Check <= 0 {
		opts.Check = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key := Key(name)
	for ctx.Err() == nil {
		held, err := hold(ctx, pool, key, opts, logger.With("lease", name), work)
		if err != nil && ctx.Err() == nil {
			logger.Warn("lease lost or not taken; retrying", "lease", name, "err", err)
		}
		if held && ctx.Err() == nil {
			logger.Info("lease released", "lease", name)
		}
		select {
		case <-ctx.Done():
		case <-time.After(opts.Retry):
		}
	}
}

// hold tries once to take the lock; if it gets it, it runs work until the
// session fails or ctx ends. held reports whether the lock was taken.
func hold(ctx context.Context, pool *pgxpool.Pool, key int64, opts Options, logger *slog.Logger, work func(ctx context.Context)) (held bool, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("couldn't get a connection: %w", err)
	}
	// The lock belongs to this session: the connection is never returned
	// to the pool while it might hold it (a pooled connection carrying a
	// lock would hand it to unrelated code).
	defer func() {
		if held {
			conn.Hijack().Close(context.WithoutCancel(ctx))
		} else {
			conn.Release()
		}
	}()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		return false, fmt.Errorf("couldn't try the advisory lock: %w", err)
	}
	if !ok {
		return false, nil
	}
	held = true
	// The previous holder may have lost its session without noticing yet:
	// it finds out at its next check and stops its work. Wait out two
	// check intervals before starting, so the two never run together.
	select {
	case <-ctx.Done():
		return true, nil
	case <-time.After(2 * opts.Check):
	}
	logger.Info("lease taken: this replica now runs the work")

	workCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(workCtx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	t := time.NewTicker(opts.Check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Unlock explicitly so a successor need not wait for the
			// session to close.
			uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer ucancel()
			cancel()
			<-done
			conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key)
			return true, nil
		case <-done:
			return true, errors.New("the work returned while holding the lease")
		case <-t.C:
			cctx, ccancel := context.WithTimeout(ctx, opts.Check*3)
			var still bool
			// A bigint advisory lock shows in pg_locks as classid (high
			// 32 bits), objid (low 32 bits) and objsubid 1.
			err := conn.QueryRow(cctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
				AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
				int64(uint64(key)>>32), int64(uint64(key)&0xffffffff)).Scan(&still)
			ccancel()
			if err != nil {
				return true, fmt.Errorf("lost the session holding the lease: %w", err)
			}
			if !still {
				return true, errors.New("the session no longer holds the lease")
			}
		}
	}
}
