package portal

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
	"strings"
	"time"
)

//go:embed assets
var embedded embed.FS

// assets are the static files, each served at /portal/assets/<name>.<hash>.<ext>
// where hash is the start of its SHA-256: a URL names one content for good,
// so browsers may cache it forever, and a new release's files get new URLs.
type assets struct {
	byURL  map[string]asset  // hashed name → file
	urlFor map[string]string // plain name → hashed URL
}

type asset struct {
	body        []byte
	contentType string
}

func loadAssets() (*assets, error) {
	a := &assets{byURL: map[string]asset{}, urlFor: map[string]string{}}
	entries, err := fs.ReadDir(embedded, "assets/static")
	if err != nil {
		return nil, fmt.Errorf("portal: assets: %w", err)
	}
	for _, e := range entries {
		body, err := embedded.ReadFile("assets/static/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("portal: assets: %w", err)
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a.byURL[hashed] = asset{body: body, contentType: mime.TypeByExtension(ext)}
		a.urlFor[e.Name()] = "/portal/assets/" + hashed
	}
	return a, nil
}

// url returns the hashed URL of a static file; templates call it as
// {{call .Asset "portal.css"}}. An unknown name is a bug in a template, and
// parseTemplates' test render catches it.
func (a *assets) url(name string) string {
	u, ok := a.urlFor[name]
	if !ok {
		panic("portal: no asset " + name)
	}
	return u
}

func (p *Portal) serveAsset(w http.ResponseWriter, r *http.Request) {
	f, ok := p.assets.byURL[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
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
