package portal

import (
	"context"
	"errors"
	"strings"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store"
)

// Schemas is where the portal finds the display names of actions: the
// action schemas (docs/API.md, "display_name" and "description").
type Schemas interface {
	Schema(ctx context.Context, kind, name string, version int) (store.Schema, error)
	ListActions(ctx context.Context, p store.ListParams) (store.ListPage[store.ActionSchemas], error)
}

// actionText is how an action (of one version) is shown.
type actionText struct {
	Label, Description string
}

// actionLabels are the display texts of actions by code; an action it
// lacks is shown as its code.
type actionLabels map[string]actionText

func (l actionLabels) label(action string) string {
	if t, ok := l[action]; ok && t.Label != "" {
		return t.Label
	}
	return action
}

// maxSchemaPages bounds the pages of ListActions one page of the portal
// reads for the labels of the action picker.
const maxSchemaPages = 5

// actionLabels returns the display texts of the latest schema of each of
// actions that has one. Errors leave actions shown as their codes: the
// labels are a courtesy, not worth failing a page for.
func (p *Portal) actionLabels(ctx context.Context, actions []string) actionLabels {
	out := actionLabels{}
	for _, a := range actions {
		if strings.HasPrefix(a, trailPrefix) {
			if t, ok := trailActions[a]; ok {
				out[a] = t
			}
		}
	}
	if p.cfg.Schemas == nil {
		return out
	}
	params := store.ListParams{Limit: 100}
	for range maxSchemaPages {
		page, err := p.cfg.Schemas.ListActions(ctx, params)
		if err != nil {
			p.log.Warn("couldn't read the action schemas' display names", "err", err)
			return out
		}
		for _, a := range page.Data {
			if d, err := schema.Decode(a.Latest.Body); err == nil && d.DisplayName != "" {
				out[a.Name] = actionText{Label: d.DisplayName, Description: d.Description}
			}
		}
		if page.After == "" {
			break
		}
		params.After = page.After
	}
	return out
}

// versionLabel is the display text of one version of an action: the
// schema an event was recorded against names it, so renaming an action in
// a later schema does not rename the events recorded before.
func (p *Portal) versionLabel(ctx context.Context, action string, version int64) actionText {
	if t, ok := trailActions[action]; ok {
		return t
	}
	if p.cfg.Schemas == nil {
		return actionText{Label: action}
	}
	// An event recorded without a version is shown by the latest schema
	// (store.SchemaStore.Schema's version 0).
	sc, err := p.cfg.Schemas.Schema(ctx, store.SchemaKindAction, action, int(max(version, 0)))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.Warn("couldn't read an action schema's display name", "action", action, "err", err)
		}
		return actionText{Label: action}
	}
	d, err := schema.Decode(sc.Body)
	if err != nil || d.DisplayName == "" {
		return actionText{Label: action}
	}
	return actionText{Label: d.DisplayName, Description: d.Description}
}

// trailActions are the display texts of Trail's own actions: the access
// to this log that the application's operator and the portal's admins
// have had.
var trailActions = map[string]actionText{
	"trail.organization.created":    {"Audit log created", "The application created this organization's audit log."},
	"trail.portal_link.generated":   {"Portal link generated", "The application generated a link that opens this portal."},
	"trail.portal_link.revoked":     {"Portal links revoked", "The application revoked one admin's portal links and sessions."},
	"trail.portal_sessions.revoked": {"Portal sessions revoked", "The application ended every portal session of this organization."},
	"trail.portal_session.started":  {"Portal opened", "An admin opened this portal through a link."},
	"trail.portal_session.ended":    {"Signed out of the portal", "An admin signed out of this portal."},
	"trail.export.requested":        {"Export requested", "A CSV export of events was requested."},
	"trail.log_stream.created":      {"Log stream created", "A log stream to a SIEM was added."},
	"trail.log_stream.updated":      {"Log stream changed", "A log stream's settings were changed."},
	"trail.log_stream.paused":       {"Log stream paused", "A log stream was paused."},
	"trail.log_stream.resumed":      {"Log stream resumed", "A log stream was resumed."},
	"trail.log_stream.tested":       {"Log stream tested", "A test event was sent to a log stream."},
	"trail.log_stream.deleted":      {"Log stream deleted", "A log stream was deleted."},
	"trail.organization.updated":    {"Audit log settings changed", "The application changed this organization's settings."},
	"trail.portal_settings.updated": {"Portal settings changed", "The portal's name, logo, colour or the sites that may show it inside their pages changed."},
}

// vendorActorTypes are the actors of Trail's own events that are the
// vendor (the application's operator): its API keys, console and command
// line. Portal admins are the customer's own people and stay as they are.
func (p *Portal) byVendor(action string, actor event.Entity) bool {
	return strings.HasPrefix(action, trailPrefix) && actor.Type != "portal_admin"
}

// vendorActor is how the customer sees the vendor: by the name the
// deployment sets, without its internal key ids or addresses.
func (p *Portal) vendorActor() entityView {
	v := entityView{Type: "vendor", Name: p.vendorName()}
	if p.cfg.VendorName != "" {
		v.ID = "named" // the page adds what the name is: the application's provider
	}
	return v
}

func (p *Portal) vendorName() string {
	if p.cfg.VendorName != "" {
		return p.cfg.VendorName
	}
	return "The application's provider"
}
