package portal_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// TestPortalLive: the live view in Chromium shows events as they are
// acknowledged, newest first, only the organization's and only those its
// filter matches, with hostile content as text; without the script the
// page is a list with a link to refresh it.
func TestPortalLive(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	org := createOrg(t, srv, "Live Corp")
	other := createOrg(t, srv, "Other Corp")
	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, "open the link", chromedp.Navigate(generateLink(t, srv, org, nil)), browsertest.Visible("#launch"),
		chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))
	browsertest.Run(t, ctx, "open the live view", chromedp.Click(chromedp.CSS(`nav a[href="/portal/live"]`)), browsertest.Visible("#live-events"))
	waitText(t, ctx, "#live-status", "Live:")

	send := func(org, action, actor string) {
		sendEvent(t, srv, org, map[string]any{
			"action":      action,
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
			"actor":       map[string]any{"id": "user_live", "type": "user", "name": actor},
			"targets":     []any{map[string]any{"id": "doc_1", "type": "document", "name": "Plan"}},
			"context":     map[string]any{"location": "203.0.113.9"},
		})
	}
	send(other, "other.org_event", "Nobody")
	send(org, "live.first", "Ada")
	send(org, "live.second", hostileActor)
	waitText(t, ctx, "#live-events tbody", "live.second")
	rows := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#live-events tbody tr")].map(r => r.cells[1].textContent)`)
	if len(rows) < 2 || rows[0] != "live.second" || rows[1] != "live.first" {
		t.Fatalf("live rows (newest first) %q", rows)
	}
	if body := browsertest.Text(t, ctx, "#live-events tbody"); strings.Contains(body, "other.org_event") || !strings.Contains(body, hostileActor) {
		t.Fatalf("live table: %q", body)
	}
	if pwned := browsertest.Eval[bool](t, ctx, `window.__pwned !== undefined || document.querySelector("#live-events img") !== null`); pwned {
		t.Fatal("hostile content ran or became markup in the live view")
	}
	if st := browsertest.Text(t, ctx, "#live-status"); !strings.Contains(st, "2 new events") {
		t.Errorf("status %q", st)
	}

	// A filtered live view shows only what it matches.
	browsertest.Run(t, ctx, "filter", chromedp.Navigate(srv.URL+"/portal/live?action=live.wanted"), browsertest.Visible("#live-events"))
	waitText(t, ctx, "#live-status", "Live:")
	send(org, "live.unwanted", "Bob")
	send(org, "live.wanted", "Cy")
	waitText(t, ctx, "#live-events tbody", "live.wanted")
	if body := browsertest.Text(t, ctx, "#live-events tbody"); strings.Contains(body, "live.unwanted") {
		t.Fatalf("the filtered live view shows an event it does not match: %q", body)
	}

	// The page without its script: the newest events and a refresh link.
	html := browsertest.Get(t, ctx, "fetch the page", chromedp.Evaluate[string](`fetch("/portal/live").then(r => r.text())`, chromedp.EvalAwaitPromise))
	for _, want := range []string{`<a href="/portal/live">Refresh</a> to see new ones`, "live.wanted", "live.first"} {
		if !strings.Contains(html, want) {
			t.Errorf("the live page as served lacks %q", want)
		}
	}
	browsertest.Screenshots(t, ctx, "portal", "portal-live", true)
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
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
