package portal

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/webauth"
)

// A link is BaseURL/portal/launch?secret=ptl_<43 characters>: 32 random
// bytes, base64url. Only the SHA-256 of the secret is stored; opening the
// link shows a page with one button, and pressing it redeems the link
// (store.PortalLinks.RedeemPortalLink: once, atomically in the database, so
// across replicas too) and starts a session.

const tokenPrefix = "ptl_"

// newToken returns a new link secret.
func newToken() string { return webauth.NewSecret(tokenPrefix) }

// parseToken checks a link secret's form and returns the hash it is stored
// under.
func parseToken(t string) ([32]byte, bool) { return webauth.ParseSecret(tokenPrefix, t) }

// Intents lists the intents links can be generated for.
func (p *Portal) Intents() []string {
	if p.cfg.Streams != nil {
		return []string{IntentAuditLogs, IntentLogStreams}
	}
	return []string{IntentAuditLogs}
}

// GenerateLink stores a new link into org's portal (it implements
// api.PortalLinks). The caller has validated returnURL, the emails and
// externalUserID (the application's id of the admin, "" when none).
func (p *Portal) GenerateLink(ctx context.Context, org, intent string, adminEmails []string, externalUserID, returnURL string) (string, time.Time, error) {
	if intent != IntentAuditLogs && (intent != IntentLogStreams || p.cfg.Streams == nil) {
		return "", time.Time{}, fmt.Errorf("intent %q is not available", intent)
	}
	now := p.cfg.Now().UTC().Truncate(time.Millisecond)
	token := newToken()
	l := store.PortalLink{Hash: sha256.Sum256([]byte(token)), OrganizationID: org, Intent: intent,
		AdminEmail: strings.Join(adminEmails, ","), ExternalUserID: externalUserID, ReturnURL: returnURL, CreatedAt: now, ExpiresAt: now.Add(p.cfg.LinkTTL)}
	if err := p.cfg.Store.CreatePortalLink(ctx, l); err != nil {
		return "", time.Time{}, err
	}
	return p.cfg.BaseURL + "/portal/launch?secret=" + token, l.ExpiresAt, nil
}

// Opening a link takes two steps, so that what follows links without a
// person (mail security scanners, chat link previews) cannot spend it:
// GET /portal/launch?secret=… only looks the link up and shows a page
// naming the organization with one button; that button POSTs the secret
// back with a token bound to the link, and only the POST redeems it.

// launchToken is the anti-forgery token of the launch form of the link
// with this hash.
func (p *Portal) launchToken(hash [32]byte) string { return p.signer().LaunchToken(hash) }

// linkProblem renders the page of a link that cannot be opened, and
// reports whether it did.
func (p *Portal) linkProblem(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		p.message(w, r, http.StatusNotFound, "This link is not valid",
			"This deployment never issued this portal link. Open the Admin Portal again from your application.")
	case errors.Is(err, store.ErrLinkUsed):
		p.message(w, r, http.StatusGone, "This link was already used",
			"Each portal link opens one session, once. Open the Admin Portal again from your application to get a new link.")
	case errors.Is(err, store.ErrLinkRevoked):
		p.message(w, r, http.StatusGone, "This link was revoked",
			"The organization's Admin Portal sessions were revoked after this link was generated. Open the Admin Portal again from your application to get a new link.")
	case errors.Is(err, store.ErrLinkExpired):
		p.message(w, r, http.StatusGone, "This link has expired",
			"Portal links must be opened within 5 minutes. Open the Admin Portal again from your application to get a new link.")
	default:
		p.fail(w, r, nil, err)
	}
	return true
}

// linkSecret returns the hash of the one well-formed secret in v, or
// renders the page saying it is not.
func (p *Portal) linkSecret(w http.ResponseWriter, r *http.Request, v []string) ([32]byte, bool) {
	if len(v) == 1 {
		if hash, ok := parseToken(v[0]); ok {
			return hash, true
		}
	}
	p.message(w, r, http.StatusBadRequest, "This link is not valid",
		"The portal link is incomplete or malformed; it may have been cut when it was copied. Open the Admin Portal again from your application.")
	return [32]byte{}, false
}

type launchData struct {
	OrgName, What, Admin string
	Secret, Token        string
}

// launchPage is GET /portal/launch?secret=…: the link is looked up, never
// spent, however often it is opened.
func (p *Portal) launchPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hash, ok := p.linkSecret(w, r, q["secret"])
	if !ok {
		return
	}
	l, err := p.cfg.Store.PortalLink(r.Context(), hash)
	if err == nil {
		err = webauth.LinkState(l, p.cfg.Now())
	}
	if p.linkProblem(w, r, err) {
		return
	}
	org, err := p.cfg.Store.Organization(r.Context(), l.OrganizationID)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	what := "audit log"
	if l.Intent == IntentLogStreams {
		what = "log streams"
	}
	p.render(w, r, http.StatusOK, "launch", page{Title: "Open the " + what + " of " + org.Name, FrameOrg: org.ID,
		Data: launchData{OrgName: org.Name, What: what, Admin: l.AdminEmail, Secret: q.Get("secret"), Token: p.launchToken(hash)}})
}

// launch is POST /portal/launch from the launch page: redeem the link,
// start the session, and move to a URL without the secret.
func (p *Portal) launch(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		p.message(w, r, http.StatusBadRequest, "This form is not valid",
			"The form could not be read. Open the Admin Portal again from your application.")
		return
	}
	hash, ok := p.linkSecret(w, r, r.PostForm["secret"])
	if !ok {
		return
	}
	if !(webauth.Launcher{Prefix: tokenPrefix, Signer: p.signer(), BaseURL: p.cfg.BaseURL}).Authentic(r, hash) {
		p.message(w, r, http.StatusForbidden, "This request was refused",
			"The portal opens only from its own page. Open the link from your application again and press the button on the page it shows.")
		return
	}
	now := p.cfg.Now()
	l, err := p.cfg.Store.RedeemPortalLink(r.Context(), hash, now)
	if p.linkProblem(w, r, err) {
		return
	}
	org, err := p.cfg.Store.Organization(r.Context(), l.OrganizationID)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	s := &session{Version: sessionVersion, Org: org.ID, OrgName: org.Name, Intent: l.Intent, Admin: l.AdminEmail, User: l.ExternalUserID,
		ReturnURL: l.ReturnURL, ID: newSessionID(), Expires: now.Add(p.cfg.SessionTTL).Unix(), Link: webauth.HashHex(hash)}
	p.setCookie(w, r, p.encodeSession(s), int(p.cfg.SessionTTL/time.Second))
	p.audit(r, s, "trail.portal_session.started", nil)
	http.Redirect(w, r, landing(s.Intent), http.StatusSeeOther)
}
