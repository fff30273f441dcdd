package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// A link is BaseURL/portal/launch?secret=ptl_<43 characters>: 32 random
// bytes, base64url. Only the SHA-256 of the secret is stored; opening the
// link redeems it (store.PortalLinks.RedeemPortalLink: once, atomically in
// the database, so across replicas too) and starts a session.

const tokenPrefix = "ptl_"

// newToken returns a new link secret.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// parseToken checks a link secret's form and returns the hash it is stored
// under.
func parseToken(t string) ([32]byte, bool) {
	if len(t) != len(tokenPrefix)+43 || !strings.HasPrefix(t, tokenPrefix) {
		return [32]byte{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(t[len(tokenPrefix):])
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(t)), true
}

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

// launch is GET /portal/launch?secret=…: redeem the link, start the
// session, and move to a URL without the secret.
func (p *Portal) launch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hash, ok := parseToken(q.Get("secret"))
	if !ok || len(q["secret"]) != 1 {
		p.message(w, r, http.StatusBadRequest, "This link is not valid",
			"The portal link is incomplete or malformed; it may have been cut when it was copied. Open the Admin Portal again from your application.")
		return
	}
	now := p.cfg.Now()
	l, err := p.cfg.Store.RedeemPortalLink(r.Context(), hash, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.message(w, r, http.StatusNotFound, "This link is not valid",
			"This deployment never issued this portal link. Open the Admin Portal again from your application.")
		return
	case errors.Is(err, store.ErrLinkUsed):
		p.message(w, r, http.StatusGone, "This link was already used",
			"Each portal link opens one session, once. Open the Admin Portal again from your application to get a new link.")
		return
	case errors.Is(err, store.ErrLinkRevoked):
		p.message(w, r, http.StatusGone, "This link was revoked",
			"The organization's Admin Portal sessions were revoked after this link was generated. Open the Admin Portal again from your application to get a new link.")
		return
	case errors.Is(err, store.ErrLinkExpired):
		p.message(w, r, http.StatusGone, "This link has expired",
			"Portal links must be opened within 5 minutes. Open the Admin Portal again from your application to get a new link.")
		return
	case err != nil:
		p.fail(w, r, nil, err)
		return
	}
	org, err := p.cfg.Store.Organization(r.Context(), l.OrganizationID)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	s := &session{Version: sessionVersion, Org: org.ID, OrgName: org.Name, Intent: l.Intent, Admin: l.AdminEmail, User: l.ExternalUserID,
		ReturnURL: l.ReturnURL, ID: newSessionID(), Expires: now.Add(p.cfg.SessionTTL).Unix(), Link: hex.EncodeToString(hash[:])}
	p.setCookie(w, p.encodeSession(s), int(p.cfg.SessionTTL/time.Second))
	p.audit(r, s, "trail.portal_session.started", nil)
	http.Redirect(w, r, landing(s.Intent), http.StatusSeeOther)
}
