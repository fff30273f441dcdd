package client

import (
	"context"
	"net/http"
	"time"
)

// Field policies and erasures (docs/PRIVACY.md).

// PrivacyPolicy is an organization's field policy: field paths (actor.id,
// metadata.email, …) to "redact" or "hmac", organization-wide (Fields) and
// per action or action prefix ending in ".*" (Actions).
type PrivacyPolicy struct {
	Fields  map[string]string            `json:"fields"`
	Actions map[string]map[string]string `json:"actions,omitempty"`
}

type privacyPolicyAnswer struct {
	Policy PrivacyPolicy `json:"policy"`
}

// GetPrivacyPolicy answers GET /v1/organizations/{id}/privacy_policy.
func (c *Client) GetPrivacyPolicy(ctx context.Context, orgID string) (*PrivacyPolicy, error) {
	var out privacyPolicyAnswer
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+seg(orgID)+"/privacy_policy", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Policy, nil
}

// SetPrivacyPolicy replaces the organization's field policy (PUT
// /v1/organizations/{id}/privacy_policy).
func (c *Client) SetPrivacyPolicy(ctx context.Context, orgID string, p PrivacyPolicy) (*PrivacyPolicy, error) {
	if p.Fields == nil {
		p.Fields = map[string]string{}
	}
	var out privacyPolicyAnswer
	if err := c.do(ctx, http.MethodPut, "/v1/organizations/"+seg(orgID)+"/privacy_policy", nil, p, &out); err != nil {
		return nil, err
	}
	return &out.Policy, nil
}

// DeletePrivacyPolicy removes the organization's field policy.
func (c *Client) DeletePrivacyPolicy(ctx context.Context, orgID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/organizations/"+seg(orgID)+"/privacy_policy", nil, nil, nil)
}

// KeyedHash is a value's keyed hash under one master key.
type KeyedHash struct {
	KeyID   string `json:"key_id"`
	Primary bool   `json:"primary"`
	HMAC    string `json:"hmac"`
}

// HashValue answers POST /v1/organizations/{id}/hmac: value's keyed hash in
// the organization under every master key, the primary's first, to
// search for events whose field policy stored it hashed.
func (c *Client) HashValue(ctx context.Context, orgID, value string) ([]KeyedHash, error) {
	var out struct {
		Hashes []KeyedHash `json:"hashes"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/organizations/"+seg(orgID)+"/hmac", nil, map[string]string{"value": value}, &out)
	return out.Hashes, err
}

// ErasureRequest asks to erase every event of one subject: ActorID, or
// TargetType and TargetID. RequestID makes it idempotent.
type ErasureRequest struct {
	ActorID    string `json:"actor_id,omitempty"`
	TargetType string `json:"target_type,omitempty"`
	TargetID   string `json:"target_id,omitempty"`
	Reason     string `json:"reason"`
	RequestID  string `json:"request_id,omitempty"`
}

// Erasure is an erasure job and its progress.
type Erasure struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	RequestID      string     `json:"request_id"`
	State          string     `json:"state"` // planning, erasing, recording, completed
	SubjectKind    string     `json:"subject_kind"`
	SubjectType    string     `json:"subject_type,omitempty"`
	Subject        string     `json:"subject"` // the subject's keyed hash
	Reason         string     `json:"reason"`
	UpToSeq        int64      `json:"up_to_seq"`
	Planned        int64      `json:"planned"`
	Erased         int64      `json:"erased"`
	Seqs           string     `json:"seqs"`
	TombstoneSeqs  string     `json:"tombstone_seqs"`
	CreatedAt      time.Time  `json:"created_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	Error          string     `json:"error,omitempty"`
}

// CreateErasure answers POST /v1/organizations/{id}/erasures.
func (c *Client) CreateErasure(ctx context.Context, orgID string, r ErasureRequest) (*Erasure, error) {
	var out Erasure
	if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+seg(orgID)+"/erasures", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetErasure answers GET /v1/organizations/{id}/erasures/{erasure}.
func (c *Client) GetErasure(ctx context.Context, orgID, id string) (*Erasure, error) {
	var out Erasure
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+seg(orgID)+"/erasures/"+seg(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
