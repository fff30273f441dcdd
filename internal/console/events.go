package console

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
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/store"
)

// The events pages: one organization's events with the Admin Portal's
// filters (parsed by the portal's own code, portal.ParseFilter), a search
// across every organization with the same filters
// (store.Backend.SearchAllEvents), and one event. The scope — which
// organization, or all of them — heads every one of these pages.

// maxActionOptions bounds the actions offered in an organization's filter.
const maxActionOptions = 500

// scope is whose events a page shows: one organization, or all (Org nil).
type scope struct {
	Org *store.Organization
}

func (s scope) All() bool { return s.Org == nil }

// path is the scope's events page.
func (s scope) path() string {
	if s.Org == nil {
		return "/console/events"
	}
	return "/console/organizations/" + s.Org.ID + "/events"
}

type eventsData struct {
	Scope        scope
	Action       string // the form's action: this page
	Filter       portal.Filter
	Active       bool
	Problems     []string
	Actions      []actionOption // the organization's known actions; none across organizations
	ActionText   string         // across organizations: the actions as typed, comma-separated
	Rows         []eventRow
	Newer, Older string
	Clear        string
	Live         string // the organization's live view, "" when none
	Indexed      bool   // across organizations: say that the search covers indexed events
}

type actionOption struct {
	Name     string
	Selected bool
}

type eventRow struct {
	ID, URL    string
	Seq        int64
	Org        string
	OrgName    string
	OrgURL     string
	OccurredAt time.Time
	Action     string
	Actor      entityView
	Targets    []entityView
	MoreTarget int
	Location   string
}

type entityView struct {
	Type, ID, Name string
	Metadata       []kv
}

type kv struct{ Key, Value string }

func entity(e event.Entity, md event.Metadata) entityView {
	v := entityView{Type: e.Type, ID: e.ID, Name: e.Name}
	for k, val := range md {
		v.Metadata = append(v.Metadata, kv{k, fmt.Sprint(val)})
	}
	sort.Slice(v.Metadata, func(i, j int) bool { return v.Metadata[i].Key < v.Metadata[j].Key })
	return v
}

// orgEvents is GET /console/organizations/{id}/events: one organization's
// events, newest first, with the portal's filters.
func (c *Console) orgEvents(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	org, ok := c.pathOrganization(w, r, s)
	if !ok {
		return
	}
	c.eventsPage(w, r, scope{Org: &org})
}

// allEvents is GET /console/events: the search across organizations.
func (c *Console) allEvents(w http.ResponseWriter, r *http.Request) {
	c.eventsPage(w, r, scope{})
}

func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request, sc scope) {
	s := sessionFrom(r)
	v := r.URL.Query()
	if sc.All() {
		// The page's one action field may list several, comma-separated.
		var acts []string
		for _, a := range v["action"] {
			for _, part := range strings.Split(a, ",") {
				if part = strings.TrimSpace(part); part != "" {
					acts = append(acts, part)
				}
			}
		}
		v["action"] = acts
	}
	f, problems := portal.ParseFilter(v)
	path := sc.path()
	d := eventsData{Scope: sc, Action: path, Filter: f, Active: f.Active(), Problems: problems, Clear: path, Indexed: sc.All()}
	if sc.All() {
		d.ActionText = strings.Join(f.Actions, ", ")
	} else {
		if c.cfg.Tail != nil {
			d.Live = "/console/organizations/" + sc.Org.ID + "/live"
		}
		actions, err := c.cfg.Store.OrganizationActions(r.Context(), sc.Org.ID, maxActionOptions)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		for _, a := range f.Actions {
			if !slices.Contains(actions, a) {
				actions = append(actions, a)
			}
		}
		slices.Sort(actions)
		for _, a := range actions {
			d.Actions = append(d.Actions, actionOption{Name: a, Selected: slices.Contains(f.Actions, a)})
		}
	}
	if len(problems) == 0 {
		var page store.EventPage
		var err error
		if sc.All() {
			page, err = c.cfg.Store.SearchAllEvents(r.Context(), f.Query(""))
		} else {
			page, err = c.cfg.Store.SearchEvents(r.Context(), f.Query(sc.Org.ID))
		}
		switch {
		case errors.Is(err, store.ErrInvalidCursor):
			d.Problems = append(d.Problems, "The page cursor is not valid; go back to the first page.")
		case err != nil:
			c.fail(w, r, s, err)
			return
		default:
			if d.Rows, err = c.rows(r, page.Events, sc); err != nil {
				c.fail(w, r, s, err)
				return
			}
			if page.Before != "" {
				d.Newer = f.Link(path, "before", page.Before)
			}
			if page.After != "" {
				d.Older = f.Link(path, "after", page.After)
			}
		}
	}
	status := http.StatusOK
	if len(d.Problems) > 0 {
		status = http.StatusBadRequest
	}
	title := "Events of all organizations"
	if !sc.All() {
		title = "Events of " + sc.Org.Name
	}
	c.render(w, r, status, "events", page{Title: title, Nav: "events", Session: s, Data: d})
}

