package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// appender builds submissions from generated events and remembers what each
// accepted event must be stored as.
type appender struct {
	t *testing.T
	s store.Backend
	*generated
}

// generated is what an appender and its copies for subtests share.
type generated struct {
	mu    sync.Mutex
	rng   *rand.Rand
	n     int
	tails map[string][]byte // event id → Draft.Tail
}

func newAppender(t *testing.T, s store.Backend, seed uint64) *appender {
	return &appender{t: t, s: s, generated: &generated{rng: rand.New(rand.NewPCG(seed, 0x5eed)), tails: map[string][]byte{}}}
}

// with returns the appender reporting to t (a subtest), sharing its state.
func (ap *appender) with(t *testing.T) *appender {
	return &appender{t: t, s: ap.s, generated: ap.generated}
}

// event returns a new pending event of org.
func (ap *appender) event(org string) store.PendingEvent {
	ap.t.Helper()
	ap.mu.Lock()
	defer ap.mu.Unlock()
	d := draft(ap.t, Event(ap.rng, ap.n))
	ap.n++
	// Received a millisecond apart, at millisecond precision (what records keep).
	e := pending(org, d, t0.Add(time.Duration(ap.n)*time.Millisecond))
	ap.tails[e.ID] = d.Tail
	return e
}

// sub returns a submission with one new event for each org given.
func (ap *appender) sub(orgs ...string) store.Submission {
	ap.t.Helper()
	var s store.Submission
	for _, o := range orgs {
		s.Events = append(s.Events, ap.event(o))
	}
	return s
}

// appendOK appends and fails the test on a transaction error.
func (ap *appender) appendOK(now time.Time, subs ...store.Submission) []store.AppendResult {
	ap.t.Helper()
	res, err := ap.s.Append(ctxOf(ap.t), subs, now)
	if err != nil {
		ap.t.Fatalf("Append: %v", err)
	}
	if len(res) != len(subs) {
		ap.t.Fatalf("Append returned %d results for %d submissions", len(res), len(subs))
	}
	return res
}

// checkAccepted checks a result of a submission that must have been stored
// as new events: one Accepted per event, in submission order, with the
// event's id, organization and received_at.
func (ap *appender) checkAccepted(what string, sub store.Submission, r store.AppendResult) {
	ap.t.Helper()
	if r.Err != nil || r.Replayed || len(r.Events) != len(sub.Events) {
		ap.t.Fatalf("%s: result = %+v, want %d new events", what, r, len(sub.Events))
	}
	for i, e := range sub.Events {
		a := r.Events[i]
		if a.ID != e.ID || a.OrganizationID != e.OrganizationID || !a.ReceivedAt.Equal(e.ReceivedAt) {
			ap.t.Fatalf("%s: event %d accepted as %+v, want id %s, organization %s, received_at %v",
				what, i, a, e.ID, e.OrganizationID, e.ReceivedAt)
		}
	}
}

// checkStored checks that the accepted events are stored, exactly as
// event.AppendRecord encodes them.
func (ap *appender) checkStored(accepted ...event.Accepted) {
	ap.t.Helper()
	for _, a := range accepted {
		got, err := ap.s.Event(ctxOf(ap.t), a.ID)
		if err != nil {
			ap.t.Fatalf("Event(%s): %v", a.ID, err)
		}
		want := record(a, ap.tails[a.ID])
		if got.ID != a.ID || got.OrganizationID != a.OrganizationID || got.Seq != a.Seq || !bytes.Equal(got.Record, want) {
			ap.t.Fatalf("Event(%s) = {%s %s %d %s}\nwant {%s %s %d %s}",
				a.ID, got.OrganizationID, got.ID, got.Seq, got.Record, a.OrganizationID, a.ID, a.Seq, want)
		}
	}
}

// checkAbsent checks that none of the events was stored.
func (ap *appender) checkAbsent(events ...store.PendingEvent) {
	ap.t.Helper()
	for _, e := range events {
		got, err := ap.s.Event(ctxOf(ap.t), e.ID)
		if err == nil {
			ap.t.Errorf("event %s of %s was stored (as seq %d) but must not have been", e.ID, e.OrganizationID, got.Seq)
		} else {
			wantErr(ap.t, "Event of an event that was not stored", err, store.ErrNotFound)
		}
	}
}

func (ap *appender) nextSeq(org string) int64 {
	ap.t.Helper()
	n, err := ap.s.NextSeq(ctxOf(ap.t), org)
	if err != nil {
		ap.t.Fatalf("NextSeq(%s): %v", org, err)
	}
	return n
}

