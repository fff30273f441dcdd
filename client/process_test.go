package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

// The tests here run against real trail serve processes; the crash test
// also runs the publishing application as a process of its own: this test
// binary, re-executed with TRAIL_SPOOL_HELPER set.

func TestMain(m *testing.M) {
	if os.Getenv("TRAIL_SPOOL_HELPER") != "" {
		os.Exit(spoolHelper())
	}
	os.Exit(m.Run())
}

// spoolHelper is the application: it publishes events numbered from
// HELPER_FROM (HELPER_COUNT of them) through a spooled Publisher
// (SyncEveryBatch), printing "ok N" once Publish(N) returned nil, then
// closes the publisher and prints "closed".
func spoolHelper() int {
	env := os.Getenv
	c, err := client.New(env("HELPER_URL"), env("HELPER_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := client.NewPublisher(c, client.PublisherOptions{SpoolDir: env("HELPER_DIR"), Sync: client.SyncEveryBatch,
		FlushInterval: 20 * time.Millisecond, BatchSize: 200, SegmentBytes: 256 << 10,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	from, _ := strconv.Atoi(env("HELPER_FROM"))
	count, _ := strconv.Atoi(env("HELPER_COUNT"))
	ctx := context.Background()
	for i := from; i < from+count; i++ {
		if err := p.Publish(ctx, env("HELPER_ORG"), numbered(i)); err != nil {
			fmt.Fprintln(os.Stderr, "publish:", err)
			return 1
		}
		fmt.Fprintf(os.Stdout, "ok %d\n", i)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	fmt.Println("closed")
	return 0
}

// helper is a running spoolHelper.
type helper struct {
	cmd    *exec.Cmd
	acked  sync.Map // n → true
	count  atomic.Int64
	closed chan struct{}
	done   chan error
}

func startHelper(t *testing.T, url, key, org, dir string, from, count int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRAIL_SPOOL_HELPER=1", "HELPER_URL="+url, "HELPER_KEY="+key, "HELPER_ORG="+org,
		"HELPER_DIR="+dir, "HELPER_FROM="+strconv.Itoa(from), "HELPER_COUNT="+strconv.Itoa(count))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, closed: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "ok "); ok {
				i, _ := strconv.Atoi(n)
				h.acked.Store(i, true)
				h.count.Add(1)
			} else if line == "closed" {
				close(h.closed)
			}
		}
		io.Copy(io.Discard, out)
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		h.done <- err
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return h
}

