package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

const (
	pageSize = 50
	// maxScan bounds how many organizations a search reads: the store has
	// no name index yet, so a search reads the list in pages and filters.
	maxScan    = 10000
	maxQuery   = 200
	maxNameLen = 200
)

type orgsData struct {
	Query        string
	Orgs         []store.Organization
	Next         string // the next page's URL, "" when none
	Truncated    bool   // the search stopped after maxScan organizations
	Done         string
	Error, Field string
	Name, ExtID  string
	Intents      []string
	// The operations columns (orgstats.go).
	Ops              map[string]*orgOps
	RetentionChoices []int
	StreamsShown     bool
}

// organizations is GET /console/organizations[?q=…][&after=…]: the list,
// or the organizations whose id or name contain q (case-insensitive).
func (c *Console) organizations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := orgsData{Query: strings.TrimSpace(q.Get("q")), Done: q.Get("done")}
	if d.Done != "created" && d.Done != "retention" {
		d.Done = ""
	}
	if utf8.RuneCountInString(d.Query) > maxQuery || textsafe.HasControl(d.Query) {
		c.renderOrgs(w, r, http.StatusBadRequest, orgsData{Error: "q: the search must be at most 200 characters, without control characters", Field: "q"})
		return
	}
	after := q.Get("after")
	if after != "" && !strings.HasPrefix(after, "org_") || len(after) > 100 {
		c.renderOrgs(w, r, http.StatusBadRequest, orgsData{Query: d.Query, Error: "after: not a page of this list", Field: "after"})
		return
	}
	if err := c.findOrganizations(r, &d, after); err != nil {
		c.fail(w, r, sessionFrom(r), err)
		return
	}
	if err := c.orgOperations(r, &d); err != nil {
		c.fail(w, r, sessionFrom(r), err)
		return
	}
	c.renderOrgs(w, r, http.StatusOK, d)
}

func (c *Console) findOrganizations(r *http.Request, d *orgsData, after string) error {
	p := store.ListParams{Limit: pageSize, Order: store.OrderAsc, After: after}
	if d.Query == "" {
		page, err := c.cfg.Store.ListOrganizations(r.Context(), p)
		if err != nil {
			return err
		}
		d.Orgs = page.Data
		if page.After != "" {
			d.Next = safeURL("/console/organizations", url.Values{"after": {page.After}})
		}
		return nil
	}
	needle := strings.ToLower(d.Query)
	p.Limit = 100
	for scanned := 0; ; {
		page, err := c.cfg.Store.ListOrganizations(r.Context(), p)
		if err != nil {
			return err
		}
		for _, o := range page.Data {
			if strings.Contains(strings.ToLower(o.ID), needle) || strings.Contains(strings.ToLower(o.Name), needle) ||
				(o.ExternalID != "" && strings.Contains(strings.ToLower(o.ExternalID), needle)) {
				d.Orgs = append(d.Orgs, o)
			}
		}
		scanned += len(page.Data)
		if page.After == "" || len(d.Orgs) >= pageSize {
			if page.After != "" {
				d.Next = safeURL("/console/organizations", url.Values{"q": {d.Query}, "after": {page.After}})
			}
			return nil
		}
		if scanned >= maxScan {
			d.Truncated = true
			d.Next = safeURL("/console/organizations", url.Values{"q": {d.Query}, "after": {page.After}})
			return nil
		}
		p.After = page.After
	}
}

func (c *Console) renderOrgs(w http.ResponseWriter, r *http.Request, status int, d orgsData) {
	if c.cfg.Portal != nil {
		d.Intents = c.cfg.Portal.Intents()
	}
	c.render(w, r, status, "organizations", page{Title: "Organizations", Nav: "organizations", Session: sessionFrom(r), Data: d})
}

