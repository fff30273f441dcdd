package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/semaphore"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// maxIdempotencyKey is the longest Idempotency-Key header accepted.
const maxIdempotencyKey = 255

// createEvent is WorkOS's POST /audit_logs/events: one event, answered 201
// {"success":true} once it is durable.
func (s *Server) createEvent(w http.ResponseWriter, r *http.Request) error {
	release, err := s.reserveIntake(r, s.cfg.Limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer release()
	// ParseCreate copies what it keeps, and nothing else holds on to the
	// body past this handler: its buffer is reused for another request.
	buf := s.bodies.get()
	defer func() { s.bodies.put(buf) }()
	body, err := readBodyInto(w, r, s.cfg.Limits.MaxBodyBytes, *buf)
	if err != nil {
		s.metrics.reject(rejectTooLarge, 1)
		return err
	}
	*buf = body
	idem, err := idempotencyKey(r)
	if err != nil {
		s.metrics.reject(rejectIdempotency, 1)
		return err
	}
	doneParsing, err := s.parseTurn(r.Context(), len(body))
	if err != nil {
		return err
	}
	defer doneParsing()
	now := s.cfg.Now().UTC()
	orgID, d, err := event.ParseCreate(body, now, s.cfg.Limits)
	if err != nil {
		s.metrics.reject(rejectInvalid, 1)
		return eventError(err)
	}
	setOrg(r, orgID)
	if err := writableOrg(principal(r), orgID); err != nil {
		s.metrics.reject(rejectUnknownOrg, 1)
		return err
	}
	sub := store.Submission{Events: []store.PendingEvent{{
		OrganizationID: orgID, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail,
	}}}
	drafts := []*event.Draft{d}
	handOverDrafts(&sub, drafts, len(body))
	outcomes, err := s.checkSchemas(r.Context(), drafts, false, sub.Events)
	if err != nil {
		s.rejectSchemas(r.Context(), err, 1)
		return err
	}
	doneParsing()
	setIdempotency(&sub, idem, body)
	s.applyPolicies(&sub, drafts)
	res, err := s.submit(r.Context(), sub)
	if err != nil {
		return err
	}
	if res.Err != nil {
		if errors.Is(res.Err, store.ErrNotFound) {
			s.metrics.reject(rejectUnknownOrg, 1)
			return errOrgNotFound(orgID)
		}
		s.metrics.reject(rejectInternal, 1)
		return fmt.Errorf("couldn't store the event for %s: %w", orgID, res.Err)
	}
	if !res.Replayed {
		s.metrics.accepted.Add(float64(len(res.Events)))
		s.countMismatches(drafts, outcomes)
	}
	if err := s.checkReplay(r, sub, res); err != nil {
		return err
	}
	writeRawJSON(w, http.StatusCreated, []byte(`{"success":true}`))
	return nil
}

// bodyBuffers holds the buffers single events' bodies are read into, so
// that reading a request allocates nothing. Buffers over maxPooledBody are
// left to the garbage collector: one rare large body must not stay pinned.
type bodyBuffers struct{ pool sync.Pool }

const maxPooledBody = 16 << 10

func (b *bodyBuffers) get() *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return p
	}
	buf := make([]byte, 0, 2<<10)
	return &buf
}

func (b *bodyBuffers) put(p *[]byte) {
	if cap(*p) > maxPooledBody {
		return
	}
	*p = (*p)[:0]
	b.pool.Put(p)
}

