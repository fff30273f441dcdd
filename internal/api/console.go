package api

import (
	"encoding/json"
	"net/http"
	"time"
)

// ConsoleAction is something an operator did in the operator console
// (internal/console), for the audit log.
type ConsoleAction struct {
	// Logs are the organizations whose logs record it: org_system, and
	// the organization acted on.
	Logs     []string
	Action   string
	Operator string
	Target   PortalTarget
	Metadata map[string]string
}

// AuditConsole records an operator's console action, with the operator
// as the actor, in each log of a.Logs. Like AuditPortal it logs, and does
// not undo the action, when the event cannot be recorded.
func (s *Server) AuditConsole(r *http.Request, a ConsoleAction) {
	now := s.cfg.Now().UTC()
	meta := map[string]string{}
	if id := infoFrom(r).id; id != "" {
		meta["request_id"] = id
	}
	for k, v := range a.Metadata {
		meta[k] = v
	}
	ev := auditEvent{
		Action:     a.Action,
		OccurredAt: now.Format(time.RFC3339Nano),
		Actor:      auditEntity{Type: "operator", ID: a.Operator, Name: a.Operator},
		Targets:    []auditEntity{{Type: a.Target.Type, ID: a.Target.ID, Name: a.Target.Name}},
		Context:    auditContext{Location: s.clientIP(r), UserAgent: truncateRunes(r.UserAgent(), 500)},
		Metadata:   meta,
	}
	raw, err := json.Marshal(ev)
	if err == nil {
		err = s.recordAudit(r.Context(), raw, a.Logs, now)
	}
	if err != nil {
		s.log.Error("couldn't record an audit event of the operator console; the action itself succeeded",
			"request_id", infoFrom(r).id, "action", a.Action, "event", string(raw), "err", err)
	}
}
