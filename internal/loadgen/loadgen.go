// Package loadgen drives HTTP load at a server with a fixed number of
// keep-alive clients (closed loop) and reports throughput and latency
// percentiles. It backs the ingest benchmarks and `trail bench`.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request builds the i-th request.
type Request func(i int64) (*http.Request, error)

// Options of one run.
type Options struct {
	Concurrency int           // clients, each with one keep-alive connection
	Requests    int64         // stop after this many (0 = use Duration)
	Duration    time.Duration // stop after this long
	// OK decides whether a status code is a success (default 2xx).
	OK func(status int) bool
}

// Result of a run.
type Result struct {
	Requests  int64
	Errors    int64
	Elapsed   time.Duration
	Latencies []time.Duration // sorted, successful requests only
	FirstErr  string
}

// PerSecond is the successful request rate.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p ≤ 100).
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	i = min(max(i, 0), len(r.Latencies)-1)
	return r.Latencies[i]
}

func (r Result) String() string {
	return fmt.Sprintf("%d requests, %d errors in %v: %.0f req/s, p50 %v, p99 %v, max %v",
		r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond), r.PerSecond(),
		r.Percentile(50), r.Percentile(99), r.Percentile(100))
}

// NewClient returns a client whose transport keeps one idle connection per
// concurrent worker, so a run measures the server, not connection setup.
func NewClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			MaxConnsPerHost:     concurrency,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// Run sends requests until opts.Requests have been sent or opts.Duration has
// passed, whichever is set, and reports what it measured.
func Run(ctx context.Context, client *http.Client, opts Options, build Request) Result {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.OK == nil {
		opts.OK = func(s int) bool { return s >= 200 && s < 300 }
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	var next, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, opts.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if opts.Requests > 0 && i >= opts.Requests {
					return
				}
				req, err := build(i)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				if err != nil {
					if ctx.Err() != nil {
						next.Add(-1) // cut off by the deadline: not a request
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if !opts.OK(resp.StatusCode) {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, body))
					continue
				}
				lat[w] = append(lat[w], d)
			}
		}()
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start), Errors: errs.Load()}
	for _, l := range lat {
		r.Latencies = append(r.Latencies, l...)
	}
	r.Requests = int64(len(r.Latencies)) + r.Errors
	slices.Sort(r.Latencies)
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = v
	}
	return r
}
