package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// The Admin Portal (docs/DESIGN.md §7) is served by package portal; the API only
// generates its links (POST /portal/generate_link, WorkOS-compatible) and
// records the portal's actions in the audit log.

// PortalConfig connects the API to the Admin Portal. Without Handler and
// Links the portal routes are not served.
type PortalConfig struct {
	// Handler serves the portal's pages under /portal/ (every path there
	// but /portal/generate_link).
	Handler http.Handler
	// Links generates the links.
	Links PortalLinks
	// Settings stores organizations' portal settings; the
	// /v1/organizations/{id}/portal_settings routes exist only when set.
	Settings store.PortalSettingsStore
}

// PortalLinks generates Admin Portal links.
type PortalLinks interface {
	// Intents lists the intents links can be generated for: "audit_logs",
	// and "log_streams" once log streams are configured.
	Intents() []string
	// GenerateLink stores a new single-use link into org's portal for
	// intent and returns its URL and expiry. adminEmails may be empty;
	// externalUserID is the application's id of the admin ("" when none);
	// returnURL is "" or an absolute http(s) URL.
	GenerateLink(ctx context.Context, org, intent string, adminEmails []string, externalUserID, returnURL string) (link string, expires time.Time, err error)
	// EndSessions ends every open portal session of org and every link
	// of org not opened yet, and returns how many.
	EndSessions(ctx context.Context, org string) (int64, error)
	// RevokeLinks is EndSessions for the links of org generated for one
	// externalUserID (not ""): the organization's other admins keep theirs.
	RevokeLinks(ctx context.Context, org, externalUserID string) (int64, error)
}

// portalAPIPaths are the API endpoints under /portal/, the rest being the
// portal's pages.
var portalAPIPaths = []string{"/portal/generate_link", "/portal/revoke_link"}

// portalPages hands the portal its pages, but answers API clients in JSON:
// an API endpoint under /portal/ with the wrong method is 405, and a request
// that carries an API key (Authorization) or a JSON body is an API call that
// matched no endpoint, 404 — not the portal's HTML, which an SDK cannot
// parse. Browsers send neither to the portal's pages.
func (s *Server) portalPages(w http.ResponseWriter, r *http.Request) {
	path := truncate(r.URL.Path, 200)
	if slices.Contains(portalAPIPaths, r.URL.Path) {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			message: fmt.Sprintf("%s is not allowed on %s; use POST.", r.Method, path)})
		return
	}
	if r.Header.Get("Authorization") != "" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeAPIError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			message: fmt.Sprintf("Trail has no endpoint %s %s: check the method and path against the API documentation.", r.Method, path)})
		return
	}
	s.cfg.Portal.Handler.ServeHTTP(w, r)
}

// generateLinkRequest is the body of POST /portal/generate_link as the
// WorkOS SDKs send it.
type generateLinkRequest struct {
	Organization *string `json:"organization"`
	// Intent is optional, as in WorkOS's API since SDK v11: audit_logs
	// when absent.
	Intent      *string  `json:"intent"`
	ReturnURL   *string  `json:"return_url"`
	SuccessURL  *string  `json:"success_url"` // WorkOS's, for setup flows; validated, unused by these intents
	AdminEmails []string `json:"admin_emails"`
	// ItContactEmails are WorkOS's IT contacts granted access to the
	// portal: to Trail, more admins the link names.
	ItContactEmails []string `json:"it_contact_emails"`
	// ExternalUserID is the application's id of the admin the link is for:
	// the actor of what the session does, and what revoke_link revokes.
	ExternalUserID *string `json:"external_user_id"`
	// IntentOptions configure WorkOS's SSO setup flow; accepted, unused.
	IntentOptions json.RawMessage `json:"intent_options"`
}

const (
	maxPortalURLLen    = 1000
	maxPortalAdmins    = 10
	maxPortalITContact = 20 // WorkOS's limit for it_contact_emails
	maxPortalEmailLen  = 254
	maxExternalUserID  = 255
)

// workosOnlyIntents are the Admin Portal intents of WorkOS products Trail
// does not have, with the product's name for the answer.
var workosOnlyIntents = map[string]string{
	"sso":                 "Single Sign-On",
	"dsync":               "Directory Sync",
	"domain_verification": "Domain Verification",
	"certificate_renewal": "SAML certificate renewal (Single Sign-On)",
	"bring_your_own_key":  "Bring Your Own Key (Vault)",
}

