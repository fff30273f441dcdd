package console

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
	"github.com/trailaudit/trail/internal/webauth"
)

// A console link is BaseURL/console/launch?secret=csl_<43 characters>: 32
// random bytes, base64url, stored as the SHA-256 of the whole secret in
// the portal's link table (store.PortalLinks) under org_system with the
// intent Intent. The prefix differs from the portal's ptl_, and both sides
// check the row's organization and intent: a console link never opens the
// portal, a portal link never opens the console.

const (
	tokenPrefix = "csl_"
	// Intent marks a link row as an operator console link.
	Intent = "operator_console"
	// LinkTTL is how long a console link may wait to be opened.
	LinkTTL = 5 * time.Minute
	// cookieName is the session cookie: scoped to /console, HttpOnly,
	// SameSite=Strict, Secure over HTTPS.
	cookieName     = "trail_console"
	maxCookieLen   = 1000
	sessionVersion = 1
	maxOperatorLen = 200
)

// ValidOperator reports whether name can name an operator: 1 to 200
// characters, without control characters.
func ValidOperator(name string) bool {
	return strings.TrimSpace(name) != "" && len(name) <= maxOperatorLen && !textsafe.HasControl(name)
}

// CreateLink stores a new single-use console link for operator and returns
// its URL under baseURL and its expiry. `trail console link` calls it
// beside a running server: the link is a database row, so any replica
// opens it.
func CreateLink(ctx context.Context, st store.PortalLinks, baseURL, operator string, now time.Time) (string, time.Time, error) {
	if !ValidOperator(operator) {
		return "", time.Time{}, errors.New("the operator's name must be 1 to 200 characters, without control characters")
	}
	token := webauth.NewSecret(tokenPrefix)
	now = now.UTC().Truncate(time.Millisecond)
	l := store.PortalLink{Hash: sha256.Sum256([]byte(token)), OrganizationID: store.SystemOrganizationID, Intent: Intent,
		ExternalUserID: operator, CreatedAt: now, ExpiresAt: now.Add(LinkTTL)}
	if err := st.CreatePortalLink(ctx, l); err != nil {
		return "", time.Time{}, fmt.Errorf("storing the console link: %w", err)
	}
	return strings.TrimSuffix(baseURL, "/") + "/console/launch?secret=" + token, l.ExpiresAt, nil
}

// parseToken checks a link secret's form and returns its hash.
func parseToken(t string) ([32]byte, bool) { return webauth.ParseSecret(tokenPrefix, t) }

// consoleRow reports whether a link row is a console link.
func consoleRow(l store.PortalLink) bool {
	return l.OrganizationID == store.SystemOrganizationID && l.Intent == Intent
}

func (c *Console) launchToken(hash [32]byte) string { return c.signer.LaunchToken(hash) }

// linkProblem renders the page of a link that cannot be opened, and
// reports whether it did.
func (c *Console) linkProblem(w http.ResponseWriter, r *http.Request, err error) bool {
	const again = " Run trail console link on the server for a new one."
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		c.message(w, r, http.StatusNotFound, "This link is not valid", "This deployment never issued this console link."+again)
	case errors.Is(err, store.ErrLinkUsed):
		c.message(w, r, http.StatusGone, "This link was already used", "Each console link opens one session, once."+again)
	case errors.Is(err, store.ErrLinkRevoked):
		c.message(w, r, http.StatusGone, "This link was revoked", "The console's sessions were revoked after this link was created."+again)
	case errors.Is(err, store.ErrLinkExpired):
		c.message(w, r, http.StatusGone, "This link has expired", "Console links must be opened within 5 minutes."+again)
	default:
		c.fail(w, r, nil, err)
	}
	return true
}

func (c *Console) linkSecret(w http.ResponseWriter, r *http.Request, v []string) ([32]byte, bool) {
	if len(v) == 1 {
		if hash, ok := parseToken(v[0]); ok {
			return hash, true
		}
	}
	c.message(w, r, http.StatusBadRequest, "This link is not valid",
		"The secret parameter is missing or malformed; the link may have been cut when it was copied. Run trail console link on the server for a new one.")
	return [32]byte{}, false
}

type launchData struct{ Operator, Secret, Token string }

// launchPage is GET /console/launch?secret=…: it looks the link up and
// shows a button, and never spends the link (link scanners only GET).
func (c *Console) launchPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hash, ok := c.linkSecret(w, r, q["secret"])
	if !ok {
		return
	}
	l, err := c.cfg.Store.PortalLink(r.Context(), hash)
	if err == nil {
		switch now := c.cfg.Now(); {
		case !consoleRow(l):
			err = store.ErrNotFound
		default:
			err = webauth.LinkState(l, now)
		}
	}
	if c.linkProblem(w, r, err) {
		return
	}
	c.render(w, r, http.StatusOK, "launch", page{Title: "Open the operator console",
		Data: launchData{Operator: l.ExternalUserID, Secret: q.Get("secret"), Token: c.launchToken(hash)}})
}

// sameOrigin reports whether a POST comes from a page of this server
// (webauth.SameOrigin).
func (c *Console) sameOrigin(r *http.Request) bool { return webauth.SameOrigin(r, c.cfg.BaseURL) }

