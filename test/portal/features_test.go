package portal_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// Phase 2 of the Admin Portal in a real browser: CSV export of a filter
// from the events page, and the log streams pages (create with field
// errors, test, pause, resume, edit, delete with confirmation) against a
// webhook receiver on loopback (trail serve --streams-allow-private), with
// cross-organization attempts and a hostile stream name.

func generateIntentLink(t *testing.T, srv *trailtest.Server, org, intent string, admins []string) string {
	t.Helper()
	link, err := apiClient(t, srv).GeneratePortalLink(trailtest.Context(t), client.PortalLinkRequest{Organization: org,
		Intent: intent, AdminEmails: admins})
	if err != nil {
		t.Fatalf("POST /portal/generate_link (%s): %v", intent, err)
	}
	return link
}

// hookReceiver is a webhook destination on loopback.
type hookReceiver struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func (h *hookReceiver) got(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.bodies {
		if strings.Contains(b, s) {
			return true
		}
	}
	return false
}

// sessionDo sends a request with the browser's portal session cookie (read
// through the DevTools protocol: it is HttpOnly) and, for a POST, the CSRF
// token in a form; it returns the status and body. The portal's CSP
// (connect-src 'none') keeps the page itself from fetching.
func sessionDo(t *testing.T, ctx context.Context, srv *trailtest.Server, method, path, csrf string) (int, string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{URLs: []string{srv.URL + "/portal/"}})
	if err != nil {
		t.Fatalf("reading the browser's cookies: %v", err)
	}
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader(url.Values{"csrf": {csrf}}.Encode())
	}
	req, _ := http.NewRequest(method, srv.URL+path, body)
	if method == "POST" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range res.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPortalStreamsAndExport(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{Args: []string{"--streams-allow-private"}})
	orgA := createOrg(t, srv, "Acme Streams")
	orgB := createOrg(t, srv, "Beta Streams")
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	for i := range 12 {
		action := []string{"user.signed_in", "invoice.paid", "team.deleted"}[i%3]
		sendEvent(t, srv, orgA, map[string]any{"action": action, "occurred_at": base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
			"actor":   map[string]any{"id": fmt.Sprintf("user_%d", i%4), "type": "user", "name": fmt.Sprintf("=cmd|' /C calc'!A%d", i)},
			"targets": []any{map[string]any{"id": "t1", "type": "team"}}, "context": map[string]any{"location": "203.0.113.7"}})
	}
	sendEvent(t, srv, orgB, map[string]any{"action": "user.signed_in", "occurred_at": base.Format(time.RFC3339),
		"actor": map[string]any{"id": "user_b", "type": "user"}, "targets": []any{}, "context": map[string]any{"location": "192.0.2.9"}})
	waitSearchable(t, srv, orgA, 12)

	rc := &hookReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)

	// Organization B's stream and export, made through the API.
	api := apiClient(t, srv)
	streamB, err := api.CreateStream(trailtest.Context(t), orgB, client.StreamRequest{Type: "webhook", Name: "B's secret stream",
		Config: json.RawMessage(`{"url":"` + rc.srv.URL + `/b","secret":"0123456789abcdef-b"}`)})
	if err != nil {
		t.Fatalf("creating B's stream: %v", err)
	}
	exportB, err := api.CreateExport(trailtest.Context(t), client.ExportRequest{OrganizationID: orgB,
		RangeStart: base.Add(-time.Hour), RangeEnd: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatalf("creating B's export: %v", err)
	}

	ctx := browsertest.New(t)
	const hostileName = "<img src=x onerror=\"window.__pwned=1\">\u202egnp.exe"

	t.Run("Streams", func(t *testing.T) {
		browsertest.Run(t, ctx, "open the log streams link", chromedp.Navigate(generateIntentLink(t, srv, orgA, "log_streams", []string{"alice@example.com"})),
			browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.streams"))
		if u := browsertest.Location(t, ctx); u != srv.URL+"/portal/streams" {
			t.Errorf("landed at %s", u)
		}
		if body := browsertest.Text(t, ctx, "table.streams"); !strings.Contains(body, "No log streams yet") {
			t.Errorf("A sees streams: %q", body)
		}
		browsertest.Run(t, ctx, "new webhook", chromedp.Click(chromedp.CSS(`a[href="/portal/streams/new?type=webhook"]`)), browsertest.Visible("form.stream-form"))
		browsertest.Screenshots(t, ctx, "portal", "stream-new", true)

		// Field-level errors beside the fields.
		browsertest.Run(t, ctx, "bad form",
			chromedp.SetValue(chromedp.CSS("#s-name"), hostileName),
			chromedp.SendKeys(chromedp.CSS("#c-url"), "ftp://siem.example.com"),
			chromedp.SendKeys(chromedp.CSS("#c-secret"), "short"),
			chromedp.Click(chromedp.CSS("#stream-save")), browsertest.Visible("#c-url-err"))
		if msg := browsertest.Text(t, ctx, "#c-url-err"); !strings.Contains(msg, "URL must be an absolute https:// URL") {
			t.Errorf("URL error: %q", msg)
		}
		if msg := browsertest.Text(t, ctx, "#c-secret-err"); !strings.Contains(msg, "at least 16 characters") {
			t.Errorf("secret error: %q", msg)
		}
		if v := browsertest.Eval[string](t, ctx, `document.querySelector("#c-secret").value`); v != "" {
			t.Errorf("the secret was echoed: %q", v)
		}
		if v := browsertest.Eval[string](t, ctx, `document.querySelector("#s-name").value`); v != hostileName {
			t.Errorf("name kept as %q", v)
		}
		browsertest.Screenshots(t, ctx, "portal", "stream-form-errors", false)

		// A valid stream to the loopback receiver.
		browsertest.Run(t, ctx, "good form",
			chromedp.SetValue(chromedp.CSS("#c-url"), rc.srv.URL+"/hook"),
			chromedp.SendKeys(chromedp.CSS("#c-secret"), "0123456789abcdef-secret"),
			chromedp.SendKeys(chromedp.CSS("#c-headers"), "X-Token: hunter2"),
			chromedp.Click(chromedp.CSS("#stream-save")), browsertest.Visible("#stream-state"))
		if n := browsertest.Text(t, ctx, ".alert.ok"); !strings.Contains(n, "The stream was created") {
			t.Errorf("notice %q", n)
		}
		if h := browsertest.Text(t, ctx, "main h1"); h != hostileName {
			t.Errorf("heading %q, want the name as text", h)
		}
		if v := browsertest.Eval[any](t, ctx, `window.__pwned`); v != nil {
			t.Fatalf("the stream's name ran a script")
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("main img").length`); n != 0 {
			t.Errorf("%d images injected by the name", n)
		}
		if body := browsertest.Text(t, ctx, "main"); strings.Contains(body, "hunter2") || strings.Contains(body, "0123456789abcdef-secret") {
			t.Error("the stream page shows a secret")
		}
		streamURL := browsertest.Location(t, ctx)
		streamURL = strings.Split(streamURL, "?")[0]
		browsertest.Screenshots(t, ctx, "portal", "stream", true)

		// Test event: the destination's answer, and the receiver got it.
		browsertest.Run(t, ctx, "test", chromedp.Click(chromedp.CSS("#stream-test")), browsertest.Visible("#test-result"))
		if r := browsertest.Text(t, ctx, "#test-result"); !strings.Contains(r, "Test event delivered") {
			t.Errorf("test result %q", r)
		}
		if !rc.got(`"action":"trail.log_stream.test"`) {
			t.Errorf("the receiver did not get the test event")
		}
		browsertest.Screenshots(t, ctx, "portal", "stream-tested", false)

		// Pause and resume.
		browsertest.Run(t, ctx, "pause", chromedp.Click(chromedp.CSS("#stream-pause")), browsertest.Visible("#stream-resume"))
		if s := browsertest.Text(t, ctx, "#stream-state"); s != "Paused" {
			t.Errorf("state after pause %q", s)
		}
		browsertest.Run(t, ctx, "resume", chromedp.Click(chromedp.CSS("#stream-resume")), browsertest.Visible("#stream-pause"))
		if s := browsertest.Text(t, ctx, "#stream-state"); s != "Active" {
			t.Errorf("state after resume %q", s)
		}

		// Edit: secrets are write-only.
		browsertest.Run(t, ctx, "edit", chromedp.Click(chromedp.CSS("#stream-edit")), browsertest.Visible("form.stream-form"))
		if p := attr(t, ctx, "#c-secret", "placeholder"); p != "set — leave empty to keep" {
			t.Errorf("secret placeholder %q", p)
		}
		if v := browsertest.Eval[string](t, ctx, `document.querySelector("#c-secret").value + document.querySelector("#c-headers").value`); v != "" {
			t.Errorf("the edit form holds secrets: %q", v)
		}
		browsertest.Screenshots(t, ctx, "portal", "stream-edit", true)
		browsertest.Run(t, ctx, "rename", chromedp.SetValue(chromedp.CSS("#s-name"), "SIEM webhook"), chromedp.SetValue(chromedp.CSS("#c-format"), "ndjson"),
			chromedp.Click(chromedp.CSS("#stream-save")), browsertest.Visible("#stream-state"))
		if h := browsertest.Text(t, ctx, "main h1"); h != "SIEM webhook" {
			t.Errorf("after the edit: %q", h)
		}
		if body := browsertest.Text(t, ctx, "main"); !strings.Contains(body, "ndjson") || !strings.Contains(body, "The stream's settings were saved") {
			t.Errorf("after the edit the page lacks the new format or the notice")
		}
		browsertest.Run(t, ctx, "test again", chromedp.Click(chromedp.CSS("#stream-test")), browsertest.Visible("#test-result"))
		if r := browsertest.Text(t, ctx, "#test-result"); !strings.Contains(r, "Test event delivered") {
			t.Errorf("test after the edit (kept secret): %q", r)
		}

		// The list with its status columns.
		browsertest.Run(t, ctx, "list", chromedp.Navigate(srv.URL+"/portal/streams"), browsertest.Visible("table.streams"))
		row := browsertest.Text(t, ctx, "table.streams tbody tr")
		for _, want := range []string{"SIEM webhook", "Webhook (HTTPS)", "Active"} {
			if !strings.Contains(row, want) {
				t.Errorf("list row %q lacks %q", row, want)
			}
		}
		if strings.Contains(browsertest.Text(t, ctx, "main"), "B's secret stream") {
			t.Error("A's list shows B's stream")
		}
		browsertest.Screenshots(t, ctx, "portal", "streams", true)

		// Cross-organization: B's stream does not exist for A's session.
		csrf := attr(t, ctx, `form[action="/portal/logout"] input[name=csrf]`, "value")
		for _, p := range []string{"", "/edit", "/delete"} {
			browsertest.Run(t, ctx, "B's stream "+p, chromedp.Navigate(srv.URL+"/portal/streams/"+streamB.ID+p), browsertest.Visible("main h1"))
			if h := browsertest.Text(t, ctx, "main h1"); h != "Log stream not found" {
				t.Errorf("B's stream%s from A's session: %q", p, h)
			}
		}
		for _, p := range []string{"/pause", "/resume", "/test", "/delete", "/edit"} {
			if st, _ := sessionDo(t, ctx, srv, "POST", "/portal/streams/"+streamB.ID+p, csrf); st != 404 {
				t.Errorf("POST B's stream%s from A's session: %d", p, st)
			}
		}
		for _, p := range []string{"", "/status", "/download"} {
			if st, _ := sessionDo(t, ctx, srv, "GET", "/portal/exports/"+exportB.ID+p, ""); st != 403 {
				t.Errorf("B's export%s from A's log streams session: %d, want 403 (wrong intent)", p, st)
			}
		}
		bs, err := api.GetStream(trailtest.Context(t), orgB, streamB.ID)
		if err != nil || bs.State != "active" || bs.Name != "B's secret stream" {
			t.Errorf("B's stream changed: %+v %v", bs, err)
		}

		// Delete, with a confirmation step.
		browsertest.Run(t, ctx, "open the stream", chromedp.Navigate(streamURL), browsertest.Visible("#stream-delete"))
		browsertest.Run(t, ctx, "delete", chromedp.Click(chromedp.CSS("#stream-delete")), browsertest.Visible("#stream-delete-confirm"))
		browsertest.Screenshots(t, ctx, "portal", "stream-delete", true)
		browsertest.Run(t, ctx, "confirm", chromedp.Click(chromedp.CSS("#stream-delete-confirm")), browsertest.Visible("table.streams"))
		if n := browsertest.Text(t, ctx, ".alert.ok"); !strings.Contains(n, "The stream was deleted") {
			t.Errorf("after delete: %q", n)
		}
		if body := browsertest.Text(t, ctx, "table.streams"); !strings.Contains(body, "No log streams yet") {
			t.Errorf("after delete the list shows %q", body)
		}
	})

	// In German, what the server fills in on the log streams pages is
	// German: a stream's state and backlog, and the stream package's
	// settings checks beside their fields.
	t.Run("StreamsGerman", func(t *testing.T) {
		// An organization of its own: A's log is checked for the
		// portal's actions below.
		orgC := createOrg(t, srv, "Gamma Streams")
		if _, err := api.CreateStream(trailtest.Context(t), orgC, client.StreamRequest{Type: "webhook", Name: "SIEM",
			Config: json.RawMessage(`{"url":"` + rc.srv.URL + `/de","secret":"0123456789abcdef-de"}`)}); err != nil {
			t.Fatalf("creating a stream: %v", err)
		}
		de := browsertest.New(t)
		emulate(t, de, "German", emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome", AcceptLanguage: "de-DE,de"})
		browsertest.Run(t, de, "open the log streams link", chromedp.Navigate(generateIntentLink(t, srv, orgC, "log_streams", []string{"alice@example.com"})),
			browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.streams"))
		row := browsertest.Text(t, de, "table.streams tbody")
		if !strings.Contains(row, "Aktiv") && !strings.Contains(row, "Wird wiederholt") {
			t.Errorf("German streams table %q: no German state", row)
		}
		for _, en := range []string{"Active", "Retrying", "up to date", "oldest", " old"} {
			if strings.Contains(row, en) {
				t.Errorf("German streams table %q holds %q", row, en)
			}
		}
		browsertest.Run(t, de, "the stream", chromedp.Click(chromedp.CSS("table.streams tbody a.name")), browsertest.Visible("#stream-state"))
		if s := browsertest.Text(t, de, "#stream-state"); s != "Aktiv" && s != "Wird wiederholt" {
			t.Errorf("German stream state %q", s)
		}
		browsertest.Run(t, de, "pause", chromedp.Click(chromedp.CSS("#stream-pause")), browsertest.Visible("#stream-resume"))
		if s := browsertest.Text(t, de, "#stream-state"); s != "Pausiert" {
			t.Errorf("German state after pause %q", s)
		}
		if n := browsertest.Text(t, de, ".alert.ok"); !strings.Contains(n, "Der Stream ist pausiert") {
			t.Errorf("German notice %q", n)
		}
		browsertest.Run(t, de, "new webhook", chromedp.Navigate(srv.URL+"/portal/streams/new?type=webhook"), browsertest.Visible("form.stream-form"),
			chromedp.SendKeys(chromedp.CSS("#c-url"), "ftp://siem.example.com"),
			chromedp.Click(chromedp.CSS("#stream-save")), browsertest.Visible("#c-url-err"))
		if msg := browsertest.Text(t, de, "#c-url-err"); !strings.Contains(msg, "URL muss eine absolute https://-URL sein") {
			t.Errorf("German URL error %q", msg)
		}
		if msg := browsertest.Text(t, de, "#c-secret-err"); !strings.Contains(msg, "ist erforderlich") {
			t.Errorf("German secret error %q", msg)
		}
	})

	t.Run("ExportCSV", func(t *testing.T) {
		browsertest.Run(t, ctx, "open the audit logs link", chromedp.Navigate(generateIntentLink(t, srv, orgA, "audit_logs", []string{"bob@example.com"})),
			browsertest.Visible("#launch"), chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))
		browsertest.Run(t, ctx, "filter", chromedp.Navigate(srv.URL+"/portal/events?action=user.signed_in&actor_id=user_0"), browsertest.Visible("#export-csv"))
		browsertest.Run(t, ctx, "export", chromedp.Click(chromedp.CSS("#export-csv")), browsertest.Visible("#export-progress"))
		if u := browsertest.Location(t, ctx); !strings.Contains(u, "/portal/exports/audit_log_export_") {
			t.Fatalf("export page at %s", u)
		}
		// The page refreshes itself until the file is ready.
		ready := false
		for range 300 {
			if browsertest.Eval[bool](t, ctx, `!!document.querySelector("#export-download")`) {
				ready = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ready {
			t.Fatalf("the export page never offered the download: %s", browsertest.Text(t, ctx, "main"))
		}
		browsertest.Screenshots(t, ctx, "portal", "export", true)
		href := attr(t, ctx, "#export-download", "href")
		st, body := sessionDo(t, ctx, srv, "GET", href, "")
		if st != 200 {
			t.Fatalf("download: %d", st)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("CSV: %v\n%s", err, body)
		}
		// user.signed_in is i%3 == 0, user_0 is i%4 == 0: i = 0 and 12 → only i = 0 (i < 12).
		if len(rows) != 2 || rows[1][2] != "user.signed_in" || rows[1][3] != "user_0" {
			t.Fatalf("CSV rows: %q", rows)
		}
		if !strings.HasPrefix(rows[1][5], "'") {
			t.Errorf("formula in actor name not neutralised: %q", rows[1][5])
		}
		// Free text can't be exported: the page says so.
		browsertest.Run(t, ctx, "free text", chromedp.Navigate(srv.URL+"/portal/events?q=calc"), browsertest.Visible("#export-note"))
		if n := browsertest.Text(t, ctx, "#export-note"); !strings.Contains(n, "can't filter by search text") {
			t.Errorf("note %q", n)
		}
		// B's export does not exist for A's session.
		for _, p := range []string{"", "/status", "/download"} {
			if st, _ := sessionDo(t, ctx, srv, "GET", "/portal/exports/"+exportB.ID+p, ""); st != 404 {
				t.Errorf("B's export%s from A's session: %d", p, st)
			}
		}
		// A log streams page from an audit logs session.
		browsertest.Run(t, ctx, "streams", chromedp.Navigate(srv.URL+"/portal/streams"), browsertest.Visible("main h1"))
		if h := browsertest.Text(t, ctx, "main h1"); h != "Not part of this session" {
			t.Errorf("streams from an audit logs session: %q", h)
		}
	})

	// The portal's actions are in A's log, by the admins the links named.
	want := map[string]string{"trail.log_stream.created": "alice@example.com", "trail.log_stream.tested": "alice@example.com",
		"trail.log_stream.paused": "alice@example.com", "trail.log_stream.resumed": "alice@example.com",
		"trail.log_stream.updated": "alice@example.com", "trail.log_stream.deleted": "alice@example.com",
		"trail.export.requested": "bob@example.com"}
	deadline := time.Now().Add(20 * time.Second)
	for action, admin := range want {
		for {
			if page := search(t, srv, orgA, action); len(page) > 0 {
				if a := page[0].Actor; a.ID != admin || a.Type != "portal_admin" {
					t.Errorf("%s by %+v, want %s", action, a, admin)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("no %s event in A's log", action)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
