package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/trailaudit/trail/internal/event"
)

// apiError is an error answer: a status and the JSON body WorkOS clients
// expect, {"message":…,"code":…,"errors":[…]}.
type apiError struct {
	status     int
	code       string // omitted when ""
	message    string
	errors     []fieldError
	retryAfter int // seconds; sent as Retry-After when > 0
}

func (e *apiError) Error() string { return e.message }

// fieldError is one entry of "errors". The key order (code, field, message)
// is WorkOS's.
type fieldError struct {
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message,omitempty"`
}

type errorBody struct {
	Message string       `json:"message"`
	Code    string       `json:"code,omitempty"`
	Errors  []fieldError `json:"errors,omitempty"`
}

// writeAPIError renders e.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, errorBody{Message: e.message, Code: e.code, Errors: e.errors})
}

// writeJSON writes v as compact JSON, without HTML escaping and without a
// trailing newline, so bodies match WorkOS's byte for byte.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own types reach here, and they always encode.
		writeRawJSON(w, http.StatusInternalServerError,
			[]byte(`{"message":"Trail couldn't encode its answer; report this to the operator.","code":"internal_error"}`))
		return
	}
	writeRawJSON(w, status, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// Header values of every JSON answer, shared by all of them: net/http
// copies a handler's header when it writes it and never changes a value in
// place, and assigning the canonical keys directly spares Header.Set's
// canonicalization and a slice per value per request. Nothing may change
// them in place (h[key][0] = …): assign a new slice instead.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Content-Type-Options"] = noSniff // records hold client strings
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// The answers fixed by docs/DESIGN.md §5 and WorkOS.

var errUnauthorized = &apiError{
	status:  http.StatusUnauthorized,
	code:    "unauthorized",
	message: "Could not authorize the request: send Authorization: Bearer sk_… with an active API key.",
}

func errForbidden(scope string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "forbidden",
		message: "This API key lacks the " + scope + " scope."}
}

// errNotFound is the 404 of one entity: "Organization 'org_x' not found.".
// It is also the answer when the caller may not see the entity, so that a
// restricted key cannot tell the two apart.
func errNotFound(kind, id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "entity_not_found",
		message: fmt.Sprintf("%s '%s' not found.", kind, id)}
}

func errOrgNotFound(id string) *apiError { return errNotFound("Organization", id) }

func errTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "request_too_large",
		message: fmt.Sprintf("Request body exceeds %d bytes.", limit)}
}

var errIngestUnavailable = &apiError{
	status:     http.StatusServiceUnavailable,
	code:       "service_unavailable",
	message:    "Trail is temporarily unable to accept events; retry after the delay in Retry-After.",
	retryAfter: 1,
}

// errLogRefused answers events for an organization whose log Trail refuses
// to sign (ledger.Integrator.Admit): its database is behind or beside a
// checkpoint already published. Only an operator restoring the newest
// database unblocks it, so Retry-After is minutes, not a second.
func errLogRefused(org string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: "log_refused",
		message: fmt.Sprintf("Trail does not accept events for organization '%s' now: its database disagrees with a checkpoint this server already signed and published "+
			"(it was probably restored from an older backup), so new events would take positions that checkpoint covers. Nothing was stored. "+
			"The operator must restore the newest database (see the server log); retry later.", org),
		retryAfter: 300}
}

var errStorageUnavailable = &apiError{
	status:     http.StatusServiceUnavailable,
	code:       "service_unavailable",
	message:    "Trail's storage is temporarily unavailable; retry after the delay in Retry-After.",
	retryAfter: 1,
}

func errRateLimited(retryAfter int) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "rate_limit_exceeded",
		message: "Too many requests.", retryAfter: retryAfter}
}

func errInvalidJSON(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_json",
		message: "The request body is not valid JSON: " + detail + "."}
}

func errInvalidCursor(param string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_cursor",
		message: "The " + param + " cursor is not valid: use list_metadata from a previous response."}
}

// errValidation is the 422 of WorkOS event validation, "Validation failed."
// with one entry per problem.
func errValidation(errs []fieldError) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, message: "Validation failed.", errors: errs}
}

// errInvalidParams is the 422 for bad query parameters or admin request
// fields: the message repeats every problem so a person reading only it
// knows what to change.
func errInvalidParams(errs []fieldError) *apiError {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Message
	}
	return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_request_parameters",
		message: "Validation failed: " + strings.Join(msgs, " "), errors: errs}
}

// fromEventError renders the parser's *event.Error as it describes itself.
func fromEventError(e *event.Error) *apiError {
	status := e.Status
	if status < 400 || status > 499 {
		status = http.StatusUnprocessableEntity
	}
	return &apiError{status: status, code: e.Code, message: e.Message, errors: convertFieldErrors(e.Errors, "")}
}

func convertFieldErrors(in []event.FieldError, prefix string) []fieldError {
	if len(in) == 0 {
		return nil
	}
	out := make([]fieldError, len(in))
	for i, fe := range in {
		out[i] = fieldError{Code: fe.Code, Field: prefix + fe.Field, Message: fe.Message}
	}
	return out
}

// asAPIError extracts an *apiError from err, if there is one.
func asAPIError(err error) (*apiError, bool) {
	var e *apiError
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}
