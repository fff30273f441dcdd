package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/webauth"
)

// Sessions are signed cookies that name a database row: a session is a few
// hundred bytes the browser holds, HMAC-SHA256-signed with a key derived
// from the deployment's master key, carrying its own expiry (12 hours from
// the link's use) and the hash of the link that opened it. Every request
// also reads that link's row (store.PortalLinks.PortalLink, one primary-key
// read), so a session ends for every replica the moment its admin signs out
// or the organization's sessions are revoked (EndSessions), not when the
// cookie expires: a copied or stolen cookie is worth nothing after either.

// cookieName is the session cookie. It is scoped to /portal, HttpOnly,
// SameSite=Lax (sent on top-level navigation from the application, never on
// a cross-site POST or fetch), and Secure when the portal is served over
// HTTPS.
const cookieName = "trail_portal"

// maxCookieLen bounds the cookie value the portal parses.
const maxCookieLen = 3000

// session is one admin's portal session.
type session struct {
	Version   int    `json:"v"`
	Org       string `json:"o"`
	OrgName   string `json:"n"`
	Intent    string `json:"i"`
	Admin     string `json:"a,omitempty"` // the admin(s) the link named, comma-separated
	User      string `json:"u,omitempty"` // the application's id of the admin (external_user_id)
	ReturnURL string `json:"r,omitempty"`
	ID        string `json:"s"` // random; the CSRF token is derived from it
	Expires   int64  `json:"e"` // unix seconds
	Link      string `json:"l"` // hex SHA-256 of the link's token: the row that says whether the session ended
}

// sessionVersion is the cookie format; cookies of another version are
// refused (version 1 had no Link).
const sessionVersion = 2

// linkHash is the session's link hash, false when Link is malformed.
func (s *session) linkHash() ([32]byte, bool) { return webauth.ParseHashHex(s.Link) }

// actor is the admin the session's actions are attributed to: the first
// one the link named.
func (s *session) actor() string {
	a, _, _ := strings.Cut(s.Admin, ",")
	return a
}

func newSessionID() string { return webauth.NewSessionID() }

// signer signs the portal's cookies and tokens (internal/webauth).
func (p *Portal) signer() webauth.Signer { return webauth.NewSigner(p.cfg.SessionKey) }

// encodeSession returns the cookie value of s: base64url(JSON) "." base64url(MAC).
func (p *Portal) encodeSession(s *session) string { return p.signer().Seal(s) }

var (
	errBadSession     = errors.New("session cookie is malformed or not signed by this deployment")
	errExpiredSession = errors.New("session expired")
	errEndedSession   = errors.New("session ended (signed out or revoked)")
)

// decodeSession checks and opens a cookie value: the signature first, so
// nothing of a forged cookie is ever parsed.
func (p *Portal) decodeSession(v string, now time.Time) (*session, error) {
	var s session
	if err := p.signer().Open(v, maxCookieLen, &s); err != nil || s.Version != sessionVersion || s.Org == "" || s.ID == "" {
		return nil, errBadSession
	}
	if _, ok := s.linkHash(); !ok {
		return nil, errBadSession
	}
	if now.Unix() >= s.Expires {
		return nil, errExpiredSession
	}
	return &s, nil
}

