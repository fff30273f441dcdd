package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// maxMergedActions bounds how many exact actions one query merges as ordered
// index ranges; beyond it the query walks the organization's order and
// filters.
const maxMergedActions = 32

// SearchEvents answers one page of a filtered search, with the semantics of
// the SQLite backend.
//
// Results are ordered by (occurred_at, seq). Every filter has a btree index
// (organization_id, X, occurred_at, seq), and the page bounds are
// row-comparison keyset predicates on (occurred_at, seq), so a first page is
// an ordered walk of one index that stops after limit+1 rows, whatever the
// size of the log. Several actions (a prefix expanded) are one such walk
// per action, merged. Free text is a tsvector match, walked or read from the
// GIN index depending on how common the words are (see searchText). A
// target type and id together drive the walk from event_targets; so does
// either alone when nothing but bounds goes with it, and otherwise it is
// checked per event.
func (s *Store) SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	var page store.EventPage
	if matchesNothingStorable(q) {
		return page, nil
	}
	limit := q.PageLimit()
	desc := q.Order != store.OrderAsc
	scanDesc := desc != (q.Before != "")

	var cur *cursor
	if c := q.After + q.Before; c != "" {
		v, err := decodeCursor(c)
		if err != nil {
			return page, err
		}
		cur = &v
	}

	actions, none, err := s.queryActions(ctx, q.OrganizationID, q)
	if err != nil || none {
		return page, err
	}

	tsquery := ""
	if q.Text != "" {
		if tsquery = searchQuery(q.Text); tsquery == "" {
			return page, nil // nothing searchable in the text
		}
	}

	dir := "ASC"
	if scanDesc {
		dir = "DESC"
	}
	p := &plan{n: limit + 1, dir: dir}
	p.org = p.arg(q.OrganizationID)
	if !q.From.IsZero() {
		p.bounds = append(p.bounds, "%[1]s.occurred_at >= "+p.arg(ceilMS(q.From)))
	}
	if !q.To.IsZero() {
		p.bounds = append(p.bounds, "%[1]s.occurred_at < "+p.arg(ceilMS(q.To)))
	}
	if cur != nil {
		op := ">"
		if (q.After != "") == desc { // moving towards smaller keys
			op = "<"
		}
		p.bounds = append(p.bounds, fmt.Sprintf("(%%[1]s.occurred_at, %%[1]s.seq) %s (%s, %s)", op, p.arg(cur.at), p.arg(cur.seq)))
	}
	if q.ActorID != "" {
		p.filters = append(p.filters, "e.actor_id = "+p.arg(q.ActorID))
	}
	if q.ActorName != "" {
		p.filters = append(p.filters, "e.actor_name = "+p.arg(q.ActorName))
	}
	if q.SchemaMismatch {
		// Walks the partial index of mismatches (migration 00003).
		p.filters = append(p.filters, "e.schema_mismatch")
	}
	if tsquery != "" {
		if tenantPrefix(q.Text) {
			// Matched loosely, the index's way, and checked exactly.
			p.recheck = textRecheck("e", p.arg(tsquery))
			tsquery = looseQuery(q.Text)
		}
		p.tsquery, p.text = tsquery, p.arg(tsquery)
		p.textIndex = len(p.args) - 1
	}
	if q.TargetType != "" {
		p.targetType = p.arg(q.TargetType)
	}
	if q.TargetID != "" {
		p.targetID = p.arg(q.TargetID)
	}

	var keys []cursor
	switch {
	case p.targetType != "" && p.targetID != "":
		// Driven by the target: one index range of its events in order.
		p.whereActions(actions)
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, p.byTarget(), p.args)
	case p.text == "" && len(actions) == 0 && len(p.filters) == 0 && (p.targetType != "" || p.targetID != ""):
		// A lone target type or id and nothing else but bounds: its
		// index holds exactly the events asked for, in order.
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, p.byLoneTarget(true), p.args)
	case p.text != "" || p.targetType != "" || p.targetID != "":
		p.whereActions(actions)
		keys, page.Events, err = s.searchChecked(ctx, q.OrganizationID, p)
	case len(actions) > 1 && len(actions) <= maxMergedActions:
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, p.mergedActions(actions), p.args)
	default:
		p.whereActions(actions)
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, p.walk(), p.args)
	}
	if err != nil {
		return page, err
	}

	cursors := make([]string, len(keys))
	for i, k := range keys {
		cursors[i] = k.encode()
	}
	return store.FinishEventPage(page.Events, cursors, limit, q), nil
}

