package portal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// maxActionOptions bounds the actions offered in the filter.
const maxActionOptions = 500

type eventsData struct {
	Filter       filter
	Active       bool
	Summary      []string // the filters set, for the folded filter line
	Problems     []string
	Actions      []actionOption
	Rows         []eventRow
	Newer, Older string // page URLs; "" at an end
	Histogram    histogramView
	// Export: the CSV export form is offered; ExportNote says why the
	// filter can't be exported as it is.
	Export     bool
	ExportNote string
	// ArchiveNote says where older events live, when some were archived.
	ArchiveNote string
}

type actionOption struct {
	Name     string // the action's code
	Label    string // its display name (the code when it has none)
	Selected bool
	Trail    bool // one of Trail's own actions ("access to this log")
}

// eventRow is one line of the events table.
type eventRow struct {
	ID         string
	Seq        int64
	URL        string
	OccurredAt time.Time
	Action     string
	Label      string // the action's display name, or its code
	Trail      bool   // one of Trail's own events ("access to this log")
	Actor      entityView
	Targets    []entityView
	MoreTarget int
	Location   string
	Imported   string // the service the event was imported from, or ""
	// Erased, for a tombstone of an erasure, says which records it
	// erased ("12 records erased: seq 3–5, 9"); Protected says a field
	// policy hashed or redacted fields of the event.
	Erased    string
	Protected bool
}

type entityView struct {
	Type, ID, Name string
	Metadata       []kv
}

type kv struct{ Key, Value string }

func entity(e event.Entity, md event.Metadata) entityView {
	return entityView{Type: e.Type, ID: e.ID, Name: e.Name, Metadata: metadata(md)}
}

