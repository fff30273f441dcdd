package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Read-your-writes. The search file covers the events up to its high-water
// mark (search_state.indexed_pos); the indexer adds the rest a fraction of
// a second later. Every read of the search file therefore also covers the
// tail, the events after the mark, with the same rules in Go:
//
//   - The mark and the search file's rows are read in one snapshot of the
//     search file (one statement, or one read transaction), so an indexer
//     pass committing meanwhile moves no event in or out of what the read
//     sees as indexed.
//   - The tail is every event with pos above that mark up to the log's
//     last position, read after it: an event acknowledged before the read
//     began is in one part or the other, never in both.
//   - The tail comes from unindexedEvents when it holds every position of
//     it (events this process committed), else from the events table, up
//     to the backlog's bound (backlog.go).
//
// Order. Within one occurred_at millisecond the indexer hands out sort keys
// in pos order, so a tail event comes after every indexed event of its
// millisecond and the order of the two parts is total and stable: a
// position is (millisecond, tier, n), where tier 0 is an indexed event
// (n its sort key) and tier 1 a tail event (n its pos). When the indexer
// reaches an event it takes the place it already had; cursors name
// positions, so a walk neither skips nor repeats an event when a pass
// happens between two pages.

// position is a place in the order of search results. Bounds use tier -1:
// before every event of the millisecond.
type position struct {
	ms   int64
	tier int8
	n    int64
}

func comparePositions(a, b position) int {
	return cmp.Or(cmp.Compare(a.ms, b.ms), cmp.Compare(a.tier, b.tier), cmp.Compare(a.n, b.n))
}

func keyPosition(key int64) position { return position{key >> slotBits, 0, key} }

// keyFrom is the least sort key after the exclusive bound p.
func keyFrom(p position) int64 {
	switch p.tier {
	case 0:
		return p.n + 1
	case 1:
		return sortKeyAt(p.ms + 1)
	}
	return sortKeyAt(p.ms)
}

// keyBelow is the sort key the exclusive bound p puts every result below.
func keyBelow(p position) int64 {
	switch p.tier {
	case 0:
		return p.n
	case 1:
		return sortKeyAt(p.ms + 1)
	}
	return sortKeyAt(p.ms)
}

// A tail event's cursor names its millisecond, pos and seq: "u1:ms:pos:seq".
// Once the event is indexed, its seq finds its sort key.
func encodeTailCursor(ms, pos, seq int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "u1:%d:%d:%d", ms, pos, seq))
}

// searchQuerier is the search file's pool or a read transaction on it.
type searchQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// isTailCursor reports whether c is a tail event's cursor.
func isTailCursor(c string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && strings.HasPrefix(string(raw), "u1:")
}

// cursorBound is the exclusive bound a cursor sets in the direction of the
// walk (towards smaller positions when down). A tail event's cursor is read
// in the search transaction tx whose high-water mark is indexed.
func cursorBound(ctx context.Context, tx searchQuerier, org, c string, indexed int64, down bool) (position, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(raw), "u1:") {
		key, err := decodeCursor(c)
		return keyPosition(key), err
	}
	var v [3]int64
	parts := strings.Split(string(raw[3:]), ":")
	if len(parts) != 3 {
		return position{}, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	}
	for i, p := range parts {
		if v[i], err = strconv.ParseInt(p, 10, 64); err != nil || v[i] < 0 || i == 0 && v[i] > maxSortMS {
			return position{}, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
		}
	}
	ms, pos, seq := v[0], v[1], v[2]
	if pos > indexed {
		return position{ms, 1, pos}, nil
	}
	// Indexed since: the bound lies among the organization's sort keys of
	// that millisecond, which are in seq order. Going up, it is after the
	// event (or where it was, if retention removed it); going down, before.
	limit := seq
	if down {
		limit--
	}
	var key sql.NullInt64
	err = tx.QueryRowContext(ctx,
		`SELECT max(sort_key) FROM event_search INDEXED BY event_search_org WHERE organization_id = ? AND sort_key >= ? AND sort_key < ? AND seq <= ?`,
		org, sortKeyAt(ms), sortKeyAt(ms+1), limit).Scan(&key)
	if err != nil {
		return position{}, fmt.Errorf("couldn't find the place of cursor %q: %w", c, classify(err))
	}
	k := sortKeyAt(ms) - 1
	if key.Valid {
		k = key.Int64
	}
	if down {
		return position{ms, 0, k + 1}, nil
	}
	return position{ms, 0, k}, nil
}

