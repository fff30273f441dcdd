package event

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseCreateRejects checks status, field path and code for each rule.
func TestParseCreateRejects(t *testing.T) {
	long := func(n int) string { return repeat("a", n) }
	tests := []struct {
		name string
		body string
		want []string // "field code", in order; nil for 400
	}{
		// organization_id
		{"org missing", `{"event":` + mustJSON(baseEvent()) + `}`, []string{"organization_id required"}},
		{"org empty", strings.Replace(body(nil), `"org_1"`, `""`, 1), []string{"organization_id required"}},
		{"org null", strings.Replace(body(nil), `"org_1"`, `null`, 1), []string{"organization_id required"}},
		{"org number", strings.Replace(body(nil), `"org_1"`, `17`, 1), []string{"organization_id invalid_type"}},
		{"org object", strings.Replace(body(nil), `"org_1"`, `{"a":[1]}`, 1), []string{"organization_id invalid_type"}},
		{"org too long", strings.Replace(body(nil), `"org_1"`, `"`+long(101)+`"`, 1), []string{"organization_id too_long"}},
		{"org control", strings.Replace(body(nil), `"org_1"`, `"org\u0001"`, 1), []string{"organization_id invalid_format"}},
		{"org duplicate", strings.Replace(body(nil), `"org_1"`, `"org_1","organization_id":"org_2"`, 1), []string{"organization_id invalid_format"}},

		// event
		{"event missing", `{"organization_id":"org_1"}`, []string{"event required"}},
		{"event null", `{"organization_id":"org_1","event":null}`, []string{"event required"}},
		{"event string", `{"organization_id":"org_1","event":"x"}`, []string{"event invalid_type"}},
		{"event array", `{"organization_id":"org_1","event":[]}`, []string{"event invalid_type"}},
		{"empty object", `{}`, []string{"organization_id required", "event required"}},
		{"event empty", `{"organization_id":"org_1","event":{}}`, []string{
			"event.action required", "event.occurred_at required", "event.actor required", "event.targets required", "event.context required"}},

		// action
		{"action missing", body(func(ev map[string]any) { delete(ev, "action") }), []string{"event.action required"}},
		{"action empty", body(func(ev map[string]any) { ev["action"] = "" }), []string{"event.action required"}},
		{"action null", body(func(ev map[string]any) { ev["action"] = nil }), []string{"event.action required"}},
		{"action number", body(func(ev map[string]any) { ev["action"] = 5 }), []string{"event.action invalid_type"}},
		{"action bool", body(func(ev map[string]any) { ev["action"] = true }), []string{"event.action invalid_type"}},
		{"action array", body(func(ev map[string]any) { ev["action"] = []any{"a"} }), []string{"event.action invalid_type"}},
		{"action 101", body(func(ev map[string]any) { ev["action"] = long(101) }), []string{"event.action too_long"}},
		{"action 101 runes", body(func(ev map[string]any) { ev["action"] = repeat("é", 101) }), []string{"event.action too_long"}},
		{"action newline", body(func(ev map[string]any) { ev["action"] = "a\nb" }), []string{"event.action invalid_format"}},
		{"action NUL", body(func(ev map[string]any) { ev["action"] = "a\x00b" }), []string{"event.action invalid_format"}},
		{"action DEL", body(func(ev map[string]any) { ev["action"] = "a\x7fb" }), []string{"event.action invalid_format"}},
		{"action C1", body(func(ev map[string]any) { ev["action"] = "a\u0085b" }), []string{"event.action invalid_format"}},
		{"action C1 last", body(func(ev map[string]any) { ev["action"] = "a\u009f" }), []string{"event.action invalid_format"}},
		{"action invalid UTF-8", strings.Replace(body(nil), `"user.signed_in"`, "\"user.\xff\"", 1), []string{"event.action invalid_format"}},
		{"action truncated UTF-8", strings.Replace(body(nil), `"user.signed_in"`, "\"user.\xe2\x82\"", 1), []string{"event.action invalid_format"}},
		{"action overlong UTF-8", strings.Replace(body(nil), `"user.signed_in"`, "\"\xc0\xaf\"", 1), []string{"event.action invalid_format"}},
		{"action UTF-8 surrogate", strings.Replace(body(nil), `"user.signed_in"`, "\"\xed\xa0\x80\"", 1), []string{"event.action invalid_format"}},
		{"action lone high surrogate", strings.Replace(body(nil), `"user.signed_in"`, `"a\ud800"`, 1), []string{"event.action invalid_format"}},
		{"action lone low surrogate", strings.Replace(body(nil), `"user.signed_in"`, `"a\udc00b"`, 1), []string{"event.action invalid_format"}},
		{"action reversed surrogates", strings.Replace(body(nil), `"user.signed_in"`, `"\udc00\ud800"`, 1), []string{"event.action invalid_format"}},
		{"action invalid UTF-8 with escape", strings.Replace(body(nil), `"user.signed_in"`, "\"\\n\xff\"", 1), []string{"event.action invalid_format"}},
		{"action duplicate", strings.Replace(body(nil), `"action":"user.signed_in"`, `"action":"a","action":"b"`, 1), []string{"event.action invalid_format"}},
		{"action duplicate escaped", strings.Replace(body(nil), `"action":"user.signed_in"`, `"action":"a","\u0061ction":"b"`, 1), []string{"event.action invalid_format"}},
		{"action duplicate null", strings.Replace(body(nil), `"action":"user.signed_in"`, `"action":"a","action":null`, 1), []string{"event.action invalid_format"}},

		// occurred_at
		{"occurred_at missing", body(func(ev map[string]any) { delete(ev, "occurred_at") }), []string{"event.occurred_at required"}},
		{"occurred_at empty", body(func(ev map[string]any) { ev["occurred_at"] = "" }), []string{"event.occurred_at required"}},
		{"occurred_at null", body(func(ev map[string]any) { ev["occurred_at"] = nil }), []string{"event.occurred_at required"}},
		{"occurred_at number", body(func(ev map[string]any) { ev["occurred_at"] = 1764096189 }), []string{"event.occurred_at invalid_type"}},
		{"occurred_at words", body(func(ev map[string]any) { ev["occurred_at"] = "yesterday" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at no offset", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at no offset frac", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09.709" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at date only", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at space", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25 18:43:09Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at Feb 30", body(func(ev map[string]any) { ev["occurred_at"] = "2026-02-30T18:43:09Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at Feb 29 non-leap", body(func(ev map[string]any) { ev["occurred_at"] = "2026-02-29T00:00:00Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at month 13", body(func(ev map[string]any) { ev["occurred_at"] = "2026-13-01T00:00:00Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at hour 24", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T24:00:00Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at leap second", body(func(ev map[string]any) { ev["occurred_at"] = "2026-06-30T23:59:60Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at empty fraction", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09.Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at offset no colon", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09+0100" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at offset 24h", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09+24:00" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at trailing", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09Zx" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at signed year", body(func(ev map[string]any) { ev["occurred_at"] = "+2026-11-25T18:43:09Z" }), []string{"event.occurred_at invalid_format"}},
		{"occurred_at too far ahead", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-26T19:00:00.001Z" }), []string{"event.occurred_at out_of_range"}},
		{"occurred_at far ahead by offset", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-26T18:00:00.001-01:00" }), []string{"event.occurred_at out_of_range"}},
		{"occurred_at before 1970", body(func(ev map[string]any) { ev["occurred_at"] = "1969-12-31T23:59:59.999Z" }), []string{"event.occurred_at out_of_range"}},
		{"occurred_at before 1970 by offset", body(func(ev map[string]any) { ev["occurred_at"] = "1970-01-01T00:30:00+01:00" }), []string{"event.occurred_at out_of_range"}},
		{"occurred_at year 0", body(func(ev map[string]any) { ev["occurred_at"] = "0000-01-01T00:00:00Z" }), []string{"event.occurred_at out_of_range"}},

		// version
		{"version 0", body(func(ev map[string]any) { ev["version"] = 0 }), []string{"event.version out_of_range"}},
		{"version -1", body(func(ev map[string]any) { ev["version"] = -1 }), []string{"event.version out_of_range"}},
		{"version -0", body(func(ev map[string]any) { ev["version"] = raw("-0") }), []string{"event.version out_of_range"}},
		{"version fraction", body(func(ev map[string]any) { ev["version"] = raw("1.0") }), []string{"event.version invalid_type"}},
		{"version exponent", body(func(ev map[string]any) { ev["version"] = raw("1e3") }), []string{"event.version invalid_type"}},
		{"version string", body(func(ev map[string]any) { ev["version"] = "1" }), []string{"event.version invalid_type"}},
		{"version overflow", body(func(ev map[string]any) { ev["version"] = raw("9223372036854775808") }), []string{"event.version out_of_range"}},

		// actor
		{"actor missing", body(func(ev map[string]any) { delete(ev, "actor") }), []string{"event.actor required"}},
		{"actor null", body(func(ev map[string]any) { ev["actor"] = nil }), []string{"event.actor required"}},
		{"actor string", body(func(ev map[string]any) { ev["actor"] = "user_1" }), []string{"event.actor invalid_type"}},
		{"actor array", body(func(ev map[string]any) { ev["actor"] = []any{} }), []string{"event.actor invalid_type"}},
		{"actor empty", body(func(ev map[string]any) { ev["actor"] = map[string]any{} }), []string{"event.actor.id required", "event.actor.type required"}},
		{"actor id empty", body(func(ev map[string]any) { obj(ev, "actor")["id"] = "" }), []string{"event.actor.id required"}},
		{"actor id null", body(func(ev map[string]any) { obj(ev, "actor")["id"] = nil }), []string{"event.actor.id required"}},
		{"actor id number", body(func(ev map[string]any) { obj(ev, "actor")["id"] = 5 }), []string{"event.actor.id invalid_type"}},
		{"actor id 1001", body(func(ev map[string]any) { obj(ev, "actor")["id"] = long(1001) }), []string{"event.actor.id too_long"}},
		{"actor type control", body(func(ev map[string]any) { obj(ev, "actor")["type"] = "us\ter" }), []string{"event.actor.type invalid_format"}},
		{"actor id NUL", body(func(ev map[string]any) { obj(ev, "actor")["id"] = "a\x00b" }), []string{"event.actor.id invalid_format"}},
		{"actor name NUL", body(func(ev map[string]any) { obj(ev, "actor")["name"] = "\x00" }), []string{"event.actor.name invalid_format"}},
		{"actor id ESC", body(func(ev map[string]any) { obj(ev, "actor")["id"] = "u\x1b[2J" }), []string{"event.actor.id invalid_format"}},
		{"actor id CR", body(func(ev map[string]any) { obj(ev, "actor")["id"] = "u\r" }), []string{"event.actor.id invalid_format"}},
		{"actor id DEL", body(func(ev map[string]any) { obj(ev, "actor")["id"] = "u\x7f" }), []string{"event.actor.id invalid_format"}},
		{"actor name LF", body(func(ev map[string]any) { obj(ev, "actor")["name"] = "Jon\nSmith" }), []string{"event.actor.name invalid_format"}},
		{"actor name BEL", body(func(ev map[string]any) { obj(ev, "actor")["name"] = "Jon\a" }), []string{"event.actor.name invalid_format"}},
		{"actor type ESC", body(func(ev map[string]any) { obj(ev, "actor")["type"] = "\x1b" }), []string{"event.actor.type invalid_format"}},
		{"action ESC", body(func(ev map[string]any) { ev["action"] = "user.\x1b[8m" }), []string{"event.action invalid_format"}},
		{"action DEL", body(func(ev map[string]any) { ev["action"] = "user.\x7f" }), []string{"event.action invalid_format"}},
		{"action RLO", body(func(ev map[string]any) { ev["action"] = "user.\u202edeteled" }), []string{"event.action invalid_format"}},
		{"action LRE", body(func(ev map[string]any) { ev["action"] = "\u202auser.deleted" }), []string{"event.action invalid_format"}},
		{"action isolate", body(func(ev map[string]any) { ev["action"] = "user.\u2067x\u2069" }), []string{"event.action invalid_format"}},
		{"action LRM", body(func(ev map[string]any) { ev["action"] = "user.deleted\u200e" }), []string{"event.action invalid_format"}},
		{"action ALM", body(func(ev map[string]any) { ev["action"] = "user.\u061c" }), []string{"event.action invalid_format"}},
		{"action zero-width space", body(func(ev map[string]any) { ev["action"] = "user.del\u200beted" }), []string{"event.action invalid_format"}},
		{"action ZWJ", body(func(ev map[string]any) { ev["action"] = "user.\u200d" }), []string{"event.action invalid_format"}},
		{"action word joiner", body(func(ev map[string]any) { ev["action"] = "user.\u2060" }), []string{"event.action invalid_format"}},
		{"action BOM", body(func(ev map[string]any) { ev["action"] = "\ufeffuser.deleted" }), []string{"event.action invalid_format"}},
		{"metadata infinite", strings.Replace(body(nil), `"action":`, `"metadata":{"n":1e999},"action":`, 1), []string{"event.metadata.n out_of_range"}},
		{"metadata -infinite", strings.Replace(body(nil), `"action":`, `"metadata":{"n":-1.8e308},"action":`, 1), []string{"event.metadata.n out_of_range"}},
		{"actor metadata infinite", body(func(ev map[string]any) { obj(ev, "actor")["metadata"] = json.RawMessage(`{"n":123456789e305}`) }), []string{"event.actor.metadata.n out_of_range"}},
		{"actor type 1001", body(func(ev map[string]any) { obj(ev, "actor")["type"] = long(1001) }), []string{"event.actor.type too_long"}},
		{"actor name number", body(func(ev map[string]any) { obj(ev, "actor")["name"] = 5 }), []string{"event.actor.name invalid_type"}},
		{"actor name 1001", body(func(ev map[string]any) { obj(ev, "actor")["name"] = long(1001) }), []string{"event.actor.name too_long"}},
		{"actor metadata array", body(func(ev map[string]any) { obj(ev, "actor")["metadata"] = []any{1} }), []string{"event.actor.metadata invalid_type"}},
		{"actor metadata string", body(func(ev map[string]any) { obj(ev, "actor")["metadata"] = "x" }), []string{"event.actor.metadata invalid_type"}},
		{"actor metadata nested", body(func(ev map[string]any) {
			obj(ev, "actor")["metadata"] = map[string]any{"a": map[string]any{"b": 1}}
		}), []string{"event.actor.metadata.a invalid_type"}},
		{"actor duplicate id", strings.Replace(body(nil), `"id":"user_1"`, `"id":"user_1","id":"user_2"`, 1), []string{"event.actor.id invalid_format"}},
		{"actor duplicate", strings.Replace(body(nil), `"action":`, `"actor":{"id":"x","type":"y"},"action":`, 1), []string{"event.actor invalid_format"}},

		// targets
		{"targets missing", body(func(ev map[string]any) { delete(ev, "targets") }), []string{"event.targets required"}},
		{"targets null", body(func(ev map[string]any) { ev["targets"] = nil }), []string{"event.targets required"}},
		{"targets object", body(func(ev map[string]any) { ev["targets"] = map[string]any{} }), []string{"event.targets invalid_type"}},
		{"targets element number", body(func(ev map[string]any) { ev["targets"] = []any{5} }), []string{"event.targets[0] invalid_type"}},
		{"targets element null", body(func(ev map[string]any) { ev["targets"] = []any{nil} }), []string{"event.targets[0] invalid_type"}},
		{"target missing type", body(func(ev map[string]any) {
			ev["targets"] = []any{map[string]any{"id": "a", "type": "t"}, map[string]any{"id": "b", "type": "t"}, map[string]any{"id": "c"}}
		}), []string{"event.targets[2].type required"}},
		{"target id number", body(func(ev map[string]any) {
			ev["targets"] = []any{map[string]any{"id": "a", "type": "t"}, map[string]any{"id": 2, "type": "t"}}
		}), []string{"event.targets[1].id invalid_type"}},
		{"target name too long", body(func(ev map[string]any) { target(ev, 0)["name"] = long(1001) }), []string{"event.targets[0].name too_long"}},
		{"target type control", body(func(ev map[string]any) { target(ev, 0)["type"] = "\u0085" }), []string{"event.targets[0].type invalid_format"}},
		{"target id NUL", body(func(ev map[string]any) { target(ev, 0)["id"] = "t\x00" }), []string{"event.targets[0].id invalid_format"}},
		{"target name NUL", body(func(ev map[string]any) { target(ev, 0)["name"] = "t\x00" }), []string{"event.targets[0].name invalid_format"}},
		{"target id ESC", body(func(ev map[string]any) { target(ev, 0)["id"] = "t\x1b]0;x\a" }), []string{"event.targets[0].id invalid_format"}},
		{"target name CR", body(func(ev map[string]any) { target(ev, 0)["name"] = "t\rx" }), []string{"event.targets[0].name invalid_format"}},
		{"target type LF", body(func(ev map[string]any) { target(ev, 0)["type"] = "t\n" }), []string{"event.targets[0].type invalid_format"}},
		{"target metadata infinite", body(func(ev map[string]any) { target(ev, 0)["metadata"] = json.RawMessage(`{"n":1E400}`) }), []string{"event.targets[0].metadata.n out_of_range"}},
		{"target metadata key", body(func(ev map[string]any) { target(ev, 0)["metadata"] = map[string]any{"bad key": "v"} }), []string{`event.targets[0].metadata."bad key" invalid_format`}},
		{"target metadata null value", body(func(ev map[string]any) { target(ev, 0)["metadata"] = map[string]any{"k": nil} }), []string{"event.targets[0].metadata.k invalid_type"}},
		{"101 targets", body(func(ev map[string]any) {
			ts := make([]any, 101)
			for i := range ts {
				ts[i] = map[string]any{"id": fmt.Sprint(i), "type": "t"}
			}
			ev["targets"] = ts
		}), []string{"event.targets too_many"}},

		// context
		{"context missing", body(func(ev map[string]any) { delete(ev, "context") }), []string{"event.context required"}},
		{"context null", body(func(ev map[string]any) { ev["context"] = nil }), []string{"event.context required"}},
		{"context string", body(func(ev map[string]any) { ev["context"] = "x" }), []string{"event.context invalid_type"}},
		{"context empty", body(func(ev map[string]any) { ev["context"] = map[string]any{} }), []string{"event.context.location required"}},
		{"location empty", body(func(ev map[string]any) { obj(ev, "context")["location"] = "" }), []string{"event.context.location required"}},
		{"location number", body(func(ev map[string]any) { obj(ev, "context")["location"] = 1 }), []string{"event.context.location invalid_type"}},
		{"location 1001", body(func(ev map[string]any) { obj(ev, "context")["location"] = long(1001) }), []string{"event.context.location too_long"}},
		{"user_agent number", body(func(ev map[string]any) { obj(ev, "context")["user_agent"] = 1 }), []string{"event.context.user_agent invalid_type"}},
		{"user_agent 2001", body(func(ev map[string]any) { obj(ev, "context")["user_agent"] = long(2001) }), []string{"event.context.user_agent too_long"}},
		{"user_agent invalid UTF-8", strings.Replace(body(nil), `"location":"203.0.113.7"`, "\"location\":\"x\",\"user_agent\":\"\xfe\"", 1), []string{"event.context.user_agent invalid_format"}},

		// metadata
		{"metadata string", body(func(ev map[string]any) { ev["metadata"] = "x" }), []string{"event.metadata invalid_type"}},
		{"metadata array", body(func(ev map[string]any) { ev["metadata"] = []any{} }), []string{"event.metadata invalid_type"}},
		{"metadata nested object", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a": map[string]any{}} }), []string{"event.metadata.a invalid_type"}},
		{"metadata nested array", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a": []any{"x"}} }), []string{"event.metadata.a invalid_type"}},
		{"metadata null value", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a": nil} }), []string{"event.metadata.a invalid_type"}},
		{"metadata key dot", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a.b": 1} }), []string{`event.metadata."a.b" invalid_format`}},
		{"metadata key empty", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"": 1} }), []string{`event.metadata."" invalid_format`}},
		{"metadata key 41", body(func(ev map[string]any) { ev["metadata"] = map[string]any{long(41): 1} }), []string{"event.metadata." + long(41) + " invalid_format"}},
		{"metadata key newline", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a\nb": 1} }), []string{`event.metadata."a\nb" invalid_format`}},
		{"metadata key 100", body(func(ev map[string]any) { ev["metadata"] = map[string]any{long(100): 1} }), []string{`event.metadata."` + long(64) + `"… invalid_format`}},
		{"metadata key unicode", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"clé": 1} }), []string{`event.metadata."clé" invalid_format`}},
		{"metadata value 501", body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a": repeat("é", 501)} }), []string{"event.metadata.a too_long"}},
		{"metadata value invalid UTF-8", strings.Replace(body(nil), `"action":`, "\"metadata\":{\"a\":\"\xff\"},\"action\":", 1), []string{"event.metadata.a invalid_format"}},
		{"metadata duplicate key", strings.Replace(body(nil), `"action":`, `"metadata":{"a":1,"b":2,"a":1},"action":`, 1), []string{"event.metadata.a invalid_format"}},
		{"metadata duplicate key bad value", strings.Replace(body(nil), `"action":`, `"metadata":{"a":null,"a":1},"action":`, 1), []string{"event.metadata.a invalid_type", "event.metadata.a invalid_format"}},
		{"metadata 51 keys", body(func(ev map[string]any) { ev["metadata"] = manyKeys(51) }), []string{"event.metadata too_many"}},
		{"metadata duplicate", strings.Replace(body(nil), `"action":`, `"metadata":{},"metadata":{},"action":`, 1), []string{"event.metadata invalid_format"}},

		// unknown fields: ignored, but still one value per key
		{"unknown duplicate", strings.Replace(body(nil), `"action":`, `"foo":1,"foo":2,"action":`, 1), []string{"event.foo invalid_format"}},
		{"unknown duplicate at top", `{"x":1,"x":2,` + body(nil)[1:], []string{"x invalid_format"}},
		{"empty key duplicate", `{"":1,"":2,` + body(nil)[1:], []string{`"" invalid_format`}},

		// several at once, in document order
		{"several", `{"organization_id":"","event":{"occurred_at":"soon","actor":{"id":5,"type":"user"},` +
			`"targets":[{"id":"a","type":"t"},{"id":"b"}],"context":{"location":"x"},"metadata":{"k":[]}}}`,
			[]string{"organization_id required", "event.occurred_at invalid_format", "event.actor.id invalid_type",
				"event.targets[1].type required", "event.metadata.k invalid_type", "event.action required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d, err := ParseCreate([]byte(tc.body), testNow, DefaultLimits())
			if err == nil {
				t.Fatalf("accepted %s: %s", tc.body, d.Tail)
			}
			e := asError(t, err)
			if e.Status != 422 || e.Code != "" || e.Message != "Validation failed." {
				t.Fatalf("got status %d code %q message %q, want 422 \"\" \"Validation failed.\"", e.Status, e.Code, e.Message)
			}
			if got := fieldCodes(e); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors\n got %q\nwant %q", got, tc.want)
			}
			for _, fe := range e.Errors {
				if fe.Message == "" {
					t.Errorf("%s %s has no message", fe.Field, fe.Code)
				}
			}
		})
	}
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprintf("k%05d", i)] = i
	}
	return m
}

// TestParseCreateInvalidJSON checks that what is not one JSON object is a 400
// whose message says what and where.
func TestParseCreateInvalidJSON(t *testing.T) {
	deep := strings.Repeat("[", 100000)
	deepValid := `{"organization_id":"org_1","x":` + strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000) + `}`
	tests := []struct {
		name, body, msg string
	}{
		{"empty", "", "Request body is empty; expected a JSON object"},
		{"whitespace", " \t\r\n ", "Request body is empty; expected a JSON object"},
		{"array", `[{"organization_id":"org_1"}]`, "Request body must be a JSON object, not an array"},
		{"string", `"hello"`, "Request body must be a JSON object, not a string"},
		{"null", `null`, "Request body must be a JSON object, not null"},
		{"number", ` 17 `, "Request body must be a JSON object, not a number"},
		{"truncated", `{"organization_id":`, "Request body is not valid JSON: unexpected end of input at byte 19"},
		{"truncated string", `{"organization_id":"org`, "Request body is not valid JSON: unexpected end of input in the string starting at byte 19 at byte 23"},
		{"trailing data", `{"organization_id":"org_1"} x`, "Request body is not valid JSON: unexpected data after the top-level value ('x') at byte 28"},
		{"two objects", `{}{}`, "Request body is not valid JSON: unexpected data after the top-level value ('{') at byte 2"},
		{"trailing comma", `{"a":1,}`, "Request body is not valid JSON: invalid character '}' looking for an object key (a string) after ',' at byte 7"},
		{"array trailing comma", `{"a":[1,]}`, "Request body is not valid JSON: invalid character ']' looking for the beginning of a value at byte 8"},
		{"missing colon", `{"a" 1}`, "Request body is not valid JSON: invalid character '1' after an object key (expected ':') at byte 5"},
		{"missing comma", `{"a":1 "b":2}`, "Request body is not valid JSON: invalid character '\"' after an object value (expected ',' or '}') at byte 7"},
		{"single quotes", `{'a':1}`, "Request body is not valid JSON: invalid character '\\'' looking for an object key (a string) or '}' at byte 1"},
		{"bare word", `{"a":yes}`, "Request body is not valid JSON: invalid character 'y' looking for the beginning of a value at byte 5"},
		{"bad literal", `{"a":tru}`, "Request body is not valid JSON: invalid character '}' in literal true at byte 8"},
		{"NaN", `{"a":NaN}`, "Request body is not valid JSON: invalid character 'N' looking for the beginning of a value at byte 5"},
		{"leading zero", `{"a":01}`, "Request body is not valid JSON: number with a leading zero at byte 5"},
		{"plus sign", `{"a":+1}`, "Request body is not valid JSON: invalid character '+' looking for the beginning of a value at byte 5"},
		{"bare fraction", `{"a":1.}`, "Request body is not valid JSON: invalid character '}' in number (expected a digit) at byte 7"},
		{"bare exponent", `{"a":1e}`, "Request body is not valid JSON: invalid character '}' in number (expected a digit) at byte 7"},
		{"bare minus", `{"a":-}`, "Request body is not valid JSON: invalid character '}' in number (expected a digit) at byte 6"},
		{"bad escape", `{"a":"\x"}`, "Request body is not valid JSON: invalid escape sequence \\x in a string at byte 6"},
		{"bad unicode escape", `{"a":"\u12g4"}`, "Request body is not valid JSON: invalid character 'g' in \\u escape (expected a hex digit) at byte 10"},
		{"raw newline", "{\"a\":\"x\ny\"}", "Request body is not valid JSON: control character U+000A in a string (it must be escaped) at byte 7"},
		{"raw tab in key", "{\"a\tb\":1}", "Request body is not valid JSON: control character U+0009 in a string (it must be escaped) at byte 3"},
		{"binary", "\x00\x01", "Request body is not valid JSON: invalid character U+0000 looking for the beginning of a value at byte 0"},
		{"BOM", "\xef\xbb\xbf{}", "Request body is not valid JSON: invalid character '\\ufeff' (U+FEFF) looking for the beginning of a value at byte 0"},
		{"invalid byte", "\xff", "Request body is not valid JSON: invalid character byte 0xff looking for the beginning of a value at byte 0"},
		{"deep arrays", deep, "Request body is not valid JSON: nesting deeper than 1000 levels at byte 1000"},
		{"deep in unknown field", deepValid, "Request body is not valid JSON: nesting deeper than 1000 levels at byte 5031"},
		{"deep garbage in object", `{"x":` + deep, "Request body is not valid JSON: nesting deeper than 1000 levels at byte 1005"},
		{"syntax error after field errors", `{"organization_id":5,"event":{}`, "Request body is not valid JSON: unexpected end of input at byte 31"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseCreate([]byte(tc.body), testNow, DefaultLimits())
			if err == nil {
				t.Fatal("accepted")
			}
			e := asError(t, err)
			if e.Status != 400 || e.Code != CodeInvalidJSON || len(e.Errors) != 0 {
				t.Fatalf("got %d %q %v, want 400 invalid_json", e.Status, e.Code, e.Errors)
			}
			if e.Message != tc.msg {
				t.Fatalf("message\n got %s\nwant %s", e.Message, tc.msg)
			}
		})
	}
}

// TestParseCreateAccepts checks what valid input becomes.
func TestParseCreateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, d *Draft)
	}{
		{"minimal", body(nil), func(t *testing.T, d *Draft) {
			want := `"action":"user.signed_in","occurred_at":"2026-11-25T18:43:09.709Z","actor":{"id":"user_1","type":"user"},` +
				`"targets":[{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7"}`
			if string(d.Tail) != want {
				t.Fatalf("tail\n got %s\nwant %s", d.Tail, want)
			}
		}},
		{"no targets", body(func(ev map[string]any) { ev["targets"] = []any{} }), func(t *testing.T, d *Draft) {
			if len(d.Targets) != 0 || len(d.TargetsMetadata) != 0 || !strings.Contains(string(d.Tail), `"targets":[],`) {
				t.Fatalf("targets %v %v tail %s", d.Targets, d.TargetsMetadata, d.Tail)
			}
		}},
		{"version", body(func(ev map[string]any) { ev["version"] = 2 }), func(t *testing.T, d *Draft) {
			if d.Version != 2 || !strings.HasPrefix(string(d.Tail), `"action":"user.signed_in","version":2,"occurred_at"`) {
				t.Fatalf("version %d tail %s", d.Version, d.Tail)
			}
		}},
		{"version max", body(func(ev map[string]any) { ev["version"] = raw("9223372036854775807") }), func(t *testing.T, d *Draft) {
			if d.Version != 1<<63-1 {
				t.Fatalf("version %d", d.Version)
			}
		}},
		{"version null", body(func(ev map[string]any) { ev["version"] = nil }), func(t *testing.T, d *Draft) {
			if d.Version != 0 || strings.Contains(string(d.Tail), "version") {
				t.Fatalf("version %d tail %s", d.Version, d.Tail)
			}
		}},
		{"microseconds truncated", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09.709999Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.709Z")
		}},
		{"nanoseconds and more truncated", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09.999999999999Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.999Z")
		}},
		{"one fractional digit", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09.7Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.700Z")
		}},
		{"no fraction", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T18:43:09Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.000Z")
		}},
		{"offset to UTC", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25T23:13:09.5+04:30" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.500Z")
		}},
		{"negative offset over midnight", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-24T23:30:00-05:00" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T04:30:00.000Z")
		}},
		{"lowercase t and z", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-25t18:43:09z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-25T18:43:09.000Z")
		}},
		{"leap day", body(func(ev map[string]any) { ev["occurred_at"] = "2024-02-29T12:00:00Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2024-02-29T12:00:00.000Z")
		}},
		{"epoch", body(func(ev map[string]any) { ev["occurred_at"] = "1970-01-01T00:00:00Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "1970-01-01T00:00:00.000Z")
		}},
		{"exactly max future", body(func(ev map[string]any) { ev["occurred_at"] = "2026-11-26T19:00:00.000999Z" }), func(t *testing.T, d *Draft) {
			wantTime(t, d, "2026-11-26T19:00:00.000Z")
		}},
		{"numbers keep their text", body(func(ev map[string]any) {
			ev["metadata"] = map[string]any{"a": raw("1.50"), "b": raw("12345678901234567890"), "c": raw("1e3"), "d": raw("-0.0"), "e": raw("1E-7"), "f": raw("0")}
		}), func(t *testing.T, d *Draft) {
			want := Metadata{"a": json.Number("1.50"), "b": json.Number("12345678901234567890"), "c": json.Number("1e3"),
				"d": json.Number("-0.0"), "e": json.Number("1E-7"), "f": json.Number("0")}
			if !reflect.DeepEqual(d.Metadata, want) {
				t.Fatalf("metadata %#v", d.Metadata)
			}
			if !strings.HasSuffix(string(d.Tail), `"metadata":{"a":1.50,"b":12345678901234567890,"c":1e3,"d":-0.0,"e":1E-7,"f":0}`) {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"metadata kinds", body(func(ev map[string]any) {
			ev["metadata"] = map[string]any{"s": "x", "t": true, "f": false, "e": ""}
		}), func(t *testing.T, d *Draft) {
			want := Metadata{"s": "x", "t": true, "f": false, "e": ""}
			if !reflect.DeepEqual(d.Metadata, want) {
				t.Fatalf("metadata %#v", d.Metadata)
			}
		}},
		{"metadata keys sorted bytewise", strings.Replace(body(nil), `"action":`, `"metadata":{"b":1,"a":2,"B":3,"_":4,"-":5,"0":6},"action":`, 1), func(t *testing.T, d *Draft) {
			if !strings.HasSuffix(string(d.Tail), `"metadata":{"-":5,"0":6,"B":3,"_":4,"a":2,"b":1}`) {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"metadata limits exactly", body(func(ev map[string]any) {
			m := manyKeys(49)
			m[repeat("k", 40)] = repeat("é", 500)
			ev["metadata"] = m
		}), func(t *testing.T, d *Draft) {
			if len(d.Metadata) != 50 {
				t.Fatalf("%d keys", len(d.Metadata))
			}
		}},
		{"empty and null metadata omitted", body(func(ev map[string]any) {
			ev["metadata"] = map[string]any{}
			obj(ev, "actor")["metadata"] = nil
			target(ev, 0)["metadata"] = map[string]any{}
		}), func(t *testing.T, d *Draft) {
			if d.Metadata != nil || d.ActorMetadata != nil || d.TargetsMetadata[0] != nil || strings.Contains(string(d.Tail), "metadata") {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"optional nulls and empties absent", body(func(ev map[string]any) {
			obj(ev, "actor")["name"] = nil
			target(ev, 0)["name"] = ""
			obj(ev, "context")["user_agent"] = nil
		}), func(t *testing.T, d *Draft) {
			if strings.Contains(string(d.Tail), "name") || strings.Contains(string(d.Tail), "user_agent") {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"every field", body(func(ev map[string]any) {
			ev["version"] = 3
			a := obj(ev, "actor")
			a["name"], a["metadata"] = "Ada", map[string]any{"role": "admin"}
			ev["targets"] = []any{
				map[string]any{"id": "t1", "type": "team", "name": "Core"},
				map[string]any{"id": "t2", "type": "doc", "metadata": map[string]any{"size": 12}},
			}
			obj(ev, "context")["user_agent"] = "curl/8"
			ev["metadata"] = map[string]any{"reason": "x"}
		}), func(t *testing.T, d *Draft) {
			want := Draft{
				Action: "user.signed_in", Version: 3, OccurredAt: time.Date(2026, 11, 25, 18, 43, 9, 709e6, time.UTC),
				Actor:           Entity{ID: "user_1", Type: "user", Name: "Ada"},
				Targets:         []Entity{{ID: "t1", Type: "team", Name: "Core"}, {ID: "t2", Type: "doc"}},
				Location:        "203.0.113.7",
				UserAgent:       "curl/8",
				ActorMetadata:   Metadata{"role": "admin"},
				TargetsMetadata: []Metadata{nil, {"size": json.Number("12")}},
				Metadata:        Metadata{"reason": "x"},
				Tail:            d.Tail,
			}
			if !reflect.DeepEqual(*d, want) {
				t.Fatalf("got  %#v\nwant %#v", *d, want)
			}
		}},
		{"unknown fields ignored and not stored", strings.TrimSuffix(strings.Replace(body(nil), `"action":`,
			`"extra":{"deep":[1,{"x":null}],"s":"\u00e9\n"},"idempotency_key":"k","action":`, 1), "}") +
			`,"sdk":"node"}`, func(t *testing.T, d *Draft) {
			if strings.Contains(string(d.Tail), "extra") || strings.Contains(string(d.Tail), "idempotency") {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"unknown fields at every level", `{"organization_id":"org_1","x":[],"event":{"action":"a","occurred_at":"2026-11-25T18:43:09Z",` +
			`"actor":{"id":"u","type":"user","x":1},"targets":[{"id":"t","type":"team","x":{}}],` +
			`"context":{"location":"l","x":"y"},"x":null},"y":true}`, func(t *testing.T, d *Draft) {
			want := `"action":"a","occurred_at":"2026-11-25T18:43:09.000Z","actor":{"id":"u","type":"user"},` +
				`"targets":[{"id":"t","type":"team"}],"context":{"location":"l"}`
			if string(d.Tail) != want {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
		{"escaped keys and values", `{"organization_id":"org_1","event":{"\u0061ction":"a\/b\u00e9\ud83d\ude00","occurred_at":"2026-11-25T18:43:09Z",` +
			`"actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"l"}}}`, func(t *testing.T, d *Draft) {
			if d.Action != "a/bé😀" {
				t.Fatalf("action %q", d.Action)
			}
		}},
		{"whitespace everywhere", " \n{ \"organization_id\" : \"org_1\" ,\r\n\t\"event\" : { \"action\" : \"a\" , \"occurred_at\" : \"2026-11-25T18:43:09Z\" , " +
			"\"actor\" : { \"id\" : \"u\" , \"type\" : \"user\" } , \"targets\" : [ ] , \"context\" : { \"location\" : \"l\" } } } \n", func(t *testing.T, d *Draft) {
			if d.Action != "a" || len(d.Targets) != 0 {
				t.Fatalf("draft %+v", d)
			}
		}},
		{"100 targets", body(func(ev map[string]any) {
			ts := make([]any, 100)
			for i := range ts {
				ts[i] = map[string]any{"id": fmt.Sprint(i), "type": "t"}
			}
			ev["targets"] = ts
		}), func(t *testing.T, d *Draft) {
			if len(d.Targets) != 100 || len(d.TargetsMetadata) != 100 || d.Targets[99].ID != "99" {
				t.Fatalf("%d targets", len(d.Targets))
			}
		}},
		{"limits at their maximum", body(func(ev map[string]any) {
			ev["action"] = repeat("é", 100)
			obj(ev, "actor")["id"] = repeat("x", 1000)
			obj(ev, "actor")["name"] = repeat("ü", 1000)
			obj(ev, "context")["location"] = repeat("l", 1000)
			obj(ev, "context")["user_agent"] = repeat("u", 2000)
		}), func(t *testing.T, d *Draft) {
			if len([]rune(d.Action)) != 100 || len(d.UserAgent) != 2000 {
				t.Fatalf("draft %+v", d)
			}
		}},
		{"control and invisible characters kept in free text", body(func(ev map[string]any) {
			obj(ev, "context")["user_agent"] = "a\nb\x1b[2J"
			obj(ev, "context")["location"] = "l\u202e"
			ev["metadata"] = map[string]any{"m": "x\ty\u0085\u200b"}
		}), func(t *testing.T, d *Draft) {
			if !strings.Contains(string(d.Tail), `"user_agent":"a\nb\u001b[2J"`) || !strings.Contains(string(d.Tail), `"m":"x\ty`+"\u0085\u200b"+`"`) ||
				!strings.Contains(string(d.Tail), `"location":"l`+"\u202e"+`"`) {
				t.Fatalf("tail %s", d.Tail)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			org, d, err := ParseCreate([]byte(tc.body), testNow, DefaultLimits())
			if err != nil {
				t.Fatalf("rejected %s: %v", tc.body, err)
			}
			if org != "org_1" {
				t.Fatalf("organization %q", org)
			}
			if !json.Valid([]byte("{" + string(d.Tail) + "}")) {
				t.Fatalf("tail is not JSON: %s", d.Tail)
			}
			tc.check(t, d)
		})
	}
}

func wantTime(t *testing.T, d *Draft, want string) {
	t.Helper()
	if got := d.OccurredAt.Format(TimeLayout); got != want || d.OccurredAt.Location() != time.UTC {
		t.Fatalf("occurred_at %s (%v), want %s UTC", got, d.OccurredAt.Location(), want)
	}
	if !strings.Contains(string(d.Tail), `"occurred_at":"`+want+`"`) {
		t.Fatalf("tail %s", d.Tail)
	}
}

func TestLimits(t *testing.T) {
	many := body(func(ev map[string]any) {
		ev["targets"] = []any{map[string]any{"id": "a", "type": "t"}, map[string]any{"id": "b", "type": "t"}, map[string]any{"id": "c", "type": "t"}}
		ev["occurred_at"] = "2026-11-25T20:00:00Z" // one hour ahead of testNow
	})
	_, _, err := ParseCreate([]byte(many), testNow, Limits{MaxTargets: 2, MaxFuture: 30 * time.Minute})
	e := asError(t, err)
	want := []string{"event.occurred_at out_of_range", "event.targets too_many"}
	if got := fieldCodes(e); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	if e.Errors[0].Message != "must not be more than 30 minutes ahead of the server's clock" {
		t.Fatalf("message %q", e.Errors[0].Message)
	}
	// The zero Limits means the defaults.
	if _, _, err := ParseCreate([]byte(many), testNow, Limits{}); err != nil {
		t.Fatalf("zero limits: %v", err)
	}
}

// TestHugeInput checks that big hostile bodies give bounded answers.
func TestHugeInput(t *testing.T) {
	t.Run("10000 valid metadata keys", func(t *testing.T) {
		_, _, err := ParseCreate([]byte(body(func(ev map[string]any) { ev["metadata"] = manyKeys(10000) })), testNow, DefaultLimits())
		if got := fieldCodes(asError(t, err)); !reflect.DeepEqual(got, []string{"event.metadata too_many"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("10000 invalid metadata keys", func(t *testing.T) {
		m := map[string]any{}
		for i := range 10000 {
			m[fmt.Sprintf("bad key %d", i)] = []any{i}
		}
		_, _, err := ParseCreate([]byte(body(func(ev map[string]any) { ev["metadata"] = m })), testNow, DefaultLimits())
		e := asError(t, err)
		if e.Status != 422 || len(e.Errors) != MaxFieldErrors {
			t.Fatalf("status %d, %d errors", e.Status, len(e.Errors))
		}
	})
	t.Run("1 MiB of unknown keys", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"organization_id":"org_1","event":{`)
		for i := 0; b.Len() < 1<<20; i++ {
			fmt.Fprintf(&b, `"u%d":0,`, i)
		}
		b.WriteString(`"u9":1,` + mustJSON(baseEvent())[1:] + `}`)
		// Its cost, which must grow linearly, is BenchmarkParseUnknownKeys.
		_, _, err := ParseCreate([]byte(b.String()), testNow, DefaultLimits())
		if got := fieldCodes(asError(t, err)); !reflect.DeepEqual(got, []string{"event.u9 invalid_format"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("1 MiB metadata value", func(t *testing.T) {
		_, _, err := ParseCreate([]byte(body(func(ev map[string]any) { ev["metadata"] = map[string]any{"a": repeat("x", 1<<20)} })), testNow, DefaultLimits())
		if got := fieldCodes(asError(t, err)); !reflect.DeepEqual(got, []string{"event.metadata.a too_long"}) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("deep garbage inside metadata value", func(t *testing.T) {
		b := strings.Replace(body(nil), `"action":`, `"metadata":{"a":`+strings.Repeat("[", 999)+strings.Repeat("]", 999)+`},"action":`, 1)
		_, _, err := ParseCreate([]byte(b), testNow, DefaultLimits())
		if got := fieldCodes(asError(t, err)); !reflect.DeepEqual(got, []string{"event.metadata.a invalid_type"}) {
			t.Fatalf("got %q", got)
		}
	})
}

func TestParseEvent(t *testing.T) {
	ev := mustJSON(baseEvent())
	d, err := ParseEvent([]byte(ev), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	_, d2, _ := ParseCreate([]byte(body(nil)), testNow, DefaultLimits())
	if string(d.Tail) != string(d2.Tail) {
		t.Fatalf("tails differ:\n%s\n%s", d.Tail, d2.Tail)
	}

	for _, tc := range []struct {
		raw    string
		status int
		want   []string
	}{
		{`{"action":""}`, 422, []string{"event.action required", "event.occurred_at required", "event.actor required", "event.targets required", "event.context required"}},
		{`[]`, 422, []string{"event invalid_type"}},
		{`"x"`, 422, []string{"event invalid_type"}},
		{`null`, 422, []string{"event invalid_type"}},
		{`{`, 400, nil},
		{``, 400, nil},
		{`{} {}`, 400, nil},
		{`[} `, 400, nil},
	} {
		_, err := ParseEvent([]byte(tc.raw), testNow, DefaultLimits())
		e := asError(t, err)
		if e.Status != tc.status || !reflect.DeepEqual(fieldCodes(e), tc.want) {
			t.Errorf("%s: got %d %q, want %d %q", tc.raw, e.Status, fieldCodes(e), tc.status, tc.want)
		}
		if tc.status == 400 && !strings.HasPrefix(e.Message, "Event ") {
			t.Errorf("%s: message %q", tc.raw, e.Message)
		}
	}
}

func TestErrorRendering(t *testing.T) {
	_, _, err := ParseCreate([]byte(`{"organization_id":"org_1","event":{"action":5}}`), testNow, DefaultLimits())
	e := asError(t, err)
	b, _ := json.Marshal(e)
	want := `{"message":"Validation failed.","errors":[` +
		`{"field":"event.action","code":"invalid_type","message":"must be a string of 1 to 100 characters without control, bidirectional or zero-width characters, not a number"},` +
		`{"field":"event.occurred_at","code":"required","message":"must be an RFC 3339 timestamp with a time zone, such as 2026-11-25T18:43:09.709Z"},` +
		`{"field":"event.actor","code":"required","message":"must be an object with id and type"},` +
		`{"field":"event.targets","code":"required","message":"must be an array of targets, possibly empty"},` +
		`{"field":"event.context","code":"required","message":"must be an object with location"}]}`
	if string(b) != want {
		t.Fatalf("json\n got %s\nwant %s", b, want)
	}
	if s := e.Error(); strings.Contains(s, "\n") || !strings.HasPrefix(s, "Validation failed. event.action: invalid_type (must be") {
		t.Fatalf("Error() = %q", s)
	}

	_, _, err = ParseCreate([]byte(`{`), testNow, DefaultLimits())
	b, _ = json.Marshal(err)
	if want := `{"message":"Request body is not valid JSON: unexpected end of input at byte 1","code":"invalid_json"}`; string(b) != want {
		t.Fatalf("json %s", b)
	}
	if err.Error() != "Request body is not valid JSON: unexpected end of input at byte 1" {
		t.Fatalf("Error() = %q", err.Error())
	}
}

// TestParseCreateKeepsNothingOfTheBody checks that a draft holds no byte of
// the body it was parsed from: the API reads every single event into a
// reused buffer, so the next request would overwrite what a draft shared.
func TestParseCreateKeepsNothingOfTheBody(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"plain", body(nil)},
		{"escapes and metadata", body(func(ev map[string]any) {
			ev["metadata"] = map[string]any{"note": "line\nbreak \u00e9 \"quoted\"", "n": 3, "ok": true}
			obj(ev, "actor")["name"] = "J\u00f6n \\ Smith"
			obj(ev, "actor")["metadata"] = map[string]any{"role": "admin"}
			target(ev, 0)["metadata"] = map[string]any{"size": 1024}
			obj(ev, "context")["user_agent"] = "Mozilla/5.0"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, want, err := ParseCreate([]byte(tt.body), testNow, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			buf := []byte(tt.body)
			org, got, err := ParseCreate(buf, testNow, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			for i := range buf {
				buf[i] = 'x'
			}
			if org != "org_1" {
				t.Errorf("organization_id = %q after the body was overwritten", org)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the draft changed when its body was overwritten:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
