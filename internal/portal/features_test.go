package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// Phase 2 (CSV export, log streams) runs against the real export service
// (River jobs on the backend) and the API server's stream operations, the
// same wiring as cmd/trail/portal.go.

// features adds the export service and the log streams pages to e's portal.
type features struct {
	svc     *export.Service
	streams *streamadmin.Manager
}

func (e *env) withFeatures() *features {
	t := e.t
	t.Helper()
	ctx := context.Background()
	kr, err := keyring.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	codec := stream.NewCodec(stream.Policy{AllowPrivate: true}, kr.Sealer(stream.SealPurpose))
	f := &features{streams: streamadmin.New(streamadmin.Config{Store: e.st, Log: e.st, Records: e.st, Codec: codec})}
	dir := filepath.Join(t.TempDir(), "exports")
	switch st := e.st.(type) {
	case *sqlite.Store:
		xs, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(st.Path()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { xs.Close() })
		f.svc, err = export.NewSQLite(ctx, xs.DB(), export.Config{Exports: xs, Log: st, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
	case *postgres.Store:
		f.svc, err = export.NewPostgres(ctx, st.Pool(), export.Config{Exports: st, Log: st, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no export service for %T", e.st)
	}
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.svc.Stop(context.Background()) })
	cfg := e.p.cfg
	cfg.Exports, cfg.Streams = f.svc, f.streams
	if e.p, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.p)
	t.Cleanup(e.srv.Close)
	return f
}

// openIntent generates a link for intent into org and opens it.
func (c *client) openIntent(org, intent string, admins ...string) {
	c.t.Helper()
	link, _, err := c.e.p.GenerateLink(context.Background(), org, intent, admins, "", "")
	if err != nil {
		c.t.Fatal(err)
	}
	if r := c.launch(strings.TrimPrefix(link, "http://portal.test")); r.status != http.StatusSeeOther {
		c.t.Fatalf("opening the link: %d", r.status)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the session's CSRF token, read from a page's form.
func (c *client) csrf(page string) string {
	c.t.Helper()
	m := csrfField.FindStringSubmatch(c.get(page).body)
	if m == nil {
		c.t.Fatalf("no CSRF token on %s", page)
	}
	return m[1]
}

// receiver is a webhook destination that records what it is sent.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	sigs   []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		rc.sigs = append(rc.sigs, r.Header.Get("Trail-Signature"))
		rc.mu.Unlock()
		if strings.Contains(r.URL.Path, "refuse") {
			http.Error(w, "bad token", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// signedWith reports whether the i-th request was signed with secret.
func (rc *receiver) signedWith(i int, secret string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ts, v1, _ := strings.Cut(strings.TrimPrefix(rc.sigs[i], "t="), ",v1=")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + rc.bodies[i]))
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(v1))
}

func (rc *receiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.bodies) }

func (e *env) actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, a := range e.audited {
		out = append(out, a.Action+" by "+a.Admin+" on "+a.TargetType)
	}
	return out
}

var streamPath = regexp.MustCompile(`^/portal/streams/(ls_[0-9A-Z]+)\?done=created$`)

func TestStreamsPages(t *testing.T) { forEachBackend(t, testStreamsPages) }

