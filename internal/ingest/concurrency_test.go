package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// holdAppender holds every Append call until the test releases that call
// alone, so that commits in flight can be finished in any order. A call
// whose first event's id starts with "bad" fails with the store's
// unavailability once released.
type holdAppender struct {
	calls    chan *heldCall // one per Append, when it starts
	inFlight atomic.Int32
	most     atomic.Int32 // the most calls in flight at once
}

// releaseUntil lets every Append that starts through at once, until stop
// is closed.
func (a *holdAppender) releaseUntil(stop <-chan struct{}) {
	for {
		select {
		case h := <-a.calls:
			close(h.release)
		case <-stop:
			return
		}
	}
}

type heldCall struct {
	subs    []store.Submission
	release chan struct{}
}

func newHoldAppender() *holdAppender { return &holdAppender{calls: make(chan *heldCall, 100)} }

func (a *holdAppender) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	n := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for {
		m := a.most.Load()
		if n <= m || a.most.CompareAndSwap(m, n) {
			break
		}
	}
	c := &heldCall{subs: append([]store.Submission(nil), subs...), release: make(chan struct{})}
	a.calls <- c
	<-c.release
	if len(subs) > 0 && len(subs[0].Events) > 0 && strings.HasPrefix(subs[0].Events[0].ID, "bad") {
		return nil, fmt.Errorf("connection lost: %w", store.ErrUnavailable)
	}
	out := make([]store.AppendResult, len(subs))
	for i, s := range subs {
		for _, e := range s.Events {
			out[i].Events = append(out[i].Events, event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID})
		}
	}
	return out, nil
}

type submitted struct {
	res store.AppendResult
	err error
}

// submitAsync submits s and reports its answer on the returned channel.
func submitAsync(c *Committer, s store.Submission) <-chan submitted {
	out := make(chan submitted, 1)
	go func() {
		res, err := c.Submit(context.Background(), s)
		out <- submitted{res, err}
	}()
	return out
}

// waitQueued waits until n submissions are queued (none taken by a worker).
func waitQueued(t *testing.T, c *Committer, n int) {
	t.Helper()
	for c.queued() < n {
		time.Sleep(time.Millisecond)
	}
}

// With Concurrency n, n transactions are in flight at once and never more;
// each one's callers are answered when it commits, whatever the others do,
// so commits may finish out of the order they started in.
func TestCommitterKeepsCommitsInFlight(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprint("concurrency=", n), func(t *testing.T) {
			app := newHoldAppender()
			var commits atomic.Int32
			c := New(app, Options{Concurrency: n, OnCommit: func() { commits.Add(1) }}, nil, nil)
			c.Start()
			defer c.Stop()

			// n submissions, each taken into a transaction of its own
			// by a free worker.
			var held []*heldCall
			var answers []<-chan submitted
			for i := range n {
				answers = append(answers, submitAsync(c, sub(fmt.Sprint("first", i), 1)))
				held = append(held, <-app.calls)
			}
			// Every worker is busy: what comes now waits in the queue.
			for i := range n {
				answers = append(answers, submitAsync(c, sub(fmt.Sprint("next", i), 1)))
			}
			waitQueued(t, c, n)

			// The last transaction to start is the first to finish: its
			// caller is answered while the earlier ones still hold.
			last := held[n-1]
			close(last.release)
			if got := <-answers[n-1]; got.err != nil || got.res.Events[0].ID != fmt.Sprint("first", n-1, "-0") {
				t.Fatalf("the last transaction's caller got %+v, %v", got.res, got.err)
			}
			for _, h := range held[:n-1] {
				close(h.release)
			}
			// The queued submissions go into further transactions; let
			// every one of them through.
			done := make(chan struct{})
			go app.releaseUntil(done)
			for i, a := range answers {
				if i == n-1 {
					continue // answered above
				}
				if got := <-a; got.err != nil || len(got.res.Events) != 1 {
					t.Errorf("submission %d: %+v, %v", i, got.res, got.err)
				}
			}
			close(done)
			if m := app.most.Load(); m != int32(n) {
				t.Errorf("at most %d transactions were in flight at once, want %d", m, n)
			}
		})
	}
}

// Stop waits for every transaction in flight and commits what is queued;
// nothing queued before Stop is refused.
func TestCommitterStopDrainsEveryCommitInFlight(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint("concurrency=", n), func(t *testing.T) {
			app := newHoldAppender()
			c := New(app, Options{Concurrency: n}, nil, nil)
			c.Start()
			var held []*heldCall
			var answers []<-chan submitted
			for i := range n {
				answers = append(answers, submitAsync(c, sub(fmt.Sprint("flight", i), 1)))
				held = append(held, <-app.calls)
			}
			for i := range 5 {
				answers = append(answers, submitAsync(c, sub(fmt.Sprint("queued", i), 1)))
			}
			waitQueued(t, c, 5)
			stopped := make(chan struct{})
			go func() { c.Stop(); close(stopped) }()
			// Stop cannot return while transactions are held.
			for _, h := range held {
				select {
				case <-stopped:
					t.Fatal("Stop returned while a transaction was in flight")
				default:
				}
				close(h.release)
			}
			go app.releaseUntil(stopped)
			<-stopped
			for i, a := range answers {
				if got := <-a; got.err != nil {
					t.Errorf("submission %d failed at shutdown: %v", i, got.err)
				}
			}
			if _, err := c.Submit(context.Background(), sub("late", 1)); !errors.Is(err, ErrStopped) {
				t.Errorf("Submit after Stop = %v, want ErrStopped", err)
			}
		})
	}
}

