package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/oklog/ulid/v2"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// idempotencyTTL is how long an Idempotency-Key is remembered (docs/DESIGN.md §5).
const idempotencyTTL = 24 * time.Hour

// acceptedJSON is how an idempotent result is remembered (as in SQLite).
type acceptedJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Seq            int64     `json:"seq"`
	ReceivedAt     time.Time `json:"received_at"`
}

// idemKey is an idempotency key as stored: org is the organization of the
// submission's first event. The key alone decides (WorkOS's definition);
// the body's hash is remembered beside it.
type idemKey struct {
	org, key string
}

func keyOf(sub *store.Submission) idemKey {
	k := idemKey{key: sub.IdempotencyKey}
	if len(sub.Events) > 0 {
		k.org = sub.Events[0].OrganizationID
	}
	return k
}

func compareKeys(a, b idemKey) int {
	return cmp.Or(strings.Compare(a.org, b.org), strings.Compare(a.key, b.key))
}

// remembered is the result a claimed key already holds, and the hash of
// the body that stored it.
type remembered struct {
	accepted []event.Accepted
	hash     [32]byte
}

// errRetryAppend asks Append to run the transaction again: something it
// relied on changed under it (see where it is returned).
var errRetryAppend = errors.New("append must be retried")

// Append stores the submissions in one transaction.
//
// Locks are taken in one global order, so that concurrent appends from any
// number of replicas never deadlock: first the idempotency keys (sorted),
// then the organizations' rows (sorted by id), whose UPDATE … RETURNING
// next_seq hands out the seqs. An organization's row stays locked until
// commit, so its seqs are contiguous and committed in order, while
// appends to other organizations go on in parallel.
func (s *Store) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	if len(subs) == 0 {
		return []store.AppendResult{}, nil
	}
	s.startGINCleaner()
	// Search fields do not depend on the seq: they are derived before the
	// transaction, so that organizations' rows stay locked only while the
	// rows are written.
	fields, err := searchFieldsOf(subs)
	if err != nil {
		return nil, err
	}
	appendTx := s.appendTx
	if events(subs) >= copyEvents {
		appendTx = s.appendTxCopy
	}
	var results []store.AppendResult
	err = retry(ctx, func() error {
		for range 3 {
			var err error
			if results, err = appendTx(ctx, subs, fields, now); !errors.Is(err, errRetryAppend) {
				return err
			}
		}
		return fmt.Errorf("couldn't append %d submissions: the database kept changing under the transaction", len(subs))
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// copyEvents is the size of group commit from which Append writes by COPY
// (appendTxCopy) rather than in one statement (appendTx): measured with
// BenchmarkAppend, 1,000 events a transaction take about a fifth longer
// in one INSERT … SELECT than by COPY, while commits of a few dozen
// events (what concurrent single-event requests make) spend more in
// round trips than in inserting.
const copyEvents = 256

// events counts the events of subs.
func events(subs []store.Submission) int {
	n := 0
	for i := range subs {
		n += len(subs[i].Events)
	}
	return n
}

// searchFields are what search reads of an event, derived from its record.
type searchFields struct {
	rec    *event.Record // only the fields after received_at are the event's
	search pgtype.TSVector
	// head and tail are the stored record but for its seq, which the
	// append statement puts between them: the record is {"id":…,
	// "organization_id":…,"seq":N,"received_at":…} (event.AppendRecord).
	head, tail []byte
}

// searchFieldsOf derives the search fields of every event of subs, in order.
func searchFieldsOf(subs []store.Submission) ([][]searchFields, error) {
	out := make([][]searchFields, len(subs))
	var words []string
	var text []byte
	var org, orgWord string // the last event's organization and its lexeme
	for i := range subs {
		out[i] = make([]searchFields, len(subs[i].Events))
		for j, e := range subs[i].Events {
			// The record as it will be stored but for its seq, which
			// changes nothing searchable.
			a := event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, ReceivedAt: e.ReceivedAt}
			raw := event.AppendRecord(nil, a, e.Tail)
			rec, err := recordOf(e, a, raw)
			if err != nil {
				return nil, err
			}
			text = rec.AppendSearchText(text[:0])
			f := &out[i][j]
			f.rec = rec
			if e.OrganizationID != org {
				org, orgWord = e.OrganizationID, orgLexeme(e.OrganizationID)
			}
			f.search, words = vectorOf(orgWord, text, words)
			// The id and organization id are JSON strings: no unescaped
			// quote in them, so the first `,"seq":0,` is the seq's.
			at := bytes.Index(raw, []byte(`,"seq":0,`))
			if at < 0 {
				return nil, fmt.Errorf("the record of event %s has no seq where it belongs", e.ID)
			}
			at += len(`,"seq":`)
			f.head, f.tail = raw[:at:at], raw[at+1:]
		}
	}
	return out, nil
}

// recordOf is the parsed record raw of e: the draft e was parsed into when
// it came with one that encodes its tail (a request's events do), which
// spares parsing the record back; raw parsed otherwise.
func recordOf(e store.PendingEvent, a event.Accepted, raw []byte) (*event.Record, error) {
	if d := e.TailDraft(); d != nil {
		return &event.Record{Accepted: a, Draft: *d}, nil
	}
	rec, err := event.ParseRecord(raw)
	if err != nil {
		// The tail comes from event.ParseEvent: one whose record does not
		// parse back is a bug, and must not be stored.
		return nil, fmt.Errorf("couldn't parse the record of event %s back: %w", e.ID, err)
	}
	return rec, nil
}

func (s *Store) appendTx(ctx context.Context, subs []store.Submission, fields [][]searchFields, now time.Time) (_ []store.AppendResult, err error) {
	results := make([]store.AppendResult, len(subs))
	if err := s.loadOrganizations(ctx, subs); err != nil {
		return nil, err
	}

	// Which submissions are new: not naming an unknown organization, not
	// a repeat of an earlier one of this call (dupOf), and not a repeat of
	// a remembered one (found by claiming keys below).
	dupOf := make([]int, len(subs))
	first := map[idemKey]int{}
	var claims []idemKey
	claimOf := map[idemKey]int{}
	for i := range subs {
		dupOf[i] = -1
		sub := &subs[i]
		k := keyOf(sub)
		if sub.IdempotencyKey != "" {
			if j, ok := first[k]; ok {
				dupOf[i] = j
				continue
			}
		}
		if org := s.missingOrganization(sub); org != "" {
			results[i].Err = fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
			continue
		}
		if sub.IdempotencyKey != "" {
			first[k] = i
			claims = append(claims, k)
			claimOf[k] = i
		}
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't get a connection to append: %w", classify(err))
	}
	defer conn.Release()
	// With idempotency keys the transaction is explicit: the keys are
	// claimed (and the results they remember read) before any
	// organization is locked. Without, the one pipelined round trip below
	// is its own (implicit) transaction.
	var replayed map[idemKey]remembered
	if len(claims) > 0 {
		defer func() {
			if err != nil {
				// A connection left in a transaction is closed by the
				// pool on release, which rolls back too.
				_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
		}()
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			return nil, fmt.Errorf("couldn't begin append transaction: %w", classify(err))
		}
		replayed, err = claimKeys(ctx, conn, claims, func(k idemKey) [32]byte { return subs[claimOf[k]].BodyHash }, now)
		if err != nil {
			return nil, err
		}
		for k, r := range replayed {
			i := claimOf[k]
			results[i] = store.AppendResult{Events: r.accepted, Replayed: true, BodyMismatch: r.hash != subs[i].BodyHash}
		}
	}
	isNew := func(i int) bool { return dupOf[i] < 0 && results[i].Err == nil && !results[i].Replayed }

	// Each organization's events are numbered 0, 1, … in submission order
	// here (offs); the statement adds the start it allocates.
	counts := map[string]int64{}
	offs := make([][]int64, len(subs))
	var rows appendRows
	for i := range subs {
		if !isNew(i) {
			continue
		}
		offs[i] = make([]int64, len(subs[i].Events))
		for j, e := range subs[i].Events {
			off := counts[e.OrganizationID]
			counts[e.OrganizationID]++
			offs[i][j] = off
			rows.add(e, off, &fields[i][j])
		}
	}
	orgs := slices.Sorted(maps.Keys(counts))
	ns := make([]int64, len(orgs))
	for i, o := range orgs {
		ns[i] = counts[o]
	}

	batch := &pgx.Batch{}
	if len(orgs) > 0 {
		// The statement's plan does not depend on its arrays: it is
		// made once per connection (generic) rather than at every
		// commit under the session's force_custom_plan (Connect), which
		// cost the database more per event than any one index
		// (docs/PERFORMANCE.md, "PostgreSQL: the append's CPU").
		batch.Queue(`SET plan_cache_mode = force_generic_plan`)
		batch.Queue(appendSQL, append([]any{orgs, ns}, rows.args()...)...)
		batch.Queue(`RESET plan_cache_mode`)
	}
	newActions := s.newActions(subs, fields, isNew)
	if len(newActions) > 0 {
		aorgs, actions := make([]string, len(newActions)), make([]string, len(newActions))
		for i, a := range newActions {
			aorgs[i], actions[i] = a.org, a.action
		}
		batch.Queue(`INSERT INTO organization_actions (organization_id, action)
			SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`, aorgs, actions)
	}
	if stored := len(claims) - len(replayed); stored > 0 {
		// The results of the claimed keys, seqs read back from the
		// organizations' rows this transaction advanced and holds.
		var r idemResults
		for _, k := range claims {
			if _, ok := replayed[k]; ok {
				continue
			}
			sub := &subs[claimOf[k]]
			h := sub.BodyHash
			r.orgs, r.keys, r.hashes = append(r.orgs, k.org), append(r.keys, k.key), append(r.hashes, h[:])
			for j, e := range sub.Events {
				// back: how far below the organization's new next_seq
				// the event's seq is.
				r.key = append(r.key, int32(len(r.keys)))
				r.ids, r.eorgs = append(r.ids, e.ID), append(r.eorgs, e.OrganizationID)
				r.back = append(r.back, counts[e.OrganizationID]-offs[claimOf[k]][j])
				r.received = append(r.received, e.ReceivedAt.Format(time.RFC3339Nano))
			}
		}
		batch.Queue(idemResultSQL, r.orgs, r.keys, r.hashes, r.key, r.ids, r.eorgs, r.back, r.received)
	}
	if len(claims) > 0 {
		batch.Queue("COMMIT")
	}
	if batch.Len() == 0 {
		return s.finishAppend(subs, results, dupOf, offs, nil, nil), nil
	}

	// One round trip: the organizations' rows are locked from the
	// statement that advances them to the commit that ends the pipeline.
	// If the process dies before this returns, nothing was acknowledged:
	// the transaction either committed (and the events simply have no
	// waiting client; a retry with the same key gets them) or did not.
	br := conn.SendBatch(ctx, batch)
	start := make(map[string]int64, len(orgs))
	if len(orgs) > 0 {
		var org string
		var first int64
		_, err := br.Exec() // SET plan_cache_mode
		var rows pgx.Rows
		if err == nil {
			rows, err = br.Query()
		}
		if err == nil {
			_, err = pgx.ForEachRow(rows, []any{&org, &first}, func() error {
				start[org] = first
				return nil
			})
		}
		if err != nil {
			br.Close()
			return nil, s.appendError(err, len(subs))
		}
	}
	if err := br.Close(); err != nil {
		return nil, s.appendError(err, len(subs))
	}
	return s.finishAppend(subs, results, dupOf, offs, start, newActions), nil
}

// loadOrganizations makes sure every organization the submissions name is
// either in s.known or absent from the database. An organization deleted
// after it was cached is caught by appendSQL, whose lock skips deleted
// organizations (trail_append_failed: the cache is then cleared and the
// append retried).
func (s *Store) loadOrganizations(ctx context.Context, subs []store.Submission) error {
	var ask []string
	seen := map[string]bool{}
	for i := range subs {
		for _, e := range subs[i].Events {
			if seen[e.OrganizationID] {
				continue
			}
			seen[e.OrganizationID] = true
			if _, ok := s.known.Load(e.OrganizationID); !ok {
				ask = append(ask, e.OrganizationID)
			}
		}
	}
	if len(ask) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM organizations WHERE id = ANY($1) AND deleted_at IS NULL`, ask)
	if err != nil {
		return fmt.Errorf("couldn't look up organizations: %w", classify(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("couldn't look up organizations: %w", classify(err))
	}
	for _, id := range ids {
		s.known.Store(id, struct{}{})
	}
	return nil
}

// missingOrganization returns an organization of sub that does not exist,
// or "".
func (s *Store) missingOrganization(sub *store.Submission) string {
	for _, e := range sub.Events {
		if _, ok := s.known.Load(e.OrganizationID); !ok {
			return e.OrganizationID
		}
	}
	return ""
}

// claimKeys claims the idempotency keys of new-looking submissions, in
// key order, with the hash of each one's body (hashOf). A key that is
// free, or remembered for longer than idempotencyTTL, is claimed (its
// result is written before commit); one claimed by a transaction still
// running elsewhere makes this INSERT wait for it, so two replicas given
// the same key at once store one submission. It returns what the keys that
// were not claimed remember.
func claimKeys(ctx context.Context, tx querier, claims []idemKey, hashOf func(idemKey) [32]byte, now time.Time) (map[idemKey]remembered, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	sorted := slices.SortedFunc(slices.Values(claims), compareKeys)
	orgs, keys, hashes := make([]string, len(sorted)), make([]string, len(sorted)), make([][]byte, len(sorted))
	for i, k := range sorted {
		h := hashOf(k)
		orgs[i], keys[i], hashes[i] = k.org, k.key, h[:]
	}
	rows, err := tx.Query(ctx, `INSERT INTO idempotency_keys AS k (organization_id, key, body_hash, created_at)
		SELECT u.organization_id, u.key, u.body_hash, $4
		FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS u(organization_id, key, body_hash, n)
		ORDER BY u.n
		ON CONFLICT (organization_id, key) DO UPDATE SET body_hash = excluded.body_hash, created_at = excluded.created_at, result = NULL
			WHERE k.created_at <= $5
		RETURNING k.organization_id, k.key`,
		orgs, keys, hashes, now, now.Add(-idempotencyTTL))
	if err != nil {
		return nil, fmt.Errorf("couldn't claim idempotency keys: %w", classify(err))
	}
	claimed := map[idemKey]bool{}
	var k idemKey
	_, err = pgx.ForEachRow(rows, []any{&k.org, &k.key}, func() error {
		claimed[k] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't claim idempotency keys: %w", classify(err))
	}
	if len(claimed) == len(sorted) {
		return nil, nil
	}
	orgs, keys = orgs[:0], keys[:0]
	for _, k := range sorted {
		if !claimed[k] {
			orgs, keys = append(orgs, k.org), append(keys, k.key)
		}
	}
	rows, err = tx.Query(ctx, `SELECT k.organization_id, k.key, k.body_hash, k.result FROM idempotency_keys k
		JOIN unnest($1::text[], $2::text[]) AS u(organization_id, key)
		ON k.organization_id = u.organization_id AND k.key = u.key`,
		orgs, keys)
	if err != nil {
		return nil, fmt.Errorf("couldn't read remembered idempotent results: %w", classify(err))
	}
	replayed := map[idemKey]remembered{}
	var raw, hash []byte
	_, err = pgx.ForEachRow(rows, []any{&k.org, &k.key, &hash, &raw}, func() error {
		if raw == nil {
			return fmt.Errorf("idempotency key %q has no result", k.key)
		}
		var stored []acceptedJSON
		if err := json.Unmarshal(raw, &stored); err != nil {
			return fmt.Errorf("couldn't decode remembered result of idempotency key %q: %w", k.key, err)
		}
		r := remembered{accepted: make([]event.Accepted, len(stored))}
		copy(r.hash[:], hash)
		for i, a := range stored {
			r.accepted[i] = event.Accepted{ID: a.ID, OrganizationID: a.OrganizationID, Seq: a.Seq, ReceivedAt: a.ReceivedAt.UTC()}
		}
		replayed[k] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't read remembered idempotent results: %w", classify(err))
	}
	if len(replayed)+len(claimed) != len(sorted) {
		// A key that was there when claiming is gone (expired by
		// ExpireIdempotencyKeys in between): claim again.
		return nil, errRetryAppend
	}
	return replayed, nil
}

// querier is what claimKeys needs of a connection in a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// appendSQL stores a group commit's new events in one statement, so that
// each organization's row is locked for the rest of one round trip rather
// than across several. $1 and $2 are the organizations (sorted by id, the
// one lock order every append and replica keeps, so appends never
// deadlock) and how many events each gets; the events and targets give
// their organization and their offset (0, 1, …) among its new events, to
// which the start the UPDATE allocated is added. A missing organization,
// or one whose log the integrator refuses (ledger.RefusalStorage), aborts
// the statement (trail_append_failed, migration 00019). It returns each
// organization's first new seq.
//
// The row locks are held until commit, so an organization's seqs are
// contiguous and committed in order, whichever replica allocates them.
const appendSQL = `WITH locked AS (
	SELECT id FROM organizations WHERE id = ANY($1::text[]) AND deleted_at IS NULL ORDER BY id FOR NO KEY UPDATE
), advanced AS (
	UPDATE organizations o SET next_seq = o.next_seq + c.n
	FROM unnest($1::text[], $2::bigint[]) AS c(id, n), locked l
	WHERE o.id = c.id AND l.id = c.id
	RETURNING o.id, o.next_seq - c.n AS start, o.log_refused
), starts AS (
	SELECT c.id, CASE
		WHEN a.id IS NULL THEN trail_append_failed(c.id, NULL)
		WHEN a.log_refused IS NOT NULL THEN trail_append_failed(a.id, a.log_refused)
		ELSE a.start END AS start
	FROM unnest($1::text[]) AS c(id) LEFT JOIN advanced a ON a.id = c.id
), stored_events AS (
	INSERT INTO events (seq, received_at, occurred_at, organization_id, id, action, actor_id, actor_name, search, record, schema_mismatch)
	SELECT s.start + e.off, e.received_at, e.occurred_at, e.org, e.id, e.action, e.actor_id, e.actor_name, e.search,
		e.head || convert_to((s.start + e.off)::text, 'UTF8') || e.tail, e.mismatch
	FROM unnest($3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[],
		$11::tsvector[], $12::bytea[], $13::bytea[], $14::boolean[])
		AS e(org, off, received_at, occurred_at, id, action, actor_id, actor_name, search, head, tail, mismatch)
	JOIN starts s ON s.id = e.org
), stored_targets AS (
	INSERT INTO event_targets (seq, received_at, occurred_at, organization_id, target_type, target_id)
	SELECT s.start + t.off, t.received_at, t.occurred_at, t.org, t.type, t.id
	FROM unnest($15::text[], $16::bigint[], $17::timestamptz[], $18::timestamptz[], $19::text[], $20::text[])
		AS t(org, off, received_at, occurred_at, type, id)
	JOIN starts s ON s.id = t.org
)
SELECT id, start FROM starts`

// appendRows are the columns of appendSQL's events and targets.
type appendRows struct {
	org                            []string
	off                            []int64
	received, occurred             []time.Time
	id, action, actorID, actorName []string
	search                         []pgtype.TSVector
	head, tail                     [][]byte
	mismatch                       []bool
	tOrg                           []string
	tOff                           []int64
	tReceived, tOccurred           []time.Time
	tType, tID                     []string
}

// add adds event e, the off-th new event of its organization.
func (r *appendRows) add(e store.PendingEvent, off int64, f *searchFields) {
	r.org, r.off = append(r.org, e.OrganizationID), append(r.off, off)
	r.received, r.occurred = append(r.received, e.ReceivedAt), append(r.occurred, f.rec.OccurredAt)
	r.id, r.action = append(r.id, e.ID), append(r.action, f.rec.Action)
	r.actorID, r.actorName = append(r.actorID, f.rec.Actor.ID), append(r.actorName, f.rec.Actor.Name)
	r.search, r.head, r.tail = append(r.search, f.search), append(r.head, f.head), append(r.tail, f.tail)
	r.mismatch = append(r.mismatch, e.SchemaMismatch)
	for j, t := range f.rec.Targets {
		if slices.ContainsFunc(f.rec.Targets[:j], func(u event.Entity) bool { return u.Type == t.Type && u.ID == t.ID }) {
			continue // the same target twice in one event
		}
		r.tOrg, r.tOff = append(r.tOrg, e.OrganizationID), append(r.tOff, off)
		r.tReceived, r.tOccurred = append(r.tReceived, e.ReceivedAt), append(r.tOccurred, f.rec.OccurredAt)
		r.tType, r.tID = append(r.tType, t.Type), append(r.tID, t.ID)
	}
}

// args are appendSQL's $3 on.
func (r *appendRows) args() []any {
	return []any{r.org, r.off, r.received, r.occurred, r.id, r.action, r.actorID, r.actorName, r.search, r.head, r.tail, r.mismatch,
		r.tOrg, r.tOff, r.tReceived, r.tOccurred, r.tType, r.tID}
}

// idemResultSQL writes the results of the keys the transaction claimed:
// the JSON of acceptedJSON, whose seqs it reads back from the
// organizations' rows the transaction advanced (and holds): each event's
// seq is its organization's next_seq less back.
const idemResultSQL = `UPDATE idempotency_keys k SET result = r.result
FROM (
	SELECT u.key_n, convert_to('[' || string_agg(json_build_object('id', u.id, 'organization_id', u.org,
		'seq', o.next_seq - u.back, 'received_at', u.received)::text, ',' ORDER BY u.n) || ']', 'UTF8') AS result
	FROM unnest($4::int[], $5::text[], $6::text[], $7::bigint[], $8::text[]) WITH ORDINALITY AS u(key_n, id, org, back, received, n)
	JOIN organizations o ON o.id = u.org
	GROUP BY u.key_n
) r, unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS c(organization_id, key, body_hash, n)
WHERE r.key_n = c.n AND k.organization_id = c.organization_id AND k.key = c.key AND k.body_hash = c.body_hash`

// idemResults are idemResultSQL's arguments: the claimed keys, and the
// events of each (key: its 1-based index among the keys).
type idemResults struct {
	orgs, keys []string
	hashes     [][]byte
	key        []int32
	ids, eorgs []string
	back       []int64
	received   []string
}

// appendError reports an error of the append's round trip.
func (s *Store) appendError(err error, n int) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "TRL01":
			// Known, yet not there: the organization was deleted since
			// (store.OrganizationLifecycle), or the database is not the
			// one it was (restored from a backup). Forget what was cached.
			s.known.Clear()
			return errRetryAppend
		case "TRL02":
			// The integrator refuses this log (ledger.RefusalStorage):
			// nothing of the transaction is stored.
			return &ledger.RefusedError{Organization: pe.Hint, Reason: pe.Detail}
		}
	}
	return fmt.Errorf("couldn't store %d submissions: %w", n, classify(err))
}

// finishAppend fills in the results of a committed append: the accepted
// events of new submissions (their organization's start plus their
// offset), and those of repeats within the call.
func (s *Store) finishAppend(subs []store.Submission, results []store.AppendResult, dupOf []int, offs [][]int64, start map[string]int64, newActions []actionKey) []store.AppendResult {
	for _, a := range newActions {
		s.known.Store(a, struct{}{})
	}
	for i := range subs {
		if offs[i] == nil {
			continue
		}
		accepted := make([]event.Accepted, len(subs[i].Events))
		for j, e := range subs[i].Events {
			accepted[j] = event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, Seq: start[e.OrganizationID] + offs[i][j], ReceivedAt: e.ReceivedAt}
		}
		results[i].Events = accepted
	}
	for i := range subs {
		if j := dupOf[i]; j >= 0 {
			if results[j].Err != nil {
				results[i].Err = results[j].Err
			} else {
				results[i] = store.AppendResult{Events: results[j].Events, Replayed: true, BodyMismatch: subs[j].BodyHash != subs[i].BodyHash}
			}
		}
	}
	return results
}

// newActions returns the (organization, action) pairs of the new
// submissions' events that are not known to be listed yet, sorted.
func (s *Store) newActions(subs []store.Submission, fields [][]searchFields, isNew func(int) bool) []actionKey {
	var out []actionKey
	for i := range subs {
		if !isNew(i) {
			continue
		}
		for j, e := range subs[i].Events {
			k := actionKey{e.OrganizationID, fields[i][j].rec.Action}
			if _, ok := s.known.Load(k); !ok && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b actionKey) int {
		return cmp.Or(strings.Compare(a.org, b.org), strings.Compare(a.action, b.action))
	})
	return out
}

// newEvent is an event being stored.
type newEvent struct {
	accepted event.Accepted
	record   []byte
	mismatch bool // store.PendingEvent.SchemaMismatch
	*searchFields
}

// appendTxCopy is the append of a large group commit (at least
// copyEvents events): its events and targets are written by COPY, whose
// multi-row inserts cost the database less per row than appendSQL's
// INSERT … SELECT, over a few more round trips, which so many events
// share.
func (s *Store) appendTxCopy(ctx context.Context, subs []store.Submission, fields [][]searchFields, now time.Time) ([]store.AppendResult, error) {
	results := make([]store.AppendResult, len(subs))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin append transaction: %w", classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if err := s.loadOrganizations(ctx, subs); err != nil {
		return nil, err
	}

	// Which submissions are new: not naming an unknown organization, not
	// a repeat of an earlier one of this call (dupOf), and not a repeat of
	// a remembered one (found by claiming keys below).
	dupOf := make([]int, len(subs))
	first := map[idemKey]int{}
	var claims []idemKey
	claimOf := map[idemKey]int{}
	for i := range subs {
		dupOf[i] = -1
		sub := &subs[i]
		k := keyOf(sub)
		if sub.IdempotencyKey != "" {
			if j, ok := first[k]; ok {
				dupOf[i] = j
				continue
			}
		}
		if org := s.missingOrganization(sub); org != "" {
			results[i].Err = fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
			continue
		}
		if sub.IdempotencyKey != "" {
			first[k] = i
			claims = append(claims, k)
			claimOf[k] = i
		}
	}
	replayed, err := claimKeys(ctx, tx, claims, func(k idemKey) [32]byte { return subs[claimOf[k]].BodyHash }, now)
	if err != nil {
		return nil, err
	}
	for k, r := range replayed {
		i := claimOf[k]
		results[i] = store.AppendResult{Events: r.accepted, Replayed: true, BodyMismatch: r.hash != subs[i].BodyHash}
	}
	isNew := func(i int) bool { return dupOf[i] < 0 && results[i].Err == nil && !results[i].Replayed }

	// Seqs: one UPDATE per organization, in id order, pipelined.
	counts := map[string]int64{}
	for i := range subs {
		if isNew(i) {
			for _, e := range subs[i].Events {
				counts[e.OrganizationID]++
			}
		}
	}
	next, err := s.advance(ctx, tx, counts)
	if err != nil {
		return nil, err
	}

	// Records and search fields, in submission order.
	var events []newEvent
	for i := range subs {
		if !isNew(i) {
			continue
		}
		accepted := make([]event.Accepted, len(subs[i].Events))
		for j, e := range subs[i].Events {
			a := event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, Seq: next[e.OrganizationID], ReceivedAt: e.ReceivedAt}
			next[e.OrganizationID]++
			events = append(events, newEvent{accepted: a, record: event.AppendRecord(nil, a, e.Tail), mismatch: e.SchemaMismatch, searchFields: &fields[i][j]})
			accepted[j] = a
		}
		results[i].Events = accepted
	}
	if err := s.insertEvents(ctx, tx, events); err != nil {
		return nil, err
	}

	// New actions of organizations, and the results of claimed keys.
	batch := &pgx.Batch{}
	newActions := s.newEventActions(events)
	if len(newActions) > 0 {
		orgs, actions := make([]string, len(newActions)), make([]string, len(newActions))
		for i, a := range newActions {
			orgs[i], actions[i] = a.org, a.action
		}
		batch.Queue(`INSERT INTO organization_actions (organization_id, action)
			SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`, orgs, actions)
	}
	if stored := len(claims) - len(replayed); stored > 0 {
		orgs, keys, hashes, values := make([]string, 0, stored), make([]string, 0, stored), make([][]byte, 0, stored), make([][]byte, 0, stored)
		for _, k := range claims {
			if _, ok := replayed[k]; ok {
				continue
			}
			raw, err := encodeAccepted(results[claimOf[k]].Events)
			if err != nil {
				return nil, err
			}
			hash := subs[claimOf[k]].BodyHash
			orgs, keys, hashes, values = append(orgs, k.org), append(keys, k.key), append(hashes, hash[:]), append(values, raw)
		}
		batch.Queue(`UPDATE idempotency_keys k SET result = u.result
			FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[]) AS u(organization_id, key, body_hash, result)
			WHERE k.organization_id = u.organization_id AND k.key = u.key AND k.body_hash = u.body_hash`,
			orgs, keys, hashes, values)
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return nil, fmt.Errorf("couldn't record actions and idempotency results: %w", classify(err))
		}
	}

	// If the process dies before this returns, nothing was acknowledged:
	// the transaction either committed (and the events simply have no
	// waiting client; a retry with the same key gets them) or did not.
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("couldn't commit %d submissions: %w", len(subs), classify(err))
	}
	for _, a := range newActions {
		s.known.Store(a, struct{}{})
	}
	for i := range subs {
		if j := dupOf[i]; j >= 0 {
			if results[j].Err != nil {
				results[i].Err = results[j].Err
			} else {
				results[i] = store.AppendResult{Events: results[j].Events, Replayed: true, BodyMismatch: subs[j].BodyHash != subs[i].BodyHash}
			}
		}
	}
	return results, nil
}

func encodeAccepted(accepted []event.Accepted) ([]byte, error) {
	stored := make([]acceptedJSON, len(accepted))
	for i, a := range accepted {
		stored[i] = acceptedJSON{a.ID, a.OrganizationID, a.Seq, a.ReceivedAt}
	}
	raw, err := json.Marshal(stored)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode idempotent result: %w", err)
	}
	return raw, nil
}

// advance adds counts[org] to each organization's next_seq, in id order,
// and returns each one's first new seq. The row locks it takes are held
// until the transaction ends.
func (s *Store) advance(ctx context.Context, tx pgx.Tx, counts map[string]int64) (map[string]int64, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	orgs := slices.Sorted(func(yield func(string) bool) {
		for o := range counts {
			if !yield(o) {
				return
			}
		}
	})
	batch := &pgx.Batch{}
	for _, o := range orgs {
		batch.Queue(`UPDATE organizations SET next_seq = next_seq + $2 WHERE id = $1 RETURNING next_seq, log_refused`, o, counts[o])
	}
	br := tx.SendBatch(ctx, batch)
	defer br.Close()
	start := make(map[string]int64, len(orgs))
	for _, o := range orgs {
		var end int64
		var refused *string
		if err := br.QueryRow().Scan(&end, &refused); errors.Is(err, pgx.ErrNoRows) {
			// Known, yet not there: the database is not the one it was
			// (restored from a backup). Forget what was cached.
			s.known.Clear()
			return nil, errRetryAppend
		} else if err != nil {
			return nil, fmt.Errorf("couldn't advance the log of %s: %w", o, classify(err))
		}
		if refused != nil {
			// The integrator refuses this log (ledger.RefusalStorage):
			// nothing of the transaction is stored.
			return nil, &ledger.RefusedError{Organization: o, Reason: *refused}
		}
		start[o] = end - counts[o]
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("couldn't advance logs: %w", classify(err))
	}
	return start, nil
}

// insertEvents copies the events and their distinct targets in.
func (s *Store) insertEvents(ctx context.Context, tx pgx.Tx, events []newEvent) error {
	if len(events) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"seq", "received_at", "occurred_at", "organization_id", "id", "action", "actor_id", "actor_name", "search", "record", "schema_mismatch"},
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := &events[i]
			return []any{e.accepted.Seq, e.accepted.ReceivedAt, e.rec.OccurredAt, e.accepted.OrganizationID, e.accepted.ID,
				e.rec.Action, e.rec.Actor.ID, e.rec.Actor.Name, e.search, e.record, e.mismatch}, nil
		}))
	if err != nil {
		return fmt.Errorf("couldn't insert %d events: %w", len(events), classify(err))
	}
	var targets [][]any
	for i := range events {
		e := &events[i]
		for j, t := range e.rec.Targets {
			if slices.ContainsFunc(e.rec.Targets[:j], func(u event.Entity) bool { return u.Type == t.Type && u.ID == t.ID }) {
				continue // the same target twice in one event
			}
			targets = append(targets, []any{e.accepted.Seq, e.accepted.ReceivedAt, e.rec.OccurredAt, e.accepted.OrganizationID, t.Type, t.ID})
		}
	}
	if len(targets) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_targets"},
		[]string{"seq", "received_at", "occurred_at", "organization_id", "target_type", "target_id"},
		pgx.CopyFromRows(targets)); err != nil {
		return fmt.Errorf("couldn't insert targets of %d events: %w", len(events), classify(err))
	}
	return nil
}

// newEventActions returns the (organization, action) pairs of events that
// are not known to be listed yet, sorted.
func (s *Store) newEventActions(events []newEvent) []actionKey {
	var out []actionKey
	for i := range events {
		k := actionKey{events[i].accepted.OrganizationID, events[i].rec.Action}
		if _, ok := s.known.Load(k); !ok && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b actionKey) int {
		return cmp.Or(strings.Compare(a.org, b.org), strings.Compare(a.action, b.action))
	})
	return out
}

// ExpireIdempotencyKeys deletes keys created before cutoff.
func (s *Store) ExpireIdempotencyKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("couldn't expire idempotency keys: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}

// idWindow is how far from the time in its ULID an event's received_at is
// looked for first. Trail mints the id from received_at itself, so the
// window is only slack; an id minted otherwise is still found, by a
// lookup in every partition.
const idWindow = time.Hour

// Event returns one event by id.
func (s *Store) Event(ctx context.Context, id string) (store.StoredEvent, error) {
	var e store.StoredEvent
	const q = `SELECT organization_id, seq, id, record, schema_mismatch FROM events WHERE id = $1`
	var err error
	if u, perr := ulid.ParseStrict(strings.TrimPrefix(id, "evt_")); perr == nil {
		at := time.UnixMilli(int64(u.Time())).UTC()
		err = s.pool.QueryRow(ctx, q+` AND received_at >= $2 AND received_at < $3 LIMIT 1`, id, at.Add(-idWindow), at.Add(idWindow)).
			Scan(&e.OrganizationID, &e.Seq, &e.ID, &e.Record, &e.SchemaMismatch)
	} else {
		err = pgx.ErrNoRows
	}
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, q+` LIMIT 1`, id).Scan(&e.OrganizationID, &e.Seq, &e.ID, &e.Record, &e.SchemaMismatch)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("couldn't read event %s: %w", id, classify(err))
	}
	return e, nil
}
