// Package api is Trail's HTTP API: the WorkOS-compatible surface
// (/audit_logs/…, /organizations) and Trail's own (/v1/…), with
// authentication, rate limiting, request logs and metrics around every
// handler. Handlers are small: they parse and check the request, call the
// store or the ingest Submitter, and render the answer; every failure is a
// JSON error a person can act on, {"message":…,"code":…,"errors":[…]}.
//
// Routes:
//
//	GET    /healthz, /readyz                no authentication (/readyz: its status only)
//	       /metrics, detailed /readyz, /debug/pprof/: on the operator
//	       listener only (OperatorHandler, health.go), never on this one
//	GET    /openapi.json                    no authentication: the OpenAPI 3.1
//	                                        document of every route (openapi.go)
//	POST   /audit_logs/events               events:write  (WorkOS)
//	POST   /v1/events/batch                 events:write
//	GET    /v1/events, /v1/events/{id}      events:read
//	POST   /organizations                   admin, unrestricted  (WorkOS)
//	GET    /organizations                   admin  (WorkOS)
//	GET    /organizations/{id}              admin, or any key restricted to it  (WorkOS)
//	GET    /organizations/external_id/{external_id}  the same  (WorkOS)
//	POST   /v1/api_keys                     admin
//	GET    /v1/api_keys, /v1/api_keys/{id}  admin
//	DELETE /v1/api_keys/{id}                admin (revokes)
//	GET    /v1/log/key, /v1/log/keys        no authentication (the public verifier key; the key history)
//	GET    /v1/organizations/{id}/log/checkpoint, …/log/proof/inclusion,
//	       …/log/proof/consistency, …/log/records, …/log/bundle
//	                                        events:read, exports or admin (see log.go)
//	POST   /audit_logs/actions/{action}/schemas  admin, unrestricted  (WorkOS; schemas.go)
//	GET    /audit_logs/actions, /audit_logs/actions/{action}/schemas  events:read  (WorkOS)
//	POST   /v1/actor_schema                 admin, unrestricted (the next version)
//	GET    /v1/actor_schema                 events:read (the latest version)
//	GET    /v1/actor_schema/versions        events:read
//	                                        (the schema routes exist only with Config.Schemas)
//	POST   /audit_logs/exports              exports  (WorkOS; exports.go)
//	GET    /audit_logs/exports/{id}         exports  (WorkOS)
//	GET    /audit_logs/exports/{id}/download  the signed link itself (no API key)
//	                                        (the export routes exist only with Config.Exports)
//	GET    /organizations/{id}/audit_logs_retention  admin, or any key restricted to it  (WorkOS; retention.go)
//	PUT    /organizations/{id}/audit_logs_retention  admin  (WorkOS)
//	GET    /organizations/{id}/audit_log_configuration  admin  (WorkOS; streams.go)
//	POST   /v1/organizations/{id}/log_streams, GET …/log_streams,
//	       GET, PATCH, DELETE …/log_streams/{stream},
//	       POST …/log_streams/{stream}/pause, …/resume, …/test
//	                                        admin  (streams.go; only with Config.Streams)
//	POST   /portal/generate_link            admin  (WorkOS; portal.go)
//	GET    /portal/…                        the Admin Portal's pages (package portal), by
//	                                        session cookie, only with Config.Portal
//
// Choices the design left open:
//
//   - A key restricted to an organization gets 404, worded exactly as for an
//     organization, key or event that does not exist, for anything of
//     another organization. It may read its own organization whatever its
//     scopes, lists only its own organization and keys, creates keys only
//     for it (organization_id defaults to it), and cannot create
//     organizations (403).
//   - The system organization's log is written only by Trail: events sent to
//     org_system are refused with 403. Unrestricted readers may search it.
//   - Validation errors of events and batches use WorkOS's 422 shape
//     {"message":"Validation failed.","errors":[{"code","field","message"}]}
//     (code, field, message in that order, as WorkOS writes them). Bad query
//     parameters and admin request fields answer 422 with code
//     invalid_request_parameters, every problem in "errors", and the
//     problems repeated in "message".
//   - Unknown query parameters are refused (422) on Trail's own lists and
//     ignored on WorkOS's (GET /organizations), where SDKs may send filters
//     such as domains[] (which match nothing: Trail organizations have no
//     domains). Unknown JSON fields are refused in admin bodies and ignored
//     in event bodies and batches, as the event parser ignores them.
//   - POST /organizations accepts the fields the WorkOS SDKs send
//     (domains, domain_data, metadata, allow_profiles_outside_organization,
//     idempotency_key) when they are empty or false, and refuses non-empty
//     values with 422 rather than drop them silently.
//   - A batch reports at most 1000 field errors. Its idempotent replay
//     answers the same body as the first time.
//   - Idempotency-Key is WorkOS's: the key alone decides for 24 hours (in
//     the organization of the request's first event). A reuse with another
//     body is answered like the first request, stores nothing, and is
//     counted and logged at WARN (checkReplay); if the first answer names
//     an organization the caller may not see, 409 idempotency_key_reused.
//   - Times in answers are RFC 3339 UTC with milliseconds, the record's
//     format. Audit events use the client address of the connection, or with
//     TrustProxyHeaders the last X-Forwarded-For entry (the one the trusted
//     proxy added; earlier ones can be forged by the client).
//   - Revoking a revoked key answers 200 with the key and records nothing.
//   - API key lookups are cached (found or not) for Config.KeyCacheTTL; a
//     revocation through this server takes effect at once, on other replicas
//     within the TTL.
//   - Schemas (package schema) are deployment-wide, as in WorkOS, so only
//     an unrestricted admin key creates them; any key with events:read
//     (admin implies it) reads them. An event naming a version is refused
//     with 400 invalid_audit_log_event when it does not match it (or the
//     version does not exist; "errors" point at the failing paths, such as
//     event.targets[0].type); in a batch, one refused event refuses the
//     batch, paths prefixed events[i]. An event without version is
//     accepted and, when it does not match its action's latest version (or
//     the actor schema), stored with schema_mismatch: the record's bytes are
//     unchanged, and GET /v1/events and /v1/events/{id} add
//     "schema_mismatch":true as the record's last member (the flag is not
//     part of the Merkle leaf; the log endpoints serve records bare).
//     GET /v1/events?schema_mismatch=true finds them. Trail's own audit
//     events are never checked against schemas.
//   - Lists of schemas and actions follow WorkOS's pagination: versions
//     newest first by default (cursors are version numbers), actions by
//     name (cursors are names). Unknown query parameters are ignored, as
//     on WorkOS's other lists.
package api
