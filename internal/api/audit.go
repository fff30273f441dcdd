package api

import (
	"net/http"

	"github.com/trailaudit/trail/internal/selfaudit"
)

// Trail audits itself (docs/DESIGN.md §8; package selfaudit): each
// administrative action becomes an audit event, validated and encoded like
// any other, in the affected organization's log and, for deployment-wide
// actions, in the system log.

// auditAction describes one administrative action that has happened.
type auditAction struct {
	action string // trail.<resource>.<verb>
	target auditEntity
	orgs   []string // the logs to record it in
	meta   map[string]string
}

type auditEntity = selfaudit.Entity

// audit records a as done by the request's API key. A failure does not fail
// the request (the action already happened); it is logged at error level
// with everything needed to record the event by hand.
func (s *Server) audit(r *http.Request, a auditAction) {
	p := principal(r)
	s.auditor.RecordRequest(r, selfaudit.Action{Action: a.action, Actor: auditEntity{Type: "api_key", ID: p.ID, Name: p.Name},
		Target: a.target, Orgs: a.orgs, Metadata: selfaudit.Strings(a.meta)})
}
