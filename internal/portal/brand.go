package portal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// Branding: the portal carries the vendor's product name, logo and accent
// colour, set per deployment (Config.Brand, `trail serve --portal-…`) and
// overridable per organization (store.PortalSettings). The accent reaches
// the page as a stylesheet of its own, /portal/brand/accent-RRGGBB.css,
// computed from the colour alone, so the CSP stays style-src 'self' with
// nothing inline; the colour is adjusted until text in it (and white or
// dark text on it) has a WCAG contrast of at least 4.5:1 against the
// backgrounds of both themes.

// Brand is a deployment's look.
type Brand struct {
	// ProductName replaces "Audit log" in the header and titles.
	ProductName string
	// Logo is an image (PNG, JPEG, WebP or SVG) shown in the header;
	// LogoType its media type. Nil: Trail's shield.
	Logo     []byte
	LogoType string
	// Accent is a colour #RRGGBB for links, buttons and the histogram.
	Accent string
}

// Limits of a brand.
const (
	MaxProductName = 60
	MaxLogoBytes   = 256 << 10
)

// logoTypes are the media types a logo may have, with its file extension.
var logoTypes = map[string]string{"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/svg+xml": "svg"}

// CheckBrand reports what is wrong with a brand (nil: nothing), naming the
// field: the checks `trail serve` and the organization settings share.
func CheckBrand(b Brand) error {
	if n := len([]rune(b.ProductName)); n > MaxProductName || strings.ContainsFunc(b.ProductName, isControl) {
		return fmt.Errorf("product name: must be at most %d characters without control characters", MaxProductName)
	}
	if b.Accent != "" {
		if _, err := parseHex(b.Accent); err != nil {
			return fmt.Errorf("accent colour: %w", err)
		}
	}
	if len(b.Logo) > 0 {
		if len(b.Logo) > MaxLogoBytes {
			return fmt.Errorf("logo: %d bytes; at most %d", len(b.Logo), MaxLogoBytes)
		}
		if _, ok := logoTypes[b.LogoType]; !ok {
			return fmt.Errorf("logo: type %q; use PNG, JPEG, WebP or SVG", b.LogoType)
		}
	}
	return nil
}