func (ap *appender) wantNextSeq(want map[string]int64) {
	ap.t.Helper()
	for org, n := range want {
		if got := ap.nextSeq(org); got != n {
			ap.t.Errorf("NextSeq(%s) = %d, want %d", org, got, n)
		}
	}
}

func idempotent(sub store.Submission, key, body string) store.Submission {
	sub.IdempotencyKey = key
	sub.BodyHash = sha256.Sum256([]byte(body))
	return sub
}

func sameAccepted(a, b []event.Accepted) bool {
	return slices.EqualFunc(a, b, func(x, y event.Accepted) bool {
		return x.ID == y.ID && x.OrganizationID == y.OrganizationID && x.Seq == y.Seq && x.ReceivedAt.Equal(y.ReceivedAt)
	})
}

func testAppend(t *testing.T, open func(t *testing.T) store.Backend) {
	// Calls of a few events, and calls of hundreds (a store may write
	// large group commits another way), each with an idempotency key on
	// its first submission, replayed after.
	for _, tc := range []struct {
		name                string
		calls, subs, events int // at most subs submissions of at least minEvents, at most events events
		minEvents           int
	}{
		{name: "small", calls: 12, subs: 4, events: 5, minEvents: 1},
		{name: "large", calls: 3, subs: 3, events: 160, minEvents: 100},
	} {
		t.Run("SeqsContiguous/"+tc.name, func(t *testing.T) {
			s := open(t)
			orgs := []string{orgID("A", 1), orgID("A", 2), orgID("A", 3)}
			for _, o := range orgs {
				mustCreateOrg(t, s, o, t0)
			}
			ap := newAppender(t, s, 1)
			next := map[string]int64{}
			rng := rand.New(rand.NewPCG(2, 2))
			for call := range tc.calls {
				// Each call: submissions of several events, organizations
				// interleaved within submissions and across them.
				var subs []store.Submission
				for range 1 + rng.IntN(tc.subs) {
					var os []string
					for range tc.minEvents + rng.IntN(tc.events-tc.minEvents+1) {
						os = append(os, orgs[rng.IntN(len(orgs))])
					}
					subs = append(subs, ap.sub(os...))
				}
				key := fmt.Sprintf("contiguous-%s-%d", tc.name, call)
				subs[0] = idempotent(subs[0], key, key)
				res := ap.appendOK(t0, subs...)
				for i, sub := range subs {
					ap.checkAccepted(fmt.Sprintf("call %d submission %d", call, i), sub, res[i])
					for j, a := range res[i].Events {
						if a.Seq != next[a.OrganizationID] {
							t.Fatalf("call %d submission %d event %d of %s got seq %d, want %d (seqs start at 0 and are contiguous per organization)",
								call, i, j, a.OrganizationID, a.Seq, next[a.OrganizationID])
						}
						next[a.OrganizationID]++
					}
					ap.checkStored(res[i].Events...)
				}
				ap.wantNextSeq(next)
				again := ap.appendOK(t0, subs[0])
				if !again[0].Replayed || !sameAccepted(again[0].Events, res[0].Events) {
					t.Fatalf("call %d: replay of key %s = %+v, want the first result %+v", call, key, again[0], res[0])
				}
			}
			// Other organizations' logs are untouched.
			ap.wantNextSeq(map[string]int64{store.SystemOrganizationID: 0})
		})
	}

	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		res, err := s.Append(ctxOf(t), nil, t0)
		if err != nil || len(res) != 0 {
			t.Errorf("Append(nothing) = %v, %v; want no results, nil", res, err)
		}
	})

	t.Run("UnknownOrganization", func(t *testing.T) {
		s := open(t)
		a, b := orgID("U", 1), orgID("U", 2)
		mustCreateOrg(t, s, a, t0)
		mustCreateOrg(t, s, b, t0)
		ap := newAppender(t, s, 3)
		ap.appendOK(t0, ap.sub(a, a)) // a: 0, 1

		ok1 := ap.sub(a, b)
		unknown := ap.sub("org_unknown")
		mixed := ap.sub(b, "org_unknown", a, b) // known ones first, the unknown one in the middle
		ok2 := ap.sub(b, a)
		res := ap.appendOK(t0, ok1, unknown, mixed, ok2)

		for i, r := range []store.AppendResult{res[1], res[2]} {
			wantErr(t, fmt.Sprintf("submission %d naming an unknown organization", i+1), r.Err, store.ErrNotFound)
			if len(r.Events) != 0 || r.Replayed {
				t.Errorf("failed submission %d: result = %+v, want no events", i+1, r)
			}
		}
		ap.checkAbsent(unknown.Events...)
		ap.checkAbsent(mixed.Events...)
		// The others are stored, with no seq skipped for the failed ones.
		ap.checkAccepted("submission before the failures", ok1, res[0])
		ap.checkAccepted("submission after the failures", ok2, res[3])
		seqs := []int64{res[0].Events[0].Seq, res[0].Events[1].Seq, res[3].Events[0].Seq, res[3].Events[1].Seq}
		if want := []int64{2, 0, 1, 3}; !slices.Equal(seqs, want) {
			t.Errorf("seqs of the successful submissions = %v, want %v", seqs, want)
		}
		ap.checkStored(res[0].Events...)
		ap.checkStored(res[3].Events...)
		ap.wantNextSeq(map[string]int64{a: 4, b: 2})

		// A call whose every submission fails is not an error either.
		res = ap.appendOK(t0, ap.sub("org_unknown"))
		wantErr(t, "lone submission naming an unknown organization", res[0].Err, store.ErrNotFound)
		ap.wantNextSeq(map[string]int64{a: 4, b: 2})

		_, err := s.NextSeq(ctxOf(t), "org_unknown")
		wantErr(t, "NextSeq(unknown)", err, store.ErrNotFound)
	})

	t.Run("Idempotency", func(t *testing.T) {
		s := open(t)
		a, b := orgID("I", 1), orgID("I", 2)
		mustCreateOrg(t, s, a, t0)
		mustCreateOrg(t, s, b, t0)
		ap := newAppender(t, s, 4)
		now := t0.Add(time.Hour)

		first := idempotent(ap.sub(a, b, a), "key-1", "body-1")
		res := ap.appendOK(now, first)
		ap.checkAccepted("first submission", first, res[0])
		orig := res[0].Events
		ap.wantNextSeq(map[string]int64{a: 2, b: 1})

		t.Run("Replay", func(t *testing.T) {
			ap := ap.with(t)
			// A retry carries freshly generated event ids; the answer is the first one.
			retry := idempotent(ap.sub(a, b, a), "key-1", "body-1")
			res := ap.appendOK(now.Add(23*time.Hour), retry, ap.sub(b))
			if r := res[0]; r.Err != nil || !r.Replayed || r.BodyMismatch || !sameAccepted(r.Events, orig) {
				t.Errorf("replay: result = %+v\nwant Replayed (same body) with %+v", r, orig)
			}
			ap.checkAbsent(retry.Events...)
			ap.checkAccepted("submission beside a replay", ap.subOf(res[1]), res[1])
			if got := res[1].Events[0].Seq; got != 1 {
				t.Errorf("event appended beside a replay got seq %d, want 1", got)
			}
			ap.wantNextSeq(map[string]int64{a: 2, b: 2})
			ap.checkStored(orig...)
		})

		t.Run("SameKeyOtherBody", func(t *testing.T) {
			// The key alone decides (WorkOS's definition): another body
			// with a used key is answered with the first result, stores
			// nothing, and is marked as a mismatch.
			ap := ap.with(t)
			before := map[string]int64{a: ap.nextSeq(a), b: ap.nextSeq(b)}
			tests := []struct {
				name string
				sub  store.Submission
			}{
				{"other body", idempotent(ap.sub(a), "key-1", "body-2")},
				{"other body, other events", idempotent(ap.sub(a, a, b, b), "key-1", "body-3")},
				{"the first body after another", idempotent(ap.sub(a, b, a), "key-1", "body-1")},
			}
			for _, tt := range tests {
				res := ap.appendOK(now.Add(time.Hour), tt.sub)
				r := res[0]
				wantMismatch := tt.name != "the first body after another"
				if r.Err != nil || !r.Replayed || r.BodyMismatch != wantMismatch || !sameAccepted(r.Events, orig) {
					t.Errorf("%s: result = %+v\nwant Replayed (mismatch %v) with the first result %+v", tt.name, r, wantMismatch, orig)
				}
				ap.checkAbsent(tt.sub.Events...)
			}
			ap.wantNextSeq(before)
			ap.checkStored(orig...)
			// Keys belong to the organization of the first event: the
			// same key for another organization is a new submission.
			elsewhere := idempotent(ap.sub(b), "key-1", "body-2")
			res := ap.appendOK(now, elsewhere)
			if r := res[0]; r.Replayed || r.BodyMismatch {
				t.Errorf("the key in another organization = %+v, want a new submission", r)
			}
			ap.checkAccepted("the key in another organization", elsewhere, res[0])
		})

		t.Run("WithinOneCall", func(t *testing.T) {
			ap := ap.with(t)
			x := idempotent(ap.sub(b, a), "key-2", "body-x")
			dup := idempotent(ap.sub(b, a), "key-2", "body-x")
			y := idempotent(ap.sub(b), "key-2", "body-y")
			before := map[string]int64{a: ap.nextSeq(a), b: ap.nextSeq(b)}
			res := ap.appendOK(now, x, dup, y, dup)
			ap.checkAccepted("first of duplicates", x, res[0])
			for _, i := range []int{1, 2, 3} {
				if r := res[i]; r.Err != nil || !r.Replayed || r.BodyMismatch != (i == 2) || !sameAccepted(r.Events, res[0].Events) {
					t.Errorf("repeat %d of the key in one call: result = %+v, want Replayed (mismatch %v) with %+v", i, r, i == 2, res[0].Events)
				}
			}
			ap.checkAbsent(dup.Events...)
			ap.checkAbsent(y.Events...)
			ap.checkStored(res[0].Events...)
			ap.wantNextSeq(map[string]int64{a: before[a] + 1, b: before[b] + 1})
		})

		t.Run("FailedSubmissionIsNotRemembered", func(t *testing.T) {
			ap := ap.with(t)
			bad := idempotent(ap.sub("org_unknown"), "key-3", "body")
			res := ap.appendOK(now, bad)
			wantErr(t, "idempotent submission naming an unknown organization", res[0].Err, store.ErrNotFound)
			// The same key and body once the mistake is fixed: stored, not a replay of the failure.
			good := idempotent(ap.sub(a), "key-3", "body")
			res = ap.appendOK(now, good)
			ap.checkAccepted("after a failed attempt", good, res[0])
		})
	})

	t.Run("IdempotencyExpiry", func(t *testing.T) {
		s := open(t)
		a := orgID("E", 1)
		mustCreateOrg(t, s, a, t0)
		ap := newAppender(t, s, 5)
		now := t0

		orig := ap.appendOK(now, idempotent(ap.sub(a), "k", "b"))[0].Events
		// Just under 24 hours later: remembered.
		r := ap.appendOK(now.Add(24*time.Hour-time.Second), idempotent(ap.sub(a), "k", "b"))[0]
		if !r.Replayed || !sameAccepted(r.Events, orig) {
			t.Errorf("repeat 24h-1s later = %+v, want a replay of %+v", r, orig)
		}
		// Over 24 hours later: forgotten, so the events are new.
		late := idempotent(ap.sub(a), "k", "b")
		r = ap.appendOK(now.Add(24*time.Hour+time.Second), late)[0]
		ap.checkAccepted("repeat 24h+1s later", late, r)
		if r.Events[0].Seq != 1 {
			t.Errorf("repeat 24h+1s later got seq %d, want 1", r.Events[0].Seq)
		}
		// …and that new result is what is remembered from then on.
		r2 := ap.appendOK(now.Add(25*time.Hour), idempotent(ap.sub(a), "k", "b"))[0]
		if !r2.Replayed || r2.BodyMismatch || !sameAccepted(r2.Events, r.Events) {
			t.Errorf("repeat after the key was stored again = %+v, want a replay of %+v", r2, r.Events)
		}
		ap.wantNextSeq(map[string]int64{a: 2})
		// An expired key is free for another body too, and that body is
		// what the key stands for from then on.
		other := idempotent(ap.sub(a), "k", "other body")
		r3 := ap.appendOK(now.Add(50*time.Hour), other)[0]
		ap.checkAccepted("another body after the key expired", other, r3)
		r4 := ap.appendOK(now.Add(50*time.Hour+time.Minute), idempotent(ap.sub(a), "k", "b"))[0]
		if !r4.Replayed || !r4.BodyMismatch || !sameAccepted(r4.Events, r3.Events) {
			t.Errorf("the old body after the key was taken again = %+v, want a mismatched replay of %+v", r4, r3.Events)
		}
		ap.wantNextSeq(map[string]int64{a: 3})
	})

	t.Run("ExpireIdempotencyKeys", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		a := orgID("X", 1)
		mustCreateOrg(t, s, a, t0)
		ap := newAppender(t, s, 6)
		ap.appendOK(t0, idempotent(ap.sub(a), "old-1", "b"), idempotent(ap.sub(a), "old-2", "b"))
		ap.appendOK(t0.Add(time.Hour), idempotent(ap.sub(a), "new", "b"))

		if n, err := s.ExpireIdempotencyKeys(ctx, t0); err != nil || n != 0 {
			t.Errorf("ExpireIdempotencyKeys(before every key) = %d, %v; want 0, nil", n, err)
		}
		if n, err := s.ExpireIdempotencyKeys(ctx, t0.Add(time.Minute)); err != nil || n != 2 {
			t.Errorf("ExpireIdempotencyKeys(between) = %d, %v; want 2, nil", n, err)
		}
		if n, err := s.ExpireIdempotencyKeys(ctx, t0.Add(time.Minute)); err != nil || n != 0 {
			t.Errorf("ExpireIdempotencyKeys again = %d, %v; want 0, nil", n, err)
		}
		// Within 24 hours of their creation, but deleted: forgotten.
		res := ap.appendOK(t0.Add(2*time.Hour), idempotent(ap.sub(a), "old-1", "b"), idempotent(ap.sub(a), "new", "b"))
		if res[0].Replayed {
			t.Errorf("an expired key was replayed: %+v", res[0])
		}
		if !res[1].Replayed {
			t.Errorf("a key newer than the cutoff was forgotten: %+v", res[1])
		}
		ap.wantNextSeq(map[string]int64{a: 4})
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		orgs := []string{orgID("P", 1), orgID("P", 2), orgID("P", 3)}
		for _, o := range orgs {
			mustCreateOrg(t, s, o, t0)
		}
		ap := newAppender(t, s, 7)
		const workers, calls = 8, 15
		var (
			mu       sync.Mutex
			accepted []event.Accepted
			wg       sync.WaitGroup
		)
		// Build every submission first: the goroutines only call Append.
		work := make([][][]store.Submission, workers)
		for w := range work {
			for c := range calls {
				subs := []store.Submission{ap.sub(orgs[(w+c)%3], orgs[w%3]), ap.sub(orgs[c%3])}
				if c%5 == 0 { // some idempotent ones, each key unique
					subs[1] = idempotent(subs[1], fmt.Sprintf("w%d-c%d", w, c), "b")
				}
				work[w] = append(work[w], subs)
			}
		}
		errs := make(chan error, workers*calls)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, subs := range work[w] {
					res, err := s.Append(ctxOf(t), subs, t0)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for i, r := range res {
						if r.Err != nil || r.Replayed || len(r.Events) != len(subs[i].Events) {
							errs <- fmt.Errorf("result %+v for %d events", r, len(subs[i].Events))
						}
						accepted = append(accepted, r.Events...)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Append: %v", err)
		}
		seqs := map[string][]int64{}
		ids := map[string]bool{}
		for _, a := range accepted {
			seqs[a.OrganizationID] = append(seqs[a.OrganizationID], a.Seq)
			if ids[a.ID] {
				t.Errorf("event %s accepted twice", a.ID)
			}
			ids[a.ID] = true
		}
		if want := workers * calls * 3; len(accepted) != want {
			t.Fatalf("%d events accepted, want %d", len(accepted), want)
		}
		for _, o := range orgs {
			ss := seqs[o]
			slices.Sort(ss)
			for i, v := range ss {
				if v != int64(i) {
					t.Fatalf("seqs of %s are not 0…%d without gaps or repeats: %v", o, len(ss)-1, ss)
				}
			}
			if got := ap.nextSeq(o); got != int64(len(ss)) {
				t.Errorf("NextSeq(%s) = %d, want %d", o, got, len(ss))
			}
		}
		ap.checkStored(accepted...)
	})

	t.Run("EventNotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.Event(ctxOf(t), event.NewID(t0))
		wantErr(t, "Event(unknown id)", err, store.ErrNotFound)
	})
}

// subOf rebuilds the submission a result answered, for checkAccepted.
func (ap *appender) subOf(r store.AppendResult) store.Submission {
	var s store.Submission
	for _, a := range r.Events {
		s.Events = append(s.Events, store.PendingEvent{ID: a.ID, OrganizationID: a.OrganizationID, ReceivedAt: a.ReceivedAt})
	}
	return s
}
