package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// CSV export of the events page's filter (docs/DESIGN.md §7): the admin posts the
// filter, the portal creates an export through the export service (the same
// jobs and files as POST /audit_logs/exports), shows its progress, and
// serves the file through the session once it is ready. The export filter
// honours dates, actions, actor id and name and target type; a filter with
// something else (free text, target id) is refused with a message saying
// so, rather than exporting other events than the ones on screen.

// Exports creates and reads exports. *export.Service implements it.
type Exports interface {
	// Create stores a new pending export of org's events in format ("csv")
	// and queues its job.
	Create(ctx context.Context, org, format string, f store.ExportFilter) (store.Export, error)
	// Get returns an export of any organization (the caller checks the
	// owner), or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, id string) (store.Export, error)
	// Path is where the file of a ready export is.
	Path(e store.Export) string
}

// exportFilter maps the events page's filter to what an export selects,
// or says why it can't.
func (f filter) exportFilter() (store.ExportFilter, []phrase) {
	var unsupported label
	switch {
	case f.Text != "" && f.TargetID != "":
		unsupported = label("search text or target id")
	case f.Text != "":
		unsupported = label("search text")
	case f.TargetID != "":
		unsupported = label("target id")
	}
	if unsupported != "" {
		return store.ExportFilter{}, []phrase{msg("An export can't filter by %s; clear it to export the other filters' events (exports filter by dates, actions, actor id and name, and target type).", unsupported)}
	}
	ef := store.ExportFilter{RangeStart: f.from, RangeEnd: f.to, Actions: f.actions()}
	if f.ActorID != "" {
		ef.ActorIDs = []string{f.ActorID}
	}
	if f.ActorName != "" {
		ef.ActorNames = []string{f.ActorName}
	}
	if f.TargetType != "" {
		ef.Targets = []string{f.TargetType}
	}
	return ef, nil
}

type exportData struct {
	ID, State   string
	Ready       bool
	Pending     bool
	Percent     int64
	Read, Total int64
	Exported    int64
	Size        int64
	Error       string
	Filter      []kv
	Download    string
	Events      string // back to the events page, with the filter
}

// createExport is POST /portal/exports: an export of the posted filter.
func (p *Portal) createExport(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	if err := r.ParseForm(); err != nil {
		p.messageWith(w, r, http.StatusBadRequest, messageData{Heading: "Export not started", Text: "The form could not be read; go back and try again."}, s)
		return
	}
	f, problems := parseFilterIn(p.locales.pick(r), r.PostForm)
	if len(problems) == 0 && f.Trail != "" {
		// Trail's own events shown or hidden: the export asks for the
		// actions that leaves, as the page does.
		known, err := p.cfg.Store.OrganizationActions(r.Context(), s.Org, maxActionOptions)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		if !f.resolve(known) {
			problems = append(problems, p.locales.pick(r).T("No event matches these filters; there is nothing to export."))
		}
	}
	var ef store.ExportFilter
	if len(problems) == 0 {
		var notes []phrase
		ef, notes = f.exportFilter()
		problems = phrasesIn(p.locales.pick(r), notes)
	}
	if len(problems) > 0 {
		p.render(w, r, http.StatusBadRequest, "export", page{Title: "Export not started", Nav: "events", Session: s,
			Data: exportData{Error: strings.Join(problems, " "), Events: f.link("/portal/events", "", "")}})
		return
	}
	e, err := p.cfg.Exports.Create(r.Context(), s.Org, "csv", ef)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	meta := map[string]string{"format": "csv", "export_id": e.ID}
	for _, m := range filterMeta(f) {
		meta["filter_"+m.Key] = truncate(m.Value, 200)
	}
	p.auditTarget(r, s, "trail.export.requested", "audit_log_export", e.ID, "", meta)
	http.Redirect(w, r, "/portal/exports/"+e.ID+"?"+f.values().Encode(), http.StatusSeeOther)
}

// filterMeta describes a filter for the audit log and the export page.
func filterMeta(f filter) []kv {
	var out []kv
	add := func(k, v string) {
		if v != "" {
			out = append(out, kv{k, v})
		}
	}
	add("from", f.From)
	add("to", f.To)
	add("actions", strings.Join(f.Actions, ", "))
	add("actor_id", f.ActorID)
	add("actor_name", f.ActorName)
	add("target_type", f.TargetType)
	add("trail_events", f.Trail)
	return out
}