func testStreamsPages(t *testing.T, e *env) {
	e.withFeatures()
	e.org("org_a", "Acme")
	rc := newReceiver(t)
	c := e.client()
	c.openIntent("org_a", IntentLogStreams, "alice@example.com")
	token := c.csrf("/portal/streams/new?type=webhook")
	const secret = "0123456789abcdef-secret"
	const hostile = `<script>window.__pwned=1</script>"'`

	// Field-level errors: a bad URL, a short secret, a header line without a colon.
	r := c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {hostile},
		"url": {"ftp://bad.example"}, "secret": {"short"}, "headers": {"no colon here"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="c-headers-err"`) {
		t.Fatalf("bad form: %d\n%s", r.status, r.body)
	}
	r = c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {hostile},
		"url": {"ftp://bad.example"}, "secret": {"short"}})
	for _, want := range []string{`id="c-url-err">URL must be an absolute https:// URL`, `id="c-secret-err">`, `aria-invalid="true"`,
		`value="&lt;script&gt;window.__pwned=1&lt;/script&gt;&#34;&#39;"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("bad form: %d, missing %q", r.status, want)
		}
	}
	if strings.Contains(r.body, "short") || strings.Contains(r.body, "<script>window") {
		t.Errorf("the form echoes a secret or raw markup")
	}

	// In German, the text the server fills in is German too: the title,
	// the destination's labels and help, the form's own messages.
	c.do("GET", "/portal/streams?lang=de", nil)
	r = c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {"n"},
		"url": {"https://x.example"}, "secret": {secret}, "headers": {"no colon here"}})
	for _, want := range []string{"<title>Neuer Stream: Webhook (HTTPS)", "Signaturgeheimnis", "Trail sendet jeden Stapel von Ereignissen per POST hierhin.",
		`id="c-headers-err">Zeile 1 ist kein Header`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("German form: %d, missing %q", r.status, want)
		}
	}
	// The stream package's checks, beside their fields.
	r = c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {"n"},
		"url": {"ftp://bad.example"}, "secret": {""}})
	for _, want := range []string{`id="c-url-err">URL muss eine absolute https://-URL sein, nicht &#34;ftp://bad.example&#34;.`,
		`id="c-secret-err">Signaturgeheimnis ist erforderlich: mindestens 16 Zeichen`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("German checks: %d, missing %q in\n%s", r.status, want, r.body)
		}
	}
	// The policy's reason for refusing an address, too.
	for _, tt := range []struct{ url, want string }{
		{"https://169.254.169.254/latest", `id="c-url-err">URL: Zieladresse abgelehnt: 169.254.169.254 ist eine Cloud-Metadatenadresse.`},
		{"https://[2002:a9fe:a9fe::1]/", `id="c-url-err">URL: Zieladresse abgelehnt: 169.254.169.254 ist eine Cloud-Metadatenadresse (2002:a9fe:a9fe::1 enthält die IPv4-Adresse 169.254.169.254).`},
	} {
		r = c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {"n"}, "url": {tt.url}, "secret": {secret}})
		if !strings.Contains(r.body, tt.want) {
			t.Errorf("German refusal of %s: %d, missing %q", tt.url, r.status, tt.want)
		}
	}
	c.do("GET", "/portal/streams?lang=en", nil)

	// Create, then test: the receiver gets a signed test event.
	r = c.do("POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"webhook"}, "name": {hostile},
		"url": {rc.srv.URL + "/hook"}, "secret": {secret}, "headers": {"X-Token: hunter2"}, "start": {"now"}})
	m := streamPath.FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("create: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	id := m[1]
	r = c.get("/portal/streams/" + id + "?done=created")
	if r.status != 200 || !strings.Contains(r.body, "The stream was created") || strings.Contains(r.body, "hunter2") || strings.Contains(r.body, secret) ||
		strings.Contains(r.body, "<script>window") || !strings.Contains(r.body, "headers.X-Token") {
		t.Fatalf("stream page: %d\n%s", r.status, r.body)
	}
	r = c.do("POST", "/portal/streams/"+id+"/test", url.Values{"csrf": {token}})
	if r.status != 200 || !strings.Contains(r.body, "Test event delivered") || rc.count() != 1 || !rc.signedWith(0, secret) {
		t.Fatalf("test: %d, %d requests\n%s", r.status, rc.count(), r.body)
	}

	// Pause, resume.
	for _, step := range []struct{ path, want string }{{"pause", "Paused"}, {"resume", "Active"}} {
		r = c.do("POST", "/portal/streams/"+id+"/"+step.path, url.Values{"csrf": {token}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("%s: %d", step.path, r.status)
		}
		if r = c.get(r.header.Get("Location")); !strings.Contains(r.body, `id="stream-state">`+step.want) {
			t.Fatalf("after %s: %s", step.path, r.body)
		}
	}

	// In German: the state, its help, the backlog and the notice.
	c.do("GET", "/portal/streams?lang=de", nil)
	r = c.do("POST", "/portal/streams/"+id+"/pause", url.Values{"csrf": {token}})
	r = c.get(r.header.Get("Location"))
	for _, want := range []string{`id="stream-state">Pausiert`, "Von einem Admin pausiert.", "Der Stream ist pausiert."} {
		if !strings.Contains(r.body, want) {
			t.Errorf("German stream page lacks %q", want)
		}
	}
	if lag := regexp.MustCompile(`id="stream-lag">([^<]*)<`).FindStringSubmatch(r.body); lag == nil || strings.Contains(lag[1], "event") || strings.Contains(lag[1], "up to date") {
		t.Errorf("German backlog %q", lag)
	}
	if r = c.get("/portal/streams"); !strings.Contains(r.body, `<span class="state muted">Pausiert</span>`) {
		t.Errorf("German streams list lacks the state")
	}
	r = c.do("POST", "/portal/streams/"+id+"/resume", url.Values{"csrf": {token}})
	c.do("GET", "/portal/streams?lang=en", nil)

	// Edit: the form shows no secret; leaving it empty keeps it.
	r = c.get("/portal/streams/" + id + "/edit")
	if !strings.Contains(r.body, "set — leave empty to keep") || strings.Contains(r.body, secret) || strings.Contains(r.body, "hunter2") {
		t.Fatalf("edit form:\n%s", r.body)
	}
	r = c.do("POST", "/portal/streams/"+id+"/edit", url.Values{"csrf": {token}, "name": {"Renamed"}, "url": {rc.srv.URL + "/hook2"}, "format": {"ndjson"}, "secret": {""}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", r.status, r.body)
	}
	r = c.do("POST", "/portal/streams/"+id+"/test", url.Values{"csrf": {token}})
	if !strings.Contains(r.body, "Test event delivered") || rc.count() != 2 || !rc.signedWith(1, secret) {
		t.Fatalf("test after the edit: %d requests\n%s", rc.count(), r.body)
	}
	// An edit with a bad value changes nothing and says why.
	r = c.do("POST", "/portal/streams/"+id+"/edit", url.Values{"csrf": {token}, "name": {"Renamed"}, "url": {"http://169.254.169.254/latest"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="c-url-err"`) {
		t.Fatalf("metadata address accepted: %d\n%s", r.status, r.body)
	}
	// A refusing destination is the test's answer, not an error.
	c.do("POST", "/portal/streams/"+id+"/edit", url.Values{"csrf": {token}, "name": {"Renamed"}, "url": {rc.srv.URL + "/refuse"}})
	r = c.do("POST", "/portal/streams/"+id+"/test", url.Values{"csrf": {token}})
	if r.status != 200 || !strings.Contains(r.body, "Test event refused") || !strings.Contains(r.body, "401") {
		t.Fatalf("refused test: %d\n%s", r.status, r.body)
	}

	// Delete: a confirmation page, then the POST.
	if r = c.get("/portal/streams/" + id + "/delete"); r.status != 200 || !strings.Contains(r.body, "Delete the stream") {
		t.Fatalf("confirmation: %d", r.status)
	}
	if r = c.do("POST", "/portal/streams/"+id+"/delete", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("delete without CSRF: %d", r.status)
	}
	if r = c.do("POST", "/portal/streams/"+id+"/delete", url.Values{"csrf": {token}}); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if r = c.get("/portal/streams/" + id); r.status != http.StatusNotFound {
		t.Fatalf("deleted stream: %d", r.status)
	}

	got := strings.Join(e.actions(), "\n")
	for _, want := range []string{"trail.log_stream.created by alice@example.com on log_stream", "trail.log_stream.tested by alice@example.com on log_stream",
		"trail.log_stream.paused by alice@example.com", "trail.log_stream.resumed by alice@example.com", "trail.log_stream.updated by alice@example.com",
		"trail.log_stream.deleted by alice@example.com on log_stream"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit: no %q in\n%s", want, got)
		}
	}
}

func TestPortalExport(t *testing.T) { forEachBackend(t, testPortalExport) }

func testPortalExport(t *testing.T, e *env) {
	f := e.withFeatures()
	e.org("org_a", "Acme")
	base := e.clock.Now().Add(-time.Hour)
	e.add("org_a", ev("user.signed_in", "u1", base), ev("user.signed_out", "u1", base.Add(time.Minute)),
		ev("user.signed_in", "=HYPERLINK(\"x\")", base.Add(2*time.Minute)), ev("team.deleted", "u2", base.Add(3*time.Minute)))
	c := e.client()
	c.open("org_a")
	events := c.get("/portal/events?action=user.signed_in")
	if !strings.Contains(events.body, `id="export-csv"`) || !strings.Contains(events.body, `<input type="hidden" name="action" value="user.signed_in">`) {
		t.Fatalf("no export form:\n%s", events.body)
	}
	token := csrfField.FindStringSubmatch(events.body)[1]
	// Free text can't be exported: the page says so, and the POST is refused.
	if r := c.get("/portal/events?q=hello"); strings.Contains(r.body, `id="export-csv"`) || !strings.Contains(r.body, "can&#39;t filter by search text") {
		t.Fatalf("free-text filter offered for export:\n%s", r.body)
	}
	if r := c.do("POST", "/portal/exports", url.Values{"csrf": {token}, "q": {"hello"}}); r.status != http.StatusBadRequest {
		t.Fatalf("free-text export: %d", r.status)
	}
	if r := c.do("POST", "/portal/exports", url.Values{"action": {"user.signed_in"}}); r.status != http.StatusForbidden {
		t.Fatalf("export without CSRF: %d", r.status)
	}
	r := c.do("POST", "/portal/exports", url.Values{"csrf": {token}, "action": {"user.signed_in"}})
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/exports/audit_log_export_") {
		t.Fatalf("export: %d %q\n%s", r.status, loc, r.body)
	}
	id := strings.TrimPrefix(strings.Split(loc, "?")[0], "/portal/exports/")
	// The job runs in the background: wait for it on the store (bounded).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		x, err := f.svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.State != store.ExportPending {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the export did not finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r = c.get(loc); r.status != 200 || !strings.Contains(r.body, `id="export-download"`) || strings.Contains(r.body, "http-equiv") {
		t.Fatalf("export page: %d\n%s", r.status, r.body)
	}
	r = c.get("/portal/exports/" + id + "/download")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("download: %d %s", r.status, r.header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("CSV: %v, %d rows\n%s", err, len(rows), r.body)
	}
	for _, row := range rows[1:] {
		if row[2] != "user.signed_in" {
			t.Errorf("exported %v", row)
		}
		if strings.HasPrefix(row[3], "=") {
			t.Errorf("formula not neutralised: %q", row[3])
		}
	}
	if got := strings.Join(e.actions(), "\n"); !strings.Contains(got, "trail.export.requested by  on audit_log_export") {
		t.Errorf("audit: %s", got)
	}
}

// TestFeatureIsolation: organization A's sessions never read or change B's
// streams or exports, on every route; sessions of the other intent are
// refused.
func TestFeatureIsolation(t *testing.T) { forEachBackend(t, testFeatureIsolation) }

func testFeatureIsolation(t *testing.T, e *env) {
	f := e.withFeatures()
	e.org("org_a", "Acme")
	e.org("org_b", "Beta")
	ctx := context.Background()
	sb, err := f.streams.Create(ctx, "org_b", "webhook", "B's stream", "now", []byte(`{"url":"https://siem.example.com/b","secret":"0123456789abcdef0123"}`))
	if err != nil {
		t.Fatal(err)
	}
	xb, err := f.svc.Create(ctx, "org_b", "csv", store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	streamsA := e.client()
	streamsA.openIntent("org_a", IntentLogStreams)
	token := streamsA.csrf("/portal/streams/new?type=webhook")
	logsA := e.client()
	logsA.open("org_a")
	logsToken := logsA.csrf("/portal/events")

	for _, tc := range []struct {
		c      *client
		method string
		path   string
		form   url.Values
		want   int
	}{
		{streamsA, "GET", "/portal/streams/" + sb.ID, nil, 404},
		{streamsA, "GET", "/portal/streams/" + sb.ID + "/edit", nil, 404},
		{streamsA, "POST", "/portal/streams/" + sb.ID + "/edit", url.Values{"csrf": {token}, "name": {"mine"}, "url": {"https://evil.example"}}, 404},
		{streamsA, "POST", "/portal/streams/" + sb.ID + "/test", url.Values{"csrf": {token}}, 404},
		{streamsA, "POST", "/portal/streams/" + sb.ID + "/pause", url.Values{"csrf": {token}}, 404},
		{streamsA, "POST", "/portal/streams/" + sb.ID + "/resume", url.Values{"csrf": {token}}, 404},
		{streamsA, "GET", "/portal/streams/" + sb.ID + "/delete", nil, 404},
		{streamsA, "POST", "/portal/streams/" + sb.ID + "/delete", url.Values{"csrf": {token}}, 404},
		{streamsA, "GET", "/portal/streams/%00", nil, 404},
		{streamsA, "GET", "/portal/streams/" + strings.Repeat("x", 300), nil, 404},
		{logsA, "GET", "/portal/exports/" + xb.ID, nil, 404},
		{logsA, "GET", "/portal/exports/" + xb.ID + "/status", nil, 404},
		{logsA, "GET", "/portal/exports/" + xb.ID + "/download", nil, 404},
		{logsA, "GET", "/portal/exports/nope", nil, 404},
		// The other intent's pages.
		{logsA, "GET", "/portal/streams", nil, 403},
		{logsA, "POST", "/portal/streams", url.Values{"csrf": {logsToken}, "type": {"webhook"}}, 403},
		{streamsA, "POST", "/portal/exports", url.Values{"csrf": {token}}, 403},
		{streamsA, "GET", "/portal/exports/" + xb.ID, nil, 403},
		// Bad input.
		{streamsA, "GET", "/portal/streams/new?type=nope", nil, 303},
		{streamsA, "POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"nope"}}, 400},
		{streamsA, "POST", "/portal/streams", url.Values{"csrf": {token}, "type": {"syslog"}, "facility": {"x"}, "ca_pem": {"\x00"}}, 422},
		{logsA, "POST", "/portal/exports", url.Values{"csrf": {logsToken}, "from": {"yesterday"}}, 400},
	} {
		r := tc.c.do(tc.method, tc.path, tc.form)
		if r.status != tc.want {
			t.Errorf("%s %s: %d, want %d\n%s", tc.method, tc.path, r.status, tc.want, r.body)
		}
		if strings.Contains(r.body, "B&#39;s stream") || strings.Contains(r.body, "siem.example.com/b") {
			t.Errorf("%s %s shows B's stream", tc.method, tc.path)
		}
	}
	got, err := f.streams.Get(ctx, "org_b", sb.ID)
	if err != nil || got.Stream.State != store.StreamActive || got.Stream.Name != "B's stream" {
		t.Fatalf("B's stream changed: %+v %v", got.Stream, err)
	}
	if r := streamsA.get("/portal/streams"); strings.Contains(r.body, sb.ID) {
		t.Fatal("A's list shows B's stream")
	}
}

// TestStreamTypes: each destination type's form creates a stream, and each
// one's invalid settings are shown beside their fields; an edit keeps the
// secrets left empty.
func TestStreamTypes(t *testing.T) {
	e := newEnv(t)
	f := e.withFeatures()
	e.org("org_a", "Acme")
	c := e.client()
	c.openIntent("org_a", IntentLogStreams)
	token := c.csrf("/portal/streams")
	for _, tc := range []struct {
		typ      string
		good     url.Values
		bad      url.Values
		errField string
		secrets  []string
	}{
		{"datadog", url.Values{"api_key": {"dd-key"}, "site": {"eu1"}, "tags": {"env:prod"}},
			url.Values{"site": {"mars1"}}, "site", []string{"api_key"}},
		{"splunk", url.Values{"url": {"https://splunk.example.com:8088"}, "token": {"hec-token"}, "index": {"audit"}},
			url.Values{"url": {"https://splunk.example.com:8088/services/collector/event"}, "token": {"t"}}, "url", []string{"token"}},
		{"s3", url.Values{"bucket": {"audit-logs"}, "region": {"eu-west-1"}, "endpoint": {"https://minio.example.com"}, "path_style": {"on"},
			"access_key_id": {"AKIA"}, "secret_access_key": {"sk"}},
			url.Values{"bucket": {"Bad_Bucket!"}}, "bucket", []string{"access_key_id", "secret_access_key"}},
		{"syslog", url.Values{"address": {"syslog.example.com:6514"}, "facility": {"13"}},
			url.Values{"address": {"no-port"}}, "address", nil},
		{"webhook", url.Values{"url": {"https://siem.example.com/h"}, "secret": {"0123456789abcdef"}, "format": {"ndjson"}},
			url.Values{"url": {"https://siem.example.com/h"}, "secret": {"0123456789abcdef"}, "headers": {"Host: evil"}}, "headers", []string{"secret"}},
		{"azure_sentinel", url.Values{"api": {"logs_ingestion"}, "cloud": {"public"}, "endpoint": {"https://dce-1.eastus-1.ingest.monitor.azure.com"},
			"dcr_immutable_id": {"dcr-00112233445566778899aabbccddeeff"}, "stream_name": {"Custom-TrailAudit_CL"},
			"tenant_id": {"72f988bf-86f1-41af-91ab-2d7cd011db47"}, "client_id": {"0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a"}, "client_secret": {"entra-secret"}},
			url.Values{"api": {"logs_ingestion"}, "dcr_immutable_id": {"dcr-XYZ"}}, "dcr_immutable_id", []string{"client_secret"}},
		{"gcs", url.Values{"bucket": {"audit-logs"}, "prefix": {"trail/"}, "service_account_json": {testServiceAccountJSON(t)}},
			url.Values{"bucket": {"audit-logs"}, "service_account_json": {`{"type":"authorized_user"}`}}, "service_account_json", []string{"service_account_json"}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			form := func(v url.Values) url.Values {
				out := url.Values{"csrf": {token}, "type": {tc.typ}, "name": {tc.typ + " stream"}}
				for k, vs := range v {
					out[k] = vs
				}
				return out
			}
			r := c.do("POST", "/portal/streams", form(tc.bad))
			if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="c-`+tc.errField+`-err"`) {
				t.Fatalf("bad %s: %d, no error beside %s\n%s", tc.typ, r.status, tc.errField, r.body)
			}
			r = c.do("POST", "/portal/streams", form(tc.good))
			m := streamPath.FindStringSubmatch(r.header.Get("Location"))
			if r.status != http.StatusSeeOther || m == nil {
				t.Fatalf("good %s: %d\n%s", tc.typ, r.status, r.body)
			}
			got, err := f.streams.Get(context.Background(), "org_a", m[1])
			if err != nil || got.Stream.Type != tc.typ || strings.Join(got.SecretNames, ",") != strings.Join(tc.secrets, ",") {
				t.Fatalf("stored %+v %v", got, err)
			}
			// Edit: a public setting changes, the secrets stay.
			edit := c.get("/portal/streams/" + m[1] + "/edit")
			for _, s := range tc.secrets {
				if !strings.Contains(edit.body, `id="c-`+s+`" name="`+s+`" value="" autocomplete="new-password" placeholder="set — leave empty to keep"`) &&
					!strings.Contains(edit.body, `<textarea id="c-`+s+`" name="`+s+`" rows="5" spellcheck="false" autocomplete="off" placeholder="set — leave empty to keep"`) {
					t.Errorf("edit form: secret %s not shown as set\n%s", s, edit.body)
				}
			}
			if strings.Contains(edit.body, "PRIVATE KEY") || strings.Contains(edit.body, "entra-secret") {
				t.Errorf("edit form shows a secret\n%s", edit.body)
			}
			v := form(tc.good)
			for _, s := range tc.secrets {
				v.Set(s, "")
			}
			v.Set("name", "renamed")
			v.Del("type")
			if r = c.do("POST", "/portal/streams/"+m[1]+"/edit", v); r.status != http.StatusSeeOther {
				t.Fatalf("edit: %d\n%s", r.status, r.body)
			}
			after, _ := f.streams.Get(context.Background(), "org_a", m[1])
			if after.Stream.Name != "renamed" || strings.Join(after.SecretNames, ",") != strings.Join(tc.secrets, ",") {
				t.Errorf("after the edit: %q, secrets %v", after.Stream.Name, after.SecretNames)
			}
		})
	}
}
