package stream_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/stream"
)

// countingSink is a local HTTP receiver that reads each body and answers
// 204, counting requests.
func countingSink(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

// BenchmarkDeliveryOneStream delivers 100,000 stored events through one
// webhook stream to a local HTTP sink, from a fresh cursor each iteration;
// events/s is the delivery rate (read from SQLite, batch, POST, advance the
// cursor). BenchmarkSinkBaseline is the same sink given the same batches
// pre-built, for comparison.
func BenchmarkDeliveryOneStream(b *testing.B) {
	const events = 100_000
	h := newHarness(b, stream.Options{})
	h.appendEvents(events)
	srv, _ := countingSink(b)
	h.start()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		id := h.createStream(stream.TypeWebhook, webhookConfig(srv.URL), 0)
		h.waitCursor(id, events)
	}
	b.ReportMetric(float64(events*b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkSinkBaseline(b *testing.B) {
	const events = 100_000
	h := newHarness(b, stream.Options{})
	h.appendEvents(1000)
	recs := h.records()
	batch := make([]stream.Event, len(recs))
	for i, r := range recs {
		batch[i] = stream.Event{Record: r}
	}
	body := stream.WebhookBody(nil, batch, false)
	srv, _ := countingSink(b)
	client := (stream.Policy{AllowLoopback: true}).HTTPClient()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for range events / 1000 {
			res, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	b.ReportMetric(float64(events*b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkLag ingests a steady 5,000 events/s (50 every 10 ms, each batch
// one commit that wakes the engine) for 10 s while 10 streams deliver to
// local sinks, and reports the p99 and maximum delivery lag: from an
// event's received_at to its arrival at a sink.
func BenchmarkLag(b *testing.B) {
	const (
		streams  = 10
		rate     = 5000
		tick     = 10 * time.Millisecond
		duration = 10 * time.Second
	)
	for b.Loop() {
		h := newHarness(b, stream.Options{})
		var mu sync.Mutex
		var lags []time.Duration
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			now := time.Now()
			var local []time.Duration
			for _, line := range bytes.Split(bytes.Trim(body, "[]"), []byte(`},{"id"`)) {
				if at := (stream.Event{Record: append([]byte(`{"id"`), line...)}).ReceivedAt(); !at.IsZero() {
					local = append(local, now.Sub(at))
				}
			}
			mu.Lock()
			lags = append(lags, local...)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		for range streams {
			h.createStream(stream.TypeWebhook, webhookConfig(srv.URL), 0)
		}
		h.start()
		// Open loop: every tick appends what is due by then, so the rate
		// holds at 5,000/s even when an append takes longer than a tick.
		t := time.NewTicker(tick)
		begin := time.Now()
		appended := 0
		for time.Since(begin) < duration {
			<-t.C
			due := int(time.Since(begin).Seconds()*rate) - appended
			if due > 0 {
				h.appendEvents(due)
				appended += due
			}
		}
		t.Stop()
		h.halt()
		srv.Close()
		slices.Sort(lags)
		if len(lags) == 0 {
			b.Fatal("nothing delivered")
		}
		b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "p99-lag-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "max-lag-ms")
		b.ReportMetric(float64(len(lags))/float64(streams), "events/stream")
		b.ReportMetric(float64(appended)/duration.Seconds(), "ingest-events/s")
	}
}

// BenchmarkIdleStreams runs the engine over 1,000 caught-up streams (the
// default 1 s poll) and reports the whole process's CPU use over a 10 s
// window (getrusage), as a percentage of one core, beside the same process
// over 10 s before the engine started.
func BenchmarkIdleStreams(b *testing.B) {
	for b.Loop() {
		h := newHarness(b, stream.Options{Poll: time.Second})
		srv, _ := countingSink(b)
		h.appendEvents(10)
		ids := make([]string, 1000)
		for i := range ids {
			ids[i] = h.createStream(stream.TypeWebhook, webhookConfig(srv.URL), 10)
		}
		// The process without the engine (the store's background
		// checkpoints, the runtime), then with it.
		before, t0 := rusage(b), time.Now()
		time.Sleep(10 * time.Second)
		base, baseWall := rusage(b)-before, time.Since(t0)
		h.start()
		time.Sleep(2 * time.Second) // every worker started and idle
		before, t0 = rusage(b), time.Now()
		time.Sleep(10 * time.Second)
		cpu, wall := rusage(b)-before, time.Since(t0)
		h.halt()
		pos, err := h.st.StreamPositions(context.Background())
		if err != nil || len(pos) != 1000 {
			b.Fatalf("positions: %d, %v", len(pos), err)
		}
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
		b.ReportMetric(100*base.Seconds()/baseWall.Seconds(), "without-engine-cpu-%")
	}
}

func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