// setCookie sets (or with maxAge < 0 deletes) the session cookie, with
// the attributes of the context the request came in (p.cookie).
func (p *Portal) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, p.cookie(r, cookieName, value, maxAge))
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// session requires a valid session cookie; without one the page says how
// to get in.
func (p *Portal) session(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		var s *session
		if err == nil {
			s, err = p.decodeSession(c.Value, p.cfg.Now())
		}
		if err == nil {
			err = p.checkNotEnded(r.Context(), s)
		}
		switch {
		case errors.Is(err, errExpiredSession):
			p.setCookie(w, r, "", -1)
			p.message(w, r, http.StatusUnauthorized, "Your session has ended",
				"Portal sessions last 12 hours. Open the Admin Portal again from your application to start a new one.")
			return
		case errors.Is(err, errEndedSession):
			p.setCookie(w, r, "", -1)
			p.message(w, r, http.StatusUnauthorized, "Your session has ended",
				"This portal session was signed out or revoked. Open the Admin Portal again from your application to start a new one.")
			return
		case err != nil && !errors.Is(err, errBadSession) && !errors.Is(err, http.ErrNoCookie):
			p.fail(w, r, nil, err) // the database could not say
			return
		case err != nil:
			if c != nil {
				p.setCookie(w, r, "", -1)
			}
			p.message(w, r, http.StatusUnauthorized, "Sign-in needed",
				"The Admin Portal opens through a link your application generates. Open it again from your application.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// checkNotEnded reads the row of the link that opened s: errEndedSession
// when the session was ended, or the row is gone (links are kept well past
// the sessions they open, so a missing row is a session to refuse).
func (p *Portal) checkNotEnded(ctx context.Context, s *session) error {
	hash, _ := s.linkHash() // checked by decodeSession
	l, err := p.cfg.Store.PortalLink(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errEndedSession
	case err != nil:
		return fmt.Errorf("checking the portal session of %s: %w", s.Org, err)
	case !l.EndedAt.IsZero() || l.UsedAt.IsZero() || l.OrganizationID != s.Org:
		return errEndedSession
	}
	return nil
}

// EndSessions revokes org's Admin Portal access as it stands: every open
// session ends at once, on every replica, and every link not opened yet can
// no longer be. It returns how many sessions and links it ended.
func (p *Portal) EndSessions(ctx context.Context, org string) (int64, error) {
	n, err := p.cfg.Store.EndPortalSessions(ctx, org, p.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("ending the portal sessions of %s: %w", org, err)
	}
	return n, nil
}

// RevokeLinks ends the links of org generated for one user of the
// application (external_user_id) and the sessions they opened, on every
// replica at once; the organization's other admins are untouched. It
// returns how many sessions and links it ended.
func (p *Portal) RevokeLinks(ctx context.Context, org, externalUserID string) (int64, error) {
	n, err := p.cfg.Store.RevokePortalLinks(ctx, org, externalUserID, p.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("revoking the portal links of %s in %s: %w", externalUserID, org, err)
	}
	return n, nil
}

// intent lets through only sessions opened for intent.
func (p *Portal) intent(intent string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionFrom(r)
		if s.Intent != intent {
			p.messageWith(w, r, http.StatusForbidden, messageData{Heading: "Not part of this session",
				Text: "This portal session was opened for %s. Open a new link from your application for %s.", TextArgs: []any{intentName(s.Intent), intentName(intent)}}, s)
			return
		}
		h(w, r)
	}
}

func intentName(intent string) label {
	if intent == IntentLogStreams {
		return label("log streams")
	}
	return label("audit logs")
}

// csrfToken is the session's anti-forgery token, carried by every form
// that changes something.
func (p *Portal) csrfToken(s *session) string { return p.signer().CSRFToken(s.ID) }

// csrf requires the session's token in the form field "csrf".
func (p *Portal) csrf(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionFrom(r)
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		got := r.PostFormValue("csrf")
		if !webauth.Equal(got, p.csrfToken(s)) {
			p.messageWith(w, r, http.StatusForbidden, messageData{Heading: "Form expired",
				Text: "This form was not sent from your current portal session. Go back, reload the page and try again."}, s)
			return
		}
		h(w, r)
	}
}

// home sends the session to its intent's first page.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, landing(sessionFrom(r).Intent), http.StatusSeeOther)
}

func landing(intent string) string {
	if intent == IntentLogStreams {
		return "/portal/streams"
	}
	return "/portal/events"
}

// logout ends the session: in the database, so that the cookie is refused
// wherever it is replayed, then in this browser.
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	hash, _ := s.linkHash()
	if err := p.cfg.Store.EndPortalSession(r.Context(), hash, p.cfg.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.fail(w, r, s, err)
		return
	}
	p.setCookie(w, r, "", -1)
	p.audit(r, s, "trail.portal_session.ended", nil)
	p.messageWith(w, r, http.StatusOK, messageData{Heading: "You have signed out",
		Text: "Your Admin Portal session has ended. Open a new link from your application to come back.", ReturnURL: s.ReturnURL}, nil)
}

func (p *Portal) audit(r *http.Request, s *session, action string, meta map[string]string) {
	p.auditTarget(r, s, action, "organization", s.Org, s.OrgName, meta)
}

// auditTarget records an admin's action on a target of the session's
// organization (a log stream, an export).
func (p *Portal) auditTarget(r *http.Request, s *session, action, targetType, targetID, targetName string, meta map[string]string) {
	if p.cfg.Audit == nil {
		return
	}
	m := map[string]string{"portal_session": s.ID[:8], "intent": s.Intent}
	if strings.Contains(s.Admin, ",") {
		m["admin_emails"] = s.Admin
	}
	for k, v := range meta {
		m[k] = v
	}
	p.cfg.Audit(r, Action{OrganizationID: s.Org, Action: action, Admin: s.actor(), AdminID: s.User,
		TargetType: targetType, TargetID: targetID, TargetName: targetName, Metadata: m})
}
