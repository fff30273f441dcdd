package livetail

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

// memLog is an in-memory Source: organization → records by seq.
type memLog struct {
	mu   sync.Mutex
	logs map[string][][]byte
}

func (m *memLog) NextSeq(_ context.Context, org string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.logs[org])), nil
}

func (m *memLog) ReadRecords(_ context.Context, org string, from, to int64, fn func(int64, []byte) error) error {
	m.mu.Lock()
	recs := m.logs[org]
	m.mu.Unlock()
	for seq := from; seq < to && seq < int64(len(recs)); seq++ {
		if recs[seq] == nil {
			continue // deleted by retention
		}
		if err := fn(seq, recs[seq]); err != nil {
			return err
		}
	}
	return nil
}

// add appends an event of action to org's log and returns its seq.
func (m *memLog) add(t testing.TB, org, action, actor string) int64 {
	now := testclock.Now(t)
	d, err := event.ParseEvent([]byte(fmt.Sprintf(`{"action":%q,"occurred_at":%q,"actor":{"id":%q,"type":"user","name":"Ada Lovelace"},"targets":[{"id":"t1","type":"team"}],"context":{"location":"203.0.113.7"},"metadata":{"note":"Quarterly Report"}}`,
		action, testclock.Format(now), actor)), now, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logs == nil {
		m.logs = map[string][][]byte{}
	}
	seq := int64(len(m.logs[org]))
	m.logs[org] = append(m.logs[org], event.AppendRecord(nil, event.Accepted{ID: event.NewID(now), OrganizationID: org, Seq: seq, ReceivedAt: now}, d.Tail))
	return seq
}

// next waits for the next record of s, or fails.
func next(t *testing.T, s *Subscription) Record {
	t.Helper()
	select {
	case r := <-s.C():
		return r
	case <-s.Done():
		t.Fatalf("subscription ended: %v", s.Err())
	case <-time.After(time.Minute):
		t.Fatal("no record within a minute")
	}
	return Record{}
}

func TestHubDelivers(t *testing.T) {
	src := &memLog{}
	src.add(t, "org_a", "old.event", "u1")
	h := NewHub(src, Options{Poll: time.Hour}) // only Notify wakes it here
	defer h.Close()
	ctx := t.Context()

	fromEnd, err := h.Subscribe(ctx, "org_a", -1, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	resumed, err := h.Subscribe(ctx, "org_a", 0, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	filtered, err := h.Subscribe(ctx, "org_a", -1, Filter{ActionPrefixes: []string{"user."}, Text: "quarterly REPORT"})
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, resumed); r.Seq != 0 {
		t.Fatalf("resumed from 0 got seq %d first", r.Seq)
	}
	for i, a := range []string{"user.signed_in", "doc.read", "user.signed_out"} {
		src.add(t, "org_a", a, "u1")
		src.add(t, "org_b", a, "u1") // another organization's log: never delivered here
		h.Notify("org_a")
		h.Notify("org_b")
		if r := next(t, fromEnd); r.Seq != int64(i+1) {
			t.Fatalf("from the end: seq %d, want %d", r.Seq, i+1)
		}
		if r := next(t, resumed); r.Seq != int64(i+1) {
			t.Fatalf("resumed: seq %d, want %d", r.Seq, i+1)
		}
	}
	for _, want := range []int64{1, 3} {
		if r := next(t, filtered); r.Seq != want {
			t.Fatalf("filtered: seq %d, want %d", r.Seq, want)
		}
	}
	select {
	case r := <-filtered.C():
		t.Fatalf("filtered got seq %d, which it does not match", r.Seq)
	default:
	}
	if st := h.Stats(); st.Subscribers != 3 || st.Delivered != 9 {
		t.Fatalf("stats %+v", st)
	}
}

// Records appended by another process are found by polling, without Notify.
func TestHubPolls(t *testing.T) {
	src := &memLog{}
	h := NewHub(src, Options{Poll: 10 * time.Millisecond})
	defer h.Close()
	s, err := h.Subscribe(t.Context(), "org_a", -1, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	src.add(t, "org_a", "a.b", "u1")
	if r := next(t, s); r.Seq != 0 {
		t.Fatalf("seq %d", r.Seq)
	}
}

func TestHubEnds(t *testing.T) {
	src := &memLog{}
	for range 5 {
		src.add(t, "org_a", "a.b", "u1")
	}
	h := NewHub(src, Options{Poll: time.Hour, Buffer: 2, MaxSubscribers: 3, MaxResume: 4})
	ctx := t.Context()

	if _, err := h.Subscribe(ctx, "org_a", 0, Filter{}); !errors.Is(err, ErrResumeTooOld) {
		t.Fatalf("resume 5 behind with MaxResume 4: %v", err)
	}
	slow, err := h.Subscribe(ctx, "org_a", 1, Filter{}) // 4 records waiting, a buffer of 2
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-slow.Done():
	case <-time.After(time.Minute):
		t.Fatal("a subscriber a buffer behind was not ended")
	}
	if !errors.Is(slow.Err(), ErrTooSlow) {
		t.Fatalf("slow subscriber ended with %v", slow.Err())
	}

	cctx, cancel := context.WithCancel(ctx)
	gone, err := h.Subscribe(cctx, "org_a", -1, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-gone.Done()
	if !errors.Is(gone.Err(), context.Canceled) {
		t.Fatalf("cancelled subscriber ended with %v", gone.Err())
	}

	var open []*Subscription
	for range 3 {
		s, err := h.Subscribe(ctx, "org_a", -1, Filter{})
		if err != nil {
			t.Fatalf("subscriber %d of 3: %v", len(open)+1, err)
		}
		open = append(open, s)
	}
	if _, err := h.Subscribe(ctx, "org_a", -1, Filter{}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a fourth subscriber with MaxSubscribers 3: %v", err)
	}
	open[0].Close()
	if s, err := h.Subscribe(ctx, "org_c", -1, Filter{}); err != nil {
		t.Fatalf("after one closed: %v", err)
	} else {
		open = append(open, s)
	}
	h.Close()
	for _, s := range open[1:] {
		<-s.Done()
		if !errors.Is(s.Err(), ErrClosed) {
			t.Fatalf("after Close: %v", s.Err())
		}
	}
	if _, err := h.Subscribe(ctx, "org_a", -1, Filter{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if st := h.Stats(); st.Subscribers != 0 || st.TooSlow != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Many writers and subscribers at once: every subscriber sees every seq
// once, in order (run with -race).
func TestHubConcurrent(t *testing.T) {
	src := &memLog{}
	h := NewHub(src, Options{Poll: 5 * time.Millisecond, Buffer: 10_000})
	defer h.Close()
	const n = 500
	var subs []*Subscription
	for range 8 {
		s, err := h.Subscribe(t.Context(), "org_a", 0, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range n / 4 {
				src.add(t, "org_a", fmt.Sprintf("w%d.x", w), "u")
				h.Notify("org_a")
			}
		})
	}
	for _, s := range subs {
		for want := int64(0); want < n; want++ {
			if r := next(t, s); r.Seq != want {
				t.Fatalf("seq %d, want %d", r.Seq, want)
			}
		}
	}
	wg.Wait()
}

// The notifying submitter wakes the organizations a stored submission
// touched, and not on a failure or a replay.
func TestNotifyingSubmitter(t *testing.T) {
	src := &memLog{}
	h := NewHub(src, Options{Poll: time.Hour})
	defer h.Close()
	s, err := h.Subscribe(t.Context(), "org_a", -1, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	sub := h.NotifyingSubmitter(submitFunc(func(ctx context.Context, sb store.Submission) (store.AppendResult, error) {
		src.add(t, "org_a", "a.b", "u")
		return store.AppendResult{}, nil
	}))
	if _, err := sub.Submit(t.Context(), store.Submission{Events: []store.PendingEvent{{OrganizationID: "org_a"}}}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, s); r.Seq != 0 {
		t.Fatalf("seq %d", r.Seq)
	}
}

type submitFunc func(context.Context, store.Submission) (store.AppendResult, error)

func (f submitFunc) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	return f(ctx, s)
}
