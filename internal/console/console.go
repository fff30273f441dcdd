// Package console is the operator console: the pages a deployment's
// operators open at /console to manage the deployment across
// organizations — organizations (search, create, an Admin Portal link for
// one), and API keys (create with the secret shown once, list, revoke) —
// and the operations pages (ops.go): retention, stream health and event
// rates on the organizations list, schemas, log streams, integrity and the
// system. docs/CONSOLE.md says what it covers and what is still to come.
//
// It owns its sign-in and sessions (session.go): a single-use link that
// `trail console link` stores (a row of the portal's link table under the
// reserved organization org_system with the intent "operator_console", a
// token prefix of its own, so that no portal link opens the console and no
// console link opens the portal), redeemed by a button on the page the link
// shows, and a signed cookie scoped to /console that names that row, so
// that signing out ends the session on every replica. Its cookie is signed
// with a key of its own: it is neither a portal session nor an API key.
//
// Like the Admin Portal (internal/portal), it is server-rendered
// html/template with its stylesheet embedded and served under a
// content-hashed URL, a CSP without inline code, and CSRF tokens on every
// form. Every action an operator takes is recorded through Config.Audit.
package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/webauth"
)

// Store is what the console reads and writes.
type Store interface {
	CreateOrganization(ctx context.Context, org store.Organization) error
	Organization(ctx context.Context, id string) (store.Organization, error)
	ListOrganizations(ctx context.Context, p store.ListParams) (store.ListPage[store.Organization], error)
	CreateAPIKey(ctx context.Context, k store.APIKey) error
	APIKey(ctx context.Context, id string) (store.APIKey, error)
	ListAPIKeys(ctx context.Context, p store.ListParams) (store.ListPage[store.APIKey], error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	store.PortalLinks
	// The events pages (events.go).
	Event(ctx context.Context, id string) (store.StoredEvent, error)
	SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	SearchAllEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	OrganizationActions(ctx context.Context, org string, limit int) ([]string, error)
}

// PortalLinks generates Admin Portal links (the portal's own generation,
// internal/portal.Portal.GenerateLink).
type PortalLinks interface {
	Intents() []string
	GenerateLink(ctx context.Context, org, intent string, adminEmails []string, externalUserID, returnURL string) (string, time.Time, error)
}

// Action is something an operator did in the console, for the audit log:
// recorded in every log of Logs (org_system, and the organization acted
// on).
type Action struct {
	Logs       []string
	Action     string // trail.<resource>.<verb>
	Operator   string
	TargetType string
	TargetID   string
	TargetName string
	Metadata   map[string]string
}

// Config configures a Console.
type Config struct {
	Store Store
	// Portal generates Admin Portal links; nil hides the button.
	Portal PortalLinks
	// BaseURL is the server's public URL (scheme and host): an https one
	// makes the session cookie Secure, and a POST's Origin may be it.
	BaseURL string
	// SessionKey (at least 32 bytes, from the keyring, not the portal's)
	// signs session cookies and CSRF tokens.
	SessionKey []byte
	// Audit records an operator's action; r is the request it happened in.
	// It is required: the console does nothing unrecorded.
	Audit  func(r *http.Request, a Action)
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL is how long a session lasts (default 8 hours).
	SessionTTL time.Duration
	// Operations connects the operations pages (ops.go).
	Operations Operations
	// Tail serves the live view's event stream; nil hides the live view.
	Tail       Tail
	TailStream livetail.StreamOptions
}

// Console serves the operator console under /console/. It implements
// http.Handler.
type Console struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	tmpl   map[string]*template.Template
	assets *webauth.Assets
	signer webauth.Signer
	cookie webauth.Cookie
	secure bool
	rates  rateSamples // the system page's ingest rate (system.go)
}

var _ http.Handler = (*Console)(nil)