// storedCounts reads the organization's whole log and counts each
// published event (by its metadata n), leaving Trail's own events out.
func storedCounts(t *testing.T, c *client.Client, org string) map[int]int {
	t.Helper()
	counts := map[int]int{}
	err := c.LogRecords(trailtest.Context(t), org, 0, 0, func(rec []byte) error {
		var r struct {
			Action   string `json:"action"`
			Metadata struct {
				N *int `json:"n"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(rec, &r); err != nil {
			return err
		}
		if r.Metadata.N != nil && !strings.HasPrefix(r.Action, "trail.") {
			counts[*r.Metadata.N]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// checkExactlyOnce fails unless every acknowledged event is stored once and
// no event is stored twice.
func checkExactlyOnce(t *testing.T, counts map[int]int, acked func(func(n int) bool)) {
	t.Helper()
	n := 0
	acked(func(i int) bool {
		n++
		if counts[i] != 1 {
			t.Errorf("acknowledged event %d is stored %d times", i, counts[i])
		}
		return true
	})
	for i, c := range counts {
		if c != 1 {
			t.Errorf("event %d is stored %d times", i, c)
		}
	}
	t.Logf("%d events acknowledged, %d stored, each once", n, len(counts))
}

// TestPublisherAppCrash: the application is SIGKILLed while publishing
// with a spool (SyncEveryBatch), twice, and restarted; every event whose
// Publish returned nil is stored exactly once.
func TestPublisherAppCrash(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	ctx := trailtest.Context(t)
	c, _ := client.New(srv.URL, srv.Key)
	org, err := c.CreateOrganization(ctx, "Crash", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	acked := map[int]bool{}
	for round := range 2 {
		from := round * 1_000_000
		h := startHelper(t, srv.URL, srv.Key, org.ID, dir, from, 1_000_000)
		// Kill it once Trail has stored some of this round's events and
		// more are being published: batches are in flight.
		want := int64(2000 + 1500*round)
		waitFor(t, "the helper to publish and Trail to store", func() bool {
			if h.count.Load() < want {
				return false
			}
			for n := range storedCounts(t, c, org.ID) {
				if n >= from {
					return true
				}
			}
			return false
		})
		if err := h.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-h.done
		h.acked.Range(func(k, _ any) bool { acked[k.(int)] = true; return true })
		t.Logf("round %d: killed after %d acknowledged events", round, h.count.Load())
	}
	// The restarted application publishes a few more and closes cleanly.
	h := startHelper(t, srv.URL, srv.Key, org.ID, dir, 9_000_000, 100)
	select {
	case <-h.closed:
	case err := <-h.done:
		t.Fatalf("the restarted helper exited before closing: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the restarted helper did not deliver its spool within 3 minutes")
	}
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.acked.Range(func(k, _ any) bool { acked[k.(int)] = true; return true })
	checkExactlyOnce(t, storedCounts(t, c, org.ID), func(yield func(int) bool) {
		for n := range acked {
			if !yield(n) {
				return
			}
		}
	})
}

// faultyProxy stands between the publisher and Trail at a stable address:
// Trail behind it can be stopped and started again (on another port), and
// it can answer 503 or 429 instead of Trail, or pass a batch to Trail and
// then answer 503 as if the answer were lost.
type faultyProxy struct {
	mu      sync.Mutex
	target  *url.URL // nil: Trail is down (connections are cut)
	inject  func(n int64) (status int, after bool)
	batches atomic.Int64
}

func (p *faultyProxy) setTarget(raw string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if raw == "" {
		p.target = nil
		return
	}
	p.target, _ = url.Parse(raw)
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	target, inject := p.target, p.inject
	p.mu.Unlock()
	if target == nil {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	status, after := 0, false
	if r.URL.Path == "/v1/events/batch" && inject != nil {
		status, after = inject(p.batches.Add(1))
	}
	if status != 0 && !after {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message":"injected","code":"injected"}`)
		return
	}
	rw := w
	var sink *discardWriter
	if status != 0 {
		sink = &discardWriter{h: http.Header{}}
		rw = sink
	}
	(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}).ServeHTTP(rw, r)
	if sink != nil {
		// Trail answered (and stored the batch); the client hears 503.
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message":"answer lost","code":"injected"}`)
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// TestPublisherAgainstTrailFaults publishes through a spool while Trail
// answers 429 and 503, loses answers to batches it stored, is down for a
// while, and is SIGKILLed in the middle of batches and restarted: every
// event is stored exactly once. The outage lasts 30 s (3 s with -short;
// TRAIL_TEST_OUTAGE sets any other).
func TestPublisherAgainstTrailFaults(t *testing.T) {
	outage := 30 * time.Second
	if testing.Short() {
		outage = 3 * time.Second
	}
	if s := os.Getenv("TRAIL_TEST_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TRAIL_TEST_OUTAGE: %v", err)
		}
		outage = d
	}
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	ctx := trailtest.Context(t)
	admin, _ := client.New(srv.URL, srv.Key)
	org, err := admin.CreateOrganization(ctx, "Faults", "")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &faultyProxy{}
	proxy.setTarget(srv.URL)
	front := httpTestServer(t, proxy)
	c, _ := client.New(front, srv.Key)
	p, err := client.NewPublisher(c, client.PublisherOptions{SpoolDir: t.TempDir(), Sync: client.SyncEveryBatch,
		FlushInterval: 20 * time.Millisecond, BatchSize: 100, MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	publish := func(k int) {
		t.Helper()
		for range k {
			if err := p.Publish(ctx, org.ID, numbered(n)); err != nil {
				t.Fatalf("Publish(%d) = %v", n, err)
			}
			n++
		}
	}
	delivered := func(min uint64) func() bool {
		return func() bool { return p.Stats().Delivered >= min }
	}

	// 429 and 503 on some batches, and answers lost after Trail stored.
	proxy.mu.Lock()
	proxy.inject = func(i int64) (int, bool) {
		switch i % 4 {
		case 1:
			return http.StatusTooManyRequests, false
		case 2:
			return http.StatusServiceUnavailable, true // stored, answer lost
		case 3:
			return http.StatusServiceUnavailable, false
		}
		return 0, false
	}
	proxy.mu.Unlock()
	publish(1000)
	waitFor(t, "delivery through injected 429 and 503", delivered(1000))
	if p.Stats().Retries == 0 {
		t.Fatal("no retries, though the proxy injected failures")
	}
	proxy.mu.Lock()
	proxy.inject = nil
	proxy.mu.Unlock()

	// Trail down for a while: Publish goes on into the spool.
	srv.Stop(t)
	proxy.setTarget("")
	publish(500)
	time.Sleep(outage) // the outage itself: nothing to wait for
	if got := p.Stats().Delivered; got != 1000 {
		t.Fatalf("%d events delivered while Trail was down", got)
	}
	srv = trailtest.Start(t, trailtest.Options{Data: data})
	proxy.setTarget(srv.URL)
	waitFor(t, "delivery after the outage", delivered(1500))

	// Trail SIGKILLed while batches are in flight, then restarted.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		publish(3000)
	}()
	waitFor(t, "batches in flight", delivered(2000))
	srv.Kill()
	proxy.setTarget("")
	wg.Wait()
	srv = trailtest.Start(t, trailtest.Options{Data: data})
	proxy.setTarget(srv.URL)

	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Delivered != uint64(n) || st.Published != uint64(n) {
		t.Fatalf("stats %+v, want %d published and delivered", st, n)
	}
	admin, _ = client.New(srv.URL, srv.Key)
	checkExactlyOnce(t, storedCounts(t, admin, org.ID), func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	})
}

func httpTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := newHTTPServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func newHTTPServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// TestPublisherFullSpoolAgainstTrail fills a small spool while the real
// Trail is unreachable, under each policy for a full spool: Block returns
// ErrFull after BlockTimeout, Drop returns ErrDropped at once, both
// counted (BlockTimeout is generous: a slow disk's first fsync must not
// pass for a full spool); once Trail is back, every event Publish accepted is stored
// exactly once and none it refused is.
func TestPublisherFullSpoolAgainstTrail(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	ctx := trailtest.Context(t)
	admin, _ := client.New(srv.URL, srv.Key)
	for _, tc := range []struct {
		name string
		full client.FullPolicy
		want error
	}{
		{"block", client.Block, client.ErrFull},
		{"drop", client.Drop, client.ErrDropped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org, err := admin.CreateOrganization(ctx, "Full "+tc.name, "")
			if err != nil {
				t.Fatal(err)
			}
			proxy := &faultyProxy{} // no target: Trail is down
			c, _ := client.New(httpTestServer(t, proxy), srv.Key)
			p, err := client.NewPublisher(c, client.PublisherOptions{SpoolDir: t.TempDir(), Sync: client.SyncEveryBatch,
				Full: tc.full, BlockTimeout: 2 * time.Second, MaxSpoolBytes: 64 << 10, SegmentBytes: 8 << 10,
				BatchSize: 50, FlushInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var accepted []int
			var refusal error
			for i := 0; i < 100_000 && refusal == nil; i++ {
				if err := p.Publish(ctx, org.ID, numbered(i)); err != nil {
					refusal = err
					continue
				}
				accepted = append(accepted, i)
			}
			if !errors.Is(refusal, tc.want) || len(accepted) == 0 {
				t.Fatalf("Publish into a full spool = %v after %d events, want %v once the spool is full", refusal, len(accepted), tc.want)
			}
			if st := p.Stats(); tc.full == client.Drop && st.Dropped == 0 || tc.full == client.Block && st.Refused == 0 {
				t.Fatalf("the refusal was not counted: %+v", st)
			}
			if st := p.Stats(); st.Delivered != 0 {
				t.Fatalf("%d events delivered while Trail was unreachable", st.Delivered)
			}
			proxy.setTarget(srv.URL)
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := p.Close(cctx); err != nil {
				t.Fatal(err)
			}
			counts := storedCounts(t, admin, org.ID)
			if len(counts) != len(accepted) {
				t.Errorf("%d events stored, %d accepted", len(counts), len(accepted))
			}
			checkExactlyOnce(t, counts, func(yield func(int) bool) {
				for _, n := range accepted {
					if !yield(n) {
						return
					}
				}
			})
		})
	}
}