// validExternalUserID reports whether id may name a portal admin: 1 to 255
// bytes of printable UTF-8 without control characters.
func validExternalUserID(id string) bool {
	if id == "" || len(id) > maxExternalUserID || !utf8.ValidString(id) {
		return false
	}
	return !strings.ContainsFunc(id, unicode.IsControl)
}

// validPortalURL reports whether u may be a portal return URL: an absolute
// http or https URL without credentials, at most 1000 bytes. Anything else
// (javascript:, data:, relative or protocol-relative URLs) could turn the
// portal's "back to the application" link into an attack.
func validPortalURL(u string) bool {
	if len(u) > maxPortalURLLen || strings.ContainsAny(u, " \t\r\n\\") {
		return false
	}
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && p.User == nil && p.Opaque == ""
}

func (req *generateLinkRequest) validate(intents []string) []fieldError {
	var errs []fieldError
	if req.Organization == nil || *req.Organization == "" {
		addErr(&errs, "organization", "required", "organization is required: the id of the organization whose portal to open.")
	}
	if req.Intent == nil || *req.Intent == "" {
		def := "audit_logs"
		req.Intent = &def
	}
	if !slices.Contains(intents, *req.Intent) {
		msg := fmt.Sprintf("intent %q is not available in this deployment; use %s.", truncate(*req.Intent, 50), strings.Join(intents, " or "))
		if *req.Intent == "log_streams" {
			msg = "intent log_streams is not available: this deployment's Admin Portal has no log streams pages; use audit_logs."
		}
		addErr(&errs, "intent", "invalid", msg)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"return_url", req.ReturnURL}, {"success_url", req.SuccessURL}} {
		if f.v != nil && *f.v != "" && !validPortalURL(*f.v) {
			addErr(&errs, f.name, "invalid", f.name+" must be an absolute http or https URL of at most 1000 characters, without credentials.")
		}
	}
	if len(req.AdminEmails) > maxPortalAdmins {
		addErr(&errs, "admin_emails", "invalid", fmt.Sprintf("admin_emails holds at most %d addresses.", maxPortalAdmins))
	}
	if len(req.ItContactEmails) > maxPortalITContact {
		addErr(&errs, "it_contact_emails", "invalid", fmt.Sprintf("it_contact_emails holds at most %d addresses.", maxPortalITContact))
	}
	for _, list := range []struct {
		name   string
		emails []string
	}{{"admin_emails", req.AdminEmails}, {"it_contact_emails", req.ItContactEmails}} {
		for i, e := range list.emails {
			a, err := mail.ParseAddress(e)
			if err != nil || a.Address != e || a.Name != "" || len(e) > maxPortalEmailLen {
				addErr(&errs, fmt.Sprintf("%s[%d]", list.name, i), "invalid", list.name+" must hold plain email addresses such as admin@example.com.")
			}
		}
	}
	if req.ExternalUserID != nil && !validExternalUserID(*req.ExternalUserID) {
		addErr(&errs, "external_user_id", "invalid", "external_user_id must be your application's id of the admin: 1 to 255 characters, no control characters.")
	}
	return errs
}

