package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/livetail"
)

func withTail(maxDuration time.Duration) envOption {
	return func(c *Config, e *env) {
		hub := livetail.NewHub(e.st, livetail.Options{Poll: 20 * time.Millisecond, MaxResume: 5})
		e.t.Cleanup(hub.Close)
		c.Tail = TailConfig{Hub: hub, MaxDuration: maxDuration}
	}
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, name, data string
}

// openTail opens GET /v1/events/stream?query and returns its events as they
// come; the stream closes with the test.
func openTail(t *testing.T, srv *httptest.Server, secret, query string, headers ...string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseEvent, 100)
	if res.StatusCode != http.StatusOK {
		close(out)
		return res, out
	}
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return res, out
}

func nextEvent(t *testing.T, c <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-c:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(time.Minute):
		t.Fatal("no event within a minute")
	}
	return sseEvent{}
}

func TestLiveTail(t *testing.T) {
	e := newEnv(t, withTail(time.Hour))
	srv := httptest.NewServer(e.srv)
	defer srv.Close()
	defer e.srv.cfg.Tail.Hub.Close() // first: Close waits for the streams
	org := e.org("Acme")
	other := e.org("Other")
	post := func(org, action string) string {
		t.Helper()
		res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, action))
		if res.Code != http.StatusCreated {
			t.Fatalf("create event: %d %s", res.Code, res.Body)
		}
		// The seq it got: the log's size less one.
		n, err := e.st.NextSeq(context.Background(), org)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(jsonNumber(n - 1))
	}

	res, all := openTail(t, srv, e.admin, "organization_id="+org)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("open: %d %v", res.StatusCode, res.Header)
	}
	_, users := openTail(t, srv, e.admin, "organization_id="+org+"&action=user.*&q=smith")

	var seqs []string
	for _, a := range []string{"user.signed_in", "doc.read", "user.signed_out"} {
		post(other, a) // another organization: never in this tail
		seqs = append(seqs, post(org, a))
	}
	for _, want := range seqs {
		ev := nextEvent(t, all)
		if ev.name != "event" || ev.id != want {
			t.Fatalf("event %+v, want id %s", ev, want)
		}
		var rec struct {
			OrganizationID string `json:"organization_id"`
			Seq            int64  `json:"seq"`
		}
		if err := json.Unmarshal([]byte(ev.data), &rec); err != nil || rec.OrganizationID != org || jsonNumber(rec.Seq) != want {
			t.Fatalf("data %s: %+v %v", ev.data, rec, err)
		}
	}
	for _, want := range []string{seqs[0], seqs[2]} {
		if ev := nextEvent(t, users); ev.id != want {
			t.Fatalf("filtered tail: id %s, want %s", ev.id, want)
		}
	}

	// A client reconnecting with Last-Event-ID gets what it missed, then
	// what comes.
	_, resumed := openTail(t, srv, e.admin, "organization_id="+org, "Last-Event-ID", seqs[0])
	if ev := nextEvent(t, resumed); ev.id != seqs[1] {
		t.Fatalf("resumed after %s: first id %s", seqs[0], ev.id)
	}
	if ev := nextEvent(t, resumed); ev.id != seqs[2] {
		t.Fatalf("resumed: second id %s", ev.id)
	}
	last := post(org, "doc.read")
	if ev := nextEvent(t, resumed); ev.id != last {
		t.Fatalf("resumed: new event id %s, want %s", ev.id, last)
	}

	// Refusals, before any stream starts.
	restricted, _ := e.key("other org reader", []string{access.ScopeEventsRead}, other)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	for _, tc := range []struct {
		name, secret, query string
		headers             []string
		status              int
		says                string
	}{
		{"no organization", e.admin, "", nil, 422, "organization_id is required"},
		{"a search parameter", e.admin, "organization_id=" + org + "&range_start=2020-01-01T00:00:00Z", nil, 422, "range_start is a parameter of the search"},
		{"unknown parameter", e.admin, "organization_id=" + org + "&color=blue", nil, 422, "not a parameter of the live tail"},
		{"bad since_seq", e.admin, "organization_id=" + org + "&since_seq=-3", nil, 422, "since_seq must be a seq"},
		{"bad Last-Event-ID", e.admin, "organization_id=" + org, []string{"Last-Event-ID", "x"}, 422, "Last-Event-ID must be"},
		{"resume too old", e.admin, "organization_id=" + org + "&since_seq=0", nil, 422, "too far behind"},
		{"another organization's key", restricted, "organization_id=" + org, nil, 404, "Organization"},
		{"unknown organization", e.admin, "organization_id=org_01JUNKNOWN000000000000000", nil, 404, "Organization"},
		{"no read scope", writer, "organization_id=" + org, nil, 403, ""},
		{"no key", "", "organization_id=" + org, nil, 401, ""},
	} {
		// "resume too old" needs more than MaxResume (5) events.
		if tc.name == "resume too old" {
			for range 3 {
				post(org, "filler.event")
			}
		}
		res, _ := openTail(t, srv, tc.secret, tc.query, tc.headers...)
		body := new(strings.Builder)
		_, _ = bufio.NewReader(res.Body).WriteTo(body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(body.String(), tc.says) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.name, res.StatusCode, body, tc.status, tc.says)
		}
	}
}

// A stream ends after MaxDuration, and when the hub closes (shutdown) it
// says so in an error event, so the client reconnects.
func TestLiveTailEnds(t *testing.T) {
	e := newEnv(t, withTail(50*time.Millisecond))
	srv := httptest.NewServer(e.srv)
	defer srv.Close()
	org := e.org("Acme")
	_, c := openTail(t, srv, e.admin, "organization_id="+org)
	select {
	case _, ok := <-c:
		if ok {
			t.Fatal("an event on an idle stream")
		}
	case <-time.After(time.Minute):
		t.Fatal("the stream did not end after MaxDuration")
	}

	long := newEnv(t, withTail(time.Hour))
	srv2 := httptest.NewServer(long.srv)
	defer srv2.Close()
	defer long.srv.cfg.Tail.Hub.Close()
	org2 := long.org("Acme")
	// The answer's header comes after the subscription is made.
	_, c2 := openTail(t, srv2, long.admin, "organization_id="+org2)
	long.srv.cfg.Tail.Hub.Close()
	ev := nextEvent(t, c2)
	if ev.name != "error" || !strings.Contains(ev.data, "shutting_down") {
		t.Fatalf("after Close: %+v", ev)
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
