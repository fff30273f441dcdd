package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const base = "http://trail.test"

// backend is a store the console runs on.
type backend interface {
	store.Backend
}

var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"sqlite", func(t *testing.T) backend {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trail.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(t *testing.T) backend {
		st, err := postgres.Open(context.Background(), pgtest.New(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}},
}

// fakePortal stands for the portal's link generation.
type fakePortal struct {
	mu   sync.Mutex
	orgs []string
}

func (f *fakePortal) Intents() []string { return []string{"audit_logs", "log_streams"} }
func (f *fakePortal) GenerateLink(_ context.Context, org, intent string, _ []string, _, _ string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgs = append(f.orgs, org)
	return base + "/portal/launch?secret=ptl_for_" + org + "_" + intent, time.Now().Add(5 * time.Minute), nil
}

type env struct {
	t      *testing.T
	st     backend
	c      *Console
	portal *fakePortal
	now    time.Time
	mu     sync.Mutex
	audits []Action
	ops    *opsFixture // operations_test.go
}

func newEnv(t *testing.T, st backend) *env {
	e := &env{t: t, st: st, portal: &fakePortal{}, now: time.Now().UTC().Truncate(time.Second)}
	c, err := New(Config{Store: st, Portal: e.portal, BaseURL: base, SessionKey: []byte(strings.Repeat("k", 32)), Operations: e.operations(st), Tail: &fakeTail{},
		Now: func() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now },
		Audit: func(_ *http.Request, a Action) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.audits = append(e.audits, a)
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newEnv(t, b.open(t))) })
	}
}

func (e *env) advance(d time.Duration) { e.mu.Lock(); e.now = e.now.Add(d); e.mu.Unlock() }

func (e *env) actions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, a := range e.audits {
		out = append(out, a.Action+"@"+strings.Join(a.Logs, ","))
	}
	return out
}

// req is one request to the console: a form when form is not nil, sent
// from this origin unless origin says otherwise.
type req struct {
	method, target string
	form           url.Values
	cookie         string
	origin         string // "" = the console's own; "-" = none
}

func (e *env) do(r req) (int, string, *http.Response) {
	e.t.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	hr := httptest.NewRequest(r.method, base+r.target, body)
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch r.origin {
	case "":
		hr.Header.Set("Origin", base)
	case "-":
	default:
		hr.Header.Set("Origin", r.origin)
	}
	if r.cookie != "" {
		hr.Header.Set("Cookie", cookieName+"="+r.cookie)
	}
	w := httptest.NewRecorder()
	e.c.ServeHTTP(w, hr)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res
}

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	secretField = regexp.MustCompile(`name="secret" value="([^"]+)"`)
)

// link creates a console link and returns its path and secret.
func (e *env) link(operator string) (string, string) {
	e.t.Helper()
	u, _, err := CreateLink(context.Background(), e.st, base, operator, e.c.cfg.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	path := strings.TrimPrefix(u, base)
	return path, path[strings.Index(path, "secret=")+len("secret="):]
}

// signIn opens a new link as a browser would and returns the session
// cookie and its CSRF token.
func (e *env) signIn() (string, string) {
	e.t.Helper()
	path, _ := e.link("alice")
	code, body, _ := e.do(req{method: "GET", target: path})
	if code != 200 {
		e.t.Fatalf("launch page: %d %s", code, body)
	}
	form := url.Values{"secret": {secretField.FindStringSubmatch(body)[1]}, "csrf": {csrfField.FindStringSubmatch(body)[1]}}
	code, body, res := e.do(req{method: "POST", target: "/console/launch", form: form})
	if code != http.StatusSeeOther {
		e.t.Fatalf("launch: %d %s", code, body)
	}
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			cookie = c.Value
			if c.Path != "/console" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				e.t.Fatalf("session cookie %+v: want Path=/console, HttpOnly, SameSite=Strict", c)
			}
		}
	}
	if cookie == "" {
		e.t.Fatal("no session cookie")
	}
	_, body, _ = e.do(req{method: "GET", target: "/console/organizations", cookie: cookie})
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no CSRF token: %s", body)
	}
	return cookie, m[1]
}

func TestLinksAndSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		path, secret := e.link("alice")
		// GET never spends the link, however often.
		for range 3 {
			if code, body, _ := e.do(req{method: "GET", target: path}); code != 200 || !strings.Contains(body, "alice") {
				t.Fatalf("launch page: %d %s", code, body)
			}
		}
		_, body, _ := e.do(req{method: "GET", target: path})
		token := csrfField.FindStringSubmatch(body)[1]
		refused := []struct {
			name string
			r    req
			want int
		}{
			{"no origin", req{method: "POST", target: "/console/launch", form: url.Values{"secret": {secret}, "csrf": {token}}, origin: "-"}, 403},
			{"other origin", req{method: "POST", target: "/console/launch", form: url.Values{"secret": {secret}, "csrf": {token}}, origin: "https://evil.example"}, 403},
			{"wrong token", req{method: "POST", target: "/console/launch", form: url.Values{"secret": {secret}, "csrf": {"x"}}}, 403},
			{"portal secret", req{method: "POST", target: "/console/launch", form: url.Values{"secret": {"ptl_" + secret[4:]}, "csrf": {token}}}, 400},
			{"two secrets", req{method: "POST", target: "/console/launch", form: url.Values{"secret": {secret, secret}, "csrf": {token}}}, 400},
		}
		for _, c := range refused {
			if code, body, _ := e.do(c.r); code != c.want {
				t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
			}
		}
		form := url.Values{"secret": {secret}, "csrf": {token}}
		code, _, res := e.do(req{method: "POST", target: "/console/launch", form: form})
		if code != http.StatusSeeOther || res.Header.Get("Location") != "/console/organizations" {
			t.Fatalf("launch: %d %v", code, res.Header)
		}
		cookie := res.Cookies()[0].Value
		if code, _, _ := e.do(req{method: "POST", target: "/console/launch", form: form}); code != http.StatusGone {
			t.Errorf("second use: %d, want 410", code)
		}
		if code, _, _ := e.do(req{method: "GET", target: "/console/keys", cookie: cookie}); code != 200 {
			t.Fatalf("signed in: %d", code)
		}
		// A cookie signed with another key (the portal's, say) is refused.
		other, _ := New(Config{Store: e.st, BaseURL: base, SessionKey: []byte(strings.Repeat("p", 32)), Audit: func(*http.Request, Action) {}})
		s, _ := e.c.decodeSession(cookie, e.c.cfg.Now())
		if code, _, _ := e.do(req{method: "GET", target: "/console/keys", cookie: other.encodeSession(s)}); code != 401 {
			t.Errorf("cookie of another key: %d, want 401", code)
		}
		_, body, _ = e.do(req{method: "GET", target: "/console/keys", cookie: cookie})
		csrf := csrfField.FindStringSubmatch(body)[1]
		if code, _, _ := e.do(req{method: "POST", target: "/console/logout", form: url.Values{"csrf": {"nope"}}, cookie: cookie}); code != 403 {
			t.Errorf("logout without the CSRF token: %d, want 403", code)
		}
		if code, _, _ := e.do(req{method: "POST", target: "/console/logout", form: url.Values{"csrf": {csrf}}, cookie: cookie}); code != 200 {
			t.Fatalf("logout: %d", code)
		}
		// The cookie, replayed after sign-out, is refused: the session
		// ended in the database.
		if code, _, _ := e.do(req{method: "GET", target: "/console/keys", cookie: cookie}); code != 401 {
			t.Errorf("after sign-out: %d, want 401", code)
		}
		// Expiry: of a link, and of a session.
		path, _ = e.link("bob")
		e.advance(LinkTTL + time.Second)
		if code, _, _ := e.do(req{method: "GET", target: path}); code != http.StatusGone {
			t.Errorf("expired link: %d, want 410", code)
		}
		cookie, _ = e.signIn()
		e.advance(8*time.Hour + time.Second)
		if code, _, _ := e.do(req{method: "GET", target: "/console/organizations", cookie: cookie}); code != 401 {
			t.Errorf("expired session: %d, want 401", code)
		}
		want := []string{"trail.console_session.started@org_system", "trail.console_session.ended@org_system", "trail.console_session.started@org_system"}
		if got := e.actions(); !slices.Equal(got, want) {
			t.Errorf("audited %v, want %v", got, want)
		}
	})
}

