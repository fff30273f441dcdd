// Package selfaudit records Trail's own administrative actions as audit
// events (docs/DESIGN.md §8): what an API key did through the API, what an
// admin did in the Admin Portal, what an operator did on the command line.
// Each becomes an event like any other, validated and encoded by package
// event, in the affected organization's log and, for deployment-wide
// actions, in the system organization's log. One Recorder serves the API,
// the portal and the CLI, so the three write events of one shape.
package selfaudit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Submitter durably stores a submission: the ingest committer in `trail
// serve`, the store itself on the command line (AppendTo).
type Submitter interface {
	Submit(ctx context.Context, s store.Submission) (store.AppendResult, error)
}

// Entity is an actor or a target of an action.
type Entity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Action is one administrative action that has happened.
type Action struct {
	Action string // trail.<resource>.<verb>
	Actor  Entity
	Target Entity
	Orgs   []string // the logs to record it in
	// Metadata values are strings, numbers or booleans (WorkOS's limits).
	Metadata map[string]any
	// Location and UserAgent are the event's context: for a request, the
	// client's address and user agent (RecordRequest fills them).
	Location, UserAgent string
}

// Config tunes a Recorder. Zero values take the defaults.
type Config struct {
	// Limits bound the event; zero fields take event.DefaultLimits().
	Limits event.Limits
	// Now is the clock of occurred_at and received_at; default time.Now.
	Now func() time.Time
	// Logger receives the actions that could not be recorded; default
	// none.
	Logger *slog.Logger
	// TrustProxyHeaders takes a request's client address from
	// X-Forwarded-For (its last entry) instead of the connection.
	TrustProxyHeaders bool
}

// Recorder records actions through a Submitter.
type Recorder struct {
	sub Submitter
	cfg Config
}

