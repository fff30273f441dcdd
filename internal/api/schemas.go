package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store"
)

// Versioned schemas (package schema): WorkOS's action schemas under
// /audit_logs/actions, and Trail's deployment-wide actor schema under
// /v1/actor_schema. Creating needs an unrestricted admin key (schemas are
// deployment-wide); reading needs events:read (admin implies it), so that a
// reader can learn what events must look like. The routes exist only when
// Config.Schemas is set.

// schemaJSON is WorkOS's audit_log_schema object.
type schemaJSON struct {
	Object  string `json:"object"`
	Version int    `json:"version"`
	schema.ActionJSON
	CreatedAt string `json:"created_at"`
}

// actionJSON is WorkOS's audit_log_action object: the action and its latest
// schema; created_at is its first version's, updated_at its latest's.
type actionJSON struct {
	Object    string     `json:"object"`
	Name      string     `json:"name"`
	Schema    schemaJSON `json:"schema"`
	CreatedAt string     `json:"created_at"`
	UpdatedAt string     `json:"updated_at"`
}

// actorSchemaJSON is Trail's actor_schema object.
type actorSchemaJSON struct {
	Object  string `json:"object"`
	Version int    `json:"version"`
	schema.ActorJSON
	CreatedAt string `json:"created_at"`
}

func toSchemaJSON(sc store.Schema) (schemaJSON, error) {
	d, err := schema.Decode(sc.Body)
	if err != nil {
		return schemaJSON{}, fmt.Errorf("schema %q version %d: %w", sc.Name, sc.Version, err)
	}
	return schemaJSON{Object: "audit_log_schema", Version: sc.Version, ActionJSON: d.WireAction(), CreatedAt: formatTime(sc.CreatedAt)}, nil
}

func toActorSchemaJSON(sc store.Schema) (actorSchemaJSON, error) {
	d, err := schema.DecodeActor(sc.Body)
	if err != nil {
		return actorSchemaJSON{}, fmt.Errorf("actor schema version %d: %w", sc.Version, err)
	}
	return actorSchemaJSON{Object: "actor_schema", Version: sc.Version, ActorJSON: d.WireActor(), CreatedAt: formatTime(sc.CreatedAt)}, nil
}

// actionParam reads the {action} of the path with the rules of an event's
// action (event.ActionProblem).
func actionParam(r *http.Request) (string, error) {
	a := r.PathValue("action")
	if p := event.ActionProblem(a); p != "" {
		return "", errInvalidParams([]fieldError{{Code: "invalid", Field: "action", Message: "The action in the path " + p + ", as an event's action."}})
	}
	return a, nil
}

// unrestrictedAdmin refuses keys restricted to one organization: schemas
// apply to every organization.
func unrestrictedAdmin(r *http.Request) error {
	if p := principal(r); p.Restricted() {
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: "This API key is restricted to " + p.OrganizationID + "; schemas apply to every organization, so creating one needs an unrestricted admin key."}
	}
	return nil
}

// schemaFieldErrors is the 422 of a refused schema body; each message
// names its field, as errInvalidParams repeats them all in its message.
func schemaFieldErrors(errs []event.FieldError) error {
	out := make([]fieldError, len(errs))
	for i, e := range errs {
		out[i] = fieldError{Code: e.Code, Field: e.Field, Message: e.Field + " " + e.Message + "."}
	}
	return errInvalidParams(out)
}

