package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// Log streams over HTTP (docs/DESIGN.md §6): create, list, read, update, delete,
// pause, resume and test an organization's streams, and WorkOS's
// audit_log_configuration. Destination secrets are write-only: answers name
// the secrets that are set, never their values. Every change is an audit
// event in the organization's log.

// StreamsConfig connects the API to log streams. Without Manager the
// stream routes are not served.
type StreamsConfig struct {
	// Manager applies the rules of stream management, shared with the
	// Admin Portal.
	Manager *streamadmin.Manager
}

// streamJSON is a stream as the API shows it.
type streamJSON struct {
	Object         string          `json:"object"`
	ID             string          `json:"id"`
	OrganizationID string          `json:"organization_id"`
	Name           string          `json:"name"`
	Type           string          `json:"type"`
	State          string          `json:"state"`
	Config         json.RawMessage `json:"config"`
	Secrets        []string        `json:"secrets"` // the names of the secrets that are set
	Cursor         int64           `json:"cursor"`
	LagEvents      int64           `json:"lag_events"`
	LagSeconds     float64         `json:"lag_seconds"`
	LastSyncedAt   *string         `json:"last_synced_at"`
	LastError      *string         `json:"last_error"`
	LastErrorAt    *string         `json:"last_error_at"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
}

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

// streamView renders st with its lag, read from the log.
func (s *Server) streamView(ctx context.Context, st store.Stream) (streamJSON, error) {
	j := streamJSON{Object: "log_stream", ID: st.ID, OrganizationID: st.OrganizationID, Name: st.Name, Type: st.Type,
		State: st.State, Config: json.RawMessage(st.Config), Secrets: []string{}, Cursor: st.Cursor,
		LastSyncedAt: optTime(st.LastSyncedAt), LastErrorAt: optTime(st.LastErrorAt),
		CreatedAt: formatTime(st.CreatedAt), UpdatedAt: formatTime(st.UpdatedAt)}
	if st.LastError != "" {
		j.LastError = &st.LastError
	}
	status, err := s.cfg.Streams.Manager.Status(ctx, st)
	j.Secrets = status.SecretNames
	if status.Unreadable {
		msg := "Trail can't decrypt this stream's secrets (was the master key changed?); update the stream with its secrets again."
		j.LastError = &msg
	}
	if err != nil {
		return j, err
	}
	j.LagEvents, j.LagSeconds = status.LagEvents, status.LagSeconds
	return j, nil
}

// streamOrg authorizes a request on an organization's streams.
func (s *Server) streamOrg(r *http.Request) (string, error) {
	id := r.PathValue("id")
	_, err := s.visibleOrg(r, id)
	return id, err
}

// loadStream returns the stream named in the path, of the path's organization.
func (s *Server) loadStream(r *http.Request) (store.Stream, error) {
	org, err := s.streamOrg(r)
	if err != nil {
		return store.Stream{}, err
	}
	id := r.PathValue("stream")
	st, err := s.cfg.Streams.Manager.Store().Stream(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && st.OrganizationID != org {
		return st, errNotFound("Log stream", id)
	}
	return st, err
}

func configError(err error) error {
	var ce *stream.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	errs := make([]fieldError, len(ce.Errors))
	for i, fe := range ce.Errors {
		errs[i] = fieldError{Code: fe.Code, Field: fe.Field, Message: fe.Message}
	}
	return errInvalidParams(errs)
}

type createStreamRequest struct {
	Type   *string         `json:"type"`
	Name   *string         `json:"name"`
	Start  *string         `json:"start"`
	Config json.RawMessage `json:"config"`
}

func (s *Server) createStream(w http.ResponseWriter, r *http.Request) error {
	org, err := s.streamOrg(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req createStreamRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var errs []fieldError
	if req.Type == nil || *req.Type == "" {
		addErr(&errs, "type", "required", "type is required: one of "+strings.Join(stream.Types, ", ")+".")
	}
	start := "now"
	if req.Start != nil {
		start = *req.Start
	}
	if start != "now" && start != "beginning" {
		addErr(&errs, "start", "invalid", fmt.Sprintf("start must be now (deliver events from now on) or beginning (every retained event), not %q.", truncate(start, 40)))
	}
	name := ""
	if req.Name != nil {
		name = *req.Name
		if fe := stream.CheckName(name); fe != nil {
			addErr(&errs, fe.Field, fe.Code, fe.Message)
		}
	}
	if len(errs) > 0 {
		return errInvalidParams(errs)
	}
	if name == "" {
		name = *req.Type
	}
	set, err := s.cfg.Streams.Manager.Codec().Parse(*req.Type, req.Config, nil)
	if err != nil {
		return configError(err)
	}
	st, err := s.cfg.Streams.Manager.CreateParsed(r.Context(), org, name, start, set)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(org)
	} else if err != nil {
		return err
	}
	s.auditStream(r, "trail.log_stream.created", st, map[string]string{"type": st.Type, "start": start})
	j, err := s.streamView(r.Context(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (s *Server) auditStream(r *http.Request, action string, st store.Stream, meta map[string]string) {
	s.audit(r, auditAction{action: action, target: auditEntity{Type: "log_stream", ID: st.ID, Name: st.Name},
		orgs: []string{st.OrganizationID}, meta: meta})
}

func (s *Server) listStreams(w http.ResponseWriter, r *http.Request) error {
	org, err := s.streamOrg(r)
	if err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	var errs []fieldError
	p := listParams(q, &errs)
	unknownParams(q, map[string]bool{"before": true, "after": true, "limit": true, "order": true}, &errs)
	if len(errs) > 0 {
		return errInvalidParams(errs)
	}
	page, err := s.cfg.Streams.Manager.Store().ListStreams(r.Context(), org, p)
	if err != nil {
		return err
	}
	data := make([]streamJSON, 0, len(page.Data))
	for _, st := range page.Data {
		j, err := s.streamView(r.Context(), st)
		if err != nil {
			return err
		}
		data = append(data, j)
	}
	type meta struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	}
	out := struct {
		Object       string       `json:"object"`
		Data         []streamJSON `json:"data"`
		ListMetadata meta         `json:"list_metadata"`
	}{Object: "list", Data: data}
	if page.Before != "" {
		out.ListMetadata.Before = &page.Before
	}
	if page.After != "" {
		out.ListMetadata.After = &page.After
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	j, err := s.streamView(r.Context(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

type updateStreamRequest struct {
	Type   *string         `json:"type"`
	Name   *string         `json:"name"`
	Config json.RawMessage `json:"config"`
}

// updateStream changes a stream's name and settings: config fields left
// out keep their values (so secrets need not be sent again). An invalid or
// failing stream becomes active again, to be tried with the new settings.
func (s *Server) updateStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req updateStreamRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Type != nil && *req.Type != st.Type {
		return errInvalidParams([]fieldError{{Code: "invalid", Field: "type",
			Message: "A stream's type cannot change; create a new stream and delete this one."}})
	}
	if req.Name != nil {
		if *req.Name == "" {
			return errInvalidParams([]fieldError{{Code: "required", Field: "name", Message: "name must not be empty."}})
		}
		if fe := stream.CheckName(*req.Name); fe != nil {
			return errInvalidParams([]fieldError{{Code: fe.Code, Field: fe.Field, Message: fe.Message}})
		}
		st.Name = *req.Name
	}
	if st, err = s.cfg.Streams.Manager.Reconfigure(st, req.Config); err != nil {
		return configError(err)
	}
	return s.saveStream(w, r, st, "trail.log_stream.updated")
}

func (s *Server) saveStream(w http.ResponseWriter, r *http.Request, st store.Stream, action string) error {
	st.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Millisecond)
	if err := s.cfg.Streams.Manager.Store().UpdateStream(r.Context(), st); errors.Is(err, store.ErrNotFound) {
		return errNotFound("Log stream", st.ID)
	} else if err != nil {
		return err
	}
	s.auditStream(r, action, st, map[string]string{"type": st.Type, "state": st.State})
	s.cfg.Streams.Manager.Wake()
	st, err := s.cfg.Streams.Manager.Store().Stream(r.Context(), st.ID)
	if err != nil {
		return err
	}
	j, err := s.streamView(r.Context(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) pauseStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	st.State = store.StreamInactive
	return s.saveStream(w, r, st, "trail.log_stream.paused")
}

// resumeStream makes a paused (or invalid) stream active again; delivery
// goes on from its cursor.
func (s *Server) resumeStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	st.State = store.StreamActive
	return s.saveStream(w, r, st, "trail.log_stream.resumed")
}

func (s *Server) deleteStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Streams.Manager.DeleteStream(r.Context(), st); errors.Is(err, store.ErrNotFound) {
		return errNotFound("Log stream", st.ID)
	} else if err != nil {
		return err
	}
	s.auditStream(r, "trail.log_stream.deleted", st, map[string]string{"type": st.Type})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// testStream sends one synthetic event to the destination and reports its
// answer. A refusal is not an error of the request: it is the answer.
func (s *Server) testStream(w http.ResponseWriter, r *http.Request) error {
	st, err := s.loadStream(r)
	if err != nil {
		return err
	}
	res, err := s.cfg.Streams.Manager.TestStream(r.Context(), st)
	if errors.Is(err, streamadmin.ErrUnreadable) {
		return &apiError{status: http.StatusConflict, code: "stream_secrets_unreadable",
			message: "Trail can't decrypt this stream's secrets (was the master key changed?); update the stream with its secrets again."}
	} else if err != nil {
		return err
	}
	out := struct {
		Success    bool    `json:"success"`
		Message    string  `json:"message"`
		Retryable  bool    `json:"retryable"`
		DurationMS float64 `json:"duration_ms"`
	}{Success: res.Accepted, Message: res.Message, Retryable: res.Retryable, DurationMS: float64(res.Duration.Microseconds()) / 1000}
	result := "accepted"
	if !res.Accepted {
		result = "refused"
	}
	s.auditStream(r, "trail.log_stream.tested", st, map[string]string{"type": st.Type, "result": result})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// workOSStreamTypes are WorkOS's names of the destination types.
var workOSStreamTypes = map[string]string{stream.TypeDatadog: "Datadog", stream.TypeSplunk: "Splunk",
	stream.TypeS3: "S3", stream.TypeWebhook: "GenericHttps", stream.TypeSyslog: "Syslog",
	stream.TypeAzureSentinel: "AzureSentinel", stream.TypeGCS: "GoogleCloudStorage"}

// auditLogConfiguration is WorkOS's GET /organizations/{id}/audit_log_configuration:
// the retention period, and the organization's (first) log stream.
func (s *Server) auditLogConfiguration(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Streams.Manager == nil {
		return errNoEndpoint(r)
	}
	org, err := s.streamOrg(r)
	if err != nil {
		return err
	}
	days, err := s.organizationRetentionDays(r.Context(), org)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(org)
	} else if err != nil {
		return err
	}
	type logStream struct {
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		State        string  `json:"state"`
		LastSyncedAt *string `json:"last_synced_at"`
		CreatedAt    string  `json:"created_at"`
	}
	out := struct {
		OrganizationID        string     `json:"organization_id"`
		RetentionPeriodInDays int        `json:"retention_period_in_days"`
		State                 string     `json:"state"`
		LogStream             *logStream `json:"log_stream,omitempty"`
	}{OrganizationID: org, RetentionPeriodInDays: days, State: "active"}
	page, err := s.cfg.Streams.Manager.Store().ListStreams(r.Context(), org, store.ListParams{Limit: 1, Order: store.OrderAsc})
	if err != nil {
		return err
	}
	if len(page.Data) > 0 {
		st := page.Data[0]
		out.LogStream = &logStream{ID: st.ID, Type: workOSStreamTypes[st.Type], State: st.State,
			LastSyncedAt: optTime(st.LastSyncedAt), CreatedAt: formatTime(st.CreatedAt)}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
