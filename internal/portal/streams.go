package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// The log streams pages (intent log_streams, docs/DESIGN.md §6 and §7): the
// organization's streams with their delivery status, create and edit forms
// per destination type, a test event, pause and resume, and deletion with
// a confirmation step. Every change is an audit event by the portal admin.

// Streams manages an organization's log streams with the rules of the
// stream API: *streamadmin.Manager, which the API uses too. Every method is bounded to org: a stream of another
// organization is an error wrapping store.ErrNotFound, like an unknown one.
// Invalid input is a *stream.ConfigError whose fields are "name", "start",
// "type" or "config.<setting>". Methods record no audit event: the portal
// does.
type Streams interface {
	List(ctx context.Context, org string) ([]streamadmin.Status, error)
	Get(ctx context.Context, org, id string) (streamadmin.Status, error)
	// Create creates a stream; start is "now" or "beginning", name ""
	// means the type.
	Create(ctx context.Context, org, typ, name, start string, config []byte) (store.Stream, error)
	// Update applies config on top of the stored settings (left-out
	// settings, secrets included, keep their values).
	Update(ctx context.Context, org, id, name string, config []byte) (store.Stream, error)
	SetActive(ctx context.Context, org, id string, active bool) (store.Stream, error)
	Delete(ctx context.Context, org, id string) (store.Stream, error)
	// Test sends a synthetic event; a refusal is the answer, not an error.
	Test(ctx context.Context, org, id string) (store.Stream, streamadmin.TestResult, error)
}

type streamRow struct {
	ID, Name, Type, TypeLabel string
	URL                       string
	State                     stateView
	LastSyncedAt              time.Time
	LagEvents                 int64
	Lag                       string
	LastError                 string
	LastErrorAt               time.Time
	Unreadable                bool
}

type stateView struct{ Name, Label, Class, Help string }

// stateOf describes a stream's state, in English: the page translates
// Label and Help (goMessages lists them).
func stateOf(s string) stateView {
	switch s {
	case store.StreamActive:
		return stateView{s, "Active", "ok", "Delivering events as they arrive."}
	case store.StreamError:
		return stateView{s, "Retrying", "warn", "The last delivery failed; Trail retries with growing pauses. Nothing is lost."}
	case store.StreamInvalid:
		return stateView{s, "Invalid", "bad", "The destination refused the credentials or the settings. Edit the stream; delivery resumes from where it stopped."}
	case store.StreamInactive:
		return stateView{s, "Paused", "muted", "Paused by an admin. Resume it to deliver what arrived meanwhile."}
	}
	return stateView{s, s, "muted", ""}
}

// streamStates are the states stateOf names.
var streamStates = []string{store.StreamActive, store.StreamError, store.StreamInvalid, store.StreamInactive}

// lag describes how far behind a stream is.
func lag(events int64, seconds float64) phrase {
	if events == 0 {
		return msg("up to date")
	}
	if events == 1 {
		return msg("1 event, oldest %s", ago(seconds))
	}
	return msg("%d events, oldest %s", events, ago(seconds))
}

// ago is the age of a stream's oldest undelivered event, a phrase of its
// own inside lag's.
func ago(seconds float64) phrase {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < time.Minute:
		return msg("%d s old", int(d.Seconds()))
	case d < time.Hour:
		return msg("%d min old", int(d.Minutes()))
	case d < 48*time.Hour:
		return msg("%.1f h old", d.Hours())
	}
	return msg("%d days old", int(d.Hours()/24))
}

func row(l *locale, st streamadmin.Status) streamRow {
	s := st.Stream
	state := stateOf(s.State)
	state.Label, state.Help = l.tr(state.Label), l.tr(state.Help)
	r := streamRow{ID: s.ID, Name: s.Name, Type: s.Type, TypeLabel: s.Type, URL: "/portal/streams/" + s.ID,
		State: state, LastSyncedAt: s.LastSyncedAt, LagEvents: st.LagEvents, Lag: lag(st.LagEvents, st.LagSeconds).in(l),
		LastError: s.LastError, LastErrorAt: s.LastErrorAt, Unreadable: st.Unreadable}
	if d, ok := destination(s.Type); ok {
		r.TypeLabel = d.Label
	}
	if st.Unreadable {
		r.LastError = l.T("Trail can't decrypt this stream's secrets (was the master key changed?); edit the stream and give its secrets again.")
	}
	return r
}

// notices are the confirmations shown after a change (by a fixed key in the
// URL: nothing the URL says is shown as such).
var notices = map[string]string{
	"created": "The stream was created. Send a test event to check the destination.",
	"updated": "The stream's settings were saved.",
	"paused":  "The stream is paused. Events are kept and will be delivered when it resumes.",
	"resumed": "The stream is active again; delivery goes on from where it stopped.",
	"deleted": "The stream was deleted.",
}

type streamsData struct {
	Notice       string
	Rows         []streamRow
	Destinations []destSpec
}

