package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/webauth"
)

// createOrg stores an organization named name.
func (e *env) createOrg(name string) store.Organization {
	e.t.Helper()
	now := time.Now()
	o := store.Organization{ID: access.NewOrganizationID(now), Name: name, CreatedAt: now, UpdatedAt: now}
	if err := e.st.CreateOrganization(context.Background(), o); err != nil {
		e.t.Fatal(err)
	}
	return o
}

// appendLogEvents stores n events of org, one a second back from now (the
// newest first in time is the last appended), with the action and actor
// each returns, and indexes them.
func (e *env) appendLogEvents(org string, n int, action func(i int) string, actor func(i int) string) []event.Accepted {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var sub store.Submission
	for i := range n {
		raw := fmt.Sprintf(`{"action":%q,"occurred_at":%q,"actor":{"id":%q,"type":"user","name":"Name %s"},"targets":[{"id":"doc_%d","type":"document"}],"context":{"location":"192.0.2.%d"},"metadata":{"n":"%d"}}`,
			action(i), now.Add(time.Duration(i-n)*time.Second).Format(time.RFC3339Nano), actor(i), actor(i), i, i%250+1, i)
		d, err := event.ParseEvent([]byte(raw), now, event.DefaultLimits())
		if err != nil {
			e.t.Fatalf("%v: %s", err, raw)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail, Draft: d})
	}
	res, err := e.st.Append(context.Background(), []store.Submission{sub}, now)
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("Append: %v %v", err, res)
	}
	for {
		k, err := e.st.IndexPending(context.Background(), 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	return res[0].Events
}

var (
	rowLinks = regexp.MustCompile(`href="/console/events/(evt_[0-9A-Za-z]+)"`)
	olderRe  = regexp.MustCompile(`href="([^"]+)" rel="next" id="older"`)
	newerRe  = regexp.MustCompile(`href="([^"]+)" rel="prev" id="newer"`)
)

func unescape(s string) string { return strings.ReplaceAll(s, "&amp;", "&") }

func TestEventsPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cookie, _ := e.signIn()
		acme, beta := e.createOrg("Acme"), e.createOrg("Beta")
		a := e.appendLogEvents(acme.ID, 60, func(i int) string {
			if i%3 == 0 {
				return "user.signed_in"
			}
			return "document.read"
		}, func(i int) string { return fmt.Sprintf("user_a%d", i%4) })
		b := e.appendLogEvents(beta.ID, 7, func(int) string { return "user.signed_in" }, func(i int) string { return "user_shared" })
		e.appendLogEvents(acme.ID, 2, func(int) string { return "user.signed_in" }, func(i int) string { return "user_shared" })
		e.appendLogEvents(store.SystemOrganizationID, 1, func(int) string { return "trail.console_session.started" }, func(i int) string { return "alice" })
		get := func(target string) (int, string) {
			t.Helper()
			code, body, _ := e.do(req{method: "GET", target: target, cookie: cookie})
			return code, body
		}
		ids := func(body string) []string {
			var out []string
			for _, m := range rowLinks.FindAllStringSubmatch(body, -1) {
				out = append(out, m[1])
			}
			return out
		}

		cases := []struct {
			name, target string
			status       int
			rows         int
			contains     []string
			absent       []string
		}{
			{"one organization", "/console/organizations/" + acme.ID + "/events", 200, 50,
				[]string{`Scope: organization <strong dir="auto">Acme</strong>`, `<code>` + acme.ID + `</code>`, `id="older"`}, []string{beta.ID, "Scope: <strong>all organizations"}},
			{"one organization, action", "/console/organizations/" + acme.ID + "/events?action=user.signed_in", 200, 22,
				[]string{`<option value="user.signed_in" selected>`}, []string{"document.read</code>"}},
			{"one organization, actor", "/console/organizations/" + acme.ID + "/events?actor_id=user_shared", 200, 2, nil, nil},
			{"one organization, text", "/console/organizations/" + acme.ID + "/events?q=user_a1", 200, 15, nil, nil},
			{"one organization, bad date", "/console/organizations/" + acme.ID + "/events?from=yesterday", 400, 0,
				[]string{"From &#34;yesterday&#34; is not a date"}, nil},
			{"one organization, bad cursor", "/console/organizations/" + acme.ID + "/events?after=nonsense", 400, 0,
				[]string{"The page cursor is not valid"}, nil},
			{"unknown organization", "/console/organizations/org_nothere/events", 404, 0, []string{"Organization not found"}, nil},
			{"org_system's own log", "/console/organizations/" + store.SystemOrganizationID + "/events", 200, 1,
				[]string{"trail.console_session.started"}, nil},
			{"all organizations", "/console/events", 200, 50,
				[]string{"Scope: <strong>all organizations</strong>", `<th scope="col">Organization</th>`, acme.ID, `id="older"`}, nil},
			{"all organizations, actor", "/console/events?actor_id=user_shared", 200, 9,
				[]string{acme.ID, beta.ID, "Scope: <strong>all organizations</strong>"}, nil},
			{"all organizations, actions", "/console/events?action=user.signed_in,+nothing.else&actor_id=user_shared", 200, 9,
				[]string{`value="user.signed_in, nothing.else"`}, nil},
			{"all organizations, bad", "/console/events?to=2020-01-01&from=2021-01-01", 400, 0, []string{"From must be before To."}, nil},
			{"all organizations, bad cursor", "/console/events?before=x", 400, 0, []string{"The page cursor is not valid"}, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				code, body := get(c.target)
				if code != c.status {
					t.Fatalf("%s: %d, want %d\n%s", c.target, code, c.status, body)
				}
				if got := len(ids(body)); c.rows > 0 && got != c.rows {
					t.Errorf("%d rows, want %d", got, c.rows)
				}
				for _, s := range c.contains {
					if !strings.Contains(body, s) {
						t.Errorf("the page lacks %q", s)
					}
				}
				for _, s := range c.absent {
					if strings.Contains(body, s) {
						t.Errorf("the page has %q", s)
					}
				}
			})
		}

		t.Run("pages", func(t *testing.T) {
			for _, start := range []string{"/console/organizations/" + acme.ID + "/events", "/console/events"} {
				_, body := get(start)
				first := ids(body)
				seen := map[string]bool{}
				for _, id := range first {
					seen[id] = true
				}
				m := olderRe.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("%s: no older page", start)
				}
				code, body2 := get(unescape(m[1]))
				if code != 200 {
					t.Fatalf("older page: %d", code)
				}
				for _, id := range ids(body2) {
					if seen[id] {
						t.Errorf("%s: %s on both pages", start, id)
					}
				}
				if len(first)+len(ids(body2)) != map[bool]int{true: 70, false: 62}[start == "/console/events"] {
					t.Errorf("%s: %d + %d events", start, len(first), len(ids(body2)))
				}
				n := newerRe.FindStringSubmatch(body2)
				if n == nil {
					t.Fatalf("%s: no newer page", start)
				}
				_, back := get(unescape(n[1]))
				if strings.Join(ids(back), ",") != strings.Join(first, ",") {
					t.Errorf("%s: newer from the second page is not the first", start)
				}
			}
		})

		t.Run("detail", func(t *testing.T) {
			code, body := get("/console/events/" + b[3].ID)
			if code != 200 || !strings.Contains(body, beta.ID) || !strings.Contains(body, `id="record"`) || !strings.Contains(body, "user_shared") {
				t.Fatalf("%d %s", code, body)
			}
			if !strings.Contains(body, `Scope: organization <a href="/console/organizations/`+beta.ID+`/events">`) {
				t.Error("the event's page does not name its organization at the top")
			}
			for _, id := range []string{"evt_nothere", "x", strings.Repeat("a", 200), "%00"} {
				if code, _ := get("/console/events/" + id); code != 404 {
					t.Errorf("event %q: %d, want 404", id, code)
				}
			}
			_ = a
		})
	})
}

