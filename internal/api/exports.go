package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store"
)

// Exports, as WorkOS has them (docs/DESIGN.md §5): POST /audit_logs/exports creates
// a pending export, a background job (package export) writes its file, and
// GET /audit_logs/exports/{id} answers its state and, once ready, a signed
// download link valid 10 minutes (each GET signs a new one). The download
// needs no API key: the link is the credential.
//
// Trail's extensions: "format": "ndjson" in the request (a bundle that
// `trail verify` checks), and "format", "progress" and "error" in the
// answer.

// ExportConfig connects the API to exports. Without Service the export
// routes are not served.
type ExportConfig struct {
	Service *export.Service
	Links   *export.Links
	// BaseURL, when set, is the scheme and host download links use (e.g.
	// https://trail.example.com); default: the request's.
	BaseURL string
}

// exportRequest is the body of POST /audit_logs/exports.
type exportRequest struct {
	OrganizationID string   `json:"organization_id"`
	RangeStart     *string  `json:"range_start"`
	RangeEnd       *string  `json:"range_end"`
	Actions        []string `json:"actions"`
	ActorNames     []string `json:"actor_names"`
	// Actors is WorkOS's deprecated name of actor_names, still in its
	// API reference and its Go, Python and Ruby SDKs: the same filter.
	Actors   []string `json:"actors"`
	ActorIDs []string `json:"actor_ids"`
	Targets  []string `json:"targets"`
	Format   string   `json:"format"`
}

