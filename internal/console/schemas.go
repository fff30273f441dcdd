package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store"
)

// The schemas pages: the actions that have schemas, each action's versions,
// the structural difference between two of them, and a new version, first
// previewed against an organization's recent events of that action, then
// saved. Schemas are deployment-wide (store.SchemaStore); the preview reads
// one organization's events.

// previewEvents is how many of an organization's newest events of the
// action a preview validates.
const previewEvents = 1000

type schemasData struct {
	Actions []store.ActionSchemas
	Next    string
	Action  string // the new action form's value
	Error   string
	Field   string
	// Actor is the deployment's latest actor schema (Version 0: none),
	// ActorBody its body for reading.
	Actor     store.Schema
	ActorBody string
	// Org, when given, lists the actions of that organization's events
	// instead, each with its latest schema version (0: none).
	Org        string
	OrgName    string
	OrgActions []orgAction
	Truncated  bool
}

type orgAction struct {
	Name   string
	Latest int
}

// maxOrgActions bounds the actions of one organization a page lists.
const maxOrgActions = 200

// schemas is GET /console/schemas[?after=…]: the actions with schemas.
func (c *Console) schemas(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st := c.cfg.Operations.Schemas
	if st == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This console is not connected to the schemas.", s)
		return
	}
	q := r.URL.Query()
	if a, ok := q["action"]; ok {
		// The form that opens another action's page.
		action := strings.TrimSpace(a[0])
		if p := event.ActionProblem(action); p != "" {
			c.render(w, r, http.StatusBadRequest, "schemas", page{Title: "Schemas", Nav: "schemas", Session: s,
				Data: schemasData{Error: "action: the action " + p + ".", Field: "action", Action: action}})
			return
		}
		http.Redirect(w, r, "/console/schemas/"+url.PathEscape(action), http.StatusSeeOther)
		return
	}
	if org := strings.TrimSpace(q.Get("org")); org != "" {
		c.orgSchemas(w, r, s, org)
		return
	}
	after := q.Get("after")
	if after != "" && event.ActionProblem(after) != "" {
		c.render(w, r, http.StatusBadRequest, "schemas", page{Title: "Schemas", Nav: "schemas", Session: s,
			Data: schemasData{Error: "after: not a page of this list", Field: "after"}})
		return
	}
	pg, err := st.ListActions(r.Context(), store.ListParams{Limit: pageSize, Order: store.OrderAsc, After: after})
	if errors.Is(err, store.ErrInvalidCursor) {
		c.render(w, r, http.StatusBadRequest, "schemas", page{Title: "Schemas", Nav: "schemas", Session: s,
			Data: schemasData{Error: "after: not a page of this list", Field: "after"}})
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := schemasData{Actions: pg.Data}
	if a, err := st.Schema(r.Context(), store.SchemaKindActor, "", 0); err == nil {
		d.Actor, d.ActorBody = a, pretty(a.Body)
	} else if !errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, err)
		return
	}
	if pg.After != "" {
		d.Next = safeURL("/console/schemas", url.Values{"after": {pg.After}})
	}
	c.render(w, r, http.StatusOK, "schemas", page{Title: "Schemas", Nav: "schemas", Session: s, Data: d})
}