// TestPortalRowsDoNotOpenTheConsole: a link row of an organization's
// portal is never redeemed here, even under a console-shaped secret.
func TestPortalRowsDoNotOpenTheConsole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		now := e.c.cfg.Now()
		org := store.Organization{ID: access.NewOrganizationID(now), Name: "Acme", CreatedAt: now, UpdatedAt: now}
		if err := e.st.CreateOrganization(context.Background(), org); err != nil {
			t.Fatal(err)
		}
		for i, l := range []store.PortalLink{
			{OrganizationID: org.ID, Intent: "audit_logs"},
			{OrganizationID: store.SystemOrganizationID, Intent: "audit_logs"},
		} {
			secret := "csl_" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, 32))
			l.Hash, l.CreatedAt, l.ExpiresAt = sha256.Sum256([]byte(secret)), now, now.Add(time.Minute)
			if err := e.st.CreatePortalLink(context.Background(), l); err != nil {
				t.Fatal(err)
			}
			if code, _, _ := e.do(req{method: "GET", target: "/console/launch?secret=" + secret}); code != 404 {
				t.Errorf("%s/%s: launch page %d, want 404", l.OrganizationID, l.Intent, code)
			}
			form := url.Values{"secret": {secret}, "csrf": {e.c.launchToken(l.Hash)}}
			if code, _, _ := e.do(req{method: "POST", target: "/console/launch", form: form}); code != 404 {
				t.Errorf("%s/%s: launch %d, want 404", l.OrganizationID, l.Intent, code)
			}
			if got, err := e.st.PortalLink(context.Background(), l.Hash); err != nil || !got.UsedAt.IsZero() {
				t.Errorf("%s/%s: the portal's link was spent (%v)", l.OrganizationID, l.Intent, err)
			}
		}
	})
}

func TestOrganizationsAndKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cookie, csrf := e.signIn()
		post := func(target string, form url.Values) (int, string, *http.Response) {
			form.Set("csrf", csrf)
			return e.do(req{method: "POST", target: target, form: form, cookie: cookie})
		}
		code, _, res := post("/console/organizations", url.Values{"name": {`Acme "Ops" <b>`}, "external_id": {"acme-1"}})
		if code != http.StatusSeeOther {
			t.Fatalf("create: %d", code)
		}
		_, body, _ := e.do(req{method: "GET", target: res.Header.Get("Location"), cookie: cookie})
		if !strings.Contains(body, "Organization created.") || !strings.Contains(body, "Acme &#34;Ops&#34; &lt;b&gt;") {
			t.Fatalf("after create: %s", body)
		}
		post("/console/organizations", url.Values{"name": {"Beta Industries"}})
		page, err := e.st.ListOrganizations(context.Background(), store.ListParams{Limit: 10, Order: store.OrderAsc})
		if err != nil || len(page.Data) != 2 {
			t.Fatalf("organizations: %v %+v", err, page)
		}
		acme := page.Data[0]
		for _, c := range []struct {
			q    string
			want []string
		}{{"acme", []string{"Acme"}}, {"BETA", []string{"Beta"}}, {acme.ID, []string{"Acme"}}, {"acme-1", []string{"Acme"}}, {"nothing", nil}, {"", []string{"Acme", "Beta"}}} {
			_, body, _ := e.do(req{method: "GET", target: "/console/organizations?q=" + url.QueryEscape(c.q), cookie: cookie})
			rows := strings.Count(body, "<tr>") - 1 // the header
			if c.want == nil {
				rows = strings.Count(body, "<tr>")
			}
			if rows != len(c.want) {
				t.Errorf("q=%q: %d rows, want %v", c.q, rows, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("q=%q: %s missing", c.q, w)
				}
			}
		}
		bad := []struct {
			target string
			form   url.Values
			code   int
			field  string
		}{
			{"/console/organizations", url.Values{"name": {""}}, 400, "name"},
			{"/console/organizations", url.Values{"name": {strings.Repeat("x", 201)}}, 400, "name"},
			{"/console/organizations", url.Values{"name": {"a\x00b"}}, 400, "name"},
			{"/console/organizations", url.Values{"name": {"Dup"}, "external_id": {"acme-1"}}, 409, "external_id"},
			{"/console/keys", url.Values{"name": {""}, "scope": {"admin"}}, 400, "name"},
			{"/console/keys", url.Values{"name": {"k"}}, 400, "scope"},
			{"/console/keys", url.Values{"name": {"k"}, "scope": {"root"}}, 400, "scope"},
			{"/console/keys", url.Values{"name": {"k"}, "scope": {"admin"}, "organization_id": {"org_nope"}}, 400, "organization_id"},
			{"/console/keys", url.Values{"name": {"k"}, "scope": {"admin"}, "organization_id": {store.SystemOrganizationID}}, 400, "organization_id"},
			{"/console/organizations/org_nope/portal_link", url.Values{}, 404, ""},
			{"/console/organizations/" + store.SystemOrganizationID + "/portal_link", url.Values{}, 404, ""},
			{"/console/organizations/" + acme.ID + "/portal_link", url.Values{"intent": {"root"}}, 400, "intent"},
			{"/console/keys/key_nope/revoke", url.Values{}, 404, ""},
		}
		for _, c := range bad {
			code, body, _ := post(c.target, c.form)
			if code != c.code || !strings.Contains(body, c.field+": ") && c.field != "" {
				t.Errorf("POST %s %v: %d, want %d naming %q: %s", c.target, c.form, code, c.code, c.field, body)
			}
		}
		// A key: the secret is on the answer and works as a key's secret.
		code, body, _ = post("/console/keys", url.Values{"name": {"ingest"}, "scope": {"events:write", "events:read"}, "organization_id": {acme.ID}})
		m := regexp.MustCompile(`id="secret" readonly value="([^"]+)"`).FindStringSubmatch(body)
		if code != 200 || m == nil {
			t.Fatalf("create key: %d %s", code, body)
		}
		k, err := e.st.APIKeyByHash(context.Background(), sha256.Sum256([]byte(m[1])))
		if err != nil || k.Name != "ingest" || k.OrganizationID != acme.ID || !slices.Equal(k.Scopes, []string{"events:write", "events:read"}) {
			t.Fatalf("stored key %+v, %v", k, err)
		}
		_, body, _ = e.do(req{method: "GET", target: "/console/keys", cookie: cookie})
		if strings.Contains(body, m[1]) || !strings.Contains(body, k.ID) {
			t.Errorf("the key list shows the secret, or not the key")
		}
		if code, _, res := post("/console/keys/"+k.ID+"/revoke", url.Values{}); code != http.StatusSeeOther || res.Header.Get("Location") != "/console/keys?done=revoked" {
			t.Fatalf("revoke: %d", code)
		}
		if k, _ := e.st.APIKey(context.Background(), k.ID); k.RevokedAt.IsZero() {
			t.Error("the key is not revoked")
		}
		post("/console/keys/"+k.ID+"/revoke", url.Values{}) // again: nothing more happens
		code, body, _ = post("/console/organizations/"+acme.ID+"/portal_link", url.Values{"intent": {"log_streams"}})
		if code != 200 || !strings.Contains(body, "ptl_for_"+acme.ID+"_log_streams") {
			t.Fatalf("portal link: %d %s", code, body)
		}
		// Without the CSRF token, nothing happens.
		if code, _, _ := e.do(req{method: "POST", target: "/console/organizations", form: url.Values{"name": {"X"}}, cookie: cookie}); code != 403 {
			t.Errorf("create without the CSRF token: %d, want 403", code)
		}
		logs := func(org string) string { return org + "," + store.SystemOrganizationID }
		beta := page.Data[1].ID
		want := []string{"trail.console_session.started@org_system",
			"trail.organization.created@" + logs(acme.ID), "trail.organization.created@" + logs(beta),
			"trail.api_key.created@" + logs(acme.ID), "trail.api_key.revoked@" + logs(acme.ID),
			"trail.portal_link.generated@" + logs(acme.ID)}
		if got := e.actions(); !slices.Equal(got, want) {
			t.Errorf("audited\n%v\nwant\n%v", got, want)
		}
		for _, a := range e.audits {
			if a.Operator != "alice" {
				t.Errorf("%s by %q, want alice", a.Action, a.Operator)
			}
		}
	})
}

