package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/store"
)

// Query limits.
const (
	maxQueryText    = 200 // characters of q
	maxActionValues = 50  // action parameters in one query
	maxFilterLen    = 500 // characters of one actor/target filter value
	maxCursorLen    = 512
)

var eventQueryParams = map[string]bool{
	"organization_id": true, "range_start": true, "range_end": true, "action": true,
	"actor_id": true, "actor_name": true, "target_type": true, "target_id": true,
	"q": true, "limit": true, "order": true, "before": true, "after": true,
	"schema_mismatch": true,
}

// parseEventQuery turns the query string of GET /v1/events into a
// store.EventQuery, reporting every problem at once. defaultOrg is the
// organization used when none is named ("" = organization_id is required).
// It checks nothing about who asks.
func parseEventQuery(v url.Values, defaultOrg string) (store.EventQuery, []fieldError) {
	var errs []fieldError
	unknownParams(v, eventQueryParams, &errs)

	var q store.EventQuery
	q.OrganizationID = single(v, "organization_id", &errs)
	if q.OrganizationID == "" && len(v["organization_id"]) <= 1 {
		q.OrganizationID = defaultOrg
		if q.OrganizationID == "" {
			addErr(&errs, "organization_id", "required", "organization_id is required: name the organization whose events to search.")
		}
	}

	q.From = timeParam(v, "range_start", &errs)
	q.To = timeParam(v, "range_end", &errs)
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		addErr(&errs, "range_end", "invalid", "range_end must be after range_start.")
	}

	actions(v["action"], &q, &errs)

	q.ActorID = filterParam(v, "actor_id", &errs)
	q.ActorName = filterParam(v, "actor_name", &errs)
	q.TargetType = filterParam(v, "target_type", &errs)
	q.TargetID = filterParam(v, "target_id", &errs)
	if q.TargetID != "" && q.TargetType == "" {
		addErr(&errs, "target_id", "invalid", "target_id needs target_type: give the type of the target too.")
	}

	q.Text = strings.TrimSpace(single(v, "q", &errs))
	if n := utf8.RuneCountInString(q.Text); n > maxQueryText {
		addErr(&errs, "q", "invalid", fmt.Sprintf("q must be at most %d characters, not %d.", maxQueryText, n))
		q.Text = ""
	}

	switch sm := single(v, "schema_mismatch", &errs); sm {
	case "":
	case "true":
		q.SchemaMismatch = true
	default:
		addErr(&errs, "schema_mismatch", "invalid", fmt.Sprintf("schema_mismatch takes only true (the events recorded as not matching their action's latest schema), not %q; leave it out to search every event.", truncate(sm, 40)))
	}

	lp := listParams(v, &errs)
	q.Limit, q.Order, q.Before, q.After = lp.Limit, lp.Order, lp.Before, lp.After
	for _, c := range []struct{ name, val string }{{"before", q.Before}, {"after", q.After}} {
		if len(c.val) > maxCursorLen {
			addErr(&errs, c.name, "invalid_cursor", "The "+c.name+" cursor is not valid: use list_metadata from a previous response.")
		}
	}
	if errs != nil {
		return store.EventQuery{}, errs
	}
	return q, nil
}

func timeParam(v url.Values, name string, errs *[]fieldError) time.Time {
	s := single(v, name, errs)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		addErr(errs, name, "invalid", fmt.Sprintf("%s must be an RFC 3339 time such as 2026-11-25T18:43:09Z, not %q.", name, truncate(s, 60)))
		return time.Time{}
	}
	return t.UTC()
}

func filterParam(v url.Values, name string, errs *[]fieldError) string {
	s := single(v, name, errs)
	if utf8.RuneCountInString(s) > maxFilterLen {
		addErr(errs, name, "invalid", fmt.Sprintf("%s must be at most %d characters.", name, maxFilterLen))
		return ""
	}
	return s
}

// actions reads the repeatable action parameter: exact names, prefixes
// ("user.*" matches every action starting "user."), or "*" for all.
func actions(vals []string, q *store.EventQuery, errs *[]fieldError) {
	if len(vals) > maxActionValues {
		addErr(errs, "action", "invalid", fmt.Sprintf("Give at most %d action parameters, not %d.", maxActionValues, len(vals)))
		return
	}
	all := false
	for _, a := range vals {
		switch {
		case a == "":
			addErr(errs, "action", "invalid", "action must not be empty: give an action name, a prefix such as user.*, or *.")
		case !utf8.ValidString(a):
			addErr(errs, "action", "invalid", "action must be valid UTF-8.")
		case utf8.RuneCountInString(a) > 101:
			addErr(errs, "action", "invalid", "action must be at most 100 characters (and a trailing *).")
		case a == "*":
			all = true
		case strings.HasSuffix(a, "*"):
			q.ActionPrefixes = append(q.ActionPrefixes, strings.TrimSuffix(a, "*"))
		default:
			q.Actions = append(q.Actions, a)
		}
	}
	if all {
		q.Actions, q.ActionPrefixes = nil, nil
	}
}

// listEvents is GET /v1/events: search one organization's events.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	p := principal(r)
	q, errs := parseEventQuery(v, p.OrganizationID)
	if errs != nil {
		return errInvalidParams(errs)
	}
	setOrg(r, q.OrganizationID)
	if !p.CanAccessOrg(q.OrganizationID) {
		return errOrgNotFound(q.OrganizationID)
	}
	if _, err := s.st.Organization(r.Context(), q.OrganizationID); errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(q.OrganizationID)
	} else if err != nil {
		return err
	}
	page, err := s.st.SearchEvents(r.Context(), q)
	if errors.Is(err, store.ErrInvalidCursor) {
		return errInvalidCursor(cursorParam(store.ListParams{Before: q.Before, After: q.After}))
	}
	if err != nil {
		return err
	}
	writeRawJSON(w, http.StatusOK, eventList(page))
	return nil
}

// eventList writes the list envelope around the stored records, which go
// out byte for byte as stored: never decoded and encoded again.
func eventList(page store.EventPage) []byte {
	size := 64
	for _, e := range page.Events {
		size += len(e.Record) + 24
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"object":"list","data":[`)
	for i, e := range page.Events {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(appendMismatch(b.AvailableBuffer(), e))
	}
	b.WriteString(`],"list_metadata":`)
	meta, _ := json.Marshal(listMeta(page.Before, page.After)) // strings and nulls only
	b.Write(meta)
	b.WriteByte('}')
	return b.Bytes()
}

// getEvent is GET /v1/events/{id}: the stored record, byte for byte.
func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	ev, err := s.st.Event(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Event", id)
	}
	if err != nil {
		return err
	}
	if !principal(r).CanAccessOrg(ev.OrganizationID) {
		return errNotFound("Event", id)
	}
	setOrg(r, ev.OrganizationID)
	writeRawJSON(w, http.StatusOK, appendMismatch(nil, ev))
	return nil
}
