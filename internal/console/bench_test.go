package console

// Server time of the console's events pages on a deployment of 10,000,000
// events over 10 organizations (SQLite), p50 and p95 per page. The store is
// built once and reused (building 10M events takes a long while; it resumes
// where it stopped):
//
//	TRAIL_BENCH_DIR=/var/tmp/console-bench go test ./internal/console -run '^$' -bench ConsolePages -benchtime 200x -timeout 6h
//
// TRAIL_BENCH_EVENTS sets another size (default 10,000,000);
// TRAIL_BENCH_NOBUILD=1 measures the store as far as it is built.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// benchOrgs are the organizations the benchmark's events are spread over,
// in turn.
const benchOrgs = 10

func benchOrg(i int) string { return fmt.Sprintf("org_consolebench%02d", i) }

// openBenchStore opens (building or completing it) the benchmark's store
// of n events.
func openBenchStore(b *testing.B) (*sqlite.Store, int) {
	b.Helper()
	n := 10_000_000
	if v := os.Getenv("TRAIL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < benchOrgs {
			b.Fatalf("TRAIL_BENCH_EVENTS=%q: want a number of events", v)
		}
	}
	dir := os.Getenv("TRAIL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("console-%d.db", n)), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	have := 0
	for i := range benchOrgs {
		k, err := s.NextSeq(ctx, benchOrg(i))
		if err != nil {
			now := time.Now()
			if err := s.CreateOrganization(ctx, store.Organization{ID: benchOrg(i), Name: fmt.Sprintf("Bench %02d", i), CreatedAt: now, UpdatedAt: now}); err != nil {
				b.Fatal(err)
			}
			k = 0
		}
		have += int(k)
	}
	index := func() {
		for {
			k, err := s.IndexPending(ctx, 100_000)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				return
			}
		}
	}
	if os.Getenv("TRAIL_BENCH_NOBUILD") != "" {
		n = have
	}
	if have < n {
		b.Logf("building %d events over %d organizations (from %d)…", n, benchOrgs, have)
		start := time.Now()
		rng := rand.New(rand.NewPCG(11, uint64(have)))
		for j := have; j < n; {
			var sub []store.Submission
			batch := store.Submission{}
			for ; j < n && len(batch.Events) < 4000; j++ {
				d, err := event.ParseEvent(storetest.Event(rng, j), time.Now(), event.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				batch.Events = append(batch.Events, store.PendingEvent{OrganizationID: benchOrg(j % benchOrgs), ID: event.NewID(time.Now()), ReceivedAt: time.Now(), Tail: d.Tail})
			}
			sub = append(sub, batch)
			if _, err := s.Append(ctx, sub, time.Now()); err != nil {
				b.Fatal(err)
			}
			if j%48_000 < 4000 {
				index() // within the bound on events waiting for the indexer
			}
			if j%200_000 < 4000 {
				b.Logf("%d events, %s", j, time.Since(start).Round(time.Second))
			}
		}
	}
	index()
	return s, n
}

// BenchmarkConsoleStore only builds (or completes) the store.
func BenchmarkConsoleStore(b *testing.B) {
	_, n := openBenchStore(b)
	for b.Loop() {
	}
	b.ReportMetric(float64(n), "events")
}

// BenchmarkConsolePages reports the p50 and p95 server time of the
// console's events pages (session check, filter parsing, the search,
// organization names, decoding and rendering 50 rows): one organization's
// events and the search across organizations, each unfiltered, on its
// next page and with each kind of filter, one event's page and the live
// page's first list.
func BenchmarkConsolePages(b *testing.B) {
	s, n := openBenchStore(b)
	ctx := context.Background()
	now := time.Now()
	c, err := New(Config{Store: s, BaseURL: "http://bench.test", SessionKey: make([]byte, 32), Tail: &nopTail{},
		Audit: func(*http.Request, Action) {}})
	if err != nil {
		b.Fatal(err)
	}
	link, _, err := CreateLink(ctx, s, "http://bench.test", "bench", now)
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(link)
	hash, _ := parseToken(u.Query().Get("secret"))
	if _, err := s.RedeemPortalLink(ctx, hash, now); err != nil {
		b.Fatal(err)
	}
	cookie := &http.Cookie{Name: cookieName, Value: c.encodeSession(&session{Version: sessionVersion, Operator: "bench",
		ID: "0123456789abcdef0123456789abcdef", Expires: now.Add(24 * time.Hour).Unix(), Link: fmt.Sprintf("%x", hash)})}

	org := benchOrg(3)
	first, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 50})
	if err != nil || len(first.Events) < 10 {
		b.Fatalf("no events: %v", err)
	}
	all, err := s.SearchAllEvents(ctx, store.EventQuery{Limit: 50})
	if err != nil || all.After == "" {
		b.Fatalf("no events across organizations: %v", err)
	}
	rec, _ := event.ParseRecord(first.Events[7].Record)
	mid := storetest.EventEpoch.Add(time.Duration(n/2) * 5 * time.Millisecond)
	ten := "from=" + mid.Format("2006-01-02T15:04") + "&to=" + mid.Add(10*time.Minute).Format("2006-01-02T15:04")
	filters := []struct{ name, query string }{
		{"all", ""},
		{"action", "action=" + url.QueryEscape(rec.Action)},
		{"actor", "actor_id=" + url.QueryEscape(rec.Actor.ID)},
		{"target", "target_type=" + url.QueryEscape(rec.Targets[0].Type) + "&target_id=" + url.QueryEscape(rec.Targets[0].ID)},
		{"text", "q=" + url.QueryEscape(rec.Actor.Name)},
		{"ten_minutes", ten},
	}
	type view struct{ name, target string }
	var views []view
	for _, f := range filters {
		views = append(views, view{"org_events/" + f.name, "/console/organizations/" + org + "/events?" + f.query})
	}
	views = append(views, view{"org_events/next_page", "/console/organizations/" + org + "/events?after=" + url.QueryEscape(first.After)})
	for _, f := range filters {
		views = append(views, view{"all_events/" + f.name, "/console/events?" + f.query})
	}
	views = append(views, view{"all_events/next_page", "/console/events?after=" + url.QueryEscape(all.After)},
		view{"event", "/console/events/" + first.Events[7].ID},
		view{"live", "/console/organizations/" + org + "/live"})
	for _, v := range views {
		b.Run(v.name, func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				req := httptest.NewRequest("GET", v.target, nil)
				req.AddCookie(cookie)
				w := httptest.NewRecorder()
				t0 := time.Now()
				c.ServeHTTP(w, req)
				d = append(d, time.Since(t0))
				if w.Code != 200 {
					b.Fatalf("%s: %d: %s", v.target, w.Code, w.Body.String())
				}
			}
			report(b, d)
		})
	}
	b.Logf("%d events over %d organizations", n, benchOrgs)
}

type nopTail struct{}

func (nopTail) ServeSSE(http.ResponseWriter, *http.Request, string, int64, livetail.Filter, livetail.StreamOptions) error {
	return nil
}

func report(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	q := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
}
