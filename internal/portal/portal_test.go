package portal

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/testclock"
)

func TestLinks(t *testing.T) {
	e := newEnv(t)
	e.org("org_a", "Acme")
	c := e.client()
	link, expires, err := e.p.GenerateLink(t.Context(), "org_a", IntentAuditLogs, []string{"alice@example.com"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^http://portal\.test/portal/launch\?secret=ptl_[A-Za-z0-9_-]{43}$`).MatchString(link) {
		t.Errorf("link %q", link)
	}
	if !expires.Equal(e.clock.Now().Add(5 * time.Minute)) {
		t.Errorf("expires %v, want 5 minutes from now", expires)
	}
	path := strings.TrimPrefix(link, "http://portal.test")
	// Opening the link (a scanner, a chat preview, the admin) shows a page
	// naming the organization with one button, and spends nothing, however
	// often it is opened.
	for range 3 {
		res := e.client().get(path)
		if res.status != 200 || !strings.Contains(res.body, "Acme") || !strings.Contains(res.body, `<button type="submit"`) ||
			!strings.Contains(res.body, `action="/portal/launch"`) || strings.Contains(res.header.Get("Set-Cookie"), "trail_portal=") {
			t.Fatalf("GET of the link: %d %s", res.status, res.body)
		}
	}
	if len(e.audited) != 0 {
		t.Errorf("opening the link's page was audited as a session start: %+v", e.audited)
	}
	res := c.launch(path)
	if res.status != 303 || res.header.Get("Location") != "/portal/events" {
		t.Fatalf("opening the link: %d to %q, want 303 to /portal/events", res.status, res.header.Get("Location"))
	}
	cookie := res.header.Get("Set-Cookie")
	for _, want := range []string{"trail_portal=", "Path=/portal", "Max-Age=43200", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("cookie %q is Secure on an http portal", cookie)
	}
	if res := c.get("/portal/events"); res.status != 200 || !strings.Contains(res.body, "Acme") {
		t.Fatalf("events after the link: %d", res.status)
	}
	if len(e.audited) != 1 || e.audited[0].Action != "trail.portal_session.started" || e.audited[0].Admin != "alice@example.com" || e.audited[0].OrganizationID != "org_a" {
		t.Errorf("audited %+v, want the session start by alice in org_a", e.audited)
	}

	expired, _, _ := e.p.GenerateLink(t.Context(), "org_a", IntentAuditLogs, nil, "", "")
	e.clock.Add(5 * time.Minute)
	tests := []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"reused", path, 410, "This link was already used"},
		{"expired", strings.TrimPrefix(expired, "http://portal.test"), 410, "This link has expired"},
		{"forged", "/portal/launch?secret=ptl_" + strings.Repeat("A", 43), 404, "This link is not valid"},
		{"malformed", "/portal/launch?secret=ptl_short", 400, "This link is not valid"},
		{"twice", "/portal/launch?secret=a&secret=b", 400, "This link is not valid"},
		{"none", "/portal/launch", 400, "This link is not valid"},
		{"hostile", "/portal/launch?secret=%3Cscript%3Ealert(1)%3C/script%3E", 400, "This link is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.client().get(tt.path)
			if res.status != tt.status || !strings.Contains(res.body, tt.want) {
				t.Errorf("GET %s: %d %q…, want %d with %q", tt.path, res.status, firstLine(res.body), tt.status, tt.want)
			}
			if strings.Contains(res.header.Get("Set-Cookie"), "trail_portal=") {
				t.Errorf("a rejected link set a session cookie")
			}
		})
	}
	// The expired link's session would have been the other one: the
	// session from the first link still works until it expires.
	e.clock.Add(12*time.Hour - 5*time.Minute - time.Second)
	if res := c.get("/portal/events"); res.status != 200 {
		t.Errorf("session before its 12 hours: %d", res.status)
	}
	e.clock.Add(time.Second)
	if res := c.get("/portal/events"); res.status != 401 || !strings.Contains(res.body, "Your session has ended") {
		t.Errorf("session after 12 hours: %d", res.status)
	}
}