// actorNames is the actor-name filter: actor_names, then the deprecated
// actors not among them.
func (req *exportRequest) actorNames() []string {
	out := slices.Clone(req.ActorNames)
	for _, a := range req.Actors {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// exportJSON is an export as WorkOS answers it, plus Trail's fields.
type exportJSON struct {
	Object    string          `json:"object"`
	ID        string          `json:"id"`
	State     string          `json:"state"`
	URL       *string         `json:"url,omitempty"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
	Format    string          `json:"format"`
	Progress  exportProgress  `json:"progress"`
	Error     string          `json:"error,omitempty"`
	Filter    exportFilterOut `json:"filter"`
}

// exportProgress is how far the export's job has read the organization's
// log (events_total is the log size when the export was requested).
type exportProgress struct {
	EventsRead     int64 `json:"events_read"`
	EventsTotal    int64 `json:"events_total"`
	EventsExported int64 `json:"events_exported"`
	Bytes          int64 `json:"bytes,omitempty"`
}

type exportFilterOut struct {
	OrganizationID string   `json:"organization_id"`
	RangeStart     string   `json:"range_start,omitempty"`
	RangeEnd       string   `json:"range_end,omitempty"`
	Actions        []string `json:"actions,omitempty"`
	ActorNames     []string `json:"actor_names,omitempty"`
	ActorIDs       []string `json:"actor_ids,omitempty"`
	Targets        []string `json:"targets,omitempty"`
}

// Bounds on an export request's filters.
const (
	maxExportFilterValues = 100
	maxExportValueLen     = 500
)

// errInvalidExportRange is WorkOS's 400 for a bad range: a message and a
// code, no "errors" (WorkOS's API reference documents exactly
// {"message":"Invalid date range","code":"invalid_audit_log_export_range_date"}),
// so that every SDK raises the exception it raises against WorkOS (the Node
// SDK's GenericServerException: it raises BadRequestException only for a
// 400 with both code and errors).
func errInvalidExportRange(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_audit_log_export_range_date", message: msg}
}

// errExportRangeOrder is WorkOS's documented answer, to the byte, for a
// range_end not after range_start.
var errExportRangeOrder = errInvalidExportRange("Invalid date range")

func errExportNotFound(id string) *apiError { return errNotFound("AuditLogExport", id) }

func (s *Server) createExport(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	var req exportRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var errs []fieldError
	if req.OrganizationID == "" {
		addErr(&errs, "organization_id", "required", "organization_id is required: the organization whose events to export.")
	}
	switch req.Format {
	case "", export.FormatCSV, export.FormatNDJSON:
	default:
		addErr(&errs, "format", "invalid", fmt.Sprintf("format must be %q (the default) or %q, not %q.", export.FormatCSV, export.FormatNDJSON, truncate(req.Format, 50)))
	}
	for _, l := range []struct {
		field string
		vals  []string
	}{{"actions", req.Actions}, {"actor_names", req.ActorNames}, {"actors", req.Actors}, {"actor_ids", req.ActorIDs}, {"targets", req.Targets}} {
		if len(l.vals) > maxExportFilterValues {
			addErr(&errs, l.field, "too_many", fmt.Sprintf("%s may list at most %d values, not %d.", l.field, maxExportFilterValues, len(l.vals)))
			continue
		}
		for i, v := range l.vals {
			if v == "" || utf8.RuneCountInString(v) > maxExportValueLen {
				addErr(&errs, fmt.Sprintf("%s[%d]", l.field, i), "invalid", fmt.Sprintf("%s[%d] must be 1 to %d characters long.", l.field, i, maxExportValueLen))
			}
		}
	}
	if len(req.ActorNames) <= maxExportFilterValues && len(req.Actors) <= maxExportFilterValues && len(req.actorNames()) > maxExportFilterValues {
		addErr(&errs, "actors", "too_many", fmt.Sprintf("actor_names and actors (the same filter) may list at most %d values together.", maxExportFilterValues))
	}
	if errs != nil {
		return errInvalidParams(errs)
	}
	if req.RangeStart == nil || req.RangeEnd == nil {
		return errInvalidExportRange("range_start and range_end are required: the export covers events whose occurred_at is in [range_start, range_end), as RFC 3339 timestamps such as 2026-11-01T00:00:00.000Z.")
	}
	start, err1 := time.Parse(time.RFC3339Nano, *req.RangeStart)
	end, err2 := time.Parse(time.RFC3339Nano, *req.RangeEnd)
	switch {
	case err1 != nil:
		return errInvalidExportRange(fmt.Sprintf("range_start %q is not an RFC 3339 timestamp; use a form such as 2026-11-01T00:00:00.000Z.", truncate(*req.RangeStart, 50)))
	case err2 != nil:
		return errInvalidExportRange(fmt.Sprintf("range_end %q is not an RFC 3339 timestamp; use a form such as 2026-11-30T00:00:00.000Z.", truncate(*req.RangeEnd, 50)))
	case !start.Before(end):
		return errExportRangeOrder
	}

	p := principal(r)
	org := req.OrganizationID
	if !p.CanAccessOrg(org) {
		return errOrgNotFound(org)
	}
	setOrg(r, org)
	if _, err := s.st.Organization(r.Context(), org); errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(org)
	} else if err != nil {
		return err
	}
	format := req.Format
	if format == "" {
		format = export.FormatCSV
	}
	f := store.ExportFilter{RangeStart: start.UTC(), RangeEnd: end.UTC(), Actions: req.Actions,
		ActorNames: req.actorNames(), ActorIDs: req.ActorIDs, Targets: req.Targets}
	e, err := s.cfg.Exports.Service.Create(r.Context(), org, format, f)
	if err != nil {
		return err
	}
	s.audit(r, auditAction{
		action: "trail.export.requested",
		target: auditEntity{Type: "audit_log_export", ID: e.ID},
		orgs:   []string{org},
		meta:   map[string]string{"format": format, "range_start": *req.RangeStart, "range_end": *req.RangeEnd},
	})
	writeJSON(w, http.StatusCreated, s.exportBody(r, e))
	return nil
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	e, err := s.cfg.Exports.Service.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !principal(r).CanAccessOrg(e.OrganizationID) {
		return errExportNotFound(id)
	}
	if err != nil {
		return err
	}
	setOrg(r, e.OrganizationID)
	w.Header().Set("Cache-Control", "no-store") // the url is a credential
	writeJSON(w, http.StatusOK, s.exportBody(r, e))
	return nil
}

func (s *Server) exportBody(r *http.Request, e store.Export) exportJSON {
	const ts = "2006-01-02T15:04:05.000Z07:00"
	j := exportJSON{Object: "audit_log_export", ID: e.ID, State: e.State,
		CreatedAt: e.CreatedAt.UTC().Format(ts), UpdatedAt: e.UpdatedAt.UTC().Format(ts), Format: e.Format,
		Progress: exportProgress{EventsRead: e.Processed, EventsTotal: e.UpTo, EventsExported: e.Exported, Bytes: e.Size},
		Error:    e.Error,
		Filter: exportFilterOut{OrganizationID: e.OrganizationID, Actions: e.Filter.Actions, ActorNames: e.Filter.ActorNames,
			ActorIDs: e.Filter.ActorIDs, Targets: e.Filter.Targets}}
	if !e.Filter.RangeStart.IsZero() {
		j.Filter.RangeStart = e.Filter.RangeStart.UTC().Format(time.RFC3339Nano)
	}
	if !e.Filter.RangeEnd.IsZero() {
		j.Filter.RangeEnd = e.Filter.RangeEnd.UTC().Format(time.RFC3339Nano)
	}
	if e.State == store.ExportReady {
		u := s.exportBaseURL(r) + "/audit_logs/exports/" + e.ID + "/download?" +
			s.cfg.Exports.Links.Query(e.ID, s.cfg.Now().Add(export.LinkTTL))
		j.URL = &u
	}
	return j
}

// exportBaseURL is the scheme and host of download links.
func (s *Server) exportBaseURL(r *http.Request) string {
	if b := s.cfg.Exports.BaseURL; b != "" {
		return strings.TrimSuffix(b, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if s.cfg.TrustProxyHeaders {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
	}
	return scheme + "://" + r.Host
}

// downloadExport is GET /audit_logs/exports/{id}/download?expires=…&signature=…,
// the signed link: the export's file, as an attachment.
func (s *Server) downloadExport(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	switch err := s.cfg.Exports.Links.Check(id, v.Get("expires"), v.Get("signature"), s.cfg.Now()); {
	case errors.Is(err, export.ErrLinkExpired):
		return &apiError{status: http.StatusForbidden, code: "download_link_expired",
			message: "This download link has expired (links work for 10 minutes): get the export again (GET /audit_logs/exports/" + truncate(id, 60) + ") for a fresh url."}
	case err != nil:
		return &apiError{status: http.StatusForbidden, code: "invalid_download_link",
			message: "This download link is not valid: use the url of the export exactly as GET /audit_logs/exports/{id} answered it."}
	}
	e, err := s.cfg.Exports.Service.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errExportNotFound(id)
	}
	if err != nil {
		return err
	}
	setOrg(r, e.OrganizationID)
	if e.State == store.ExportExpired {
		return &apiError{status: http.StatusGone, code: "audit_log_export_expired",
			message: "This export has expired (files are kept 24 hours): request a new export."}
	}
	if e.State != store.ExportReady {
		return &apiError{status: http.StatusConflict, code: "audit_log_export_not_ready",
			message: "This export is " + e.State + ", not ready."}
	}
	f, err := os.Open(s.cfg.Exports.Service.Path(e))
	if errors.Is(err, os.ErrNotExist) {
		return &apiError{status: http.StatusNotFound, code: "audit_log_export_file_missing",
			message: "The file of this export is not on this server: with several replicas, every one must share the export directory (--export-dir). Request the export again."}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ctype := "text/csv; charset=utf-8; header=present"
	if e.Format == export.FormatNDJSON {
		ctype = "application/x-ndjson; charset=utf-8"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, e.ID, e.Format))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
