package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// passAndNotify runs one pass and releases the Idle waiters registered before
// it started if it found nothing to do, and the Flushed ones if it signed
// everything it listed. It reports whether logs still have more waiting
// than one pass takes, and whether anything failed.
func (i *Integrator) passAndNotify(ctx context.Context) (backlog, failed bool) {
	i.mu.Lock()
	waiters, flushers := i.waiters, i.flushers
	i.waiters, i.flushers = nil, nil
	i.mu.Unlock()

	work, backlog, failures, err := i.pass(ctx, len(waiters) > 0 || len(flushers) > 0)
	if perr := i.publishRefusals(ctx, false); perr != nil && err == nil {
		err = perr
	}
	if err != nil && ctx.Err() == nil {
		i.failLog.Error("integration pass failed; will retry", "err", err)
	}
	failed = err != nil || failures > 0
	if failed {
		i.m.passErrors.Inc()
	}
	i.mu.Lock()
	if !work && !failed {
		for _, ch := range waiters {
			close(ch)
		}
	} else {
		i.waiters = append(i.waiters, waiters...)
	}
	// The pass listed every log's size after these were registered and, with
	// no backlog and no failure, signed each up to it.
	if !backlog && !failed {
		for _, ch := range flushers {
			close(ch)
		}
	} else {
		i.flushers = append(i.flushers, flushers...)
	}
	i.mu.Unlock()
	return backlog, failed
}

// pass integrates up to Batch records of every log with records waiting,
// in chunks of at most Batch records in total. A log signed less than
// LogInterval ago with fewer than LogRecords waiting is left for a later
// pass, unless all is true. failures counts the logs that could not be
// integrated (logged, retried); err is a failure of the whole pass.
func (i *Integrator) pass(ctx context.Context, all bool) (work, backlog bool, failures int, err error) {
	if i.opts.Frozen != nil && i.opts.Frozen() {
		return false, false, 0, nil
	}
	start := time.Now()
	logs, err := i.storage.PendingLogs(ctx)
	if err != nil {
		return false, false, 0, fmt.Errorf("couldn't list logs to integrate: %w", err)
	}
	var todo []LogState
	var total, worst int64
	deferred := false
	interval := i.logInterval(len(logs))
	for _, st := range logs {
		waiting := st.NextSeq - st.IntegratedSize
		total += waiting
		worst = max(worst, waiting)
		if i.isRefused(st.OrganizationID) {
			continue
		}
		if !all && i.notDue(st, start, interval) {
			deferred = true
			continue
		}
		todo = append(todo, st)
	}
	i.m.unintegrated.Set(float64(total))
	i.m.worstLog.Set(float64(worst))
	i.m.pendingLogs.Set(float64(len(logs)))
	if len(todo) == 0 {
		return deferred, false, 0, nil
	}
	defer func() { i.m.passTime.Observe(time.Since(start).Seconds()) }()
	slices.SortFunc(todo, func(a, b LogState) int { return strings.Compare(a.OrganizationID, b.OrganizationID) })

	batch := int64(i.opts.Batch)
	var chunk []LogState
	var inChunk int64
	flush := func() error {
		n, err := i.integrateChunk(ctx, chunk)
		failures += n
		chunk, inChunk = chunk[:0], 0
		return err
	}
	for _, st := range todo {
		n := min(st.NextSeq-st.IntegratedSize, batch)
		if n < st.NextSeq-st.IntegratedSize {
			backlog = true
		}
		if len(chunk) > 0 && inChunk+n > batch {
			if err := flush(); err != nil {
				return true, backlog, failures, err
			}
		}
		chunk = append(chunk, st)
		inChunk += n
	}
	return true, backlog, failures, flush()
}