// The POST that spends a link must come from the launch page of this
// portal, for this link: a forged cross-site form, or one without the
// link's token, is refused and spends nothing.
func TestLaunchForgery(t *testing.T) {
	e := newEnv(t)
	e.org("org_a", "Acme")
	link, _, err := e.p.GenerateLink(t.Context(), "org_a", IntentAuditLogs, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := e.p.GenerateLink(t.Context(), "org_a", IntentAuditLogs, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(link, "http://portal.test/portal/launch?secret=")
	hash, _ := parseToken(secret)
	otherHash, _ := parseToken(strings.TrimPrefix(other, "http://portal.test/portal/launch?secret="))
	good := e.p.launchToken(hash)
	tests := []struct {
		name    string
		headers map[string]string
		csrf    string
		status  int
	}{
		{"no origin", map[string]string{}, good, 403},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": e.srv.URL}, good, 403},
		{"same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, good, 403},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, good, 403},
		{"null origin", map[string]string{"Origin": "null"}, good, 403},
		{"no token", map[string]string{"Origin": e.srv.URL}, "", 403},
		{"another link's token", map[string]string{"Origin": e.srv.URL}, e.p.launchToken(otherHash), 403},
		{"the public URL's origin", map[string]string{"Origin": "http://portal.test"}, good, 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"secret": {secret}, "csrf": {tt.csrf}}
			req, _ := http.NewRequest("POST", e.srv.URL+"/portal/launch", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Errorf("POST: %d, want %d", res.StatusCode, tt.status)
			}
			if got := strings.Contains(res.Header.Get("Set-Cookie"), "trail_portal="); got != (tt.status == 303) {
				t.Errorf("session cookie set: %v", got)
			}
		})
	}
	// Each refusal left the link unspent: the last case could still use it.
	if res := e.client().get(strings.TrimPrefix(link, "http://portal.test")); res.status != 410 {
		t.Errorf("the link after its one good POST: %d, want 410", res.status)
	}
}

func firstLine(s string) string {
	if i := strings.Index(s, "<h1"); i >= 0 {
		s = s[i:]
	}
	return truncate(s, 80)
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t)
	s := &session{Version: sessionVersion, Org: "org_a", OrgName: "A", Intent: IntentAuditLogs, ID: "0123456789abcdef",
		Expires: e.clock.Now().Add(time.Hour).Unix(), Link: strings.Repeat("ab", 32)}
	good := e.p.encodeSession(s)
	other := *e.p
	other.cfg.SessionKey = []byte(strings.Repeat("k", 32))
	with := func(change func(*session)) string {
		c := *s
		change(&c)
		return e.p.encodeSession(&c)
	}
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"good", good, true},
		{"another key", other.encodeSession(s), false},
		{"version 1 (no link)", with(func(c *session) { c.Version, c.Link = 1, "" }), false},
		{"no link", with(func(c *session) { c.Link = "" }), false},
		{"short link", with(func(c *session) { c.Link = c.Link[2:] }), false},
		{"link not hex", with(func(c *session) { c.Link = strings.Repeat("zz", 32) }), false},
		{"altered", strings.Replace(good, good[3:4], string(good[3]^1), 1), false},
		{"no signature", strings.Split(good, ".")[0], false},
		{"empty", "", false},
		{"long", strings.Repeat("a", 5000), false},
	}
	for _, tt := range tests {
		got, err := e.p.decodeSession(tt.value, e.clock.Now())
		if (err == nil) != tt.ok || tt.ok && *got != *s {
			t.Errorf("%s: %+v, %v", tt.name, got, err)
		}
	}
	if _, err := e.p.decodeSession(good, e.clock.Now().Add(time.Hour)); err != errExpiredSession {
		t.Errorf("expired session: %v", err)
	}
}