// createOrganization is POST /console/organizations (name, external_id).
func (c *Console) createOrganization(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	name, ext := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("external_id"))
	bad := func(status int, field, msg string) {
		c.renderOrgs(w, r, status, orgsData{Error: field + ": " + msg, Field: field, Name: name, ExtID: ext})
	}
	switch {
	case name == "" || utf8.RuneCountInString(name) > maxNameLen || textsafe.HasControl(name):
		bad(http.StatusBadRequest, "name", "give 1 to 200 characters, without control characters")
		return
	case utf8.RuneCountInString(ext) > maxNameLen || textsafe.HasControl(ext):
		bad(http.StatusBadRequest, "external_id", "at most 200 characters, without control characters")
		return
	}
	now := c.cfg.Now().UTC().Truncate(time.Millisecond)
	org := store.Organization{ID: access.NewOrganizationID(now), Name: name, ExternalID: ext, CreatedAt: now, UpdatedAt: now}
	if err := c.cfg.Store.CreateOrganization(r.Context(), org); err != nil {
		if errors.Is(err, store.ErrConflict) {
			bad(http.StatusConflict, "external_id", "another organization already has this external id")
			return
		}
		c.fail(w, r, s, err)
		return
	}
	c.audit(r, s, "trail.organization.created", "organization", org.ID, org.Name, []string{org.ID, store.SystemOrganizationID}, nil)
	http.Redirect(w, r, safeURL("/console/organizations", url.Values{"q": {org.ID}, "done": {"created"}}), http.StatusSeeOther)
}

type portalLinkData struct {
	Org     store.Organization
	Intent  string
	Link    string
	Expires time.Time
}

// portalLink is POST /console/organizations/{id}/portal_link (intent):
// an Admin Portal link for the organization, shown once.
func (c *Console) portalLink(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	if c.cfg.Portal == nil {
		c.messageIn(w, r, http.StatusNotFound, "Page not found", "This deployment does not serve the Admin Portal.", s)
		return
	}
	intent := r.PostFormValue("intent")
	if intent == "" {
		intent = "audit_logs"
	}
	if !slices.Contains(c.cfg.Portal.Intents(), intent) {
		c.messageIn(w, r, http.StatusBadRequest, "This form is not valid", "intent: must be one of "+strings.Join(c.cfg.Portal.Intents(), ", "), s)
		return
	}
	org, err := c.organization(r, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "No such organization", "There is no organization with this id.", s)
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	link, expires, err := c.cfg.Portal.GenerateLink(r.Context(), org.ID, intent, nil, "", "")
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.audit(r, s, "trail.portal_link.generated", "organization", org.ID, org.Name, []string{org.ID, store.SystemOrganizationID},
		map[string]string{"intent": intent})
	c.render(w, r, http.StatusOK, "portallink", page{Title: "Admin Portal link", Nav: "organizations", Session: s,
		Data: portalLinkData{Org: org, Intent: intent, Link: link, Expires: expires}})
}

// organization reads an organization an operator may act on: never the
// reserved org_system.
func (c *Console) organization(r *http.Request, id string) (store.Organization, error) {
	if id == store.SystemOrganizationID || !strings.HasPrefix(id, "org_") || len(id) > 100 {
		return store.Organization{}, store.ErrNotFound
	}
	return c.cfg.Store.Organization(r.Context(), id)
}

type keysData struct {
	Keys         []store.APIKey
	Next         string
	Done         string
	Scopes       []string
	Error, Field string
	Name, Org    string
	Checked      []string
}

var allScopes = []string{access.ScopeEventsWrite, access.ScopeEventsRead, access.ScopeExports, access.ScopeAdmin}

