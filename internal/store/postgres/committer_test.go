package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/store"
)

// TestCommitsInFlight runs the ingest committer with several group commits
// in flight on one store, under clients sending single-organization,
// multi-organization (organizations named in any order), idempotent
// (the same key from two clients at once, so in one transaction or in two
// in flight) and unknown-organization submissions, while a reader per
// organization follows its log as the integrator and log streams do (the
// log size, then the records below it). Commits of different
// organizations may become durable out of the order they started in;
// what must hold:
//
//   - every organization's seqs are 0…n-1, each acknowledged event stored
//     once, with the seq it was acknowledged with;
//   - no transaction fails (two in flight lock organizations in one
//     order: no deadlock);
//   - an idempotency key sent twice stores one submission, and both
//     callers get its events;
//   - a submission naming an unknown organization fails alone;
//   - an acknowledged event is in the next read (read-your-writes), and a
//     reader of the log never sees a seq before the ones below it;
//   - Stop answers every submission it accepted.
func TestCommitsInFlight(t *testing.T) {
	cases := []struct {
		name string
		opts ingest.Options
		orgs int
	}{
		{"one in flight", ingest.Options{Concurrency: 1}, 3},
		{"four in flight, organizations spread", ingest.Options{Concurrency: 4}, 6},
		{"four in flight, one organization", ingest.Options{Concurrency: 4}, 1},
		{"eight in flight, two organizations", ingest.Options{Concurrency: 8}, 2},
		{"four by organization, organizations spread", ingest.Options{Concurrency: 4, ByOrganization: true}, 6},
		{"two by organization, one organization", ingest.Options{Concurrency: 2, ByOrganization: true}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testCommitsInFlight(t, tc.opts, tc.orgs)
		})
	}
}

