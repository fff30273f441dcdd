package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

// organizationJSON is WorkOS's organization object. Trail has no domains,
// profiles policy or metadata for organizations, so those are always empty
// (the WorkOS SDKs read them, and domains must be an array).
type organizationJSON struct {
	Object                           string   `json:"object"`
	ID                               string   `json:"id"`
	Name                             string   `json:"name"`
	AllowProfilesOutsideOrganization bool     `json:"allow_profiles_outside_organization"`
	Domains                          []string `json:"domains"`
	ExternalID                       *string  `json:"external_id"`
	Metadata                         struct{} `json:"metadata"`
	CreatedAt                        string   `json:"created_at"`
	UpdatedAt                        string   `json:"updated_at"`
}

func orgJSON(o store.Organization) organizationJSON {
	j := organizationJSON{Object: "organization", ID: o.ID, Name: o.Name, Domains: []string{},
		CreatedAt: formatTime(o.CreatedAt), UpdatedAt: formatTime(o.UpdatedAt)}
	if o.ExternalID != "" {
		j.ExternalID = &o.ExternalID
	}
	return j
}

// createOrganizationRequest is the body of POST /organizations as the WorkOS
// SDKs send it. The fields Trail does not store are accepted only when
// empty, so that nothing a client sends is silently dropped.
type createOrganizationRequest struct {
	// ID, Trail's extension, creates the organization under an id it
	// already has at WorkOS (org_ and a ULID), so that an application
	// switching over keeps passing the ids its database holds.
	ID                               *string                    `json:"id"`
	Name                             *string                    `json:"name"`
	ExternalID                       *string                    `json:"external_id"`
	Metadata                         map[string]json.RawMessage `json:"metadata"`
	Domains                          []json.RawMessage          `json:"domains"`
	DomainData                       []json.RawMessage          `json:"domain_data"`
	AllowProfilesOutsideOrganization *bool                      `json:"allow_profiles_outside_organization"`
	IdempotencyKey                   *string                    `json:"idempotency_key"` // sent by the WorkOS Go SDK; accepted and ignored
}

const maxNameLen = 200

func (req *createOrganizationRequest) validate() []fieldError {
	var errs []fieldError
	if req.ID != nil && !access.ValidOrganizationID(*req.ID) {
		addErr(&errs, "id", "invalid", "id must be an organization id in WorkOS's form, org_ and a 26-character ULID such as org_01EHZNVPK3SFK441A1RGBFSHRT; leave it out to have Trail make one.")
	}
	validateName(req.Name, &errs)
	switch {
	case req.ExternalID != nil && utf8.RuneCountInString(*req.ExternalID) > maxNameLen:
		addErr(&errs, "external_id", "invalid", "external_id must be at most 200 characters.")
	case req.ExternalID != nil && textsafe.HasControl(*req.ExternalID):
		addErr(&errs, "external_id", "invalid", "external_id must not contain control characters (U+0000–U+001F, U+007F–U+009F).")
	}
	if len(req.Metadata) > 0 {
		addErr(&errs, "metadata", "unsupported", "Trail does not store organization metadata; send an empty object or leave metadata out.")
	}
	if len(req.Domains) > 0 || len(req.DomainData) > 0 {
		addErr(&errs, "domains", "unsupported", "Trail does not manage organization domains; leave domains and domain_data empty.")
	}
	if req.AllowProfilesOutsideOrganization != nil && *req.AllowProfilesOutsideOrganization {
		addErr(&errs, "allow_profiles_outside_organization", "unsupported", "Trail has no SSO profiles; allow_profiles_outside_organization must be false or left out.")
	}
	return errs
}

func validateName(name *string, errs *[]fieldError) {
	switch {
	case name == nil || *name == "":
		addErr(errs, "name", "required", "name is required: 1 to 200 characters.")
	case utf8.RuneCountInString(*name) > maxNameLen:
		addErr(errs, "name", "invalid", fmt.Sprintf("name must be at most 200 characters, not %d.", utf8.RuneCountInString(*name)))
	case textsafe.HasControl(*name):
		// Names are audit events' target names, which refuse them too.
		addErr(errs, "name", "invalid", "name must not contain control characters (U+0000–U+001F, U+007F–U+009F).")
	}
}

// createOrganization is POST /organizations (admin, unrestricted keys only:
// a key restricted to one organization cannot create another).
func (s *Server) createOrganization(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if p.Restricted() {
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: "This API key is restricted to " + p.OrganizationID + "; creating organizations needs an unrestricted admin key."}
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req createOrganizationRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if errs := req.validate(); errs != nil {
		return errInvalidParams(errs)
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	org := store.Organization{ID: access.NewOrganizationID(now), Name: *req.Name, CreatedAt: now, UpdatedAt: now}
	if req.ID != nil {
		org.ID = *req.ID
	}
	if req.ExternalID != nil {
		org.ExternalID = *req.ExternalID
	}
	setOrg(r, org.ID)
	if err := s.st.CreateOrganization(r.Context(), org); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return s.orgConflict(r, org)
		}
		return err
	}
	meta := map[string]string{}
	if org.ExternalID != "" {
		meta["external_id"] = org.ExternalID
	}
	if req.ID != nil {
		meta["id_given"] = "true"
	}
	s.audit(r, auditAction{
		action: "trail.organization.created",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID, store.SystemOrganizationID},
		meta:   meta,
	})
	writeJSON(w, http.StatusCreated, orgJSON(org))
	return nil
}

