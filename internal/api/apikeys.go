package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

// apiKeyJSON is an API key as the API shows it. Secret is set only in the
// answer to its creation: it is never stored.
type apiKeyJSON struct {
	Object         string   `json:"object"`
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Scopes         []string `json:"scopes"`
	OrganizationID *string  `json:"organization_id"`
	Prefix         string   `json:"prefix"`
	CreatedAt      string   `json:"created_at"`
	RevokedAt      *string  `json:"revoked_at"`
	Secret         string   `json:"secret,omitempty"`
}

func keyJSON(k store.APIKey) apiKeyJSON {
	j := apiKeyJSON{Object: "api_key", ID: k.ID, Name: k.Name, Scopes: k.Scopes, Prefix: k.Prefix,
		CreatedAt: formatTime(k.CreatedAt)}
	if j.Scopes == nil {
		j.Scopes = []string{}
	}
	if k.OrganizationID != "" {
		j.OrganizationID = &k.OrganizationID
	}
	if !k.RevokedAt.IsZero() {
		t := formatTime(k.RevokedAt)
		j.RevokedAt = &t
	}
	return j
}

type createAPIKeyRequest struct {
	Name           *string  `json:"name"`
	Scopes         []string `json:"scopes"`
	OrganizationID *string  `json:"organization_id"`
}

// createAPIKey is POST /v1/api_keys. A key restricted to an organization
// creates keys of that organization only (organization_id defaults to it).
func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req createAPIKeyRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var errs []fieldError
	validateName(req.Name, &errs)
	scopes, err := access.ParseScopes(req.Scopes)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), access.ErrInvalidScopes.Error()+": ")
		addErr(&errs, "scopes", "invalid", upperFirst(msg)+".")
	}
	if errs != nil {
		return errInvalidParams(errs)
	}
	p := principal(r)
	org := ""
	if req.OrganizationID != nil {
		org = *req.OrganizationID
	}
	if org == "" {
		org = p.OrganizationID
	}
	if !p.CanAccessOrg(org) {
		return errOrgNotFound(org)
	}
	if org != "" {
		setOrg(r, org)
		if _, err := s.st.Organization(r.Context(), org); errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org)
		} else if err != nil {
			return err
		}
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	secret, hash, prefix := access.Generate()
	k := store.APIKey{ID: access.NewKeyID(now), Name: *req.Name, Hash: hash, Prefix: prefix,
		Scopes: scopes, OrganizationID: org, CreatedAt: now}
	if err := s.st.CreateAPIKey(r.Context(), k); err != nil {
		return err
	}
	s.audit(r, auditAction{
		action: "trail.api_key.created",
		target: auditEntity{Type: "api_key", ID: k.ID, Name: k.Name},
		orgs:   keyLogs(k),
		meta:   keyMeta(k),
	})
	j := keyJSON(k)
	j.Secret = secret
	writeJSON(w, http.StatusCreated, j)
	return nil
}

// keyLogs are the logs an action on key k is recorded in: its
// organization's, or the system log for an unrestricted key.
func keyLogs(k store.APIKey) []string {
	if k.OrganizationID != "" {
		return []string{k.OrganizationID}
	}
	return []string{store.SystemOrganizationID}
}

func keyMeta(k store.APIKey) map[string]string {
	m := map[string]string{"scopes": strings.Join(k.Scopes, " "), "prefix": k.Prefix}
	if k.OrganizationID != "" {
		m["organization_id"] = k.OrganizationID
	}
	return m
}

var apiKeyListParams = map[string]bool{"before": true, "after": true, "limit": true, "order": true, "organization_id": true}

// listAPIKeys is GET /v1/api_keys, a WorkOS-style list, optionally of the
// keys restricted to one organization_id. A restricted key lists the keys
// of its organization.
func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	v, err := parseQuery(r)
	if err != nil {
		return err
	}
	var errs []fieldError
	unknownParams(v, apiKeyListParams, &errs)
	lp := listParams(v, &errs)
	lp.OrganizationID = single(v, "organization_id", &errs)
	if errs != nil {
		return errInvalidParams(errs)
	}
	p := principal(r)
	if lp.OrganizationID == "" {
		lp.OrganizationID = p.OrganizationID
	}
	if !p.CanAccessOrg(lp.OrganizationID) {
		return errOrgNotFound(lp.OrganizationID)
	}
	if lp.OrganizationID != "" {
		setOrg(r, lp.OrganizationID)
		if _, err := s.st.Organization(r.Context(), lp.OrganizationID); errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(lp.OrganizationID)
		} else if err != nil {
			return err
		}
	}
	page, err := s.st.ListAPIKeys(r.Context(), lp)
	if errors.Is(err, store.ErrInvalidCursor) {
		return errInvalidCursor(cursorParam(lp))
	}
	if err != nil {
		return err
	}
	data := make([]apiKeyJSON, len(page.Data))
	for i, k := range page.Data {
		data[i] = keyJSON(k)
	}
	writeJSON(w, http.StatusOK, listJSON[apiKeyJSON]{Object: "list", Data: data, ListMetadata: listMeta(page.Before, page.After)})
	return nil
}

// visibleKey returns the key {id} if the caller may see it; otherwise 404,
// as if it did not exist.
func (s *Server) visibleKey(r *http.Request) (store.APIKey, error) {
	id := r.PathValue("id")
	k, err := s.st.APIKey(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !principal(r).CanAccessOrg(k.OrganizationID) {
		return k, errNotFound("API key", id)
	}
	if k.OrganizationID != "" {
		setOrg(r, k.OrganizationID)
	}
	return k, err
}

// getAPIKey is GET /v1/api_keys/{id}.
func (s *Server) getAPIKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.visibleKey(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keyJSON(k))
	return nil
}

// revokeAPIKey is DELETE /v1/api_keys/{id}: the key stops working at once
// on this server (within the key cache's TTL on other replicas). Revoking a
// revoked key changes nothing and answers the same.
func (s *Server) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.visibleKey(r)
	if err != nil {
		return err
	}
	if k.RevokedAt.IsZero() {
		now := s.cfg.Now().UTC().Truncate(time.Millisecond)
		if err := s.st.RevokeAPIKey(r.Context(), k.ID, now); err != nil {
			return err
		}
		s.keys.forget(k.ID)
		if k, err = s.st.APIKey(r.Context(), k.ID); err != nil {
			return err
		}
		s.audit(r, auditAction{
			action: "trail.api_key.revoked",
			target: auditEntity{Type: "api_key", ID: k.ID, Name: k.Name},
			orgs:   keyLogs(k),
			meta:   keyMeta(k),
		})
	}
	writeJSON(w, http.StatusOK, keyJSON(k))
	return nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
