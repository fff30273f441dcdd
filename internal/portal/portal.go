// Package portal is the Admin Portal (docs/DESIGN.md §7): the pages an
// organization's IT admin opens through a short-lived link the application
// generates, to read the organization's audit log, check an event's
// inclusion in the signed log, and learn how to verify the whole log.
//
// It is server-rendered html/template with its CSS and JavaScript embedded
// and served under content-hashed URLs; it loads nothing from elsewhere and
// reads fine without JavaScript. A link (links.go) is a random token stored
// hashed and redeemed once, atomically in the database; it starts a session
// (session.go): a signed, expiring cookie scoped to one organization and one
// intent. Every query a page makes is bounded to the session's
// organization, and everything another organization owns answers 404.
package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// Store is what the portal reads and writes.
type Store interface {
	Organization(ctx context.Context, id string) (store.Organization, error)
	Event(ctx context.Context, id string) (store.StoredEvent, error)
	SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	store.PortalStore
}

// Intents of a portal session.
const (
	IntentAuditLogs  = "audit_logs"
	IntentLogStreams = "log_streams"
)

// Action is something an admin did in the portal, for the audit log
// (selfaudit.Recorder.RecordPortal records it).
type Action = selfaudit.PortalAction

// ArchivedEvents is where an organization's events past retention are
// kept: those numbered below Before, in the archive named by Where.
type ArchivedEvents struct {
	Before int64
	Where  string
}

// Config configures a Portal.
type Config struct {
	Store Store
	// Ledger and VerifierKey serve inclusion proofs and the integrity page.
	Ledger      ledger.Storage
	VerifierKey string
	// Keys, when set, returns the log's key history: checkpoints are
	// checked against it and its newest active key is the one shown, so a
	// signing-key rotation reaches the portal without a restart.
	Keys func() *ledger.KeyHistory
	// BaseURL is the server's public URL (scheme and host, no path): links
	// are BaseURL + "/portal/launch?secret=…". An https BaseURL also makes
	// the session cookie Secure.
	BaseURL string
	// SessionKey (32 bytes, from the keyring) signs session cookies and
	// CSRF tokens.
	SessionKey []byte
	// Audit records an admin's action (nil: not recorded). r is the request
	// the action happened in.
	Audit func(r *http.Request, a Action)
	// Streams, when set, serves the log streams pages under
	// /portal/streams and makes the log_streams intent available.
	Streams Streams
	// Exports, when set, offers a CSV export of the events page's filter.
	Exports Exports
	// Witnesses, when set, lists the witnesses that cosign this
	// deployment's checkpoints on the integrity page (docs/WITNESS.md).
	Witnesses Witnesses
	// Tail, when set, serves the live view (/portal/live); TailStream
	// shapes its streams.
	Tail       Tail
	TailStream livetail.StreamOptions
	// Archived, when set, says where an organization's older events live
	// (docs/ARCHIVE.md), for a note on the events page; ok is false when
	// none of its events was archived.
	Archived func(ctx context.Context, org string) (a ArchivedEvents, ok bool)
	// Brand is the deployment's look: product name, logo and accent
	// colour (each organization may override it, store.PortalSettings).
	Brand Brand
	// FrameOrigins are the origins whose pages may show the portal in an
	// iframe (ParseOrigins); each organization may add its own. None: the
	// portal refuses to be framed.
	FrameOrigins []string
	// Schemas, when set, gives actions their display names and
	// descriptions (an action schema's display_name and description).
	Schemas Schemas
	// VendorName is how the customer sees the application's operator: the
	// actor of Trail's own events done with its API keys, console or
	// command line (default "The application's provider").
	VendorName string

	Logger *slog.Logger
	Now    func() time.Time
	// LinkTTL is how long a link may wait to be opened (default 5 minutes);
	// SessionTTL how long a session lasts (default 12 hours).
	LinkTTL    time.Duration
	SessionTTL time.Duration
}

// Portal serves the Admin Portal under /portal/. It implements http.Handler.
type Portal struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	tmpl     templates
	locales  *locales
	brand    *branding
	assets   *assets
	verifier verifier
	secure   bool
}

var _ http.Handler = (*Portal)(nil)