// orgSchemas is GET /console/schemas?org=…: the actions of the
// organization's events, each with its latest schema version.
func (c *Console) orgSchemas(w http.ResponseWriter, r *http.Request, s *session, id string) {
	ops := c.cfg.Operations
	d := schemasData{Org: id}
	o, err := c.organization(r, id)
	if errors.Is(err, store.ErrNotFound) || ops.Events == nil {
		d.Error, d.Field = "org: there is no organization with this id", "org"
		c.render(w, r, http.StatusBadRequest, "schemas", page{Title: "Schemas", Nav: "schemas", Session: s, Data: d})
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d.OrgName = o.Name
	actions, err := ops.Events.OrganizationActions(r.Context(), o.ID, maxOrgActions+1)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if len(actions) > maxOrgActions {
		actions, d.Truncated = actions[:maxOrgActions], true
	}
	for _, a := range actions {
		oa := orgAction{Name: a}
		sc, err := ops.Schemas.Schema(r.Context(), store.SchemaKindAction, a, 0)
		switch {
		case err == nil:
			oa.Latest = sc.Version
		case !errors.Is(err, store.ErrNotFound):
			c.fail(w, r, s, err)
			return
		}
		d.OrgActions = append(d.OrgActions, oa)
	}
	c.render(w, r, http.StatusOK, "schemas", page{Title: "Schemas of " + o.Name, Nav: "schemas", Session: s, Data: d})
}

type schemaData struct {
	Action   string
	Versions []store.Schema
	Done     string
	// The difference between versions From and To.
	From, To         int
	FromBody, ToBody string
	Changes          []change
	// The new version's form.
	Body, Org    string
	Error, Field string
	Problems     []event.FieldError
	// The preview, once asked for.
	Preview *preview
}

// preview is how an organization's recent events of the action validate.
type preview struct {
	Org       string
	Read      int
	Valid     int
	Invalid   []invalidEvent // the first ones
	Failing   int
	Latest    int // the current latest version (0: none)
	LatestBad int // events the latest version refuses, of those read
	Changes   []change
	Truncated bool // more events exist than were read
}

type invalidEvent struct {
	ID       string
	Occurred time.Time
	Errors   []event.FieldError
}

// schemaAction reads the {action} of the path with an event's action rules.
func (c *Console) schemaAction(w http.ResponseWriter, r *http.Request, s *session) (string, bool) {
	if c.cfg.Operations.Schemas == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This console is not connected to the schemas.", s)
		return "", false
	}
	a := r.PathValue("action")
	if p := event.ActionProblem(a); p != "" {
		c.messageIn(w, r, http.StatusBadRequest, "This action is not valid", "action: the action "+p+".", s)
		return "", false
	}
	return a, true
}