// TestIsolation opens org A's session and tries every route with org B's
// ids: each answers as if B's things did not exist.
func TestIsolation(t *testing.T) { forEachBackend(t, testIsolation) }

func testIsolation(t *testing.T, e *env) {
	e.org("org_a", "Acme")
	e.org("org_b", "Beta")
	now := e.clock.Now()
	idsA := e.add("org_a", ev("a.only", "user_a", now.Add(-time.Hour)))
	idsB := e.add("org_b", ev("b.secret", "user_b", now.Add(-time.Hour)), ev("b.secret", "user_b", now.Add(-30*time.Minute)))
	c := e.client()
	c.open("org_a")
	tests := []struct {
		path       string
		status     int
		mustNot    []string
		mustHave   []string
		secretHere bool
	}{
		{"/portal/events", 200, []string{"b.secret", "user_b", "org_b"}, []string{"a.only"}, false},
		{"/portal/events?action=b.secret", 200, []string{"user_b", idsB[0]}, []string{"No events match"}, false},
		{"/portal/events?actor_id=user_b", 200, []string{idsB[0]}, []string{"No events match"}, false},
		{"/portal/events?q=user_b", 200, []string{idsB[0]}, []string{"No events match"}, false},
		{"/portal/events?organization_id=org_b", 200, []string{"b.secret"}, []string{"a.only"}, false},
		{"/portal/events/" + idsB[0], 404, []string{"b.secret", "user_b"}, []string{"Event not found"}, false},
		{"/portal/events/" + idsA[0], 200, []string{"b.secret"}, []string{"a.only", "Included in the signed log"}, false},
		{"/portal/integrity", 200, []string{"org_b"}, []string{"org_a", "Events covered"}, false},
		{"/portal/integrity/checkpoint", 200, []string{"org_b"}, []string{"portal.test/trail/org_a\n1\n"}, false},
		{"/portal/integrity/bundle", 200, []string{"b.secret", "org_b"}, []string{"a.only"}, false},
		{"/portal/streams", 404, nil, []string{"Page not found"}, false},
	}
	for _, tt := range tests {
		res := c.get(tt.path)
		if res.status != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, res.status, tt.status)
		}
		for _, s := range tt.mustNot {
			if strings.Contains(res.body, s) {
				t.Errorf("GET %s with org A's session shows %q", tt.path, s)
			}
		}
		for _, s := range tt.mustHave {
			if !strings.Contains(res.body, s) {
				t.Errorf("GET %s lacks %q", tt.path, s)
			}
		}
	}
	// The histogram counts A's events only: one bar of 1.
	res := c.get("/portal/events/histogram.svg?from=" + url.QueryEscape(now.Add(-2*time.Hour).Format("2006-01-02T15:04")) + "&to=" + url.QueryEscape(now.Format("2006-01-02T15:04")))
	if res.status != 200 || !strings.Contains(res.body, "<title>1 event,") {
		t.Errorf("histogram: %d %s", res.status, truncate(res.body, 300))
	}
	// Without a session nothing is served.
	anon := e.client()
	for _, p := range []string{"/portal/events", "/portal/events/" + idsA[0], "/portal/integrity", "/portal/integrity/bundle", "/portal/events/histogram.svg", "/portal/"} {
		if res := anon.get(p); res.status != 401 || strings.Contains(res.body, "a.only") {
			t.Errorf("GET %s without a session: %d", p, res.status)
		}
	}
}