// emails are the admins the link names: admin_emails, then the
// it_contact_emails not among them.
func (req *generateLinkRequest) emails() []string {
	out := slices.Clone(req.AdminEmails)
	for _, e := range req.ItContactEmails {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// generatePortalLink is POST /portal/generate_link: a link into the
// organization's Admin Portal, valid five minutes, for one use.
func (s *Server) generatePortalLink(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req generateLinkRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	intents := s.cfg.Portal.Links.Intents()
	if req.Intent != nil {
		if product, ok := workosOnlyIntents[*req.Intent]; ok {
			// The message is the whole answer (no "errors"), so that the
			// SDKs, which show the codes of "errors" instead of the
			// message when there are any, show which product is missing.
			return &apiError{status: http.StatusUnprocessableEntity, code: "intent_not_available",
				message: fmt.Sprintf("intent %s is for WorkOS %s, which this organization does not have: Trail is an audit log service, and its Admin Portal serves %s.",
					*req.Intent, product, strings.Join(intents, " and "))}
		}
	}
	if errs := req.validate(intents); errs != nil {
		return errInvalidParams(errs)
	}
	orgID := *req.Organization
	if orgID == store.SystemOrganizationID {
		return errOrgNotFound(orgID)
	}
	org, err := s.visibleOrg(r, orgID)
	if err != nil {
		return err
	}
	returnURL := ""
	if req.ReturnURL != nil {
		returnURL = *req.ReturnURL
	}
	externalUserID := ""
	if req.ExternalUserID != nil {
		externalUserID = *req.ExternalUserID
	}
	emails := req.emails()
	link, expires, err := s.cfg.Portal.Links.GenerateLink(r.Context(), orgID, *req.Intent, emails, externalUserID, returnURL)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(orgID)
	}
	if err != nil {
		return err
	}
	meta := map[string]string{"intent": *req.Intent, "expires_at": formatTime(expires)}
	if len(emails) > 0 {
		meta["admin_emails"] = selfaudit.Truncate(strings.Join(emails, ","), 500)
	}
	if externalUserID != "" {
		meta["external_user_id"] = selfaudit.Truncate(externalUserID, 255)
	}
	s.audit(r, auditAction{
		action: "trail.portal_link.generated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
		meta:   meta,
	})
	writeJSON(w, http.StatusCreated, map[string]string{"link": link})
	return nil
}

// revokePortalSessions is DELETE /v1/organizations/{id}/portal_sessions: every
// Admin Portal session of the organization ends at once, on every replica,
// and every link generated for it and not opened yet can no longer be. New
// links work as before.
func (s *Server) revokePortalSessions(w http.ResponseWriter, r *http.Request) error {
	orgID := r.PathValue("id")
	if orgID == store.SystemOrganizationID {
		return errOrgNotFound(orgID)
	}
	org, err := s.visibleOrg(r, orgID)
	if err != nil {
		return err
	}
	n, err := s.cfg.Portal.Links.EndSessions(r.Context(), org.ID)
	if err != nil {
		return err
	}
	s.audit(r, auditAction{
		action: "trail.portal_sessions.revoked",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
		meta:   map[string]string{"ended": strconv.FormatInt(n, 10)},
	})
	writeJSON(w, http.StatusOK, struct {
		OrganizationID string `json:"organization_id"`
		Ended          int64  `json:"ended"`
	}{org.ID, n})
	return nil
}

// revokeLinkRequest is the body of POST /portal/revoke_link as the WorkOS
// SDKs send it.
type revokeLinkRequest struct {
	Organization   *string `json:"organization"`
	ExternalUserID *string `json:"external_user_id"`
}

// revokePortalLink is POST /portal/revoke_link: every link of the
// organization generated with that external_user_id can no longer be
// opened, and every session opened through one ends at once, on every
// replica. The organization's other admins keep their sessions. Like
// WorkOS's revocation endpoints it answers 200 with no body; revoking a
// user with no links is not an error (the user may never have opened the
// portal).
func (s *Server) revokePortalLink(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req revokeLinkRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var errs []fieldError
	if req.Organization == nil || *req.Organization == "" {
		addErr(&errs, "organization", "required", "organization is required: the id of the organization whose portal links to revoke.")
	}
	switch {
	case req.ExternalUserID == nil || *req.ExternalUserID == "":
		addErr(&errs, "external_user_id", "required", "external_user_id is required: the id your application gave generate_link for the admin.")
	case !validExternalUserID(*req.ExternalUserID):
		addErr(&errs, "external_user_id", "invalid", "external_user_id must be 1 to 255 characters, no control characters.")
	}
	if errs != nil {
		return errInvalidParams(errs)
	}
	orgID := *req.Organization
	if orgID == store.SystemOrganizationID {
		return errOrgNotFound(orgID)
	}
	org, err := s.visibleOrg(r, orgID)
	if err != nil {
		return err
	}
	n, err := s.cfg.Portal.Links.RevokeLinks(r.Context(), org.ID, *req.ExternalUserID)
	if err != nil {
		return err
	}
	s.audit(r, auditAction{
		action: "trail.portal_link.revoked",
		target: auditEntity{Type: "portal_admin", ID: selfaudit.Truncate(*req.ExternalUserID, 255), Name: selfaudit.Truncate(*req.ExternalUserID, 255)},
		orgs:   []string{org.ID},
		meta:   map[string]string{"ended": strconv.FormatInt(n, 10), "organization_name": selfaudit.Truncate(org.Name, 255)},
	})
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}