// New returns a Portal. It fails when the configuration is incomplete or a
// template does not parse.
func New(cfg Config) (*Portal, error) {
	if cfg.Store == nil || cfg.Ledger == nil {
		return nil, errors.New("portal: Store and Ledger are required")
	}
	if len(cfg.SessionKey) < 32 {
		return nil, errors.New("portal: SessionKey must be at least 32 bytes")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || (base.Path != "" && base.Path != "/") {
		return nil, fmt.Errorf("portal: base URL %q must be http(s)://host[:port] without a path", cfg.BaseURL)
	}
	cfg.BaseURL = base.Scheme + "://" + base.Host
	v, err := newVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = 5 * time.Minute
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	ls, err := loadLocales()
	if err != nil {
		return nil, err
	}
	b, err := newBranding(cfg.Brand)
	if err != nil {
		return nil, err
	}
	p := &Portal{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), assets: a, verifier: v, secure: base.Scheme == "https",
		locales: ls, brand: b}
	if p.tmpl, err = parseTemplates(a, ls); err != nil {
		return nil, err
	}
	p.routes()
	return p, nil
}

func (p *Portal) routes() {
	p.mux.HandleFunc("GET /portal/assets/{name}", p.serveAsset)
	p.mux.HandleFunc("GET /portal/brand/{file}", p.serveBrand)
	p.mux.HandleFunc("GET /portal/embed.js", p.serveEmbedScript)
	p.mux.HandleFunc("GET /portal/launch", p.launchPage)
	p.mux.HandleFunc("POST /portal/launch", p.launch)
	p.mux.Handle("GET /portal/{$}", p.session(p.home))
	p.mux.Handle("GET /portal/events", p.session(p.intent(IntentAuditLogs, p.events)))
	p.mux.Handle("GET /portal/events/histogram.svg", p.session(p.intent(IntentAuditLogs, p.histogram)))
	p.mux.Handle("GET /portal/events/{id}", p.session(p.intent(IntentAuditLogs, p.eventDetail)))
	if p.cfg.Tail != nil {
		p.mux.Handle("GET /portal/live", p.session(p.intent(IntentAuditLogs, p.live)))
		p.mux.Handle("GET /portal/live/stream", p.session(p.intent(IntentAuditLogs, p.liveStream)))
	}
	p.mux.Handle("GET /portal/integrity", p.session(p.integrity))
	p.mux.Handle("GET /portal/integrity/{file}", p.session(p.download))
	p.mux.Handle("POST /portal/logout", p.session(p.csrf(p.logout)))
	if p.cfg.Exports != nil {
		p.mux.Handle("POST /portal/exports", p.session(p.csrf(p.intent(IntentAuditLogs, p.createExport))))
		p.mux.Handle("GET /portal/exports/{id}", p.session(p.intent(IntentAuditLogs, p.exportPage)))
		p.mux.Handle("GET /portal/exports/{id}/status", p.session(p.intent(IntentAuditLogs, p.exportStatus)))
		p.mux.Handle("GET /portal/exports/{id}/download", p.session(p.intent(IntentAuditLogs, p.downloadExport)))
	}
	if p.cfg.Streams != nil {
		streams := func(h http.HandlerFunc) http.Handler { return p.session(p.intent(IntentLogStreams, h)) }
		change := func(h http.HandlerFunc) http.Handler { return p.session(p.csrf(p.intent(IntentLogStreams, h))) }
		p.mux.Handle("GET /portal/streams", streams(p.streamList))
		p.mux.Handle("GET /portal/streams/new", streams(p.newStream))
		p.mux.Handle("POST /portal/streams", change(p.createStream))
		p.mux.Handle("GET /portal/streams/{id}", streams(p.streamDetail))
		p.mux.Handle("GET /portal/streams/{id}/edit", streams(p.editStream))
		p.mux.Handle("POST /portal/streams/{id}/edit", change(p.updateStream))
		p.mux.Handle("POST /portal/streams/{id}/test", change(p.testStream))
		p.mux.Handle("POST /portal/streams/{id}/pause", change(p.setStreamActive(false)))
		p.mux.Handle("POST /portal/streams/{id}/resume", change(p.setStreamActive(true)))
		p.mux.Handle("GET /portal/streams/{id}/delete", streams(p.confirmDelete))
		p.mux.Handle("POST /portal/streams/{id}/delete", change(p.deleteStream))
	}
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.message(w, r, http.StatusNotFound, "Page not found", "There is no such page in the Admin Portal.")
	})
}

// ServeHTTP sets the security headers every answer carries, then routes.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing inline, nothing from elsewhere: scripts, styles and images
	// come from this origin's hashed asset URLs (and the histogram).
	frameHeaders(h, p.cfg.FrameOrigins)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.log.Error("panic in the Admin Portal", "path", r.URL.Path, "panic", fmt.Sprint(v))
			p.message(w, r, http.StatusInternalServerError, "Something went wrong",
				"The portal hit an internal error. Try again; if it persists, tell the application's operator.")
		}
	}()
	if strings.HasPrefix(r.URL.Path, "/portal/") && p.chooseLanguage(w, r) {
		return
	}
	p.mux.ServeHTTP(w, r)
}