// orgConflict is the 409 of an organization that could not be created
// because its id or its external_id is taken, saying which.
func (s *Server) orgConflict(r *http.Request, org store.Organization) error {
	if _, err := s.st.Organization(r.Context(), org.ID); err == nil {
		return &apiError{status: http.StatusConflict, code: "conflict",
			message: fmt.Sprintf("An organization with id '%s' already exists.", org.ID)}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return &apiError{status: http.StatusConflict, code: "conflict",
		message: fmt.Sprintf("An organization with external_id '%s' already exists.", org.ExternalID)}
}

// visibleOrg returns organization id when the caller may see it and it
// exists, and otherwise the 404 an unknown organization gets, so that a key
// restricted to another organization learns nothing. It records the
// organization for the request log.
func (s *Server) visibleOrg(r *http.Request, id string) (store.Organization, error) {
	if !principal(r).CanAccessOrg(id) {
		return store.Organization{}, errOrgNotFound(id)
	}
	setOrg(r, id)
	org, err := s.st.Organization(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return org, errOrgNotFound(id)
	}
	return org, err
}

// getOrganization is GET /organizations/{id}: for admin keys, and for any
// key restricted to that organization.
func (s *Server) getOrganization(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if !p.CanAccessOrg(id) {
		return errOrgNotFound(id)
	}
	if !p.Restricted() && !p.Can(access.ScopeAdmin) {
		return errForbidden(access.ScopeAdmin)
	}
	setOrg(r, id)
	org, err := s.st.Organization(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orgJSON(org))
	return nil
}

// getOrganizationByExternalID is WorkOS's GET
// /organizations/external_id/{external_id}, with the visibility rules of
// getOrganization.
func (s *Server) getOrganizationByExternalID(w http.ResponseWriter, r *http.Request) error {
	p, ext := principal(r), r.PathValue("external_id")
	if !p.Restricted() && !p.Can(access.ScopeAdmin) {
		return errForbidden(access.ScopeAdmin)
	}
	notFound := &apiError{status: http.StatusNotFound, code: "entity_not_found",
		message: fmt.Sprintf("Organization with external_id '%s' not found.", ext)}
	org, err := s.st.OrganizationByExternalID(r.Context(), ext)
	if errors.Is(err, store.ErrNotFound) || err == nil && !p.CanAccessOrg(org.ID) {
		return notFound
	}
	if err != nil {
		return err
	}
	setOrg(r, org.ID)
	writeJSON(w, http.StatusOK, orgJSON(org))
	return nil
}

// listOrganizations is GET /organizations, a WorkOS list. Unknown query
// parameters are ignored here, as WorkOS does, so that SDKs sending extra
// filters keep working; the domains filter matches nothing, since Trail
// organizations have no domains.
func (s *Server) listOrganizations(w http.ResponseWriter, r *http.Request) error {
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	var errs []fieldError
	lp := listParams(v, &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	var page store.ListPage[store.Organization]
	p := principal(r)
	switch {
	case hasDomainFilter(v):
		// no organization has a domain
	case p.Restricted():
		// The key sees one organization: its list is that one, on a single page.
		if lp.Before == "" && lp.After == "" {
			org, err := s.st.Organization(r.Context(), p.OrganizationID)
			if err != nil {
				return err
			}
			page.Data = []store.Organization{org}
		}
	default:
		page, err = s.st.ListOrganizations(r.Context(), lp)
		if errors.Is(err, store.ErrInvalidCursor) {
			return errInvalidCursor(cursorParam(lp))
		}
		if err != nil {
			return err
		}
	}
	data := make([]organizationJSON, len(page.Data))
	for i, o := range page.Data {
		data[i] = orgJSON(o)
	}
	writeJSON(w, http.StatusOK, listJSON[organizationJSON]{Object: "list", Data: data, ListMetadata: listMeta(page.Before, page.After)})
	return nil
}

func hasDomainFilter(v map[string][]string) bool {
	for _, k := range []string{"domains", "domains[]"} {
		for _, d := range v[k] {
			if d != "" {
				return true
			}
		}
	}
	return false
}

// listJSON is WorkOS's list envelope.
type listJSON[T any] struct {
	Object       string       `json:"object"`
	Data         []T          `json:"data"`
	ListMetadata listMetadata `json:"list_metadata"`
}

type listMetadata struct {
	Before *string `json:"before"`
	After  *string `json:"after"`
}

func listMeta(before, after string) listMetadata {
	var m listMetadata
	if before != "" {
		m.Before = &before
	}
	if after != "" {
		m.After = &after
	}
	return m
}

// cursorParam names the cursor a list request used, for error messages.
func cursorParam(lp store.ListParams) string {
	if lp.Before != "" {
		return "before"
	}
	return "after"
}

// adminBodyLimit caps the bodies of administrative requests, which are small.
const adminBodyLimit = 64 << 10
