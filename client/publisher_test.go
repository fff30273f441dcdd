package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
)

// fakeBatches is a POST /v1/events/batch that remembers idempotency keys
// as Trail does (same key and body: the first answer, not stored again),
// counts each event by its metadata "n", and fails as told.
type fakeBatches struct {
	mu     sync.Mutex
	keys   map[string][32]byte
	stored map[int]int // n → times stored
	calls  int
	// fail, when set, answers a request instead of storing it (status,
	// Retry-After seconds); 0 stores.
	fail func(call int) (status, retryAfter int)
	// bad refuses, with 422 naming it, any event whose n it holds.
	bad map[int]bool
}

func newFake() *fakeBatches {
	return &fakeBatches{keys: map[string][32]byte{}, stored: map[int]int{}, bad: map[int]bool{}}
}

func (f *fakeBatches) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		if status, ra := f.fail(f.calls); status != 0 {
			if ra > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(ra))
			}
			w.WriteHeader(status)
			fmt.Fprint(w, `{"message":"injected","code":"service_unavailable"}`)
			return
		}
	}
	var b struct {
		Events []struct {
			Event struct {
				Metadata struct {
					N int `json:"n"`
				} `json:"metadata"`
			} `json:"event"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"message":%q,"code":"invalid_json"}`, err.Error())
		return
	}
	var errs []string
	for i, e := range b.Events {
		if f.bad[e.Event.Metadata.N] {
			errs = append(errs, fmt.Sprintf(`{"code":"invalid","field":"events[%d].event.action","message":"bad"}`, i))
		}
	}
	if errs != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"message":"Validation failed.","errors":[%s]}`, joinComma(errs))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	sum := sha256.Sum256(body)
	if prev, ok := f.keys[key]; !ok || prev != sum || key == "" {
		for _, e := range b.Events {
			f.stored[e.Event.Metadata.N]++
		}
		if key != "" {
			f.keys[key] = sum
		}
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprint(w, `{"data":[]}`)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// check fails unless events 0..n-1 but skip were each stored exactly once.
func (f *fakeBatches) check(t *testing.T, n int, skip map[int]bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		want := 1
		if skip[i] {
			want = 0
		}
		if got := f.stored[i]; got != want {
			t.Fatalf("event %d was stored %d times, want %d (%d distinct stored)", i, got, want, len(f.stored))
		}
	}
}

func (f *fakeBatches) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

func numbered(n int) client.Event {
	ev := testEvent("user.signed_in", n)
	ev.Metadata = map[string]any{"n": n}
	return ev
}

func startFake(t *testing.T, f *fakeBatches) *client.Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "sk_test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fastRetries(o client.PublisherOptions) client.PublisherOptions {
	o.MinBackoff, o.MaxBackoff = time.Millisecond, 20*time.Millisecond
	o.FlushInterval = 10 * time.Millisecond
	return o
}

func TestPublisherDeliversEachEventOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts client.PublisherOptions
	}{
		{"memory", client.PublisherOptions{}},
		{"spool every batch", client.PublisherOptions{Sync: client.SyncEveryBatch}},
		{"spool interval", client.PublisherOptions{Sync: client.SyncInterval, SyncInterval: 10 * time.Millisecond}},
		{"spool never, small segments", client.PublisherOptions{Sync: client.SyncNever, SegmentBytes: 4096, BatchSize: 37}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			// Every fifth request fails: 503 or 429 with Retry-After 0.
			f.fail = func(call int) (int, int) {
				switch call % 5 {
				case 1:
					return http.StatusServiceUnavailable, 0
				case 3:
					return http.StatusTooManyRequests, 0
				}
				return 0, 0
			}
			c := startFake(t, f)
			opts := fastRetries(tc.opts)
			if tc.name != "memory" {
				opts.SpoolDir = t.TempDir()
			}
			p, err := client.NewPublisher(c, opts)
			if err != nil {
				t.Fatal(err)
			}
			const n = 3000
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < n; i += 4 {
						if err := p.Publish(context.Background(), "org_1", numbered(i)); err != nil {
							t.Errorf("Publish(%d) = %v", i, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			f.check(t, n, nil)
			st := p.Stats()
			if st.Published != n || st.Delivered != n || st.Retries == 0 || st.SpoolBytes != 0 && opts.SpoolDir == "" {
				t.Fatalf("stats %+v", st)
			}
			if err := p.Publish(context.Background(), "org_1", numbered(0)); !errors.Is(err, client.ErrClosed) {
				t.Fatalf("Publish after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// TestPublisherSpoolSurvivesOutage: Trail answers 503 throughout a first
// run, whose Close leaves the events in the spool; a second run delivers
// them once Trail is back.
func TestPublisherSpoolSurvivesOutage(t *testing.T) {
	f := newFake()
	var down atomic.Bool
	down.Store(true)
	f.fail = func(int) (int, int) {
		if down.Load() {
			return http.StatusServiceUnavailable, 0
		}
		return 0, 0
	}
	c := startFake(t, f)
	dir := t.TempDir()
	opts := fastRetries(client.PublisherOptions{SpoolDir: dir, SegmentBytes: 8192})
	p, err := client.NewPublisher(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		if err := p.Publish(context.Background(), "org_1", numbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close with the events safe in the spool = %v", err)
	}
	if f.count() != 0 || p.Stats().SpoolBytes == 0 {
		t.Fatalf("stored %d events while Trail was down; stats %+v", f.count(), p.Stats())
	}
	down.Store(false)
	p, err = client.NewPublisher(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.check(t, n, nil)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) > 1 {
		t.Fatalf("%d segments left after everything was delivered: %v", len(segs), segs)
	}
}

// TestPublisherTornTail: bytes of a record cut short at the end of a
// segment (a crash in the middle of a write) are ignored; every complete
// record before them is delivered.
func TestPublisherTornTail(t *testing.T) {
	f := newFake()
	f.fail = func(int) (int, int) { return http.StatusServiceUnavailable, 0 }
	c := startFake(t, f)
	dir := t.TempDir()
	opts := fastRetries(client.PublisherOptions{SpoolDir: dir})
	p, err := client.NewPublisher(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := p.Publish(context.Background(), "org_1", numbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	p.Close(ctx)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	last := segs[len(segs)-1]
	fh, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'}) // a frame header and 2 of its 200 bytes
	fh.Close()
	f.fail = nil
	p, err = client.NewPublisher(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.check(t, 10, nil)
}

// TestPublisherRejectsOnlyTheBadEvent: an event Trail refuses is given up
// and counted; the others of its batch are stored.
func TestPublisherRejectsOnlyTheBadEvent(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(fmt.Sprint("spool=", spool), func(t *testing.T) {
			f := newFake()
			f.bad[7], f.bad[8] = true, true
			c := startFake(t, f)
			opts := fastRetries(client.PublisherOptions{})
			if spool {
				opts.SpoolDir = t.TempDir()
			}
			p, err := client.NewPublisher(c, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if err := p.Publish(context.Background(), "org_1", numbered(i)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			f.check(t, 20, map[int]bool{7: true, 8: true})
			if st := p.Stats(); st.Rejected != 2 || st.Delivered != 18 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestPublisherFull: with Trail down and no room left, Block returns
// ErrFull after BlockTimeout and Drop returns ErrDropped at once; both are
// counted, and what was accepted is delivered once Trail is back.
func TestPublisherFull(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spool bool
		sync  client.SyncPolicy
		full  client.FullPolicy
		want  error
	}{
		{"memory block", false, 0, client.Block, client.ErrFull},
		{"memory drop", false, 0, client.Drop, client.ErrDropped},
		{"spool every batch block", true, client.SyncEveryBatch, client.Block, client.ErrFull},
		{"spool every batch drop", true, client.SyncEveryBatch, client.Drop, client.ErrDropped},
		{"spool interval block", true, client.SyncInterval, client.Block, client.ErrFull},
		{"spool interval drop", true, client.SyncInterval, client.Drop, client.ErrDropped},
		{"spool never block", true, client.SyncNever, client.Block, client.ErrFull},
		{"spool never drop", true, client.SyncNever, client.Drop, client.ErrDropped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			var down atomic.Bool
			down.Store(true)
			f.fail = func(int) (int, int) {
				if down.Load() {
					return http.StatusServiceUnavailable, 0
				}
				return 0, 0
			}
			c := startFake(t, f)
			opts := fastRetries(client.PublisherOptions{Full: tc.full, BlockTimeout: 50 * time.Millisecond,
				QueueSize: 50, BatchSize: 10, Concurrency: 1})
			if tc.spool {
				opts.SpoolDir = t.TempDir()
				opts.MaxSpoolBytes, opts.SegmentBytes, opts.Sync = 16<<10, 4096, tc.sync
			}
			p, err := client.NewPublisher(c, opts)
			if err != nil {
				t.Fatal(err)
			}
			accepted := map[int]bool{}
			var refusal error
			for i := 0; i < 5000 && refusal == nil; i++ {
				switch err := p.Publish(context.Background(), "org_1", numbered(i)); {
				case err == nil:
					accepted[i] = true
				default:
					refusal = err
				}
			}
			if !errors.Is(refusal, tc.want) {
				t.Fatalf("Publish into a full publisher = %v, want %v", refusal, tc.want)
			}
			st := p.Stats()
			if tc.full == client.Drop && st.Dropped == 0 || tc.full == client.Block && st.Refused == 0 {
				t.Fatalf("the refusal was not counted: %+v", st)
			}
			down.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for i := range accepted {
				if f.stored[i] != 1 {
					t.Fatalf("accepted event %d was stored %d times", i, f.stored[i])
				}
			}
			if len(f.stored) != len(accepted) {
				t.Fatalf("%d events stored, %d accepted", len(f.stored), len(accepted))
			}
		})
	}
}

// TestPublisherCloseReportsLoss: without a spool, Close at its deadline
// says how many events it could not deliver.
func TestPublisherCloseReportsLoss(t *testing.T) {
	f := newFake()
	f.fail = func(int) (int, int) { return http.StatusServiceUnavailable, 0 }
	p, err := client.NewPublisher(startFake(t, f), fastRetries(client.PublisherOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := p.Publish(context.Background(), "org_1", numbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = p.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "10 events not delivered") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want 10 events not delivered", err)
	}
}
