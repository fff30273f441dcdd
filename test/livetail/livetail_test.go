// Package livetail_test drives the live tail of real `trail serve`
// processes: `trail tail` on the command line, a tail across a server's
// restart, and the benchmark of many subscribers under load
// (docs/LIVETAIL.md).
package livetail_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

func newClient(t testing.TB, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func event(action, actor string) client.Event {
	return client.Event{Action: action, OccurredAt: time.Now().UTC(),
		Actor:   client.Entity{Type: "user", ID: actor, Name: "User " + actor},
		Targets: []client.Entity{{Type: "team", ID: "team_1"}},
		Context: client.EventContext{Location: "203.0.113.7"}}
}

// `trail tail` prints NDJSON records when its output is not a terminal,
// each event once and in seq order, with its filters applied; it follows
// the log across a restart of the server.
func TestTrailTailCommand(t *testing.T) {
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--listen", "127.0.0.1:0"}})
	c := newClient(t, srv)
	ctx := trailtest.Context(t)
	org, err := c.CreateOrganization(ctx, "Tail Corp", "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, trailtest.Binary(t), "tail", "--server", srv.URL, "--api-key", srv.Key,
		"--org", org.ID, "--action", "tail.*", "--count", "6")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The tail starts at the log's end: wait until it is connected
	// before sending what it must see.
	waitSubscribers(t, srv, 1)
	for i := range 3 {
		if err := c.CreateEvent(ctx, org.ID, event(fmt.Sprintf("tail.event_%d", i), "u1")); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateEvent(ctx, org.ID, event("other.event", "u1")); err != nil { // filtered out
			t.Fatal(err)
		}
	}
	var seqs []int64
	read := func(n int) {
		t.Helper()
		for range n {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("trail tail ended early: %s", stderr.String())
				}
				var rec struct {
					Action         string `json:"action"`
					Seq            int64  `json:"seq"`
					OrganizationID string `json:"organization_id"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.OrganizationID != org.ID || !strings.HasPrefix(rec.Action, "tail.") {
					t.Fatalf("trail tail printed %q (%v)", line, err)
				}
				seqs = append(seqs, rec.Seq)
			case <-time.After(time.Minute):
				t.Fatalf("trail tail printed %d lines in a minute; stderr: %s", len(seqs), stderr.String())
			}
		}
	}
	read(3)

	// The server restarts: the tail reconnects and resumes after the last
	// seq it printed, missing nothing sent while it was down.
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	srv2 := trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--listen", strings.TrimPrefix(srv.URL, "http://")}})
	c2 := newClient(t, srv2)
	for i := 3; i < 6; i++ {
		if err := c2.CreateEvent(ctx, org.ID, event(fmt.Sprintf("tail.event_%d", i), "u1")); err != nil {
			t.Fatal(err)
		}
	}
	read(3)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("trail tail --count 6: %v; stderr: %s", err, stderr.String())
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != 6 {
		t.Fatalf("seqs %v: want 6 distinct, increasing", seqs)
	}
}

// metrics reads the server's /metrics.
func metrics(t testing.TB, srv *trailtest.Server) string {
	t.Helper()
	res, err := http.Get(srv.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// waitSubscribers waits until the server has n live tails open.
func waitSubscribers(t testing.TB, srv *trailtest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		body := metrics(t, srv)
		for _, line := range strings.Split(body, "\n") {
			var got int
			if _, err := fmt.Sscanf(line, "trail_live_tail_subscribers %d", &got); err == nil && got >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d live tails after a minute", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkLiveTail: 100 subscribers follow one organization's log while
// events arrive at a fixed rate in batches; each event's latency runs from
// the acknowledgement of its batch to its arrival at a subscriber. The
// subscribers read the stream as a thin client would (the event ids, no
// decoding), so that the load generator's own CPU stays small beside the
// server's. Reported: p50 and p99 of that latency (ms), the ingest rate
// reached, and deliveries per second over all subscribers.
// docs/PERFORMANCE.md has the figures.
//
//	go test ./test/livetail -run '^$' -bench LiveTail -benchtime 1x
func BenchmarkLiveTail(b *testing.B) {
	const (
		subscribers = 100
		rate        = 5000 // events per second
		batch       = 100
		seconds     = 10
	)
	srv := trailtest.Start(b, trailtest.Options{})
	c := newClient(b, srv)
	ctx, cancel := context.WithCancel(trailtest.Context(b))
	defer cancel()
	org, err := c.CreateOrganization(ctx, "Bench", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		total := int64(rate * seconds)
		start, err := c.SearchEvents(ctx, client.EventQuery{OrganizationID: org.ID, ListOptions: client.ListOptions{Limit: 1}})
		if err != nil {
			b.Fatal(err)
		}
		first := int64(0)
		if len(start.Data) > 0 {
			first = start.Data[0].Seq + 1
		}
		var acked sync.Map // seq → when the batch holding it was acknowledged
		arrivals := make([][]arrival, subscribers)
		var wg sync.WaitGroup
		for i := range subscribers {
			wg.Go(func() { arrivals[i] = readIDs(b, ctx, srv, org.ID, first, first+total) })
		}
		waitSubscribers(b, srv, subscribers)
		began := time.Now()
		tick := time.NewTicker(time.Second * batch / rate)
		for sent := int64(0); sent < total; sent += batch {
			<-tick.C
			evs := make([]client.OrgEvent, batch)
			for i := range evs {
				evs[i] = client.OrgEvent{OrganizationID: org.ID, Event: event("bench.event", "u1")}
			}
			res, err := c.CreateEvents(ctx, evs)
			now := time.Now()
			if err != nil {
				b.Fatal(err)
			}
			for _, a := range res {
				acked.Store(a.Seq, now)
			}
		}
		ingestDone := time.Since(began)
		tick.Stop()
		wg.Wait()
		elapsed := time.Since(began)
		var latencies []time.Duration
		for _, as := range arrivals {
			for _, a := range as {
				if v, ok := acked.Load(a.seq); ok {
					latencies = append(latencies, max(a.at.Sub(v.(time.Time)), 0))
				}
			}
		}
		if len(latencies) == 0 {
			b.Fatal("no latencies")
		}
		slices.Sort(latencies)
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.5), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(total)/ingestDone.Seconds(), "events/s")
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "deliveries/s")
	}
}

type arrival struct {
	seq int64
	at  time.Time
}

// readIDs follows the tail from seq first and notes when each event's id
// arrives, until it has seen the event before end.
func readIDs(b *testing.B, ctx context.Context, srv *trailtest.Server, org string, first, end int64) []arrival {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/events/stream?organization_id=%s&since_seq=%d", srv.URL, org, first), nil)
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Error(err)
		return nil
	}
	defer res.Body.Close()
	out := make([]arrival, 0, end-first)
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 4 && string(line[:4]) == "id: " {
			seq, err := strconv.ParseInt(string(line[4:]), 10, 64)
			if err != nil {
				b.Error(err)
				return out
			}
			out = append(out, arrival{seq, time.Now()})
			if seq == end-1 {
				return out
			}
		}
	}
	b.Errorf("the stream ended after %d events: %v", len(out), sc.Err())
	return out
}
