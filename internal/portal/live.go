package portal

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/livetail"
)

// Tail serves a live tail as Server-Sent Events; *livetail.Hub is one.
type Tail interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, org string, from int64, f livetail.Filter, opts livetail.StreamOptions) error
}

// liveRows is how many of the newest events the live page starts with.
const liveRows = 50

type liveData struct {
	Filter   filter
	Active   bool
	Problems []string
	Rows     []eventRow
	// Stream is the URL of the page's event stream, for the script; the
	// page is a plain list to refresh without it.
	Stream  string
	Refresh string
	Events  string // the events page with the same filters
	// Vendor is how the script shows the actor of Trail's own events the
	// vendor did (viewer.go, vendorActor).
	Vendor string
}

// live is GET /portal/live: the newest events matching the filters, which
// the portal's script keeps up to date from /portal/live/stream. Without
// JavaScript it is a list with a link to refresh it.
func (p *Portal) live(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	f, problems := parseFilterIn(p.locales.pick(r), liveFilterValues(r.URL.Query()))
	d := liveData{Filter: f, Active: f.active(), Problems: problems, Vendor: p.vendorName()}
	v := f.values()
	d.Refresh = "/portal/live"
	d.Events = "/portal/events"
	if len(v) > 0 {
		d.Refresh += "?" + v.Encode()
		d.Events += "?" + v.Encode()
	}
	status := http.StatusOK
	if len(problems) == 0 {
		q := f.query(s.Org)
		q.Limit = liveRows
		page, err := p.cfg.Store.SearchEvents(r.Context(), q)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		if d.Rows, err = p.rows(page.Events, p.actionLabels(r.Context(), nil)); err != nil {
			p.fail(w, r, s, err)
			return
		}
		d.Stream = "/portal/live/stream"
		if len(v) > 0 {
			d.Stream += "?" + v.Encode()
		}
	} else {
		status = http.StatusBadRequest
	}
	p.render(w, r, status, "live", page{Title: "Live", Nav: "live", Session: s, Data: d})
}

// liveStream is GET /portal/live/stream: the session's organization's new
// events matching the filters, as Server-Sent Events (docs/LIVETAIL.md).
func (p *Portal) liveStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	f, problems := parseFilterIn(p.locales.pick(r), liveFilterValues(r.URL.Query()))
	if len(problems) > 0 {
		http.Error(w, problems[0], http.StatusBadRequest)
		return
	}
	opts := p.cfg.TailStream
	opts.Transform = p.liveEvent(p.actionLabels(r.Context(), nil))
	err := p.cfg.Tail.ServeSSE(w, r, s.Org, lastEventSeq(r), livetail.FilterOf(f.query(s.Org)), opts)
	switch {
	case err == nil:
	case errors.Is(err, livetail.ErrTooMany), errors.Is(err, livetail.ErrClosed):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "The live view is not available right now; reload the page in a moment.", http.StatusServiceUnavailable)
	case errors.Is(err, livetail.ErrResumeTooOld):
		// The browser reconnects with an old Last-Event-ID after a
		// long sleep: 204 tells EventSource to stop; the page reloads.
		w.WriteHeader(http.StatusNoContent)
	default:
		p.fail(w, r, s, err)
	}
}

// liveEntity is an actor or target as the live view's rows show it.
type liveEntity struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// liveRow is what the live stream sends of an event: what a row of the
// page shows (eventRow), not the record. For the vendor's own actions that
// leaves out its key ids and addresses, as the events page does; the
// record, its proof and the API's stream keep them.
type liveRow struct {
	ID          string       `json:"id"`
	Seq         int64        `json:"seq"`
	OccurredAt  string       `json:"occurred_at"`
	Action      string       `json:"action"`
	Label       string       `json:"label"`
	Trail       bool         `json:"trail"`
	Actor       liveEntity   `json:"actor"`
	Targets     []liveEntity `json:"targets"`
	MoreTargets int          `json:"more_targets"`
	Location    string       `json:"location"`
	Imported    string       `json:"imported,omitempty"`
}

// liveEvent returns the live stream's transform: each record as a liveRow,
// one line of JSON. A record that does not decode is left out (logged).
func (p *Portal) liveEvent(labels actionLabels) func(livetail.Record) []byte {
	return func(lr livetail.Record) []byte {
		rec, err := event.ParseRecord(lr.Record)
		if err != nil {
			p.log.Warn("live view: couldn't decode a record", "seq", lr.Seq, "err", err)
			return nil
		}
		row := p.row(rec.ID, lr.Seq, rec, labels)
		out := liveRow{ID: row.ID, Seq: row.Seq, OccurredAt: row.OccurredAt.UTC().Format(time.RFC3339Nano), Action: row.Action,
			Label: row.Label, Trail: row.Trail, Actor: liveEntity{Type: row.Actor.Type, ID: row.Actor.ID, Name: row.Actor.Name},
			Targets: []liveEntity{}, MoreTargets: row.MoreTarget, Location: row.Location, Imported: row.Imported}
		if row.Actor.Type == "vendor" {
			out.Actor.ID = ""
		}
		for _, t := range row.Targets {
			out.Targets = append(out.Targets, liveEntity{Type: t.Type, ID: t.ID, Name: t.Name})
		}
		b, err := json.Marshal(out)
		if err != nil {
			p.log.Warn("live view: couldn't encode a row", "seq", lr.Seq, "err", err)
			return nil
		}
		return b
	}
}

// liveFilterValues drops what a live view has no use for: dates and page
// cursors.
func liveFilterValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vals := range v {
		switch k {
		case "from", "to", "before", "after":
		default:
			out[k] = vals
		}
	}
	return out
}

// lastEventSeq is where a reconnecting EventSource resumes: after the seq
// in Last-Event-ID; -1 (the log's end) without one.
func lastEventSeq(r *http.Request) int64 {
	var n int64
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		return -1
	}
	for _, c := range id {
		if c < '0' || c > '9' || n > (1<<62)/10 {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n + 1
}