// createEventBatch is POST /v1/events/batch: up to 1000 events, possibly of
// several organizations, stored all together or not at all.
func (s *Server) createEventBatch(w http.ResponseWriter, r *http.Request) error {
	release, err := s.reserveIntake(r, s.cfg.MaxBatchBodyBytes)
	if err != nil {
		return err
	}
	defer release()
	body, err := readBody(w, r, s.cfg.MaxBatchBodyBytes)
	if err != nil {
		s.metrics.reject(rejectTooLarge, 1)
		return err
	}
	idem, err := idempotencyKey(r)
	if err != nil {
		s.metrics.reject(rejectIdempotency, 1)
		return err
	}
	doneParsing, err := s.parseTurn(r.Context(), len(body))
	if err != nil {
		return err
	}
	defer doneParsing()
	now := s.cfg.Now().UTC()
	items, err := parseBatch(body, now, s.cfg.Limits)
	if err != nil {
		s.metrics.reject(rejectInvalid, len(items))
		return err
	}
	orgs := distinctOrgs(items)
	if len(orgs) == 1 {
		setOrg(r, orgs[0])
	}
	p := principal(r)
	for _, org := range orgs {
		if err := writableOrg(p, org); err != nil {
			s.metrics.reject(rejectUnknownOrg, len(items))
			return err
		}
	}
	sub := store.Submission{Events: make([]store.PendingEvent, len(items))}
	drafts := make([]*event.Draft, len(items))
	for i, it := range items {
		sub.Events[i] = store.PendingEvent{OrganizationID: it.orgID, ID: event.NewID(now), ReceivedAt: now, Tail: it.draft.Tail}
		drafts[i] = it.draft
	}
	handOverDrafts(&sub, drafts, len(body))
	outcomes, err := s.checkSchemas(r.Context(), drafts, true, sub.Events)
	if err != nil {
		s.rejectSchemas(r.Context(), err, len(items))
		return err
	}
	doneParsing()
	setIdempotency(&sub, idem, body)
	s.applyPolicies(&sub, drafts)
	res, err := s.submit(r.Context(), sub)
	if err != nil {
		return err
	}
	if res.Err != nil {
		if errors.Is(res.Err, store.ErrNotFound) {
			s.metrics.reject(rejectUnknownOrg, len(items))
			return s.missingOrg(r.Context(), orgs)
		}
		s.metrics.reject(rejectInternal, len(items))
		return fmt.Errorf("couldn't store a batch of %d events: %w", len(items), res.Err)
	}
	if !res.Replayed {
		s.metrics.accepted.Add(float64(len(res.Events)))
		s.countMismatches(drafts, outcomes)
	}
	if err := s.checkReplay(r, sub, res); err != nil {
		return err
	}
	out := struct {
		Data []acceptedJSON `json:"data"`
	}{Data: make([]acceptedJSON, len(res.Events))}
	for i, a := range res.Events {
		out.Data[i] = acceptedJSON{ID: a.ID, OrganizationID: a.OrganizationID, Seq: a.Seq, ReceivedAt: formatTime(a.ReceivedAt)}
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

type acceptedJSON struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Seq            int64  `json:"seq"`
	ReceivedAt     string `json:"received_at"`
}

// missingOrg names the first of orgs that does not exist, after the store
// refused a batch for naming an unknown organization.
func (s *Server) missingOrg(ctx context.Context, orgs []string) error {
	for _, org := range orgs {
		_, err := s.st.Organization(ctx, org)
		if errors.Is(err, store.ErrNotFound) {
			return errOrgNotFound(org)
		}
		if err != nil {
			return err
		}
	}
	return &apiError{status: http.StatusNotFound, code: "entity_not_found",
		message: "An organization of the batch was not found; nothing was stored."}
}

// reserveIntake admits an ingest request only while the bodies being read,
// parsed and committed fit in Config.MaxIntakeBytes. Past that it answers 503
// with Retry-After at once: without it a flood of large batches is read and
// parsed all at once, memory grows with the number of clients, and every
// answer waits for all the others.
//
// A body of known length reserves that length before anything is read. A
// body of unknown length (chunked) reserves as its bytes arrive, from a
// separate budget of the same size, so that clients streaming endless or
// slow bodies can only crowd out each other, never the clients that say
// how much they send.
func (s *Server) reserveIntake(r *http.Request, limit int64) (release func(), err error) {
	if r.ContentLength < 0 {
		// limit+1: a body over its limit gets its 413 from readBody.
		cr := &chunkedIntake{r: r.Body, sem: s.intake.chunked, max: limit + 1}
		r.Body = cr
		return cr.release, nil
	}
	n := min(max(min(r.ContentLength, limit), 1), s.cfg.MaxIntakeBytes)
	if !s.intake.known.TryAcquire(n) {
		s.metrics.reject(rejectUnavailable, 1)
		return nil, errIngestUnavailable
	}
	return func() { s.intake.known.Release(n) }, nil
}

// parseTurnMin is the smallest body that waits for a turn to be parsed:
// smaller ones take microseconds, less than waiting would cost.
const parseTurnMin = 64 << 10

// parseTurn waits until fewer bodies of at least parseTurnMin bytes are being
// parsed and checked than there are cores, and returns the function that
// ends the turn (safe to call twice).
//
// Parsing a large batch takes milliseconds of CPU. Under a flood, the
// intake budget admits dozens at once; all runnable together, they keep the
// Go scheduler's run queues long, so a connection with a new request waits
// that much longer to be served, even when its answer is an immediate 503
// (docs/PERFORMANCE.md, "Refusals under a flood of batches", has the
// figures). Waiting for a turn blocks, it does not spin, and the bytes stay
// counted by the intake budget meanwhile.
func (s *Server) parseTurn(ctx context.Context, size int) (done func(), err error) {
	if size < parseTurnMin {
		return func() {}, nil
	}
	select {
	case s.parsing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to parse a %d-byte body: %w", size, ctx.Err())
	}
	var once sync.Once
	return func() { once.Do(func() { <-s.parsing }) }, nil
}

// intakeBudgets are the two byte budgets of reserveIntake.
type intakeBudgets struct {
	known, chunked *semaphore.Weighted
}

// errIntakeFull ends the read of a chunked body when the budget is spent.
var errIntakeFull = errors.New("ingest intake is full")

// chunkedIntake reserves a chunked body's bytes from the budget as they are
// read, and gives them all back at release.
type chunkedIntake struct {
	r    io.ReadCloser
	sem  *semaphore.Weighted
	max  int64
	held int64
}

func (c *chunkedIntake) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if c.held+int64(n) > c.max || !c.sem.TryAcquire(int64(n)) {
			return 0, errIntakeFull
		}
		c.held += int64(n)
	}
	return n, err
}

