package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// The log streams of every organization: their state, lag and last error,
// and the actions test, pause and resume, through package streamadmin (the
// rules the API and the Admin Portal apply).

type streamsData struct {
	Org     string // the filter; "" = every organization
	State   string
	States  []string
	Streams []streamRow
	Next    string
	Done    string
	Error   string
	Field   string
}

type streamRow struct {
	streamadmin.Status
	OrgName string
}

var streamStates = []string{store.StreamActive, store.StreamError, store.StreamInvalid, store.StreamInactive}

// streams is GET /console/streams[?org=…][&state=…][&after=…]: every log
// stream, by id, 50 a page.
func (c *Console) streams(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	m := c.cfg.Operations.Streams
	if m == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This deployment does not serve log streams.", s)
		return
	}
	q := r.URL.Query()
	d := streamsData{Org: strings.TrimSpace(q.Get("org")), State: q.Get("state"), States: streamStates, Done: q.Get("done")}
	if !slices.Contains([]string{"paused", "resumed"}, d.Done) {
		d.Done = ""
	}
	after := q.Get("after")
	bad := func(field, msg string) {
		c.render(w, r, http.StatusBadRequest, "streams", page{Title: "Log streams", Nav: "streams", Session: s,
			Data: streamsData{States: streamStates, Error: field + ": " + msg, Field: field}})
	}
	switch {
	case d.Org != "" && (!strings.HasPrefix(d.Org, "org_") || len(d.Org) > 100 || d.Org == store.SystemOrganizationID):
		bad("org", "give an organization id (org_…), or nothing for every organization")
		return
	case d.State != "" && !slices.Contains(streamStates, d.State):
		bad("state", "must be one of "+strings.Join(streamStates, ", "))
		return
	case after != "" && (!strings.HasPrefix(after, "ls_") || len(after) > 100):
		bad("after", "not a page of this list")
		return
	}
	pos, err := m.Store().StreamPositions(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	slices.SortFunc(pos, func(a, b store.StreamPosition) int { return strings.Compare(a.ID, b.ID) })
	var ids []store.StreamPosition
	for _, p := range pos {
		if (d.Org == "" || p.OrganizationID == d.Org) && (d.State == "" || p.State == d.State) && p.ID > after {
			ids = append(ids, p)
		}
	}
	if len(ids) > pageSize {
		ids = ids[:pageSize]
		v := url.Values{"after": {ids[pageSize-1].ID}}
		if d.Org != "" {
			v.Set("org", d.Org)
		}
		if d.State != "" {
			v.Set("state", d.State)
		}
		d.Next = safeURL("/console/streams", v)
	}
	names := map[string]string{}
	for _, p := range ids {
		st, err := m.Store().Stream(r.Context(), p.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		status, err := m.Status(r.Context(), st)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		if _, ok := names[st.OrganizationID]; !ok {
			if o, err := c.cfg.Store.Organization(r.Context(), st.OrganizationID); err == nil {
				names[st.OrganizationID] = o.Name
			}
		}
		d.Streams = append(d.Streams, streamRow{Status: status, OrgName: names[st.OrganizationID]})
	}
	c.render(w, r, http.StatusOK, "streams", page{Title: "Log streams", Nav: "streams", Session: s, Data: d})
}

// stream loads the stream of the path's id, or answers why it cannot.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session) (store.Stream, bool) {
	m := c.cfg.Operations.Streams
	if m == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This deployment does not serve log streams.", s)
		return store.Stream{}, false
	}
	id := r.PathValue("id")
	err := store.ErrNotFound
	var st store.Stream
	if strings.HasPrefix(id, "ls_") && len(id) <= 100 {
		st, err = m.Store().Stream(r.Context(), id)
	}
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "No such log stream", "There is no log stream with this id; it may have been deleted.", s)
		return st, false
	}
	if err != nil {
		c.fail(w, r, s, err)
		return st, false
	}
	return st, true
}

type streamTestData struct {
	Stream  store.Stream
	OrgName string
	Result  streamadmin.TestResult
}

// testStream is POST /console/streams/{id}/test: one synthetic event to the
// stream's destination, and its answer.
func (c *Console) testStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := c.stream(w, r, s)
	if !ok {
		return
	}
	st, res, err := c.cfg.Operations.Streams.Test(r.Context(), st.OrganizationID, st.ID)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	result := "accepted"
	if !res.Accepted {
		result = "refused"
	}
	c.audit(r, s, "trail.log_stream.tested", "log_stream", st.ID, st.Name, []string{st.OrganizationID, store.SystemOrganizationID},
		map[string]string{"type": st.Type, "result": result})
	d := streamTestData{Stream: st, Result: res}
	if o, err := c.cfg.Store.Organization(r.Context(), st.OrganizationID); err == nil {
		d.OrgName = o.Name
	}
	c.render(w, r, http.StatusOK, "streamtest", page{Title: "Test of " + st.Name, Nav: "streams", Session: s, Data: d})
}

func (c *Console) pauseStream(w http.ResponseWriter, r *http.Request)  { c.setStreamActive(w, r, false) }
func (c *Console) resumeStream(w http.ResponseWriter, r *http.Request) { c.setStreamActive(w, r, true) }

// setStreamActive is POST /console/streams/{id}/pause and …/resume:
// delivery stops, or resumes from the stream's cursor.
func (c *Console) setStreamActive(w http.ResponseWriter, r *http.Request, active bool) {
	s := sessionFrom(r)
	st, ok := c.stream(w, r, s)
	if !ok {
		return
	}
	up, err := c.cfg.Operations.Streams.SetActive(r.Context(), st.OrganizationID, st.ID, active)
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "No such log stream", "There is no log stream with this id; it may have been deleted.", s)
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	action, done := "trail.log_stream.paused", "paused"
	if active {
		action, done = "trail.log_stream.resumed", "resumed"
	}
	c.audit(r, s, action, "log_stream", up.ID, up.Name, []string{up.OrganizationID, store.SystemOrganizationID},
		map[string]string{"type": up.Type, "state": up.State})
	http.Redirect(w, r, safeURL("/console/streams", url.Values{"org": {up.OrganizationID}, "done": {done}}), http.StatusSeeOther)
}
