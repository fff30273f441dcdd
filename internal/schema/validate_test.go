package schema

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/testclock"
)

var testNow = testclock.Must()

func mustAction(t testing.TB, body string) *Definition {
	t.Helper()
	d, errs := ParseAction([]byte(body))
	if errs != nil {
		t.Fatalf("ParseAction(%s): %+v", body, errs)
	}
	return d
}

func mustActor(t testing.TB, body string) *Definition {
	t.Helper()
	d, errs := ParseActor([]byte(body))
	if errs != nil {
		t.Fatalf("ParseActor(%s): %+v", body, errs)
	}
	return d
}

// draftOf builds a valid event with the given actor metadata, targets
// (type → metadata JSON, "" for none) and event metadata (JSON, "" for none).
func draftOf(t testing.TB, actorMeta string, targets [][2]string, meta string) *event.Draft {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"action":"invoice.paid","occurred_at":"` + testclock.Format(testNow.Add(-16*time.Minute-50291*time.Millisecond)) + `","actor":{"id":"u1","type":"user"`)
	if actorMeta != "" {
		b.WriteString(`,"metadata":` + actorMeta)
	}
	b.WriteString(`},"targets":[`)
	for i, tg := range targets {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"t%d","type":%q`, i, tg[0])
		if tg[1] != "" {
			b.WriteString(`,"metadata":` + tg[1])
		}
		b.WriteString("}")
	}
	b.WriteString(`],"context":{"location":"203.0.113.7"}`)
	if meta != "" {
		b.WriteString(`,"metadata":` + meta)
	}
	b.WriteString("}")
	d, err := event.ParseEvent([]byte(b.String()), testNow, event.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", b.String(), err)
	}
	return d
}

const invoiceSchema = `{
	"actor": {"metadata": {"properties": {"role": {"type": "string"}}}},
	"targets": [
		{"type": "invoice", "metadata": {"properties": {"cost": {"type": "number"}, "paid": {"type": "boolean"}}}},
		{"type": "user"}
	],
	"metadata": {"properties": {"transactionId": {"type": "string"}}}
}`

const actorSchema = `{"metadata": {"properties": {"email": {"type": "string"}, "role": {"type": "string"}}}}`

func TestValidate(t *testing.T) {
	okActor := `{"role":"admin","email":"a@example.com"}`
	okInvoice := [2]string{"invoice", `{"cost":12.50,"paid":true}`}
	for _, tc := range []struct {
		name          string
		action, actor string // schema bodies; "" for none
		draft         func(t testing.TB) *event.Draft
		want          []string // "field code"
	}{
		{"conforms", invoiceSchema, actorSchema, func(t testing.TB) *event.Draft {
			return draftOf(t, okActor, [][2]string{okInvoice, {"user", ""}}, `{"transactionId":"tx_1","extra":1}`)
		}, nil},
		{"extra metadata keys are allowed", invoiceSchema, "", func(t testing.TB) *event.Draft {
			return draftOf(t, `{"role":"a","x":"y"}`, [][2]string{{"invoice", `{"cost":1,"paid":false,"note":"n"}`}}, `{"transactionId":"tx","b":true}`)
		}, nil},
		{"no targets at all is fine", invoiceSchema, "", func(t testing.TB) *event.Draft {
			return draftOf(t, `{"role":"a"}`, nil, `{"transactionId":"tx"}`)
		}, nil},
		{"undeclared target type", invoiceSchema, "", func(t testing.TB) *event.Draft {
			return draftOf(t, `{"role":"a"}`, [][2]string{okInvoice, {"team", ""}}, `{"transactionId":"tx"}`)
		}, []string{"event.targets[1].type invalid_value"}},
		{"schema without target types", `{"targets":[]}`, "", func(t testing.TB) *event.Draft {
			return draftOf(t, "", [][2]string{{"team", ""}}, "")
		}, []string{"event.targets[0].type invalid_value"}},
		{"missing keys everywhere", invoiceSchema, "", func(t testing.TB) *event.Draft {
			return draftOf(t, "", [][2]string{{"invoice", `{"paid":true}`}}, "")
		}, []string{"event.actor.metadata.role required", "event.metadata.transactionId required", "event.targets[0].metadata.cost required"}},
		{"wrong types", invoiceSchema, "", func(t testing.TB) *event.Draft {
			return draftOf(t, `{"role":7}`, [][2]string{{"invoice", `{"cost":"12","paid":"yes"}`}}, `{"transactionId":false}`)
		}, []string{"event.actor.metadata.role invalid_type", "event.metadata.transactionId invalid_type",
			"event.targets[0].metadata.cost invalid_type", "event.targets[0].metadata.paid invalid_type"}},
		{"actor schema on top of the action's", invoiceSchema, actorSchema, func(t testing.TB) *event.Draft {
			return draftOf(t, `{"role":"a"}`, [][2]string{okInvoice}, `{"transactionId":"tx"}`)
		}, []string{"event.actor.metadata.email required"}},
		{"actor schema alone", "", actorSchema, func(t testing.TB) *event.Draft {
			return draftOf(t, `{"email":1}`, [][2]string{{"anything", ""}}, "")
		}, []string{"event.actor.metadata.email invalid_type", "event.actor.metadata.role required"}},
		{"no event metadata in the schema: not checked", `{"targets":[{"type":"user"}]}`, "", func(t testing.TB) *event.Draft {
			return draftOf(t, "", [][2]string{{"user", `{"x":1}`}}, `{"any":"thing"}`)
		}, nil},
		{"numbers as sent", `{"targets":[],"metadata":{"properties":{"n":{"type":"number"}}}}`, "", func(t testing.TB) *event.Draft {
			return draftOf(t, "", nil, `{"n":1.7976931348623157e308}`)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a, p *Definition
			if tc.action != "" {
				a = mustAction(t, tc.action)
			}
			if tc.actor != "" {
				p = mustActor(t, tc.actor)
			}
			v, err := Compile(a, p)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			errs := v.Validate(tc.draft(t))
			var got []string
			for _, e := range errs {
				if e.Message == "" {
					t.Errorf("%s %s has no message", e.Field, e.Code)
				}
				got = append(got, e.Field+" "+e.Code)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Validate =\n%s\nwant\n%s\n(%+v)", strings.Join(got, "\n"), strings.Join(tc.want, "\n"), errs)
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	v, err := Compile(mustAction(t, invoiceSchema), nil)
	if err != nil {
		t.Fatal(err)
	}
	errs := v.Validate(draftOf(t, `{"role":"a"}`, [][2]string{{"team", ""}}, ""))
	want := map[string]string{
		"event.metadata.transactionId": "is required by the schema (a string)",
		"event.targets[0].type":        `target type "team" is not declared by the schema; declared: invoice, user`,
	}
	if len(errs) != len(want) {
		t.Fatalf("Validate = %+v", errs)
	}
	for _, e := range errs {
		if want[e.Field] != e.Message {
			t.Errorf("%s: message %q, want %q", e.Field, e.Message, want[e.Field])
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	v, err := Compile(mustAction(b, invoiceSchema), mustActor(b, actorSchema))
	if err != nil {
		b.Fatal(err)
	}
	d := draftOf(b, `{"role":"admin","email":"a@example.com"}`, [][2]string{{"invoice", `{"cost":1,"paid":true}`}, {"user", ""}}, `{"transactionId":"tx"}`)
	b.ReportAllocs()
	for b.Loop() {
		if errs := v.Validate(d); errs != nil {
			b.Fatal(errs)
		}
	}
}
