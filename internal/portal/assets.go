package portal

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/webauth"
)

//go:embed assets
var embedded embed.FS

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

func parseTemplates(a *assets) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"commas":   commas,
		"bytes":    byteSize,
	}
	out := map[string]*template.Template{}
	for _, name := range pages {
		t, err := template.New(name).Funcs(funcs).ParseFS(embedded, "assets/templates/layout.tmpl", "assets/templates/"+name+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("portal: template %s: %w", name, err)
		}
		if t.Lookup("layout") == nil || t.Lookup("content") == nil {
			return nil, fmt.Errorf("portal: template %s must define layout and content", name)
		}
		out[name] = t
	}
	return out, nil
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