func testCommitsInFlight(t *testing.T, opts ingest.Options, norgs int) {
	ctx := context.Background()
	s := openFresh(t)
	var orgs []string
	for i := range norgs {
		orgs = append(orgs, fmt.Sprintf("org_inflight_%d", i))
		createOrg(t, s, orgs[i])
	}
	c := ingest.New(s, opts, nil, nil)
	c.Start()
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()

	// Readers: one per organization, following the log as the integrator
	// and log streams do.
	readDone := make(chan struct{})
	read := make([]int64, norgs) // records seen, in order
	var readers sync.WaitGroup
	for i, org := range orgs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			follow := func() error {
				size, err := s.NextSeq(ctx, org)
				if err != nil {
					return err
				}
				return s.ReadRecords(ctx, org, read[i], size, func(seq int64, _ []byte) error {
					if seq != read[i] {
						return fmt.Errorf("read seq %d of %s where %d was next: the log showed a size whose records were not all there", seq, org, read[i])
					}
					read[i]++
					return nil
				})
			}
			for {
				select {
				case <-readDone:
					if err := follow(); err != nil {
						t.Error(err)
					}
					return
				default:
				}
				if err := follow(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}

	g := newGen(uint64(17 + opts.Concurrency + norgs))
	now := time.Now().UTC().Truncate(time.Millisecond)
	const clients, calls = 12, 15
	type answer struct {
		sub store.Submission
		res store.AppendResult
		err error
	}
	answers := make([][]answer, clients)
	// Submissions are built first; the clients only submit.
	work := make([][]store.Submission, clients)
	for w := range clients {
		for n := range calls {
			var sb store.Submission
			switch n % 5 {
			case 0, 1:
				sb = g.sub(t, now, orgs[(w+n)%norgs])
			case 2:
				// Several organizations, in an order of the client's own.
				sb = g.sub(t, now, orgs[(w+n)%norgs], orgs[(w+2*n+1)%norgs], orgs[w%norgs])
				if w%2 == 1 {
					slices.Reverse(sb.Events)
				}
			case 3:
				// The same key from clients w and w^1 (a retry sent to
				// the server twice at once).
				sb = g.sub(t, now, orgs[n%norgs], orgs[(n+1)%norgs])
				pair := w / 2
				sb.IdempotencyKey = fmt.Sprintf("pair-%d-%d", pair, n)
				sb.BodyHash = sha256.Sum256(fmt.Appendf(nil, "pair %d %d", pair, n))
				if w%2 == 1 {
					// The second copy carries the same events: it is
					// the same request.
					sb.Events = work[w-1][n].Events
				}
			case 4:
				sb = g.sub(t, now, "org_inflight_unknown")
			}
			work[w] = append(work[w], sb)
		}
	}
	var clientsWG sync.WaitGroup
	start := make(chan struct{})
	for w := range clients {
		clientsWG.Add(1)
		go func() {
			defer clientsWG.Done()
			<-start
			for _, sb := range work[w] {
				res, err := c.Submit(ctx, sb)
				answers[w] = append(answers[w], answer{sb, res, err})
				if err != nil || res.Err != nil {
					continue
				}
				// Read-your-writes: the acknowledged events are there.
				for _, a := range res.Events {
					e, err := s.Event(ctx, a.ID)
					if err != nil || e.Seq != a.Seq || e.OrganizationID != a.OrganizationID {
						t.Errorf("event %s acknowledged as %s seq %d, then read: %+v, %v", a.ID, a.OrganizationID, a.Seq, e, err)
					}
				}
			}
		}()
	}
	close(start)
	clientsWG.Wait()
	c.Stop()
	stopped = true
	close(readDone)
	readers.Wait()
	if t.Failed() {
		return
	}

	acked := map[string]event.Accepted{}
	ack := func(a event.Accepted) {
		if prev, ok := acked[a.ID]; ok && prev != a {
			t.Fatalf("event %s acknowledged as %+v and as %+v", a.ID, prev, a)
		}
		acked[a.ID] = a
	}
	for w := range clients {
		for n, a := range answers[w] {
			switch {
			case a.err != nil:
				t.Errorf("client %d call %d: Submit: %v", w, n, a.err)
			case n%5 == 4:
				if !errors.Is(a.res.Err, store.ErrNotFound) {
					t.Errorf("client %d call %d: an unknown organization got %+v, want ErrNotFound", w, n, a.res)
				}
			case a.res.Err != nil || len(a.res.Events) != len(a.sub.Events):
				t.Errorf("client %d call %d: %+v", w, n, a.res)
			default:
				for _, e := range a.res.Events {
					ack(e)
				}
			}
		}
	}
	// Each idempotent pair: one stored it, both have its events.
	for w := 0; w+1 < clients; w += 2 {
		for n := 3; n < calls; n += 5 {
			a, b := answers[w][n].res, answers[w+1][n].res
			if !slices.Equal(a.Events, b.Events) {
				t.Errorf("key pair-%d-%d answered differently: %+v and %+v", w/2, n, a.Events, b.Events)
			}
			if a.Replayed == b.Replayed {
				t.Errorf("key pair-%d-%d: replayed %v and %v, want exactly one stored", w/2, n, a.Replayed, b.Replayed)
			}
		}
	}

	// The database holds exactly the acknowledged events, numbered
	// without gaps, and each reader saw every one of its organization's.
	seqs := storedSeqs(ctx, t, s, acked)
	for i, o := range orgs {
		if read[i] != int64(len(seqs[o])) {
			t.Errorf("the reader of %s saw %d records, the log holds %d", o, read[i], len(seqs[o]))
		}
		// Search finds every one of them.
		found, q := 0, store.EventQuery{OrganizationID: o, Limit: 100}
		for {
			page, err := s.SearchEvents(ctx, q)
			if err != nil {
				t.Fatalf("SearchEvents(%s): %v", o, err)
			}
			found += len(page.Events)
			if page.After == "" {
				break
			}
			q.After = page.After
		}
		if found != len(seqs[o]) {
			t.Errorf("search of %s found %d events, the log holds %d", o, found, len(seqs[o]))
		}
	}
}

// TestCommitsInFlightShareAKey sends one idempotency key in two
// transactions in flight at once, deterministically: the first claims the
// key and then waits for its organization's row (held here by another
// transaction), the second waits for the first's claim. Once the row is
// free, one submission is stored and both callers get its events.
func TestCommitsInFlightShareAKey(t *testing.T) {
	ctx := context.Background()
	s := openFresh(t)
	const org = "org_inflight_key"
	createOrg(t, s, org)
	c := ingest.New(s, ingest.Options{Concurrency: 2}, nil, nil)
	c.Start()
	defer c.Stop()

	// Hold the organization's row, as a long append elsewhere would.
	holder, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := holder.Exec(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE`, org); err != nil {
		t.Fatal(err)
	}
	// waiting reports how many of Trail's connections wait for a lock.
	waiting := func() int {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	g := newGen(23)
	now := time.Now().UTC().Truncate(time.Millisecond)
	sb := g.sub(t, now, org, org)
	sb.IdempotencyKey, sb.BodyHash = "shared-key", sha256.Sum256([]byte("shared body"))
	type answer struct {
		res store.AppendResult
		err error
	}
	answers := make(chan answer, 2)
	submit := func() {
		res, err := c.Submit(ctx, sb)
		answers <- answer{res, err}
	}
	go submit()
	for waiting() < 1 { // the first claimed the key and waits for the row
		time.Sleep(5 * time.Millisecond)
	}
	go submit()
	for waiting() < 2 { // the second, in the other transaction, waits for the key
		time.Sleep(5 * time.Millisecond)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := <-answers, <-answers
	if a.err != nil || b.err != nil || a.res.Err != nil || b.res.Err != nil {
		t.Fatalf("answers: %+v, %+v", a, b)
	}
	if len(a.res.Events) != 2 || !slices.Equal(a.res.Events, b.res.Events) {
		t.Errorf("the two callers got %+v and %+v, want the same two events", a.res.Events, b.res.Events)
	}
	if a.res.Replayed == b.res.Replayed {
		t.Errorf("replayed %v and %v, want exactly one stored", a.res.Replayed, b.res.Replayed)
	}
	if n, err := s.NextSeq(ctx, org); err != nil || n != 2 {
		t.Errorf("NextSeq = %d, %v; want 2 (one submission of two events stored)", n, err)
	}
}
