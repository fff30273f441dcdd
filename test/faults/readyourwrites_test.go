package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/trailaudit/trail/internal/trailtest"
)

// searchLag reads trail_search_lag_events from the operator listener's
// /metrics (-1 when absent).
func searchLag(t *testing.T, c *http.Client, srv *trailtest.Server) int64 {
	t.Helper()
	res, err := c.Get(srv.MetricsURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", res.StatusCode, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "trail_search_lag_events "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	return -1
}

// searchAll walks every page of GET /v1/events with params and returns the
// tokens of the events found, with how often each was found.
func searchAll(t *testing.T, c *http.Client, srv *trailtest.Server, params url.Values) map[string]int {
	t.Helper()
	found := map[string]int{}
	after := ""
	for {
		p := url.Values{}
		for k, v := range params {
			p[k] = v
		}
		p.Set("limit", "100")
		if after != "" {
			p.Set("after", after)
		}
		var page struct {
			Data []struct {
				Metadata map[string]string `json:"metadata"`
			}
			ListMetadata struct {
				After *string `json:"after"`
			} `json:"list_metadata"`
		}
		if err := json.Unmarshal(must(t, c, srv, "GET", "/v1/events?"+p.Encode(), nil), &page); err != nil {
			t.Fatalf("search: %v", err)
		}
		for _, e := range page.Data {
			if tok := e.Metadata["token"]; tok != "" {
				found[tok]++
			}
		}
		if page.ListMetadata.After == nil || *page.ListMetadata.After == "" {
			return found
		}
		after = *page.ListMetadata.After
	}
}

// TestCrashWithIndexingBacklog SIGKILLs a server while acknowledged events
// wait for the search indexer, restarts it on the same data, and searches
// at once: every acknowledged event is found exactly once, by a walk of all
// pages and by its own token. Both servers hold their indexer back
// (TRAIL_SEARCH_INDEX_DELAY), so the backlog is certain at the kill and
// still there at every read after the restart.
func TestCrashWithIndexingBacklog(t *testing.T) {
	data := t.TempDir()
	held := trailtest.Options{Data: data, Env: []string{"TRAIL_SEARCH_INDEX_DELAY=1h"}}
	srv := trailtest.Start(t, held)
	c := newClient(16)
	orgs := createOrgs(t, c, srv, 2, "Backlog")
	tr := newTracker()

	// Batches from several clients at once, then the kill.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				evOrgs, toks := tr.tokens(fmt.Sprintf("c%d", w), orgs, 250)
				a, seqs := send(context.Background(), c, srv, evOrgs, toks)
				if a.code == http.StatusCreated && a.err == nil {
					tr.ack(toks, seqs)
				}
			}
		}()
	}
	wg.Wait()
	lag := searchLag(t, c, srv)
	srv.Kill()
	sent, acked := tr.counts()
	if acked == 0 || lag < int64(acked) {
		t.Fatalf("at the kill %d of %d sent events were acknowledged and %d waited for the indexer; want all acknowledged ones waiting", acked, sent, lag)
	}

	srv = trailtest.Start(t, held)
	if after := searchLag(t, c, srv); after < int64(acked) {
		t.Fatalf("after the restart %d events wait for the indexer, want at least %d", after, acked)
	}
	found := map[string]int{}
	for _, org := range orgs {
		for tok, n := range searchAll(t, c, srv, url.Values{"organization_id": {org}}) {
			found[tok] += n
		}
	}
	tr.mu.Lock()
	var missing, twice, sample []string
	for tok := range tr.acked {
		switch found[tok] {
		case 0:
			missing = append(missing, tok)
		case 1:
		default:
			twice = append(twice, tok)
		}
		if len(sample) < 20 {
			sample = append(sample, tok)
		}
	}
	orgOf := tr.sent
	tr.mu.Unlock()
	if len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("after the restart: %d acknowledged events not found (e.g. %.5q), %d found more than once (e.g. %.5q)",
			len(missing), missing, len(twice), twice)
	}
	// And each by its own token, and by a filter of its organization.
	for _, tok := range sample {
		got := searchAll(t, c, srv, url.Values{"organization_id": {orgOf[tok]}, "q": {tok}})
		if got[tok] != 1 || len(got) != 1 {
			t.Errorf("q=%s found %v, want that event alone", tok, got)
		}
	}
	byAction := searchAll(t, c, srv, url.Values{"organization_id": {orgs[0]}, "action": {"fault.*"}, "actor_id": {"user_1"}})
	for tok, org := range orgOf {
		if _, ok := tr.acked[tok]; ok && org == orgs[0] && byAction[tok] != 1 {
			t.Fatalf("action=fault.*&actor_id=user_1 did not find %s once", tok)
		}
	}
	t.Logf("%d events acknowledged before the kill, all waiting for the indexer; after the restart each was found once", acked)
}