// ownExport returns the session organization's export id; another
// organization's answers 404 like an unknown one.
func (p *Portal) ownExport(w http.ResponseWriter, r *http.Request, s *session) (store.Export, bool) {
	id := r.PathValue("id")
	notFound := func() {
		p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "Export not found",
			Text: "There is no export with this id for %s.", TextArgs: []any{s.OrgName}}, s)
	}
	if len(id) > 100 || checkText(id) != nil {
		notFound()
		return store.Export{}, false
	}
	e, err := p.cfg.Exports.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && e.OrganizationID != s.Org {
		notFound()
		return store.Export{}, false
	}
	if err != nil {
		p.fail(w, r, s, err)
		return store.Export{}, false
	}
	return e, true
}

// exportPage is GET /portal/exports/{id}: the export's progress, and its
// download once ready. While it runs the page reloads itself every two
// seconds (a meta refresh, no script).
func (p *Portal) exportPage(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	e, ok := p.ownExport(w, r, s)
	if !ok {
		return
	}
	f, _ := parseFilter(r.URL.Query()) // only for the link back
	d := exportData{ID: e.ID, State: e.State, Ready: e.State == store.ExportReady, Pending: e.State == store.ExportPending,
		Read: e.Processed, Total: e.UpTo, Exported: e.Exported, Size: e.Size, Error: e.Error,
		Events: f.link("/portal/events", "", "")}
	if e.UpTo > 0 {
		d.Percent = min(100, e.Processed*100/e.UpTo)
	}
	if d.Ready {
		d.Percent = 100
		d.Download = "/portal/exports/" + e.ID + "/download"
	}
	if e.State == store.ExportExpired {
		d.Error = "This export has expired (files are kept 24 hours). Export again from the events page."
	}
	if !e.Filter.RangeStart.IsZero() {
		d.Filter = append(d.Filter, kv{"From", e.Filter.RangeStart.UTC().Format("2006-01-02 15:04:05")})
	}
	if !e.Filter.RangeEnd.IsZero() {
		d.Filter = append(d.Filter, kv{"Before", e.Filter.RangeEnd.UTC().Format("2006-01-02 15:04:05")})
	}
	for _, l := range []struct {
		k string
		v []string
	}{{"Actions", e.Filter.Actions}, {"Actor ids", e.Filter.ActorIDs}, {"Actor names", e.Filter.ActorNames}, {"Target types", e.Filter.Targets}} {
		if len(l.v) > 0 {
			d.Filter = append(d.Filter, kv{l.k, strings.Join(l.v, ", ")})
		}
	}
	pg := page{Title: "Export", Nav: "events", Session: s, Data: d}
	if d.Pending {
		pg.Refresh = 2
	}
	p.render(w, r, http.StatusOK, "export", pg)
}

// exportStatus is GET /portal/exports/{id}/status: the progress as JSON,
// for the script that updates the page in place.
func (p *Portal) exportStatus(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	e, ok := p.ownExport(w, r, s)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `{"state":%q,"events_read":%d,"events_total":%d,"events_exported":%d}`, e.State, e.Processed, e.UpTo, e.Exported)
}

// downloadExport is GET /portal/exports/{id}/download: the CSV file of a
// ready export of the session's organization.
func (p *Portal) downloadExport(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	e, ok := p.ownExport(w, r, s)
	if !ok {
		return
	}
	if e.State != store.ExportReady {
		m := messageData{Heading: "Export not ready", Text: "This export is %s, not ready for download.", TextArgs: []any{e.State}}
		switch e.State {
		case store.ExportPending:
			m.Text, m.TextArgs = "This export is still being prepared; it is not ready for download yet.", nil
		case store.ExportError:
			m.Text, m.TextArgs = "This export failed, so there is nothing to download.", nil
		case store.ExportExpired:
			m.Text, m.TextArgs = "This export has expired and its file was deleted.", nil
		}
		p.messageWith(w, r, http.StatusConflict, m, s)
		return
	}
	f, err := os.Open(p.cfg.Exports.Path(e))
	if errors.Is(err, os.ErrNotExist) {
		p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "Export file missing",
			Text: "The file of this export is not on this server any more. Export again from the events page."}, s)
		return
	}
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8; header=present")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, e.ID))
	h.Set("Cache-Control", "private, no-store")
	http.ServeContent(w, r, "", fi.ModTime().Truncate(time.Second), f)
}
