package portal_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// TestPortalReadYourWrites opens a portal link right after sending events,
// without waiting for anything: the events page, its action list, its
// histogram and each event's page show every event already acknowledged.
// The server's search indexer is held back (TRAIL_SEARCH_INDEX_DELAY), so
// that the page cannot owe its events to it.
func TestPortalReadYourWrites(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{Env: []string{"TRAIL_SEARCH_INDEX_DELAY=1h"}})
	ctx := browsertest.New(t)
	for round := range 3 {
		org := createOrg(t, srv, fmt.Sprintf("Fresh %d", round))
		now := time.Now().UTC()
		var actors, actions []string
		for i := range 5 {
			actor, action := fmt.Sprintf("ryw_user_%d_%d", round, i), fmt.Sprintf("ryw.action_%d", i)
			sendEvent(t, srv, org, map[string]any{
				"action":      action,
				"occurred_at": now.Add(time.Duration(i-10) * time.Second).Format(time.RFC3339),
				"actor":       map[string]any{"id": actor, "type": "user", "name": "Ry " + actor},
				"targets":     []any{map[string]any{"id": "doc_1", "type": "document"}},
				"context":     map[string]any{"location": "203.0.113.7"},
			})
			actors, actions = append(actors, actor), append(actions, action)
		}
		browsertest.Run(t, ctx, "open the link", chromedp.Navigate(generateLink(t, srv, org, nil)), browsertest.Visible("#launch"),
			chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))

		table := browsertest.Text(t, ctx, "table.events tbody")
		for _, a := range actors {
			if !strings.Contains(table, a) {
				t.Errorf("round %d: the events page opened right after sending lacks %s:\n%s", round, a, table)
			}
		}
		options := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("#f-actions input")].map(o => o.value)`)
		for _, a := range append(actions, "trail.organization.created") {
			if !strings.Contains(strings.Join(options, " "), a) {
				t.Errorf("round %d: the action list %q lacks %s", round, options, a)
			}
		}
		eventURL := browsertest.Eval[string](t, ctx, `document.querySelector("table.events tbody tr td.time a").href`)
		// The histogram (an SVG image) counts the events of its range in
		// its title.
		histURL := browsertest.Eval[string](t, ctx, `document.querySelector("figure.histogram img").src`)
		browsertest.Run(t, ctx, "open the histogram", chromedp.Navigate(histURL))
		title := browsertest.Eval[string](t, ctx, `document.querySelector("title").textContent`)
		m := regexp.MustCompile(`^([\d,]+) events?,`).FindStringSubmatch(title)
		if m == nil {
			t.Fatalf("round %d: no count in the histogram's title %q", round, title)
		}
		if n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); n < len(actors)+1 {
			t.Errorf("round %d: the histogram counts %d events, want at least %d (those sent and the organization's creation)", round, n, len(actors)+1)
		}
		// The newest event's own page.
		browsertest.Run(t, ctx, "open an event", chromedp.Navigate(eventURL), browsertest.Visible("main h1"))
		if page := browsertest.Text(t, ctx, "main"); !strings.Contains(page, "ryw_user_") && !strings.Contains(page, "trail.portal") {
			t.Errorf("round %d: the event page shows %.300q", round, page)
		}
	}
}
