package webauth

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

var (
	keyA = []byte(strings.Repeat("a", 32))
	keyB = []byte(strings.Repeat("b", 32))
)

type payload struct {
	V  int    `json:"v"`
	ID string `json:"s"`
}

func TestSealOpen(t *testing.T) {
	a, b := NewSigner(keyA), NewSigner(keyB)
	good := a.Seal(payload{V: 1, ID: "abc"})
	body, sig, _ := strings.Cut(good, ".")
	tests := []struct {
		name  string
		value string
		max   int
		ok    bool
	}{
		{"sealed by the key", good, 1000, true},
		{"sealed by another key", b.Seal(payload{V: 1, ID: "abc"}), 1000, false},
		{"longer than the bound", good, len(good) - 1, false},
		{"no signature", body, 1000, false},
		{"empty", "", 1000, false},
		{"signature of another body", a.Seal(payload{V: 2})[:strings.Index(a.Seal(payload{V: 2}), ".")] + "." + sig, 1000, false},
		{"padded signature", good + "=", 1000, false},
		{"signed garbage", func() string {
			b := "bm90IGpzb24" // "not json"
			return b + "." + a.Token("session", b)
		}(), 1000, false},
		{"the CSRF token's MAC", body + "." + a.Token("csrf", body), 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p payload
			err := a.Open(tt.value, tt.max, &p)
			if tt.ok != (err == nil) {
				t.Fatalf("Open: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCookie) {
				t.Fatalf("Open: %v, want ErrBadCookie", err)
			}
			if tt.ok && (p.V != 1 || p.ID != "abc") {
				t.Fatalf("Open decoded %+v", p)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	a, b := NewSigner(keyA), NewSigner(keyB)
	h1, h2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	tests := []struct {
		name      string
		got, want string
		equal     bool
	}{
		{"same launch token", a.LaunchToken(h1), a.LaunchToken(h1), true},
		{"another link", a.LaunchToken(h2), a.LaunchToken(h1), false},
		{"another key", b.LaunchToken(h1), a.LaunchToken(h1), false},
		{"csrf for launch", a.CSRFToken(HashHex(h1)), a.LaunchToken(h1), false},
		{"same csrf", a.CSRFToken("s1"), a.CSRFToken("s1"), true},
		{"another session", a.CSRFToken("s2"), a.CSRFToken("s1"), false},
		{"empty", "", a.CSRFToken("s1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(tt.got, tt.want); got != tt.equal {
				t.Fatalf("Equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	fresh := NewSecret("ptl_")
	tests := []struct {
		name, prefix, secret string
		ok                   bool
	}{
		{"fresh", "ptl_", fresh, true},
		{"fresh console", "csl_", NewSecret("csl_"), true},
		{"another prefix", "csl_", fresh, false},
		{"cut", "ptl_", fresh[:len(fresh)-1], false},
		{"one too many", "ptl_", fresh + "A", false},
		{"not base64url", "ptl_", "ptl_" + strings.Repeat("+", 43), false},
		{"non-canonical last character", "ptl_", "ptl_" + strings.Repeat("A", 42) + "B", false},
		{"empty", "ptl_", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := ParseSecret(tt.prefix, tt.secret)
			if ok != tt.ok {
				t.Fatalf("ParseSecret = %v, want %v", ok, tt.ok)
			}
			if ok && h != sha256.Sum256([]byte(tt.secret)) {
				t.Fatal("the hash is not the secret's SHA-256")
			}
			if ok {
				back, ok := ParseHashHex(HashHex(h))
				if !ok || back != h {
					t.Fatal("HashHex does not round-trip")
				}
			}
		})
	}
	for _, s := range []string{"", "zz", strings.Repeat("g", 64), strings.Repeat("a", 63)} {
		if _, ok := ParseHashHex(s); ok {
			t.Errorf("ParseHashHex(%q) accepted", s)
		}
	}
	if a, b := NewSessionID(), NewSessionID(); len(a) != 32 || a == b {
		t.Errorf("session ids %q, %q", a, b)
	}
}

func TestLinkState(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		link store.PortalLink
		want error
	}{
		{"open", store.PortalLink{ExpiresAt: now.Add(time.Minute)}, nil},
		{"used", store.PortalLink{ExpiresAt: now.Add(time.Minute), UsedAt: now}, store.ErrLinkUsed},
		{"used and ended", store.PortalLink{ExpiresAt: now.Add(time.Minute), UsedAt: now, EndedAt: now}, store.ErrLinkUsed},
		{"revoked", store.PortalLink{ExpiresAt: now.Add(time.Minute), EndedAt: now}, store.ErrLinkRevoked},
		{"expires now", store.PortalLink{ExpiresAt: now}, store.ErrLinkExpired},
		{"expired", store.PortalLink{ExpiresAt: now.Add(-time.Second)}, store.ErrLinkExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := LinkState(tt.link, now); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("LinkState = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSameOriginAndLaunch(t *testing.T) {
	l := Launcher{Prefix: "ptl_", Signer: NewSigner(keyA), BaseURL: "https://trail.example.com"}
	secret := NewSecret("ptl_")
	hash, _ := l.Secret([]string{secret})
	tests := []struct {
		name    string
		host    string
		tls     bool
		headers map[string]string
		token   string
		want    bool
	}{
		{"same-origin fetch metadata", "internal:8080", false, map[string]string{"Sec-Fetch-Site": "same-origin"}, l.Signer.LaunchToken(hash), true},
		{"cross-site fetch metadata wins over a good Origin", "trail.example.com", false,
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://trail.example.com"}, l.Signer.LaunchToken(hash), false},
		{"same-site is not same-origin", "trail.example.com", false, map[string]string{"Sec-Fetch-Site": "same-site"}, l.Signer.LaunchToken(hash), false},
		{"the public URL's origin", "internal:8080", false, map[string]string{"Origin": "https://trail.example.com"}, l.Signer.LaunchToken(hash), true},
		{"the request's host", "internal:8080", false, map[string]string{"Origin": "http://internal:8080"}, l.Signer.LaunchToken(hash), true},
		{"the request's host over TLS", "internal:8443", true, map[string]string{"Origin": "https://internal:8443"}, l.Signer.LaunchToken(hash), true},
		{"the host with the wrong scheme", "internal:8443", true, map[string]string{"Origin": "http://internal:8443"}, l.Signer.LaunchToken(hash), false},
		{"another origin", "internal:8080", false, map[string]string{"Origin": "https://evil.example"}, l.Signer.LaunchToken(hash), false},
		{"null origin", "internal:8080", false, map[string]string{"Origin": "null"}, l.Signer.LaunchToken(hash), false},
		{"neither header", "internal:8080", false, nil, l.Signer.LaunchToken(hash), false},
		{"same origin, wrong token", "internal:8080", false, map[string]string{"Sec-Fetch-Site": "same-origin"}, NewSigner(keyB).LaunchToken(hash), false},
		{"same origin, no token", "internal:8080", false, map[string]string{"Sec-Fetch-Site": "same-origin"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"secret": {secret}, "csrf": {tt.token}}
			r := httptest.NewRequest("POST", "/portal/launch", strings.NewReader(form.Encode()))
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			if got := l.Authentic(r, hash); got != tt.want {
				t.Fatalf("Authentic = %v, want %v", got, tt.want)
			}
		})
	}
	for _, v := range [][]string{nil, {}, {secret, secret}, {"csl_" + secret[4:]}} {
		if _, ok := l.Secret(v); ok {
			t.Errorf("Secret(%q) accepted", v)
		}
	}
}

func TestCookie(t *testing.T) {
	tests := []struct {
		name   string
		cookie Cookie
		maxAge int
	}{
		{"portal", Cookie{Name: "trail_portal", Path: "/portal", Secure: true, SameSite: http.SameSiteLaxMode}, 3600},
		{"console deleted", Cookie{Name: "trail_console", Path: "/console", SameSite: http.SameSiteStrictMode}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.cookie.Set(w, "v", tt.maxAge)
			got := w.Result().Cookies()
			if len(got) != 1 {
				t.Fatalf("cookies %v", got)
			}
			c := got[0]
			if c.Name != tt.cookie.Name || c.Path != tt.cookie.Path || !c.HttpOnly || c.Secure != tt.cookie.Secure || c.SameSite != tt.cookie.SameSite {
				t.Fatalf("cookie %+v", c)
			}
			if (tt.maxAge < 0) != (c.MaxAge < 0) {
				t.Fatalf("MaxAge %d, want %d", c.MaxAge, tt.maxAge)
			}
		})
	}
}

func TestAssets(t *testing.T) {
	fsys := fstest.MapFS{
		"assets/static/site.css": {Data: []byte("body{}")},
		"assets/static/site.js":  {Data: []byte("'use strict';")},
		"assets/static/sub/x":    {Data: []byte("nested")},
	}
	a, err := LoadAssets(fsys, "assets/static", "/x/assets/")
	if err != nil {
		t.Fatal(err)
	}
	css := a.URL("site.css")
	if !strings.HasPrefix(css, "/x/assets/site.") || !strings.HasSuffix(css, ".css") || len(css) != len("/x/assets/site..css")+12 {
		t.Fatalf("URL = %q", css)
	}
	tests := []struct {
		name, hashed string
		status       int
		ctype, body  string
	}{
		{"stylesheet", strings.TrimPrefix(css, "/x/assets/"), 200, "text/css; charset=utf-8", "body{}"},
		{"script", strings.TrimPrefix(a.URL("site.js"), "/x/assets/"), 200, "text/javascript; charset=utf-8", "'use strict';"},
		{"plain name", "site.css", 404, "", ""},
		{"wrong hash", "site.000000000000.css", 404, "", ""},
		{"directory", "sub", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.Serve(w, httptest.NewRequest("GET", "/x/assets/"+tt.hashed, nil), tt.hashed)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status == 200 && (res.Header.Get("Content-Type") != tt.ctype || string(body) != tt.body ||
				res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable") {
				t.Fatalf("%s %q %q", res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), body)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("URL of an unknown asset did not panic")
		}
	}()
	a.URL("missing.css")
}

func TestLoadAssetsMissingDir(t *testing.T) {
	if _, err := LoadAssets(fstest.MapFS{}, "assets/static", "/x/"); err == nil {
		t.Fatal("a missing directory loaded")
	}
}
