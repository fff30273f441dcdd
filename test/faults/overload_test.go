package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
)

// floodResult is what the clients of flood saw.
type floodResult struct {
	codes     map[int]int
	accepted  []time.Duration // latency of 201s
	refused   []time.Duration // latency of 429/503 with Retry-After
	bad       []string        // anything else (first few)
	badCount  int
	ackEvents int
}

// flood runs clients closed-loop clients against srv for d, each sending
// batch events per request (1: POST /audit_logs/events), and records every
// answer.
func flood(c *http.Client, srv *trailtest.Server, orgs []string, tr *tracker, clients, batch int, d time.Duration) floodResult {
	var mu sync.Mutex
	res := floodResult{codes: map[int]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				evOrgs, toks := tr.tokens(fmt.Sprintf("o%d", w), orgs, batch)
				// Not ctx: a request in flight when the time is up runs to
				// its answer (bounded by the client timeout).
				a, seqs := send(context.Background(), c, srv, evOrgs, toks)
				mu.Lock()
				res.codes[a.code]++
				switch {
				case a.code == http.StatusCreated && a.err == nil:
					tr.ack(toks, seqs)
					res.ackEvents += len(toks)
					res.accepted = append(res.accepted, a.took)
				case (a.code == http.StatusTooManyRequests || a.code == http.StatusServiceUnavailable) && a.retryAfter != "":
					res.refused = append(res.refused, a.took)
				default:
					res.badCount++
					if len(res.bad) < 10 {
						res.bad = append(res.bad, fmt.Sprintf("%d (Retry-After %q) after %v: %v %.200s", a.code, a.retryAfter, a.took.Round(time.Millisecond), a.err, a.body))
					}
				}
				mu.Unlock()
				if a.code == http.StatusTooManyRequests || a.code == http.StatusServiceUnavailable {
					// A well-behaved client would wait Retry-After; these
					// hammer, to keep the server beyond capacity.
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return res
}

// TestOverload drives a server far beyond its capacity: 500 concurrent
// clients of single events, of batches of 1000 events, and of single events
// against a per-key rate limit. Every answer must be a 201, or a 429 or 503
// with Retry-After, within the client timeout; the server's memory must stay
// bounded; and every acknowledged event must be stored, after the load and
// again after a SIGKILL and restart. Latencies are logged as figures; how
// quick refusals are is BenchmarkOverload's to measure.
func TestOverload(t *testing.T) {
	d := pick(5*time.Second, 60*time.Second)
	cases := []struct {
		name    string
		clients int
		batch   int
		args    []string
		maxRSS  int64 // KiB
	}{
		// The SQLite page caches alone may take about 800 MiB (256 MiB for
		// each file's writer, 32 MiB for each reader), so the bound is 1.5 GiB.
		{name: "single events", clients: 500, batch: 1, maxRSS: 1536 << 10},
		{name: "batches of 1000", clients: 500, batch: 1000, maxRSS: 2 << 20},
		{name: "rate limited", clients: 500, batch: 1, args: []string{"--rate-limit", "1000"}, maxRSS: 1536 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			tg := newTarget(trailtest.Start(t, trailtest.Options{Data: data, Args: tc.args}))
			dumpOnFailure(t, tg)
			srv := tg.get()
			pid := serverPID(t, data)
			c := newClient(tc.clients + 10)
			orgs := createOrgs(t, c, srv, 4, "Overload")
			tr := newTracker()

			start := time.Now()
			res := flood(c, srv, orgs, tr, tc.clients, tc.batch, d)
			took := time.Since(start)
			hwm, err := procStatusKB(pid, "VmHWM")
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range res.bad {
				t.Errorf("answer neither 201 nor 429/503 with Retry-After: %s", b)
			}
			if res.badCount > len(res.bad) {
				t.Errorf("… and %d more such answers", res.badCount-len(res.bad))
			}
			if hwm > tc.maxRSS {
				t.Errorf("peak RSS %d MiB, above the %d MiB bound", hwm>>10, tc.maxRSS>>10)
			}
			t.Logf("%d clients × %d events for %v: answers %v; %d events acknowledged (%.0f/s)",
				tc.clients, tc.batch, took.Round(time.Millisecond), res.codes, res.ackEvents, float64(res.ackEvents)/took.Seconds())
			t.Logf("accepted latency p50 %v p99 %v max %v; refusal latency p50 %v p99 %v max %v; peak RSS %d MiB",
				percentile(res.accepted, 50).Round(time.Millisecond), percentile(res.accepted, 99).Round(time.Millisecond), percentile(res.accepted, 100).Round(time.Millisecond),
				percentile(res.refused, 50).Round(time.Microsecond), percentile(res.refused, 99).Round(time.Microsecond), percentile(res.refused, 100).Round(time.Microsecond),
				hwm>>10)

			requireLogs(t, checkLogs(t, c, srv, orgs, tr))
			srv.Kill()
			srv = trailtest.Start(t, trailtest.Options{Data: data, Args: tc.args})
			tg.set(srv)
			lc := checkLogs(t, c, srv, orgs, tr)
			requireLogs(t, lc)
			t.Logf("after SIGKILL and restart: %d acknowledged events all stored once", lc.acked)
		})
	}
}

// BenchmarkOverload floods a fresh server with 500 closed-loop clients for
// five seconds, of single events and of batches of 1,000, and reports what
// TestOverload only logs: how long refusals (429/503 with Retry-After) and
// accepted requests took. Refusals are answered before the body is read,
// so their p99 stays far below the accepted requests'.
//
//	go test ./test/faults -run '^$' -bench Overload -benchtime 1x
func BenchmarkOverload(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			srv := trailtest.Start(b, trailtest.Options{Data: b.TempDir()})
			c := newClient(510)
			orgs := createOrgs(b, c, srv, 4, "Overload")
			var res floodResult
			for b.Loop() {
				res = flood(c, srv, orgs, newTracker(), 500, batch, 5*time.Second)
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(percentile(res.refused, 50)), "refusal-p50-ms")
			b.ReportMetric(ms(percentile(res.refused, 99)), "refusal-p99-ms")
			b.ReportMetric(ms(percentile(res.accepted, 50)), "accepted-p50-ms")
			b.ReportMetric(ms(percentile(res.accepted, 99)), "accepted-p99-ms")
			b.ReportMetric(float64(res.ackEvents)/5, "acked-events/s")
			if res.badCount > 0 {
				b.Errorf("%d answers neither 201 nor 429/503 with Retry-After: %q", res.badCount, res.bad)
			}
		})
	}
}
