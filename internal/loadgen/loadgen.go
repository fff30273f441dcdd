// Package loadgen drives HTTP load at a server and reports throughput and
// latency percentiles. It runs closed loop (a fixed number of keep-alive
// clients, each sending its next request when the last is answered) or open
// loop (requests started at a fixed rate whatever the answers, latency
// measured from each request's scheduled start so that a slow server cannot
// hide its queueing: no coordinated omission). It backs the ingest
// benchmarks and `trail bench`.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Request builds the i-th request.
type Request func(i int64) (*http.Request, error)

// Answer is one answered request, as Options.Done sees it.
type Answer struct {
	I       int64         // the request's index, as given to Request
	Status  int           // HTTP status code
	Body    []byte        // the whole response body
	Latency time.Duration // from the (scheduled) start to the end of the body
}

// Options of one run.
type Options struct {
	// Concurrency is the number of clients, each with one keep-alive
	// connection. With Rate it bounds the requests in flight: a request
	// whose time comes while all are busy waits, and its latency counts
	// the wait.
	Concurrency int
	Requests    int64         // stop after this many (0 = use Duration)
	Duration    time.Duration // stop after this long
	// Rate, when > 0, runs open loop: request i is started at
	// start + i/Rate seconds. A run bounded by Duration schedules requests
	// until Duration has passed and then waits for their answers.
	Rate float64
	// OK decides whether a status code is a success (default 2xx).
	OK func(status int) bool
	// Done, when set, is called with every answered request, successful
	// or not, from the goroutine that sent it (so concurrently).
	Done func(Answer)
	// Live, when set, is kept up to date during the run, for progress.
	Live *Counters
	// MaxSamples bounds the latencies kept exactly (DefaultMaxSamples when
	// 0); beyond it percentiles are estimated from a uniform sample.
	MaxSamples int
}

// Counters are a run's running totals, safe to read while it runs.
type Counters struct {
	Sent     atomic.Int64 // requests started
	Answered atomic.Int64 // requests finished, successfully or not
	Failed   atomic.Int64 // of those, errors (a status not OK, or no answer)
}

// Result of a run.
type Result struct {
	Requests  int64
	Errors    int64
	Elapsed   time.Duration
	Latencies []time.Duration // sorted, successful requests only (all of them, or a uniform sample: see Samples)
	FirstErr  string
	// ByStatus counts the errors by HTTP status code; 0 counts requests
	// that got no answer (connection refused or reset, timeout).
	ByStatus map[int]int64
	// Samples holds the latencies of the successful requests.
	Samples *Samples
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
	if r.Samples != nil {
		return r.Samples.Percentile(p)
	}
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

// job is one request to send: its index and when it was due.
type job struct {
	i   int64
	due time.Time
}

// worker is what one client goroutine accumulates.
type worker struct {
	lat      *Samples
	errs     int64
	byStatus map[int]int64
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
	live := opts.Live
	if live == nil {
		live = &Counters{}
	}
	var firstErr atomic.Value
	workers := make([]*worker, opts.Concurrency)
	for w := range workers {
		workers[w] = &worker{lat: NewSamples(opts.MaxSamples), byStatus: map[int]int64{}}
	}
	// send sends one request; it reports false when the run's context
	// cut it off (then it is not counted).
	send := func(ctx context.Context, w *worker, j job) bool {
		fail := func(status int, msg string) {
			w.errs++
			w.byStatus[status]++
			live.Failed.Add(1)
			live.Answered.Add(1)
			firstErr.CompareAndSwap(nil, msg)
		}
		live.Sent.Add(1)
		req, err := build(j.i)
		if err != nil {
			fail(0, err.Error())
			return true
		}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				live.Sent.Add(-1)
				return false
			}
			fail(0, err.Error())
			return true
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			if ctx.Err() != nil {
				live.Sent.Add(-1)
				return false
			}
			fail(0, fmt.Sprintf("reading the answer (HTTP %d): %v", resp.StatusCode, err))
			return true
		}
		d := time.Since(j.due)
		if opts.Done != nil {
			opts.Done(Answer{I: j.i, Status: resp.StatusCode, Body: body, Latency: d})
		}
		if !opts.OK(resp.StatusCode) {
			fail(resp.StatusCode, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, body))
			return true
		}
		w.lat.Add(d)
		live.Answered.Add(1)
		return true
	}

	var wg sync.WaitGroup
	start := time.Now()
	if opts.Rate > 0 {
		runOpen(ctx, opts, start, workers, send, &wg)
	} else {
		runClosed(ctx, opts, workers, send, &wg)
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start), ByStatus: map[int]int64{}, Samples: NewSamples(opts.MaxSamples)}
	for _, w := range workers {
		r.Errors += w.errs
		r.Samples.Merge(w.lat)
		for s, n := range w.byStatus {
			r.ByStatus[s] += n
		}
	}
	r.Requests = r.Samples.Count() + r.Errors
	r.Latencies = r.Samples.Sorted()
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = v
	}
	return r
}

// runClosed starts the clients of a closed-loop run: each sends its next
// request as soon as the last is answered. A Duration deadline cuts off the
// requests in flight.
func runClosed(ctx context.Context, opts Options, workers []*worker, send func(context.Context, *worker, job) bool, wg *sync.WaitGroup) {
	var cancel context.CancelFunc = func() {}
	if opts.Duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
	}
	var next atomic.Int64
	var running sync.WaitGroup
	for _, w := range workers {
		running.Add(1)
		go func() {
			defer running.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if opts.Requests > 0 && i >= opts.Requests {
					return
				}
				if !send(ctx, w, job{i: i, due: time.Now()}) {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		running.Wait()
		cancel()
	}()
}

// runOpen schedules the requests of an open-loop run at opts.Rate and hands
// them to the clients. Requests due while every client is busy queue up, and
// their latency counts from when they were due.
func runOpen(ctx context.Context, opts Options, start time.Time, workers []*worker, send func(context.Context, *worker, job) bool, wg *sync.WaitGroup) {
	jobs := make(chan job, len(workers))
	interval := float64(time.Second) / opts.Rate
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if !send(ctx, w, j) {
					// Interrupted: drain what is scheduled uncounted.
					for range jobs {
					}
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		for i := int64(0); ; i++ {
			if opts.Requests > 0 && i >= opts.Requests {
				return
			}
			offset := time.Duration(float64(i) * interval)
			if opts.Duration > 0 && offset >= opts.Duration {
				return
			}
			due := start.Add(offset)
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case jobs <- job{i: i, due: due}:
			case <-ctx.Done():
				return
			}
		}
	}()
}