func TestSecurityHeadersAndEscaping(t *testing.T) {
	e := newEnv(t)
	e.org("org_a", `Acme <script>alert("org")</script>`)
	hostile := `{"action":"x.y","occurred_at":"` + testclock.Format(e.clock.Now().Add(-time.Hour)) + `","actor":{"id":"u\"><script>alert(1)</script>","type":"user","name":"\u202eevil \u05e9\u05dc\u05d5\u05dd"},"targets":[],"context":{"location":"<img src=x onerror=alert(2)>"},"metadata":{"a":"</pre><script>alert(3)</script>","b":"` + strings.Repeat("L", 500) + `"}}`
	ids := e.add("org_a", hostile)
	c := e.client()
	c.open("org_a")
	for _, p := range []string{"/portal/events", "/portal/events/" + ids[0], "/portal/integrity"} {
		res := c.get(p)
		if res.status != 200 {
			t.Fatalf("GET %s: %d", p, res.status)
		}
		csp := res.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %s", p, csp, want)
			}
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" || res.header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: headers %v", p, res.header)
		}
		if strings.Contains(res.body, "<script>alert") || strings.Contains(res.body, "<img src=x") {
			t.Errorf("GET %s: unescaped markup from event data in the page", p)
		}
		if strings.Contains(res.body, "<script>") && !regexp.MustCompile(`<script src="/portal/assets/portal\.[0-9a-f]{12}\.js" defer></script>`).MatchString(res.body) {
			t.Errorf("GET %s: a script other than the portal's own", p)
		}
		// Every resource the page loads is the portal's own.
		for _, m := range regexp.MustCompile(`(?:src|<link[^>]*href)="([^"]*)"`).FindAllStringSubmatch(res.body, -1) {
			if !strings.HasPrefix(m[1], "/portal/") {
				t.Errorf("GET %s loads %q, not one of the portal's own resources", p, m[1])
			}
		}
	}
	// Assets: hashed URLs, immutable.
	res := c.get("/portal/events")
	css := regexp.MustCompile(`/portal/assets/portal\.[0-9a-f]{12}\.css`).FindString(res.body)
	if a := c.get(css); a.status != 200 || !strings.Contains(a.header.Get("Cache-Control"), "immutable") || !strings.HasPrefix(a.header.Get("Content-Type"), "text/css") {
		t.Errorf("GET %s: %d %v", css, a.status, a.header)
	}
	if a := c.get("/portal/assets/portal.css"); a.status != 404 {
		t.Errorf("unhashed asset name: %d", a.status)
	}
}

func TestLogoutNeedsCSRF(t *testing.T) {
	e := newEnv(t)
	e.org("org_a", "Acme")
	c := e.client()
	c.open("org_a", "alice@example.com", "bob@example.com")
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}} {
		if res := c.do("POST", "/portal/logout", form); res.status != 403 {
			t.Errorf("logout with csrf %q: %d, want 403", form.Get("csrf"), res.status)
		}
	}
	page := c.get("/portal/events").body
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if token == nil {
		t.Fatal("no CSRF token in the page")
	}
	res := c.do("POST", "/portal/logout", url.Values{"csrf": {token[1]}})
	if res.status != 200 || !strings.Contains(res.body, "You have signed out") || !strings.Contains(res.body, `href="https://app.example.com/back"`) {
		t.Errorf("logout: %d", res.status)
	}
	if res := c.get("/portal/events"); res.status != 401 {
		t.Errorf("after logout: %d", res.status)
	}
	last := e.audited[len(e.audited)-1]
	if last.Action != "trail.portal_session.ended" || last.Admin != "alice@example.com" || last.Metadata["admin_emails"] != "alice@example.com,bob@example.com" {
		t.Errorf("audited %+v", last)
	}
}

func TestEventsPage(t *testing.T) { forEachBackend(t, testEventsPage) }

