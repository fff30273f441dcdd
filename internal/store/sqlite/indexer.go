package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/trailaudit/trail/internal/event"
)

// Bits of a sort key below the millisecond: up to 2^21 events of all
// organizations can share one occurred_at millisecond before keys spill into
// the next one.
const slotBits = 21

// indexerCache is what the indexer remembers of the search file between
// passes. It holds, for recently seen occurred_at milliseconds, the next
// sort key free in each, so that a pass does not probe event_search once
// per event. Only IndexPending adds search rows, under mu; deleting rows
// (retention) can only leave a cached key above what a probe would give,
// never below, so the cache stays right.
//
// floor is a millisecond below which the cache may be incomplete: every
// millisecond above it that holds a key in use is in next, so one that is
// not has no key in use and needs no probe either. It starts at the
// millisecond of the highest key in use when the cache starts empty, and
// rises only when the cache forgets its oldest milliseconds. Events that
// arrive out of order by seconds (clients batching, clocks apart) thus
// cost no probe; only one older than everything the cache remembers does.
//
// It also remembers which (organization, action) pairs organization_actions
// holds, so a pass inserts only new ones, and the high-water mark the last
// pass committed: a pass that finds another one (a newer version of Trail
// rebuilt the search file from another process) starts the cache over.
type indexerCache struct {
	mu      sync.Mutex
	next    map[int64]int64
	floor   int64
	known   bool // next, floor, actions and pos describe the search file
	limit   int  // milliseconds held before the oldest half is forgotten
	actions map[[2]string]struct{}
	pos     int64
}

// maxCachedMilliseconds bounds the cache: past it the oldest half goes.
const maxCachedMilliseconds = 1 << 18

// start makes the cache describe a search file whose highest key in use is
// top (valid false: no key in use).
func (c *indexerCache) start(top int64, valid bool, pos int64) {
	c.next, c.known, c.pos = map[int64]int64{}, true, pos
	c.actions = map[[2]string]struct{}{}
	c.floor = math.MinInt64
	if valid {
		c.floor = top >> slotBits
	}
	if c.limit == 0 {
		c.limit = maxCachedMilliseconds
	}
}

// forget drops the cache; the next pass starts it from what is stored.
func (c *indexerCache) forget() { c.next, c.actions, c.known = nil, nil, false }

// lookup returns the next free key of msec if the cache knows it.
func (c *indexerCache) lookup(msec int64) (int64, bool) {
	if k, ok := c.next[msec]; ok {
		return k, true
	}
	if msec > c.floor {
		return msec << slotBits, true
	}
	return 0, false
}

// maxCachedActions bounds the remembered (organization, action) pairs.
const maxCachedActions = 1 << 16

