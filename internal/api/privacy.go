package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/privacy"
	"github.com/trailaudit/trail/internal/store"
)

// PrivacyConfig connects the API to field policies and erasures (package
// privacy, docs/PRIVACY.md). Without Store the privacy routes are not
// served and no policy applies.
type PrivacyConfig struct {
	Store store.PrivacyStore
	// Policies is the in-memory copy of every organization's policy that
	// ingest applies; reloaded after a policy is set here.
	Policies *privacy.Policies
	// Hasher computes the keyed hashes of hmac fields and of the hash
	// endpoint.
	Hasher *keyring.FieldHasher
	// Eraser takes erasure requests.
	Eraser *privacy.Eraser
}

// applyPolicies applies each event's organization's field policy before
// anything is stored, and keeps the submission's tails and body hash in
// step. It costs one atomic load and one map lookup per event when no
// organization has a policy, and allocates nothing then.
func (s *Server) applyPolicies(sub *store.Submission, drafts []*event.Draft) {
	pols := s.cfg.Privacy.Policies
	changed := false
	for i, d := range drafts {
		org := sub.Events[i].OrganizationID
		if pol := pols.For(org); pol != nil && pol.Apply(d, org, s.cfg.Privacy.Hasher) {
			sub.Events[i].Tail = d.Tail
			changed = true
		}
	}
	if changed && sub.IdempotencyKey != "" {
		// The body's hash would be a hash of the values the policy
		// replaced: keep a hash of what is stored instead.
		h := sha256.New()
		for _, e := range sub.Events {
			h.Write(e.Tail)
			h.Write([]byte{0})
		}
		copy(sub.BodyHash[:], h.Sum(nil))
	}
}

// privacyOrg checks that the principal may administer org's privacy
// (admin scope, unrestricted or restricted to org) and that org exists.
func (s *Server) privacyOrg(r *http.Request, scope string) (store.Organization, error) {
	p, id := principal(r), r.PathValue("id")
	if !p.CanAccessOrg(id) {
		return store.Organization{}, errOrgNotFound(id)
	}
	if !p.Can(scope) {
		return store.Organization{}, errForbidden(scope)
	}
	return s.visibleOrg(r, id)
}

type privacyPolicyJSON struct {
	Object         string           `json:"object"`
	OrganizationID string           `json:"organization_id"`
	Policy         privacy.Document `json:"policy"`
	UpdatedAt      *string          `json:"updated_at"`
}

// getPrivacyPolicy is GET /v1/organizations/{id}/privacy_policy.
func (s *Server) getPrivacyPolicy(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeAdmin)
	if err != nil {
		return err
	}
	doc, at, err := s.cfg.Privacy.Store.PrivacyPolicy(r.Context(), org.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errOrgNotFound(org.ID)
	}
	if err != nil {
		return err
	}
	out := privacyPolicyJSON{Object: "privacy_policy", OrganizationID: org.ID, Policy: privacy.Document{Fields: map[string]string{}}}
	if doc != nil {
		pol, err := privacy.Parse(doc)
		if err != nil {
			return fmt.Errorf("stored privacy policy of %s: %w", org.ID, err)
		}
		out.Policy = pol.Document()
		t := formatTime(at)
		out.UpdatedAt = &t
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putPrivacyPolicy is PUT /v1/organizations/{id}/privacy_policy: the body
// is the policy document, which replaces the organization's.
func (s *Server) putPrivacyPolicy(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeAdmin)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, privacy.MaxDocumentBytes)
	if err != nil {
		return err
	}
	var doc privacy.Document
	if err := decodeStrict(body, &doc); err != nil {
		return err
	}
	pol, err := privacy.Compile(doc)
	var pe *privacy.ParseError
	if errors.As(err, &pe) {
		errs := make([]fieldError, len(pe.Errors))
		for i, fe := range pe.Errors {
			errs[i] = fieldError{Code: "invalid", Field: truncate(fe.Field, 200), Message: truncate(fe.Field, 200) + " " + fe.Message + "."}
		}
		return errInvalidParams(errs)
	}
	if err != nil {
		return err
	}
	raw := pol.JSON()
	now := s.cfg.Now().UTC()
	if err := s.cfg.Privacy.Store.SetPrivacyPolicy(r.Context(), org.ID, raw, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org.ID)
		}
		return err
	}
	if err := s.cfg.Privacy.Policies.Reload(r.Context()); err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	rules := len(doc.Fields)
	for _, a := range doc.Actions {
		rules += len(a)
	}
	s.audit(r, auditAction{
		action: "trail.privacy_policy.updated",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
		meta: map[string]string{
			"policy_sha256": hex.EncodeToString(sum[:]),
			"rules":         strconv.Itoa(rules),
			"policy":        truncate(string(raw), 480),
		},
	})
	t := formatTime(now)
	writeJSON(w, http.StatusOK, privacyPolicyJSON{Object: "privacy_policy", OrganizationID: org.ID, Policy: pol.Document(), UpdatedAt: &t})
	return nil
}

