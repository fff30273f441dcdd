package loadgen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/loadgen"
)

func TestSamplesPercentiles(t *testing.T) {
	s := loadgen.NewSamples(0)
	for i := 100; i >= 1; i-- {
		s.Add(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{90, 90 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
	} {
		if got := s.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if !s.Exact() || s.Count() != 100 || s.Min() != time.Millisecond {
		t.Errorf("exact %v count %d min %v", s.Exact(), s.Count(), s.Min())
	}
}

func TestSamplesReservoirBounded(t *testing.T) {
	a, b := loadgen.NewSamples(1000), loadgen.NewSamples(1000)
	for i := 1; i <= 100_000; i++ {
		a.Add(time.Duration(i) * time.Microsecond)
		b.Add(time.Duration(i) * time.Microsecond)
	}
	a.Merge(b)
	if a.Exact() || a.Count() != 200_000 || len(a.Sorted()) != 1000 {
		t.Fatalf("exact %v count %d kept %d", a.Exact(), a.Count(), len(a.Sorted()))
	}
	if a.Max() != 100*time.Millisecond {
		t.Errorf("max %v, want exactly 100ms", a.Max())
	}
	// A uniform sample of 1..100,000 µs: the median is near 50 ms.
	if p := a.Percentile(50); p < 40*time.Millisecond || p > 60*time.Millisecond {
		t.Errorf("estimated p50 %v, want about 50ms", p)
	}
}

func TestSamplesMergeExact(t *testing.T) {
	a, b := loadgen.NewSamples(0), loadgen.NewSamples(0)
	a.Add(3 * time.Millisecond)
	b.Add(time.Millisecond)
	b.Add(2 * time.Millisecond)
	a.Merge(b)
	if !a.Exact() || a.Count() != 3 || a.Percentile(50) != 2*time.Millisecond || a.Min() != time.Millisecond {
		t.Fatalf("merged: exact %v count %d p50 %v min %v", a.Exact(), a.Count(), a.Percentile(50), a.Min())
	}
}

// statusServer answers 201, except every tenth request, which gets 503.
func statusServer(t *testing.T, delay func(n int64) time.Duration) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if d := delay(i); d > 0 {
			time.Sleep(d)
		}
		if i%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(url string) loadgen.Request {
	return func(i int64) (*http.Request, error) { return http.NewRequest(http.MethodGet, url, nil) }
}

func TestRunClosedLoop(t *testing.T) {
	srv := statusServer(t, func(int64) time.Duration { return 0 })
	var done atomic.Int64
	live := &loadgen.Counters{}
	res := loadgen.Run(context.Background(), loadgen.NewClient(4), loadgen.Options{Concurrency: 4, Requests: 200, Live: live,
		Done: func(a loadgen.Answer) { done.Add(1) }}, get(srv.URL))
	if res.Requests != 200 || res.Errors != 20 || res.ByStatus[503] != 20 || len(res.ByStatus) != 1 {
		t.Fatalf("requests %d errors %d by status %v, want 200, 20, {503: 20}", res.Requests, res.Errors, res.ByStatus)
	}
	if done.Load() != 200 || live.Answered.Load() != 200 || live.Failed.Load() != 20 || live.Sent.Load() != 200 {
		t.Errorf("done %d, live answered %d failed %d sent %d", done.Load(), live.Answered.Load(), live.Failed.Load(), live.Sent.Load())
	}
	if res.Samples.Count() != 180 || res.Percentile(99) < res.Percentile(50) || res.Percentile(50) <= 0 {
		t.Errorf("samples %d p50 %v p99 %v", res.Samples.Count(), res.Percentile(50), res.Percentile(99))
	}
}

func TestRunNoAnswer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := loadgen.Run(context.Background(), loadgen.NewClient(1), loadgen.Options{Requests: 3}, get(url))
	if res.Errors != 3 || res.ByStatus[0] != 3 || res.FirstErr == "" {
		t.Fatalf("errors %d by status %v first %q, want 3 unanswered", res.Errors, res.ByStatus, res.FirstErr)
	}
}

func TestRunOpenLoopRate(t *testing.T) {
	srv := statusServer(t, func(int64) time.Duration { return 0 })
	res := loadgen.Run(context.Background(), loadgen.NewClient(16), loadgen.Options{Concurrency: 16, Rate: 200, Duration: time.Second}, get(srv.URL))
	if res.Requests < 190 || res.Requests > 201 {
		t.Fatalf("%d requests at 200/s for 1s, want about 200", res.Requests)
	}
	if res.Elapsed < 990*time.Millisecond {
		t.Errorf("elapsed %v, want about 1s", res.Elapsed)
	}
}

// A stall of the server must show in the latency of the requests scheduled
// during it, not only in the one that stalled (coordinated omission).
func TestRunOpenLoopCountsQueueing(t *testing.T) {
	srv := statusServer(t, func(n int64) time.Duration {
		if n == 1 {
			return 300 * time.Millisecond
		}
		return 0
	})
	res := loadgen.Run(context.Background(), loadgen.NewClient(1), loadgen.Options{Concurrency: 1, Rate: 100, Requests: 20}, get(srv.URL))
	if res.Requests != 20 {
		t.Fatalf("%d requests, want 20", res.Requests)
	}
	// Requests 1…19 were due every 10 ms while request 0 stalled 300 ms:
	// more than half of them waited over 100 ms.
	if p50 := res.Percentile(50); p50 < 100*time.Millisecond {
		t.Errorf("p50 %v: the queueing behind the stall is not counted", p50)
	}
}
