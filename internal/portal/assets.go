package portal

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/webauth"
)

//go:embed assets
var embedded embed.FS

// datetimeLocal is the form of <input type="datetime-local">'s values.
var datetimeLocal = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$`)

// assets are the static files, each served at /portal/assets/<name>.<hash>.<ext>
// where hash is the start of its SHA-256 (webauth.Assets).
type assets = webauth.Assets

func loadAssets() (*assets, error) {
	a, err := webauth.LoadAssets(embedded, "assets/static", "/portal/assets/")
	if err != nil {
		return nil, fmt.Errorf("portal: assets: %w", err)
	}
	return a, nil
}

func (p *Portal) serveAsset(w http.ResponseWriter, r *http.Request) {
	p.assets.Serve(w, r, r.PathValue("name"))
}

// pages are the templates, each parsed with the layout.
var pages = []string{"message", "launch", "events", "event", "live", "integrity", "export", "streams", "stream", "streamform", "streamdelete"}

// templates are the pages, parsed once per shipped language: each copy's
// T and num write that language (i18n.go).
type templates map[string]map[string]*template.Template // language code → page → template

func parseTemplates(a *assets, ls *locales) (templates, error) {
	funcs := template.FuncMap{
		"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"commas":   commas,
		"bytes":    byteSize,
		"field":    newFieldView,
		"T":        fmt.Sprintf,
		"tr":       func(s string) string { return s },
	}
	base := map[string]*template.Template{}
	for _, name := range pages {
		t, err := template.New(name).Funcs(funcs).ParseFS(embedded, "assets/templates/layout.tmpl", "assets/templates/"+name+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("portal: template %s: %w", name, err)
		}
		if t.Lookup("layout") == nil || t.Lookup("content") == nil {
			return nil, fmt.Errorf("portal: template %s must define layout and content", name)
		}
		base[name] = t
	}
	out := templates{}
	for _, l := range ls.list {
		out[l.Code] = map[string]*template.Template{}
		for name, t := range base {
			c, err := t.Clone()
			if err != nil {
				return nil, fmt.Errorf("portal: template %s (%s): %w", name, l.Code, err)
			}
			c.Funcs(template.FuncMap{
				"T":      l.T,
				"tr":     l.tr,
				"commas": func(n int64) string { return l.p.Sprint(n) },
			})
			out[l.Code][name] = c
		}
	}
	return out, nil
}

// fieldView is one text field of a filter form: its value as typed and
// the message of its problem ("" when it has none).
type fieldView struct {
	Name, ID, Label, Value, Error string
	// Local: the value fits <input type="datetime-local">, which a browser
	// would otherwise empty (a date field with another value is text).
	Local bool
}

func newFieldView(name, label, value, problem string) fieldView {
	return fieldView{Name: name, ID: "f-" + strings.ReplaceAll(name, "_", "-"), Label: label, Value: value, Error: problem,
		Local: problem == "" && (value == "" || datetimeLocal.MatchString(value))}
}

// commas writes n with thousands separators: 1,204,331.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// byteSize writes n bytes for people: 512 B, 14.2 KB, 3.1 MB.
func byteSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