func (c *chunkedIntake) Close() error { return c.r.Close() }

func (c *chunkedIntake) release() {
	if c.held > 0 {
		c.sem.Release(c.held)
		c.held = 0
	}
}

// rejectSchemas counts the events of a request whose schemas could not be
// read (checkSchemas counts those it refuses itself).
func (s *Server) rejectSchemas(ctx context.Context, err error, events int) {
	if _, ok := asAPIError(err); !ok {
		s.metrics.rejectFailed(ctx, err, events)
	}
}

// submit hands sub to the committer, mapping back-pressure to 503.
func (s *Server) submit(ctx context.Context, sub store.Submission) (store.AppendResult, error) {
	res, err := s.sub.Submit(ctx, sub)
	var refused *ledger.RefusedError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &refused):
		s.metrics.reject(rejectUnavailable, len(sub.Events))
		return res, errLogRefused(refused.Organization)
	case errors.Is(err, ingest.ErrOverloaded), errors.Is(err, ingest.ErrStopped), errors.Is(err, store.ErrUnavailable):
		s.metrics.reject(rejectUnavailable, len(sub.Events))
		return res, errIngestUnavailable
	default:
		return res, fmt.Errorf("couldn't submit %d events: %w", len(sub.Events), err)
	}
}

// writableOrg refuses events for an organization the key may not see (404,
// as if it did not exist) and for the system organization, whose log only
// Trail itself writes.
func writableOrg(p access.Principal, orgID string) error {
	if !p.CanAccessOrg(orgID) {
		return errOrgNotFound(orgID)
	}
	if orgID == store.SystemOrganizationID {
		return &apiError{status: http.StatusForbidden, code: "forbidden",
			message: "The organization org_system holds Trail's own audit events; events cannot be sent to it."}
	}
	return nil
}

// idempotencyKey returns the request's Idempotency-Key header ("" if none).
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if len(k) > maxIdempotencyKey {
		return "", &apiError{status: http.StatusBadRequest, code: "invalid_idempotency_key",
			message: "The Idempotency-Key header is " + strconv.Itoa(len(k)) + " bytes long; use at most 255."}
	}
	return k, nil
}

