package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
)

// RetentionConfig connects the API to organizations' retention settings
// (package retention). Without Store the retention routes are not served.
type RetentionConfig struct {
	Store store.RetentionStore
	// DefaultDays is the retention of organizations without their own;
	// default retention.DefaultDays.
	DefaultDays int
	// Changed, when set, is called after an organization's retention was
	// set (the sweeper is woken, so a shortened period applies at once).
	Changed func()
}

// WorkOS's audit log retention, GET and PUT
// /organizations/{id}/audit_logs_retention, answering
// {"retention_period_in_days": N} (routes.go).
//
// Who may call them: GET, an admin key or any key restricted to the
// organization (as GET /organizations/{id}: a tenant's own key may read its
// settings); PUT, a key with the admin scope, unrestricted or restricted to
// the organization. A key restricted to another organization gets 404, as
// if the organization did not exist.

// Server.orgResources are the endpoints GET /organizations/{id}/<resource>,
// built with the routes (routes.go). Go's ServeMux cannot hold "GET
// /organizations/{id}/audit_logs_retention" beside WorkOS's "GET
// /organizations/external_id/{external_id}" (both match
// /organizations/external_id/audit_logs_retention and neither is more
// specific: registering both panics), so one route, GET
// /organizations/{id}/{resource}, serves them all and dispatches on the last
// segment; the external_id route, more specific, keeps its paths.

// orgResource is one GET /organizations/{id}/<resource> endpoint: scope,
// when not "", is required of the key, as handle does.
type orgResource struct {
	scope   string
	handler func(*Server, http.ResponseWriter, *http.Request) error
}

func (s *Server) getOrganizationResource(w http.ResponseWriter, r *http.Request) error {
	res, ok := s.orgResources[r.PathValue("resource")]
	if !ok {
		return errNoEndpoint(r)
	}
	if res.scope != "" && !principal(r).Can(res.scope) {
		return errForbidden(res.scope)
	}
	return res.handler(s, w, r)
}

// errNoEndpoint is the 404 of a path Trail does not serve, as for
// unmatched routes.
func errNoEndpoint(r *http.Request) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found",
		message: fmt.Sprintf("Trail has no endpoint %s %s: check the method and path against the API documentation.", r.Method, truncate(r.URL.Path, 200))}
}

type retentionJSON struct {
	RetentionPeriodInDays int `json:"retention_period_in_days"`
}

// retentionRequest is the body of PUT …/audit_logs_retention in either form
// the WorkOS SDKs send: retention_period_in_days (older SDKs) or
// retention_period (newer ones). Both may be given if they agree.
type retentionRequest struct {
	RetentionPeriodInDays *float64 `json:"retention_period_in_days"`
	RetentionPeriod       *string  `json:"retention_period"`
}

const (
	daysRule   = "retention_period_in_days must be 30, 60 … 330 (by 30) or 365, 730 … 3650 (by 365)"
	periodRule = "retention_period must be 1_MONTH, 2_MONTHS … 11_MONTHS or 1_YEAR, 2_YEARS … 10_YEARS"
)

// days validates the request and returns the period it asks for.
func (req *retentionRequest) days() (int, []fieldError) {
	var errs []fieldError
	days, period := 0, 0
	if d := req.RetentionPeriodInDays; d != nil {
		if *d != math.Trunc(*d) || !retention.ValidDays(int(*d)) {
			addErr(&errs, "retention_period_in_days", "invalid",
				fmt.Sprintf("%s, not %s.", daysRule, strconv.FormatFloat(*d, 'g', -1, 64)))
		} else {
			days = int(*d)
		}
	}
	if p := req.RetentionPeriod; p != nil {
		if n, ok := retention.ParsePeriod(*p); ok {
			period = n
		} else {
			addErr(&errs, "retention_period", "invalid", fmt.Sprintf("%s, not %q.", periodRule, truncate(*p, 40)))
		}
	}
	switch {
	case errs != nil:
		return 0, errs
	case req.RetentionPeriodInDays == nil && req.RetentionPeriod == nil:
		addErr(&errs, "retention_period_in_days", "required",
			"Give retention_period_in_days (30 … 330 by 30, or 365 … 3650 by 365) or retention_period (1_MONTH … 11_MONTHS, 1_YEAR … 10_YEARS).")
		return 0, errs
	case days != 0 && period != 0 && days != period:
		addErr(&errs, "retention_period", "invalid", fmt.Sprintf(
			"retention_period %s is %d days but retention_period_in_days is %d; give one of them, or both alike.",
			*req.RetentionPeriod, period, days))
		return 0, errs
	}
	return max(days, period), nil
}

func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Retention.Store == nil {
		return errNoEndpoint(r)
	}
	p, id := principal(r), r.PathValue("id")
	if !p.CanAccessOrg(id) {
		return errOrgNotFound(id)
	}
	if !p.Restricted() && !p.Can(access.ScopeAdmin) {
		return errForbidden(access.ScopeAdmin)
	}
	if _, err := s.visibleOrg(r, id); err != nil {
		return err
	}
	days, err := s.organizationRetentionDays(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, retentionJSON{RetentionPeriodInDays: days})
	return nil
}

func (s *Server) putRetention(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if !p.CanAccessOrg(id) {
		return errOrgNotFound(id)
	}
	if !p.Can(access.ScopeAdmin) {
		return errForbidden(access.ScopeAdmin)
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req retentionRequest
	if err := decodeStrict(body, &req); err != nil {
		// WorkOS answers every invalid field of this request with its
		// "Validation failed." shape.
		if e, ok := asAPIError(err); ok && e.status == http.StatusUnprocessableEntity && len(e.errors) > 0 {
			return errValidation(e.errors)
		}
		return err
	}
	days, errs := req.days()
	if errs != nil {
		return errValidation(errs)
	}
	org, err := s.visibleOrg(r, id)
	if err != nil {
		return err
	}
	previous, err := s.organizationRetentionDays(r.Context(), id)
	if err != nil {
		return err
	}
	if err := s.cfg.Retention.Store.SetRetention(r.Context(), id, days, s.cfg.Now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(id)
		}
		return err
	}
	s.audit(r, auditAction{
		action: "trail.retention.updated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
		meta: map[string]string{
			"retention_period_in_days":          strconv.Itoa(days),
			"previous_retention_period_in_days": strconv.Itoa(previous),
		},
	})
	if s.cfg.Retention.Changed != nil {
		s.cfg.Retention.Changed()
	}
	writeJSON(w, http.StatusOK, retentionJSON{RetentionPeriodInDays: days})
	return nil
}

// organizationRetentionDays is organization org's retention period in
// days: its own setting, else the deployment's default. An unknown
// organization is an error wrapping store.ErrNotFound. Handlers that show
// the retention (WorkOS's audit_log_configuration too) read it here.
func (s *Server) organizationRetentionDays(ctx context.Context, org string) (int, error) {
	def := s.cfg.Retention.DefaultDays
	if def <= 0 {
		def = retention.DefaultDays
	}
	if s.cfg.Retention.Store == nil {
		if _, err := s.st.Organization(ctx, org); err != nil {
			return 0, err
		}
		return def, nil
	}
	return retention.Reader{Store: s.cfg.Retention.Store, DefaultDays: def}.RetentionDays(ctx, org)
}
