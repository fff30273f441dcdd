package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/store"
)

// TailConfig serves the live tail, GET /v1/events/stream; the route exists
// only when Hub is set.
type TailConfig struct {
	Hub *livetail.Hub
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies and clients know it is alive; default 15s.
	Heartbeat time.Duration
	// MaxDuration ends a stream after this long (default 1h): a client
	// reconnects with Last-Event-ID and loses nothing, and long-lived
	// connections spread again over the replicas behind a load balancer.
	MaxDuration time.Duration
}

// tailParams are the query parameters of the live tail: the search's
// filters, without the ones that make no sense for events still to come.
var tailParams = map[string]bool{
	"organization_id": true, "action": true, "actor_id": true, "actor_name": true,
	"target_type": true, "target_id": true, "q": true, "since_seq": true,
}

// streamEvents is GET /v1/events/stream: one organization's new events as
// Server-Sent Events (docs/LIVETAIL.md), each with its seq as the event id,
// so that a client reconnecting with Last-Event-ID resumes after the last
// one it received.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	p := principal(r)
	filter, org, from, errs := parseTailQuery(v, r.Header.Get("Last-Event-ID"), p.OrganizationID)
	if errs != nil {
		return errInvalidParams(errs)
	}
	setOrg(r, org)
	if !p.CanAccessOrg(org) {
		return errOrgNotFound(org)
	}
	if _, err := s.st.Organization(r.Context(), org); errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(org)
	} else if err != nil {
		return err
	}
	return serveTail(w, r, s.cfg.Tail, org, from, filter)
}

// serveTail streams the tail and answers a refused subscription.
func serveTail(w http.ResponseWriter, r *http.Request, cfg TailConfig, org string, from int64, f livetail.Filter) error {
	err := cfg.Hub.ServeSSE(w, r, org, from, f, livetail.StreamOptions{Heartbeat: cfg.Heartbeat, MaxDuration: cfg.MaxDuration})
	switch {
	case errors.Is(err, livetail.ErrTooMany):
		return &apiError{status: http.StatusServiceUnavailable, code: "too_many_live_tails",
			message: "This server has as many live tails open as it serves; try again shortly.", retryAfter: 5}
	case errors.Is(err, livetail.ErrResumeTooOld):
		return &apiError{status: http.StatusUnprocessableEntity, code: "resume_too_old",
			message: "The resume point is too far behind the end of the log for a live tail: " +
				"read the events before it with GET /v1/events or an export, then tail from the end.",
			errors: []fieldError{{Field: "Last-Event-ID", Code: "resume_too_old", Message: err.Error()}}}
	case errors.Is(err, livetail.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "shutting_down",
			message: "This server is shutting down; connect again.", retryAfter: 1}
	}
	return err
}

// parseTailQuery reads the live tail's parameters: the search's filters
// (parseEventQuery's rules), and where to start — after Last-Event-ID (the
// last seq a reconnecting client received), or at since_seq, or at the
// log's end.
func parseTailQuery(v url.Values, lastEventID, defaultOrg string) (f livetail.Filter, org string, from int64, errs []fieldError) {
	search := url.Values{}
	for k, vals := range v {
		if !tailParams[k] {
			msg := fmt.Sprintf("%s is not a parameter of the live tail, which takes organization_id, action, actor_id, actor_name, target_type, target_id, q and since_seq.", truncate(k, 40))
			if k == "range_start" || k == "range_end" || k == "before" || k == "after" || k == "order" || k == "limit" {
				msg = k + " is a parameter of the search (GET /v1/events), not of the live tail: the tail follows new events in the log's order."
			}
			addErr(&errs, k, "unknown_parameter", msg)
			continue
		}
		if k != "since_seq" {
			search[k] = vals
		}
	}
	q, qerrs := parseEventQuery(search, defaultOrg)
	errs = append(errs, qerrs...)
	from = -1
	if s := single(v, "since_seq", &errs); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			addErr(&errs, "since_seq", "invalid", fmt.Sprintf("since_seq must be a seq (a whole number of at least 0), not %q.", truncate(s, 40)))
		}
		from = n
	}
	if id := strings.TrimSpace(lastEventID); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			addErr(&errs, "Last-Event-ID", "invalid", fmt.Sprintf("Last-Event-ID must be the id of an event of this stream (its seq), not %q.", truncate(id, 40)))
		}
		from = n + 1 // resume after it
	}
	if errs != nil {
		return livetail.Filter{}, "", 0, errs
	}
	return livetail.FilterOf(q), q.OrganizationID, from, nil
}
