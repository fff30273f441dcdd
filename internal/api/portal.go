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

	"github.com/trailaudit/trail/internal/access"
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
}

// PortalLinks generates Admin Portal links.
type PortalLinks interface {
	// Intents lists the intents links can be generated for: "audit_logs",
	// and "log_streams" once log streams are configured.
	Intents() []string
	// GenerateLink stores a new single-use link into org's portal for
	// intent and returns its URL and expiry. adminEmails may be empty;
	// returnURL is "" or an absolute http(s) URL.
	GenerateLink(ctx context.Context, org, intent string, adminEmails []string, returnURL string) (link string, expires time.Time, err error)
	// EndSessions ends every open portal session of org and every link
	// of org not opened yet, and returns how many.
	EndSessions(ctx context.Context, org string) (int64, error)
}

func (s *Server) portalRoutes() {
	if s.cfg.Portal.Handler == nil || s.cfg.Portal.Links == nil {
		return
	}
	// A key with the admin scope generates links: a link opens every event
	// of the organization to whoever holds it. A key restricted to one
	// organization generates links for that organization only.
	s.handle("POST /portal/generate_link", access.ScopeAdmin, s.generatePortalLink)
	// Revoking is the counterpart: whoever may hand out access may take it
	// back (a leaked link, a departed admin).
	s.handle("DELETE /v1/organizations/{id}/portal_sessions", access.ScopeAdmin, s.revokePortalSessions)
	s.patterns["/portal/"] = true
	s.mux.Handle("/portal/", s.cfg.Portal.Handler)
}

// generateLinkRequest is the body of POST /portal/generate_link as the
// WorkOS SDKs send it.
type generateLinkRequest struct {
	Organization *string  `json:"organization"`
	Intent       *string  `json:"intent"`
	ReturnURL    *string  `json:"return_url"`
	SuccessURL   *string  `json:"success_url"` // WorkOS's, for setup flows; validated, unused by these intents
	AdminEmails  []string `json:"admin_emails"`
}

const (
	maxPortalURLLen   = 1000
	maxPortalAdmins   = 10
	maxPortalEmailLen = 254
)

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
	switch {
	case req.Intent == nil || *req.Intent == "":
		addErr(&errs, "intent", "required", "intent is required: "+strings.Join(intents, " or ")+".")
	case !slices.Contains(intents, *req.Intent):
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
	for i, e := range req.AdminEmails {
		a, err := mail.ParseAddress(e)
		if err != nil || a.Address != e || a.Name != "" || len(e) > maxPortalEmailLen {
			addErr(&errs, fmt.Sprintf("admin_emails[%d]", i), "invalid", "admin_emails must hold plain email addresses such as admin@example.com.")
		}
	}
	return errs
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
	if errs := req.validate(s.cfg.Portal.Links.Intents()); errs != nil {
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
	link, expires, err := s.cfg.Portal.Links.GenerateLink(r.Context(), orgID, *req.Intent, req.AdminEmails, returnURL)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(orgID)
	}
	if err != nil {
		return err
	}
	meta := map[string]string{"intent": *req.Intent, "expires_at": formatTime(expires)}
	if len(req.AdminEmails) > 0 {
		meta["admin_emails"] = truncateRunes(strings.Join(req.AdminEmails, ","), 500)
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

// PortalAction is an action an admin took in the Admin Portal.
type PortalAction struct {
	OrganizationID string
	Action         string // trail.<resource>.<verb>
	// Admin is the admin the portal link named; "" for an unnamed one
	// (recorded as "portal admin").
	Admin    string
	Target   PortalTarget
	Metadata map[string]string
}

// PortalTarget is what a PortalAction acted on.
type PortalTarget struct {
	Type, ID, Name string
}

// AuditPortal records a in the organization's log, attributed to the
// portal admin, with the request's address and user agent. r must be a
// request this Server is serving (the portal runs under its /portal/
// route). As with the API's own actions, a failure is logged, not returned.
func (s *Server) AuditPortal(r *http.Request, a PortalAction) {
	actor := auditEntity{Type: "portal_admin", ID: a.Admin, Name: a.Admin}
	if a.Admin == "" {
		actor.ID, actor.Name = "portal admin", "portal admin"
	}
	now := s.cfg.Now().UTC()
	meta := map[string]string{"request_id": infoFrom(r).id}
	for k, v := range a.Metadata {
		meta[k] = v
	}
	ev := auditEvent{
		Action:     a.Action,
		OccurredAt: now.Format(time.RFC3339Nano),
		Actor:      actor,
		Targets:    []auditEntity{{Type: a.Target.Type, ID: a.Target.ID, Name: a.Target.Name}},
		Context:    auditContext{Location: s.clientIP(r), UserAgent: truncateRunes(r.UserAgent(), 500)},
		Metadata:   meta,
	}
	setOrg(r, a.OrganizationID)
	raw, err := json.Marshal(ev)
	if err == nil {
		err = s.recordAudit(r.Context(), raw, []string{a.OrganizationID}, now)
	}
	if err != nil {
		s.log.Error("couldn't record an audit event of the Admin Portal; the action itself succeeded",
			"request_id", infoFrom(r).id, "action", a.Action, "organization_id", a.OrganizationID,
			"event", string(raw), "err", err)
	}
}