// lazyTokens are the tokens of an event's search text and their Bloom
// filter, made once, by the first read that needs them.
type lazyTokens struct {
	once sync.Once
	t    *textTokens
}

type textTokens struct {
	bloom tokenBloom
	z     tokenizer
}

// hold gives p its held fields (held.go) from its draft, parsing its
// record if it has none (a record that does not parse holds none, and its
// reads fail), and drops the draft. buf is scratch, returned for reuse.
func (p *pendingRow) hold(buf []byte) []byte {
	d := p.draft
	if d == nil {
		rec, err := event.ParseRecord(p.record)
		if err != nil {
			return buf
		}
		d = &rec.Draft
	}
	p.held, buf = makeHeldFields(d, buf)
	p.draft = nil
	p.ms = d.OccurredAt.UnixMilli()
	p.actionHash, p.actorIDHash, p.actorNameHash = hash32(d.Action), hash32(d.Actor.ID), hash32(d.Actor.Name)
	return buf
}

// prepare gives p what reads of the tail use: its held fields, and room
// for the tokens of its text.
func (p *pendingRow) prepare(buf []byte) []byte {
	if p.held == "" {
		buf = p.hold(buf)
	}
	if p.text == nil {
		p.text = &lazyTokens{}
	}
	return buf
}

// hash32 is FNV-1a of s.
func hash32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// tokens returns the tokens of p's search text.
func (p *pendingRow) tokens() *textTokens {
	p.text.once.Do(func() {
		t := &textTokens{}
		var none [0]targetRef
		t.z.add(p.held.fields(none[:]).text)
		t.bloom = t.z.bloom()
		p.text.t = t
	})
	return p.text.t
}

func (p *pendingRow) at() position { return position{p.ms, 1, p.pos} }