// rows turns stored events into table rows; across organizations each row
// names its organization.
func (c *Console) rows(r *http.Request, evs []store.StoredEvent, sc scope) ([]eventRow, error) {
	names := map[string]string{}
	if sc.Org != nil {
		names[sc.Org.ID] = sc.Org.Name
	}
	out := make([]eventRow, 0, len(evs))
	for _, e := range evs {
		rec, err := event.ParseRecord(e.Record)
		if err != nil {
			return nil, fmt.Errorf("couldn't decode event %s (seq %d) of %s: %w", e.ID, e.Seq, e.OrganizationID, err)
		}
		name, ok := names[e.OrganizationID]
		if !ok {
			o, err := c.cfg.Store.Organization(r.Context(), e.OrganizationID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, err
			default:
				name = o.Name
			}
			names[e.OrganizationID] = name
		}
		row := eventRow{ID: e.ID, URL: "/console/events/" + e.ID, Seq: e.Seq, Org: e.OrganizationID, OrgName: name,
			OrgURL: "/console/organizations/" + e.OrganizationID + "/events", OccurredAt: rec.OccurredAt,
			Action: rec.Action, Actor: entity(rec.Actor, nil), Location: rec.Location}
		for i, t := range rec.Targets {
			if i == 3 {
				row.MoreTarget = len(rec.Targets) - 3
				break
			}
			row.Targets = append(row.Targets, entity(t, nil))
		}
		out = append(out, row)
	}
	return out, nil
}

type eventData struct {
	ID, Action string
	Org        store.Organization
	OrgURL     string
	Seq        int64
	Version    int64
	OccurredAt time.Time
	ReceivedAt time.Time
	Actor      entityView
	Targets    []entityView
	Location   string
	UserAgent  string
	Metadata   []kv
	Record     string
	Imported   string
}

// eventDetail is GET /console/events/{id}: one event of any organization,
// its organization named at the top.
func (c *Console) eventDetail(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	id := r.PathValue("id")
	notFound := func() {
		c.messageIn(w, r, http.StatusNotFound, "Event not found", "There is no event with this id in any organization's log.", s)
	}
	if len(id) > 100 || portal.CheckText(id) != nil {
		notFound()
		return
	}
	e, err := c.cfg.Store.Event(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	rec, err := event.ParseRecord(e.Record)
	if err != nil {
		c.fail(w, r, s, fmt.Errorf("couldn't decode event %s: %w", e.ID, err))
		return
	}
	org, err := c.cfg.Store.Organization(r.Context(), e.OrganizationID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, err)
		return
	}
	org.ID = e.OrganizationID
	d := eventData{ID: e.ID, Org: org, OrgURL: "/console/organizations/" + e.OrganizationID + "/events", Seq: e.Seq,
		Action: rec.Action, Version: rec.Version, OccurredAt: rec.OccurredAt, ReceivedAt: rec.ReceivedAt,
		Actor: entity(rec.Actor, rec.ActorMetadata), Location: rec.Location, UserAgent: rec.UserAgent}
	if rec.Imported != nil {
		d.Imported = rec.Imported.Source + " " + rec.Imported.ID
	}
	for k, v := range rec.Metadata {
		d.Metadata = append(d.Metadata, kv{k, fmt.Sprint(v)})
	}
	sort.Slice(d.Metadata, func(i, j int) bool { return d.Metadata[i].Key < d.Metadata[j].Key })
	for i, t := range rec.Targets {
		var md event.Metadata
		if i < len(rec.TargetsMetadata) {
			md = rec.TargetsMetadata[i]
		}
		d.Targets = append(d.Targets, entity(t, md))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, e.Record, "", "  ") == nil {
		d.Record = pretty.String()
	} else {
		d.Record = string(e.Record)
	}
	c.render(w, r, http.StatusOK, "event", page{Title: "Event " + e.ID, Nav: "events", Session: s, Data: d})
}

// pathOrganization is the organization the path's {id} names, for a page
// about it; when there is none it has answered with the 404 page (or the
// failure) and reports false.
func (c *Console) pathOrganization(w http.ResponseWriter, r *http.Request, s *session) (store.Organization, bool) {
	org, err := c.logOrganization(r, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "Organization not found", "There is no organization with this id.", s)
		return store.Organization{}, false
	}
	if err != nil {
		c.fail(w, r, s, err)
		return store.Organization{}, false
	}
	return org, true
}

// logOrganization is the organization whose log a page shows: any,
// org_system (the deployment's own log) included.
func (c *Console) logOrganization(r *http.Request, id string) (store.Organization, error) {
	if !strings.HasPrefix(id, "org_") || len(id) > 100 || portal.CheckText(id) != nil {
		return store.Organization{}, store.ErrNotFound
	}
	return c.cfg.Store.Organization(r.Context(), id)
}