// LogoType is the media type of a logo file, by its name's extension.
func LogoType(name string) (string, error) {
	ext := strings.ToLower(name[strings.LastIndex(name, ".")+1:])
	for t, e := range logoTypes {
		if e == ext || (ext == "jpeg" && e == "jpg") {
			return t, nil
		}
	}
	return "", fmt.Errorf("logo %s: use a .png, .jpg, .webp or .svg file", name)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// branding is the deployment's brand, ready to serve.
type branding struct {
	name     string
	logoURL  string
	logo     []byte
	logoType string
	accent   string // "" or rrggbb
}

func newBranding(b Brand) (*branding, error) {
	if err := CheckBrand(b); err != nil {
		return nil, fmt.Errorf("portal: brand: %w", err)
	}
	out := &branding{name: strings.TrimSpace(b.ProductName), logo: b.Logo, logoType: b.LogoType}
	if b.Accent != "" {
		c, _ := parseHex(b.Accent)
		out.accent = c.hex()
	}
	if len(b.Logo) > 0 {
		out.logoURL = "/portal/brand/logo-" + shortHash(b.Logo) + "." + logoTypes[b.LogoType]
	}
	return out, nil
}

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// brandView is what a page shows of the brand.
type brandView struct {
	Name string
	Logo string // URL, "" for Trail's shield
	CSS  string // URL of the accent's stylesheet, "" for the default
}

// brandFor is the brand of a page: the organization's settings over the
// deployment's.
func (p *Portal) brandFor(ctx context.Context, s *session) brandView {
	v := brandView{Name: p.brand.name, Logo: p.brand.logoURL}
	accent := p.brand.accent
	if s != nil && s.Org != "" {
		if set, err := p.settings(ctx, s.Org); err == nil {
			if set.ProductName != "" {
				v.Name = set.ProductName
			}
			if set.Accent != "" {
				if c, err := parseHex(set.Accent); err == nil {
					accent = c.hex()
				}
			}
			if len(set.Logo) > 0 {
				v.Logo = "/portal/brand/org-logo-" + shortHash(set.Logo)
			}
		}
	}
	if v.Name == "" {
		v.Name = "Audit log"
	}
	if accent != "" {
		v.CSS = "/portal/brand/accent-" + accent + ".css"
	}
	return v
}

// settings reads an organization's portal settings; none is the zero
// value.
func (p *Portal) settings(ctx context.Context, org string) (store.PortalSettings, error) {
	set, err := p.cfg.Store.PortalSettings(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		return store.PortalSettings{OrganizationID: org}, nil
	}
	if err != nil {
		p.log.Warn("couldn't read an organization's portal settings", "organization_id", org, "err", err)
	}
	return set, err
}

// serveBrand is GET /portal/brand/{file}: the accent stylesheets and the
// deployment's logo.
func (p *Portal) serveBrand(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	switch {
	case strings.HasPrefix(file, "accent-") && strings.HasSuffix(file, ".css"):
		c, err := parseHex(strings.TrimSuffix(strings.TrimPrefix(file, "accent-"), ".css"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(accentCSS(c)))
	case strings.HasPrefix(file, "org-logo-"):
		p.session(http.HandlerFunc(p.serveOrgLogo)).ServeHTTP(w, r)
	case p.brand.logoURL != "" && "/portal/brand/"+file == p.brand.logoURL:
		serveLogo(w, r, p.brand.logo, p.brand.logoType)
	default:
		http.NotFound(w, r)
	}
}

func (p *Portal) serveOrgLogo(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	set, err := p.settings(r.Context(), s.Org)
	if err != nil || len(set.Logo) == 0 || "org-logo-"+shortHash(set.Logo) != r.PathValue("file") {
		http.NotFound(w, r)
		return
	}
	serveLogo(w, r, set.Logo, set.LogoType)
}

// serveLogo answers a logo. An SVG is a document that could hold script:
// its own CSP sandboxes it, so opened by itself it runs nothing.
func serveLogo(w http.ResponseWriter, r *http.Request, body []byte, typ string) {
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// rgb is a colour, each channel 0–255.
type rgb struct{ r, g, b float64 }

func parseHex(s string) (rgb, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(s) != 6 {
		return rgb{}, fmt.Errorf("%q is not a colour #RRGGBB", s)
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return rgb{}, fmt.Errorf("%q is not a colour #RRGGBB", s)
	}
	return rgb{float64(n >> 16 & 0xff), float64(n >> 8 & 0xff), float64(n & 0xff)}, nil
}

func (c rgb) hex() string {
	ch := func(v float64) int { return int(math.Round(math.Max(0, math.Min(255, v)))) }
	return fmt.Sprintf("%02x%02x%02x", ch(c.r), ch(c.g), ch(c.b))
}

// luminance is WCAG 2's relative luminance.
func (c rgb) luminance() float64 {
	lin := func(v float64) float64 {
		v /= 255
		if v <= 0.04045 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.r) + 0.7152*lin(c.g) + 0.0722*lin(c.b)
}

// contrast is WCAG 2's contrast ratio of two colours, 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// mix moves c toward t by f (0: c, 1: t).
func (c rgb) mix(t rgb, f float64) rgb {
	return rgb{c.r + (t.r-c.r)*f, c.g + (t.g-c.g)*f, c.b + (t.b-c.b)*f}
}

// The backgrounds accent text must read on, per theme (portal.css).
var (
	lightBackgrounds = []rgb{{255, 255, 255}, {248, 250, 252}, {239, 246, 255}}
	darkBackgrounds  = []rgb{{15, 23, 42}, {2, 6, 23}, {30, 41, 59}}
	white            = rgb{255, 255, 255}
	black            = rgb{0, 0, 0}
)

// minContrast is WCAG 2's AA level for normal text.
const minContrast = 4.5

// readable moves c toward t (black for light backgrounds, white for dark
// ones) in small steps until it has minContrast against every background;
// it returns c itself when it already has.
func readable(c rgb, backgrounds []rgb, t rgb) rgb {
	for f := 0.0; f <= 1.0001; f += 0.02 {
		m := c.mix(t, f)
		ok := true
		for _, bg := range backgrounds {
			if contrast(m, bg) < minContrast {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return t
}

// onAccent is the text colour on a button of colour c: white or near
// black, whichever contrasts more.
func onAccent(c rgb) rgb {
	dark := rgb{15, 23, 42}
	if contrast(white, c) >= contrast(dark, c) {
		return white
	}
	return dark
}

// accentCSS is the stylesheet of an accent colour for both themes.
func accentCSS(c rgb) string {
	light := readable(c, lightBackgrounds, black)
	dark := readable(c, darkBackgrounds, white)
	var b strings.Builder
	fmt.Fprintf(&b, "/* accent #%s, adjusted to a contrast of at least %.1f:1 */\n", c.hex(), minContrast)
	fmt.Fprintf(&b, ":root { --accent: #%s; --accent-strong: #%s; --on-accent: #%s; --accent-bg: #%s; }\n",
		light.hex(), light.mix(black, 0.2).hex(), onAccent(light).hex(), light.mix(white, 0.9).hex())
	fmt.Fprintf(&b, "@media (prefers-color-scheme: dark) { :root { --accent: #%s; --accent-strong: #%s; --on-accent: #%s; --accent-bg: #%s; } }\n",
		dark.hex(), dark.mix(white, 0.2).hex(), onAccent(dark).hex(), dark.mix(rgb{15, 23, 42}, 0.8).hex())
	return b.String()
}

// accentOf is the accent colour (rrggbb) of a session's pages, "" for the
// default.
func (p *Portal) accentOf(ctx context.Context, s *session) string {
	accent := p.brand.accent
	if s != nil && s.Org != "" {
		if set, err := p.settings(ctx, s.Org); err == nil && set.Accent != "" {
			if c, err := parseHex(set.Accent); err == nil {
				accent = c.hex()
			}
		}
	}
	return accent
}