func metadata(md event.Metadata) []kv {
	out := make([]kv, 0, len(md))
	for k, v := range md {
		out = append(out, kv{k, fmt.Sprint(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// events is GET /portal/events: the organization's events, newest first.
func (p *Portal) events(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	f, problems := parseFilterIn(p.locales.pick(r), r.URL.Query())
	d := eventsData{Filter: f, Active: f.active(), Problems: problems}
	lang := p.locales.pick(r)
	status := http.StatusOK
	actions, err := p.cfg.Store.OrganizationActions(r.Context(), s.Org, maxActionOptions)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	known := slices.Clone(actions)
	for _, a := range f.Actions {
		if !slices.Contains(actions, a) { // from a shared URL, or not indexed yet
			actions = append(actions, a)
		}
	}
	labels := p.actionLabels(r.Context(), actions)
	slices.SortFunc(actions, func(a, b string) int {
		// The application's actions first, then Trail's own.
		if ta, tb := strings.HasPrefix(a, trailPrefix), strings.HasPrefix(b, trailPrefix); ta != tb {
			if ta {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	d.Summary = f.summary(lang, labels)
	for _, a := range actions {
		d.Actions = append(d.Actions, actionOption{Name: a, Label: labels.label(a), Selected: slices.Contains(f.Actions, a),
			Trail: strings.HasPrefix(a, trailPrefix)})
	}
	if len(problems) == 0 {
		if !f.resolve(known) {
			d.Filter = f // nothing can match: no query
		} else {
			d.Filter = f
			page, err := p.cfg.Store.SearchEvents(r.Context(), f.query(s.Org))
			switch {
			case errors.Is(err, store.ErrInvalidCursor):
				d.Problems = append(d.Problems, lang.T("The page cursor is not valid; go back to the first page."))
			case err != nil:
				p.fail(w, r, s, err)
				return
			default:
				if d.Rows, err = p.rows(page.Events, labels); err != nil {
					p.fail(w, r, s, err)
					return
				}
				if page.Before != "" {
					d.Newer = f.link("/portal/events", "before", page.Before)
				}
				if page.After != "" {
					d.Older = f.link("/portal/events", "after", page.After)
				}
			}
		}
	}
	if p.cfg.Exports != nil && len(d.Problems) == 0 {
		d.Export = true
		if _, notes := f.exportFilter(); len(notes) > 0 {
			d.ExportNote = notes[0].in(lang)
		}
	}
	if len(d.Problems) > 0 {
		status = http.StatusBadRequest
	} else {
		d.Histogram = histogramFor(f, p.cfg.Now(), lang)
	}
	if p.cfg.Archived != nil {
		if a, ok := p.cfg.Archived(r.Context(), s.Org); ok {
			d.ArchiveNote = lang.T("Events before number %d of this log are past its retention period and are kept in the verifiable archive (%s), not here: ask your administrator for them. Each archived bundle verifies with trail verify.", a.Before, a.Where)
		}
	}
	p.render(w, r, status, "events", page{Title: "Events", Nav: "events", Session: s, Data: d})
}

// importView is where an imported event came from, as the portal shows it.
type importView struct {
	Source, ID string
}

// sourceName is how the portal names a service events were imported from.
func sourceName(source string) string {
	if source == "workos" {
		return "WorkOS"
	}
	return source
}

// rows are the events table's lines. Trail's own events done by the
// vendor show the vendor (vendorActor), not its internal key ids and
// addresses; they stay in the record and its proof.
func (p *Portal) rows(evs []store.StoredEvent, labels actionLabels) ([]eventRow, error) {
	out := make([]eventRow, 0, len(evs))
	for _, e := range evs {
		rec, err := event.ParseRecord(e.Record)
		if err != nil {
			return nil, fmt.Errorf("couldn't decode event %s (seq %d) of %s: %w", e.ID, e.Seq, e.OrganizationID, err)
		}
		out = append(out, p.row(e.ID, e.Seq, rec, labels))
	}
	return out, nil
}

// row is one event as a list shows it: the vendor's own actions by the
// vendor's name, without its key ids or addresses.
func (p *Portal) row(id string, seq int64, rec *event.Record, labels actionLabels) eventRow {
	row := eventRow{ID: id, Seq: seq, URL: "/portal/events/" + id, OccurredAt: rec.OccurredAt,
		Action: rec.Action, Label: labels.label(rec.Action), Trail: strings.HasPrefix(rec.Action, trailPrefix),
		Actor: entity(rec.Actor, nil), Location: rec.Location}
	if p.byVendor(rec.Action, rec.Actor) {
		row.Actor, row.Location = p.vendorActor(), ""
	}
	if rec.Imported != nil {
		row.Imported = sourceName(rec.Imported.Source)
	}
	row.Erased, row.Protected = erasedText(rec), rec.Privacy != nil
	for i, t := range rec.Targets {
		if i == 3 {
			row.MoreTarget = len(rec.Targets) - 3
			break
		}
		row.Targets = append(row.Targets, entity(t, nil))
	}
	return row
}

type eventData struct {
	ID, Action string
	Label      actionText
	Trail      bool // one of Trail's own events
	// ByVendor: the actor is the application's operator, shown by the
	// deployment's vendor name; its key ids and addresses are left out of
	// the page (the record keeps them: its hash is what the proof proves).
	ByVendor   bool
	Seq        int64
	Version    int64
	OccurredAt time.Time
	ReceivedAt time.Time
	Actor      entityView
	Targets    []entityView
	Location   string
	UserAgent  string
	Metadata   []kv
	Record     string // indented for reading
	Imported   *importView
	// Erased: see eventRow. Hashed and Redacted name the fields a field
	// policy replaced before the event was stored.
	Erased           string
	Hashed, Redacted []string
	Proof            proofView
	Back             string
}

// eventDetail is GET /portal/events/{id}: one event's full record and the
// check of its inclusion in the newest signed checkpoint.
func (p *Portal) eventDetail(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	id := r.PathValue("id")
	notFound := func() {
		p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "Event not found",
			Text: "There is no event with this id in the audit log of %s.", TextArgs: []any{s.OrgName}}, s)
	}
	if len(id) > 100 || checkText(id) != nil {
		notFound()
		return
	}
	e, err := p.cfg.Store.Event(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && e.OrganizationID != s.Org {
		notFound() // another organization's event is not there for this session
		return
	}
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	rec, err := event.ParseRecord(e.Record)
	if err != nil {
		p.fail(w, r, s, fmt.Errorf("couldn't decode event %s: %w", e.ID, err))
		return
	}
	d := eventData{ID: e.ID, Seq: e.Seq, Action: rec.Action, Version: rec.Version, OccurredAt: rec.OccurredAt,
		ReceivedAt: rec.ReceivedAt, Actor: entity(rec.Actor, rec.ActorMetadata), Location: rec.Location,
		UserAgent: rec.UserAgent, Metadata: metadata(rec.Metadata), Back: "/portal/events",
		Label: p.versionLabel(r.Context(), rec.Action, rec.Version), Trail: strings.HasPrefix(rec.Action, trailPrefix)}
	if p.byVendor(rec.Action, rec.Actor) {
		d.ByVendor = true
		d.Actor, d.Location, d.UserAgent = p.vendorActor(), "", ""
		d.Metadata = slices.DeleteFunc(d.Metadata, func(m kv) bool { return m.Key == "request_id" })
	}
	if rec.Imported != nil {
		d.Imported = &importView{Source: sourceName(rec.Imported.Source), ID: rec.Imported.ID}
	}
	d.Erased = erasedText(rec)
	if rec.Privacy != nil {
		d.Hashed, d.Redacted = rec.Privacy.Hashed, rec.Privacy.Redacted
	}
	for i, t := range rec.Targets {
		var md event.Metadata
		if i < len(rec.TargetsMetadata) {
			md = rec.TargetsMetadata[i]
		}
		d.Targets = append(d.Targets, entity(t, md))
	}
	var pretty bytes.Buffer
	switch {
	case d.ByVendor:
		// The canonical record would show the vendor's key id and
		// address: the page says where the whole record is instead.
	case json.Indent(&pretty, e.Record, "", "  ") == nil:
		d.Record = pretty.String()
	default:
		d.Record = string(e.Record)
	}
	if d.Proof, err = p.proveInclusion(r.Context(), s.Org, e); err != nil {
		p.fail(w, r, s, err)
		return
	}
	p.render(w, r, http.StatusOK, "event", page{Title: "Event " + e.ID, Nav: "events", Session: s, Data: d})
}

// erasedText says which records a tombstone of an erasure erased, or ""
// for any other event. The portal shows what the tombstone claims; trail
// verify checks its signature (docs/PRIVACY.md).
func erasedText(rec *event.Record) string {
	if rec.Action != ledger.ErasureAction {
		return ""
	}
	var seqs []string
	for i := 0; ; i++ {
		v, ok := rec.Metadata[ledger.ErasureSeqKey(i)].(string)
		if !ok {
			break
		}
		seqs = append(seqs, v)
	}
	n := fmt.Sprint(rec.Metadata["erased_count"])
	id, _ := rec.Metadata["erasure_id"].(string)
	list := strings.ReplaceAll(strings.Join(seqs, ","), ",", ", ")
	if len(list) > 300 {
		list = list[:300] + "…"
	}
	if list == "" {
		return "No records erased by request " + id + " (the subject had no events)."
	}
	return n + " records erased by request " + id + ": seq " + strings.ReplaceAll(list, "-", "–") + ". Their leaf hashes stay in the log, so it still verifies."
}
