package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Organization is a tenant whose events Trail keeps.
type Organization struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ExternalID string    `json:"external_id"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// UnmarshalJSON accepts a null external_id.
func (o *Organization) UnmarshalJSON(b []byte) error {
	type plain Organization
	var w struct {
		plain
		ExternalID *string `json:"external_id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*o = Organization(w.plain)
	if w.ExternalID != nil {
		o.ExternalID = *w.ExternalID
	}
	return nil
}

// CreateOrganization creates an organization (POST /organizations);
// externalID may be "".
func (c *Client) CreateOrganization(ctx context.Context, name, externalID string, opts ...CallOption) (*Organization, error) {
	in := map[string]any{"name": name}
	if externalID != "" {
		in["external_id"] = externalID
	}
	var out Organization
	if err := c.do(ctx, http.MethodPost, "/organizations", nil, in, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrganization answers GET /organizations/{id}.
func (c *Client) GetOrganization(ctx context.Context, id string) (*Organization, error) {
	var out Organization
	if err := c.do(ctx, http.MethodGet, "/organizations/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrganizationByExternalID answers
// GET /organizations/external_id/{external_id}.
func (c *Client) GetOrganizationByExternalID(ctx context.Context, externalID string) (*Organization, error) {
	var out Organization
	if err := c.do(ctx, http.MethodGet, "/organizations/external_id/"+seg(externalID), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOrganizations answers one page of GET /organizations.
func (c *Client) ListOrganizations(ctx context.Context, o ListOptions) (*List[Organization], error) {
	var out List[Organization]
	if err := c.do(ctx, http.MethodGet, "/organizations", o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Scopes of API keys.
const (
	ScopeEventsWrite = "events:write"
	ScopeEventsRead  = "events:read"
	ScopeExports     = "exports"
	ScopeAdmin       = "admin"
)

// APIKey is an API key; Secret is set only in CreateAPIKey's answer.
type APIKey struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Scopes         []string   `json:"scopes"`
	OrganizationID string     `json:"organization_id"`
	Prefix         string     `json:"prefix"`
	CreatedAt      time.Time  `json:"created_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
	Secret         string     `json:"secret,omitempty"`
}

// UnmarshalJSON accepts a null organization_id.
func (k *APIKey) UnmarshalJSON(b []byte) error {
	type plain APIKey
	var w struct {
		plain
		OrganizationID *string `json:"organization_id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*k = APIKey(w.plain)
	if w.OrganizationID != nil {
		k.OrganizationID = *w.OrganizationID
	}
	return nil
}

// CreateAPIKey creates a key with scopes, restricted to orgID unless it is
// "" (POST /v1/api_keys). The answer holds the secret, shown only here.
func (c *Client) CreateAPIKey(ctx context.Context, name string, scopes []string, orgID string) (*APIKey, error) {
	in := map[string]any{"name": name, "scopes": scopes}
	if orgID != "" {
		in["organization_id"] = orgID
	}
	var out APIKey
	if err := c.do(ctx, http.MethodPost, "/v1/api_keys", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAPIKeys answers one page of GET /v1/api_keys.
func (c *Client) ListAPIKeys(ctx context.Context, o ListOptions) (*List[APIKey], error) {
	var out List[APIKey]
	if err := c.do(ctx, http.MethodGet, "/v1/api_keys", o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAPIKey answers GET /v1/api_keys/{id}.
func (c *Client) GetAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodGet, "/v1/api_keys/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeAPIKey revokes a key (DELETE /v1/api_keys/{id}) and returns it.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodDelete, "/v1/api_keys/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRetention answers GET /organizations/{id}/audit_logs_retention: the
// days the organization's events are kept.
func (c *Client) GetRetention(ctx context.Context, orgID string) (int, error) {
	var out struct {
		Days int `json:"retention_period_in_days"`
	}
	err := c.do(ctx, http.MethodGet, "/organizations/"+seg(orgID)+"/audit_logs_retention", nil, nil, &out)
	return out.Days, err
}

// SetRetention sets the days the organization's events are kept
// (PUT /organizations/{id}/audit_logs_retention) and returns them.
func (c *Client) SetRetention(ctx context.Context, orgID string, days int) (int, error) {
	var out struct {
		Days int `json:"retention_period_in_days"`
	}
	in := map[string]int{"retention_period_in_days": days}
	err := c.do(ctx, http.MethodPut, "/organizations/"+seg(orgID)+"/audit_logs_retention", nil, in, &out)
	return out.Days, err
}

// AuditLogConfiguration is WorkOS's summary of an organization's audit log
// settings: its retention, state and log stream.
type AuditLogConfiguration struct {
	OrganizationID        string `json:"organization_id"`
	RetentionPeriodInDays int    `json:"retention_period_in_days"`
	State                 string `json:"state"`
	LogStream             *struct {
		ID           string     `json:"id"`
		Type         string     `json:"type"`
		State        string     `json:"state"`
		LastSyncedAt *time.Time `json:"last_synced_at"`
		CreatedAt    time.Time  `json:"created_at"`
	} `json:"log_stream,omitempty"`
}

// GetAuditLogConfiguration answers
// GET /organizations/{id}/audit_log_configuration.
func (c *Client) GetAuditLogConfiguration(ctx context.Context, orgID string) (*AuditLogConfiguration, error) {
	var out AuditLogConfiguration
	if err := c.do(ctx, http.MethodGet, "/organizations/"+seg(orgID)+"/audit_log_configuration", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PortalLinkRequest asks for an Admin Portal link.
type PortalLinkRequest struct {
	Organization string   `json:"organization"`
	Intent       string   `json:"intent"` // "audit_logs" or "log_streams"
	ReturnURL    string   `json:"return_url,omitempty"`
	AdminEmails  []string `json:"admin_emails,omitempty"`
}

// GeneratePortalLink returns a single-use Admin Portal link
// (POST /portal/generate_link), valid a few minutes.
func (c *Client) GeneratePortalLink(ctx context.Context, r PortalLinkRequest) (string, error) {
	var out struct {
		Link string `json:"link"`
	}
	err := c.do(ctx, http.MethodPost, "/portal/generate_link", nil, r, &out)
	return out.Link, err
}

// RevokePortalSessions ends every open portal session and unused link of
// an organization (DELETE /v1/organizations/{id}/portal_sessions) and
// returns how many.
func (c *Client) RevokePortalSessions(ctx context.Context, orgID string) (int64, error) {
	var out struct {
		Ended int64 `json:"ended"`
	}
	err := c.do(ctx, http.MethodDelete, "/v1/organizations/"+seg(orgID)+"/portal_sessions", nil, nil, &out)
	return out.Ended, err
}

// Schema is a version of an action's (or the actor's) schema. Body is the
// object as Trail answered it, with the version's rules.
type Schema struct {
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the schema's bytes in Body.
func (s *Schema) UnmarshalJSON(b []byte) error {
	type plain Schema
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Schema(p)
	s.Body = append(json.RawMessage(nil), b...)
	return nil
}

// Action is an action that has schemas, with its latest.
type Action struct {
	Name      string    `json:"name"`
	Schema    Schema    `json:"schema"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CreateActionSchema adds the next schema version of an action
// (POST /audit_logs/actions/{action}/schemas). schema is WorkOS's body:
// {"actor":{"metadata":…},"targets":[…],"metadata":…}. It returns the new
// version.
func (c *Client) CreateActionSchema(ctx context.Context, action string, schema json.RawMessage) (*Schema, error) {
	var out Schema
	if err := c.do(ctx, http.MethodPost, "/audit_logs/actions/"+seg(action)+"/schemas", nil, schema, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListActions answers one page of GET /audit_logs/actions.
func (c *Client) ListActions(ctx context.Context, o ListOptions) (*List[Action], error) {
	var out List[Action]
	if err := c.do(ctx, http.MethodGet, "/audit_logs/actions", o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListActionSchemas answers one page of
// GET /audit_logs/actions/{action}/schemas, newest version first.
func (c *Client) ListActionSchemas(ctx context.Context, action string, o ListOptions) (*List[Schema], error) {
	var out List[Schema]
	if err := c.do(ctx, http.MethodGet, "/audit_logs/actions/"+seg(action)+"/schemas", o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateActorSchema adds the next version of the actor schema
// (POST /v1/actor_schema).
func (c *Client) CreateActorSchema(ctx context.Context, schema json.RawMessage) (*Schema, error) {
	var out Schema
	if err := c.do(ctx, http.MethodPost, "/v1/actor_schema", nil, schema, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetActorSchema answers GET /v1/actor_schema, the latest version.
func (c *Client) GetActorSchema(ctx context.Context) (*Schema, error) {
	var out Schema
	if err := c.do(ctx, http.MethodGet, "/v1/actor_schema", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListActorSchemas answers one page of GET /v1/actor_schema/versions.
func (c *Client) ListActorSchemas(ctx context.Context, o ListOptions) (*List[Schema], error) {
	var out List[Schema]
	if err := c.do(ctx, http.MethodGet, "/v1/actor_schema/versions", o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stream is a log stream: one organization's events delivered to one
// destination (docs/STREAMS.md lists the types and their configuration).
type Stream struct {
	ID             string          `json:"id"`
	OrganizationID string          `json:"organization_id"`
	Name           string          `json:"name"`
	Type           string          `json:"type"`
	State          string          `json:"state"`
	Config         json.RawMessage `json:"config"`
	Secrets        []string        `json:"secrets"`
	Cursor         int64           `json:"cursor"`
	LagEvents      int64           `json:"lag_events"`
	LagSeconds     float64         `json:"lag_seconds"`
	LastSyncedAt   *time.Time      `json:"last_synced_at"`
	LastError      *string         `json:"last_error"`
	LastErrorAt    *time.Time      `json:"last_error_at"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// StreamRequest creates a stream: Start is "beginning" or "now" (default
// Trail's); Config holds the destination's settings and secrets.
type StreamRequest struct {
	Type   string          `json:"type"`
	Name   string          `json:"name,omitempty"`
	Start  string          `json:"start,omitempty"`
	Config json.RawMessage `json:"config"`
}

// StreamUpdate changes a stream; nil and empty fields are left as they are.
type StreamUpdate struct {
	Name   *string         `json:"name,omitempty"`
	Config json.RawMessage `json:"config,omitempty"`
}

// StreamTest is the answer of a test delivery.
type StreamTest struct {
	Success    bool    `json:"success"`
	Message    string  `json:"message"`
	Retryable  bool    `json:"retryable"`
	DurationMS float64 `json:"duration_ms"`
}

func streamPath(orgID, id string) string {
	p := "/v1/organizations/" + seg(orgID) + "/log_streams"
	if id != "" {
		p += "/" + seg(id)
	}
	return p
}

// CreateStream answers POST /v1/organizations/{id}/log_streams.
func (c *Client) CreateStream(ctx context.Context, orgID string, r StreamRequest) (*Stream, error) {
	var out Stream
	if err := c.do(ctx, http.MethodPost, streamPath(orgID, ""), nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListStreams answers one page of GET /v1/organizations/{id}/log_streams.
func (c *Client) ListStreams(ctx context.Context, orgID string, o ListOptions) (*List[Stream], error) {
	var out List[Stream]
	if err := c.do(ctx, http.MethodGet, streamPath(orgID, ""), o.values(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetStream answers GET …/log_streams/{stream}.
func (c *Client) GetStream(ctx context.Context, orgID, id string) (*Stream, error) {
	return c.streamCall(ctx, http.MethodGet, streamPath(orgID, id), nil)
}

// UpdateStream answers PATCH …/log_streams/{stream}.
func (c *Client) UpdateStream(ctx context.Context, orgID, id string, u StreamUpdate) (*Stream, error) {
	return c.streamCall(ctx, http.MethodPatch, streamPath(orgID, id), u)
}

// PauseStream answers POST …/log_streams/{stream}/pause.
func (c *Client) PauseStream(ctx context.Context, orgID, id string) (*Stream, error) {
	return c.streamCall(ctx, http.MethodPost, streamPath(orgID, id)+"/pause", nil)
}

// ResumeStream answers POST …/log_streams/{stream}/resume.
func (c *Client) ResumeStream(ctx context.Context, orgID, id string) (*Stream, error) {
	return c.streamCall(ctx, http.MethodPost, streamPath(orgID, id)+"/resume", nil)
}

// DeleteStream answers DELETE …/log_streams/{stream}.
func (c *Client) DeleteStream(ctx context.Context, orgID, id string) error {
	return c.do(ctx, http.MethodDelete, streamPath(orgID, id), nil, nil, nil)
}

// TestStream sends a test delivery (POST …/log_streams/{stream}/test).
func (c *Client) TestStream(ctx context.Context, orgID, id string) (*StreamTest, error) {
	var out StreamTest
	if err := c.do(ctx, http.MethodPost, streamPath(orgID, id)+"/test", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) streamCall(ctx context.Context, method, path string, in any) (*Stream, error) {
	var out Stream
	if err := c.do(ctx, method, path, url.Values(nil), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
