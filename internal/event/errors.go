package event

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Field error codes. The first ones are the codes WorkOS uses; the others name
// the remaining ways a value can be wrong, so a client can branch on them.
const (
	CodeRequired      = "required"       // missing, null or empty
	CodeInvalidType   = "invalid_type"   // wrong JSON type
	CodeTooLong       = "too_long"       // string over its character limit
	CodeTooMany       = "too_many"       // array or object over its entry limit
	CodeInvalidFormat = "invalid_format" // bad UTF-8, control characters, bad key, bad timestamp, duplicate key
	CodeInvalidValue  = "invalid_value"  // well-formed but not acceptable (used by schema checks)
	CodeOutOfRange    = "out_of_range"   // number or time outside its bounds
)

// Error codes of the whole request (Error.Code).
const (
	CodeInvalidJSON  = "invalid_json"
	CodeInvalidEvent = "invalid_audit_log_event" // schema failures, in WorkOS's words
)

// MaxFieldErrors bounds how many field errors one request reports. A hostile body
// of 1 MiB could otherwise produce an error list larger than itself.
const MaxFieldErrors = 100

// Error is a client error: rendered by the HTTP layer as JSON.
type Error struct {
	Status  int    // 400 or 422
	Code    string // "" for 422 "Validation failed."; "invalid_json"; "invalid_audit_log_event" (schema failures, later)
	Message string // e.g. "Validation failed." (422) or "Request body is not valid JSON: unexpected end of input at byte 17" (400)
	Errors  []FieldError
}

// Error returns one line: the message, then each field error.
func (e *Error) Error() string {
	if len(e.Errors) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for i, fe := range e.Errors {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field)
		b.WriteString(": ")
		b.WriteString(fe.Code)
		if fe.Message != "" {
			b.WriteString(" (")
			b.WriteString(fe.Message)
			b.WriteString(")")
		}
	}
	return b.String()
}

// MarshalJSON renders the WorkOS error body, message first:
// {"message":"Validation failed.","errors":[{"field":"event.action","code":"required",…}]}.
// Code is left out when empty, as WorkOS does for 422.
func (e *Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Message string       `json:"message"`
		Code    string       `json:"code,omitempty"`
		Errors  []FieldError `json:"errors,omitempty"`
	}{e.Message, e.Code, e.Errors})
}

// FieldError is one problem with one field of the request.
type FieldError struct {
	Field   string `json:"field"`             // dotted path as WorkOS: "event.action", "event.targets[2].id", "event.metadata.some_key"
	Code    string `json:"code"`              // "required", "invalid_type", "too_long", "too_many", "invalid_format", "invalid_value", "out_of_range"
	Message string `json:"message,omitempty"` // what to fix, in plain words: "must be a string of 1 to 100 characters"
}

// loc names where a value sits. The dotted path is built only when an error
// needs it, so that valid requests pay nothing for it.
type loc struct {
	parent string // dotted path of the enclosing object: "event", or "" at the top level
	name   string // this value's key in parent; "" for parent itself
	idx    int    // element index when the value is an array element, else -1
}

// at is the location of the object whose path is base.
func at(base string) loc { return loc{parent: base, idx: -1} }

// path joins the location and field ("" for the location itself) into a path
// such as "event.targets[2].metadata.key".
func (l loc) path(field string) string {
	b := make([]byte, 0, len(l.parent)+len(l.name)+len(field)+8)
	b = append(b, l.parent...)
	if l.name != "" {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, l.name...)
	}
	if l.idx >= 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(l.idx), 10)
		b = append(b, ']')
	}
	if field != "" {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, field...)
	}
	return string(b)
}
