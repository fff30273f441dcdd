package portal

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
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

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/testclock"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// backend is a store the portal runs on.
type backend = store.Backend

// backends are the stores the portal's tests run against.
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

// forEachBackend runs f on a fresh env of each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, newEnvOn(t, b.open(t))) })
	}
}

type env struct {
	t       *testing.T
	st      backend
	p       *Portal
	clock   *clock
	in      *ledger.Integrator
	srv     *httptest.Server
	vkey    string
	audited []Action
	mu      sync.Mutex
}

// newEnv runs a portal on a real SQLite store with a real integrator.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, backends[0].open(t))
}

// newEnvOn runs a portal on st with a real integrator.
func newEnvOn(t *testing.T, st backend) *env {
	t.Helper()
	ctx := context.Background()
	skey, _, err := note.GenerateKey(rand.Reader, "portal.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ledger.NewIntegrator(st, signer, "portal.test/trail", ledger.Options{DataDir: t.TempDir(), Interval: time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	e := &env{t: t, st: st, in: in, vkey: signer.VerifierKey(), clock: &clock{now: testclock.Now(t)}}
	key := make([]byte, 32)
	e.p, err = New(Config{Store: st, Ledger: st, VerifierKey: signer.VerifierKey(), BaseURL: "http://portal.test",
		SessionKey: key, Now: e.clock.Now, Audit: func(r *http.Request, a Action) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.audited = append(e.audited, a)
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.p)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) org(id, name string) {
	e.t.Helper()
	if err := e.st.CreateOrganization(context.Background(), store.Organization{ID: id, Name: name, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// add appends events (raw event objects) to org, indexes and integrates
// them, and returns their ids.
func (e *env) add(org string, raws ...string) []string {
	e.t.Helper()
	var sub store.Submission
	for _, raw := range raws {
		d, err := event.ParseEvent([]byte(raw), e.clock.Now(), event.DefaultLimits())
		if err != nil {
			e.t.Fatalf("%v: %s", err, raw)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(e.clock.Now()), ReceivedAt: e.clock.Now(), Tail: d.Tail})
	}
	res, err := e.st.Append(context.Background(), []store.Submission{sub}, e.clock.Now())
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("Append: %v %v", err, res)
	}
	for {
		n, err := e.st.IndexPending(context.Background(), 10000)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.in.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, a := range res[0].Events {
		ids = append(ids, a.ID)
	}
	return ids
}

func ev(action, actor string, at time.Time) string {
	return fmt.Sprintf(`{"action":%q,"occurred_at":%q,"actor":{"id":%q,"type":"user"},"targets":[{"id":"t1","type":"team"}],"context":{"location":"203.0.113.7"}}`,
		action, at.Format(time.RFC3339Nano), actor)
}

// client is a browser-like client: it keeps cookies and does not follow
// redirects.
type client struct {
	t *testing.T
	e *env
	c *http.Client
	// user is the application's id of the admin the links open names
	// (external_user_id); "" for none.
	user string
}

func (e *env) client() *client {
	jar := &jar{}
	return &client{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values) response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == "POST" { // as a browser posting a form of the portal's own page
		req.Header.Set("Origin", c.e.srv.URL)
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func (c *client) get(path string) response { c.t.Helper(); return c.do("GET", path, nil) }

// cookie is the client's session cookie value ("" when none).
func (c *client) cookie() string {
	for _, ck := range c.c.Jar.Cookies(&url.URL{Path: "/portal/"}) {
		if ck.Name == cookieName {
			return ck.Value
		}
	}
	return ""
}

// open generates a link into org and opens it.
func (c *client) open(org string, admins ...string) response {
	c.t.Helper()
	link, _, err := c.e.p.GenerateLink(context.Background(), org, IntentAuditLogs, admins, c.user, "https://app.example.com/back")
	if err != nil {
		c.t.Fatal(err)
	}
	return c.launch(strings.TrimPrefix(link, "http://portal.test"))
}

var launchFields = regexp.MustCompile(`name="(secret|csrf)" value="([^"]+)"`)

// launch opens a link as a person does: GET shows the page with the
// button, and the button POSTs the form back. A page without the form
// (a rejected link) is the answer.
func (c *client) launch(path string) response {
	c.t.Helper()
	page := c.get(path)
	if page.status != http.StatusOK {
		return page
	}
	form := url.Values{}
	for _, m := range launchFields.FindAllStringSubmatch(page.body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if len(form) != 2 {
		c.t.Fatalf("the launch page of %s has no form:\n%s", path, page.body)
	}
	return c.do("POST", "/portal/launch", form)
}

// jar is a minimal cookie jar that ignores the cookie's Secure flag and
// domain (the test server is plain HTTP on 127.0.0.1).
type jar struct {
	mu sync.Mutex
	c  map[string]*http.Cookie
}

func (j *jar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.c == nil {
		j.c = map[string]*http.Cookie{}
	}
	for _, c := range cs {
		if c.MaxAge < 0 {
			delete(j.c, c.Name)
		} else {
			j.c[c.Name] = c
		}
	}
}

func (j *jar) Cookies(u *url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.c {
		if strings.HasPrefix(u.Path, c.Path) {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return out
}
