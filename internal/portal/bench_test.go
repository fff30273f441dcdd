package portal

// Server time of the events page on an organization of 1,000,000 events,
// next to the same SearchEvents call alone (the baseline), in the same run.
// The store is built once (a few minutes) and reused:
//
//	TRAIL_BENCH_DIR=/var/tmp/trail-bench go test ./internal/portal -run '^$' -bench EventsPage -benchtime 200x -timeout 1h
//
// TRAIL_BENCH_EVENTS sets another size (default 1,000,000).

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/store/storetest"
)

const benchOrg = "org_portalbench"

func openBenchStore(b *testing.B) (*sqlite.Store, int) {
	b.Helper()
	n := 1_000_000
	if v := os.Getenv("TRAIL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("TRAIL_BENCH_EVENTS=%q: want a number of events", v)
		}
	}
	dir := os.Getenv("TRAIL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("portal-%d.db", n)), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	have, err := s.NextSeq(ctx, benchOrg)
	if err != nil {
		if err := s.CreateOrganization(ctx, store.Organization{ID: benchOrg, Name: "Bench", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		have = 0
	}
	if int(have) < n {
		b.Logf("building %d events of one organization (from %d)…", n, have)
		start := time.Now()
		rng := rand.New(rand.NewPCG(7, uint64(have)))
		for j := int(have); j < n; {
			var sub store.Submission
			for ; j < n && len(sub.Events) < 4000; j++ {
				d, err := event.ParseEvent(storetest.Event(rng, j), time.Now(), event.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: benchOrg, ID: event.NewID(time.Now()), ReceivedAt: time.Now(), Tail: d.Tail})
			}
			if _, err := s.Append(ctx, []store.Submission{sub}, time.Now()); err != nil {
				b.Fatal(err)
			}
			if j%48_000 < 4000 {
				// Within the bound on events waiting for the indexer.
				for {
					k, err := s.IndexPending(ctx, 100_000)
					if err != nil {
						b.Fatal(err)
					}
					if k == 0 {
						break
					}
				}
			}
			if j%200_000 == 0 {
				b.Logf("%d events, %s", j, time.Since(start).Round(time.Second))
			}
		}
	}
	for {
		k, err := s.IndexPending(ctx, 100_000)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	return s, n
}

// BenchmarkEventsPage reports, per kind of view, the p50 and p95 server
// time of GET /portal/events (session check, filter parsing, the action
// list, the search, decoding and rendering 50 rows) and of the
// SearchEvents call alone.
func BenchmarkEventsPage(b *testing.B) {
	s, n := openBenchStore(b)
	_, vkey, _ := note.GenerateKey(nil, "bench")
	p, err := New(Config{Store: s, Ledger: s, VerifierKey: vkey, BaseURL: "http://bench.test", SessionKey: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	cookie := benchSession(b, p, s)
	ctx := context.Background()
	// Values from stored events, so that filters match.
	first, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: benchOrg, Limit: 100})
	if err != nil || len(first.Events) == 0 {
		b.Fatalf("no events: %v", err)
	}
	rec, _ := event.ParseRecord(first.Events[7].Record)
	mid := storetest.EventEpoch.Add(time.Duration(n/2) * 5 * time.Millisecond)
	views := []struct{ name, query string }{
		{"all", ""},
		{"next_page", "after=" + url.QueryEscape(first.After)},
		{"action", "action=" + url.QueryEscape(rec.Action)},
		{"three_actions", "action=" + url.QueryEscape(storetest.Actions[0]) + "&action=" + url.QueryEscape(storetest.Actions[1]) + "&action=" + url.QueryEscape(storetest.Actions[2])},
		{"actor", "actor_id=" + url.QueryEscape(rec.Actor.ID)},
		{"target", "target_type=" + url.QueryEscape(rec.Targets[0].Type) + "&target_id=" + url.QueryEscape(rec.Targets[0].ID)},
		{"text", "q=" + url.QueryEscape(rec.Actor.Name)},
		{"ten_minutes", "from=" + mid.Format("2006-01-02T15:04") + "&to=" + mid.Add(10*time.Minute).Format("2006-01-02T15:04")},
	}
	for _, v := range views {
		vals, _ := url.ParseQuery(v.query)
		f, problems := parseFilter(vals)
		if len(problems) > 0 {
			b.Fatalf("%s: %q", v.name, problems)
		}
		b.Run(v.name+"/page", func(b *testing.B) { timeGets(b, p, cookie, "/portal/events?"+v.query) })
		b.Run(v.name+"/search_only", func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.SearchEvents(ctx, f.query(benchOrg)); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(t0))
			}
			report(b, d)
		})
	}
	// The histogram is its own request (an <img>); it counts every event
	// of its range.
	for _, span := range []time.Duration{10 * time.Minute, 3 * time.Hour} {
		from := storetest.EventEpoch.Add(-time.Minute)
		if span < time.Hour {
			from = mid
		}
		q := "from=" + from.Format("2006-01-02T15:04") + "&to=" + from.Add(span).Format("2006-01-02T15:04")
		b.Run("histogram_"+span.String(), func(b *testing.B) { timeGets(b, p, cookie, "/portal/events/histogram.svg?"+q) })
	}
}