func testEventsPage(t *testing.T, e *env) {
	e.org("org_a", "Acme")
	now := e.clock.Now()
	var raws []string
	for i := range 120 {
		raws = append(raws, ev([]string{"user.signed_in", "team.deleted", "invoice.paid"}[i%3], "user_"+string(rune('a'+i%5)), now.Add(-time.Duration(i)*time.Minute)))
	}
	e.add("org_a", raws...)
	// day is the clock's date; the events of it, a page of them at most,
	// are what a whole-day filter shows wherever the clock stands.
	day, ofDay := now.Format("2006-01-02"), 0
	for i := range 120 {
		if now.Add(-time.Duration(i)*time.Minute).Format("2006-01-02") == day {
			ofDay++
		}
	}
	c := e.client()
	c.open("org_a")
	rows := regexp.MustCompile(`<tr>\s*<td class="time"`)
	tests := []struct {
		query  string
		status int
		rows   int
		want   []string
	}{
		{"", 200, 50, []string{`rel="next"`, `<input type="checkbox" name="action" value="invoice.paid">`, `<details class="filters-box">`}},
		{"?action=team.deleted", 200, 40, []string{`<input type="checkbox" name="action" value="team.deleted" checked>`, `<details class="filters-box" open data-active>`}},
		{"?trail=only", 200, 0, []string{"No events match these filters."}},
		{"?trail=hide&action=team.deleted", 200, 40, []string{`value="hide" checked`}},
		{"?trail=sometimes", 400, 0, []string{`is not a choice`}},
		{"?action=team.deleted&action=invoice.paid", 200, 50, []string{`rel="next"`}},
		{"?actor_id=user_b&action=user.signed_in", 200, 8, nil},
		{"?from=" + now.Add(-10*time.Minute).Format("2006-01-02T15:04") + "&to=" + now.Add(-5*time.Minute).Format("2006-01-02T15:04"), 200, 5, nil},
		{"?from=" + day + "&to=" + day, 200, min(ofDay, 50), nil}, // a whole day
		{"?target_type=team&target_id=t1", 200, 50, nil},
		{"?from=yesterday", 400, 0, []string{"is not a date", `<input id="f-from" name="from" type="text" step="1" value="yesterday" placeholder="YYYY-MM-DDTHH:MM" aria-invalid="true" aria-describedby="f-from-err">`, `<p class="field-error" id="f-from-err">`}},
		{"?from=" + day + "T12:00&to=" + day + "T11:00", 400, 0, []string{"From must be before To"}},
		{"?after=bogus", 400, 0, []string{"page cursor is not valid"}},
		{"?after=a&before=b", 400, 0, []string{"not both"}},
		{"?q=" + strings.Repeat("x", 600), 400, 0, []string{"longer than 500"}},
		{"?actor_id=%00", 400, 0, []string{"control characters", `id="f-actor-id-err"`}},
		{"?actor_id=%ff", 400, 0, []string{"not valid text"}},
		{"?actor_id=a&actor_id=b", 400, 0, []string{"given 2 times"}},
	}
	for _, tt := range tests {
		res := c.get("/portal/events" + tt.query)
		n := len(rows.FindAllString(res.body, -1))
		if res.status != tt.status || n != tt.rows {
			t.Errorf("GET /portal/events%s: %d with %d rows, want %d with %d", truncate(tt.query, 60), res.status, n, tt.status, tt.rows)
		}
		for _, w := range tt.want {
			if !strings.Contains(res.body, w) {
				t.Errorf("GET /portal/events%s lacks %q", truncate(tt.query, 60), w)
			}
		}
	}
	// Paging through everything, newest first, visits each event once.
	seen := map[string]bool{}
	path := "/portal/events"
	link := regexp.MustCompile(`href="(/portal/events\?after=[^"]+)" rel="next"`)
	ids := regexp.MustCompile(`href="/portal/events/(evt_[0-9A-Z]+)"`)
	for path != "" {
		body := c.get(path).body
		for _, m := range ids.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Fatalf("event %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := link.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 120 {
		t.Errorf("paging saw %d events, want 120", len(seen))
	}
}

func TestBuckets(t *testing.T) {
	base := testclock.Now(t).Truncate(time.Minute)
	tests := []struct {
		span     time.Duration
		step     time.Duration
		maxCount int
	}{
		{30 * time.Minute, time.Minute, 31},
		{24 * time.Hour, 30 * time.Minute, 49},
		{7 * 24 * time.Hour, 3 * time.Hour, 57},
		{365 * 24 * time.Hour, 7 * 24 * time.Hour, 54},
		{100 * 365 * 24 * time.Hour, 2 * 365 * 24 * time.Hour, 60},
		{time.Millisecond, time.Minute, 1},
	}
	for _, tt := range tests {
		start, step, n := buckets(base, base.Add(tt.span))
		if step != tt.step || n > tt.maxCount || n < 1 || start.After(base) || start.Add(time.Duration(n)*step).Before(base.Add(tt.span)) {
			t.Errorf("buckets over %s: start %s step %s n %d; want step %s, n ≤ %d covering the range", tt.span, start, step, n, tt.step, tt.maxCount)
		}
	}
}

// TestDownloadsVerify checks the integrity page's downloads the way an
// auditor would: the bundle verifies offline with the verifier key.
func TestDownloadsVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.org("org_a", "Acme")
		e.org("org_b", "Beta")
		now := e.clock.Now()
		var raws []string
		for i := range 300 {
			raws = append(raws, ev("user.signed_in", "u", now.Add(-time.Duration(i)*time.Second)))
		}
		e.add("org_a", raws...)
		e.add("org_b", ev("b.secret", "u", now))
		c := e.client()
		c.open("org_a")
		if got := c.get("/portal/integrity/trail.vkey"); got.status != 200 || strings.TrimSpace(got.body) != e.vkey {
			t.Fatalf("verifier key download: %d %q", got.status, got.body)
		}
		res := c.get("/portal/integrity/bundle")
		if res.status != 200 || !strings.Contains(res.header.Get("Content-Disposition"), `filename="org_a.bundle"`) {
			t.Fatalf("bundle download: %d %v", res.status, res.header)
		}
		rep, err := ledger.Verify(strings.NewReader(res.body), e.vkey, ledger.VerifyOptions{})
		if err != nil || !rep.OK() || !strings.Contains(rep.String(), "300 events of org_a") {
			t.Fatalf("verify: %v\n%s", err, rep.String())
		}
		if c.get("/portal/integrity/nothing").status != 404 {
			t.Errorf("unknown download: want 404")
		}
	})
}