// deletePrivacyPolicy is DELETE /v1/organizations/{id}/privacy_policy:
// events are stored as sent again.
func (s *Server) deletePrivacyPolicy(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeAdmin)
	if err != nil {
		return err
	}
	if err := s.cfg.Privacy.Store.SetPrivacyPolicy(r.Context(), org.ID, nil, s.cfg.Now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org.ID)
		}
		return err
	}
	if err := s.cfg.Privacy.Policies.Reload(r.Context()); err != nil {
		return err
	}
	s.audit(r, auditAction{
		action: "trail.privacy_policy.deleted",
		target: auditEntity{Type: "organization", ID: org.ID, Name: org.Name},
		orgs:   []string{org.ID},
	})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxHashValue bounds the value of a hash request: the longest field an
// event holds (entity ids and names).
const maxHashValue = event.MaxEntityFieldLen

type hashRequest struct {
	Value *string `json:"value"`
}

// hashValue is POST /v1/organizations/{id}/hmac: the keyed hash a field
// policy stores for value in this organization, under every master key
// (the primary first), to search for it (like Vault's /sys/audit-hash). A
// key that can read the organization's events may ask: it learns nothing
// it could not find by searching.
func (s *Server) hashValue(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeEventsRead)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req hashRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	switch {
	case req.Value == nil || *req.Value == "":
		return errInvalidParams([]fieldError{{Code: "required", Field: "value", Message: "value is required: give the value to hash."}})
	case utf8.RuneCountInString(*req.Value) > maxHashValue:
		return errInvalidParams([]fieldError{{Code: "invalid", Field: "value", Message: fmt.Sprintf("value must be at most %d characters.", maxHashValue)}})
	}
	all := s.cfg.Privacy.Hasher.HashAll(org.ID, *req.Value)
	writeJSON(w, http.StatusOK, struct {
		Object string              `json:"object"`
		HMAC   string              `json:"hmac"`
		Hashes []keyring.KeyedHash `json:"hashes"`
	}{"hmac", all[0].Hash, all})
	return nil
}

type erasureRequest struct {
	ActorID    *string `json:"actor_id"`
	TargetType *string `json:"target_type"`
	TargetID   *string `json:"target_id"`
	Reason     *string `json:"reason"`
	RequestID  *string `json:"request_id"`
}

type erasureJSON struct {
	Object         string    `json:"object"`
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	RequestID      string    `json:"request_id"`
	State          string    `json:"state"`
	SubjectKind    string    `json:"subject_kind"`
	SubjectType    string    `json:"subject_type,omitempty"`
	Subject        string    `json:"subject"`
	Reason         string    `json:"reason"`
	UpToSeq        int64     `json:"up_to_seq"`
	Planned        int64     `json:"planned"`
	Erased         int64     `json:"erased"`
	Seqs           string    `json:"seqs"`
	Tombstones     string    `json:"tombstone_seqs"`
	CreatedAt      string    `json:"created_at"`
	CompletedAt    *string   `json:"completed_at"`
	RequestedBy    reqByJSON `json:"requested_by"`
	Error          string    `json:"error,omitempty"`
}

type reqByJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func erasureOut(e store.Erasure) erasureJSON {
	out := erasureJSON{Object: "erasure", ID: e.ID, OrganizationID: e.OrganizationID, RequestID: e.RequestID, State: e.State,
		SubjectKind: e.SubjectKind, SubjectType: e.SubjectType, Subject: e.SubjectHash, Reason: e.Reason, UpToSeq: e.UpTo,
		Planned: e.Planned, Erased: e.Erased, Seqs: e.Seqs, Tombstones: e.Tombstones, CreatedAt: formatTime(e.CreatedAt),
		RequestedBy: reqByJSON{Type: e.RequestedByType, ID: e.RequestedByID, Name: e.RequestedByName}, Error: e.Error}
	if e.State == store.ErasureCompleted {
		t := formatTime(e.CompletedAt)
		out.CompletedAt = &t
	}
	return out
}