// fakeTail records the live streams the console opens.
type fakeTail struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeTail) ServeSSE(w http.ResponseWriter, r *http.Request, org string, from int64, fl livetail.Filter, _ livetail.StreamOptions) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s from=%d actions=%v actor=%s", org, from, fl.Actions, fl.ActorID))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = w.Write([]byte(": ok\n\n"))
	return nil
}

func TestLive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tail := e.c.cfg.Tail.(*fakeTail)
		cfg := e.c.cfg
		cfg.Tail = nil
		without, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := e.c
		cookie, _ := e.signIn()
		acme := e.createOrg("Acme")
		e.appendLogEvents(acme.ID, 3, func(int) string { return "user.signed_in" }, func(int) string { return "user_1" })
		live := "/console/organizations/" + acme.ID + "/live"
		// Without a tail there is no live view, and no link to one.
		e.c = without
		if code, _, _ := e.do(req{method: "GET", target: live, cookie: cookie}); code != 404 {
			t.Errorf("live without a tail: %d, want 404", code)
		}
		if _, body, _ := e.do(req{method: "GET", target: "/console/organizations/" + acme.ID + "/events", cookie: cookie}); strings.Contains(body, "live-link") {
			t.Error("a link to the live view without one")
		}
		e.c = c
		cases := []struct {
			target   string
			status   int
			contains []string
		}{
			{live, 200, []string{`data-stream="/console/organizations/` + acme.ID + `/live/stream"`, `href="` + live + `" id="refresh"`, "user.signed_in", `<script src="/console/assets/console.`}},
			{live + "?action=user.signed_in&from=2020-01-01&after=x", 200, []string{`data-stream="/console/organizations/` + acme.ID + `/live/stream?action=user.signed_in"`}},
			{live + "?actor_id=%01", 400, []string{"contains control characters"}},
			{"/console/organizations/org_nothere/live", 404, nil},
			{"/console/organizations/" + acme.ID + "/events", 200, []string{`href="` + live + `" id="live-link"`}},
		}
		for _, tc := range cases {
			code, body, _ := e.do(req{method: "GET", target: tc.target, cookie: cookie})
			if code != tc.status {
				t.Errorf("%s: %d, want %d: %s", tc.target, code, tc.status, body)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("%s lacks %q", tc.target, s)
				}
			}
		}
		hr := func(target, lastID string) int {
			r, _ := http.NewRequest("GET", base+target, nil)
			if lastID != "" {
				r.Header.Set("Last-Event-ID", lastID)
			}
			r.Header.Set("Cookie", cookieName+"="+cookie)
			w := httptest.NewRecorder()
			e.c.ServeHTTP(w, r)
			return w.Code
		}
		if code := hr(live+"/stream?actor_id=user_1", ""); code != 200 {
			t.Errorf("stream: %d", code)
		}
		if code := hr(live+"/stream", "41"); code != 200 {
			t.Errorf("resumed stream: %d", code)
		}
		if code := hr(live+"/stream?action=%00", ""); code != 400 {
			t.Errorf("stream with a bad filter: %d", code)
		}
		if code := hr("/console/organizations/org_nothere/live/stream", ""); code != 404 {
			t.Errorf("stream of an unknown organization: %d", code)
		}
		want := []string{acme.ID + " from=-1 actions=[] actor=user_1", acme.ID + " from=42 actions=[] actor="}
		if got := tail.calls; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("streams opened %q, want %q", got, want)
		}
	})
}