// consoleRoutes reads the console's route table from its sources.
func consoleRoutes(t *testing.T) []string {
	files, _ := filepath.Glob("*.go")
	re := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+ /console[^"]*)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// hostileRoutes covers every console route: a valid request's target and
// form; each field is then sent with every hostile value.
var hostileRoutes = map[string]struct {
	target string
	form   url.Values
}{
	"GET /console/assets/{name}":                   {target: "/console/assets/console.css"},
	"GET /console/launch":                          {target: "/console/launch?secret=csl_x"},
	"POST /console/launch":                         {target: "/console/launch", form: url.Values{"secret": {"csl_x"}, "csrf": {"x"}}},
	"GET /console/{$}":                             {target: "/console/"},
	"GET /console/organizations":                   {target: "/console/organizations?q=acme&after=org_x"},
	"POST /console/organizations":                  {target: "/console/organizations", form: url.Values{"name": {"N"}, "external_id": {"e"}}},
	"POST /console/organizations/{id}/portal_link": {target: "/console/organizations/{org}/portal_link", form: url.Values{"intent": {"audit_logs"}}},
	"GET /console/keys":                            {target: "/console/keys?after=key_x&done=revoked"},
	"POST /console/keys":                           {target: "/console/keys", form: url.Values{"name": {"k"}, "scope": {"admin"}, "organization_id": {"{org}"}}},
	"POST /console/keys/{id}/revoke":               {target: "/console/keys/{key}/revoke", form: url.Values{}},
	"POST /console/logout":                         {target: "/console/logout", form: url.Values{}},
	// The operations pages (operations_test.go).
	"GET /console/organizations/{id}/rate.svg":   {target: "/console/organizations/{org}/rate.svg"},
	"POST /console/organizations/{id}/retention": {target: "/console/organizations/{org}/retention", form: url.Values{"days": {"60"}}},
	"GET /console/schemas":                       {target: "/console/schemas?org={org}&after=a.b"},
	"GET /console/schemas/{action}":              {target: "/console/schemas/{action}?from=1&to=1&org={org}&done=created"},
	"POST /console/schemas/{action}":             {target: "/console/schemas/{action}", form: url.Values{"body": {`{"targets":[]}`}, "org": {"{org}"}, "preview": {"1"}, "save": {""}}},
	"GET /console/streams":                       {target: "/console/streams?org={org}&state=active&after=ls_x&done=paused"},
	"POST /console/streams/{id}/test":            {target: "/console/streams/{stream}/test", form: url.Values{}},
	"POST /console/streams/{id}/pause":           {target: "/console/streams/{stream}/pause", form: url.Values{}},
	"POST /console/streams/{id}/resume":          {target: "/console/streams/{stream}/resume", form: url.Values{}},
	"GET /console/integrity":                     {target: "/console/integrity?after=org_x"},
	"GET /console/system":                        {target: "/console/system"},
	// The events pages (events_test.go).
	"GET /console/events":                         {target: "/console/events?from=2026-01-01&to=2026-02-01&action=a.b&actor_id=u&actor_name=n&target_type=t&target_id=i&q=w&after=x"},
	"GET /console/events/{id}":                    {target: "/console/events/{org}"},
	"GET /console/organizations/{id}/events":      {target: "/console/organizations/{org}/events?from=2026-01-01&action=a.b&actor_id=u&q=w&before=x"},
	"GET /console/organizations/{id}/live":        {target: "/console/organizations/{org}/live?action=a.b&actor_id=u&q=w"},
	"GET /console/organizations/{id}/live/stream": {target: "/console/organizations/{org}/live/stream?action=a.b&actor_id=u&q=w"},
}

var hostileValues = []string{"", "\x00", "'; DROP TABLE organizations; --", "<script>alert(1)</script>", "%zz", strings.Repeat("é", 5000),
	"../../etc/passwd", "org_system", "\u202e", "-1", "9999999999999999999999"}

// TestHostileInput sends every hostile value in every field and path
// segment of every route: answers are 4xx or fine, never 5xx, on both
// backends.
func TestHostileInput(t *testing.T) {
	var routes []string
	for r := range hostileRoutes {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	if got := consoleRoutes(t); !slices.Equal(got, routes) {
		t.Fatalf("console routes %v\nhave specs for %v: every route needs one", got, routes)
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		cookie, csrf := e.signIn()
		now := e.c.cfg.Now()
		org := store.Organization{ID: access.NewOrganizationID(now), Name: "Acme", CreatedAt: now, UpdatedAt: now}
		if err := e.st.CreateOrganization(context.Background(), org); err != nil {
			t.Fatal(err)
		}
		ls, err := e.ops.manager.Create(context.Background(), org.ID, "webhook", "w", "now", []byte(`{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef0123"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.CreateSchema(context.Background(), store.Schema{Kind: store.SchemaKindAction, Name: "user.created", Body: []byte(`{"targets":[],"actor":{"metadata":{"type":"object","properties":{}}},"metadata":null}`), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		fill := strings.NewReplacer("{org}", org.ID, "{stream}", ls.ID, "{action}", "user.created").Replace
		n := 0
		for _, route := range routes {
			spec := hostileRoutes[route]
			method := strings.Fields(route)[0]
			send := func(target string, form url.Values, what string) {
				n++
				if form != nil && route != "POST /console/launch" && route != "POST /console/logout" {
					form.Set("csrf", csrf)
				}
				code, body, _ := e.do(req{method: method, target: fill(target), form: form, cookie: cookie})
				if code >= 500 {
					t.Errorf("%s %s: %d %s", route, what, code, body)
				}
			}
			target := spec.target
			if strings.Contains(target, "{key}") {
				key := store.APIKey{ID: access.NewKeyID(now), Name: "k", Prefix: "sk_", Scopes: []string{"admin"}, CreatedAt: now}
				key.Hash = sha256.Sum256([]byte(key.ID))
				if err := e.st.CreateAPIKey(context.Background(), key); err != nil {
					t.Fatal(err)
				}
				target = strings.ReplaceAll(target, "{key}", key.ID)
			}
			for _, v := range hostileValues {
				// In the path.
				for _, seg := range []string{"{org}", "{stream}", "{action}"} {
					if i := strings.Index(target, seg); i >= 0 && i < strings.IndexAny(target+"?", "?") {
						send(strings.Replace(target, seg, url.PathEscape(v), 1), clone(spec.form), "path="+v)
					}
				}
				// In the query.
				if u, err := url.Parse(target); err == nil && u.RawQuery != "" {
					for name := range u.Query() {
						q := u.Query()
						q.Set(name, v)
						send(u.Path+"?"+q.Encode(), clone(spec.form), name+"="+v)
					}
				}
				// In the form.
				for name := range spec.form {
					f := clone(spec.form)
					f.Set(name, v)
					send(target, f, name+"="+v)
				}
			}
			if route == "POST /console/logout" {
				continue
			}
			send(target, clone(spec.form), "valid")
		}
		t.Logf("%d hostile requests", n)
	})
}

func clone(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