// Sessions end on the server: a cookie replayed after its admin signed out,
// or after the organization's sessions were revoked, is refused; a link
// generated before the revocation and not opened yet is refused too.
func TestSessionsEndOnTheServer(t *testing.T) { forEachBackend(t, testSessionsEndOnTheServer) }

func testSessionsEndOnTheServer(t *testing.T, e *env) {
	e.org("org_a", "Acme")
	e.org("org_b", "Beta")
	replay := func(cookie string) response {
		t.Helper()
		c := e.client()
		c.c.Jar.SetCookies(nil, []*http.Cookie{{Name: cookieName, Value: cookie, Path: "/portal"}})
		return c.get("/portal/events")
	}
	const ended = "This portal session was signed out or revoked."

	// Sign-out.
	c := e.client()
	c.open("org_a", "alice@example.com")
	cookie := c.cookie()
	if res := replay(cookie); res.status != 200 {
		t.Fatalf("the session's cookie in another client before sign-out: %d", res.status)
	}
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(c.get("/portal/events").body)
	if token == nil {
		t.Fatal("no CSRF token in the page")
	}
	if res := c.do("POST", "/portal/logout", url.Values{"csrf": {token[1]}}); res.status != 200 {
		t.Fatalf("logout: %d", res.status)
	}
	if res := replay(cookie); res.status != 401 || !strings.Contains(res.body, ended) {
		t.Errorf("the cookie replayed after sign-out: %d %s", res.status, firstLine(res.body))
	}

	// Revocation: org A's open session and unopened link end; org B's
	// session does not.
	a, b := e.client(), e.client()
	a.open("org_a")
	b.open("org_b")
	pending, _, err := e.p.GenerateLink(context.Background(), "org_a", IntentAuditLogs, nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.p.EndSessions(context.Background(), "org_a")
	if err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v; want 2 (one session, one link), nil", n, err)
	}
	if res := a.get("/portal/events"); res.status != 401 || !strings.Contains(res.body, ended) {
		t.Errorf("org A's session after the revocation: %d", res.status)
	}
	if res := b.get("/portal/events"); res.status != 200 {
		t.Errorf("org B's session after org A's revocation: %d", res.status)
	}
	if res := e.client().get(strings.TrimPrefix(pending, "http://portal.test")); res.status != 410 || !strings.Contains(res.body, "This link was revoked") {
		t.Errorf("a link generated before the revocation: %d", res.status)
	}
	// Access is not withdrawn for good: a new link opens a new session.
	if res := a.open("org_a"); res.status != 303 {
		t.Fatalf("a new link after the revocation: %d", res.status)
	}
	if res := a.get("/portal/events"); res.status != 200 {
		t.Errorf("the new session: %d", res.status)
	}
}

