package webauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Assets are static files embedded in the binary, each served at
// <prefix><name>.<hash>.<ext> where hash is the start of its SHA-256: a URL
// names one content for good, so browsers may cache it forever, and a new
// release's files get new URLs.
type Assets struct {
	prefix string
	byName map[string]asset  // hashed name → file
	urlFor map[string]string // plain name → hashed URL
}

type asset struct {
	body        []byte
	contentType string
}

// LoadAssets reads every file of dir in fsys, to be served under prefix
// (such as "/portal/assets/").
func LoadAssets(fsys fs.FS, dir, prefix string) (*Assets, error) {
	a := &Assets{prefix: prefix, byName: map[string]asset{}, urlFor: map[string]string{}}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading the assets in %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading the asset %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a.byName[hashed] = asset{body: body, contentType: mime.TypeByExtension(ext)}
		a.urlFor[e.Name()] = prefix + hashed
	}
	return a, nil
}

// URL returns the hashed URL of a static file; templates call it as
// {{call .Asset "portal.css"}}. An unknown name is a bug in a template,
// which the pages' tests catch.
func (a *Assets) URL(name string) string {
	u, ok := a.urlFor[name]
	if !ok {
		panic("webauth: no asset " + name + " under " + a.prefix)
	}
	return u
}

// Serve answers a request for the file with this hashed name (the last
// segment of its URL), or 404.
func (a *Assets) Serve(w http.ResponseWriter, r *http.Request, hashed string) {
	f, ok := a.byName[hashed]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
