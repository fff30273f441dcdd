package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/store/storetest"
	"github.com/trailaudit/trail/internal/stream"
)

// harness is a real SQLite store with one organization, an engine
// delivering its streams, and helpers to append events and wait for
// cursors.
type harness struct {
	t      testing.TB
	st     *sqlite.Store
	codec  *stream.Codec
	engine *stream.Engine
	org    string
	rng    *rand.Rand
	n      int

	mu      sync.Mutex
	cursors map[string]int64
	changed chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func newHarness(t testing.TB, opts stream.Options) *harness {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, org: "org_01JTSTREAMTEST00000000001", rng: rand.New(rand.NewPCG(1, 2)),
		cursors: map[string]int64{}, changed: make(chan struct{}, 1)}
	h.codec = stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))
	if err := st.CreateOrganization(context.Background(), store.Organization{ID: h.org, Name: "Streams", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 5 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 50 * time.Millisecond
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	next := opts.OnAdvance
	opts.OnAdvance = func(id string, cursor int64) {
		h.mu.Lock()
		h.cursors[id] = cursor
		h.mu.Unlock()
		select {
		case h.changed <- struct{}{}:
		default:
		}
		if next != nil {
			next(id, cursor)
		}
	}
	h.engine = stream.New(st, h.codec, opts, nil, nil)
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		h.engine.Run(ctx)
	}()
	h.t.Cleanup(h.halt)
}

// halt stops the engine and waits until it has stopped.
func (h *harness) halt() {
	if h.stop != nil {
		h.stop()
		<-h.done
		h.stop = nil
	}
}

// appendEvents appends n events to the organization and tells the engine,
// as trail serve's committer does.
func (h *harness) appendEvents(n int) {
	h.t.Helper()
	for n > 0 {
		k := min(n, 500)
		var sub store.Submission
		for range k {
			raw := storetest.Event(h.rng, h.n)
			h.n++
			d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
			if err != nil {
				h.t.Fatal(err)
			}
			now := time.Now()
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: h.org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
		}
		if _, err := h.st.Append(context.Background(), []store.Submission{sub}, time.Now()); err != nil {
			h.t.Fatal(err)
		}
		n -= k
	}
	h.engine.Committed()
}

// createStream stores a stream of typ with config, delivering from start.
func (h *harness) createStream(typ, config string, cursor int64) string {
	h.t.Helper()
	set, err := h.codec.Parse(typ, []byte(config), nil)
	if err != nil {
		h.t.Fatalf("Parse(%s): %v", config, err)
	}
	id := fmt.Sprintf("ls_test%020d", h.rng.Uint64()%1e18)
	now := time.Now()
	st := store.Stream{ID: id, OrganizationID: h.org, Type: typ, Name: typ, Config: set.Public(),
		Secrets: h.codec.Seal(set, id), State: store.StreamActive, Cursor: cursor, CreatedAt: now, UpdatedAt: now}
	if err := h.st.CreateStream(context.Background(), st); err != nil {
		h.t.Fatal(err)
	}
	h.engine.Wake()
	return id
}

// waitCursor waits until stream id has delivered every event below want.
// The deadline only keeps a broken test from hanging.
func (h *harness) waitCursor(id string, want int64) {
	h.t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		h.mu.Lock()
		got := h.cursors[id]
		h.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-h.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			s, _ := h.st.Stream(context.Background(), id)
			h.t.Fatalf("stream %s stuck at cursor %d (want %d); state %s, last error %q", id, got, want, s.State, s.LastError)
		}
	}
}

// waitState waits until the stored stream is in state.
func (h *harness) waitState(id, state string) store.Stream {
	h.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s, err := h.st.Stream(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("stream %s is %s (%q), want %s", id, s.State, s.LastError, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// records are the organization's stored records, in seq order.
func (h *harness) records() [][]byte {
	h.t.Helper()
	var out [][]byte
	err := h.st.ReadRecords(context.Background(), h.org, 0, int64(h.n), func(_ int64, rec []byte) error {
		out = append(out, slices.Clone(rec))
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// sink records what receivers got: records by seq, in arrival order.
type sink struct {
	mu       sync.Mutex
	seqs     []int64 // every delivered seq, repeats included, in arrival order
	requests int
}

func (s *sink) add(records ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	for _, r := range records {
		var head struct {
			Seq int64 `json:"seq"`
		}
		if err := json.Unmarshal(r, &head); err == nil {
			s.seqs = append(s.seqs, head.Seq)
		}
	}
}

// check verifies that seqs 0…n-1 all arrived, first arrivals in order,
// and returns the number of repeats.
func (s *sink) check(t testing.TB, from, n int64) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[int64]bool{}
	next := from
	dups := 0
	for _, q := range s.seqs {
		if seen[q] {
			dups++
			continue
		}
		if q != next {
			t.Fatalf("first delivery of seq %d came when %d was expected: out of order or missing", q, next)
		}
		seen[q] = true
		next++
	}
	if next != from+n {
		t.Fatalf("delivered seqs %d…%d, want %d…%d", from, next-1, from, from+n-1)
	}
	return dups
}

// webhookReceiver is an httptest server accepting JSON-array webhook
// batches; behave, when set, may answer instead (returning true).
func webhookReceiver(t testing.TB, s *sink, behave func(w http.ResponseWriter, r *http.Request, n int) bool) *httptest.Server {
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if behave != nil && behave(w, r, n) {
			return
		}
		var batch []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		recs := make([][]byte, len(batch))
		for i, b := range batch {
			recs[i] = b
		}
		s.add(recs...)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func webhookConfig(url string) string {
	return fmt.Sprintf(`{"url":%q,"secret":"0123456789abcdef0123"}`, url)
}

// changedOrTick returns a channel that fires on the next cursor change or
// after a short while, for loops that re-check a condition.
func (h *harness) changedOrTick() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-h.changed:
		case <-time.After(20 * time.Millisecond):
		}
		close(c)
	}()
	return c
}
