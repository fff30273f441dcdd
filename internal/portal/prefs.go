package portal

import "net/http"

// cookie is one of the portal's preference cookies (the language): not a
// secret, so readable by nothing but the server all the same (HttpOnly),
// scoped to /portal, Secure under an https public URL.
func (p *Portal) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/portal", MaxAge: maxAge,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode}
}
