package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

//go:embed assets
var embedded embed.FS

// assets are the static files, each served at
// /console/assets/<name>.<hash>.<ext>, hash the start of its SHA-256: a
// URL names one content for good.
type assets struct {
	byURL  map[string]asset
	urlFor map[string]string
}

type asset struct {
	body        []byte
	contentType string
}

func loadAssets() (*assets, error) {
	a := &assets{byURL: map[string]asset{}, urlFor: map[string]string{}}
	entries, err := fs.ReadDir(embedded, "assets/static")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	for _, e := range entries {
		body, err := embedded.ReadFile("assets/static/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("console: assets: %w", err)
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a.byURL[hashed] = asset{body: body, contentType: mime.TypeByExtension(ext)}
		a.urlFor[e.Name()] = "/console/assets/" + hashed
	}
	return a, nil
}

// url is the hashed URL of a static file ({{call .Asset "console.css"}}).
func (a *assets) url(name string) string {
	u, ok := a.urlFor[name]
	if !ok {
		panic("console: no asset " + name)
	}
	return u
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	f, ok := c.assets.byURL[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// pages are the templates, each parsed with the layout.
var pages = []string{"message", "launch", "organizations", "portallink", "keys", "keycreated"}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"join": strings.Join,
		"has":  func(list []string, v string) bool { return slices.Contains(list, v) },
	}
	out := map[string]*template.Template{}
	for _, name := range pages {
		t, err := template.New(name).Funcs(funcs).ParseFS(embedded, "assets/templates/layout.tmpl", "assets/templates/"+name+".tmpl")
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
