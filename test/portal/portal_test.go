// Package portal_test drives the Admin Portal of a real `trail serve` in a
// real headless Chromium (Debian's chromium, through chromedp): links and
// sessions, the events page and its filters, an event with its inclusion
// proof, the integrity page, rejected links, cross-organization attempts and
// hostile event contents.
//
// With TRAIL_UPDATE_SCREENSHOTS=1 it also writes a screenshot of each page,
// at laptop and phone widths, to docs/screenshots/.
package portal_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	_ "modernc.org/sqlite"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// apiClient is a client of srv with the admin key.
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

// sendEvent stores ev, given as the JSON object an application sends.
func sendEvent(t *testing.T, srv *trailtest.Server, org string, ev map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(ev)
	var e client.Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // every field the test gives is sent
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("the test's event %s: %v", raw, err)
	}
	if err := apiClient(t, srv).CreateEvent(trailtest.Context(t), org, e); err != nil {
		t.Fatalf("storing %v: %v", ev, err)
	}
}

// waitSearchable waits until org's log holds n events and all are searchable
// and covered by a checkpoint (indexing and integration follow acceptance
// within about a second).
func waitSearchable(t *testing.T, srv *trailtest.Server, org string, n int) {
	t.Helper()
	c := apiClient(t, srv)
	ctx := trailtest.Context(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var found int
		if page, err := c.SearchEvents(ctx, client.EventQuery{OrganizationID: org, ListOptions: client.ListOptions{Limit: 100}}); err == nil {
			found = len(page.Data)
		}
		var size int64
		if cp, err := c.GetCheckpoint(ctx, org, 0, ""); err == nil {
			size = cp.Size
		}
		if found >= min(n, 100) && size >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("org %s: %d searchable events, checkpoint size %d after 30s; want %d", org, found, size, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// search returns the first page of org's events of action.
func search(t *testing.T, srv *trailtest.Server, org, action string) []client.Record {
	t.Helper()
	page, err := apiClient(t, srv).SearchEvents(trailtest.Context(t), client.EventQuery{OrganizationID: org, Actions: []string{action}})
	if err != nil {
		t.Fatalf("searching %s of %s: %v", action, org, err)
	}
	return page.Data
}

// onlyEvent returns org's one event of action.
func onlyEvent(t *testing.T, srv *trailtest.Server, org, action string) client.Record {
	t.Helper()
	page := search(t, srv, org, action)
	if len(page) != 1 {
		t.Fatalf("%d events %s of %s, want one", len(page), action, org)
	}
	return page[0]
}

func generateLink(t *testing.T, srv *trailtest.Server, org string, admins []string) string {
	t.Helper()
	link, err := apiClient(t, srv).GeneratePortalLink(trailtest.Context(t), client.PortalLinkRequest{Organization: org,
		Intent: "audit_logs", ReturnURL: "https://app.example.com/settings", AdminEmails: admins})
	if err != nil {
		t.Fatalf("POST /portal/generate_link: %v", err)
	}
	if !strings.HasPrefix(link, srv.URL+"/portal/launch?secret=ptl_") {
		t.Fatalf("link %q does not point at the server", link)
	}
	return link
}

// Hostile contents: markup, quotes, right-to-left text, long values.
const (
	hostileActor = `"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`
	hostileRTL   = "\u202eFDP.exe \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627"
)

var hostileLong = strings.Repeat("W", 500)

type fixture struct {
	srv          *trailtest.Server
	orgA, orgB   string
	eventOfB     string
	totalA       int
	hostileEvent string
}

func setup(t *testing.T) *fixture {
	srv := trailtest.Start(t, trailtest.Options{})
	f := &fixture{srv: srv}
	f.orgA = createOrg(t, srv, `Acme "Ops" <b>Corp</b>`)
	f.orgB = createOrg(t, srv, "Beta Industries")
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	actions := []string{"user.signed_in", "user.signed_out", "team.deleted", "invoice.paid", "api_key.created"}
	for i := range 60 {
		sendEvent(t, srv, f.orgA, map[string]any{
			"action":      actions[i%len(actions)],
			"occurred_at": base.Add(time.Duration(i) * 2 * time.Minute).Format(time.RFC3339),
			"actor":       map[string]any{"id": fmt.Sprintf("user_%02d", i%7), "type": "user", "name": fmt.Sprintf("User %d", i%7)},
			"targets":     []any{map[string]any{"id": fmt.Sprintf("team_%d", i%3), "type": "team", "name": "Platform"}},
			"context":     map[string]any{"location": "203.0.113.7", "user_agent": "Mozilla/5.0"},
			"metadata":    map[string]any{"plan": "enterprise", "seats": i},
		})
	}
	sendEvent(t, srv, f.orgA, map[string]any{
		"action":      "settings.updated",
		"occurred_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"actor":       map[string]any{"id": "user_evil", "type": "user", "name": hostileActor},
		"targets":     []any{map[string]any{"id": `t"1'`, "type": "<b>doc</b>", "name": hostileRTL}},
		"context":     map[string]any{"location": "198.51.100.1", "user_agent": hostileActor},
		"metadata":    map[string]any{"note": hostileRTL, "long": hostileLong, "html": "</pre><script>window.__pwned=3</script>"},
	})
	f.totalA = 61 + 2 // and Trail's own events: organization created, (later) link generated
	sendEvent(t, srv, f.orgB, map[string]any{
		"action": "beta.secret_rotated", "occurred_at": time.Now().UTC().Format(time.RFC3339),
		"actor":   map[string]any{"id": "user_b", "type": "user"},
		"targets": []any{}, "context": map[string]any{"location": "192.0.2.9"},
	})
	waitSearchable(t, srv, f.orgA, 62)
	waitSearchable(t, srv, f.orgB, 2)
	f.eventOfB = onlyEvent(t, srv, f.orgB, "beta.secret_rotated").ID
	f.hostileEvent = onlyEvent(t, srv, f.orgA, "settings.updated").ID
	return f
}

func TestPortal(t *testing.T) {
	f := setup(t)
	ctx := browsertest.New(t)
	link := generateLink(t, f.srv, f.orgA, []string{"alice@example.com"})

	t.Run("OpenLink", func(t *testing.T) {
		// A link scanner or chat preview fetches the link first, in another
		// browser: that shows the page and spends nothing.
		scanner := browsertest.New(t)
		for range 2 {
			browsertest.Run(t, scanner, "scan the link", chromedp.Navigate(link), browsertest.Visible("#launch"))
		}
		browsertest.Run(t, ctx, "open the link", chromedp.Navigate(link), browsertest.Visible("#launch"))
		if h := browsertest.Text(t, ctx, "main h1"); !strings.Contains(h, `Acme "Ops" <b>Corp</b>`) {
			t.Errorf("the launch page's heading %q does not name the organization as text", h)
		}
		browsertest.Screenshots(t, ctx, "portal", "launch", true)
		browsertest.Run(t, ctx, "press the button", chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))
		if u := browsertest.Location(t, ctx); u != f.srv.URL+"/portal/events" {
			t.Errorf("after the link the browser is at %s, want the clean %s/portal/events", u, f.srv.URL)
		}
		if h := browsertest.Text(t, ctx, ".brand"); !strings.Contains(h, `Acme "Ops" <b>Corp</b>`) {
			t.Errorf("header %q does not show the organization's name as text", h)
		}
		rows := browsertest.Eval[int](t, ctx, `document.querySelectorAll("table.events tbody tr").length`)
		if rows != 50 {
			t.Errorf("first page has %d rows, want 50", rows)
		}
		// Opening the link is itself an event, searchable within about a
		// second (search follows acceptance).
		first := ""
		for range 100 {
			if first = browsertest.Text(t, ctx, "table.events tbody tr:first-child"); strings.Contains(first, "trail.portal_session.started") {
				break
			}
			time.Sleep(100 * time.Millisecond)
			browsertest.Run(t, ctx, "reload", chromedp.Reload(), browsertest.Visible("table.events"))
		}
		if !strings.Contains(first, "trail.portal_session.started") || !strings.Contains(first, "alice@example.com") {
			t.Errorf("newest event is %q; want the portal session just started, by alice", first)
		}
		browsertest.Screenshots(t, ctx, "portal", "events", true)
	})

	t.Run("HostileContentIsInert", func(t *testing.T) {
		browsertest.Run(t, ctx, "open the hostile event", chromedp.Navigate(f.srv.URL+"/portal/events/"+f.hostileEvent),
			browsertest.Visible("section.proof"))
		pwned := browsertest.Eval[any](t, ctx, `window.__pwned`)
		if pwned != nil {
			t.Fatalf("hostile metadata ran a script: window.__pwned = %v", pwned)
		}
		body := browsertest.Text(t, ctx, "main")
		for _, want := range []string{hostileActor, hostileRTL, hostileLong, "</pre><script>window.__pwned=3</script>", `t"1'`, "<b>doc</b>"} {
			if !strings.Contains(body, want) {
				t.Errorf("page does not show %q as text", want)
			}
		}
		imgs := browsertest.Eval[int](t, ctx, `document.querySelectorAll("main img, main script, main b").length`)
		if imgs != 0 {
			t.Errorf("%d elements were injected into the page by event contents", imgs)
		}
		// The long value stays inside the viewport (wrapped, not overflowing).
		overflow := browsertest.Eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth`)
		if overflow {
			t.Errorf("the page scrolls sideways: a long value is not wrapped")
		}
		browsertest.Screenshots(t, ctx, "portal", "event-hostile", true)
	})

	t.Run("FilterAndPage", func(t *testing.T) {
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("details.filters-box summary"),
			chromedp.Click(chromedp.CSS("details.filters-box summary")), browsertest.Visible("form.filters"))
		browsertest.Run(t, ctx, "filter by actor",
			chromedp.SendKeys(chromedp.CSS("#f-actor-id"), "user_03"),
			chromedp.Click(chromedp.CSS("form.filters button[type=submit]")))
		u := waitURL(t, ctx, func(u string) bool { return strings.Contains(u, "actor_id=") })
		browsertest.Run(t, ctx, "filtered page", browsertest.Visible("table.events"))
		if !strings.Contains(u, "actor_id=user_03") || strings.Contains(u, "actor_name=") {
			t.Errorf("filtered URL %s: want actor_id=user_03 and no empty fields", u)
		}
		actors := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("table.events tbody td[data-label=Actor] .sub")].map(e => e.textContent)`)
		if len(actors) != 9 { // i%7 == 3 for i < 60
			t.Errorf("%d events of user_03, want 9: %q", len(actors), actors)
		}
		for _, a := range actors {
			if !strings.HasSuffix(a, "user_03") {
				t.Errorf("row of actor %q in a filter on user_03", a)
			}
		}
		// Several actions, from the URL (shareable): the select shows them chosen.
		browsertest.Run(t, ctx, "filter by actions",
			chromedp.Navigate(f.srv.URL+"/portal/events?action=team.deleted&action=invoice.paid"),
			browsertest.Visible("table.events"))
		selected := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#f-actions input:checked")].map(o => o.value)`)
		got := browsertest.Eval[[]string](t, ctx, `[...new Set([...document.querySelectorAll("table.events code.action")].map(e => e.textContent))].sort()`)
		if strings.Join(selected, ",") != "invoice.paid,team.deleted" || strings.Join(got, ",") != "invoice.paid,team.deleted" {
			t.Errorf("actions selected %q, shown %q; want invoice.paid and team.deleted", selected, got)
		}
		// The organization's actions are offered; another organization's are not.
		options := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#f-actions input")].map(o => o.value)`)
		if !strings.Contains(strings.Join(options, " "), "user.signed_in") || strings.Contains(strings.Join(options, " "), "beta.") {
			t.Errorf("action options %q: want org A's actions only", options)
		}
		// Paging, then back.
		browsertest.Run(t, ctx, "first page", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("a[rel=next]"))
		browsertest.Run(t, ctx, "older", chromedp.Click(chromedp.CSS("a[rel=next]")), browsertest.Visible("a[rel=prev]"))
		rows := browsertest.Eval[int](t, ctx, `document.querySelectorAll("table.events tbody tr").length`)
		if rows < 13 || rows > 16 {
			t.Errorf("second page has %d rows, want the rest of the log (13 to 16)", rows)
		}
		if u := browsertest.Location(t, ctx); !strings.Contains(u, "after=") {
			t.Errorf("second page URL %s has no cursor", u)
		}
		browsertest.Eval[any](t, ctx, `history.back()`)
		if u := waitLocation(t, ctx, f.srv.URL+"/portal/events"); u != f.srv.URL+"/portal/events" {
			t.Errorf("back button went to %s", u)
		}
		// A bad filter is a clear message, not an error page.
		browsertest.Run(t, ctx, "bad filter", chromedp.Navigate(f.srv.URL+"/portal/events?from=yesterday"), browsertest.Visible(".alert.error"))
		if msg := browsertest.Text(t, ctx, ".alert.error"); !strings.Contains(msg, `From "yesterday" is not a date`) {
			t.Errorf("bad date message: %q", msg)
		}
		browsertest.Screenshots(t, ctx, "portal", "events-bad-filter", true)
	})

	t.Run("EventDetailAndProof", func(t *testing.T) {
		browsertest.Run(t, ctx, "filter", chromedp.Navigate(f.srv.URL+"/portal/events?action=invoice.paid"), browsertest.Visible("table.events"))
		browsertest.Run(t, ctx, "open the first event", chromedp.Click(chromedp.CSS("table.events tbody tr:first-child td.time a")),
			browsertest.Visible("section.proof"))
		if cls := attr(t, ctx, "section.proof", "class"); !strings.Contains(cls, "verified") {
			t.Fatalf("proof section %q is not verified: %s", cls, browsertest.Text(t, ctx, "section.proof"))
		}
		body := browsertest.Text(t, ctx, "main")
		for _, want := range []string{"Sequence number", "invoice.paid", "Included in the signed log", `"organization_id": "` + f.orgA + `"`} {
			if !strings.Contains(body, want) {
				t.Errorf("event page lacks %q", want)
			}
		}
		browsertest.Run(t, ctx, "open proof", chromedp.Click(chromedp.CSS("section.proof summary")), browsertest.Visible("ol.path"))
		browsertest.Screenshots(t, ctx, "portal", "event", true)
		// Back to the filtered list.
		browsertest.Run(t, ctx, "back link", chromedp.Click(chromedp.CSS("a[data-back]")), browsertest.Visible("table.events"))
		if u := browsertest.Location(t, ctx); !strings.HasSuffix(u, "/portal/events?action=invoice.paid") {
			t.Errorf("← Events went to %s, want the filtered list", u)
		}
	})

	t.Run("Integrity", func(t *testing.T) {
		browsertest.Run(t, ctx, "integrity", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("nav"),
			chromedp.Click(chromedp.CSS(`a[href="/portal/integrity"]`)), browsertest.Visible("#how-h"))
		key, err := apiClient(t, f.srv).LogKey(trailtest.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		body := browsertest.Text(t, ctx, "main")
		for _, want := range []string{key, "trail verify " + f.orgA + ".bundle --key trail.vkey",
			"trail log pull --server " + f.srv.URL + " --org " + f.orgA, "Events covered"} {
			if !strings.Contains(body, want) {
				t.Errorf("integrity page lacks %q", want)
			}
		}
		browsertest.Screenshots(t, ctx, "portal", "integrity", true)
	})

	t.Run("CrossOrganization", func(t *testing.T) {
		for _, path := range []string{"/portal/events/" + f.eventOfB, "/portal/events/" + f.eventOfB + "?organization_id=" + f.orgB} {
			browsertest.Run(t, ctx, "B's event", chromedp.Navigate(f.srv.URL+path), browsertest.Visible("main h1"))
			if h := browsertest.Text(t, ctx, "main h1"); h != "Event not found" {
				t.Errorf("%s with A's session: %q, want Event not found", path, h)
			}
		}
		browsertest.Run(t, ctx, "search B's action", chromedp.Navigate(f.srv.URL+"/portal/events?action=beta.secret_rotated&organization_id="+f.orgB),
			browsertest.Visible("table.events"))
		if body := browsertest.Text(t, ctx, "table.events"); !strings.Contains(body, "No events match") {
			t.Errorf("A's session searching B's action found: %q", body)
		}
		browsertest.Run(t, ctx, "integrity", chromedp.Navigate(f.srv.URL+"/portal/integrity"), browsertest.Visible("#how-h"))
		if body := browsertest.Text(t, ctx, "main"); strings.Contains(body, f.orgB) {
			t.Errorf("A's integrity page mentions org B")
		}
	})

	t.Run("OpenLinkWithoutJavaScript", func(t *testing.T) {
		// The launch page is a plain form: with scripts off it still opens
		// the portal.
		noJS := browsertest.New(t)
		cctx, cancel := context.WithTimeout(noJS, 10*time.Second)
		defer cancel()
		if _, err := chromedp.Call(cctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("disabling scripts: %v", err)
		}
		browsertest.Run(t, noJS, "open a link", chromedp.Navigate(generateLink(t, f.srv, f.orgB, nil)), browsertest.Visible("#launch"),
			chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))
	})

	t.Run("RejectedLinks", func(t *testing.T) {
		other := browsertest.New(t) // no session
		// A link past its 5 minutes: the test moves its expiry into the
		// past in the server's database rather than waiting.
		expired := generateLink(t, f.srv, f.orgA, nil)
		expire(t, f.srv, expired)
		for _, tt := range []struct{ name, url, heading string }{
			{"reused", link, "This link was already used"},
			{"expired", expired, "This link has expired"},
			{"forged", f.srv.URL + "/portal/launch?secret=ptl_" + strings.Repeat("A", 43), "This link is not valid"},
			{"malformed", f.srv.URL + "/portal/launch?secret=%3Cscript%3E", "This link is not valid"},
			{"no session", f.srv.URL + "/portal/events", "Sign-in needed"},
		} {
			browsertest.Run(t, other, tt.name, chromedp.Navigate(tt.url), browsertest.Visible("main h1"))
			if h := browsertest.Text(t, other, "main h1"); h != tt.heading {
				t.Errorf("%s link: heading %q, want %q", tt.name, h, tt.heading)
			}
			if tt.name == "reused" || tt.name == "expired" {
				browsertest.Screenshots(t, other, "portal", "link-"+tt.name, true)
			}
		}
	})

	t.Run("SignOut", func(t *testing.T) {
		browsertest.Run(t, ctx, "sign out", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("nav"),
			chromedp.Click(chromedp.CSS(`form[action="/portal/logout"] button`)), browsertest.Visible("section.message"))
		if h := browsertest.Text(t, ctx, "main h1"); h != "You have signed out" {
			t.Errorf("after sign out: %q", h)
		}
		if href := attr(t, ctx, "main a.button", "href"); href != "https://app.example.com/settings" {
			t.Errorf("return link %q", href)
		}
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("main h1"))
		if h := browsertest.Text(t, ctx, "main h1"); h != "Sign-in needed" {
			t.Errorf("events after sign out: %q", h)
		}
	})

	// The portal's actions are in org A's log, attributed to alice.
	page := search(t, f.srv, f.orgA, "trail.portal_session.started")
	if len(page) != 1 || page[0].Actor.ID != "alice@example.com" || page[0].Actor.Type != "portal_admin" {
		t.Errorf("session start events: %+v; want one by alice@example.com", page)
	}

	t.Run("Revoked", func(t *testing.T) {
		// An open session and a link not opened yet, then the API revokes
		// org A's portal access: the page refuses the session on reload,
		// the link is refused, and org B's session goes on.
		b := browsertest.New(t)
		browsertest.Run(t, b, "open org A", chromedp.Navigate(generateLink(t, f.srv, f.orgA, nil)), browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("nav"))
		other := browsertest.New(t)
		browsertest.Run(t, other, "open org B", chromedp.Navigate(generateLink(t, f.srv, f.orgB, nil)), browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("nav"))
		pending := generateLink(t, f.srv, f.orgA, nil)
		if ended, err := apiClient(t, f.srv).RevokePortalSessions(trailtest.Context(t), f.orgA); err != nil || ended < 2 {
			t.Fatalf("revoking org A's portal sessions: %v, %d ended; want at least 2 (this session, the pending link)", err, ended)
		}
		browsertest.Run(t, b, "reload", chromedp.Reload(), browsertest.Visible("main h1"))
		if h := browsertest.Text(t, b, "main h1"); h != "Your session has ended" {
			t.Errorf("org A's session after the revocation: %q", h)
		}
		browsertest.Run(t, b, "pending link", chromedp.Navigate(pending), browsertest.Visible("main h1"))
		if h := browsertest.Text(t, b, "main h1"); h != "This link was revoked" {
			t.Errorf("a link generated before the revocation: %q", h)
		}
		browsertest.Run(t, other, "reload org B", chromedp.Reload(), browsertest.Visible("nav"))
		if h := browsertest.Text(t, other, "main h1"); h != "Events" {
			t.Errorf("org B's session after org A's revocation: %q", h)
		}
	})
}

// waitLocation waits (up to 10 s) until the browser is at want, and returns
// where it is.
func waitLocation(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	return waitURL(t, ctx, func(u string) bool { return u == want })
}

// waitURL waits (up to 10 s) until the browser's URL satisfies ok, and
// returns it.
func waitURL(t *testing.T, ctx context.Context, ok func(string) bool) string {
	t.Helper()
	u := ""
	for range 100 {
		// Reading the URL while the page navigates may fail: try again.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := chromedp.Run(actx, chromedp.Location())
		cancel()
		if err == nil {
			if u = got; ok(u) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return u
}

// expire moves the expiry of the link's stored row a minute into the past,
// in the running server's SQLite database (the row is keyed by the SHA-256
// of the link's secret).
func expire(t *testing.T, srv *trailtest.Server, link string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte(u.Query().Get("secret")))
	db, err := sql.Open("sqlite", "file:"+filepath.Join(srv.Data, "trail.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE portal_links SET expires_at = ? WHERE token_hash = ?`, time.Now().Add(-time.Minute).UnixMilli(), hash[:])
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("expiring the link changed %d rows, want 1", n)
	}
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	return browsertest.Get(t, ctx, "attribute "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}
