package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

// LifecycleConfig connects the API to organization update and deletion
// (docs/ORGANIZATIONS.md) and to the verifiable archive's settings
// (docs/ARCHIVE.md). Without Store the routes are not served.
type LifecycleConfig struct {
	Store store.OrganizationLifecycle
	// Deleter deletes organizations; without it DELETE is not served.
	Deleter *orgdelete.Service
	// Archive, when set, serves each organization's archive setting;
	// ArchiveDefault is the deployment's and ArchiveLocation where the
	// archive is (without credentials).
	Archive         store.ArchiveStore
	ArchiveDefault  bool
	ArchiveLocation string
}

// updateOrganizationRequest is the body of WorkOS's PUT /organizations/{id}
// as its SDKs send it (Trail also takes it as PATCH): every field is
// optional and what is left out stays as it is. external_id null clears
// it. The fields Trail does not store are accepted only when empty.
type updateOrganizationRequest struct {
	Name                             *string                    `json:"name"`
	ExternalID                       json.RawMessage            `json:"external_id"`
	Metadata                         map[string]json.RawMessage `json:"metadata"`
	Domains                          []json.RawMessage          `json:"domains"`
	DomainData                       []json.RawMessage          `json:"domain_data"`
	StripeCustomerID                 *string                    `json:"stripe_customer_id"`
	AllowProfilesOutsideOrganization *bool                      `json:"allow_profiles_outside_organization"`
}

// apply validates req and applies it to org.
func (req *updateOrganizationRequest) apply(org *store.Organization) []fieldError {
	var errs []fieldError
	if req.Name != nil {
		validateName(req.Name, &errs)
		org.Name = *req.Name
	}
	if len(req.ExternalID) > 0 {
		var ext *string
		if err := json.Unmarshal(req.ExternalID, &ext); err != nil {
			addErr(&errs, "external_id", "invalid_type", "external_id must be a string, or null to remove it.")
		} else if ext == nil || *ext == "" {
			org.ExternalID = ""
		} else {
			switch {
			case utf8.RuneCountInString(*ext) > maxNameLen:
				addErr(&errs, "external_id", "invalid", "external_id must be at most 200 characters.")
			case textsafe.HasControl(*ext) || !utf8.ValidString(*ext):
				addErr(&errs, "external_id", "invalid", "external_id must be valid UTF-8 without control characters (U+0000–U+001F, U+007F–U+009F).")
			}
			org.ExternalID = *ext
		}
	}
	if len(req.Metadata) > 0 {
		addErr(&errs, "metadata", "unsupported", "Trail does not store organization metadata; send an empty object or leave metadata out.")
	}
	if len(req.Domains) > 0 || len(req.DomainData) > 0 {
		addErr(&errs, "domains", "unsupported", "Trail does not manage organization domains; leave domains and domain_data empty.")
	}
	if req.StripeCustomerID != nil && *req.StripeCustomerID != "" {
		addErr(&errs, "stripe_customer_id", "unsupported", "Trail does not store a Stripe customer id; leave stripe_customer_id out.")
	}
	if req.AllowProfilesOutsideOrganization != nil && *req.AllowProfilesOutsideOrganization {
		addErr(&errs, "allow_profiles_outside_organization", "unsupported", "Trail has no SSO profiles; allow_profiles_outside_organization must be false or left out.")
	}
	return errs
}

// updateOrganization is PUT (WorkOS's) and PATCH /organizations/{id}: a key
// with the admin scope, unrestricted or restricted to the organization.
func (s *Server) updateOrganization(w http.ResponseWriter, r *http.Request) error {
	org, err := s.visibleOrg(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	if org.ID == store.SystemOrganizationID {
		return errOrgNotFound(org.ID)
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req updateOrganizationRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	before := org
	if errs := req.apply(&org); errs != nil {
		return errInvalidParams(errs)
	}
	org.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Millisecond)
	if err := s.cfg.Lifecycle.Store.UpdateOrganization(r.Context(), org); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &apiError{status: http.StatusConflict, code: "conflict",
				message: fmt.Sprintf("An organization with external_id '%s' already exists.", org.ExternalID)}
		}
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org.ID)
		}
		return err
	}
	meta := map[string]string{}
	if org.Name != before.Name {
		meta["previous_name"] = before.Name
	}
	if org.ExternalID != before.ExternalID {
		meta["previous_external_id"] = before.ExternalID
		meta["external_id"] = org.ExternalID
	}
	s.audit(r, auditAction{
		action: "trail.organization.updated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID, store.SystemOrganizationID},
		meta:   meta,
	})
	writeJSON(w, http.StatusOK, orgJSON(org))
	return nil
}

