package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// hostileName is an actor name that would run or become markup if a page
// or the live view's script inserted it as HTML.
const hostileName = `"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`

func apiClient(t *testing.T, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createOrg(t *testing.T, srv *trailtest.Server, name string) string {
	t.Helper()
	o, err := apiClient(t, srv).CreateOrganization(trailtest.Context(t), name, "")
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}

// sendEvent stores an event of org through the API.
func sendEvent(t *testing.T, srv *trailtest.Server, org, action, actorID, actorName string) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{
		"action":      action,
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
		"actor":       map[string]any{"id": actorID, "type": "user", "name": actorName},
		"targets":     []any{map[string]any{"id": "doc_1", "type": "document", "name": "Plan"}},
		"context":     map[string]any{"location": "203.0.113.9"},
	})
	var e client.Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	if err := apiClient(t, srv).CreateEvent(trailtest.Context(t), org, e); err != nil {
		t.Fatalf("storing %s: %v", action, err)
	}
}

// waitShown waits, without reloading, until the element's text contains want.
func waitShown(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := browsertest.Eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q; it shows %q", sel, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPage reloads target until the element's text contains want (events
// become searchable within a second of their acknowledgement).
func waitPage(t *testing.T, ctx context.Context, target, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		// A navigation the page itself started just before (a form
		// submitted by the test's last click) can abort this one
		// (net::ERR_ABORTED): that is a reason to try again, not a
		// failure of the page.
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(actx, chromedp.Navigate(target), browsertest.Visible("main"))
		cancel()
		if err == nil {
			if got := browsertest.Eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)); strings.Contains(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never showed %q (last navigation: %v)", target, sel, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsoleEvents: one organization's events with the portal's filters,
// the search across organizations with its scope on the page, an event's
// page, paging, the live view with and without its script, and the
// console's cookie refused by the API and a portal cookie by these pages.
func TestConsoleEvents(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	acme, beta := createOrg(t, srv, "Acme Corp"), createOrg(t, srv, "Beta Labs")
	for i := range 55 {
		action := "document.read"
		if i%5 == 0 {
			action = "user.signed_in"
		}
		sendEvent(t, srv, acme, action, fmt.Sprintf("user_%d", i%3), "Ada Lovelace")
	}
	sendEvent(t, srv, beta, "user.signed_in", "user_shared", "Grace Hopper")
	sendEvent(t, srv, acme, "user.signed_in", "user_shared", "Grace Hopper")

	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, "sign in", chromedp.Navigate(consoleLink(t, srv, "ops@example.com")), browsertest.Visible("#launch"),
		chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("#create-org"))

	// One organization's events, from its row in the list.
	browsertest.Run(t, ctx, "the organization's events", chromedp.Navigate(srv.URL+"/console/organizations?q=Acme"), browsertest.Visible("#orgs"),
		chromedp.Click(chromedp.CSS(`a[href="/console/organizations/`+acme+`/events"]`)), browsertest.Visible("#events"))
	waitPage(t, ctx, srv.URL+"/console/organizations/"+acme+"/events", "#events tbody", "user_shared")
	if got := browsertest.Text(t, ctx, "#scope"); !strings.Contains(got, "organization Acme Corp") || !strings.Contains(got, acme) {
		t.Errorf("scope %q", got)
	}
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#events tbody tr").length`); n != 50 {
		t.Errorf("%d rows on the first page, want 50", n)
	}
	browsertest.Screenshots(t, ctx, "console", "events", true)
	browsertest.Run(t, ctx, "older", chromedp.Click(chromedp.CSS("#older")), browsertest.Visible("#newer"))
	// 56 sent, and the organization's creation, recorded in its log.
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#events tbody tr").length`); n != 7 {
		t.Errorf("%d rows on the second page, want 7", n)
	}
	// The portal's filters: an action chosen in the list.
	browsertest.Run(t, ctx, "filter by action", chromedp.Navigate(srv.URL+"/console/organizations/"+acme+"/events"), browsertest.Visible("#f-action"),
		chromedp.SetValue(chromedp.CSS("#f-action"), "user.signed_in"), chromedp.Click(chromedp.CSS("#apply")))
	waitURL(t, ctx, srv.URL+"/console/organizations/"+acme+"/events?from=&to=&q=&actor_id=&actor_name=&target_type=&target_id=&action=user.signed_in")
	browsertest.Run(t, ctx, "filtered", browsertest.Visible("#clear"))
	if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("#events tbody tr").length`); n != 12 {
		t.Errorf("%d user.signed_in rows, want 12", n)
	}
	// A mistake in a filter is named on the page.
	browsertest.Run(t, ctx, "a bad date", chromedp.Navigate(srv.URL+"/console/organizations/"+acme+"/events?from=soon"), browsertest.Visible("#problems"))
	if got := browsertest.Text(t, ctx, "#problems"); !strings.Contains(got, `From "soon" is not a date`) {
		t.Errorf("problems %q", got)
	}

	// Across organizations: the scope says so, each row names its
	// organization.
	browsertest.Run(t, ctx, "all organizations", chromedp.Navigate(srv.URL+"/console/events"), browsertest.Visible("#f-actor-id"),
		chromedp.SendKeys(chromedp.CSS("#f-actor-id"), "user_shared"), chromedp.Click(chromedp.CSS("#apply")), browsertest.Visible("#events"))
	waitPage(t, ctx, srv.URL+"/console/events?actor_id=user_shared", "#events tbody", "Beta Labs")
	if got := browsertest.Text(t, ctx, "#scope"); !strings.Contains(got, "all organizations") {
		t.Errorf("scope %q", got)
	}
	body := browsertest.Text(t, ctx, "#events tbody")
	if !strings.Contains(body, "Acme Corp") || !strings.Contains(body, "Beta Labs") || strings.Count(body, "user_shared") != 2 {
		t.Errorf("across organizations: %q", body)
	}
	browsertest.Screenshots(t, ctx, "console", "events-all", true)

	// An event's page names its organization.
	browsertest.Run(t, ctx, "an event", chromedp.Click(chromedp.CSS("#events tbody tr td.time a")), browsertest.Visible("#record"))
	if got := browsertest.Text(t, ctx, "#scope"); !strings.Contains(got, "organization") {
		t.Errorf("event scope %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "event", true)

	// The live view: new events appear at the top, only the organization's;
	// hostile content stays text.
	browsertest.Run(t, ctx, "live", chromedp.Navigate(srv.URL+"/console/organizations/"+acme+"/events"), browsertest.Visible("#live-link"),
		chromedp.Click(chromedp.CSS("#live-link")), browsertest.Visible("#live-status"))
	waitShown(t, ctx, "#live-status", "Live:")
	sendEvent(t, srv, beta, "beta.elsewhere", "user_b", "Nobody")
	sendEvent(t, srv, acme, "live.first", "user_l", "Ada")
	sendEvent(t, srv, acme, "live.second", "user_l", hostileName)
	waitShown(t, ctx, "#events tbody", "live.second")
	rows := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr")].map(r => r.cells[1].textContent)`)
	if len(rows) < 2 || rows[0] != "live.second" || rows[1] != "live.first" {
		t.Errorf("live rows, newest first: %q", rows[:min(3, len(rows))])
	}
	if body := browsertest.Text(t, ctx, "#events tbody"); strings.Contains(body, "beta.elsewhere") || !strings.Contains(body, hostileName) {
		t.Errorf("live table %q", body)
	}
	if pwned := browsertest.Eval[bool](t, ctx, `window.__pwned !== undefined || document.querySelector("#events img") !== null`); pwned {
		t.Fatal("hostile content ran or became markup in the live view")
	}
	browsertest.Screenshots(t, ctx, "console", "live", false)
	// Without the script the page is a list to refresh.
	html := browsertest.Get(t, ctx, "fetch the live page", chromedp.Evaluate[string](`fetch("/console/organizations/`+acme+`/live").then(r => r.text())`, chromedp.EvalAwaitPromise))
	for _, want := range []string{`id="refresh">Refresh</a> to see new ones`, "live.second", "live.first"} {
		if !strings.Contains(html, want) {
			t.Errorf("the live page as served lacks %q", want)
		}
	}
	if regexp.MustCompile(`<script>|<script [^s]|\son[a-z]+="`).MatchString(html) {
		t.Error("the live page has inline script")
	}

	// Isolation: the console's cookie is not an API key, and a portal
	// session does not open these pages.
	consoleCookie := browserCookie(t, ctx, srv.URL+"/console/", "trail_console")
	code, _ := call(t, "GET", srv.URL+"/v1/events?organization_id="+acme, http.Header{"Authorization": {"Bearer " + consoleCookie}}, "")
	if code != http.StatusUnauthorized {
		t.Errorf("the console cookie as an API key: %d, want 401", code)
	}
	link, err := apiClient(t, srv).GeneratePortalLink(trailtest.Context(t), client.PortalLinkRequest{Organization: acme, Intent: "audit_logs"})
	if err != nil {
		t.Fatal(err)
	}
	portalCookie := portalSession(t, srv, link)
	for _, target := range []string{"/console/events", "/console/organizations/" + acme + "/events", "/console/organizations/" + acme + "/live",
		"/console/organizations/" + acme + "/live/stream"} {
		for _, h := range []http.Header{
			{"Cookie": {"trail_portal=" + portalCookie}},
			{"Cookie": {"trail_console=" + portalCookie}},
			{"Authorization": {"Bearer " + srv.Key}},
		} {
			if code, body := call(t, "GET", srv.URL+target, h, ""); code != http.StatusUnauthorized {
				t.Errorf("%s with %v: %d, want 401: %.200s", target, h, code, body)
			}
		}
	}
}
