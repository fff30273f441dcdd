package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
	// Search fields do not depend on the seq: they are derived before the
	// transaction, so that organizations' rows stay locked only while the
	// rows are written.
	fields, err := searchFieldsOf(subs)
	if err != nil {
		return nil, err
	}
	var results []store.AppendResult
	err = retry(ctx, func() error {
		for range 3 {
			var err error
			if results, err = s.appendTx(ctx, subs, fields, now); !errors.Is(err, errRetryAppend) {
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

// searchFields are what search reads of an event, derived from its record.
type searchFields struct {
	rec    *event.Record // only the fields after received_at are the event's
	search pgtype.TSVector
}

// searchFieldsOf derives the search fields of every event of subs, in order.
func searchFieldsOf(subs []store.Submission) ([][]searchFields, error) {
	out := make([][]searchFields, len(subs))
	var words []string
	var text []byte
	for i := range subs {
		out[i] = make([]searchFields, len(subs[i].Events))
		for j, e := range subs[i].Events {
			// The record as it will be stored but for its seq, which
			// changes nothing searchable.
			a := event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, ReceivedAt: e.ReceivedAt}
			rec, err := event.ParseRecord(event.AppendRecord(nil, a, e.Tail))
			if err != nil {
				// The tail comes from event.ParseEvent: one whose record
				// does not parse back is a bug, and must not be stored.
				return nil, fmt.Errorf("couldn't parse the record of event %s back: %w", e.ID, err)
			}
			text = rec.AppendSearchText(text[:0])
			f := &out[i][j]
			f.rec = rec
			f.search, words = searchVector(e.OrganizationID, text, words)
		}
	}
	return out, nil
}

// newEvent is an event being stored.
type newEvent struct {
	accepted event.Accepted
	record   []byte
	mismatch bool // store.PendingEvent.SchemaMismatch
	*searchFields
}

func (s *Store) appendTx(ctx context.Context, subs []store.Submission, fields [][]searchFields, now time.Time) ([]store.AppendResult, error) {
	results := make([]store.AppendResult, len(subs))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin append transaction: %w", classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	if err := s.loadOrganizations(ctx, tx, subs); err != nil {
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
	newActions := s.newActions(events)
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

// loadOrganizations makes sure every organization the submissions name is
// either in s.known or absent from the database. An organization deleted
// after it was cached is caught by advance, whose UPDATE skips deleted
// organizations (the cache is then cleared and the append retried).
func (s *Store) loadOrganizations(ctx context.Context, tx pgx.Tx, subs []store.Submission) error {
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
	rows, err := tx.Query(ctx, `SELECT id FROM organizations WHERE id = ANY($1) AND deleted_at IS NULL`, ask)
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
func claimKeys(ctx context.Context, tx pgx.Tx, claims []idemKey, hashOf func(idemKey) [32]byte, now time.Time) (map[idemKey]remembered, error) {
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
		batch.Queue(`UPDATE organizations SET next_seq = next_seq + $2 WHERE id = $1 AND deleted_at IS NULL RETURNING next_seq, log_refused`, o, counts[o])
	}
	br := tx.SendBatch(ctx, batch)
	defer br.Close()
	start := make(map[string]int64, len(orgs))
	for _, o := range orgs {
		var end int64
		var refused *string
		if err := br.QueryRow().Scan(&end, &refused); errors.Is(err, pgx.ErrNoRows) {
			// Known, yet not there: the organization was deleted since
			// (store.OrganizationLifecycle), or the database is not the
			// one it was (restored from a backup). Forget what was cached.
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

// newActions returns the (organization, action) pairs of events that are
// not known to be listed yet, sorted.
func (s *Store) newActions(events []newEvent) []actionKey {
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
