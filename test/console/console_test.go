// Package console_test drives the operator console of a real `trail serve`
// in a real headless Chromium (Debian's chromium, through chromedp): a
// `trail console link` is opened and signed in with, an organization is
// created, an API key is created (its secret shown once, and working) and
// revoked (and refused), an Admin Portal link is generated; the console's
// cookie opens neither the portal nor the API, and a portal session does
// not open the console.
//
// With TRAIL_UPDATE_SCREENSHOTS=1 it also writes a screenshot of each page,
// at laptop and phone widths, to docs/screenshots/.
package console_test

import (
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"io"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// consoleLink runs `trail console link` beside the server, as an operator
// would, and returns the link it prints.
func consoleLink(t *testing.T, srv *trailtest.Server, operator string) string {
	t.Helper()
	cmd := exec.Command(trailtest.Binary(t), "console", "link", "--data", srv.Data, "--url", srv.URL, "--operator", operator)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("trail console link: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^(http\S+/console/launch\?secret=csl_\S+)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("trail console link printed no link:\n%s", out)
	}
	return string(m[1])
}

// waitURL waits until the browser has navigated to want (a form's
// submission navigates after the click returns).
func waitURL(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := chromedp.Run(actx, chromedp.Location())
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser is at %s, want %s", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends a request with the given headers and returns the status and
// body.
func call(t *testing.T, method, u string, header http.Header, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitStatus polls until a request answers want (a revoked key is refused
// within seconds, on every replica).
func waitStatus(t *testing.T, method, u string, header http.Header, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := call(t, method, u, header, "")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: %d after 30s, want %d: %s", method, u, code, want, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browserCookie is the value of the browser's cookie name for u.
func browserCookie(t *testing.T, ctx context.Context, u, name string) string {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		t.Fatalf("reading the browser's cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("the browser has no %s cookie for %s", name, u)
	return ""
}

// portalSession opens an Admin Portal link as a browser would (its page,
// then its button) and returns the portal's session cookie.
func portalSession(t *testing.T, srv *trailtest.Server, link string) string {
	t.Helper()
	code, body := call(t, "GET", link, nil, "")
	secret := regexp.MustCompile(`name="secret" value="([^"]+)"`).FindStringSubmatch(body)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || secret == nil || csrf == nil {
		t.Fatalf("portal link page: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/portal/launch", strings.NewReader(url.Values{"secret": {secret[1]}, "csrf": {csrf[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == "trail_portal" {
			return c.Value
		}
	}
	t.Fatalf("opening the portal link: %d, no session cookie", res.StatusCode)
	return ""
}

func TestConsole(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	ctx := browsertest.New(t)

	link := consoleLink(t, srv, "ops@example.com")
	// The link's page only shows a button: opening it twice spends nothing.
	browsertest.Run(t, ctx, "open the console link", chromedp.Navigate(link), browsertest.Visible("#launch"), chromedp.Reload(), browsertest.Visible("#launch"))
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "ops@example.com") {
		t.Errorf("launch page: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "launch", true)
	browsertest.Run(t, ctx, "sign in", chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("#create-org"))
	if u := browsertest.Location(t, ctx); u != srv.URL+"/console/organizations" {
		t.Fatalf("after sign-in at %s", u)
	}
	// The link is spent.
	if code, _ := call(t, "GET", link, nil, ""); code != http.StatusGone {
		t.Errorf("the used link's page: %d, want 410", code)
	}

	// An organization.
	browsertest.Run(t, ctx, "create an organization",
		chromedp.SendKeys(chromedp.CSS("#name"), "Acme Corp"),
		chromedp.SendKeys(chromedp.CSS("#external_id"), "acme-42"),
		chromedp.Click(chromedp.CSS("#create-org")), browsertest.Visible("#done"))
	row := browsertest.Text(t, ctx, "#orgs tbody")
	org := regexp.MustCompile(`org_[0-9A-Z]{26}`).FindString(row)
	if !strings.Contains(row, "Acme Corp") || org == "" {
		t.Fatalf("the new organization's row: %q", row)
	}
	browsertest.Run(t, ctx, "search", chromedp.Navigate(srv.URL+"/console/organizations"), browsertest.Visible("#q"),
		chromedp.SendKeys(chromedp.CSS("#q"), "acme"), chromedp.Submit(chromedp.CSS("#q")))
	waitURL(t, ctx, srv.URL+"/console/organizations?q=acme")
	browsertest.Run(t, ctx, "search results", browsertest.Visible("#orgs"))
	if got := browsertest.Text(t, ctx, "#orgs tbody"); !strings.Contains(got, org) {
		t.Errorf("searching acme: %q", got)
	}
	browsertest.Screenshots(t, ctx, "console", "organizations", true)

	// An API key: created with its secret on the page, working, revoked.
	browsertest.Run(t, ctx, "create a key", chromedp.Navigate(srv.URL+"/console/keys"), browsertest.Visible("#create-key"),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "reader"),
		chromedp.Click(chromedp.CSS(`input[value="events:read"]`)),
		chromedp.SendKeys(chromedp.CSS("#key-org"), org),
		chromedp.Click(chromedp.CSS("#create-key")), browsertest.Visible("#secret"))
	secret := browsertest.Value(t, ctx, "#secret")
	keyID := regexp.MustCompile(`key_[0-9A-Z]{26}`).FindString(browsertest.Text(t, ctx, "main"))
	if !strings.HasPrefix(secret, "sk_") || keyID == "" {
		t.Fatalf("created key %q, secret %q", keyID, secret)
	}
	browsertest.Screenshots(t, ctx, "console", "keycreated", false)
	bearer := http.Header{"Authorization": {"Bearer " + secret}}
	events := srv.URL + "/v1/events?organization_id=" + org
	if code, body := call(t, "GET", events, bearer, ""); code != 200 {
		t.Fatalf("the new key reading its organization's events: %d %s", code, body)
	}
	browsertest.Run(t, ctx, "back to the keys", chromedp.Click(chromedp.CSS("#back")), browsertest.Visible("#row-"+keyID))
	if got := browsertest.Text(t, ctx, "#keys"); strings.Contains(got, secret) {
		t.Error("the key list shows the secret")
	}
	browsertest.Screenshots(t, ctx, "console", "keys", true)
	browsertest.Run(t, ctx, "revoke the key", chromedp.Click(chromedp.CSS("#row-"+keyID+" button")), browsertest.Visible("#done"))
	if got := browsertest.Text(t, ctx, "#row-"+keyID); !strings.Contains(got, "Revoked") {
		t.Errorf("the revoked key's row: %q", got)
	}
	waitStatus(t, "GET", events, bearer, http.StatusUnauthorized)

	// An Admin Portal link for the organization.
	browsertest.Run(t, ctx, "portal link", chromedp.Navigate(srv.URL+"/console/organizations?q="+org), browsertest.Visible("#orgs"),
		chromedp.Click(chromedp.CSS(`#orgs form[action$="/portal_link"] button`)), browsertest.Visible("#link"))
	portalLink := browsertest.Value(t, ctx, "#link")
	if !strings.HasPrefix(portalLink, srv.URL+"/portal/launch?secret=ptl_") {
		t.Fatalf("portal link %q", portalLink)
	}
	browsertest.Screenshots(t, ctx, "console", "portallink", false)

	// Isolation: the console's session opens neither the portal nor the
	// API; a portal session does not open the console.
	consoleCookie := browserCookie(t, ctx, srv.URL+"/console/", "trail_console")
	portalCookie := portalSession(t, srv, portalLink)
	for _, c := range []struct {
		name   string
		target string
		header http.Header
	}{
		{"console cookie on the portal", "/portal/events", http.Header{"Cookie": {"trail_console=" + consoleCookie}}},
		{"console cookie as the portal's", "/portal/events", http.Header{"Cookie": {"trail_portal=" + consoleCookie}}},
		{"console cookie as an API key", "/v1/events?organization_id=" + org, http.Header{"Authorization": {"Bearer " + consoleCookie}}},
		{"console cookie on the API", "/v1/events?organization_id=" + org, http.Header{"Cookie": {"trail_console=" + consoleCookie}}},
		{"portal cookie on the console", "/console/organizations", http.Header{"Cookie": {"trail_portal=" + portalCookie}}},
		{"portal cookie as the console's", "/console/organizations", http.Header{"Cookie": {"trail_console=" + portalCookie}}},
		{"portal cookie on console keys", "/console/keys", http.Header{"Cookie": {"trail_console=" + portalCookie, "trail_portal=" + portalCookie}}},
	} {
		if code, body := call(t, "GET", srv.URL+c.target, c.header, ""); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401: %.200s", c.name, code, body)
		}
	}
	if code, _ := call(t, "GET", srv.URL+"/console/organizations", http.Header{"Cookie": {"trail_console=" + consoleCookie}}, ""); code != 200 {
		t.Errorf("the console cookie itself: %d, want 200", code)
	}

	// The console's actions are in the organization's log, by the operator.
	waitStatus(t, "GET", srv.URL+"/v1/events?organization_id="+org+"&action=trail.portal_link.generated&actor_id=ops%40example.com",
		http.Header{"Authorization": {"Bearer " + srv.Key}}, 200)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := call(t, "GET", srv.URL+"/v1/events?organization_id="+org+"&actor_id=ops%40example.com", http.Header{"Authorization": {"Bearer " + srv.Key}}, "")
		if strings.Contains(body, "trail.portal_link.generated") && strings.Contains(body, "trail.api_key.revoked") && strings.Contains(body, "trail.organization.created") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console's actions are not in %s's log: %.500s", org, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Sign-out ends the session on the server: the cookie, replayed, is
	// refused.
	browsertest.Run(t, ctx, "sign out", chromedp.Navigate(srv.URL+"/console/keys"), browsertest.Visible("#create-key"),
		chromedp.Click(chromedp.CSS("#logout")), browsertest.Visible(".message"))
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "You have signed out") {
		t.Errorf("sign-out page: %q", got)
	}
	if code, _ := call(t, "GET", srv.URL+"/console/organizations", http.Header{"Cookie": {"trail_console=" + consoleCookie}}, ""); code != http.StatusUnauthorized {
		t.Errorf("the console cookie after sign-out: %d, want 401", code)
	}
	browsertest.Run(t, ctx, "after sign-out", chromedp.Navigate(srv.URL+"/console/organizations"), browsertest.Visible("main"))
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "Sign-in needed") {
		t.Errorf("after sign-out: %q", got)
	}
}