// setIdempotency makes sub idempotent on its Idempotency-Key alone, as
// WorkOS defines it: for 24 hours, a request with the same key (in the
// organization of its first event) is answered with the first request's
// result and stores nothing, whatever its body. The body's SHA-256 is kept
// with the key to tell a retry from a reuse (checkReplay).
func setIdempotency(sub *store.Submission, key string, body []byte) {
	if key == "" {
		return
	}
	sub.IdempotencyKey = key
	sub.BodyHash = sha256.Sum256(body)
}

// checkReplay handles an idempotent replay whose body differed from the
// first request's with that key: the first answer stands (WorkOS's
// definition), but an application that rebuilt its event differently, or
// reused a key for another event, is losing that event, so it is counted
// (trail_idempotency_key_reused_total) and logged at WARN with both
// requests' event ids (the new ones were minted, never stored) and the new
// body's hash. A first result that holds events of an organization the
// caller may not see is not shown to it: 409.
func (s *Server) checkReplay(r *http.Request, sub store.Submission, res store.AppendResult) error {
	if !res.Replayed || !res.BodyMismatch {
		return nil
	}
	s.metrics.idemReuse.Inc()
	first, unsent := make([]string, len(res.Events)), make([]string, len(sub.Events))
	for i, a := range res.Events {
		first[i] = a.ID
	}
	for i, e := range sub.Events {
		unsent[i] = e.ID
	}
	s.log.Warn("an Idempotency-Key was reused with another body: answered with the first request's result, the new events were not stored",
		"request_id", infoFrom(r).id, "idempotency_key", truncate(sub.IdempotencyKey, 100),
		"first_event_ids", truncate(strings.Join(first, ","), 1000),
		"new_event_ids", truncate(strings.Join(unsent, ","), 1000),
		"new_body_sha256", hex.EncodeToString(sub.BodyHash[:]))
	p := principal(r)
	for _, a := range res.Events {
		if !p.CanAccessOrg(a.OrganizationID) {
			return &apiError{status: http.StatusConflict, code: "idempotency_key_reused",
				message: "This Idempotency-Key was used in the last 24 hours for another request; use a new key for a new request."}
		}
	}
	return nil
}

// eventError renders an error of the event parser.
func eventError(err error) error {
	var ee *event.Error
	if errors.As(err, &ee) {
		return fromEventError(ee)
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_audit_log_event", message: "Invalid Audit Log event: " + err.Error() + "."}
}

// batchItem is one validated event of a batch.
type batchItem struct {
	orgID string
	draft *event.Draft
}

// Batch limits.
const (
	maxBatchEvents = 1000
	maxBatchErrors = 1000 // errors reported for one batch; the rest are cut
)

// parseBatch validates a batch body {"events":[{"organization_id":…,
// "event":{…}},…]}. It checks every item and reports every problem at once,
// with field paths such as events[3].event.action; on any problem it returns
// an error and the items it could read (for counting). Unknown fields are
// ignored, as event.ParseCreate ignores them.
func parseBatch(body []byte, now time.Time, lim event.Limits) ([]batchItem, error) {
	if err := checkJSONObject(body); err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, errInvalidJSON("the body must be a JSON object")
	}
	var errs []fieldError
	raw, ok := env["events"]
	if !ok || isNull(raw) {
		errs = append(errs, fieldError{Code: event.CodeRequired, Field: "events", Message: "must be an array of 1 to 1000 events"})
		return nil, errValidation(errs)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		errs = append(errs, fieldError{Code: event.CodeInvalidType, Field: "events", Message: "must be an array of 1 to 1000 events"})
		return nil, errValidation(errs)
	}
	switch {
	case len(list) == 0:
		errs = append(errs, fieldError{Code: event.CodeRequired, Field: "events", Message: "must hold at least one event"})
	case len(list) > maxBatchEvents:
		errs = append(errs, fieldError{Code: event.CodeTooMany, Field: "events",
			Message: fmt.Sprintf("must hold at most %d events, not %d; split the batch", maxBatchEvents, len(list))})
	}
	if errs != nil {
		return nil, errValidation(errs)
	}
	items := make([]batchItem, 0, len(list))
	for i, rawItem := range list {
		if len(errs) >= maxBatchErrors {
			break
		}
		it, itemErrs := parseBatchItem(fmt.Sprintf("events[%d]", i), rawItem, now, lim)
		errs = append(errs, itemErrs...)
		if itemErrs == nil {
			items = append(items, it)
		}
	}
	if len(errs) > 0 {
		if len(errs) > maxBatchErrors {
			errs = errs[:maxBatchErrors]
		}
		return make([]batchItem, len(list)), errValidation(errs)
	}
	return items, nil
}