// deleteOrganizationRequest is the optional body of DELETE
// /organizations/{id} (WorkOS's SDKs send none).
type deleteOrganizationRequest struct {
	Force       *bool   `json:"force"`
	FinalBundle *bool   `json:"final_bundle"`
	Reason      *string `json:"reason"`
}

// deletionJSON describes an organization's deletion.
type deletionJSON struct {
	Object         string  `json:"object"`
	OrganizationID string  `json:"organization_id"`
	Name           string  `json:"name"`
	State          string  `json:"state"` // "in_progress" or "completed"
	Step           string  `json:"step"`
	Forced         bool    `json:"forced"`
	Reason         string  `json:"reason,omitempty"`
	FinalBundle    *string `json:"final_bundle"`
	// CheckpointSize is the size of the last checkpoint kept (0 until
	// the deletion completes, or the final bundle is written).
	CheckpointSize int64   `json:"checkpoint_size"`
	LastError      string  `json:"last_error,omitempty"`
	RequestedAt    string  `json:"requested_at"`
	CompletedAt    *string `json:"completed_at"`
}

func deletionOf(d store.OrganizationDeletion) deletionJSON {
	j := deletionJSON{Object: "organization_deletion", OrganizationID: d.OrganizationID, Name: d.Name, State: "in_progress",
		Step: d.Step, Forced: d.Forced, Reason: d.Reason, CheckpointSize: d.FinalSize, LastError: d.LastError,
		RequestedAt: formatTime(d.RequestedAt)}
	if d.FinalBundle {
		loc := d.FinalLocation
		j.FinalBundle = &loc
	}
	if !d.FinishedAt.IsZero() {
		j.State = "completed"
		at := formatTime(d.FinishedAt)
		j.CompletedAt = &at
	}
	return j
}

// deleteOrganization is WorkOS's DELETE /organizations/{id}, for
// unrestricted admin keys. It answers 202 with the deletion, which goes on
// in the background (orgdelete), or 409 naming what runs for the
// organization unless forced (force=true, in the query or the body).
func (s *Server) deleteOrganization(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	id := r.PathValue("id")
	if p.Restricted() && p.CanAccessOrg(id) {
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: "This API key is restricted to " + p.OrganizationID + "; deleting an organization needs an unrestricted admin key."}
	}
	org, err := s.visibleOrg(r, id)
	if err != nil {
		return err
	}
	if org.ID == store.SystemOrganizationID {
		return &apiError{status: http.StatusConflict, code: "conflict",
			message: "org_system holds Trail's own audit log and cannot be deleted."}
	}
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	var errs []fieldError
	force := boolQuery(v, "force", &errs)
	final := boolQuery(v, "final_bundle", &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req deleteOrganizationRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	if req.Force != nil {
		force = force || *req.Force
	}
	if req.FinalBundle != nil {
		final = final || *req.FinalBundle
	}
	reason := ""
	if req.Reason != nil {
		reason = *req.Reason
		if utf8.RuneCountInString(reason) > 500 || textsafe.HasControl(reason) {
			return errInvalidParams([]fieldError{{Code: "invalid", Field: "reason", Message: "reason must be at most 500 characters, without control characters."}})
		}
	}
	d, _, err := s.cfg.Lifecycle.Deleter.Begin(r.Context(), orgdelete.Request{OrganizationID: org.ID, RequestedBy: p.ID,
		Reason: reason, Force: force, FinalBundle: final})
	var running *orgdelete.RunningError
	switch {
	case errors.As(err, &running):
		return &apiError{status: http.StatusConflict, code: "organization_busy",
			message: fmt.Sprintf("Organization '%s' still has work running: %s. Pause or delete it first, or delete with force=true to stop it.",
				org.ID, strings.Join(running.Running, ", "))}
	case errors.Is(err, orgdelete.ErrNoArchive):
		return errInvalidParams([]fieldError{{Code: "unsupported", Field: "final_bundle",
			Message: "A final bundle is written to the archive, and this deployment has none (trail serve --archive); pull one with GET /v1/organizations/{id}/log/bundle instead."}})
	case errors.Is(err, store.ErrNotFound):
		return errOrgNotFound(org.ID)
	case err != nil:
		return err
	}
	meta := map[string]string{"forced": strconv.FormatBool(d.Forced), "final_bundle": strconv.FormatBool(d.FinalBundle)}
	if reason != "" {
		meta["reason"] = reason
	}
	s.audit(r, auditAction{
		action: "trail.organization.deleted",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{store.SystemOrganizationID},
		meta:   meta,
	})
	writeJSON(w, http.StatusAccepted, deletionOf(d))
	return nil
}

