package portal_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/trailaudit/trail/internal/browsertest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// emulate runs an Emulation command.
func emulate[P any, R any](t *testing.T, ctx context.Context, what string, cmd cdp.Command[P, R], p P) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(cctx, cmd, p); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// openPortal opens a fresh link of org in ctx's browser.
func openPortal(t *testing.T, ctx context.Context, srv *trailtest.Server, org string) {
	t.Helper()
	browsertest.Run(t, ctx, "open a link", chromedp.Navigate(generateLink(t, srv, org, []string{"alice@example.com"})), browsertest.Visible("#launch"),
		chromedp.Click(chromedp.CSS("#launch")), browsertest.Visible("table.events"))
}

// firstRowVisible reports where the events table's first row ends and the
// viewport's height.
func firstRowBottom(t *testing.T, ctx context.Context) (bottom, height float64) {
	t.Helper()
	got := browsertest.Eval[[]float64](t, ctx, `[document.querySelector("table.events tbody tr").getBoundingClientRect().bottom, window.innerHeight]`)
	return got[0], got[1]
}

// TestPortalViewer drives the events page as its readers meet it: the
// first row on the first screen at laptop and phone sizes, dark and light,
// in German and English, in the viewer's time zone with UTC a click away,
// and by keyboard alone.
func TestPortalViewer(t *testing.T) {
	f := setup(t)
	ctx := browsertest.New(t)
	openPortal(t, ctx, f.srv, f.orgA)

	t.Run("EventsFirst", func(t *testing.T) {
		for _, v := range []struct {
			name          string
			width, height int64
			mobile        bool
		}{{"laptop", 1280, 900, false}, {"phone", 390, 844, true}} {
			opts := []chromedp.EmulateViewportOption{}
			if v.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
			}
			browsertest.Run(t, ctx, "resize", chromedp.EmulateViewport(v.width, v.height, opts...), chromedp.Navigate(f.srv.URL+"/portal/events"),
				browsertest.Visible("table.events tbody tr"))
			bottom, height := firstRowBottom(t, ctx)
			t.Logf("%s: the first row ends at %.0f px of %.0f", v.name, bottom, height)
			if bottom <= 0 || bottom > height {
				t.Errorf("%s: the first event row ends at %.0f px, below the first screen (%.0f px)", v.name, bottom, height)
			}
			if open := browsertest.Eval[bool](t, ctx, `document.querySelector("details.filters-box").open`); open {
				t.Errorf("%s: the filters are open with none set", v.name)
			}
			// The sign-out button is on one line.
			if lines := browsertest.Eval[float64](t, ctx, `(() => { const b = document.querySelector("button.signout"); return Math.round(b.getBoundingClientRect().height / parseFloat(getComputedStyle(b).lineHeight)); })()`); lines > 1 {
				t.Errorf("%s: Sign out wraps onto %.0f lines", v.name, lines)
			}
			// The histogram's labels are drawn at least 10 px high.
			scale := browsertest.Eval[float64](t, ctx, `(() => { const i = document.querySelector(".histogram img"); return i.getBoundingClientRect().width / i.naturalWidth; })()`)
			if scale*12 < 10 {
				t.Errorf("%s: the histogram is drawn at %.2f of its size: its 12px labels are %.1f px", v.name, scale, scale*12)
			}
			if v.mobile {
				h := browsertest.Eval[float64](t, ctx, `document.querySelector("table.events tbody tr").getBoundingClientRect().height`)
				if h > 140 {
					t.Errorf("phone: an event card is %.0f px tall, want at most 140", h)
				}
			}
		}
		browsertest.Run(t, ctx, "laptop", chromedp.EmulateViewport(1280, 900))
		// An invalid value stays in its field, the message beside it.
		browsertest.Run(t, ctx, "bad filter", chromedp.Navigate(f.srv.URL+"/portal/events?from=yesterday"), browsertest.Visible("#f-from-err"))
		if v := browsertest.Eval[string](t, ctx, `document.getElementById("f-from").value`); v != "yesterday" {
			t.Errorf("the invalid From field holds %q, want what was typed", v)
		}
	})

	t.Run("TrailEvents", func(t *testing.T) {
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events?trail=only"), browsertest.Visible("table.events"))
		body := browsertest.Text(t, ctx, "table.events")
		if !strings.Contains(body, "access to this log") || strings.Contains(body, "key_") || strings.Contains(body, "api_key") {
			t.Errorf("Trail's own events: %q; want them grouped, without key ids", body)
		}
		// The provider's rows name no address (a portal admin's keep the
		// admin's own).
		if where := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("tr.trail")].filter(r => r.textContent.includes("provider")).map(r => r.querySelector("td.where").textContent.trim())`); len(where) == 0 || strings.Join(where, "") != "" {
			t.Errorf("the provider's rows show addresses %q", where)
		}
		if !strings.Contains(body, "The application's provider") {
			t.Errorf("the organization's creation is not shown as done by the provider: %q", body)
		}
		browsertest.Run(t, ctx, "hidden", chromedp.Navigate(f.srv.URL+"/portal/events?trail=hide"), browsertest.Visible("table.events"))
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("table.events tr.trail").length`); n != 0 {
			t.Errorf("%d of Trail's events shown with them hidden", n)
		}
	})

	t.Run("TimeZone", func(t *testing.T) {
		// São Paulo: three hours behind UTC all year.
		emulate(t, ctx, "time zone", emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/Sao_Paulo"})
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("#zone-toggle"))
		if z := browsertest.Text(t, ctx, "#zone-name"); !strings.Contains(z, "America/Sao_Paulo") {
			t.Errorf("zone shown: %q, want America/Sao_Paulo", z)
		}
		first := browsertest.Eval[[]string](t, ctx, `(() => { const t = document.querySelector("table.events tbody time"); return [t.textContent, t.getAttribute("datetime")]; })()`)
		at, err := time.Parse(time.RFC3339Nano, first[1])
		if err != nil {
			t.Fatal(err)
		}
		local := at.In(time.FixedZone("BRT", -3*3600))
		if !strings.Contains(first[0], local.Format("15:04")) {
			t.Errorf("first time %q, want the São Paulo time %s", first[0], local.Format("15:04"))
		}
		browsertest.Run(t, ctx, "to UTC", chromedp.Click(chromedp.CSS("#zone-toggle")))
		if z := browsertest.Text(t, ctx, "#zone-name"); z != "UTC" {
			t.Errorf("after the toggle the zone is %q, want UTC", z)
		}
		if txt := browsertest.Text(t, ctx, "table.events tbody time"); !strings.Contains(txt, at.UTC().Format("15:04")) {
			t.Errorf("UTC time %q, want %s", txt, at.UTC().Format("15:04"))
		}
		// Remembered across pages, and back.
		browsertest.Run(t, ctx, "reload", chromedp.Reload(), browsertest.Visible("#zone-toggle"))
		if z := browsertest.Text(t, ctx, "#zone-name"); z != "UTC" {
			t.Errorf("after a reload the zone is %q, want UTC (remembered)", z)
		}
		browsertest.Run(t, ctx, "to local", chromedp.Click(chromedp.CSS("#zone-toggle")))
		emulate(t, ctx, "time zone", emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "UTC"})
	})

	t.Run("Keyboard", func(t *testing.T) {
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("details.filters-box summary"))
		tabTo := func(sel string) {
			t.Helper()
			for range 60 {
				if browsertest.Eval[bool](t, ctx, `document.activeElement && document.activeElement.matches(`+fmt.Sprintf("%q", sel)+`)`) {
					return
				}
				browsertest.Run(t, ctx, "tab", chromedp.KeyEvent("\t"))
			}
			t.Fatalf("Tab never reached %s; at %s", sel, browsertest.Eval[string](t, ctx, `document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : "nothing"`))
		}
		tabTo("details.filters-box summary")
		browsertest.Run(t, ctx, "open the filters", chromedp.KeyEvent("\r"), browsertest.Visible("#f-action-search"))
		tabTo("#f-action-search")
		browsertest.Run(t, ctx, "find an action", chromedp.KeyEvent("invoice.pa"), chromedp.KeyEvent("\r"))
		if !browsertest.Eval[bool](t, ctx, `document.querySelector('#f-actions input[value="invoice.paid"]').checked`) {
			t.Fatalf("Enter in the action search did not choose the one action left")
		}
		if u := browsertest.Location(t, ctx); u != f.srv.URL+"/portal/events" {
			t.Fatalf("Enter in the action search sent the form: %s", u)
		}
		tabTo("form.filters button[type=submit]")
		browsertest.Run(t, ctx, "apply", chromedp.KeyEvent("\r"))
		if u := waitURL(t, ctx, func(u string) bool { return strings.Contains(u, "action=") }); !strings.HasSuffix(u, "/portal/events?action=invoice.paid") {
			t.Errorf("keyboard filtering went to %s", u)
		}
	})

	t.Run("DarkTheme", func(t *testing.T) {
		emulate(t, ctx, "dark", emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("table.events"))
		if bg := browsertest.Eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(2, 6, 23)" {
			t.Errorf("dark theme background %s", bg)
		}
		if src := browsertest.Eval[string](t, ctx, `document.querySelector(".histogram img").currentSrc`); !strings.Contains(src, "theme=dark") {
			t.Errorf("dark theme histogram %s", src)
		}
		browsertest.Screenshots(t, ctx, "portal", "events-dark", true)
		emulate(t, ctx, "light", emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
		browsertest.Run(t, ctx, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("table.events"))
		if bg := browsertest.Eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(248, 250, 252)" {
			t.Errorf("light theme background %s", bg)
		}
	})

	t.Run("German", func(t *testing.T) {
		de := browsertest.New(t)
		emulate(t, de, "German", emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome", AcceptLanguage: "de-DE,de"})
		openPortal(t, de, f.srv, f.orgA)
		if h := browsertest.Text(t, de, "main h1"); h != "Ereignisse" {
			t.Errorf("with Accept-Language de the heading is %q", h)
		}
		if lang := browsertest.Eval[string](t, de, `document.documentElement.lang`); lang != "de" {
			t.Errorf("html lang %q", lang)
		}
		browsertest.Screenshots(t, de, "portal", "events-de", true)
		// What the server fills in is German too: a filter's error stays
		// beside the value typed, in the page's language.
		browsertest.Run(t, de, "bad date", chromedp.Navigate(f.srv.URL+"/portal/events?from=yesterday"), browsertest.Visible("#f-from-err"))
		if msg := browsertest.Text(t, de, "#f-from-err"); !strings.Contains(msg, `Von "yesterday" ist kein Datum`) {
			t.Errorf("German filter error %q", msg)
		}
		if msg := browsertest.Text(t, de, ".alert.error"); strings.Contains(msg, "is not a date") {
			t.Errorf("the list of problems is English: %q", msg)
		}
		browsertest.Run(t, de, "events", chromedp.Navigate(f.srv.URL+"/portal/events"), browsertest.Visible("table.events"))
		emulate(t, de, "dark", emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		browsertest.Screenshots(t, de, "portal", "events-de-dark", true)
		// The language picker overrides the browser's, and is remembered.
		browsertest.Run(t, de, "English", chromedp.Click(chromedp.CSS(`.langs a[lang="en"]`)), browsertest.Visible("table.events"))
		if h := browsertest.Text(t, de, "main h1"); h != "Events" {
			t.Errorf("after choosing English the heading is %q", h)
		}
		browsertest.Run(t, de, "reload", chromedp.Reload(), browsertest.Visible("table.events"))
		if h := browsertest.Text(t, de, "main h1"); h != "Events" {
			t.Errorf("English is not remembered: %q", h)
		}
	})
}

// TestPortalEmbedded: an application's page on another origin shows the
// portal in an iframe. The portal allows that origin in frame-ancestors,
// the link opens the session inside the frame (its cookie partitioned to
// the application's site), and the host page's embed.js, under a strict
// CSP of the host's own, sizes the frame from the portal's messages and
// ignores anyone else's.
func TestPortalEmbedded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostOrigin := "http://localhost:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	srv := trailtest.Start(t, trailtest.Options{Args: []string{"--portal-frame-origins", hostOrigin, "--vendor-name", "Example Cloud"}})
	org := createOrg(t, srv, "Embedded Corp")
	for i := range 40 {
		sendEvent(t, srv, org, map[string]any{"action": "user.signed_in", "occurred_at": time.Now().UTC().Add(-time.Duration(i) * time.Minute).Format(time.RFC3339),
			"actor": map[string]any{"id": fmt.Sprintf("user_%d", i), "type": "user"}, "targets": []any{}, "context": map[string]any{"location": "203.0.113.7"}})
	}
	waitSearchable(t, srv, org, 41)
	link := generateLink(t, srv, org, []string{"alice@example.com"})
	host := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The host page's own strict CSP: scripts from the portal only,
		// no inline code, no inline style.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src "+srv.URL+"; frame-src "+srv.URL+"; style-src 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>Acme app</title><script src="%s/portal/embed.js" defer></script></head>
<body><main><h1>Acme app settings</h1><iframe id="portal" src="%s" data-trail-portal title="Audit log" width="1000" height="300"></iframe></main></body></html>`, srv.URL, link)
	})}}
	host.Start()
	t.Cleanup(host.Close)

	// The portal's own answer names the host in frame-ancestors.
	res, err := http.Get(srv.URL + "/portal/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors "+hostOrigin+";") || res.Header.Get("X-Frame-Options") != "" {
		t.Errorf("CSP %q, X-Frame-Options %q; want the host allowed", csp, res.Header.Get("X-Frame-Options"))
	}

	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, "host page", chromedp.Navigate(hostOrigin+"/"), browsertest.Visible("#portal"))
	// The frame grows to the events page's height: the session works
	// inside it.
	var h float64
	for range 150 {
		h = browsertest.Eval[float64](t, ctx, `Number(document.getElementById("portal").getAttribute("data-trail-portal-height") || 0)`)
		if h > 1500 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h <= 1500 {
		t.Fatalf("the embedded portal reported a height of %.0f px; want the events page's (over 1500)", h)
	}
	if css := browsertest.Eval[float64](t, ctx, `document.getElementById("portal").getBoundingClientRect().height`); css < 1500 {
		t.Errorf("the iframe is %.0f px tall; embed.js did not size it", css)
	}
	// A message from anything but the frame's window, or from its window
	// but another origin, is ignored (dispatched synchronously, so the
	// listener has run when the expression returns).
	for _, forged := range []string{
		`{data: {type: "trail-portal:height", height: 250}, origin: "` + srv.URL + `", source: window}`,
		`{data: {type: "trail-portal:height", height: 250}, origin: "https://evil.example", source: document.getElementById("portal").contentWindow}`,
	} {
		got := browsertest.Eval[float64](t, ctx, `(() => { window.dispatchEvent(new MessageEvent("message", `+forged+`)); return document.getElementById("portal").getBoundingClientRect().height; })()`)
		if got < 1500 {
			t.Errorf("a forged message %s resized the frame to %.0f px", forged, got)
		}
	}
	browsertest.Screenshots(t, ctx, "portal", "embedded", false) // a reload would present the spent link again
}