// keys is GET /console/keys[?after=…]: every API key, newest first.
func (c *Console) keys(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := keysData{Done: q.Get("done")}
	if d.Done != "revoked" {
		d.Done = ""
	}
	after := q.Get("after")
	if after != "" && !strings.HasPrefix(after, "key_") || len(after) > 100 {
		c.renderKeys(w, r, http.StatusBadRequest, keysData{Error: "after: not a page of this list", Field: "after"})
		return
	}
	page, err := c.cfg.Store.ListAPIKeys(r.Context(), store.ListParams{Limit: pageSize, Order: store.OrderDesc, After: after})
	if err != nil {
		c.fail(w, r, sessionFrom(r), err)
		return
	}
	d.Keys = page.Data
	if page.After != "" {
		d.Next = safeURL("/console/keys", url.Values{"after": {page.After}})
	}
	c.renderKeys(w, r, http.StatusOK, d)
}

func (c *Console) renderKeys(w http.ResponseWriter, r *http.Request, status int, d keysData) {
	d.Scopes = allScopes
	c.render(w, r, status, "keys", page{Title: "API keys", Nav: "keys", Session: sessionFrom(r), Data: d})
}

type keyCreatedData struct {
	Key    store.APIKey
	Secret string
}

// createKey is POST /console/keys (name, scope…, organization_id): the
// secret is on the answer's page and nowhere else.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	name, org := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("organization_id"))
	scopes := r.PostForm["scope"]
	bad := func(status int, field, msg string) {
		c.renderKeys(w, r, status, keysData{Error: field + ": " + msg, Field: field, Name: name, Org: org, Checked: scopes})
	}
	if name == "" || utf8.RuneCountInString(name) > maxNameLen || textsafe.HasControl(name) {
		bad(http.StatusBadRequest, "name", "give 1 to 200 characters, without control characters")
		return
	}
	sc, err := access.ParseScopes(scopes)
	if err != nil || len(scopes) == 0 || len(scopes) > len(allScopes) {
		bad(http.StatusBadRequest, "scope", "choose one or more of "+strings.Join(allScopes, ", "))
		return
	}
	if org != "" {
		if _, err := c.organization(r, org); errors.Is(err, store.ErrNotFound) {
			bad(http.StatusBadRequest, "organization_id", "there is no organization with this id")
			return
		} else if err != nil {
			c.fail(w, r, s, err)
			return
		}
	}
	secret, hash, prefix := access.Generate()
	now := c.cfg.Now().UTC().Truncate(time.Millisecond)
	k := store.APIKey{ID: access.NewKeyID(now), Name: name, Hash: hash, Prefix: prefix, Scopes: sc, OrganizationID: org, CreatedAt: now}
	if err := c.cfg.Store.CreateAPIKey(r.Context(), k); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.audit(r, s, "trail.api_key.created", "api_key", k.ID, k.Name, keyLogs(k), map[string]string{"scopes": strings.Join(k.Scopes, ",")})
	c.render(w, r, http.StatusOK, "keycreated", page{Title: "API key created", Nav: "keys", Session: s, Data: keyCreatedData{Key: k, Secret: secret}})
}

// keyLogs are the logs an action on k is recorded in: org_system, and the
// organization k is restricted to.
func keyLogs(k store.APIKey) []string {
	if k.OrganizationID != "" {
		return []string{k.OrganizationID, store.SystemOrganizationID}
	}
	return []string{store.SystemOrganizationID}
}

// revokeKey is POST /console/keys/{id}/revoke.
func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	id := r.PathValue("id")
	var k store.APIKey
	err := store.ErrNotFound
	if strings.HasPrefix(id, "key_") && len(id) <= 100 {
		k, err = c.cfg.Store.APIKey(r.Context(), id)
	}
	if errors.Is(err, store.ErrNotFound) {
		c.messageIn(w, r, http.StatusNotFound, "No such API key", "There is no API key with this id.", s)
		return
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	if k.RevokedAt.IsZero() {
		if err := c.cfg.Store.RevokeAPIKey(r.Context(), k.ID, c.cfg.Now()); err != nil {
			c.fail(w, r, s, err)
			return
		}
		c.audit(r, s, "trail.api_key.revoked", "api_key", k.ID, k.Name, keyLogs(k), nil)
	}
	http.Redirect(w, r, "/console/keys?done=revoked", http.StatusSeeOther)
}