// remember records what a committed pass handed out and inserted, and the
// high-water mark it committed.
func (c *indexerCache) remember(next map[int64]int64, actions map[[2]string]struct{}, pos int64) {
	c.pos = pos
	if len(c.actions)+len(actions) > maxCachedActions {
		c.actions = map[[2]string]struct{}{}
	}
	for a := range actions {
		c.actions[a] = struct{}{}
	}
	for ms, k := range next {
		c.next[ms] = k
	}
	if len(c.next) <= c.limit {
		return
	}
	// Forget the older half; the cache stays complete above the newest
	// millisecond forgotten.
	ms := make([]int64, 0, len(c.next))
	for m := range c.next {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	cut := ms[len(ms)/2]
	for _, m := range ms[:len(ms)/2+1] {
		delete(c.next, m)
	}
	c.floor = max(c.floor, cut)
}

// pendingRow is an event to index.
type pendingRow struct {
	pos      int64
	org      string
	seq      int64
	id       string
	record   []byte
	mismatch bool         // events.schema_mismatch
	draft    *event.Draft // what record encodes, when the event was committed by this process, until hold
	// What the indexer and reads of the tail take of the event, set by
	// hold (held.go; empty if the record does not parse): its index
	// fields, and occurred_at in unix milliseconds.
	held heldFields
	ms   int64
	// The tokens of the search text, made by the first read of the
	// tail that needs them (set by prepare).
	text *lazyTokens
	// Hashes of the action and the actor's id and name, kept beside the
	// row so that a filter rules most rows out without reading their
	// drafts.
	actionHash, actorIDHash, actorNameHash uint32
}

// IndexPending makes up to limit more events searchable, in one
// transaction: the search row with its sort key and exact facets, the
// organization's action list and the full-text entry, then the new
// high-water mark. If the process dies before the commit, the next run
// redoes the same events.
func (s *Store) IndexPending(ctx context.Context, limit int) (int, error) {
	n, err := s.indexPending(ctx, limit)
	if err != nil {
		// Whatever failed, the next pass starts from what is stored.
		s.indexCache.mu.Lock()
		s.indexCache.forget()
		s.indexCache.mu.Unlock()
	}
	return n, err
}

func (s *Store) indexPending(ctx context.Context, limit int) (int, error) {
	tx, err := s.searchWrite.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin index transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	from, err := indexedPos(ctx, tx)
	if err != nil {
		return 0, err
	}
	// Events this process just committed come from memory; others from
	// the main file's read pool: a snapshot that holds every event
	// committed so far, in pos order.
	pending := s.unindexed.run(from, limit)
	if len(pending) == 0 {
		var err error
		if pending, err = s.readPending(ctx, from, limit); err != nil {
			return 0, err
		}
	}
	if len(pending) == 0 {
		return 0, nil
	}

	s.indexCache.mu.Lock()
	defer s.indexCache.mu.Unlock()
	keys, err := s.planKeys(ctx, tx, from)
	if err != nil {
		return 0, err
	}
	defer keys.close()
	rows, err := s.indexRows(pending, keys)
	if err != nil {
		return 0, err
	}
	if err := rows.insert(ctx, tx); err != nil {
		return 0, err
	}
	last := pending[len(pending)-1].pos
	if _, err := tx.ExecContext(ctx, `UPDATE search_state SET indexed_pos = ? WHERE id = 1`, last); err != nil {
		return 0, fmt.Errorf("couldn't advance search high-water mark: %w", classify(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("couldn't commit index of %d events: %w", len(pending), classify(err))
	}
	s.indexCache.remember(keys.next, rows.newActions, last)
	s.noteIndexed(last)
	s.boundSearchWAL(ctx)
	return len(pending), nil
}

// sortKeys hands out the sort keys of one indexing pass. They come from
// the cache of each recent millisecond's next free key; a millisecond not
// in it costs one index probe. What the pass hands out goes into the cache
// only once it commits (indexerCache.remember).
type sortKeys struct {
	ctx    context.Context
	tx     *sql.Tx
	cache  *indexerCache
	logger *slog.Logger
	next   map[int64]int64 // occurred_at millisecond → next free sort key in it
	top    int64           // highest key handed out in this pass
	maxKey *sql.Stmt       // prepared on the first probe
}

// planKeys starts a pass's sort keys in tx, whose high-water mark is from.
// The caller holds s.indexCache.mu until the pass ends.
func (s *Store) planKeys(ctx context.Context, tx *sql.Tx, from int64) (*sortKeys, error) {
	if s.indexCache.known && s.indexCache.pos != from {
		s.logger.Warn("the search file changed under the indexer; starting its caches over", "expected", s.indexCache.pos, "found", from)
		s.indexCache.forget()
	}
	if !s.indexCache.known {
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(sort_key) FROM event_search`).Scan(&top); err != nil {
			return nil, fmt.Errorf("couldn't read the highest sort key: %w", classify(err))
		}
		s.indexCache.start(top.Int64, top.Valid, from)
	}
	return &sortKeys{ctx: ctx, tx: tx, cache: &s.indexCache, logger: s.logger,
		next: map[int64]int64{}, top: math.MinInt64}, nil
}

func (k *sortKeys) close() {
	if k.maxKey != nil {
		k.maxKey.Close()
	}
}

// allocate returns the next sort key of occurred_at millisecond msec.
func (k *sortKeys) allocate(msec int64) (int64, error) {
	key, ok := k.next[msec]
	if !ok {
		key, ok = k.cache.lookup(msec)
	}
	if !ok {
		if k.maxKey == nil {
			var err error
			if k.maxKey, err = k.tx.PrepareContext(k.ctx, `SELECT max(sort_key) FROM event_search WHERE sort_key >= ? AND sort_key < ?`); err != nil {
				return 0, fmt.Errorf("couldn't prepare index statement: %w", err)
			}
		}
		lo := msec << slotBits
		var cur sql.NullInt64
		if err := k.maxKey.QueryRowContext(k.ctx, lo, lo+1<<slotBits).Scan(&cur); err != nil {
			return 0, fmt.Errorf("couldn't allocate sort key: %w", classify(err))
		}
		key = lo
		if cur.Valid {
			key = cur.Int64 + 1
		}
		if k.top >= key && k.top < lo+1<<slotBits {
			key = k.top + 1 // a full millisecond of this pass spilled here
		}
	}
	if key >= (msec+1)<<slotBits {
		// The millisecond is full: take the first key after every key
		// in use from it on, so the order stays total (if approximate).
		var cur sql.NullInt64
		if err := k.tx.QueryRowContext(k.ctx, `SELECT max(sort_key) FROM event_search WHERE sort_key >= ?`, msec<<slotBits).Scan(&cur); err != nil {
			return 0, fmt.Errorf("couldn't allocate sort key: %w", classify(err))
		}
		key = max(key, cur.Int64+1, k.top+1)
		k.logger.Warn("more events share one occurred_at millisecond than sort keys hold; ordering within it is approximate", "millisecond", msec)
	}
	k.next[msec] = key + 1
	if spilled := key >> slotBits; spilled != msec {
		// The key lies in a later millisecond's range: that one's
		// next free key is past it too.
		if n, ok := k.next[spilled]; !ok || n <= key {
			k.next[spilled] = key + 1
		}
	}
	k.top = max(k.top, key)
	return key, nil
}

// indexPass is the rows one indexing pass writes, as INSERT arguments.
type indexPass struct {
	events     int
	search     []any // event_search rows
	actions    []any // organization_actions rows not known yet
	fts        []any // event_fts rows, in key order
	newActions map[[2]string]struct{}
}

// indexRows gathers the rows of the pending events, with sort keys from
// keys.
func (s *Store) indexRows(pending []pendingRow, keys *sortKeys) (indexPass, error) {
	type ftsRow struct {
		key          int64
		facets, text string
	}
	b := indexPass{events: len(pending), search: make([]any, 0, len(pending)*5), newActions: map[[2]string]struct{}{}}
	fts := make([]ftsRow, 0, len(pending))
	var buf, facets, exact []byte
	var targets []targetRef
	hasher := newFacetHasher()
	for i := range pending {
		p := &pending[i]
		if p.held == "" { // read from the table
			if buf = p.hold(buf); p.held == "" {
				// Stored records were produced by event.AppendRecord; one
				// that does not parse means the database was altered
				// outside Trail.
				_, err := event.ParseRecord(p.record)
				return b, fmt.Errorf("couldn't parse stored record %s/%d for indexing: %w", p.org, p.seq, err)
			}
		}
		e := p.held.fields(targets[:0])
		targets = e.targets
		key, err := keys.allocate(p.ms)
		if err != nil {
			return b, err
		}
		exact = hasher.appendExact(exact[:0], p.org, &e)
		b.search = append(b.search, key, p.org, p.seq, e.action, string(exact))
		ak := [2]string{p.org, e.action}
		if _, ok := s.indexCache.actions[ak]; !ok {
			if _, ok := b.newActions[ak]; !ok {
				// A copy: the cache outlives the event's held fields.
				ak[1] = strings.Clone(ak[1])
				b.newActions[ak] = struct{}{}
				b.actions = append(b.actions, p.org, ak[1])
			}
		}
		facets = hasher.appendFacets(facets[:0], p.org, &e, p.mismatch)
		// The text is a part of the event's held fields, not a copy.
		fts = append(fts, ftsRow{key, string(facets), e.text})
	}
	slices.SortFunc(fts, func(a, b ftsRow) int { return cmp.Compare(a.key, b.key) })
	b.fts = make([]any, 0, len(fts)*3)
	for _, r := range fts {
		b.fts = append(b.fts, r.key, r.facets, r.text)
	}
	return b, nil
}

// insert writes the batch in key order with multi-row INSERTs: B-tree and
// FTS5 inserts in ascending key order append to the right edge instead of
// splitting pages all over, and one statement per hundred rows costs far
// less than one per row.
func (b indexPass) insert(ctx context.Context, tx *sql.Tx) error {
	for _, ins := range []struct {
		what, head string
		cols, rows int
		args       []any
	}{
		{"events", `INSERT INTO event_search (sort_key, organization_id, seq, action, exact) VALUES `, 5, rowsPerInsert, b.search},
		{"actions", `INSERT OR IGNORE INTO organization_actions (organization_id, action) VALUES `, 2, rowsPerInsert, b.actions},
		// FTS5 writes its buffered tokens out as a new segment at every
		// statement boundary inside a transaction (its savepoint hook), so
		// the text goes in as few statements as SQLite's parameter limit
		// allows: one segment per pass rather than one per 200 events,
		// and far less merging afterwards.
		{"text", `INSERT INTO event_fts (rowid, facets, body) VALUES `, 3, maxParams / 3, b.fts},
	} {
		if err := insertRows(ctx, tx, ins.head, ins.cols, ins.rows, ins.args); err != nil {
			return fmt.Errorf("couldn't index %s of %d events: %w", ins.what, b.events, err)
		}
	}
	return nil
}

// readPending reads up to limit events after position from.
func (s *Store) readPending(ctx context.Context, from int64, limit int) ([]pendingRow, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT pos, organization_id, seq, record, schema_mismatch FROM events WHERE pos > ? ORDER BY pos LIMIT ?`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't read events to index: %w", classify(err))
	}
	defer rows.Close()
	var pending []pendingRow
	for rows.Next() {
		var p pendingRow
		if err := rows.Scan(&p.pos, &p.org, &p.seq, &p.record, &p.mismatch); err != nil {
			return nil, fmt.Errorf("couldn't read event to index: %w", err)
		}
		pending = append(pending, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read events to index: %w", classify(err))
	}
	return pending, nil
}

// maxSearchWAL is how large the search file's WAL may grow before the
// indexer checkpoints it itself.
const maxSearchWAL = 256 << 20

// boundSearchWAL keeps the search file's WAL from growing without end while
// the indexer catches up pass after pass: the background checkpointer
// copies frames, but the WAL only starts over when a writer begins after a
// checkpoint that caught up, which back-to-back passes never leave time
// for. Past maxSearchWAL the indexer, between two passes, checkpoints and
// truncates it (waiting for readers up to the busy timeout); ingest never
// waits on this file.
func (s *Store) boundSearchWAL(ctx context.Context) {
	fi, err := os.Stat(s.searchPath + "-wal")
	if err != nil || fi.Size() < maxSearchWAL {
		return
	}
	var busy, logFrames, done int
	if err := s.searchWrite.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil && ctx.Err() == nil {
		// The pass is committed; the background checkpointer goes on.
		s.logger.Warn("couldn't checkpoint the search file's WAL", "mib", fi.Size()>>20, "err", err)
	}
}

// indexedPos reads the search file's high-water mark: every event at or
// below that pos is indexed. q is the search file's pool or a transaction
// on it.
func indexedPos(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (int64, error) {
	var pos int64
	if err := q.QueryRowContext(ctx, `SELECT indexed_pos FROM search_state WHERE id = 1`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("couldn't read search high-water mark: %w", classify(err))
	}
	return pos, nil
}

// IndexLag reports how many accepted events are not indexed yet.
func (s *Store) IndexLag(ctx context.Context) (int64, error) {
	indexed, err := indexedPos(ctx, s.searchRead)
	if err != nil {
		return 0, err
	}
	var lag int64
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE pos > ?`, indexed).Scan(&lag); err != nil {
		return 0, fmt.Errorf("couldn't measure index lag: %w", classify(err))
	}
	return lag, nil
}

// rowsPerInsert is how many rows one multi-row INSERT carries into a
// B-tree; maxParams is SQLite's limit of parameters in one statement.
const (
	rowsPerInsert = 200
	maxParams     = 32766
)

// insertRows runs head followed by "(?,…),(?,…)…" over args, cols values per
// row, at most perStatement rows per statement.
func insertRows(ctx context.Context, tx *sql.Tx, head string, cols, perStatement int, args []any) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(args) > 0 {
		n := min(len(args)/cols, perStatement)
		chunk := args[:n*cols]
		args = args[n*cols:]
		if n == perStatement {
			if full == nil {
				var err error
				full, err = tx.PrepareContext(ctx, head+strings.TrimSuffix(strings.Repeat(row+",", n), ","))
				if err != nil {
					return classify(err)
				}
			}
			if _, err := full.ExecContext(ctx, chunk...); err != nil {
				return classify(err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, head+strings.TrimSuffix(strings.Repeat(row+",", n), ","), chunk...); err != nil {
			return classify(err)
		}
	}
	return nil
}
