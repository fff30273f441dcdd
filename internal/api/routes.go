package api

import (
	"net/http"

	"github.com/trailaudit/trail/internal/access"
)

// Every route of the API is registered here, and docs/API.md lists them
// (TestRouteTableMatchesDocs holds the two together). A feature's routes
// exist only when its part of Config is set.

// Scopes a route table entry can name besides access's: the handler checks
// anyScope itself (any key of the organization, see each handler);
// publicRoute needs no key at all.
const (
	anyScope    = ""
	publicRoute = "public"
)

// anyReadScope is checked in logOrg: events:read, exports or admin all may
// read an organization's log.
const anyReadScope = anyScope

func (s *Server) routes() {
	s.handlePublic("GET /healthz", s.healthz)
	s.handlePublic("GET /readyz", s.readyz)
	s.handlePublic("GET /openapi.json", s.openAPI)

	s.handle("POST /audit_logs/events", access.ScopeEventsWrite, s.createEvent)
	s.handle("POST /v1/events/batch", access.ScopeEventsWrite, s.createEventBatch)
	s.handle("GET /v1/events", access.ScopeEventsRead, s.listEvents)
	s.handle("GET /v1/events/{id}", access.ScopeEventsRead, s.getEvent)
	// The live tail (tail.go).
	if s.cfg.Tail.Hub != nil {
		s.handle("GET /v1/events/stream", access.ScopeEventsRead, s.streamEvents)
	}

	s.handle("POST /organizations", access.ScopeAdmin, s.createOrganization)
	s.handle("GET /organizations", access.ScopeAdmin, s.listOrganizations)
	// Any key restricted to the organization may read it; the handler checks.
	s.handle("GET /organizations/{id}", anyScope, s.getOrganization)
	s.handle("GET /organizations/external_id/{external_id}", anyScope, s.getOrganizationByExternalID)
	// Organization update and deletion, and the archive setting
	// (lifecycle.go). A deleted organization answers 404 everywhere but
	// its deletion and its log (checkpoint, proofs, tiles, bundle), which
	// keep answering admin keys: earlier bundles stay verifiable.
	if s.cfg.Lifecycle.Store != nil {
		s.handle("PUT /organizations/{id}", access.ScopeAdmin, s.updateOrganization)
		s.handle("PATCH /organizations/{id}", access.ScopeAdmin, s.updateOrganization)
		s.handle("GET /v1/organizations/{id}/deletion", access.ScopeAdmin, s.getDeletion)
		if s.cfg.Lifecycle.Deleter != nil {
			s.handle("DELETE /organizations/{id}", access.ScopeAdmin, s.deleteOrganization)
		}
		if s.cfg.Lifecycle.Archive != nil {
			s.handle("GET /v1/organizations/{id}/archive", access.ScopeAdmin, s.getArchive)
			s.handle("PUT /v1/organizations/{id}/archive", access.ScopeAdmin, s.putArchive)
		}
	}

	s.handle("POST /v1/api_keys", access.ScopeAdmin, s.createAPIKey)
	s.handle("GET /v1/api_keys", access.ScopeAdmin, s.listAPIKeys)
	s.handle("GET /v1/api_keys/{id}", access.ScopeAdmin, s.getAPIKey)
	s.handle("DELETE /v1/api_keys/{id}", access.ScopeAdmin, s.revokeAPIKey)

	// The verifiable log (log.go), and its C2SP tlog-tiles view
	// (logtiles.go).
	if s.cfg.Log.Storage != nil {
		// The verifier key is public: auditors fetch it without an API key
		// (and should compare it with one obtained out of band).
		s.handlePublic("GET /v1/log/key", s.logKey)
		if s.cfg.Log.Keys != nil {
			s.handlePublic("GET /v1/log/keys", s.logKeys) // the key history
		}
		s.handle("GET /v1/organizations/{id}/log/checkpoint", anyReadScope, s.logCheckpoint)
		s.handle("GET /v1/organizations/{id}/log/proof/inclusion", anyReadScope, s.logInclusionProof)
		s.handle("GET /v1/organizations/{id}/log/proof/consistency", anyReadScope, s.logConsistencyProof)
		s.handle("GET /v1/organizations/{id}/log/records", anyReadScope, s.logRecords)
		s.handle("GET /v1/organizations/{id}/log/bundle", anyReadScope, s.logBundle)
		s.handle("GET /v1/organizations/{id}/log/tiles/checkpoint", anyReadScope, s.logCheckpoint)
		s.handle("GET /v1/organizations/{id}/log/tiles/tile/{path...}", anyReadScope, s.logTile)
	}

	// GET /organizations/{id}/<resource>: one route for them all
	// (orgResource). The handlers check the scope themselves, after the
	// organization: a tenant's own key may read its settings.
	s.handle("GET /organizations/{id}/{resource}", anyScope, s.getOrganizationResource)
	s.orgResources = map[string]orgResource{
		"audit_logs_retention":    {anyScope, (*Server).getRetention},
		"audit_log_configuration": {access.ScopeAdmin, (*Server).auditLogConfiguration},
	}
	// WorkOS's audit log retention (retention.go).
	if s.cfg.Retention.Store != nil {
		s.handle("PUT /organizations/{id}/audit_logs_retention", anyScope, s.putRetention)
	}

	// Log streams (streams.go).
	if s.cfg.Streams.Manager != nil {
		const base = "/v1/organizations/{id}/log_streams"
		s.handle("POST "+base, access.ScopeAdmin, s.createStream)
		s.handle("GET "+base, access.ScopeAdmin, s.listStreams)
		s.handle("GET "+base+"/{stream}", access.ScopeAdmin, s.getStream)
		s.handle("PATCH "+base+"/{stream}", access.ScopeAdmin, s.updateStream)
		s.handle("DELETE "+base+"/{stream}", access.ScopeAdmin, s.deleteStream)
		s.handle("POST "+base+"/{stream}/pause", access.ScopeAdmin, s.pauseStream)
		s.handle("POST "+base+"/{stream}/resume", access.ScopeAdmin, s.resumeStream)
		s.handle("POST "+base+"/{stream}/test", access.ScopeAdmin, s.testStream)
	}

	// Asynchronous exports (exports.go). The download link carries its own
	// signature instead of a key.
	if s.cfg.Exports.Service != nil {
		s.handle("POST /audit_logs/exports", access.ScopeExports, s.createExport)
		s.handle("GET /audit_logs/exports/{id}", access.ScopeExports, s.getExport)
		s.handlePublic("GET /audit_logs/exports/{id}/download", s.downloadExport)
	}

	// Versioned schemas (schemas.go).
	if s.cfg.Schemas != nil {
		s.handle("POST /audit_logs/actions/{action}/schemas", access.ScopeAdmin, s.createActionSchema)
		s.handle("GET /audit_logs/actions", access.ScopeEventsRead, s.listActions)
		s.handle("GET /audit_logs/actions/{action}/schemas", access.ScopeEventsRead, s.listActionSchemas)
		s.handle("POST /v1/actor_schema", access.ScopeAdmin, s.createActorSchema)
		s.handle("GET /v1/actor_schema", access.ScopeEventsRead, s.getActorSchema)
		s.handle("GET /v1/actor_schema/versions", access.ScopeEventsRead, s.listActorSchemas)
	}

	// Field policies, keyed hashes for searching, and erasures
	// (privacy.go, docs/PRIVACY.md).
	if s.cfg.Privacy.Store != nil {
		const base = "/v1/organizations/{id}"
		s.handle("GET "+base+"/privacy_policy", access.ScopeAdmin, s.getPrivacyPolicy)
		s.handle("PUT "+base+"/privacy_policy", access.ScopeAdmin, s.putPrivacyPolicy)
		s.handle("DELETE "+base+"/privacy_policy", access.ScopeAdmin, s.deletePrivacyPolicy)
		s.handle("POST "+base+"/hmac", access.ScopeEventsRead, s.hashValue)
		s.handle("POST "+base+"/erasures", access.ScopeAdmin, s.createErasure)
		s.handle("GET "+base+"/erasures/{erasure}", access.ScopeAdmin, s.getErasure)
	}

	// The Admin Portal (portal.go): its links, and its pages under /portal/.
	if s.cfg.Portal.Handler != nil && s.cfg.Portal.Links != nil {
		// A key with the admin scope generates links: a link opens every
		// event of the organization to whoever holds it. A key restricted
		// to one organization generates links for that organization only.
		s.handle("POST /portal/generate_link", access.ScopeAdmin, s.generatePortalLink)
		// Revoking is the counterpart: whoever may hand out access may
		// take it back (a leaked link, a departed admin).
		s.handle("DELETE /v1/organizations/{id}/portal_sessions", access.ScopeAdmin, s.revokePortalSessions)
		// WorkOS's per-admin revocation (SDK adminPortal.revokeLink): the
		// links generated with that external_user_id, and their sessions.
		s.handle("POST /portal/revoke_link", access.ScopeAdmin, s.revokePortalLink)
		// An organization's brand and framing allowlist over the
		// deployment's (portalsettings.go), as `trail portal settings`.
		if s.cfg.Portal.Settings != nil {
			s.handle("GET /v1/organizations/{id}/portal_settings", access.ScopeAdmin, s.getPortalSettings)
			s.handle("PUT /v1/organizations/{id}/portal_settings", access.ScopeAdmin, s.putPortalSettings)
		}
		s.patterns["/portal/"] = publicRoute
		s.mux.Handle("/portal/", http.HandlerFunc(s.portalPages))
	}
}