// streamList is GET /portal/streams.
func (p *Portal) streamList(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	list, err := p.cfg.Streams.List(r.Context(), s.Org)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	l := p.locales.pick(r)
	d := streamsData{Notice: l.tr(notices[r.URL.Query().Get("done")]), Destinations: destinations}
	for _, st := range list {
		d.Rows = append(d.Rows, row(l, st))
	}
	p.render(w, r, http.StatusOK, "streams", page{Title: "Log streams", Nav: "streams", Session: s, Data: d})
}

// streamID returns the stream of the path, of the session's organization;
// otherwise it answers 404 and returns false.
func (p *Portal) streamID(w http.ResponseWriter, r *http.Request, s *session) (streamadmin.Status, bool) {
	id := r.PathValue("id")
	if len(id) <= 100 && checkText(id) == nil {
		st, err := p.cfg.Streams.Get(r.Context(), s.Org, id)
		if err == nil {
			return st, true
		}
		if !errors.Is(err, store.ErrNotFound) {
			p.fail(w, r, s, err)
			return streamadmin.Status{}, false
		}
	}
	p.streamNotFound(w, r, s)
	return streamadmin.Status{}, false
}

func (p *Portal) streamNotFound(w http.ResponseWriter, r *http.Request, s *session) {
	p.messageWith(w, r, http.StatusNotFound, messageData{Heading: "Log stream not found",
		Text: "There is no log stream with this id for %s. It may have been deleted.", TextArgs: []any{s.OrgName}}, s)
}

type streamData struct {
	Row      streamRow
	Notice   string
	Settings []kv
	Secrets  []string
	Created  time.Time
	Updated  time.Time
	Test     *streamadmin.TestResult
	Paused   bool
}

func (p *Portal) renderStream(w http.ResponseWriter, r *http.Request, s *session, st streamadmin.Status, notice string, test *streamadmin.TestResult) {
	l := p.locales.pick(r)
	d := streamData{Row: row(l, st), Notice: l.tr(notice), Secrets: st.SecretNames, Created: st.Stream.CreatedAt,
		Updated: st.Stream.UpdatedAt, Test: test, Paused: st.Stream.State == store.StreamInactive}
	var cfg map[string]any
	if json.Unmarshal(st.Stream.Config, &cfg) == nil {
		dest, _ := destination(st.Stream.Type)
		for _, f := range dest.Fields {
			v, ok := cfg[f.Key]
			if !ok || f.secret() || f.Kind == kindHeaders {
				continue
			}
			if sv, isStr := v.(string); isStr && sv == "" {
				continue
			}
			d.Settings = append(d.Settings, kv{f.Label, fmt.Sprint(v)})
		}
		if h, ok := cfg["headers"].(map[string]any); ok && len(h) > 0 {
			names := make([]string, 0, len(h))
			for k := range h {
				names = append(names, k)
			}
			sort.Strings(names)
			d.Settings = append(d.Settings, kv{"Extra headers", strings.Join(names, ", ") + " (values hidden)"})
		}
	}
	p.render(w, r, http.StatusOK, "stream", page{Title: "Log stream %s", TitleArgs: []any{st.Stream.Name}, Nav: "streams", Session: s, Data: d})
}

// streamDetail is GET /portal/streams/{id}: status, settings and actions.
func (p *Portal) streamDetail(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	p.renderStream(w, r, s, st, notices[r.URL.Query().Get("done")], nil)
}

// newStream is GET /portal/streams/new?type=…: the form for a type.
func (p *Portal) newStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	dest, ok := destination(r.URL.Query().Get("type"))
	if !ok {
		http.Redirect(w, r, "/portal/streams#new", http.StatusSeeOther)
		return
	}
	f := newForm(dest, nil, nil)
	f.Action = "/portal/streams"
	p.render(w, r, http.StatusOK, "streamform", page{Title: "New %s stream", TitleArgs: []any{p.locales.pick(r).tr(dest.Label)}, Nav: "streams", Session: s, Data: f})
}

// createStream is POST /portal/streams.
func (p *Portal) createStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	dest, ok := destination(r.PostFormValue("type"))
	if !ok {
		p.messageWith(w, r, http.StatusBadRequest, messageData{Heading: "Unknown destination type",
			Text: "Choose one of the destination types on the log streams page."}, s)
		return
	}
	f := newForm(dest, nil, nil)
	f.Action = "/portal/streams"
	name, config, valid := parseStreamForm(p.locales.pick(r), f, r.PostForm)
	if valid {
		st, err := p.cfg.Streams.Create(r.Context(), s.Org, dest.Type, name, f.Start, config)
		var ce *stream.ConfigError
		switch {
		case errors.As(err, &ce):
			f.setErrors(p.locales.pick(r), ce.Errors)
		case err != nil:
			p.fail(w, r, s, err)
			return
		default:
			p.auditTarget(r, s, "trail.log_stream.created", "log_stream", st.ID, st.Name, map[string]string{"type": st.Type, "start": f.Start})
			http.Redirect(w, r, "/portal/streams/"+st.ID+"?done=created", http.StatusSeeOther)
			return
		}
	}
	p.render(w, r, http.StatusUnprocessableEntity, "streamform", page{Title: "New %s stream", TitleArgs: []any{p.locales.pick(r).tr(dest.Label)}, Nav: "streams", Session: s, Data: f})
}

