package portal

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Embedding (docs/EMBEDDING.md): the portal may be shown in an iframe by
// the pages of the origins a deployment allows (Config.FrameOrigins) and
// those an organization adds (store.PortalSettings.FrameOrigins). The CSP's
// frame-ancestors lists them; with none, it is 'none' and X-Frame-Options
// DENY, as before. Nothing else changes inside a frame: the same pages,
// the same CSP for scripts and styles.

// MaxFrameOrigins bounds an allowlist.
const MaxFrameOrigins = 20

// ParseOrigins reads an allowlist of origins separated by spaces or
// commas: each scheme://host[:port], https (http only for localhost and
// 127.0.0.1, for development), without path, query, credentials or
// wildcards. It returns them in their canonical form, deduplicated.
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		o, err := parseOrigin(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	if len(out) > MaxFrameOrigins {
		return nil, fmt.Errorf("%d origins; at most %d", len(out), MaxFrameOrigins)
	}
	return out, nil
}

func parseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("origin %q: %s; write it as https://app.example.com", truncate(s, 80), why)
	}
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return bad("not an origin")
	case u.User != nil:
		return bad("credentials are not part of an origin")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?"):
		return bad("an origin has no path, query or fragment")
	case strings.ContainsAny(u.Host, "*;'\" "):
		return bad("no wildcards or quotes")
	}
	host := strings.ToLower(u.Hostname())
	switch u.Scheme {
	case "https":
	case "http":
		if host != "localhost" && host != "127.0.0.1" && host != "[::1]" && host != "::1" {
			return bad("only https pages may frame the portal (http only for localhost)")
		}
	default:
		return bad("the scheme must be https")
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// frameHeaders sets the headers that say who may frame the page, for the
// origins allowed (none: nobody).
func frameHeaders(h http.Header, origins []string) {
	ancestors := "'none'"
	if len(origins) > 0 {
		ancestors = strings.Join(origins, " ")
		h.Del("X-Frame-Options")
	} else {
		// For browsers older than frame-ancestors.
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
		"form-action 'self'; frame-ancestors "+ancestors+"; base-uri 'none'")
}

// frameOrigins are the origins that may frame the pages of org ("" : of no
// organization): the deployment's, and the organization's own.
func (p *Portal) frameOrigins(ctx context.Context, org string) []string {
	out := slices.Clone(p.cfg.FrameOrigins)
	if org != "" {
		if set, err := p.settings(ctx, org); err == nil {
			for _, o := range set.FrameOrigins {
				if !slices.Contains(out, o) {
					out = append(out, o)
				}
			}
		}
	}
	return out
}

// embedded reports whether the page is being shown inside an iframe: the
// browser says so in Sec-Fetch-Dest.
func (p *Portal) embedded(r *http.Request) bool { return framed(r) }

// serveEmbedScript is GET /portal/embed.js: the script a host page
// includes to size the portal's iframe to its content (docs/EMBEDDING.md).
// Its URL is stable, so that host pages can name it; it is also served
// under a hashed URL like every asset.
func (p *Portal) serveEmbedScript(w http.ResponseWriter, r *http.Request) {
	body, err := embedded.ReadFile("assets/static/embed.js")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	// Host pages load it from their own origin's document.
	w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