// scanTail calls fn with the events after the high-water mark indexed, in
// pos order: every event up to position last (read after the mark), maybe
// later ones too, and maybe other organizations' (fn filters). It reads
// them from unindexedEvents when it holds them all, else org's from the
// events table. fn must not keep the slice.
func (s *Store) scanTail(ctx context.Context, org string, indexed, last int64, fn func(rows []pendingRow) error) error {
	if last <= indexed {
		return nil
	}
	var err error
	if s.unindexed.scan(indexed, last, func(rows []pendingRow) { err = fn(rows) }) {
		return err
	}
	if n := last - indexed; n > s.backlogBound() {
		// Not an incomplete answer, nor one that reads and parses a
		// rebuild's worth of records: the caller retries (backlog.go).
		return fmt.Errorf("search is catching up, %d events are not indexed yet: %w", n, store.ErrUnavailable)
	}
	// NOT INDEXED: a walk of pos (the rowid) from the mark, not of org's
	// whole log.
	rows, err := s.read.QueryContext(ctx,
		`SELECT pos, seq, id, record, schema_mismatch FROM events NOT INDEXED WHERE pos > ? AND organization_id = ? ORDER BY pos`, indexed, org)
	if err != nil {
		return fmt.Errorf("couldn't read the events of %s not indexed yet: %w", org, classify(err))
	}
	defer rows.Close()
	var out []pendingRow
	for rows.Next() {
		p := pendingRow{org: org}
		if err := rows.Scan(&p.pos, &p.seq, &p.id, &p.record, &p.mismatch); err != nil {
			return fmt.Errorf("couldn't read an event of %s not indexed yet: %w", org, classify(err))
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("couldn't read the events of %s not indexed yet: %w", org, classify(err))
	}
	var buf []byte
	for i := range out {
		if buf = out[i].prepare(buf); out[i].held == "" {
			_, err := event.ParseRecord(out[i].record)
			return fmt.Errorf("couldn't parse stored record %s/%d: %w", org, out[i].seq, err)
		}
	}
	return fn(out)
}

// orgRows calls fn with each of rows that is org's and has a draft, last
// first when backwards; a row without one (its record did not parse) is an
// error.
func orgRows(rows []pendingRow, org string, fn func(p *pendingRow)) error {
	return orgRowsFrom(rows, org, false, fn)
}

func orgRowsFrom(rows []pendingRow, org string, backwards bool, fn func(p *pendingRow)) error {
	for k := range rows {
		i := k
		if backwards {
			i = len(rows) - 1 - k
		}
		p := &rows[i]
		if p.org != org {
			continue
		}
		if p.held == "" {
			_, err := event.ParseRecord(p.record)
			return fmt.Errorf("couldn't parse stored record %s/%d: %w", org, p.seq, err)
		}
		fn(p)
	}
	return nil
}

// tailFilter is an EventQuery's filter applied in Go to tail events, with
// the index's rules: exact values for every facet, the tokenizer's for
// free text, prefixes as expandPrefixes reads them.
type tailFilter struct {
	lo, hi   *position // exclusive
	actions  []string  // q.Actions
	prefixes []string
	q        *store.EventQuery
	text     *textQuery
	// Hashes of q's actor id and name and of its actions.
	actorID, actorName uint32
	actionHashes       []uint32
}

func newTailFilter(q *store.EventQuery, lo, hi *position, text *textQuery) *tailFilter {
	f := &tailFilter{lo: lo, hi: hi, actions: q.Actions, prefixes: q.ActionPrefixes, q: q, text: text,
		actorID: hash32(q.ActorID), actorName: hash32(q.ActorName)}
	for _, a := range q.Actions {
		f.actionHashes = append(f.actionHashes, hash32(a))
	}
	return f
}

func (f *tailFilter) match(p *pendingRow) bool {
	at := p.at()
	if f.lo != nil && comparePositions(at, *f.lo) <= 0 || f.hi != nil && comparePositions(at, *f.hi) >= 0 {
		return false
	}
	q := f.q
	if q.SchemaMismatch && !p.mismatch ||
		q.ActorID != "" && p.actorIDHash != f.actorID ||
		q.ActorName != "" && p.actorNameHash != f.actorName ||
		len(f.prefixes) == 0 && len(f.actions) > 0 && !slices.Contains(f.actionHashes, p.actionHash) {
		return false // without reading the draft
	}
	var targets [4]targetRef
	r := p.held.fields(targets[:0])
	if len(f.actions)+len(f.prefixes) > 0 && !slices.Contains(f.actions, r.action) && !slices.ContainsFunc(f.prefixes, func(p string) bool { return hasActionPrefix(r.action, p) }) {
		return false
	}
	if q.ActorID != "" && r.actorID != q.ActorID || q.ActorName != "" && r.actorName != q.ActorName {
		return false
	}
	if q.TargetType != "" || q.TargetID != "" {
		if !slices.ContainsFunc(r.targets, func(t targetRef) bool {
			return (q.TargetType == "" || t.typ == q.TargetType) && (q.TargetID == "" || t.id == q.TargetID)
		}) {
			return false
		}
	}
	if f.text == nil {
		return true
	}
	t := p.tokens()
	return f.text.mayMatch(&t.bloom) && f.text.matches(&t.z)
}

// hasActionPrefix is expandPrefixes' test: action >= p AND action < p || U+10FFFF.
func hasActionPrefix(action, p string) bool {
	return action >= p && action < p+"\U0010FFFF"
}

// topTail returns copies of the first n of org's tail events f matches in
// the order of a walk (descending when desc), by a bounded heap: the tail
// is in pos order, not in occurred_at order.
func topTail(rows []pendingRow, org string, f *tailFilter, n int, desc bool) ([]pendingRow, error) {
	// before reports whether a comes first in the walk.
	before := func(a, b *pendingRow) bool {
		c := comparePositions(a.at(), b.at())
		if desc {
			return c > 0
		}
		return c < 0
	}
	// h is a heap whose root is the last in walk order of the best n.
	// Events mostly come in occurred_at order: walking them in the
	// direction of the page fills the heap first with the ones that stay.
	var h []*pendingRow
	err := orgRowsFrom(rows, org, desc, func(e *pendingRow) {
		if len(h) == n && !before(e, h[0]) || !f.match(e) {
			return
		}
		if len(h) < n {
			h = append(h, e)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !before(h[p], h[j]) {
					break
				}
				h[p], h[j] = h[j], h[p]
				j = p
			}
			return
		}
		h[0] = e
		for j := 0; ; {
			l, r, m := 2*j+1, 2*j+2, j
			if l < len(h) && before(h[m], h[l]) {
				m = l
			}
			if r < len(h) && before(h[m], h[r]) {
				m = r
			}
			if m == j {
				break
			}
			h[m], h[j] = h[j], h[m]
			j = m
		}
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(h, func(a, b *pendingRow) int {
		if before(a, b) {
			return -1
		}
		return 1
	})
	out := make([]pendingRow, len(h))
	for i, p := range h {
		out[i] = *p
	}
	return out, nil
}