// TestRevokeUserLinks ends one admin's sessions and unopened links (WorkOS's
// revoke_link) on both backends: that admin's, in that organization only;
// the admin's external_user_id is the actor id of what the session does.
func TestRevokeUserLinks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const ended = "This portal session was signed out or revoked."
		e.org("org_a", "Acme")
		e.org("org_b", "Beta")
		alice, bob, unnamed, aliceB := e.client(), e.client(), e.client(), e.client()
		alice.user, bob.user, aliceB.user = "user_alice", "user_bob", "user_alice"
		for _, c := range []struct {
			c   *client
			org string
		}{{alice, "org_a"}, {bob, "org_a"}, {unnamed, "org_a"}, {aliceB, "org_b"}} {
			if res := c.c.open(c.org, "it@example.com"); res.status != 303 {
				t.Fatalf("opening a link of %s for %q: %d", c.org, c.c.user, res.status)
			}
		}
		pending, _, err := e.p.GenerateLink(context.Background(), "org_a", IntentAuditLogs, nil, "user_alice", "")
		if err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		var started *Action
		for i := range e.audited {
			if a := &e.audited[i]; a.Action == "trail.portal_session.started" && a.OrganizationID == "org_a" && a.AdminID == "user_alice" {
				started = a
			}
		}
		e.mu.Unlock()
		if started == nil || started.Admin != "it@example.com" {
			t.Errorf("alice's session start was not audited with her external_user_id as the admin id: %+v", started)
		}

		n, err := e.p.RevokeLinks(context.Background(), "org_a", "user_alice")
		if err != nil || n != 2 {
			t.Fatalf("RevokeLinks = %d, %v; want 2 (one session, one link), nil", n, err)
		}
		for _, tt := range []struct {
			name   string
			c      *client
			status int
		}{
			{"alice in org A", alice, 401},
			{"bob in org A", bob, 200},
			{"an unnamed admin of org A", unnamed, 200},
			{"alice in org B", aliceB, 200},
		} {
			if res := tt.c.get("/portal/events"); res.status != tt.status || (tt.status == 401 && !strings.Contains(res.body, ended)) {
				t.Errorf("%s after revoking alice in org A: %d, want %d", tt.name, res.status, tt.status)
			}
		}
		if res := e.client().get(strings.TrimPrefix(pending, "http://portal.test")); res.status != 410 || !strings.Contains(res.body, "This link was revoked") {
			t.Errorf("alice's unopened link after the revocation: %d", res.status)
		}
		if res := alice.open("org_a"); res.status != 303 {
			t.Errorf("a new link for alice after the revocation: %d", res.status)
		}
	})
}