// schemaVersions is GET /console/schemas/{action}[?from=N&to=M]: the
// action's versions, newest first, the difference between two of them
// (by default the latest and the one before), and the new version's form.
func (c *Console) schemaVersions(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	action, ok := c.schemaAction(w, r, s)
	if !ok {
		return
	}
	q := r.URL.Query()
	d := schemaData{Action: action, Done: q.Get("done"), Org: strings.TrimSpace(q.Get("org"))}
	if d.Done != "created" {
		d.Done = ""
	}
	if err := c.loadVersions(r, &d); err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, f := range []struct {
		name string
		to   *int
	}{{"from", &d.From}, {"to", &d.To}} {
		raw := q.Get(f.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > len(d.Versions) {
			d.Error, d.Field = f.name+": give a version of this action, 1 to "+strconv.Itoa(len(d.Versions)), f.name
			c.render(w, r, http.StatusBadRequest, "schema", page{Title: "Schema of " + action, Nav: "schemas", Session: s, Data: d})
			return
		}
		*f.to = n
	}
	if n := len(d.Versions); n > 0 {
		if d.To == 0 {
			d.To = n
		}
		if d.From == 0 {
			d.From = max(d.To-1, 1)
		}
		from, to := d.Versions[n-d.From], d.Versions[n-d.To]
		fd, err1 := schema.Decode(from.Body)
		td, err2 := schema.Decode(to.Body)
		if err := errors.Join(err1, err2); err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.FromBody, d.ToBody, d.Changes = pretty(from.Body), pretty(to.Body), schemaDiff(fd, td)
		if d.Body == "" {
			d.Body = pretty(d.Versions[0].Body)
		}
	}
	if d.Body == "" {
		d.Body = "{\n  \"targets\": [{\"type\": \"user\"}],\n  \"metadata\": {\"type\": \"object\", \"properties\": {}}\n}"
	}
	c.render(w, r, http.StatusOK, "schema", page{Title: "Schema of " + action, Nav: "schemas", Session: s, Data: d})
}

// loadVersions reads the action's versions, newest first (at most 100,
// the store's page).
func (c *Console) loadVersions(r *http.Request, d *schemaData) error {
	pg, err := c.cfg.Operations.Schemas.ListSchemas(r.Context(), store.SchemaKindAction, d.Action,
		store.ListParams{Limit: 100, Order: store.OrderDesc})
	if err != nil {
		return err
	}
	d.Versions = pg.Data
	return nil
}

// createSchema is POST /console/schemas/{action} (body, org, and preview
// or save): a preview validates the organization's newest events of the
// action against the body; save stores it as the action's next version.
func (c *Console) createSchema(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	action, ok := c.schemaAction(w, r, s)
	if !ok {
		return
	}
	d := schemaData{Action: action, Body: r.PostFormValue("body"), Org: strings.TrimSpace(r.PostFormValue("org"))}
	if err := c.loadVersions(r, &d); err != nil {
		c.fail(w, r, s, err)
		return
	}
	bad := func(status int, field, msg string) {
		d.Error, d.Field = field+": "+msg, field
		c.render(w, r, status, "schema", page{Title: "Schema of " + action, Nav: "schemas", Session: s, Data: d})
	}
	def, problems := schema.ParseAction([]byte(d.Body))
	if problems != nil {
		d.Problems = problems
		bad(http.StatusUnprocessableEntity, "body", "the schema is not valid: "+problems[0].Field+" "+problems[0].Message)
		return
	}
	if r.PostFormValue("save") == "" {
		if d.Org == "" {
			bad(http.StatusBadRequest, "org", "give the organization whose recent events to validate")
			return
		}
		org, err := c.organization(r, d.Org)
		if errors.Is(err, store.ErrNotFound) {
			bad(http.StatusBadRequest, "org", "there is no organization with this id")
			return
		}
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		p, err := c.preview(r, org.ID, action, def, d.Versions)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.Preview = p
		c.render(w, r, http.StatusOK, "schema", page{Title: "Schema of " + action, Nav: "schemas", Session: s, Data: d})
		return
	}
	sc, err := c.cfg.Operations.Schemas.CreateSchema(r.Context(), store.Schema{Kind: store.SchemaKindAction, Name: action,
		Body: def.Encode(), CreatedAt: c.cfg.Now().UTC().Truncate(time.Millisecond)})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if c.cfg.Operations.Forget != nil {
		c.cfg.Operations.Forget(store.SchemaKindAction, action)
	}
	c.audit(r, s, "trail.schema.created", "audit_log_schema", action, action, []string{store.SystemOrganizationID},
		map[string]string{"version": strconv.Itoa(sc.Version)})
	http.Redirect(w, r, safeURL("/console/schemas/"+url.PathEscape(action), url.Values{"done": {"created"}}), http.StatusSeeOther)
}

// preview validates org's newest events of action (at most previewEvents)
// against def, with the deployment's latest actor schema, and against the
// action's latest version.
func (c *Console) preview(r *http.Request, org, action string, def *schema.Definition, versions []store.Schema) (*preview, error) {
	ops := c.cfg.Operations
	p := &preview{Org: org}
	var actor *schema.Definition
	if a, err := ops.Schemas.Schema(r.Context(), store.SchemaKindActor, "", 0); err == nil {
		if actor, err = schema.DecodeActor(a.Body); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	v, err := schema.Compile(def, actor)
	if err != nil {
		return nil, err
	}
	var latest *schema.Validator
	if len(versions) > 0 {
		p.Latest = versions[0].Version
		ld, err := schema.Decode(versions[0].Body)
		if err != nil {
			return nil, err
		}
		if latest, err = schema.Compile(ld, actor); err != nil {
			return nil, err
		}
		p.Changes = schemaDiff(ld, def)
	}
	if ops.Events == nil {
		return p, nil
	}
	q := store.EventQuery{OrganizationID: org, Actions: []string{action}, Limit: 100, Order: store.OrderDesc}
	for p.Read < previewEvents {
		pg, err := ops.Events.SearchEvents(r.Context(), q)
		if err != nil {
			return nil, err
		}
		for _, e := range pg.Events {
			if p.Read >= previewEvents {
				p.Truncated = true
				return p, nil
			}
			rec, err := event.ParseRecord(e.Record)
			if err != nil {
				continue // a record retention emptied, or unreadable: not this schema's business
			}
			p.Read++
			if errs := v.Validate(&rec.Draft); errs != nil {
				p.Failing++
				if len(p.Invalid) < 20 {
					p.Invalid = append(p.Invalid, invalidEvent{ID: e.ID, Occurred: rec.OccurredAt, Errors: errs})
				}
			} else {
				p.Valid++
			}
			if latest != nil && latest.Validate(&rec.Draft) != nil {
				p.LatestBad++
			}
		}
		if pg.After == "" {
			return p, nil
		}
		q.After = pg.After
	}
	return p, nil
}
