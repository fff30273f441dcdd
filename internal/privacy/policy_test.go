package privacy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
)

func TestParseRefusesBadDocuments(t *testing.T) {
	for _, tt := range []struct {
		name, doc, field string
	}{
		{"not JSON", `{`, ""},
		{"trailing data", `{"fields":{}} {}`, ""},
		{"unknown member", `{"feilds":{}}`, ""},
		{"unknown mode", `{"fields":{"actor.id":"encrypt"}}`, "fields.actor.id"},
		{"unknown path", `{"fields":{"actor.type":"hmac"}}`, "fields.actor.type"},
		{"bad metadata key", `{"fields":{"metadata.a b":"hmac"}}`, "fields.metadata.a b"},
		{"empty metadata key", `{"fields":{"metadata.":"hmac"}}`, "fields.metadata."},
		{"bad action", `{"actions":{"user\u0000x":{"actor.id":"hmac"}}}`, "actions.user\x00x"},
		{"bad path in an action", `{"actions":{"user.*":{"action":"redact"}}}`, "actions.user.*.action"},
		{"too big", `{"fields":{"metadata.a":"` + strings.Repeat("x", MaxDocumentBytes) + `"}}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Errors) == 0 {
				t.Fatalf("Parse(%s) = %v, want a ParseError", truncate(tt.doc, 60), err)
			}
			if pe.Errors[0].Field != tt.field {
				t.Errorf("first error names %q (%s), want %q", pe.Errors[0].Field, pe.Errors[0].Message, tt.field)
			}
		})
	}
}

// newDraft parses an event body as the API does.
func newDraft(t *testing.T, body string) *event.Draft {
	t.Helper()
	d, err := event.ParseEvent([]byte(body), time.Now(), event.Limits{})
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	return d
}

const sampleEvent = `{"action":"user.signed_in","occurred_at":"2024-01-02T03:04:05.678Z",
	"actor":{"id":"alice@example.com","type":"user","name":"Alice","metadata":{"phone":"+1 555 0100"}},
	"targets":[{"id":"doc_1","type":"document","name":"Salaries","metadata":{"owner":"bob@example.com"}}],
	"context":{"location":"203.0.113.9","user_agent":"Browser/1"},
	"metadata":{"email":"alice@example.com","age":735190421,"admin":true,"plan":"pro"}}`

func TestApply(t *testing.T) {
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h := kr.FieldHasher()
	for _, tt := range []struct {
		name, policy string
		secrets      []string // must not be in the record
		kept         []string // must still be in it
		hashed       []string
		redacted     []string
	}{
		{
			name:     "organization-wide",
			policy:   `{"fields":{"actor.id":"hmac","actor.name":"redact","metadata.email":"hmac","metadata.age":"redact","context.location":"redact","targets.metadata.owner":"hmac","actor.metadata.phone":"redact"}}`,
			secrets:  []string{"alice@example.com", "Alice", "735190421", "203.0.113.9", "bob@example.com", "555 0100"},
			kept:     []string{"doc_1", "Salaries", "pro", "Browser/1"},
			hashed:   []string{"actor.id", "targets[0].metadata.owner", "metadata.email"},
			redacted: []string{"actor.name", "actor.metadata.phone", "metadata.age", "context.location"},
		},
		{
			name:     "an action's section overrides",
			policy:   `{"fields":{"targets.name":"hmac"},"actions":{"user.*":{"targets.name":"redact","context.user_agent":"redact"},"billing.paid":{"actor.id":"hmac"}}}`,
			secrets:  []string{"Salaries", "Browser/1"},
			kept:     []string{"alice@example.com", "doc_1"},
			redacted: []string{"targets[0].name", "context.user_agent"},
		},
		{
			name:   "another action's section does not apply",
			policy: `{"actions":{"billing.paid":{"actor.id":"hmac"}}}`,
			kept:   []string{"alice@example.com", "Salaries", "203.0.113.9"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := Parse([]byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			d := newDraft(t, sampleEvent)
			changed := pol.Apply(d, "org_a", h)
			if changed != (len(tt.hashed)+len(tt.redacted) > 0) {
				t.Errorf("Apply reported %v", changed)
			}
			rec := string(d.Tail)
			for _, s := range tt.secrets {
				if strings.Contains(rec, s) {
					t.Errorf("record still holds %q: %s", s, rec)
				}
			}
			for _, s := range tt.kept {
				if !strings.Contains(rec, s) {
					t.Errorf("record lost %q: %s", s, rec)
				}
			}
			if !changed {
				if d.Privacy != nil || strings.Contains(rec, `"privacy"`) {
					t.Errorf("untouched draft marked: %s", rec)
				}
				return
			}
			if got := d.Privacy; strings.Join(got.Hashed, ",") != strings.Join(tt.hashed, ",") || strings.Join(got.Redacted, ",") != strings.Join(tt.redacted, ",") {
				t.Errorf("privacy %+v, want hashed %v redacted %v", got, tt.hashed, tt.redacted)
			}
			// The record reads back as the draft it was made from.
			full := event.AppendRecord(nil, event.Accepted{ID: "evt_1", OrganizationID: "org_a", Seq: 1, ReceivedAt: time.Now()}, d.Tail)
			r, err := event.ParseRecord(full)
			if err != nil {
				t.Fatalf("ParseRecord: %v\n%s", err, full)
			}
			if r.Privacy == nil || strings.Join(r.Privacy.Hashed, ",") != strings.Join(tt.hashed, ",") {
				t.Errorf("record's privacy %+v", r.Privacy)
			}
			if r.Actor.ID != d.Actor.ID {
				t.Errorf("record's actor %q, draft's %q", r.Actor.ID, d.Actor.ID)
			}
		})
	}
}

func TestHashesAreStableAndScoped(t *testing.T) {
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h := kr.FieldHasher()
	a, b := h.Hash("org_a", "alice@example.com"), h.Hash("org_a", "alice@example.com")
	if a != b || !strings.HasPrefix(a, keyring.FieldHashPrefix+kr.CheckValues()[0]+":") {
		t.Errorf("hashes %q and %q", a, b)
	}
	if h.Hash("org_b", "alice@example.com") == a {
		t.Error("two organizations' hashes of one value are equal")
	}
	// After a rotation the old key's hash is still found by HashAll.
	next, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := keyring.Parse(next.String() + "\n" + kr.String())
	if err != nil {
		t.Fatal(err)
	}
	all := rotated.FieldHasher().HashAll("org_a", "alice@example.com")
	if len(all) != 2 || !all[0].Primary || all[1].Hash != a {
		t.Errorf("HashAll after rotation = %+v, want the old hash %s second", all, a)
	}
}

// FuzzParse feeds policy documents to Parse: it must never panic, and what
// it accepts must compile again from its own JSON.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"fields":{"actor.id":"hmac"}}`,
		`{"fields":{"metadata.email":"hmac","context.location":"redact"},"actions":{"user.*":{"targets.name":"redact"}}}`,
		`{"fields":{"actor.type":"hmac"}}`,
		`{"actions":{"":{}}}`,
		`{"fields":null,"actions":{"a.*":{"metadata.x":"redact"}}}`,
		`[]`, `{"fields":{"metadata.":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := Parse(doc)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Errors) == 0 {
				t.Fatalf("error %v is not a ParseError with fields", err)
			}
			return
		}
		again, err := Parse(p.JSON())
		if err != nil {
			t.Fatalf("the accepted policy's JSON %s does not parse: %v", p.JSON(), err)
		}
		if string(again.JSON()) != string(p.JSON()) {
			t.Fatalf("JSON changed: %s then %s", p.JSON(), again.JSON())
		}
	})
}
