package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// admin calls the API with the server's bootstrap admin key and decodes
// its answer into out (when not nil); the status must be want.
func admin(t *testing.T, srv *trailtest.Server, method, path, body string, want int, out any) {
	t.Helper()
	code, got := call(t, method, srv.URL+path, http.Header{"Authorization": {"Bearer " + srv.Key}, "Content-Type": {"application/json"}}, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, got)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(got), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, got)
		}
	}
}

// waitText reloads the page until sel's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		browsertest.Run(t, ctx, "reload", chromedp.Reload(), browsertest.Visible(sel))
		if got := browsertest.Text(t, ctx, sel); strings.Contains(got, want) {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s says %q, want %q", sel, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsoleOperations drives the operations pages in Chromium:
// retention and the event-rate chart on the organizations list, the log
// streams with test, pause and resume, a schema previewed against the
// organization's events and saved, the difference of two versions, the
// integrity page and the system page; and finds the actions in the
// organization's log.
func TestConsoleOperations(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{Args: []string{"--streams-allow-private"}})
	ctx := browsertest.New(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer hook.Close()

	var org struct{ ID string }
	admin(t, srv, "POST", "/organizations", `{"name":"Globex"}`, 201, &org)
	for i := range 6 {
		meta := ""
		if i < 4 {
			meta = `,"metadata":{"plan":"pro"}`
		}
		admin(t, srv, "POST", "/audit_logs/events", fmt.Sprintf(`{"organization_id":%q,"event":{"action":"invoice.paid","occurred_at":%q,"actor":{"id":"u%d","type":"user"},"targets":[{"id":"inv_%d","type":"invoice"}],"context":{"location":"203.0.113.9"}%s}}`,
			org.ID, time.Now().UTC().Format(time.RFC3339), i, i, meta), 201, nil)
	}
	var ls struct{ ID string }
	admin(t, srv, "POST", "/v1/organizations/"+org.ID+"/log_streams",
		`{"type":"webhook","name":"Globex SIEM","start":"beginning","config":{"url":"`+hook.URL+`","secret":"0123456789abcdef0123"}}`, 201, &ls)

	browsertest.Run(t, ctx, "sign in", chromedp.Navigate(consoleLink(t, srv, "ops@example.com")), browsertest.Visible("#launch"),
		chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("#orgs"))

	// The organizations list: retention, stream health, the chart.
	days := "#days-" + org.ID
	browsertest.Run(t, ctx, "set the retention", chromedp.SetValue(chromedp.CSS(days), "90"),
		chromedp.Click(chromedp.CSS(`form[action$="/retention"] button`)), browsertest.Visible("#done"))
	if got := browsertest.Value(t, ctx, days); got != "90" {
		t.Errorf("retention after setting 90: %q", got)
	}
	waitText(t, ctx, "#orgs tbody", "healthy")
	loaded := browsertest.Get(t, ctx, "the chart", chromedp.Evaluate[bool](`(() => { const i = document.querySelector("img.spark"); return i.complete && i.naturalWidth > 0 })()`))
	if !loaded {
		t.Error("the event-rate chart did not load")
	}
	browsertest.Screenshots(t, ctx, "console", "organizations-ops", true)

	// Log streams: test, pause, resume.
	row := "#row-" + ls.ID
	browsertest.Run(t, ctx, "the streams", chromedp.Navigate(srv.URL+"/console/streams"), browsertest.Visible(row))
	if got := browsertest.Text(t, ctx, row); !strings.Contains(got, "Globex SIEM") || !strings.Contains(got, "active") {
		t.Errorf("the stream's row: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "streams", true)
	browsertest.Run(t, ctx, "test the stream", chromedp.Click(chromedp.CSS(row+` form[action$="/test"] button`)), browsertest.Visible("#result"))
	if got := browsertest.Text(t, ctx, "#result"); !strings.Contains(got, "Accepted") {
		t.Errorf("test result: %q", got)
	}
	browsertest.Run(t, ctx, "pause", chromedp.Navigate(srv.URL+"/console/streams"), browsertest.Visible(row),
		chromedp.Click(chromedp.CSS(row+` form[action$="/pause"] button`)))
	waitURL(t, ctx, srv.URL+"/console/streams?done=paused&org="+org.ID)
	browsertest.Run(t, ctx, "paused", browsertest.Visible(row))
	if got := browsertest.Text(t, ctx, row); !strings.Contains(got, "inactive") {
		t.Errorf("after pause: %q", got)
	}
	browsertest.Run(t, ctx, "resume", chromedp.Click(chromedp.CSS(row+` form[action$="/resume"] button`)))
	waitURL(t, ctx, srv.URL+"/console/streams?done=resumed&org="+org.ID)
	browsertest.Run(t, ctx, "resumed", browsertest.Visible(row))
	if got := browsertest.Text(t, ctx, row); !strings.Contains(got, "active") || strings.Contains(got, "inactive") {
		t.Errorf("after resume: %q", got)
	}

	// Schemas: a first version, then a second previewed and saved.
	browsertest.Run(t, ctx, "the organization's actions", chromedp.Navigate(srv.URL+"/console/schemas"), browsertest.Visible("#schemas-org"),
		chromedp.SendKeys(chromedp.CSS("#schemas-org"), org.ID), chromedp.Submit(chromedp.CSS("#schemas-org")), browsertest.Visible("#org-actions"))
	if got := browsertest.Text(t, ctx, "#org-actions"); !strings.Contains(got, "invoice.paid") || !strings.Contains(got, "none") {
		t.Errorf("the organization's actions: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "schemas-org", true)
	browsertest.Run(t, ctx, "a new action's schema", chromedp.Click(chromedp.CSS(`#org-actions a[href^="/console/schemas/invoice.paid"]`)), browsertest.Visible("#body"))
	if got := browsertest.Value(t, ctx, "#org"); got != org.ID {
		t.Errorf("the preview's organization: %q, want %s", got, org.ID)
	}
	browsertest.Run(t, ctx, "preview version 1", chromedp.SetValue(chromedp.CSS("#body"), `{"targets":[{"type":"invoice"}]}`),
		chromedp.Click(chromedp.CSS("#preview-button")), browsertest.Visible("#preview-summary"))
	if got := browsertest.Text(t, ctx, "#preview-summary"); !strings.Contains(got, "6 would validate") {
		t.Errorf("preview of version 1: %q", got)
	}
	browsertest.Run(t, ctx, "save version 1", chromedp.Click(chromedp.CSS("#save")), browsertest.Visible("#done"))
	browsertest.Run(t, ctx, "preview version 2",
		chromedp.SetValue(chromedp.CSS("#body"), `{"targets":[{"type":"invoice"}],"metadata":{"type":"object","properties":{"plan":{"type":"string"}}}}`),
		chromedp.SetValue(chromedp.CSS("#org"), org.ID), chromedp.Click(chromedp.CSS("#preview-button")), browsertest.Visible("#preview-summary"))
	if got := browsertest.Text(t, ctx, "#preview-summary"); !strings.Contains(got, "4 would validate against this schema and 2 would not") {
		t.Errorf("preview of version 2: %q", got)
	}
	if got := browsertest.Text(t, ctx, "#invalid"); !strings.Contains(got, "metadata.plan") {
		t.Errorf("the failing events: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "schema-preview", false)
	browsertest.Run(t, ctx, "save version 2", chromedp.Click(chromedp.CSS("#save")), browsertest.Visible("#done"))
	if got := browsertest.Text(t, ctx, "#changes"); !strings.Contains(got, "metadata") || !strings.Contains(got, "plan (string)") {
		t.Errorf("the difference of versions 1 and 2: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "schema", true)

	// Integrity: the newest checkpoint covers the events.
	browsertest.Run(t, ctx, "integrity", chromedp.Navigate(srv.URL+"/console/integrity"), browsertest.Visible("#log-"+org.ID))
	waitText(t, ctx, "#log-"+org.ID, "6")
	if got := browsertest.Text(t, ctx, "#log-"+org.ID); !strings.Contains(got, "key id") {
		t.Errorf("the checkpoint's row: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "integrity", true)

	// System.
	browsertest.Run(t, ctx, "system", chromedp.Navigate(srv.URL+"/console/system"), browsertest.Visible("#rate"), browsertest.Visible("#integration-lag"))
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "No lease has been taken") || !strings.Contains(got, "Reserve") {
		t.Errorf("system page: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "system", true)

	// The actions are in the organization's log, by the operator.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := call(t, "GET", srv.URL+"/v1/events?organization_id="+org.ID+"&actor_id=ops%40example.com", http.Header{"Authorization": {"Bearer " + srv.Key}}, "")
		if strings.Contains(body, "trail.retention.updated") && strings.Contains(body, "trail.log_stream.tested") &&
			strings.Contains(body, "trail.log_stream.paused") && strings.Contains(body, "trail.log_stream.resumed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console's actions are not in %s's log: %.500s", org.ID, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsoleSystemOnPostgreSQL: on PostgreSQL the system page names the
// replica that holds each lease, from the lease table.
func TestConsoleSystemOnPostgreSQL(t *testing.T) {
	dsn := pgtest.New(t)
	srv := trailtest.Start(t, trailtest.Options{Args: []string{"--database", dsn, "--log-origin", "trail.test/console"}})
	ctx := browsertest.New(t)
	out, err := exec.Command(trailtest.Binary(t), "console", "link", "--database", dsn, "--data", srv.Data, "--url", srv.URL, "--operator", "ops@example.com").CombinedOutput()
	link := regexp.MustCompile(`(?m)^(http\S+/console/launch\?secret=csl_\S+)$`).FindSubmatch(out)
	if err != nil || link == nil {
		t.Fatalf("trail console link: %v\n%s", err, out)
	}
	browsertest.Run(t, ctx, "sign in", chromedp.Navigate(string(link[1])), browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("#create-org"))
	browsertest.Run(t, ctx, "system", chromedp.Navigate(srv.URL+"/console/system"), browsertest.Visible("main"))
	waitText(t, ctx, "main", "integrator")
	got := browsertest.Text(t, ctx, "#leases")
	for _, want := range []string{"integrator", "streams", "held"} {
		if !strings.Contains(got, want) {
			t.Errorf("the leases: %q, want %q", got, want)
		}
	}
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "This replica is") {
		t.Errorf("the system page does not name this replica: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "system-postgres", true)
}