func parseBatchItem(path string, raw json.RawMessage, now time.Time, lim event.Limits) (batchItem, []fieldError) {
	var item map[string]json.RawMessage
	if err := json.Unmarshal(raw, &item); err != nil || item == nil {
		return batchItem{}, []fieldError{{Code: event.CodeInvalidType, Field: path,
			Message: "must be an object with organization_id and event"}}
	}
	var errs []fieldError
	var it batchItem
	f := path + ".organization_id"
	switch orgRaw, ok := item["organization_id"]; {
	case !ok || isNull(orgRaw):
		errs = append(errs, fieldError{Code: event.CodeRequired, Field: f, Message: "must be a non-empty string"})
	case json.Unmarshal(orgRaw, &it.orgID) != nil:
		errs = append(errs, fieldError{Code: event.CodeInvalidType, Field: f, Message: "must be a non-empty string"})
	case it.orgID == "":
		errs = append(errs, fieldError{Code: event.CodeRequired, Field: f, Message: "must be a non-empty string"})
	case utf8.RuneCountInString(it.orgID) > event.MaxOrganizationIDLen:
		errs = append(errs, fieldError{Code: event.CodeTooLong, Field: f, Message: fmt.Sprintf("must be at most %d characters", event.MaxOrganizationIDLen)})
	case strings.ContainsFunc(it.orgID, unicode.IsControl):
		errs = append(errs, fieldError{Code: event.CodeInvalidFormat, Field: f, Message: "must not contain control characters"})
	}
	f = path + ".event"
	evRaw, ok := item["event"]
	if !ok || isNull(evRaw) {
		return it, append(errs, fieldError{Code: event.CodeRequired, Field: f, Message: "must be an object"})
	}
	d, err := event.ParseEvent(evRaw, now, lim)
	if err != nil {
		var ee *event.Error
		switch {
		case !errors.As(err, &ee):
			errs = append(errs, fieldError{Code: event.CodeInvalidValue, Field: f, Message: err.Error()})
		case len(ee.Errors) == 0:
			code := ee.Code
			if code == "" {
				code = event.CodeInvalidValue
			}
			errs = append(errs, fieldError{Code: code, Field: f, Message: ee.Message})
		default:
			errs = append(errs, convertFieldErrors(ee.Errors, path+".")...)
		}
		return it, errs
	}
	it.draft = d
	return it, errs
}

// checkJSONObject answers 400 invalid_json for a body that is not one JSON
// object.
func checkJSONObject(body []byte) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return errInvalidJSON("the body is empty; send a JSON object")
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return errInvalidJSON(trimJSONPrefix(err.Error()))
	}
	if b[0] != '{' {
		return errInvalidJSON("the body must be a JSON object")
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func distinctOrgs(items []batchItem) []string {
	var orgs []string
	seen := map[string]bool{}
	for _, it := range items {
		if !seen[it.orgID] {
			seen[it.orgID] = true
			orgs = append(orgs, it.orgID)
		}
	}
	return orgs
}

// formatTime is how the API writes times: RFC 3339 in UTC with exactly three
// fractional digits, as WorkOS does and as the canonical record does.
func formatTime(t time.Time) string { return t.UTC().Format(event.TimeLayout) }

// handOverDrafts gives the store each event's parsed draft (it then need
// not parse the record again for its search indexer) unless the drafts
// would keep much more memory alive than they hold: their strings share one
// copy of the request body, which the store keeps until the commit, when it
// takes what the indexer needs from them. A body mostly made of anything
// else (whitespace, say) would hold that much more for nothing.
func handOverDrafts(sub *store.Submission, drafts []*event.Draft, bodyLen int) {
	tails := 0
	for _, d := range drafts {
		tails += len(d.Tail)
	}
	if bodyLen > 2*tails+1024 {
		return
	}
	for i, d := range drafts {
		sub.Events[i].Draft = d
	}
}
