package portal

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// TestAccentContrast: whatever accent a deployment or an organization
// sets, the stylesheet the portal serves for it gives text in the accent,
// and text on accent buttons, a WCAG contrast of at least 4.5:1 against
// every background of both themes; an accent that already has it is kept.
func TestAccentContrast(t *testing.T) {
	vars := regexp.MustCompile(`--accent: #([0-9a-f]{6}); --accent-strong: #[0-9a-f]{6}; --on-accent: #([0-9a-f]{6});`)
	for _, tt := range []struct {
		accent string
		kept   bool // the light theme's accent is the one given
	}{
		{"#1d4ed8", true}, {"#0a7e3b", true}, {"#ffff00", false}, {"#ffffff", false}, {"#000000", true},
		{"#777777", false}, {"#ff6600", false}, {"7c3aed", true},
	} {
		t.Run(tt.accent, func(t *testing.T) {
			c, err := parseHex(tt.accent)
			if err != nil {
				t.Fatal(err)
			}
			css := accentCSS(c)
			m := vars.FindAllStringSubmatch(css, -1)
			if len(m) != 2 {
				t.Fatalf("stylesheet without both themes' variables:\n%s", css)
			}
			for i, theme := range []struct {
				name string
				bgs  []rgb
			}{{"light", lightBackgrounds}, {"dark", darkBackgrounds}} {
				accent, _ := parseHex(m[i][1])
				on, _ := parseHex(m[i][2])
				for _, bg := range theme.bgs {
					if r := contrast(accent, bg); r < minContrast {
						t.Errorf("%s theme: accent #%s on #%s has contrast %.2f, want ≥ %.1f", theme.name, accent.hex(), bg.hex(), r, minContrast)
					}
				}
				if r := contrast(on, accent); r < minContrast {
					t.Errorf("%s theme: button text #%s on #%s has contrast %.2f", theme.name, on.hex(), accent.hex(), r)
				}
			}
			if got := m[0][1] == c.hex(); got != tt.kept {
				t.Errorf("light accent #%s from #%s: kept = %v, want %v", m[0][1], c.hex(), got, tt.kept)
			}
		})
	}
	// WCAG's own reference points.
	if r := contrast(rgb{0, 0, 0}, rgb{255, 255, 255}); r < 20.99 || r > 21.01 {
		t.Errorf("black on white: %.3f, want 21", r)
	}
	for _, bad := range []string{"", "#12345", "#ggg000", "red", "#1234567", "url(x)"} {
		if _, err := parseHex(bad); err == nil {
			t.Errorf("parseHex(%q) accepted", bad)
		}
		if err := CheckBrand(Brand{Accent: bad}); bad != "" && err == nil {
			t.Errorf("CheckBrand accent %q accepted", bad)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // joined by " "; "error" for a refusal
	}{
		{"", ""},
		{"https://app.example.com", "https://app.example.com"},
		{"https://App.Example.com:8443/, https://app.example.com:8443 http://localhost:3000", "https://app.example.com:8443 http://localhost:3000"},
		{"http://127.0.0.1:5173", "http://127.0.0.1:5173"},
		{"http://app.example.com", "error"},
		{"https://*.example.com", "error"},
		{"https://app.example.com/path", "error"},
		{"https://user:pw@app.example.com", "error"},
		{"javascript:alert(1)", "error"},
		{"app.example.com", "error"},
		{"https://a.example.com'; script-src *", "error"},
		{"'self'", "error"},
		{"*", "error"},
	} {
		got, err := ParseOrigins(tt.in)
		if tt.want == "error" {
			if err == nil {
				t.Errorf("ParseOrigins(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("ParseOrigins(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestCatalogsComplete: every message the templates translate is in every
// shipped language's catalog, so no page shows half a language.
func TestCatalogsComplete(t *testing.T) {
	keyRE := regexp.MustCompile(`\{\{-?\s*T "((?:[^"\\]|\\.)*)"|\(T "((?:[^"\\]|\\.)*)"`)
	files, err := fs.Glob(embedded, "assets/templates/*.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	// Texts that reach a template as data and are translated there with
	// tr (the launch page's "Open the %s").
	keys := map[string]string{"audit log": "launch.tmpl", "log streams": "launch.tmpl"}
	for _, file := range files {
		f := strings.TrimSuffix(path.Base(file), ".tmpl")
		b, err := embedded.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			k := m[1] + m[2]
			var s string
			if err := json.Unmarshal([]byte(`"`+k+`"`), &s); err != nil {
				t.Fatalf("%s: key %q: %v", f, k, err)
			}
			keys[s] = f + ".tmpl"
		}
	}
	if len(keys) < 50 || len(files) == 0 {
		t.Fatalf("found %d messages in the templates; the pattern is broken", len(keys))
	}
	// Messages Go code translates: the stream destinations' labels and
	// help, the stream form's messages, titles that carry a value.
	for _, k := range goMessages() {
		if _, ok := keys[k]; !ok {
			keys[k] = "Go code (goMessages)"
		}
	}
	// Every literal the portal's Go code translates (T, tr, msg, label),
	// and the stream settings checks' formats the stream form shows.
	for k, where := range sourceMessages(t) {
		if _, ok := keys[k]; !ok {
			keys[k] = where
		}
	}
	locales, err := fs.Glob(embedded, "assets/locales/*.json")
	if err != nil || len(locales) == 0 {
		t.Fatalf("no locale files: %v", err)
	}
	for _, lf := range locales {
		b, _ := embedded.ReadFile(lf)
		var msgs map[string]string
		if err := json.Unmarshal(b, &msgs); err != nil {
			t.Fatalf("%s: %v", lf, err)
		}
		for k, f := range keys {
			if _, ok := msgs[k]; !ok {
				t.Errorf("%s lacks %q (from %s)", lf, k, f)
			}
		}
		for k, v := range msgs {
			if strings.Count(k, "%") != strings.Count(v, "%") {
				t.Errorf("%s: %q → %q: the verbs differ", lf, k, v)
			}
		}
	}
}

// sourceMessages finds the messages Go code hands to the catalogs as
// literals: in this package, the first argument of T, tr and msg, the
// value of a label, and the heading and text of a message page; in package stream (internal/stream), the formats of
// its settings checks (errs.add, errs.required, fieldError) and of the
// policy's refusals of an address (refused), which the stream form
// translates; in package streamadmin, the messages of the
// field errors it makes itself. A message added there without a German
// entry fails TestCatalogsComplete.
func sourceMessages(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	name := func(e ast.Expr) string {
		switch f := e.(type) {
		case *ast.Ident:
			return f.Name
		case *ast.SelectorExpr:
			return f.Sel.Name
		}
		return ""
	}
	for _, dir := range []string{".", "../stream", "../streamadmin"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					fn := name(n.Fun)
					arg := -1
					switch {
					case dir == "." && (fn == "T" || fn == "tr" || fn == "msg" || fn == "label"):
						arg = 0
					case dir == "." && fn == "message" && len(n.Args) == 5:
						// p.message(w, r, status, heading, text)
						for _, a := range n.Args[3:] {
							if s, ok := lit(a); ok {
								out[s] = fset.Position(n.Pos()).String()
							}
						}
					case dir == "../stream" && fn == "add":
						arg = 2
					case dir == "../stream" && fn == "fieldError":
						arg = 2
					case dir == "../stream" && fn == "refused":
						arg = 0
					case dir == "../stream" && fn == "required" && len(n.Args) == 2:
						if s, ok := lit(n.Args[1]); ok {
							out["config.%s is required: "+s+"."] = fset.Position(n.Pos()).String()
						}
					}
					if arg >= 0 && len(n.Args) > arg {
						if s, ok := lit(n.Args[arg]); ok {
							out[s] = fset.Position(n.Pos()).String()
						}
					}
				case *ast.CompositeLit:
					// streamadmin's own stream.FieldError{…, Message: "…"},
					// and the portal's messageData{Heading: "…", Text: "…"}.
					fields := map[string]bool{}
					switch {
					case dir == "../streamadmin" && name(n.Type) == "FieldError":
						fields["Message"] = true
					case dir == "." && name(n.Type) == "messageData":
						fields["Heading"], fields["Text"] = true, true
					}
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok && fields[name(kv.Key)] {
							if s, ok := lit(kv.Value); ok {
								out[s] = fset.Position(n.Pos()).String()
							}
						}
					}
				}
				return true
			})
		}
	}
	if len(out) < 50 {
		t.Fatalf("found %d messages in Go code; the search is broken", len(out))
	}
	return out
}

func TestLanguageChoice(t *testing.T) {
	ls, err := loadLocales()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		accept, cookie, want string
	}{
		{"", "", "en"},
		{"de-DE,de;q=0.9,en;q=0.8", "", "de"},
		{"de-AT", "", "de"},
		{"fr-FR,fr;q=0.9", "", "en"},
		{"fr-FR,de;q=0.5", "", "de"},
		{"de", "en", "en"},
		{"en", "de", "de"},
		{"en", "xx", "en"},
		{"*;q=0,\x00", "", "en"},
	} {
		r := httptest.NewRequest("GET", "/portal/events", nil)
		r.Header.Set("Accept-Language", tt.accept)
		if tt.cookie != "" {
			r.AddCookie(&http.Cookie{Name: langCookie, Value: tt.cookie})
		}
		if got := ls.pick(r).Code; got != tt.want {
			t.Errorf("Accept-Language %q, cookie %q: %s, want %s", tt.accept, tt.cookie, got, tt.want)
		}
	}
}

func TestViewer(t *testing.T) { forEachBackend(t, testViewer) }

// testViewer: the events page in German, Trail's own events shown as the
// vendor's and filtered, actions by their schema's display name, the
// histogram following the filters, the brand and the framing allowlist of
// the deployment and of the organization.
func testViewer(t *testing.T, e *env) {
	ctx := context.Background()
	e.org("org_a", "Acme")
	e.org("org_b", "Beta")
	e.p.cfg.VendorName = "Example Cloud"
	e.p.cfg.Schemas = e.st
	now := e.clock.Now()
	if _, err := e.st.CreateSchema(ctx, store.Schema{Kind: store.SchemaKindAction, Name: "member.role_changed",
		Body: []byte(`{"targets":[],"display_name":"Role changed","description":"A member's role changed.","actor":{"metadata":{"type":"object","properties":{}}}}`)}); err != nil {
		t.Fatal(err)
	}
	vendor := `{"action":"trail.portal_link.generated","occurred_at":%q,"actor":{"id":"key_01SECRETKEY","type":"api_key","name":"bootstrap admin"},"targets":[{"id":"org_a","type":"organization"}],"context":{"location":"127.0.0.1"},"metadata":{"request_id":"req_123"}}`
	ids := e.add("org_a",
		ev("member.role_changed", "user_a", now.Add(-3*time.Minute)),
		ev("invoice.paid", "user_b", now.Add(-2*time.Minute)),
		strings.Replace(vendor, "%q", `"`+now.Add(-time.Minute).Format(time.RFC3339Nano)+`"`, 1))
	c := e.client()
	c.open("org_a", "alice@example.com")
	rows := regexp.MustCompile(`<tr(?: class="trail")?>\s*<td class="time"`)
	for _, tt := range []struct {
		name, path string
		rows       int
		want, not  []string
	}{
		{"all", "/portal/events", 3,
			[]string{"Example Cloud", "access to this log", "Role changed", `<code class="action" dir="auto">member.role_changed</code>`},
			[]string{"key_01SECRETKEY", "127.0.0.1", "bootstrap admin"}},
		{"hidden", "/portal/events?trail=hide", 2, []string{"Role changed"}, []string{"Example Cloud"}},
		{"only", "/portal/events?trail=only", 1, []string{"Example Cloud"}, []string{"user_a"}},
		{"only, of the chosen", "/portal/events?trail=only&action=invoice.paid", 0, []string{"No events match"}, nil},
		{"detail", "/portal/events/" + ids[2], 0, []string{"Example Cloud", "Portal link generated"}, []string{"key_01SECRETKEY", "127.0.0.1", "req_123", "bootstrap admin"}},
		{"detail of the application's event", "/portal/events/" + ids[0], 0, []string{"Role changed", "A member&#39;s role changed.", "user_a"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := c.get(tt.path)
			if res.status != http.StatusOK {
				t.Fatalf("GET %s: %d", tt.path, res.status)
			}
			if n := len(rows.FindAllString(res.body, -1)); n != tt.rows {
				t.Errorf("GET %s: %d rows, want %d", tt.path, n, tt.rows)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.body, w) {
					t.Errorf("GET %s lacks %q", tt.path, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(res.body, w) {
					t.Errorf("GET %s shows %q", tt.path, w)
				}
			}
		})
	}

	t.Run("HistogramFollowsFilters", func(t *testing.T) {
		bars := regexp.MustCompile(`<title>[^<]*: (\d+) events?</title>`)
		count := func(path string) int {
			res := c.get(path)
			if res.status != http.StatusOK || res.header.Get("Content-Type") != "image/svg+xml" {
				t.Fatalf("GET %s: %d %s", path, res.status, res.body)
			}
			n := 0
			for _, m := range bars.FindAllStringSubmatch(res.body, -1) {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
			return n
		}
		for _, tt := range []struct {
			query string
			want  int
		}{
			{"", 3}, {"?action=invoice.paid", 1}, {"?trail=hide", 2}, {"?actor_id=user_a", 1},
			{"?actor_id=nobody", 0}, {"?trail=only&size=phone&theme=dark", 1},
		} {
			if got := count("/portal/events/histogram.svg" + tt.query); got != tt.want {
				t.Errorf("histogram%s counts %d events, want %d", tt.query, got, tt.want)
			}
		}
		page := c.get("/portal/events?action=invoice.paid")
		if !strings.Contains(page.body, `/portal/events/histogram.svg?action=invoice.paid`) {
			t.Errorf("the filtered page's histogram does not carry the filter")
		}
	})

	t.Run("German", func(t *testing.T) {
		res := c.do("GET", "/portal/events?lang=de&action=invoice.paid", nil)
		if res.status != http.StatusSeeOther || res.header.Get("Location") != "/portal/events?action=invoice.paid" {
			t.Fatalf("?lang=de: %d to %q", res.status, res.header.Get("Location"))
		}
		page := c.get("/portal/events")
		for _, w := range []string{`<html lang="de">`, "<h1>Ereignisse</h1>", "Zugriff auf dieses Protokoll", "Abmelden"} {
			if !strings.Contains(page.body, w) {
				t.Errorf("German page lacks %q", w)
			}
		}
		for _, tt := range []struct{ path, want string }{
			{"/portal/integrity", "Das Protokoll selbst prüfen"},
		} {
			if page := c.get(tt.path); page.status != http.StatusOK || !strings.Contains(page.body, tt.want) {
				t.Errorf("German %s: %d, lacks %q", tt.path, page.status, tt.want)
			}
		}
		// The filter's messages, beside the field and in the list, and
		// the histogram's answer to a bad filter.
		for _, tt := range []struct{ path, want, not string }{
			{"/portal/events?from=yesterday", `<p class="field-error" id="f-from-err">Von &#34;yesterday&#34; ist kein Datum`, "is not a date"},
			{"/portal/events?from=2026-01-02&to=2026-01-01", "Von muss vor Bis liegen.", "must be before"},
			{"/portal/events?actor_id=a&actor_id=b", "Akteur-ID ist 2-mal angegeben", "is given"},
			{"/portal/events/histogram.svg?from=yesterday", `Von "yesterday" ist kein Datum`, "is not a date"},
		} {
			page := c.get(tt.path)
			if page.status != http.StatusBadRequest || !strings.Contains(page.body, tt.want) || strings.Contains(page.body, tt.not) {
				t.Errorf("German %s: %d, want %q without %q in:\n%.600s", tt.path, page.status, tt.want, tt.not, page.body)
			}
		}
		// Message pages, with the values they name.
		for _, tt := range []struct {
			path   string
			status int
			want   string
		}{
			{"/portal/events/evt_nope", http.StatusNotFound, "Im Audit-Protokoll von"},
			{"/portal/nowhere", http.StatusNotFound, "Diese Seite gibt es im Admin-Portal nicht."},
		} {
			if page := c.get(tt.path); page.status != tt.status || !strings.Contains(page.body, tt.want) {
				t.Errorf("German %s: %d, want %d and %q", tt.path, page.status, tt.status, tt.want)
			}
		}
		c.do("GET", "/portal/events?lang=en", nil)
		if page := c.get("/portal/events?from=yesterday"); !strings.Contains(page.body, `From &#34;yesterday&#34; is not a date`) {
			t.Errorf("back in English: the filter's message is not English")
		}
		if page := c.get("/portal/events"); !strings.Contains(page.body, "<h1>Events</h1>") {
			t.Errorf("back in English: no English heading")
		}
	})

	t.Run("BrandAndFraming", func(t *testing.T) {
		res := c.get("/portal/events")
		if res.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(res.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("no allowlist: X-Frame-Options %q, CSP %q", res.header.Get("X-Frame-Options"), res.header.Get("Content-Security-Policy"))
		}
		e.p.cfg.FrameOrigins = []string{"https://app.example.com"}
		if err := e.st.SetPortalSettings(ctx, store.PortalSettings{OrganizationID: "org_a", ProductName: "Acme Audit",
			Accent: "#ffff00", FrameOrigins: []string{"https://intranet.acme.example"}, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		res = c.get("/portal/events")
		csp := res.header.Get("Content-Security-Policy")
		if res.header.Get("X-Frame-Options") != "" || !strings.Contains(csp, "frame-ancestors https://app.example.com https://intranet.acme.example;") {
			t.Errorf("with allowlists: X-Frame-Options %q, CSP %q", res.header.Get("X-Frame-Options"), csp)
		}
		for _, w := range []string{"Acme Audit", `<link rel="stylesheet" href="/portal/brand/accent-ffff00.css">`} {
			if !strings.Contains(res.body, w) {
				t.Errorf("branded page lacks %q", w)
			}
		}
		css := c.get("/portal/brand/accent-ffff00.css")
		if css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || strings.Contains(css.body, "\n:root { --accent: #ffff00") {
			t.Errorf("accent stylesheet: %d %q %s", css.status, css.header.Get("Content-Type"), css.body)
		}
		if bad := c.get("/portal/brand/accent-zzz.css"); bad.status != http.StatusNotFound {
			t.Errorf("bad accent stylesheet: %d", bad.status)
		}
		// Another organization's session gets neither.
		other := e.client()
		other.open("org_b")
		res = other.get("/portal/events")
		if strings.Contains(res.header.Get("Content-Security-Policy"), "intranet.acme.example") || strings.Contains(res.body, "Acme Audit") {
			t.Errorf("org B's page carries org A's settings")
		}
	})
}

// TestCookieAttributes: a portal opened top-level keeps its Lax cookie; one
// opened inside an iframe gets SameSite=None; Secure; Partitioned, the only
// cookie a browser sends back to a frame of another site, kept in that
// site's partition.
func TestCookieAttributes(t *testing.T) {
	for _, tt := range []struct {
		name             string
		base, dest       string
		secure, part     bool
		sameSite         http.SameSite
		wantHeaderSubstr string
	}{
		{"top-level, http", "http://portal.test", "document", false, false, http.SameSiteLaxMode, "SameSite=Lax"},
		{"top-level, https", "https://portal.test", "document", true, false, http.SameSiteLaxMode, "Secure; SameSite=Lax"},
		{"framed", "https://portal.test", "iframe", true, true, http.SameSiteNoneMode, "Secure; SameSite=None; Partitioned"},
		{"framed on localhost", "http://localhost:8080", "iframe", true, true, http.SameSiteNoneMode, "SameSite=None; Partitioned"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Portal{secure: strings.HasPrefix(tt.base, "https:")} // all the cookie needs
			r := httptest.NewRequest("POST", "/portal/launch", nil)
			r.Header.Set("Sec-Fetch-Dest", tt.dest)
			c := p.cookie(r, cookieName, "v", 60)
			if c.Secure != tt.secure || c.Partitioned != tt.part || c.SameSite != tt.sameSite || !c.HttpOnly || c.Path != "/portal" {
				t.Errorf("cookie %+v", c)
			}
			if h := c.String(); !strings.Contains(h, tt.wantHeaderSubstr) {
				t.Errorf("Set-Cookie %q lacks %q", h, tt.wantHeaderSubstr)
			}
		})
	}
}