// launch is POST /console/launch from the launch page: redeem the link,
// start the session, move to a URL without the secret.
func (c *Console) launch(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		c.message(w, r, http.StatusBadRequest, "This form is not valid", "The form could not be read. Open the link again.")
		return
	}
	hash, ok := c.linkSecret(w, r, r.PostForm["secret"])
	if !ok {
		return
	}
	if !(webauth.Launcher{Prefix: tokenPrefix, Signer: c.signer, BaseURL: c.cfg.BaseURL}).Authentic(r, hash) {
		c.message(w, r, http.StatusForbidden, "This request was refused",
			"The console opens only from its own page: open the link again and press the button on the page it shows.")
		return
	}
	// Only a console row can be redeemed here: look first, so that
	// nothing else is spent.
	if l, err := c.cfg.Store.PortalLink(r.Context(), hash); err == nil && !consoleRow(l) {
		c.linkProblem(w, r, store.ErrNotFound)
		return
	}
	now := c.cfg.Now()
	l, err := c.cfg.Store.RedeemPortalLink(r.Context(), hash, now)
	if c.linkProblem(w, r, err) {
		return
	}
	s := &session{Version: sessionVersion, Operator: l.ExternalUserID, ID: webauth.NewSessionID(),
		Expires: now.Add(c.cfg.SessionTTL).Unix(), Link: webauth.HashHex(hash)}
	c.setCookie(w, c.encodeSession(s), int(c.cfg.SessionTTL/time.Second))
	c.audit(r, s, "trail.console_session.started", "operator", s.Operator, s.Operator, []string{store.SystemOrganizationID}, nil)
	http.Redirect(w, r, "/console/organizations", http.StatusSeeOther)
}

// session is one operator's console session: a signed cookie naming the
// link row that says whether it has ended.
type session struct {
	Version  int    `json:"v"`
	Operator string `json:"op"`
	ID       string `json:"s"` // random; the CSRF token is derived from it
	Expires  int64  `json:"e"` // unix seconds
	Link     string `json:"l"` // hex SHA-256 of the link's token
}

func (s *session) linkHash() ([32]byte, bool) { return webauth.ParseHashHex(s.Link) }

func (c *Console) encodeSession(s *session) string { return c.signer.Seal(s) }

var (
	errBadSession     = errors.New("session cookie is malformed or not signed by this console")
	errExpiredSession = errors.New("session expired")
	errEndedSession   = errors.New("session ended")
)

func (c *Console) decodeSession(v string, now time.Time) (*session, error) {
	var s session
	if err := c.signer.Open(v, maxCookieLen, &s); err != nil || s.Version != sessionVersion || len(s.ID) != 32 || !ValidOperator(s.Operator) {
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

func (c *Console) setCookie(w http.ResponseWriter, value string, maxAge int) {
	c.cookie.Set(w, value, maxAge)
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// session requires a live console session; without one the answer is 401
// and a page saying how to sign in.
func (c *Console) session(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		var s *session
		if err == nil {
			s, err = c.decodeSession(ck.Value, c.cfg.Now())
		}
		if err == nil {
			err = c.checkNotEnded(r.Context(), s)
		}
		switch {
		case errors.Is(err, errExpiredSession), errors.Is(err, errEndedSession):
			c.setCookie(w, "", -1)
			c.message(w, r, http.StatusUnauthorized, "Your session has ended",
				"Console sessions last 8 hours and end when you sign out. Run trail console link on the server to sign in again.")
			return
		case err != nil && !errors.Is(err, errBadSession) && !errors.Is(err, http.ErrNoCookie):
			c.fail(w, r, nil, err)
			return
		case err != nil:
			if ck != nil {
				c.setCookie(w, "", -1)
			}
			c.message(w, r, http.StatusUnauthorized, "Sign-in needed",
				"The operator console opens through a link: run trail console link on the server and open the link it prints.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// checkNotEnded reads the session's link row: a missing, ended, or
// non-console row ends the session.
func (c *Console) checkNotEnded(ctx context.Context, s *session) error {
	hash, _ := s.linkHash()
	l, err := c.cfg.Store.PortalLink(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errEndedSession
	case err != nil:
		return fmt.Errorf("checking a console session: %w", err)
	case !consoleRow(l) || !l.EndedAt.IsZero() || l.UsedAt.IsZero() || l.ExternalUserID != s.Operator:
		return errEndedSession
	}
	return nil
}

func (c *Console) csrfToken(s *session) string { return c.signer.CSRFToken(s.ID) }

// csrf requires the session's token in the form field "csrf" and a POST
// from this origin.
func (c *Console) csrf(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionFrom(r)
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			c.messageIn(w, r, http.StatusBadRequest, "This form is not valid", "The form could not be read. Go back, reload the page and try again.", s)
			return
		}
		if !c.sameOrigin(r) || !webauth.Equal(r.PostFormValue("csrf"), c.csrfToken(s)) {
			c.messageIn(w, r, http.StatusForbidden, "Form expired",
				"This form was not sent from your current console session. Go back, reload the page and try again.", s)
			return
		}
		h(w, r)
	}
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/console/organizations", http.StatusSeeOther)
}

// logout ends the session in the database, so that the cookie is refused
// wherever it is replayed, then in this browser.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	hash, _ := s.linkHash()
	if err := c.cfg.Store.EndPortalSession(r.Context(), hash, c.cfg.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, err)
		return
	}
	c.setCookie(w, "", -1)
	c.audit(r, s, "trail.console_session.ended", "operator", s.Operator, s.Operator, []string{store.SystemOrganizationID}, nil)
	c.message(w, r, http.StatusOK, "You have signed out", "Your console session has ended. Run trail console link on the server to sign in again.")
}

// safeURL is a relative URL of the console with query q.
func safeURL(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