// integrateChunk extends, signs and stores the logs of one chunk: one record
// of the heads (HeadStorage, or the state file), then one database transaction (or one per log, if the storage
// cannot batch). A failure of one log is logged, counted and does not stop
// the others; a failure to record the heads stores nothing.
func (i *Integrator) integrateChunk(ctx context.Context, logs []LogState) (failures int, err error) {
	var exts []*extension
	for _, st := range logs {
		ext, err := i.prepare(ctx, st)
		if err != nil {
			if !errors.Is(err, errRefused) {
				failures++
				if ctx.Err() == nil {
					i.failLog.Error("couldn't integrate log; will retry", "org", st.OrganizationID, "err", err)
				}
			}
			continue
		}
		exts = append(exts, ext)
	}
	if len(exts) == 0 {
		return failures, nil
	}
	heads := maps.Clone(i.heads)
	recorded := make([]SignedHead, 0, len(exts))
	for _, e := range exts {
		origin := Origin(i.prefix, e.org)
		heads[origin] = signedHead{Size: e.newSize, Hash: e.root}
		recorded = append(recorded, SignedHead{Origin: origin, Size: e.newSize, Hash: e.root})
	}
	// The checkpoints are recorded as signed before any reaches the
	// database's log: in the database (its own committed transaction),
	// which outlives any one replica, and in this replica's state file,
	// which outlives the database being restored from an older copy (a
	// record inside the database is restored with it). If the process dies
	// after these writes and before a commit below, the next start finds
	// the record ahead of the log and integrates up to the recorded size
	// again, checking that the root it computes is the one signed.
	if i.opts.Heads != nil {
		if err := i.opts.Heads.RecordSignedHeads(ctx, recorded); err != nil {
			return failures + len(exts), fmt.Errorf("couldn't record the checkpoints about to be signed, so none were stored: %w", err)
		}
	}
	if err := writeStateFile(i.statePath, heads); err != nil {
		return failures + len(exts), fmt.Errorf("couldn't record the checkpoints about to be signed, so none were stored: %w", err)
	}
	i.heads = heads
	// If the process dies right after a commit below, the file and the
	// database agree on the new checkpoints.
	errs := i.store(ctx, exts)
	var logged error
	for k, e := range exts {
		if err := errs[k]; err != nil {
			delete(i.edges, e.org)
			failures++
			if ctx.Err() != nil {
				return failures, ctx.Err()
			}
			if err == logged {
				continue // one failed transaction for the whole batch: said once
			}
			logged = err
			level := slog.LevelError
			if errors.Is(err, ErrSizeChanged) {
				level = slog.LevelWarn
			}
			i.logger.Log(ctx, level, "couldn't store checkpoint; will retry", "org", e.org, "size", e.newSize, "logs", len(exts), "err", err)
			continue
		}
		i.committed(e)
		// The stored tree now extends every other head of the origin.
		delete(i.also, Origin(i.prefix, e.org))
	}
	return failures, nil
}

// store stores the extensions, in one transaction if the storage can, and
// returns one error per extension.
func (i *Integrator) store(ctx context.Context, exts []*extension) []error {
	errs := make([]error, len(exts))
	if bs, ok := i.storage.(BatchStorage); ok && len(exts) > 1 {
		batch := make([]Integration, len(exts))
		for k, e := range exts {
			batch[k] = Integration{OrganizationID: e.org, OldSize: e.oldSize, NewSize: e.newSize, Tiles: e.tiles, Checkpoint: e.note}
		}
		each, err := bs.IntegrateBatch(ctx, batch)
		if err == nil && len(each) != len(exts) {
			err = fmt.Errorf("storing %d integrations returned %d results", len(exts), len(each))
		}
		for k := range errs {
			if err != nil {
				errs[k] = err
			} else {
				errs[k] = each[k]
			}
		}
		return errs
	}
	for k, e := range exts {
		errs[k] = i.storage.Integrate(ctx, e.org, e.oldSize, e.newSize, e.tiles, e.note)
	}
	return errs
}

