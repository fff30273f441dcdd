package portal

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/livetail"
)

func TestLiveStreamShowsWhatThePageShows(t *testing.T) {
	forEachBackend(t, testLiveStreamShowsWhatThePageShows)
}

// testLiveStreamShowsWhatThePageShows: the live view's event stream sends
// each event as the page's rows show it, so the vendor's key ids and
// addresses never reach the browser; the application's events keep their
// actor and location.
func testLiveStreamShowsWhatThePageShows(t *testing.T, e *env) {
	e.org("org_a", "Acme")
	hub := livetail.NewHub(e.st, livetail.Options{Poll: 10 * time.Millisecond})
	t.Cleanup(hub.Close)
	cfg := e.p.cfg
	cfg.VendorName, cfg.Tail = "Example Cloud", hub
	var err error
	if e.p, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.p)
	t.Cleanup(e.srv.Close)

	now := e.clock.Now()
	vendor := `{"action":"trail.portal_link.generated","occurred_at":"` + now.Add(-time.Minute).Format(time.RFC3339Nano) + `",` +
		`"actor":{"id":"key_01SECRETKEY","type":"api_key","name":"bootstrap admin"},"targets":[{"id":"org_a","type":"organization"}],` +
		`"context":{"location":"127.0.0.1","user_agent":"curl/8"},"metadata":{"request_id":"req_123"}}`
	e.add("org_a", ev("padding", "user_0", now.Add(-3*time.Minute)))
	ids := e.add("org_a", vendor, ev("invoice.paid", "user_b", now.Add(-30*time.Second)))

	c := e.client()
	c.open("org_a")
	// The script's status lines come translated from the page.
	c.do("GET", "/portal/live?lang=de", nil)
	page := c.get("/portal/live")
	for _, want := range []string{`data-say-open="Live: Neue Ereignisse erscheinen oben`, `data-say-many="Live: {n} neue Ereignisse`, `data-more="&#43;{n} weitere"`, `data-col-time="Zeit"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("German live page lacks %q", want)
		}
	}
	c.do("GET", "/portal/live?lang=en", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/portal/live/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "0") // from the events after the first
	res, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /portal/live/stream: %d", res.StatusCode)
	}
	got := map[string]liveRow{}
	var raw []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() && (got[ids[0]].ID == "" || got[ids[1]].ID == "") {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var row liveRow
		if err := json.Unmarshal([]byte(data), &row); err != nil {
			t.Fatalf("data %s: %v", data, err)
		}
		got[row.ID] = row
		raw = append(raw, data)
	}
	if got[ids[0]].ID == "" || got[ids[1]].ID == "" {
		t.Fatalf("the stream ended (%v) before both events: %q", sc.Err(), raw)
	}
	cancel()
	for _, data := range raw {
		for _, secret := range []string{"key_01SECRETKEY", "127.0.0.1", "bootstrap admin", "api_key", "req_123", "curl/8"} {
			if strings.Contains(data, secret) {
				t.Errorf("the stream sent %q: %s", secret, data)
			}
		}
	}
	for _, tt := range []struct {
		name string
		got  liveRow
		want liveRow
	}{
		{"the vendor's event", got[ids[0]], liveRow{ID: ids[0], Action: "trail.portal_link.generated", Trail: true,
			Actor: liveEntity{Type: "vendor", Name: "Example Cloud"}, Targets: []liveEntity{{Type: "organization", ID: "org_a"}}}},
		{"the application's event", got[ids[1]], liveRow{ID: ids[1], Action: "invoice.paid", Label: "invoice.paid",
			Actor: liveEntity{Type: "user", ID: "user_b"}, Targets: []liveEntity{{Type: "team", ID: "t1"}}, Location: "203.0.113.7"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.got
			g.Seq, g.OccurredAt = 0, ""
			if tt.want.Label == "" {
				tt.want.Label = g.Label
			}
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(tt.want)
			if string(gj) != string(wj) {
				t.Errorf("row %s, want %s", gj, wj)
			}
			if tt.got.OccurredAt == "" || tt.got.Seq == 0 {
				t.Errorf("no time or seq: %+v", tt.got)
			}
		})
	}
}