// New returns a Recorder submitting through sub.
func New(sub Submitter, cfg Config) *Recorder {
	def := event.DefaultLimits()
	if cfg.Limits.MaxTargets <= 0 {
		cfg.Limits.MaxTargets = def.MaxTargets
	}
	if cfg.Limits.MaxFuture <= 0 {
		cfg.Limits.MaxFuture = def.MaxFuture
	}
	if cfg.Limits.MaxBodyBytes <= 0 {
		cfg.Limits.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{sub: sub, cfg: cfg}
}

// timeout bounds recording one event. It does not depend on the client
// staying connected: the action has happened either way.
const timeout = 10 * time.Second

// wire is the shape of an event (docs/DESIGN.md §2).
type wire struct {
	Action     string         `json:"action"`
	OccurredAt string         `json:"occurred_at"`
	Actor      Entity         `json:"actor"`
	Targets    []Entity       `json:"targets"`
	Context    wireContext    `json:"context"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}

type wireContext struct {
	Location  string `json:"location"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Record records a in each of a.Orgs, as one submission. It returns what
// went wrong; nothing is stored then.
func (r *Recorder) Record(ctx context.Context, a Action) error {
	_, err := r.record(ctx, a)
	return err
}

func (r *Recorder) record(ctx context.Context, a Action) ([]byte, error) {
	now := r.cfg.Now().UTC()
	raw, err := json.Marshal(wire{Action: a.Action, OccurredAt: now.Format(time.RFC3339Nano), Actor: a.Actor,
		Targets: []Entity{a.Target}, Context: wireContext{Location: a.Location, UserAgent: a.UserAgent}, Metadata: a.Metadata})
	if err != nil {
		return nil, err
	}
	d, err := event.ParseEvent(raw, now, r.cfg.Limits)
	if err != nil {
		var ee *event.Error
		if errors.As(err, &ee) && len(ee.Errors) > 0 {
			fe := ee.Errors[0]
			return raw, errors.New("invalid audit event: " + fe.Field + ": " + fe.Code + ": " + fe.Message)
		}
		return raw, err
	}
	sub := store.Submission{Events: make([]store.PendingEvent, len(a.Orgs))}
	for i, org := range a.Orgs {
		sub.Events[i] = store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail, Draft: d}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	res, err := r.sub.Submit(ctx, sub)
	if err == nil {
		err = res.Err
	}
	return raw, err
}

// RecordRequest records a, taken in the request req: its context is the
// client's address and user agent, and its metadata gains the request's
// id (WithRequest). A failure does not fail the request (the action
// already happened): it is logged at error level with everything needed to
// record the event by hand.
func (r *Recorder) RecordRequest(req *http.Request, a Action) {
	info, _ := req.Context().Value(requestKey{}).(*requestInfo)
	meta := make(map[string]any, len(a.Metadata)+1)
	if info != nil {
		meta["request_id"] = info.id
	}
	for k, v := range a.Metadata {
		meta[k] = v
	}
	a.Metadata = meta
	a.Location, a.UserAgent = r.ClientIP(req), Truncate(req.UserAgent(), 500)
	raw, err := r.record(req.Context(), a)
	if err != nil {
		id := ""
		if info != nil {
			id = info.id
		}
		r.cfg.Logger.Error("couldn't record an audit event of Trail's own; the action itself succeeded",
			"request_id", id, "action", a.Action, "organizations", strings.Join(a.Orgs, ","),
			"event", string(raw), "err", err)
	}
}

// PortalAction is an action an admin took in the Admin Portal.
type PortalAction struct {
	OrganizationID string
	Action         string // trail.<resource>.<verb>
	// Admin is the admin the portal link named; "" for an unnamed one
	// (recorded as "portal admin").
	Admin string
	// AdminID is the application's id of the admin (the link's
	// external_user_id), the actor's id when set; "" when none.
	AdminID                          string
	TargetType, TargetID, TargetName string
	Metadata                         map[string]string
}

// RecordPortal records a portal admin's action, taken in the request req,
// in the organization's log, as RecordRequest does; the request's log line
// names the organization.
func (r *Recorder) RecordPortal(req *http.Request, a PortalAction) {
	actor := Entity{Type: "portal_admin", ID: a.Admin, Name: a.Admin}
	switch {
	case a.AdminID != "" && a.Admin != "":
		actor.ID = a.AdminID
	case a.AdminID != "":
		actor.ID, actor.Name = a.AdminID, a.AdminID
	case a.Admin == "":
		actor.ID, actor.Name = "portal admin", "portal admin"
	}
	if info, ok := req.Context().Value(requestKey{}).(*requestInfo); ok && info.noteOrg != nil {
		info.noteOrg(a.OrganizationID)
	}
	r.RecordRequest(req, Action{Action: a.Action, Actor: actor,
		Target: Entity{Type: a.TargetType, ID: a.TargetID, Name: a.TargetName},
		Orgs:   []string{a.OrganizationID}, Metadata: Strings(a.Metadata)})
}

type requestKey struct{}

type requestInfo struct {
	id      string
	noteOrg func(org string)
}

// WithRequest returns ctx carrying the id of the request being served
// (recorded in the metadata of its actions) and noteOrg (may be nil),
// told the organization a portal action concerned, for the request log.
func WithRequest(ctx context.Context, id string, noteOrg func(org string)) context.Context {
	return context.WithValue(ctx, requestKey{}, &requestInfo{id: id, noteOrg: noteOrg})
}

// ClientIP is the address a request came from: the connection's, or
// behind a trusted proxy the last X-Forwarded-For entry (the one that proxy
// added; earlier entries are the client's to forge).
func (r *Recorder) ClientIP(req *http.Request) string {
	if r.cfg.TrustProxyHeaders {
		if xff := req.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	if host == "" {
		return "unknown"
	}
	return host
}

// Truncate returns s cut to at most n runes.
func Truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// AppendTo is a Submitter that appends straight to st, for the command
// line (no ingest committer runs there).
func AppendTo(st store.Store) Submitter { return appender{st} }

type appender struct{ st store.Store }

func (a appender) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	res, err := a.st.Append(ctx, []store.Submission{s}, time.Now())
	if err != nil {
		return store.AppendResult{}, err
	}
	return res[0], nil
}

// Strings is metadata of string values as Action.Metadata takes it.
func Strings(m map[string]string) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