// Erasure request limits.
const (
	maxReasonLen    = 400
	maxRequestIDLen = 255
)

// createErasure is POST /v1/organizations/{id}/erasures: erase the bodies
// of every event of a subject (actor_id, or target_type and target_id)
// accepted so far, keeping their leaf hashes, and record a signed
// tombstone. 202 with the new job; the same request_id (or
// Idempotency-Key) answers 200 with the job it started.
func (s *Server) createErasure(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeAdmin)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, adminBodyLimit)
	if err != nil {
		return err
	}
	var req erasureRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	actor, ttype, tid, reason, reqID := str(req.ActorID), str(req.TargetType), str(req.TargetID), strings.TrimSpace(str(req.Reason)), str(req.RequestID)
	if reqID == "" {
		reqID = r.Header.Get("Idempotency-Key")
	}
	var errs []fieldError
	switch {
	case actor == "" && tid == "":
		addErr(&errs, "actor_id", "required", "Give actor_id, or target_type and target_id: the subject whose events to erase.")
	case actor != "" && (tid != "" || ttype != ""):
		addErr(&errs, "actor_id", "invalid", "Give actor_id or target_type and target_id, not both.")
	case tid != "" && ttype == "":
		addErr(&errs, "target_type", "required", "target_id needs target_type: give the type of the target too.")
	}
	for _, f := range []struct{ name, v string }{{"actor_id", actor}, {"target_type", ttype}, {"target_id", tid}} {
		if utf8.RuneCountInString(f.v) > event.MaxEntityFieldLen {
			addErr(&errs, f.name, "invalid", fmt.Sprintf("%s must be at most %d characters.", f.name, event.MaxEntityFieldLen))
		}
	}
	switch {
	case reason == "":
		addErr(&errs, "reason", "required", "reason is required: say why the subject's events are erased (it is recorded in the tombstone).")
	case utf8.RuneCountInString(reason) > maxReasonLen:
		addErr(&errs, "reason", "invalid", fmt.Sprintf("reason must be at most %d characters.", maxReasonLen))
	}
	if len(reqID) > maxRequestIDLen {
		addErr(&errs, "request_id", "invalid", fmt.Sprintf("request_id must be at most %d bytes.", maxRequestIDLen))
	}
	if errs != nil {
		return errInvalidParams(errs)
	}
	p := principal(r)
	job, created, err := s.cfg.Privacy.Eraser.Request(r.Context(), privacy.Request{
		OrganizationID: org.ID, RequestID: reqID, ActorID: actor, TargetType: ttype, TargetID: tid, Reason: reason,
		RequestedByType: "api_key", RequestedByID: p.ID, RequestedByName: p.Name,
	})
	switch {
	case errors.Is(err, privacy.ErrRequestReused):
		return &apiError{status: http.StatusConflict, code: "request_id_reused",
			message: "This request_id was used for an erasure of another subject (" + job.ID + "); use a new request_id for a new erasure."}
	case errors.Is(err, store.ErrNotFound):
		return errOrgNotFound(org.ID)
	case err != nil:
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
		s.audit(r, auditAction{
			action: "trail.erasure.requested",
			target: auditEntity{Type: "erasure", ID: job.ID},
			orgs:   []string{org.ID},
			meta: map[string]string{
				"subject": job.SubjectHash, "subject_kind": job.SubjectKind, "reason": truncate(reason, 400),
				"erasure_request_id": truncate(job.RequestID, 400), "up_to_seq": strconv.FormatInt(job.UpTo, 10),
			},
		})
	}
	writeJSON(w, status, erasureOut(job))
	return nil
}

// getErasure is GET /v1/organizations/{id}/erasures/{erasure}: the job's
// state and progress.
func (s *Server) getErasure(w http.ResponseWriter, r *http.Request) error {
	org, err := s.privacyOrg(r, access.ScopeAdmin)
	if err != nil {
		return err
	}
	id := r.PathValue("erasure")
	job, err := s.cfg.Privacy.Store.Erasure(r.Context(), org.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Erasure", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, erasureOut(job))
	return nil
}