// page is what every full page's template gets.
type page struct {
	Lang      *locale
	Languages []langLink
	Brand     brandView
	// Embedded: the page is shown inside an iframe of an allowed origin
	// (docs/EMBEDDING.md); it leaves out the way back to the application.
	Embedded bool
	// FrameOrigins are the origins that may frame the page, for its
	// script's messages to the host page; FrameOrg is the organization
	// whose allowlist applies to a page outside a session (the launch
	// page).
	FrameOrigins string
	FrameOrg     string
	Title        string
	TitleArgs    []any  // values for Title's %-verbs (a stream's name)
	Nav          string // the current section: events, streams, integrity
	Session      *session
	CSRF         string
	Refresh      int  // seconds; > 0 reloads the page (a meta refresh, no script)
	Live         bool // the live view is served (Config.Tail)
	Asset        func(string) string
	Data         any
}

// langLink is a link of the language picker.
type langLink struct {
	Code, Name, URL string
	Current         bool
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	pg.Lang = p.locales.pick(r)
	for _, l := range p.locales.list {
		q := r.URL.Query()
		q.Set("lang", l.Code)
		pg.Languages = append(pg.Languages, langLink{Code: l.Code, Name: l.Name, URL: r.URL.Path + "?" + q.Encode(), Current: l == pg.Lang})
	}
	if r.Method != http.MethodGet {
		for i := range pg.Languages {
			pg.Languages[i].URL = "/portal/?lang=" + pg.Languages[i].Code
		}
	}
	pg.Brand = p.brandFor(r.Context(), pg.Session)
	pg.Embedded = p.embedded(r)
	org := pg.FrameOrg
	if pg.Session != nil && pg.Session.Org != "" {
		org = pg.Session.Org
	}
	origins := p.frameOrigins(r.Context(), org)
	frameHeaders(w.Header(), origins)
	if pg.Embedded {
		pg.FrameOrigins = strings.Join(origins, " ")
	}
	if len(pg.TitleArgs) > 0 {
		pg.Title = pg.Lang.T(pg.Title, pg.TitleArgs...)
	} else {
		pg.Title = pg.Lang.tr(pg.Title)
	}
	pg.Asset = p.assets.URL
	pg.Live = p.cfg.Tail != nil
	if pg.Session != nil {
		pg.CSRF = p.csrfToken(pg.Session)
	}
	var buf bytes.Buffer
	if err := p.tmpl[pg.Lang.Code][name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		p.log.Error("couldn't render a portal page", "template", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type messageData struct {
	Heading, Text string
	// TextArgs are the values of Text's %-verbs (an organization's name).
	TextArgs  []any
	ReturnURL string
}

// message renders a page that only says something: an error, a rejected
// link, a closed session.
func (p *Portal) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	p.messageWith(w, r, status, messageData{Heading: heading, Text: text}, nil)
}

// messageWith renders m in the request's language: Heading and Text are
// catalog keys (Text with TextArgs for its values).
func (p *Portal) messageWith(w http.ResponseWriter, r *http.Request, status int, m messageData, s *session) {
	l := p.locales.pick(r)
	title := m.Heading
	m.Heading = l.tr(m.Heading)
	if len(m.TextArgs) > 0 {
		m.Text = msg(m.Text, m.TextArgs...).in(l)
	} else {
		m.Text = l.tr(m.Text)
	}
	p.render(w, r, status, "message", page{Title: title, Session: s, Data: m})
}

// fail answers an unexpected error (the database is down, …) without
// details: they go to the log.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the browser went away
	}
	status, m := http.StatusInternalServerError, messageData{Heading: "Something went wrong",
		Text: "The portal hit an internal error. Try again; if it persists, tell the application's operator."}
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		status, m = http.StatusServiceUnavailable, messageData{Heading: "Something went wrong",
			Text: "The audit log's database is unavailable right now. Try again in a few seconds."}
	}
	var show *session // the navigation, for a request in a session
	org := ""
	if s != nil && s.ID != "" {
		show, org = s, s.Org
	}
	p.log.Error("Admin Portal request failed", "path", r.URL.Path, "organization_id", org, "err", err)
	p.messageWith(w, r, status, m, show)
}