// createActionSchema is WorkOS's POST /audit_logs/actions/{action}/schemas:
// the next immutable version of the action's schema, answered 201.
func (s *Server) createActionSchema(w http.ResponseWriter, r *http.Request) error {
	if err := unrestrictedAdmin(r); err != nil {
		return err
	}
	action, err := actionParam(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	if err := checkJSONObject(body); err != nil {
		return err
	}
	d, errs := schema.ParseAction(body)
	if errs != nil {
		return schemaFieldErrors(errs)
	}
	sc, err := s.cfg.Schemas.Store().CreateSchema(r.Context(), store.Schema{Kind: store.SchemaKindAction, Name: action,
		Body: d.Encode(), CreatedAt: s.cfg.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		return err
	}
	s.cfg.Schemas.Forget(store.SchemaKindAction, action)
	s.audit(r, auditAction{
		action: "trail.schema.created",
		target: auditEntity{Type: "audit_log_schema", ID: action},
		orgs:   []string{store.SystemOrganizationID},
		meta:   map[string]string{"version": strconv.Itoa(sc.Version)},
	})
	out, err := toSchemaJSON(sc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listActions is WorkOS's GET /audit_logs/actions: the actions that have a
// schema, by name, each with its latest schema. Unknown parameters are
// ignored, as on WorkOS's other lists.
func (s *Server) listActions(w http.ResponseWriter, r *http.Request) error {
	lp, err := schemaListParams(r)
	if err != nil {
		return err
	}
	page, err := s.cfg.Schemas.Store().ListActions(r.Context(), lp)
	if errors.Is(err, store.ErrInvalidCursor) {
		return errInvalidCursor(cursorParam(lp))
	}
	if err != nil {
		return err
	}
	data := make([]actionJSON, len(page.Data))
	for i, a := range page.Data {
		sj, err := toSchemaJSON(a.Latest)
		if err != nil {
			return err
		}
		data[i] = actionJSON{Object: "audit_log_action", Name: a.Name, Schema: sj,
			CreatedAt: formatTime(a.CreatedAt), UpdatedAt: formatTime(a.Latest.CreatedAt)}
	}
	writeJSON(w, http.StatusOK, listJSON[actionJSON]{Object: "list", Data: data, ListMetadata: listMeta(page.Before, page.After)})
	return nil
}

// listActionSchemas is WorkOS's GET /audit_logs/actions/{action}/schemas:
// the action's versions (newest first by default). 404 when the action has
// no schema.
func (s *Server) listActionSchemas(w http.ResponseWriter, r *http.Request) error {
	action, err := actionParam(r)
	if err != nil {
		return err
	}
	lp, err := schemaListParams(r)
	if err != nil {
		return err
	}
	page, err := s.listSchemaVersions(r.Context(), store.SchemaKindAction, action, lp)
	if err != nil {
		return err
	}
	data := make([]schemaJSON, len(page.Data))
	for i, sc := range page.Data {
		if data[i], err = toSchemaJSON(sc); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, listJSON[schemaJSON]{Object: "list", Data: data, ListMetadata: listMeta(page.Before, page.After)})
	return nil
}

// listSchemaVersions lists versions, answering 404 for a name without any.
func (s *Server) listSchemaVersions(ctx context.Context, kind, name string, lp store.ListParams) (store.ListPage[store.Schema], error) {
	st := s.cfg.Schemas.Store()
	page, err := st.ListSchemas(ctx, kind, name, lp)
	if errors.Is(err, store.ErrInvalidCursor) {
		return page, errInvalidCursor(cursorParam(lp))
	}
	if err != nil {
		return page, err
	}
	if len(page.Data) == 0 {
		if _, err := st.Schema(ctx, kind, name, 0); errors.Is(err, store.ErrNotFound) {
			if kind == store.SchemaKindActor {
				return page, errNoActorSchema
			}
			return page, errNotFound("Audit log action", name)
		} else if err != nil {
			return page, err
		}
	}
	return page, nil
}

var errNoActorSchema = &apiError{status: http.StatusNotFound, code: "entity_not_found",
	message: "This deployment has no actor schema yet; create one with POST /v1/actor_schema."}

func schemaListParams(r *http.Request) (store.ListParams, error) {
	v, err := parseQuery(r)
	if err != nil {
		return store.ListParams{}, err
	}
	var errs []fieldError
	lp := listParams(v, &errs)
	if errs != nil {
		return lp, errInvalidParams(errs)
	}
	return lp, nil
}

// createActorSchema is POST /v1/actor_schema: the next version of the
// deployment-wide actor schema, {"metadata":{"type":"object","properties":
// {"email":{"type":"string"}}}}, which applies to the actor of every event
// on top of its action's schema.
func (s *Server) createActorSchema(w http.ResponseWriter, r *http.Request) error {
	if err := unrestrictedAdmin(r); err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	if err := checkJSONObject(body); err != nil {
		return err
	}
	d, errs := schema.ParseActor(body)
	if errs != nil {
		return schemaFieldErrors(errs)
	}
	sc, err := s.cfg.Schemas.Store().CreateSchema(r.Context(), store.Schema{Kind: store.SchemaKindActor,
		Body: d.EncodeActor(), CreatedAt: s.cfg.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		return err
	}
	s.cfg.Schemas.Forget(store.SchemaKindActor, "")
	s.audit(r, auditAction{
		action: "trail.actor_schema.created",
		target: auditEntity{Type: "actor_schema", ID: "actor_schema"},
		orgs:   []string{store.SystemOrganizationID},
		meta:   map[string]string{"version": strconv.Itoa(sc.Version)},
	})
	out, err := toActorSchemaJSON(sc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// getActorSchema is GET /v1/actor_schema: the latest version.
func (s *Server) getActorSchema(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.cfg.Schemas.Store().Schema(r.Context(), store.SchemaKindActor, "", 0)
	if errors.Is(err, store.ErrNotFound) {
		return errNoActorSchema
	}
	if err != nil {
		return err
	}
	out, err := toActorSchemaJSON(sc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listActorSchemas is GET /v1/actor_schema/versions.
func (s *Server) listActorSchemas(w http.ResponseWriter, r *http.Request) error {
	lp, err := schemaListParams(r)
	if err != nil {
		return err
	}
	page, err := s.listSchemaVersions(r.Context(), store.SchemaKindActor, "", lp)
	if err != nil {
		return err
	}
	data := make([]actorSchemaJSON, len(page.Data))
	for i, sc := range page.Data {
		if data[i], err = toActorSchemaJSON(sc); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, listJSON[actorSchemaJSON]{Object: "list", Data: data, ListMetadata: listMeta(page.Before, page.After)})
	return nil
}

// rejectSchema is the trail_events_rejected_total reason of events refused
// by their schema.
const rejectSchema = "schema"

// checkSchemas runs the schema checks of the events of one request (one
// draft for POST /audit_logs/events; in a batch, the field paths of
// drafts[i] start with events[i].). It marks the mismatches on pending, or
// returns the 400 invalid_audit_log_event of every refused event. Without
// Config.Schemas it does nothing.
func (s *Server) checkSchemas(ctx context.Context, drafts []*event.Draft, batch bool, pending []store.PendingEvent) (outcomes []schema.Outcome, err error) {
	if s.cfg.Schemas == nil {
		return nil, nil
	}
	outcomes = make([]schema.Outcome, len(drafts))
	var errs []fieldError
	for i, d := range drafts {
		o, err := s.cfg.Schemas.Check(ctx, d)
		if err != nil {
			return nil, err
		}
		outcomes[i] = o
		if o.Reject != nil && len(errs) < maxBatchErrors {
			prefix := ""
			if batch {
				prefix = fmt.Sprintf("events[%d].", i)
			}
			errs = append(errs, convertFieldErrors(o.Reject.Errors, prefix)...)
		}
		pending[i].SchemaMismatch = o.Mismatch
	}
	if errs != nil {
		s.metrics.reject(rejectSchema, len(drafts))
		if len(errs) > maxBatchErrors {
			errs = errs[:maxBatchErrors]
		}
		return nil, &apiError{status: http.StatusBadRequest, code: event.CodeInvalidEvent, message: "Invalid Audit Log event.", errors: errs}
	}
	return outcomes, nil
}

// countMismatches counts the stored mismatches of a request.
func (s *Server) countMismatches(drafts []*event.Draft, outcomes []schema.Outcome) {
	for i, o := range outcomes {
		if o.Mismatch {
			s.cfg.Schemas.CountMismatches(drafts[i].Action, o.HasActionSchema, 1)
		}
	}
}

// appendMismatch writes a stored record as the API answers it: byte for
// byte, with "schema_mismatch":true added as its last member when the event
// was recorded as not matching its schema. The flag is not part of the
// record (nor of its Merkle leaf): it is stored beside it.
func appendMismatch(dst []byte, e store.StoredEvent) []byte {
	if !e.SchemaMismatch || len(e.Record) < 2 || e.Record[len(e.Record)-1] != '}' {
		return append(dst, e.Record...)
	}
	dst = append(dst, e.Record[:len(e.Record)-1]...)
	return append(dst, `,"schema_mismatch":true}`...)
}
