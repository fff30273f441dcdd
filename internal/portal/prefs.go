package portal

import "net/http"

// cookie is a cookie of the portal (the session, the language chosen):
// HttpOnly, scoped to /portal.
//
// On a page of its own (top-level) it is SameSite=Lax, and Secure under an
// https public URL: sent when the application links to the portal, never
// on another site's POST or fetch.
//
// Inside an iframe of another site (docs/EMBEDDING.md) a Lax cookie would
// never be sent back, so there it is SameSite=None; Secure; Partitioned
// (CHIPS): the browser keeps it in a jar of the embedding site's alone, so
// it works in that site's frame and nowhere else, and no other site can
// use it to carry the session across sites. Forms still need the CSRF token
// and a same-origin POST, and only the origins of the allowlist may frame
// the portal at all (frame-ancestors). Secure is required with None;
// browsers accept it from https and from localhost.
func (p *Portal) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/portal", MaxAge: maxAge,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode}
	if framed(r) {
		c.Secure, c.SameSite, c.Partitioned = true, http.SameSiteNoneMode, true
	}
	return c
}

// framed reports whether the browser loads the request into an iframe
// (Sec-Fetch-Dest, sent by every current browser to secure origins).
func framed(r *http.Request) bool { return r.Header.Get("Sec-Fetch-Dest") == "iframe" }
