package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Trail audits itself (docs/DESIGN.md §8): each administrative action becomes an
// audit event, validated and encoded like any other, in the affected
// organization's log and, for deployment-wide actions, in the system log.

// auditAction describes one administrative action that has happened.
type auditAction struct {
	action string // trail.<resource>.<verb>
	target auditEntity
	orgs   []string // the logs to record it in
	meta   map[string]string
}

type auditEntity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// auditEvent is the wire shape of an event (docs/DESIGN.md §2).
type auditEvent struct {
	Action     string            `json:"action"`
	OccurredAt string            `json:"occurred_at"`
	Actor      auditEntity       `json:"actor"`
	Targets    []auditEntity     `json:"targets"`
	Context    auditContext      `json:"context"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

type auditContext struct {
	Location  string `json:"location"`
	UserAgent string `json:"user_agent,omitempty"`
}

// auditTimeout bounds recording one audit event. It does not depend on the
// client staying connected: the action has happened either way.
const auditTimeout = 10 * time.Second

// audit records a as done by the request's API key. A failure does not fail
// the request (the action already happened); it is logged at error level
// with everything needed to record the event by hand.
func (s *Server) audit(r *http.Request, a auditAction) {
	p := principal(r)
	now := s.cfg.Now().UTC()
	meta := map[string]string{"request_id": infoFrom(r).id}
	for k, v := range a.meta {
		meta[k] = v
	}
	ev := auditEvent{
		Action:     a.action,
		OccurredAt: now.Format(time.RFC3339Nano),
		Actor:      auditEntity{Type: "api_key", ID: p.ID, Name: p.Name},
		Targets:    []auditEntity{a.target},
		Context:    auditContext{Location: s.clientIP(r), UserAgent: truncateRunes(r.UserAgent(), 500)},
		Metadata:   meta,
	}
	raw, err := json.Marshal(ev)
	if err == nil {
		err = s.recordAudit(r.Context(), raw, a.orgs, now)
	}
	if err != nil {
		s.log.Error("couldn't record an audit event of Trail's own; the action itself succeeded",
			"request_id", infoFrom(r).id, "action", a.action, "organizations", strings.Join(a.orgs, ","),
			"event", string(raw), "err", err)
	}
}

func (s *Server) recordAudit(ctx context.Context, raw []byte, orgs []string, now time.Time) error {
	d, err := event.ParseEvent(raw, now, s.cfg.Limits)
	if err != nil {
		var ee *event.Error
		if errors.As(err, &ee) && len(ee.Errors) > 0 {
			fe := ee.Errors[0]
			return errors.New("invalid audit event: " + fe.Field + ": " + fe.Code + ": " + fe.Message)
		}
		return err
	}
	sub := store.Submission{Events: make([]store.PendingEvent, len(orgs))}
	for i, org := range orgs {
		sub.Events[i] = store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail, Draft: d}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	res, err := s.sub.Submit(ctx, sub)
	if err == nil {
		err = res.Err
	}
	return err
}

// clientIP is the address an administrative request came from: the
// connection's, or behind a trusted proxy the last X-Forwarded-For entry
// (the one that proxy added; earlier entries are the client's to forge).
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxyHeaders {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if host == "" {
		return "unknown"
	}
	return host
}

func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