// New returns a Console, or why the configuration cannot serve one.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Audit == nil {
		return nil, errors.New("console: Store and Audit are required")
	}
	if len(cfg.SessionKey) < 32 {
		return nil, errors.New("console: SessionKey must be at least 32 bytes")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || (base.Path != "" && base.Path != "/") {
		return nil, fmt.Errorf("console: base URL %q must be http(s)://host[:port] without a path", cfg.BaseURL)
	}
	cfg.BaseURL = base.Scheme + "://" + base.Host
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), assets: a, secure: base.Scheme == "https",
		signer: webauth.NewSigner(cfg.SessionKey)}
	c.cookie = webauth.Cookie{Name: cookieName, Path: "/console", Secure: c.secure, SameSite: http.SameSiteStrictMode}
	if c.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	c.mux.HandleFunc("GET /console/assets/{name}", c.serveAsset)
	c.mux.HandleFunc("GET /console/launch", c.launchPage)
	c.mux.HandleFunc("POST /console/launch", c.launch)
	c.mux.Handle("GET /console/{$}", c.session(c.home))
	c.mux.Handle("GET /console/organizations", c.session(c.organizations))
	c.mux.Handle("POST /console/organizations", c.session(c.csrf(c.createOrganization)))
	c.mux.Handle("POST /console/organizations/{id}/portal_link", c.session(c.csrf(c.portalLink)))
	c.mux.Handle("GET /console/keys", c.session(c.keys))
	c.mux.Handle("POST /console/keys", c.session(c.csrf(c.createKey)))
	c.mux.Handle("POST /console/keys/{id}/revoke", c.session(c.csrf(c.revokeKey)))
	c.mux.Handle("POST /console/logout", c.session(c.csrf(c.logout)))
	c.operationsRoutes()
	// Events (events.go, live.go).
	c.mux.Handle("GET /console/events", c.session(c.allEvents))
	c.mux.Handle("GET /console/events/{id}", c.session(c.eventDetail))
	c.mux.Handle("GET /console/organizations/{id}/events", c.session(c.orgEvents))
	if c.cfg.Tail != nil {
		c.mux.Handle("GET /console/organizations/{id}/live", c.session(c.live))
		c.mux.Handle("GET /console/organizations/{id}/live/stream", c.session(c.liveStream))
	}
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.message(w, r, http.StatusNotFound, "Page not found", "There is no such page in the console.")
	})
}

// ServeHTTP sets the security headers every answer carries, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing inline, nothing from elsewhere: the one script (the live
	// view's) and the stylesheet come from hashed asset URLs.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			c.log.Error("panic in the console", "path", r.URL.Path, "panic", fmt.Sprint(v))
			c.message(w, r, http.StatusInternalServerError, "Something went wrong", "The console hit an internal error; the server's log says more.")
		}
	}()
	c.mux.ServeHTTP(w, r)
}

// page is what every full page's template gets.
type page struct {
	Title   string
	Nav     string // organizations, events, keys, schemas, streams, integrity, system
	Session *session
	CSRF    string
	Asset   func(string) string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	pg.Asset = c.assets.URL
	if pg.Session != nil {
		pg.CSRF = c.csrfToken(pg.Session)
	}
	var buf bytes.Buffer
	if err := c.tmpl[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		c.log.Error("couldn't render a console page", "template", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageData struct{ Heading, Text string }

// message renders a page that only says something.
func (c *Console) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	c.messageIn(w, r, status, heading, text, nil)
}

func (c *Console) messageIn(w http.ResponseWriter, r *http.Request, status int, heading, text string, s *session) {
	c.render(w, r, status, "message", page{Title: heading, Session: s, Data: messageData{Heading: heading, Text: text}})
}

// fail answers an unexpected error without details: they go to the log.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	status, text := http.StatusInternalServerError, "The console hit an internal error; the server's log says more."
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		status, text = http.StatusServiceUnavailable, "The database is unavailable right now. Try again in a few seconds."
	}
	c.log.Error("console request failed", "path", r.URL.Path, "err", err)
	c.messageIn(w, r, status, "Something went wrong", text, s)
}

// audit records an action of the session's operator in logs.
func (c *Console) audit(r *http.Request, s *session, action, targetType, targetID, targetName string, logs []string, meta map[string]string) {
	m := map[string]string{"console_session": s.ID[:8]}
	for k, v := range meta {
		m[k] = v
	}
	c.cfg.Audit(r, Action{Logs: logs, Action: action, Operator: s.Operator, TargetType: targetType, TargetID: targetID, TargetName: targetName, Metadata: m})
}