// checkWindow is how many events, in result order, a search with a lone
// target filter checks one by one before it changes plan; textWindow is
// the same for free text (see searchChecked).
var (
	checkWindow = 2000
	textWindow  = 512
)

// textSteps is how many stretches of the log a free-text search reads
// matches from, each sized from the matches found so far, before it reads
// every remaining match (see searchChecked).
var textSteps = 3

// searchChecked runs a search whose free text or lone target type or id
// is checked per event, in up to three steps, because which plan is fast
// depends on how common the match is in this organization, which no
// statistic tells (the planner knows how common a word is overall, not in
// one tenant, and nothing of how often a target goes with the other
// filters):
//
//  1. Walk the other filters' index in result order and check each event,
//     for at most checkWindow (textWindow) events. Matches common enough
//     fill the page here at the cost of the page alone; if the walk ends
//     before the window is full, its answer is exact too.
//  2. For text found in the window but not often enough to fill the page:
//     read the matches of the next stretch of the log, sized from the
//     window's rate of matches and of events over time to hold the rest
//     of the page. The planner ANDs the GIN index's bitmap of the text
//     (the organization's lexeme ANDed in, so that other tenants' matches
//     are never read) with the bitmap of the stretch's range of
//     (organization_id, occurred_at, seq), so that only the stretch's
//     matches are read from the table. Up to textSteps stretches, each
//     sized from all the matches so far.
//  3. Otherwise, or after those, matches are rare here: read the rest
//     from the index that holds them — the GIN index for text, then sort;
//     the target's (organization_id, X, occurred_at, seq) index, in
//     order, for a target — and check the other filters on each.
//
// Step 3 alone reads every match of the organization from the table, about
// one page of the table each, to sort them; step 2 reads those of a
// stretch, and an index entry per event of the stretch, which costs
// several times less than a page (1,000,000 events over 10 organizations,
// a word in 1 % of them: a first page read about 800 buffers instead of
// about 3,100; docs/PERFORMANCE.md). A word not seen in the window skips
// step 2: its rate is unknown, and a stretch wide enough to be sure of it
// would cost more than reading the few matches such a word has.
func (s *Store) searchChecked(ctx context.Context, org string, p *plan) ([]cursor, []store.StoredEvent, error) {
	window := checkWindow
	if p.text != "" {
		window = textWindow
	}
	var (
		keys        []cursor
		events      []store.StoredEvent
		first, last cursor // the window's first and last events
		full        bool
	)
	if window > 0 {
		rows, err := s.pool.Query(ctx, p.window(window), p.args...)
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
		}
		var k cursor
		var e store.StoredEvent
		var match bool
		var rn int64
		_, err = pgx.ForEachRow(rows, []any{&k.at, &k.seq, &e.ID, &e.Record, &e.SchemaMismatch, &match, &rn}, func() error {
			if rn == 1 {
				first = k
			}
			if rn == int64(window) {
				last, full = k, true
			}
			if match && len(keys) < p.n {
				keys = append(keys, k)
				events = append(events, store.StoredEvent{OrganizationID: org, Seq: k.seq, ID: e.ID, Record: e.Record, SchemaMismatch: e.SchemaMismatch})
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
		}
		if len(keys) == p.n || !full {
			return keys, events, nil
		}
	}
	if p.text == "" {
		return s.searchRows(ctx, org, p.byLoneTarget(false), p.args)
	}
	args := slices.Clip(slices.Clone(p.args))
	args[p.textIndex] = tenantQuery(org, p.tsquery)
	if !full {
		sql, args := p.sortedText(args, cursor{}, false, time.Time{}, p.n)
		return s.searchRows(ctx, org, sql, args)
	}
	// Step 2. The next stretch starts past after (and past every event of
	// its occurred_at unless strict); checked events over covered seconds
	// have been read so far, and held the matches in keys.
	after, strict := last, true
	checked := float64(window)
	covered := first.at.Sub(last.at).Abs().Seconds()
	for step := 0; step < textSteps && len(keys) > 0; step++ {
		// Events for the missing matches at the rate so far, and a fifth
		// more. A stretch too wide costs more (an index entry per event)
		// than a second, narrower one (a round trip).
		width := 1.2 * float64(p.n-len(keys)) * checked / float64(len(keys)+1)
		span := max(width*covered/checked, 0.001)
		if span > 100*365*24*3600 {
			break
		}
		d := time.Duration(span * float64(time.Second))
		if p.dir == "DESC" {
			d = -d
		}
		until := after.at.Add(d).Truncate(time.Millisecond) // as occurred_at is stored
		sql, stepArgs := p.sortedText(args, after, strict, until, p.n-len(keys))
		k, e, err := s.searchRows(ctx, org, sql, stepArgs)
		if err != nil {
			return nil, nil, err
		}
		keys, events = append(keys, k...), append(events, e...)
		if len(keys) == p.n {
			return keys, events, nil
		}
		// The stretch held every event of until's millisecond too.
		after, strict = cursor{at: until}, false
		checked += width
		covered += span
	}
	sql, rest := p.sortedText(args, after, strict, time.Time{}, p.n-len(keys))
	k, e, err := s.searchRows(ctx, org, sql, rest)
	return append(keys, k...), append(events, e...), err
}

// searchRows runs a search query returning (occurred_at, seq, id, record,
// schema_mismatch).
func (s *Store) searchRows(ctx context.Context, org, sql string, args []any) ([]cursor, []store.StoredEvent, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	var keys []cursor
	var events []store.StoredEvent
	var k cursor
	var e store.StoredEvent
	_, err = pgx.ForEachRow(rows, []any{&k.at, &k.seq, &e.ID, &e.Record, &e.SchemaMismatch}, func() error {
		keys = append(keys, k)
		events = append(events, store.StoredEvent{OrganizationID: org, Seq: k.seq, ID: e.ID, Record: e.Record, SchemaMismatch: e.SchemaMismatch})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	return keys, events, nil
}

// queryActions is the exact actions q filters by: its actions and those of
// the organization's actions its prefixes match, sorted and without
// repeats. none reports that q has prefixes no action of the organization
// has, so nothing can match.
func (s *Store) queryActions(ctx context.Context, org string, q store.EventQuery) (actions []string, none bool, err error) {
	actions = append([]string(nil), q.Actions...)
	if len(q.ActionPrefixes) > 0 {
		expanded, err := s.expandPrefixes(ctx, org, q.ActionPrefixes)
		if err != nil {
			return nil, false, err
		}
		actions = append(actions, expanded...)
		if len(actions) == 0 {
			return nil, true, nil
		}
	}
	slices.Sort(actions)
	return slices.Compact(actions), false, nil
}

// expandPrefixes returns the organization's known actions that start with
// one of the prefixes.
func (s *Store) expandPrefixes(ctx context.Context, org string, prefixes []string) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT action FROM organization_actions WHERE organization_id = $1 AND EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(prefix) WHERE starts_with(action, p.prefix))`,
		org, prefixes)
	if err != nil {
		return nil, fmt.Errorf("couldn't expand action prefixes %q: %w", prefixes, classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("couldn't expand action prefixes %q: %w", prefixes, classify(err))
	}
	return out, nil
}

// plan holds the parts of a search query: its parameters and conditions,
// and how each way of running it is written. Conditions on events are on
// alias e.
type plan struct {
	args    []any
	n       int    // rows to return: the page and one more
	dir     string // ASC or DESC
	org     string // placeholder of the organization id
	bounds  []string
	filters []string
	// Checked per event when they do not drive the walk (placeholders,
	// "" when absent).
	text, targetType, targetID string
	tsquery                    string // the text's query itself
	textIndex                  int    // and its index in args
	// recheck is the text's condition on the vector without the
	// organization's lexeme, when its match could be that lexeme's
	// (tenantPrefix); "" otherwise.
	recheck string
}

// arg adds a parameter and returns its placeholder.
func (p *plan) arg(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// whereActions filters on exact actions, if any.
func (p *plan) whereActions(actions []string) {
	switch len(actions) {
	case 0:
	case 1:
		p.filters = append(p.filters, "e.action = "+p.arg(actions[0]))
	default:
		p.filters = append(p.filters, "e.action = ANY("+p.arg(actions)+"::text[])")
	}
}

// where joins the organization condition, the bounds on alias's
// (occurred_at, seq), the filters and extra conditions.
func (p *plan) where(alias string, extra ...string) string {
	conds := []string{alias + ".organization_id = " + p.org}
	for _, b := range p.bounds {
		conds = append(conds, fmt.Sprintf(b, alias))
	}
	conds = append(conds, p.filters...)
	conds = append(conds, extra...)
	return " WHERE " + strings.Join(conds, " AND ")
}

// order is the result order on alias, and the limit.
func (p *plan) order(alias string, limit int) string {
	return fmt.Sprintf(" ORDER BY %s.occurred_at %s, %s.seq %s LIMIT %d", alias, p.dir, alias, p.dir, limit)
}

// targetCheck is the condition that the event has the lone target type or
// id asked for ("" when none is).
func (p *plan) targetCheck() string {
	col, v := "target_type", p.targetType
	if p.targetID != "" {
		col, v = "target_id", p.targetID
	}
	if v == "" {
		return ""
	}
	// The organization as a parameter rather than e.organization_id: if
	// the planner evaluates this once, hashing the target's rows, it
	// reads them through the (organization_id, X, …) index. (occurred_at,
	// seq) names the event, and both are in that index, so the probe is
	// index only; received_at, which is not, would make it read the table.
	return `EXISTS (SELECT 1 FROM event_targets t WHERE t.organization_id = ` + p.org + ` AND t.` + col + ` = ` + v +
		` AND t.occurred_at = e.occurred_at AND t.seq = e.seq)`
}

// checks is the conditions searchChecked checks per event.
func (p *plan) checks() []string {
	var out []string
	if p.text != "" {
		out = append(out, p.textMatch())
	}
	if c := p.targetCheck(); c != "" {
		out = append(out, c)
	}
	return out
}

// textMatch is the condition that an event matches the free text.
func (p *plan) textMatch() string {
	m := "e.search @@ " + p.text + "::tsquery"
	if p.recheck != "" {
		m += " AND " + p.recheck
	}
	return m
}

// walk is one ordered walk of the index of the filters.
func (p *plan) walk() string {
	return `SELECT e.occurred_at, e.seq, e.id, e.record, e.schema_mismatch FROM events e` + p.where("e") + p.order("e", p.n)
}

// mergedActions is one ordered, limited walk of (organization_id, action,
// occurred_at, seq) per action, merged: "user.*" costs the same whether it
// matches 3 events or 3 million.
func (p *plan) mergedActions(actions []string) string {
	acts := p.arg(actions)
	return `SELECT m.occurred_at, m.seq, m.id, m.record, m.schema_mismatch FROM unnest(` + acts + `::text[]) AS a(action)
		CROSS JOIN LATERAL (SELECT e.occurred_at, e.seq, e.id, e.record, e.schema_mismatch FROM events e` + p.where("e", "e.action = a.action") + p.order("e", p.n) + `) m` +
		p.order("m", p.n)
}

// byTarget walks the events of one target (type and id) in order; the
// join on received_at prunes each lookup of the event to one partition.
//
// The planner multiplies the selectivities of target_type and target_id,
// which go together, and of the join's columns: as a plain join it
// expected one row for a team's 20,000 and read and sorted them all
// instead of walking the primary key in order (docs/PERFORMANCE.md,
// "PostgreSQL: first pages by target"). So the lookup of the event is a
// LATERAL subquery with LIMIT 1 (an event is one row of events), which
// the planner counts as one event per target row; and with no condition
// on events, the target's rows are limited to a page before any event is
// read, so that even an estimate below a page costs at most a sort of the
// target's index entries, not a lookup of each of its events.
func (p *plan) byTarget() string {
	var conds []string
	if p.text != "" {
		conds = append(conds, p.textMatch())
	}
	conds = append(slices.Clone(p.filters), conds...)
	where := p.whereTargets("d", "d.target_type = "+p.targetType, "d.target_id = "+p.targetID)
	if len(conds) == 0 {
		return `SELECT d.occurred_at, d.seq, e.id, e.record, e.schema_mismatch FROM (
			SELECT d.organization_id, d.occurred_at, d.seq, d.received_at FROM event_targets d` + where + p.order("d", p.n) + `) d
			CROSS JOIN LATERAL (` + eventOf("d", nil) + `) e` + p.order("d", p.n)
	}
	return `SELECT d.occurred_at, d.seq, e.id, e.record, e.schema_mismatch FROM event_targets d
		CROSS JOIN LATERAL (` + eventOf("d", conds) + `) e` + where + p.order("d", p.n)
}

// eventOf is the lookup of the event of the target row alias, with the
// conditions on it (on alias e), at most one row.
func eventOf(alias string, conds []string) string {
	where := []string{
		"e.organization_id = " + alias + ".organization_id", "e.seq = " + alias + ".seq",
		"e.received_at = " + alias + ".received_at",
	}
	return `SELECT e.id, e.record, e.schema_mismatch FROM events e WHERE ` + strings.Join(append(where, conds...), " AND ") + ` LIMIT 1`
}

// window is the first step of searchChecked: the walk of at most n
// events with the checks as a column, and each event's rank in
// the walk. It returns the matches and the window's first and last events,
// so that the caller knows whether the window was full and over how much
// time it reached. The checks, in the select
// list, cannot become a join that reads every match first.
func (p *plan) window(n int) string {
	return `SELECT w.occurred_at, w.seq, w.id, w.record, w.schema_mismatch, w.match, w.rn FROM (
		SELECT e.occurred_at, e.seq, e.id, e.record, e.schema_mismatch, (` + strings.Join(p.checks(), " AND ") + `) AS match,
			row_number() OVER (` + strings.TrimSuffix(p.order("e", 0), " LIMIT 0") + `) AS rn
		FROM events e` + p.where("e") + p.order("e", n) + `) w
		WHERE w.match OR w.rn = 1 OR w.rn = ` + strconv.Itoa(n) + p.order("w", p.n+2)
}

// sortedText reads the text's matches in the organization from the GIN
// index and sorts them, returning the query and its arguments; args must
// hold the tenant query as the text's parameter. With a non-zero after,
// only events past it in the result order (after itself too unless
// strict is false: then every event of its occurred_at is past), and with
// a non-zero until, only events up to that occurred_at: the planner then
// ANDs the GIN index's bitmap with that range of (organization_id,
// occurred_at, seq), so that only the stretch's matches are read. Ordering
// by expressions no index holds keeps the planner from walking an index in
// order instead.
func (p *plan) sortedText(args []any, after cursor, strict bool, until time.Time, limit int) (string, []any) {
	conds := []string{p.textMatch()}
	if c := p.targetCheck(); c != "" {
		conds = append(conds, c)
	}
	desc := p.dir == "DESC"
	if !after.at.IsZero() {
		args = append(args, after.at)
		at := "$" + strconv.Itoa(len(args))
		switch {
		case !strict && desc:
			conds = append(conds, "e.occurred_at < "+at)
		case !strict:
			conds = append(conds, "e.occurred_at > "+at)
		default:
			// Not a row comparison: as an index condition, that costs
			// several times more per index entry than a plain bound on
			// occurred_at, and the stretch's range may hold many.
			args = append(args, after.seq)
			op, eq := ">", ">="
			if desc {
				op, eq = "<", "<="
			}
			conds = append(conds, fmt.Sprintf("e.occurred_at %s %s", eq, at),
				fmt.Sprintf("(e.occurred_at %s %s OR e.seq %s $%d)", op, at, op, len(args)))
		}
	}
	if !until.IsZero() {
		args = append(args, until)
		op := "<="
		if desc {
			op = ">="
		}
		conds = append(conds, "e.occurred_at "+op+" $"+strconv.Itoa(len(args)))
	}
	return `SELECT e.occurred_at, e.seq, e.id, e.record, e.schema_mismatch FROM events e` + p.where("e", conds...) +
		fmt.Sprintf(" ORDER BY (e.occurred_at + interval '0 s') %s, (e.seq + 0) %s LIMIT %d", p.dir, p.dir, limit), args
}

// byLoneTarget walks the index of a target type or a target id alone, in
// order, one row per event (an event may have several targets of the type,
// or the id under several types: their rows are adjacent in the walk).
//
// limited is for a query with no filter on events: the walk then stops
// after a page's events, which the planner sees, so it walks the index in
// order rather than reading and sorting all the target's rows (DISTINCT
// ON keeps the outer LIMIT from reaching into the subquery). Otherwise
// the walk is unbounded, and the planner chooses by its estimates; that
// is step 3 of searchChecked, for targets rare in the events its window
// checked.
func (p *plan) byLoneTarget(limited bool) string {
	col, v := "target_type", p.targetType
	if p.targetID != "" {
		col, v = "target_id", p.targetID
	}
	order := strings.TrimSuffix(p.order("d", 0), " LIMIT 0")
	if limited {
		order = p.order("d", p.n)
	}
	return `SELECT d.occurred_at, d.seq, e.id, e.record, e.schema_mismatch FROM (
		SELECT DISTINCT ON (d.occurred_at, d.seq) d.organization_id, d.occurred_at, d.seq, d.received_at FROM event_targets d` +
		p.whereTargets("d", "d."+col+" = "+v) + order + `) d
		CROSS JOIN LATERAL (` + eventOf("d", p.filters) + `) e` + p.order("d", p.n)
}

// whereTargets is the organization and bounds on a targets alias, with
// extra conditions.
func (p *plan) whereTargets(alias string, extra ...string) string {
	conds := []string{alias + ".organization_id = " + p.org}
	for _, b := range p.bounds {
		conds = append(conds, fmt.Sprintf(b, alias))
	}
	conds = append(conds, extra...)
	return " WHERE " + strings.Join(conds, " AND ")
}

// ceilMS is the first millisecond not before t. occurred_at holds
// milliseconds, so a bound of 10:00:00.0005 must start at .001: an event
// stored at .000 happened before it.
func ceilMS(t time.Time) time.Time {
	ms := t.Truncate(time.Millisecond)
	if ms.Before(t) {
		ms = ms.Add(time.Millisecond)
	}
	return ms.UTC()
}

// cursor is a position in the result order.
type cursor struct {
	at  time.Time
	seq int64
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte("p1:" + strconv.FormatInt(c.at.UnixMilli(), 10) + ":" + strconv.FormatInt(c.seq, 10)))
}

func decodeCursor(c string) (cursor, error) {
	bad := fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return cursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(raw), "p1:")
	if !ok {
		return cursor{}, bad
	}
	msText, seqText, ok := strings.Cut(rest, ":")
	if !ok {
		return cursor{}, bad
	}
	ms, err1 := strconv.ParseInt(msText, 10, 64)
	seq, err2 := strconv.ParseInt(seqText, 10, 64)
	// Far outside what timestamptz holds, a time would make the query
	// fail instead of simply finding nothing.
	if err1 != nil || err2 != nil || seq < 0 || ms < -1e14 || ms > 1e14 {
		return cursor{}, bad
	}
	return cursor{at: time.UnixMilli(ms).UTC(), seq: seq}, nil
}

// matchesNothingStorable reports whether an exact filter of q holds NUL:
// no stored event can match it (PostgreSQL text cannot hold NUL, and
// requests with one in those fields are refused), and PostgreSQL would
// refuse the query itself.
func matchesNothingStorable(q store.EventQuery) bool {
	nul := func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	return nul(q.ActorID) || nul(q.ActorName) || nul(q.TargetType) || nul(q.TargetID) || nul(q.OrganizationID) ||
		slices.ContainsFunc(q.Actions, nul) || slices.ContainsFunc(q.ActionPrefixes, nul)
}

// FirstSeqSince returns a seq below which org has no event with occurred_at
// at or after since, so that a reader of the events since then can skip the
// log before it; 0 when finding it would mean passing more than limit
// events (the caller reads from the start). It walks events_org_time from
// since, index only; the log size is read first, so an event committed
// meanwhile, which the caller cannot be reading, changes nothing.
func (s *Store) FirstSeqSince(ctx context.Context, org string, since time.Time, limit int64) (int64, error) {
	size, err := s.NextSeq(ctx, org)
	if err != nil {
		return 0, err
	}
	var first *int64
	var n int64
	err = s.pool.QueryRow(ctx,
		`SELECT min(seq), count(*) FROM (SELECT seq FROM events WHERE organization_id = $1 AND occurred_at >= $2 LIMIT $3) s`,
		org, since, limit+1).Scan(&first, &n)
	if err != nil {
		return 0, fmt.Errorf("couldn't find the first event of %s since %s: %w", org, since.Format(time.RFC3339), classify(err))
	}
	switch {
	case n > limit:
		return 0, nil
	case first == nil:
		return size, nil
	}
	return min(*first, size), nil
}

// IndexPending is store.SearchIndexer's: PostgreSQL indexes every event in
// its ingest transaction, so nothing is ever pending.
func (s *Store) IndexPending(ctx context.Context, max int) (int, error) { return 0, nil }
