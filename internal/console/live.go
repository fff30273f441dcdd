package console

import (
	"errors"
	"net/http"

	"github.com/trailaudit/trail/internal/livetail"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/store"
)

// Tail serves a live tail as Server-Sent Events; *livetail.Hub is one.
type Tail interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, org string, from int64, f livetail.Filter, opts livetail.StreamOptions) error
}

// liveRows is how many of the newest events the live page starts with.
const liveRows = 50

type liveData struct {
	Scope    scope
	Action   string
	Filter   portal.Filter
	Active   bool
	Problems []string
	Rows     []eventRow
	// Stream is the URL of the page's event stream, for console.js;
	// without script the page is a list to refresh.
	Stream  string
	Refresh string
	Events  string // the events page with the same filters
}

// live is GET /console/organizations/{id}/live: the organization's newest
// events matching the filters, which console.js keeps up to date from
// …/live/stream. Without JavaScript it is a list with a link to refresh.
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	org, ok := c.pathOrganization(w, r, s)
	if !ok {
		return
	}
	sc := scope{Org: &org}
	base := "/console/organizations/" + org.ID
	f, problems := portal.ParseFilter(portal.LiveFilterValues(r.URL.Query()))
	d := liveData{Scope: sc, Action: base + "/live", Filter: f, Active: f.Active(), Problems: problems,
		Refresh: f.Link(base+"/live", "", ""), Events: f.Link(base+"/events", "", "")}
	status := http.StatusOK
	if len(problems) == 0 {
		q := f.Query(org.ID)
		q.Limit = liveRows
		page, err := c.cfg.Store.SearchEvents(r.Context(), q)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		if d.Rows, err = c.rows(r, page.Events, sc); err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.Stream = f.Link(base+"/live/stream", "", "")
	} else {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "live", page{Title: "Live: " + org.Name, Nav: "events", Session: s, Data: d})
}

// liveStream is GET /console/organizations/{id}/live/stream: the
// organization's new events matching the filters, as Server-Sent Events
// (docs/LIVETAIL.md), resumable with Last-Event-ID.
func (c *Console) liveStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	org, err := c.logOrganization(r, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "There is no organization with this id.", http.StatusNotFound)
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	f, problems := portal.ParseFilter(portal.LiveFilterValues(r.URL.Query()))
	if len(problems) > 0 {
		http.Error(w, problems[0], http.StatusBadRequest)
		return
	}
	err = c.cfg.Tail.ServeSSE(w, r, org.ID, portal.LastEventSeq(r), livetail.FilterOf(f.Query(org.ID)), c.cfg.TailStream)
	switch {
	case err == nil:
	case errors.Is(err, livetail.ErrTooMany), errors.Is(err, livetail.ErrClosed):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "The live view is not available right now; reload the page in a moment.", http.StatusServiceUnavailable)
	case errors.Is(err, livetail.ErrResumeTooOld):
		// 204 tells EventSource to stop; the page says to reload.
		w.WriteHeader(http.StatusNoContent)
	default:
		c.fail(w, r, s, err)
	}
}