// TestEventsIsolation: the events pages need a console session — no
// cookie, the portal's cookie, a cookie signed with another key or for
// another purpose, or an API key gets 401 and no event.
func TestEventsIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tail := e.c.cfg.Tail.(*fakeTail)
		good, _ := e.signIn()
		acme := e.createOrg("Acme")
		ev := e.appendLogEvents(acme.ID, 1, func(int) string { return "secret.action" }, func(int) string { return "user_1" })
		s, err := e.c.decodeSession(good, e.c.cfg.Now())
		if err != nil {
			t.Fatal(err)
		}
		portalKey := webauth.NewSigner([]byte(strings.Repeat("p", 32)))
		targets := []string{"/console/events", "/console/events/" + ev[0].ID, "/console/organizations/" + acme.ID + "/events",
			"/console/organizations/" + acme.ID + "/live", "/console/organizations/" + acme.ID + "/live/stream"}
		for _, target := range targets {
			creds := []struct {
				name   string
				header map[string]string
			}{
				{"nothing", nil},
				{"the portal's cookie", map[string]string{"Cookie": "trail_portal=" + good}},
				{"a cookie of another key", map[string]string{"Cookie": cookieName + "=" + portalKey.Seal(s)}},
				{"an API key", map[string]string{"Authorization": "Bearer sk_test_" + strings.Repeat("a", 40)}},
				{"the cookie as a bearer token", map[string]string{"Authorization": "Bearer " + good}},
			}
			for _, cr := range creds {
				r, _ := http.NewRequest("GET", base+target, nil)
				for k, v := range cr.header {
					r.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				e.c.ServeHTTP(w, r)
				if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "secret.action") {
					t.Errorf("%s with %s: %d, want 401 without the event", target, cr.name, w.Code)
				}
			}
		}
		if len(tail.calls) != 0 {
			t.Errorf("streams opened without a session: %q", tail.calls)
		}
		// Signed out, the same cookie opens nothing either.
		_, body, _ := e.do(req{method: "GET", target: "/console/events", cookie: good})
		csrf := csrfField.FindStringSubmatch(body)[1]
		if code, _, _ := e.do(req{method: "POST", target: "/console/logout", form: url.Values{"csrf": {csrf}}, cookie: good}); code != 200 {
			t.Fatalf("logout: %d", code)
		}
		for _, target := range targets {
			if code, _, _ := e.do(req{method: "GET", target: target, cookie: good}); code != http.StatusUnauthorized {
				t.Errorf("%s after sign-out: %d, want 401", target, code)
			}
		}
	})
}
