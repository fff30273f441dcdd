package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/loadgen"
)

// QueryOptions configure a query run.
type QueryOptions struct {
	Load
	Orgs     []string // organizations to search; with Seed, created when empty
	OrgCount int      // organizations to create for the seed
	Seed     int64    // events to store first (spread over the last day)
	Limit    int      // page size
	Target   string
	Live     *loadgen.Counters
	// Seeding, when set, is told that seeding starts (so a progress line
	// can say so) and when it is done.
	Seeding func(started bool)
}

// queryKind is one kind of search in the mix; params gives the filters of
// its i-th request, against organization k of n.
type queryKind struct {
	name   string
	params func(i int64, k, n int, v url.Values)
}

// held returns a value near v (mod m) that organization k of n holds when
// event j went to organization j mod n and carries value j mod m (as
// Events does): values ≡ k modulo gcd(n, m).
func held(v int64, m int64, k, n int) int64 {
	g := gcd(int64(n), m)
	return (v - v%g + int64(k)%g) % m
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// queryKinds is the mix a query run cycles through: the filters of an
// events page in an admin console, over the values Events generates.
func queryKinds(now time.Time) []queryKind {
	return []queryKind{
		{"newest", func(i int64, k, n int, v url.Values) {}},
		{"action", func(i int64, k, n int, v url.Values) {
			v.Set("action", actions[held(i, int64(len(actions)), k, n)])
		}},
		{"action_prefix", func(i int64, k, n int, v url.Values) { v.Set("action", []string{"user.*", "team.*"}[i%2]) }},
		{"actor_id", func(i int64, k, n int, v url.Values) {
			v.Set("actor_id", fmt.Sprintf("user_%06d", held(i*7919%1000, 1000, k, n)))
		}},
		{"target", func(i int64, k, n int, v url.Values) {
			v.Set("target_type", "team")
			v.Set("target_id", fmt.Sprintf("team_%04d", held(i%50, 50, k, n)))
		}},
		{"text", func(i int64, k, n int, v url.Values) {
			v.Set("q", fmt.Sprintf("user_%06d", held(i*104729%1000, 1000, k, n)))
		}},
		{"time_range", func(i int64, k, n int, v url.Values) {
			// A one-hour window somewhere in the last day.
			end := now.Add(-time.Duration(i%24) * time.Hour)
			v.Set("range_start", end.Add(-time.Hour).UTC().Format(time.RFC3339))
			v.Set("range_end", end.UTC().Format(time.RFC3339))
		}},
	}
}

// Query searches first pages of GET /v1/events with a mix of filters.
func Query(ctx context.Context, c *Client, opts QueryOptions) (Report, error) {
	rep := Report{Mode: "query", RunID: NewRunID(), Target: opts.Target}
	opts.describe(&rep)
	orgs := opts.Orgs
	var err error
	if opts.Seed > 0 {
		if len(orgs) == 0 {
			if orgs, err = c.CreateOrganizations(ctx, rep.RunID, max(opts.OrgCount, 1)); err != nil {
				return rep, err
			}
		}
		if opts.Seeding != nil {
			opts.Seeding(true)
		}
		if _, err := seed(ctx, c, rep.RunID, orgs, opts.Seed, nil); err != nil {
			return rep, err
		}
		if err := waitIndexed(ctx, c, 2*time.Minute); err != nil {
			return rep, err
		}
		if opts.Seeding != nil {
			opts.Seeding(false)
		}
	}
	if len(orgs) == 0 {
		if orgs, err = c.Organizations(ctx); err != nil {
			return rep, err
		}
		if len(orgs) == 0 {
			return rep, fmt.Errorf("the server has no organization to search: seed one with --seed N, or name some with --org")
		}
	}
	rep.Orgs = len(orgs)

	kinds := queryKinds(time.Now())
	type kindStats struct {
		mu                    sync.Mutex
		lat                   *loadgen.Samples
		requests, errs, empty int64
		example               string
	}
	stats := make([]*kindStats, len(kinds))
	for k := range stats {
		stats[k] = &kindStats{lat: loadgen.NewSamples(0)}
	}
	query := func(i int64) url.Values {
		kind, m := kinds[i%int64(len(kinds))], i/int64(len(kinds))
		org := int(m % int64(len(orgs)))
		v := url.Values{}
		v.Set("organization_id", orgs[org])
		v.Set("limit", strconv.Itoa(opts.Limit))
		kind.params(m, org, len(orgs), v)
		return v
	}
	for k := range stats {
		stats[k].example = query(int64(k)).Encode()
	}
	lo := opts.options(opts.Live)
	lo.Done = func(a loadgen.Answer) {
		s := stats[a.I%int64(len(kinds))]
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if a.Status != http.StatusOK {
			s.errs++
			return
		}
		s.lat.Add(a.Latency)
		if bytes.Contains(a.Body, []byte(`"data":[]`)) {
			s.empty++
		}
	}
	machine := startMachine()
	res := loadgen.Run(ctx, c.HTTP, lo, func(i int64) (*http.Request, error) {
		return c.Request(http.MethodGet, "/v1/events", query(i), nil)
	})
	rep.Machine = machine.stop()
	rep.fill(res, 0)
	for k, s := range stats {
		rep.Queries = append(rep.Queries, QueryStats{Kind: kinds[k].name, Example: s.example, Requests: s.requests,
			Errors: s.errs, EmptyPages: s.empty, Latency: LatencyOf(s.lat)})
	}
	return rep, nil
}

// waitIndexed waits until the server's background search indexer has
// caught up with the events it accepted, as its metrics tell; a server
// without those metrics (one that indexes in the ingest transaction) is
// taken as caught up.
func waitIndexed(ctx context.Context, c *Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		accepted, ok1, err := c.Metric(ctx, "trail_events_accepted_total")
		if err != nil {
			return fmt.Errorf("reading the server's metrics to wait for its search index: %w", err)
		}
		indexed, ok2, err := c.Metric(ctx, "trail_search_indexed_events_total")
		if err != nil {
			return fmt.Errorf("reading the server's metrics to wait for its search index: %w", err)
		}
		if !ok1 || !ok2 || indexed >= accepted {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server's search index is still %d events behind after %v", int64(accepted-indexed), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