// BenchmarkHistogram reports the server time of the histogram over every
// event of the organization (3 hours from before the first), without a
// filter (EventHistogram, the baseline) and with each kind of filter
// (SearchHistogram: exact counts, every matching event counted):
//
//	TRAIL_BENCH_DIR=/var/tmp/trail-bench TRAIL_BENCH_EVENTS=100000 go test ./internal/portal -run '^$' -bench Histogram -benchtime 20x -count 3
func BenchmarkHistogram(b *testing.B) {
	s, _ := openBenchStore(b)
	_, vkey, _ := note.GenerateKey(nil, "bench")
	p, err := New(Config{Store: s, Ledger: s, VerifierKey: vkey, BaseURL: "http://bench.test", SessionKey: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	cookie := benchSession(b, p, s)
	first, err := s.SearchEvents(context.Background(), store.EventQuery{OrganizationID: benchOrg, Limit: 100})
	if err != nil || len(first.Events) == 0 {
		b.Fatalf("no events: %v", err)
	}
	rec, _ := event.ParseRecord(first.Events[7].Record)
	from := storetest.EventEpoch.Add(-time.Minute)
	dates := "from=" + from.Format("2006-01-02T15:04") + "&to=" + from.Add(3*time.Hour).Format("2006-01-02T15:04")
	for _, v := range []struct{ name, query string }{
		{"dates", ""},
		{"action", "action=" + url.QueryEscape(rec.Action)},
		{"actor", "actor_id=" + url.QueryEscape(rec.Actor.ID)},
		{"target", "target_type=" + url.QueryEscape(rec.Targets[0].Type) + "&target_id=" + url.QueryEscape(rec.Targets[0].ID)},
		{"text", "q=" + url.QueryEscape(rec.Actor.Name)},
		// Half of the events, by half of the actions: the most an
		// action filter counts through the index of the search (more
		// are counted as all events less the others').
		{"half_actions", "action=" + strings.Join(storetest.Actions[:len(storetest.Actions)/2], "&action=")},
		// Every event matches: all of the organization's actions.
		{"all_actions", "trail=hide"},
	} {
		q := dates
		if v.query != "" {
			q += "&" + v.query
		}
		b.Run(v.name, func(b *testing.B) { timeGets(b, p, cookie, "/portal/events/histogram.svg?"+q) })
	}
}

// benchSession is the cookie of a session opened through a link redeemed
// in s (every request checks the link's row).
func benchSession(b *testing.B, p *Portal, s *sqlite.Store) *http.Cookie {
	b.Helper()
	ctx := context.Background()
	var token [16]byte
	crand.Read(token[:])
	hash := sha256.Sum256(token[:])
	now := time.Now()
	if err := s.CreatePortalLink(ctx, store.PortalLink{Hash: hash, OrganizationID: benchOrg, Intent: IntentAuditLogs,
		CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.RedeemPortalLink(ctx, hash, now); err != nil {
		b.Fatal(err)
	}
	return &http.Cookie{Name: cookieName, Value: p.encodeSession(&session{Version: sessionVersion, Org: benchOrg, OrgName: "Bench",
		Intent: IntentAuditLogs, ID: "bench", Expires: now.Add(24 * time.Hour).Unix(), Link: hex.EncodeToString(hash[:])})}
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

// timeGets reports the p50 and p95 server time of GET target with the
// session cookie, failing on any answer but 200.
func timeGets(b *testing.B, h http.Handler, cookie *http.Cookie, target string) {
	var d []time.Duration
	for b.Loop() {
		req := httptest.NewRequest("GET", target, nil)
		req.AddCookie(cookie)
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, req)
		d = append(d, time.Since(t0))
		if w.Code != 200 {
			b.Fatalf("%s: %d: %s", target, w.Code, w.Body.String())
		}
	}
	report(b, d)
}
