package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// testNow is the server clock of every test.
var testNow = time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)

// baseEvent returns a valid event as a map, to be mutated by a test case.
func baseEvent() map[string]any {
	return map[string]any{
		"action":      "user.signed_in",
		"occurred_at": "2026-11-25T18:43:09.709Z",
		"actor":       map[string]any{"id": "user_1", "type": "user"},
		"targets":     []any{map[string]any{"id": "team_1", "type": "team"}},
		"context":     map[string]any{"location": "203.0.113.7"},
	}
}

// body returns a request body with the base event changed by mut.
func body(mut func(ev map[string]any)) string {
	ev := baseEvent()
	if mut != nil {
		mut(ev)
	}
	return mustJSON(map[string]any{"organization_id": "org_1", "event": ev})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// obj returns the object at key in m, for nested mutation.
func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// target returns target i of ev.
func target(ev map[string]any, i int) map[string]any {
	return ev["targets"].([]any)[i].(map[string]any)
}

// raw is a value whose JSON text is s exactly.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// asError returns err as *Error, failing the test if it is not one.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

// fieldCodes lists "field code" pairs, the part of the errors tests compare.
func fieldCodes(e *Error) []string {
	var out []string
	for _, fe := range e.Errors {
		out = append(out, fe.Field+" "+fe.Code)
	}
	return out
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }
