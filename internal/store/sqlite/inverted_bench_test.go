package sqlite

// An alternative to FTS5 for the search file, measured beside it and not
// used by the product: an inverted index of our own, per organization, from
// each token to a compressed bitmap (roaring) of the seqs of the events
// holding it, persisted as blobs in SQLite and chunked by seq range so that
// a pass rewrites only the newest chunk of each token it touches. Tokens are
// what event_fts holds: the unicode61 twin's tokens of the free text
// (textmatch.go) and the few-valued facet tokens (facets.go). The rest of a
// pass — sort keys, event_search rows with the exact facets, the action list
// and the high-water mark — is the production pass's, so the two differ only
// in FTS5 against bitmaps. docs/PERFORMANCE.md has the figures:
//
//	go test ./internal/store/sqlite -run '^$' -bench 'SearchIndex(Build|Query)' -benchtime 20x
//
// BenchmarkSearchIndexQuery builds (or reuses, with TRAIL_BENCH_DIR) a store
// of TRAIL_BENCH_EVENTS events in one organization (100,000 unless set),
// indexed both ways, and times first pages of each query kind, alternating
// the two indexes query by query.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// invChunkBits: a chunk holds the bitmaps of 2^invChunkBits seqs.
const invChunkBits = 16

const invSchema = `CREATE TABLE IF NOT EXISTS inv_chunks (
    organization_id TEXT NOT NULL,
    chunk           INTEGER NOT NULL,
    token           TEXT NOT NULL,
    bits            BLOB NOT NULL,
    PRIMARY KEY (organization_id, chunk, token)
) WITHOUT ROWID`

type orgChunk struct {
	org   string
	chunk int64
}

// invIndex is the inverted indexer. With cache, it keeps the newest chunk
// of each organization's bitmaps in memory and never reads them back;
// without, a pass reads the stored bitmap of each token it touches.
type invIndex struct {
	cache bool
	held  map[orgChunk]map[string]*roaring.Bitmap
	rows  int // bitmap rows written
}

// heldBytes is what the cache holds: bitmaps and tokens.
func (x *invIndex) heldBytes() int {
	n := 0
	for _, m := range x.held {
		for t, bm := range m {
			n += len(t) + int(bm.GetSizeInBytes()) + 48
		}
	}
	return n
}

// pass is IndexPending with the bitmaps in place of event_fts.
func (x *invIndex) pass(ctx context.Context, s *Store, limit int) (int, error) {
	tx, err := s.searchWrite.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	from, err := indexedPos(ctx, tx)
	if err != nil {
		return 0, err
	}
	pending := s.unindexed.run(from, limit)
	if len(pending) == 0 {
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

	b := indexPass{events: len(pending), newActions: map[[2]string]struct{}{}}
	touched := map[orgChunk]map[string]*roaring.Bitmap{}
	var text, facets, exact []byte
	var z tokenizer
	hasher := newFacetHasher()
	for _, p := range pending {
		rec, err := pendingRecord(&p)
		if err != nil {
			return 0, err
		}
		key, err := keys.allocate(rec.OccurredAt.UnixMilli())
		if err != nil {
			return 0, err
		}
		exact = appendExactOf(hasher, exact[:0], p.org, rec)
		b.search = append(b.search, key, p.org, p.seq, rec.Action, string(exact))
		ak := [2]string{p.org, rec.Action}
		if _, ok := s.indexCache.actions[ak]; !ok {
			if _, ok := b.newActions[ak]; !ok {
				b.newActions[ak] = struct{}{}
				b.actions = append(b.actions, p.org, rec.Action)
			}
		}
		facets, text = ftsEntryInto(hasher, facets, text, p.org, rec, p.mismatch)
		oc := orgChunk{p.org, p.seq >> invChunkBits}
		m := touched[oc]
		if m == nil {
			m = map[string]*roaring.Bitmap{}
			touched[oc] = m
		}
		add := func(tok []byte) {
			bm := m[string(tok)]
			if bm == nil {
				bm = roaring.New()
				m[string(tok)] = bm
			}
			bm.Add(uint32(p.seq))
		}
		z.reset()
		z.add(string(text))
		for i := range z.n() {
			add(z.token(i))
		}
		for f := range bytes.FieldsSeq(facets) {
			add(f)
		}
	}
	if err := insertRows(ctx, tx, `INSERT INTO event_search (sort_key, organization_id, seq, action, exact) VALUES `, 5, rowsPerInsert, b.search); err != nil {
		return 0, err
	}
	if err := insertRows(ctx, tx, `INSERT OR IGNORE INTO organization_actions (organization_id, action) VALUES `, 2, rowsPerInsert, b.actions); err != nil {
		return 0, err
	}
	rows, err := x.merge(ctx, tx, touched)
	if err != nil {
		return 0, err
	}
	if err := insertRows(ctx, tx, `INSERT OR REPLACE INTO inv_chunks (organization_id, chunk, token, bits) VALUES `, 4, rowsPerInsert, rows); err != nil {
		return 0, err
	}
	last := pending[len(pending)-1].pos
	if _, err := tx.ExecContext(ctx, `UPDATE search_state SET indexed_pos = ? WHERE id = 1`, last); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.indexCache.remember(keys.next, b.newActions, last)
	s.noteIndexed(last)
	return len(pending), nil
}

// merge ORs a pass's bitmaps into the stored (or held) newest chunks and
// returns the rows to write.
func (x *invIndex) merge(ctx context.Context, tx *sql.Tx, touched map[orgChunk]map[string]*roaring.Bitmap) ([]any, error) {
	var get *sql.Stmt
	if !x.cache {
		var err error
		if get, err = tx.PrepareContext(ctx, `SELECT bits FROM inv_chunks WHERE organization_id = ? AND chunk = ? AND token = ?`); err != nil {
			return nil, err
		}
		defer get.Close()
	}
	if x.held == nil {
		x.held = map[orgChunk]map[string]*roaring.Bitmap{}
	}
	// Rows go in in key order, as the production pass's do: B-tree
	// inserts then append to pages already dirty instead of touching
	// pages all over the chunk.
	ocs := slices.SortedFunc(maps.Keys(touched), func(a, b orgChunk) int {
		return cmp.Or(strings.Compare(a.org, b.org), cmp.Compare(a.chunk, b.chunk))
	})
	var rows []any
	for _, oc := range ocs {
		m := touched[oc]
		held := x.held[oc]
		if x.cache && held == nil {
			// A new chunk: the organization's older one is complete.
			for k := range x.held {
				if k.org == oc.org && k.chunk < oc.chunk {
					delete(x.held, k)
				}
			}
			held = map[string]*roaring.Bitmap{}
			x.held[oc] = held
		}
		for _, tok := range slices.Sorted(maps.Keys(m)) {
			bm := m[tok]
			if x.cache {
				if old := held[tok]; old != nil {
					old.Or(bm)
					bm = old
				}
				held[tok] = bm
			} else {
				var blob []byte
				switch err := get.QueryRowContext(ctx, oc.org, oc.chunk, tok).Scan(&blob); {
				case errors.Is(err, sql.ErrNoRows):
				case err != nil:
					return nil, err
				default:
					old := roaring.New()
					if _, err := old.FromUnsafeBytes(blob); err != nil {
						return nil, err
					}
					bm.Or(old)
				}
			}
			bm.RunOptimize()
			blob, err := bm.ToBytes()
			if err != nil {
				return nil, err
			}
			rows = append(rows, oc.org, oc.chunk, tok, blob)
			x.rows++
		}
	}
	return rows, nil
}

// invTerm is one term of a query: a token, or every token with a prefix.
type invTerm struct {
	token  string
	prefix bool
}

// firstPage returns the seqs of the newest n events of org holding every
// term, newest first, walking chunks from the newest down.
func invFirstPage(ctx context.Context, db *sql.DB, org string, terms []invTerm, n int) ([]int64, error) {
	var top sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(chunk) FROM inv_chunks WHERE organization_id = ?`, org).Scan(&top); err != nil {
		return nil, err
	}
	var out []int64
	for c := top.Int64; top.Valid && c >= 0 && len(out) < n; c-- {
		var acc *roaring.Bitmap
		for _, t := range terms {
			bm, err := invLoad(ctx, db, org, c, t)
			if err != nil {
				return nil, err
			}
			if acc == nil {
				acc = bm
			} else {
				acc.And(bm)
			}
			if acc.IsEmpty() {
				break
			}
		}
		for it := acc.ReverseIterator(); it.HasNext() && len(out) < n; {
			out = append(out, int64(it.Next()))
		}
	}
	return out, nil
}

func invLoad(ctx context.Context, db *sql.DB, org string, chunk int64, t invTerm) (*roaring.Bitmap, error) {
	bm := roaring.New()
	if !t.prefix {
		var blob []byte
		switch err := db.QueryRowContext(ctx, `SELECT bits FROM inv_chunks WHERE organization_id = ? AND chunk = ? AND token = ?`, org, chunk, t.token).Scan(&blob); {
		case errors.Is(err, sql.ErrNoRows):
			return bm, nil
		case err != nil:
			return nil, err
		}
		_, err := bm.FromBuffer(blob)
		return bm, err
	}
	rows, err := db.QueryContext(ctx, `SELECT bits FROM inv_chunks WHERE organization_id = ? AND chunk = ? AND token >= ? AND token < ?`,
		org, chunk, t.token, t.token+"\U0010FFFF")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var parts []*roaring.Bitmap
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
		p := roaring.New()
		if _, err := p.FromBuffer(blob); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return roaring.FastOr(parts...), nil
}

// processCost is the process's CPU time and bytes handed to write(2).
func processCost(b *testing.B) (cpu time.Duration, written int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if io, err := os.ReadFile("/proc/self/io"); err == nil {
		for line := range strings.Lines(string(io)) {
			if v, ok := strings.CutPrefix(line, "wchar: "); ok {
				written, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return cpu, written
}

// searchFileBytes is the search file's size with its WAL.
func searchFileBytes(s *Store) int64 {
	var n int64
	for _, p := range []string{s.searchPath, s.searchPath + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// BenchmarkSearchIndexBuild indexes b.N×1,000 just-committed events (one
// organization, as in BenchmarkSearchIndexQuery, or benchOrgs) in passes of
// 1,000 and 5,000, with FTS5 (the production pass) or the bitmaps. cpu-µs/ev
// is the process's CPU time over the passes (getrusage), written-B/ev what
// it handed to write(2) (WAL frames and checkpoints), file-B/ev the search
// file with its WAL afterwards, held-MB the bitmaps the cache holds, rows/ev
// the bitmap rows (organization, chunk, token) written.
func BenchmarkSearchIndexBuild(b *testing.B) {
	for _, orgs := range []int{1, benchOrgs} {
		for _, pass := range []int{1000, 5000} {
			for _, kind := range []string{"fts5", "bitmap", "bitmap-cached"} {
				b.Run(fmt.Sprintf("orgs=%d/pass=%d/index=%s", orgs, pass, kind), func(b *testing.B) {
					s := openBench(b)
					ctx := context.Background()
					if _, err := s.searchWrite.ExecContext(ctx, invSchema); err != nil {
						b.Fatal(err)
					}
					s.unindexed.budget = math.MaxInt
					for _, sub := range submissions(b, b.N) {
						if orgs == 1 {
							for k := range sub[0].Events {
								sub[0].Events[k].OrganizationID = benchOrg(0)
							}
						}
						if _, err := s.Append(ctx, sub, time.Now()); err != nil {
							b.Fatalf("Append: %v", err)
						}
					}
					inv := &invIndex{cache: kind == "bitmap-cached"}
					index := func() (int, error) { return s.IndexPending(ctx, pass) }
					if kind != "fts5" {
						index = func() (int, error) { return inv.pass(ctx, s, pass) }
					}
					before := searchFileBytes(s)
					cpu0, w0 := processCost(b)
					b.ResetTimer()
					n := 0
					for {
						k, err := index()
						if err != nil {
							b.Fatalf("index: %v", err)
						}
						if k == 0 {
							break
						}
						n += k
					}
					b.StopTimer()
					cpu1, w1 := processCost(b)
					if n != b.N*benchBatch {
						b.Fatalf("indexed %d events, want %d", n, b.N*benchBatch)
					}
					reportRate(b, n)
					b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "cpu-µs/ev")
					b.ReportMetric(float64(w1-w0)/float64(n), "written-B/ev")
					b.ReportMetric(float64(searchFileBytes(s)-before)/float64(n), "file-B/ev")
					b.ReportMetric(float64(inv.heldBytes())/(1<<20), "held-MB")
					b.ReportMetric(float64(inv.rows)/float64(n), "rows/ev")
				})
			}
		}
	}
}

// openInvQueryBench opens (building when needed) a store of n events of one
// organization, indexed with FTS5 and with the bitmaps.
func openInvQueryBench(b *testing.B) (*Store, int) {
	b.Helper()
	n := 100_000
	if v := os.Getenv("TRAIL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < benchBatch {
			b.Fatalf("TRAIL_BENCH_EVENTS=%q: want a number of events ≥ %d", v, benchBatch)
		}
	}
	dir := os.Getenv("TRAIL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(dir, fmt.Sprintf("inv-%d.db", n)), nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	s.backlogLimit = -1
	if _, err := s.searchWrite.ExecContext(ctx, invSchema); err != nil {
		b.Fatal(err)
	}
	org := benchOrg(0)
	have, err := s.NextSeq(ctx, org)
	if err != nil {
		if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
			b.Fatalf("CreateOrganization: %v", err)
		}
		have = 0
	}
	if int(have) >= n {
		return s, n
	}
	b.Logf("building a store of %d events in %s…", n, dir)
	rng := rand.New(rand.NewPCG(10, 20))
	received := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	inv := &invIndex{cache: true}
	for j := 0; j < n; {
		var sub store.Submission
		for ; j < n && len(sub.Events) < benchBatch; j++ {
			d, err := event.ParseEvent(storetest.Event(rng, j), time.Now(), event.DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			at := received.Add(time.Duration(j) * time.Millisecond)
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(at), ReceivedAt: at, Tail: d.Tail})
		}
		if _, err := s.Append(ctx, []store.Submission{sub}, time.Now()); err != nil {
			b.Fatalf("Append: %v", err)
		}
		if j%50_000 == 0 || j == n {
			// FTS5 first, then the bitmaps of the same events: the
			// second pass finds the high-water mark moved, so it
			// indexes from a copy of the mark.
			from, err := indexedPos(ctx, s.searchRead)
			if err != nil {
				b.Fatal(err)
			}
			if err := invCatchUp(ctx, s, inv, from); err != nil {
				b.Fatal(err)
			}
			b.Logf("%d events", j)
		}
	}
	return s, n
}

// invCatchUp indexes everything after from with FTS5, then adds the same
// events' bitmaps (only inv_chunks: event_search already holds them).
func invCatchUp(ctx context.Context, s *Store, inv *invIndex, from int64) error {
	for {
		k, err := s.IndexPending(ctx, 100_000)
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	for {
		pending, err := s.readPending(ctx, from, 5000)
		if err != nil || len(pending) == 0 {
			return err
		}
		from = pending[len(pending)-1].pos
		touched := map[orgChunk]map[string]*roaring.Bitmap{}
		var text, facets []byte
		var z tokenizer
		hasher := newFacetHasher()
		for _, p := range pending {
			rec, err := pendingRecord(&p)
			if err != nil {
				return err
			}
			facets, text = ftsEntryInto(hasher, facets, text, p.org, rec, p.mismatch)
			oc := orgChunk{p.org, p.seq >> invChunkBits}
			if touched[oc] == nil {
				touched[oc] = map[string]*roaring.Bitmap{}
			}
			z.reset()
			z.add(string(text))
			toks := make([][]byte, 0, z.n()+4)
			for i := range z.n() {
				toks = append(toks, z.token(i))
			}
			toks = append(toks, bytes.Fields(facets)...)
			for _, t := range toks {
				bm := touched[oc][string(t)]
				if bm == nil {
					bm = roaring.New()
					touched[oc][string(t)] = bm
				}
				bm.Add(uint32(p.seq))
			}
		}
		tx, err := s.searchWrite.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		rows, err := inv.merge(ctx, tx, touched)
		if err == nil {
			err = insertRows(ctx, tx, `INSERT OR REPLACE INTO inv_chunks (organization_id, chunk, token, bits) VALUES `, 4, rowsPerInsert, rows)
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			tx.Rollback() //nolint:errcheck // the error is err
			return err
		}
	}
}

// BenchmarkSearchIndexQuery times first pages (50 newest) with FTS5
// (Store.SearchEvents) and with the bitmaps (chunks walked newest first,
// then the page's records read as SearchEvents reads them), one query of
// each in turn, on one organization's events. Each query's values come
// from a stored event picked at random: rare, one of its target ids; common,
// "user" (every event's actor type); prefix, the first three letters of its
// actor's last name; two-words, the actor's first and last name; facet+word,
// its action and the last name.
func BenchmarkSearchIndexQuery(b *testing.B) {
	s, n := openInvQueryBench(b)
	ctx := context.Background()
	org := benchOrg(0)
	rng := rand.New(rand.NewPCG(3, 4))
	sample := func() *event.Record {
		ev, err := s.eventsBySeq(ctx, org, []int64{rng.Int64N(int64(n))})
		if err != nil || len(ev) != 1 {
			b.Fatalf("sample: %v", err)
		}
		d, err := event.ParseRecord(ev[0].Record)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	lower := strings.ToLower
	names := func(d *event.Record) (string, string) {
		first, last, _ := strings.Cut(d.Actor.Name, " ")
		return lower(first), lower(last)
	}
	queries := []struct {
		name string
		make func(d *event.Record) (store.EventQuery, []invTerm)
	}{
		{"rare", func(d *event.Record) (store.EventQuery, []invTerm) {
			id := lower(d.Targets[0].ID)
			return store.EventQuery{Text: id}, []invTerm{{token: id}}
		}},
		{"common", func(*event.Record) (store.EventQuery, []invTerm) {
			return store.EventQuery{Text: "user"}, []invTerm{{token: "user"}}
		}},
		{"prefix", func(d *event.Record) (store.EventQuery, []invTerm) {
			_, last := names(d)
			return store.EventQuery{Text: last[:3] + "*"}, []invTerm{{token: last[:3], prefix: true}}
		}},
		{"two-words", func(d *event.Record) (store.EventQuery, []invTerm) {
			first, last := names(d)
			return store.EventQuery{Text: first + " " + last}, []invTerm{{token: first}, {token: last}}
		}},
		{"facet+word", func(d *event.Record) (store.EventQuery, []invTerm) {
			_, last := names(d)
			return store.EventQuery{Actions: []string{d.Action}, Text: last},
				[]invTerm{{token: facet(facetAction, org, d.Action)}, {token: last}}
		}},
	}
	pct := func(lat []time.Duration, p int) float64 {
		slices.Sort(lat)
		return float64(lat[len(lat)*p/100].Microseconds()) / 1000
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			var fts, inv []time.Duration
			for i := 0; i < b.N; i++ {
				eq, terms := q.make(sample())
				eq.OrganizationID, eq.Limit = org, 50
				start := time.Now()
				page, err := s.SearchEvents(ctx, eq)
				if err != nil {
					b.Fatal(err)
				}
				fts = append(fts, time.Since(start))
				start = time.Now()
				seqs, err := invFirstPage(ctx, s.searchRead, org, terms, 50)
				if err == nil {
					_, err = s.eventsBySeq(ctx, org, seqs)
				}
				if err != nil {
					b.Fatal(err)
				}
				inv = append(inv, time.Since(start))
				if len(seqs) != len(page.Events) {
					b.Fatalf("%s: FTS5 found %d, the bitmaps %d", q.name, len(page.Events), len(seqs))
				}
			}
			b.ReportMetric(pct(fts, 50), "fts5-p50-ms")
			b.ReportMetric(pct(fts, 95), "fts5-p95-ms")
			b.ReportMetric(pct(inv, 50), "bitmap-p50-ms")
			b.ReportMetric(pct(inv, 95), "bitmap-p95-ms")
		})
	}
}

// pendingRecord is the event p holds, parsed from its record unless it
// still has its draft.
func pendingRecord(p *pendingRow) (*event.Record, error) {
	if p.draft != nil {
		return &event.Record{Draft: *p.draft}, nil
	}
	return event.ParseRecord(p.record)
}

// ftsEntryInto is ftsEntry into the buffers given.
func ftsEntryInto(h *facetHasher, facets, text []byte, org string, rec *event.Record, mismatch bool) ([]byte, []byte) {
	e, _ := fieldsOf(&rec.Draft, nil, nil)
	return h.appendFacets(facets[:0], org, &e, mismatch), append(text[:0], e.text...)
}

func appendExactOf(h *facetHasher, dst []byte, org string, rec *event.Record) []byte {
	e, _ := fieldsOf(&rec.Draft, nil, nil)
	return h.appendExact(dst, org, &e)
}