func editForm(st streamadmin.Status) (*streamForm, bool) {
	dest, ok := destination(st.Stream.Type)
	if !ok {
		return nil, false
	}
	var cfg map[string]any
	_ = json.Unmarshal(st.Stream.Config, &cfg)
	f := newForm(dest, cfg, st.SecretNames)
	f.Edit, f.StreamID, f.Name = true, st.Stream.ID, st.Stream.Name
	f.Action = "/portal/streams/" + st.Stream.ID + "/edit"
	return f, true
}

// editStream is GET /portal/streams/{id}/edit.
func (p *Portal) editStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	f, ok := editForm(st)
	if !ok {
		p.streamNotFound(w, r, s)
		return
	}
	p.render(w, r, http.StatusOK, "streamform", page{Title: "Edit %s", TitleArgs: []any{st.Stream.Name}, Nav: "streams", Session: s, Data: f})
}

// updateStream is POST /portal/streams/{id}/edit.
func (p *Portal) updateStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	f, ok := editForm(st)
	if !ok {
		p.streamNotFound(w, r, s)
		return
	}
	name, config, valid := parseStreamForm(p.locales.pick(r), f, r.PostForm)
	if valid {
		up, err := p.cfg.Streams.Update(r.Context(), s.Org, st.Stream.ID, name, config)
		var ce *stream.ConfigError
		switch {
		case errors.As(err, &ce):
			f.setErrors(p.locales.pick(r), ce.Errors)
		case errors.Is(err, store.ErrNotFound):
			p.streamNotFound(w, r, s)
			return
		case err != nil:
			p.fail(w, r, s, err)
			return
		default:
			p.auditTarget(r, s, "trail.log_stream.updated", "log_stream", up.ID, up.Name, map[string]string{"type": up.Type, "state": up.State})
			http.Redirect(w, r, "/portal/streams/"+up.ID+"?done=updated", http.StatusSeeOther)
			return
		}
	}
	p.render(w, r, http.StatusUnprocessableEntity, "streamform", page{Title: "Edit %s", TitleArgs: []any{st.Stream.Name}, Nav: "streams", Session: s, Data: f})
}

// setStreamActive is POST /portal/streams/{id}/pause and …/resume.
func (p *Portal) setStreamActive(active bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionFrom(r)
		st, ok := p.streamID(w, r, s)
		if !ok {
			return
		}
		up, err := p.cfg.Streams.SetActive(r.Context(), s.Org, st.Stream.ID, active)
		if errors.Is(err, store.ErrNotFound) {
			p.streamNotFound(w, r, s)
			return
		}
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		action, done := "trail.log_stream.paused", "paused"
		if active {
			action, done = "trail.log_stream.resumed", "resumed"
		}
		p.auditTarget(r, s, action, "log_stream", up.ID, up.Name, map[string]string{"type": up.Type, "state": up.State})
		http.Redirect(w, r, "/portal/streams/"+up.ID+"?done="+done, http.StatusSeeOther)
	}
}

// testStream is POST /portal/streams/{id}/test: the stream's page with the
// destination's answer.
func (p *Portal) testStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	_, res, err := p.cfg.Streams.Test(r.Context(), s.Org, st.Stream.ID)
	if errors.Is(err, store.ErrNotFound) {
		p.streamNotFound(w, r, s)
		return
	}
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	result := "accepted"
	if !res.Accepted {
		result = "refused"
	}
	p.auditTarget(r, s, "trail.log_stream.tested", "log_stream", st.Stream.ID, st.Stream.Name, map[string]string{"type": st.Stream.Type, "result": result})
	p.renderStream(w, r, s, st, "", &res)
}

// confirmDelete is GET /portal/streams/{id}/delete: the confirmation step.
func (p *Portal) confirmDelete(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	p.render(w, r, http.StatusOK, "streamdelete", page{Title: "Delete %s", TitleArgs: []any{st.Stream.Name}, Nav: "streams", Session: s, Data: row(p.locales.pick(r), st)})
}

// deleteStream is POST /portal/streams/{id}/delete.
func (p *Portal) deleteStream(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	st, ok := p.streamID(w, r, s)
	if !ok {
		return
	}
	del, err := p.cfg.Streams.Delete(r.Context(), s.Org, st.Stream.ID)
	if errors.Is(err, store.ErrNotFound) {
		p.streamNotFound(w, r, s)
		return
	}
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	p.auditTarget(r, s, "trail.log_stream.deleted", "log_stream", del.ID, del.Name, map[string]string{"type": del.Type})
	http.Redirect(w, r, "/portal/streams?done=deleted", http.StatusSeeOther)
}