// A transaction that fails fails its own callers only: the one in flight
// beside it commits, and its callers are answered with its results.
func TestCommitterFailureStaysInItsCommit(t *testing.T) {
	for _, failFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("fail first=", failFirst), func(t *testing.T) {
			app := newHoldAppender()
			var commits atomic.Int32
			c := New(app, Options{Concurrency: 2, OnCommit: func() { commits.Add(1) }}, nil, nil)
			c.Start()
			defer c.Stop()
			names := []string{"good", "bad"}
			if failFirst {
				names = []string{"bad", "good"}
			}
			answers := map[string]<-chan submitted{}
			held := map[string]*heldCall{}
			for _, name := range names {
				answers[name] = submitAsync(c, sub(name, 1))
				held[name] = <-app.calls
			}
			close(held["bad"].release)
			if got := <-answers["bad"]; !errors.Is(got.err, store.ErrUnavailable) {
				t.Errorf("the failed transaction's caller got %v, want the store's error", got.err)
			}
			close(held["good"].release)
			if got := <-answers["good"]; got.err != nil || got.res.Events[0].ID != "good-0" {
				t.Errorf("the other transaction's caller got %+v, %v", got.res, got.err)
			}
			if commits.Load() != 1 {
				t.Errorf("OnCommit called %d times, want once (for the transaction that committed)", commits.Load())
			}
		})
	}
}

// The refusal under overload does not change with more commits in
// flight: with every worker busy and the queue full, Submit fails at once.
func TestCommitterOverloadWithCommitsInFlight(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("concurrency=", n), func(t *testing.T) {
			app := newHoldAppender()
			c := New(app, Options{Concurrency: n, QueueSize: 2}, nil, nil)
			c.Start()
			var wg sync.WaitGroup
			var held []*heldCall
			for i := range n {
				wg.Add(1)
				go func() { defer wg.Done(); _, _ = c.Submit(context.Background(), sub(fmt.Sprint("flight", i), 1)) }()
				held = append(held, <-app.calls)
			}
			for i := range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); _, _ = c.Submit(context.Background(), sub(fmt.Sprint("queued", i), 1)) }()
			}
			waitQueued(t, c, 2)
			// Every transaction is held until after this answer: getting
			// one at all shows the refusal waits for no commit.
			if _, err := c.Submit(context.Background(), sub("over", 1)); !errors.Is(err, ErrOverloaded) {
				t.Fatalf("Submit on a full queue = %v, want ErrOverloaded", err)
			}
			for _, h := range held {
				close(h.release)
			}
			stopped := make(chan struct{})
			go app.releaseUntil(stopped)
			wg.Wait()
			c.Stop()
			close(stopped)
		})
	}
}

// subOf is a submission of one event of org.
func subOf(org, id string) store.Submission {
	return store.Submission{Events: []store.PendingEvent{{OrganizationID: org, ID: id}}}
}

// With ByOrganization, the transactions in flight carry different
// organizations: a submission waits behind its own organization's
// transaction, never takes another's worker, and one organization's
// submissions are committed by one transaction at a time.
func TestCommitterByOrganization(t *testing.T) {
	const n = 4
	app := newHoldAppender()
	c := New(app, Options{Concurrency: n, ByOrganization: true}, nil, nil)
	c.Start()
	defer c.Stop()
	// Organizations whose queues differ, and a second one of the first's.
	var orgs []string
	seen := map[int]bool{}
	var twin string
	for i := 0; len(orgs) < 2 || twin == ""; i++ {
		o := fmt.Sprint("org_", i)
		l := laneOf(subOf(o, ""), n)
		switch {
		case !seen[l]:
			seen[l] = true
			orgs = append(orgs, o)
		case l == laneOf(subOf(orgs[0], ""), n) && twin == "":
			twin = o
		}
	}
	a := submitAsync(c, subOf(orgs[0], "a"))
	first := <-app.calls
	// The same organization (and one sharing its queue) waits for it...
	same := submitAsync(c, subOf(orgs[0], "same"))
	shared := submitAsync(c, subOf(twin, "twin"))
	// ...while another organization's commit goes ahead beside it.
	b := submitAsync(c, subOf(orgs[1], "b"))
	other := <-app.calls
	if got := other.subs[0].Events[0].ID; got != "b" {
		t.Fatalf("the second transaction in flight carries %s, want the other organization's", got)
	}
	close(other.release)
	if got := <-b; got.err != nil {
		t.Fatalf("other organization: %v", got.err)
	}
	if m := app.most.Load(); m != 2 {
		t.Errorf("%d transactions were in flight at once, want 2", m)
	}
	waitQueued(t, c, 2)
	close(first.release)
	if got := <-a; got.err != nil {
		t.Fatal(got.err)
	}
	next := <-app.calls // both waiting submissions, gathered together
	close(next.release)
	for _, ch := range []<-chan submitted{same, shared} {
		if got := <-ch; got.err != nil {
			t.Error(got.err)
		}
	}
	if len(next.subs) != 2 {
		t.Errorf("the queue's next transaction carries %d submissions, want both that waited", len(next.subs))
	}
}