// boolQuery reads an optional true/false query parameter.
func boolQuery(v map[string][]string, name string, errs *[]fieldError) bool {
	raw := single(v, name, errs)
	switch raw {
	case "", "false":
		return false
	case "true":
		return true
	}
	addErr(errs, name, "invalid", fmt.Sprintf("%s must be true or false, not %q.", name, truncate(raw, 50)))
	return false
}

// getDeletion is GET /v1/organizations/{id}/deletion: how the deletion of
// an organization stands, for unrestricted admin keys (the organization
// itself answers 404 once deleted).
func (s *Server) getDeletion(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if p.Restricted() {
		return errNotFound("Organization deletion", id)
	}
	setOrg(r, id)
	d, err := s.cfg.Lifecycle.Store.OrganizationDeletion(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Organization deletion", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deletionOf(d))
	return nil
}

// archiveJSON is an organization's archive setting.
type archiveJSON struct {
	Object         string `json:"object"`
	OrganizationID string `json:"organization_id"`
	// Enabled is what applies; Source says whether it is the
	// organization's own setting or the deployment's default.
	Enabled  bool   `json:"enabled"`
	Source   string `json:"source"` // "organization" or "deployment"
	Location string `json:"location,omitempty"`
	// ArchivedTo is the seq below which the archive holds the records
	// retention deleted.
	ArchivedTo int64 `json:"archived_to"`
}

func (s *Server) archiveOf(r *http.Request, org string) (archiveJSON, error) {
	j := archiveJSON{Object: "archive_setting", OrganizationID: org, Enabled: s.cfg.Lifecycle.ArchiveDefault, Source: "deployment",
		Location: s.cfg.Lifecycle.ArchiveLocation}
	settings, err := s.cfg.Lifecycle.Archive.ArchiveSettings(r.Context())
	if err != nil {
		return j, err
	}
	if on, ok := settings[org]; ok {
		j.Enabled, j.Source = on, "organization"
	}
	j.ArchivedTo, _, err = s.cfg.Lifecycle.Archive.ArchivePosition(r.Context(), org)
	return j, err
}

// getArchive is GET /v1/organizations/{id}/archive: admin keys,
// unrestricted or restricted to the organization.
func (s *Server) getArchive(w http.ResponseWriter, r *http.Request) error {
	org, err := s.visibleOrg(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	j, err := s.archiveOf(r, org.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

// putArchive is PUT /v1/organizations/{id}/archive {"enabled": true|false|null}:
// the organization's own setting, or null for the deployment's. For
// unrestricted admin keys: the archive is the operator's storage.
func (s *Server) putArchive(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if p.Restricted() && p.CanAccessOrg(r.PathValue("id")) {
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: "This API key is restricted to " + p.OrganizationID + "; the archive setting needs an unrestricted admin key."}
	}
	org, err := s.visibleOrg(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req struct {
		Enabled json.RawMessage `json:"enabled"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var on *bool
	if len(req.Enabled) == 0 || json.Unmarshal(req.Enabled, &on) != nil {
		return errInvalidParams([]fieldError{{Code: "required", Field: "enabled",
			Message: "enabled is required: true, false, or null for the deployment's default."}})
	}
	if err := s.cfg.Lifecycle.Archive.SetArchiveSetting(r.Context(), org.ID, on, s.cfg.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org.ID)
		}
		return err
	}
	j, err := s.archiveOf(r, org.ID)
	if err != nil {
		return err
	}
	meta := map[string]string{"enabled": strconv.FormatBool(j.Enabled), "source": j.Source}
	s.audit(r, auditAction{
		action: "trail.organization.archive_updated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID, store.SystemOrganizationID},
		meta:   meta,
	})
	writeJSON(w, http.StatusOK, j)
	return nil
}