// prepare extends one log and signs its checkpoint, or returns an error
// (errRefused when the log is refused).
func (i *Integrator) prepare(ctx context.Context, st LogState) (*extension, error) {
	org := st.OrganizationID
	if err := checkOrganizationID(org); err != nil {
		return nil, i.refuse(org, err.Error()+"; no checkpoint can be signed for it")
	}
	if !i.checked[org] {
		if err := i.check(ctx, st); err != nil {
			return nil, err
		}
	}
	origin := Origin(i.prefix, org)
	heads := i.headsOf(origin)
	target := min(st.NextSeq, st.IntegratedSize+int64(i.opts.Batch))
	for _, head := range heads {
		if head.Size > target && st.NextSeq >= head.Size {
			// A checkpoint of this size was signed but its commit was
			// lost (or outsiders hold it): sign no smaller one now.
			target = head.Size
		}
	}
	for _, head := range heads {
		if head.Size > target {
			return nil, i.refuseMissing(st, head)
		}
	}
	ext, err := extend(ctx, i.storage, org, st.IntegratedSize, target, i.edgeFor(org, st.IntegratedSize))
	if err != nil {
		delete(i.edges, org)
		if errors.Is(err, errGap) {
			return nil, i.refuse(org, fmt.Sprintf("%v: records below the log size %d are not in the database, so its tree cannot be extended. Restore them from a backup.", err, st.NextSeq))
		}
		return nil, err
	}
	// Never sign two inconsistent checkpoints: the new tree must contain
	// the newest one ever signed for this origin (and any outsiders hold).
	for _, head := range heads {
		h, err := tlog.TreeHash(head.Size, ext.reader)
		if err != nil {
			delete(i.edges, org)
			return nil, fmt.Errorf("couldn't compute root of %s at signed size %d: %w", org, head.Size, err)
		}
		if h != head.Hash {
			delete(i.edges, org)
			return nil, i.refuseMismatch(st, head, h)
		}
	}
	note, err := i.signer.Sign(Checkpoint{Origin: origin, Size: target, Hash: ext.root})
	if err != nil {
		return nil, err
	}
	ext.note = note
	return ext, nil
}

// notDue reports whether st's log was signed less than interval before
// now and has fewer than LogRecords records waiting: it can wait for a
// later pass.
func (i *Integrator) notDue(st LogState, now time.Time, interval time.Duration) bool {
	if interval <= 0 || st.NextSeq-st.IntegratedSize >= int64(i.opts.LogRecords) {
		return false
	}
	at, ok := i.signedAt[st.OrganizationID]
	return ok && now.Sub(at) < interval
}

// logInterval is the least time between two checkpoints of a trickling log
// while waiting logs have records waiting: LogInterval, stretched so that
// they are signed at about LogRate checkpoints a second, up to
// MaxLogInterval.
func (i *Integrator) logInterval(waiting int) time.Duration {
	if i.opts.LogInterval <= 0 {
		return 0
	}
	spread := time.Duration(waiting) * time.Second / time.Duration(i.opts.LogRate)
	return max(i.opts.LogInterval, min(spread, i.opts.MaxLogInterval))
}

// edgeFor returns the right-edge cache of org if it is for size, else a new
// empty one (evicting another log's if the cache is full).
func (i *Integrator) edgeFor(org string, size int64) *edgeCache {
	if e, ok := i.edges[org]; ok && e.size == size {
		return e
	}
	delete(i.edges, org)
	for o := range i.edges {
		if len(i.edges) < i.opts.CacheLogs {
			break
		}
		delete(i.edges, o)
	}
	e := &edgeCache{size: size, tiles: map[int]edgeTile{}}
	i.edges[org] = e
	return e
}

// committed updates caches and metrics after e was stored.
func (i *Integrator) committed(e *extension) {
	if edge, ok := i.edges[e.org]; ok && edge.size == e.oldSize {
		for k, data := range e.reader.tiles {
			edge.put(k.L, k.N, data)
		}
		for _, t := range e.tiles {
			edge.put(t.Tile.L, t.Tile.N, t.Data)
		}
		edge.size = e.newSize
	}
	if i.opts.LogInterval > 0 {
		i.signedAt[e.org] = time.Now()
	}
	i.m.leaves.Add(float64(e.newSize - e.oldSize))
	if i.opts.Signed != nil {
		i.opts.Signed(e.org, e.newSize, e.note)
	}
	if !e.firstReceived.IsZero() {
		i.m.lag.Observe(time.Since(e.firstReceived).Seconds())
	}
}
