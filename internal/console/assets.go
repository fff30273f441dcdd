package console

import (
	"embed"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/webauth"
)

//go:embed assets
var embedded embed.FS

// loadAssets reads the static files, each served at
// /console/assets/<name>.<hash>.<ext> (webauth.Assets).
func loadAssets() (*webauth.Assets, error) {
	a, err := webauth.LoadAssets(embedded, "assets/static", "/console/assets/")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	return a, nil
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	c.assets.Serve(w, r, r.PathValue("name"))
}

// pages are the templates, each parsed with the layout.
var pages = []string{"message", "launch", "organizations", "portallink", "keys", "keycreated", "events", "event", "live"}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"join": strings.Join,
		"has":  func(list []string, v string) bool { return slices.Contains(list, v) },
		"ms":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
		"rfc":  func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	}
	maps.Copy(funcs, operationsFuncs())
	out := map[string]*template.Template{}
	for _, name := range append(slices.Clone(pages), operationsPages...) {
		t, err := template.New(name).Funcs(funcs).ParseFS(embedded, "assets/templates/layout.tmpl", "assets/templates/eventrows.tmpl", "assets/templates/"+name+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		if t.Lookup("layout") == nil || t.Lookup("content") == nil {
			return nil, fmt.Errorf("console: template %s must define layout and content", name)
		}
		out[name] = t
	}
	return out, nil
}
