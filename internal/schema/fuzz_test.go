package schema

import (
	"bytes"
	"testing"

	"github.com/trailaudit/trail/internal/event"
)

// FuzzParseAction feeds arbitrary bodies to the schema parser (outside
// input: POST /audit_logs/actions/{action}/schemas). It must never panic;
// every refusal names a field, a code and what to fix; an accepted schema
// encodes to a body that parses back to the same encoding and compiles
// into a validator that checks an event without panicking.
func FuzzParseAction(f *testing.F) {
	for _, s := range []string{
		`{"targets":[{"type":"user"}]}`,
		`{"actor":{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}},"targets":[{"type":"invoice","metadata":{"type":"object","properties":{"cost":{"type":"number"}}}}],"metadata":{"type":"object","properties":{"tx":{"type":"boolean"}}}}`,
		`{"targets":[]}`, `{}`, `[]`, `null`, `{"targets":[{"type":""},{"type":"a"},{"type":"a"}]}`,
	} {
		f.Add([]byte(s))
	}
	d := draftOf(f, `{"role":"r"}`, [][2]string{{"invoice", `{"cost":1}`}, {"user", ""}}, `{"tx":true}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		def, errs := ParseAction(body)
		if errs != nil {
			if def != nil {
				t.Fatalf("errors and a definition")
			}
			if len(errs) > event.MaxFieldErrors {
				t.Fatalf("%d errors", len(errs))
			}
			for _, e := range errs {
				if e.Field == "" || e.Code == "" || e.Message == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		enc := def.Encode()
		back, errs := ParseAction(enc)
		if errs != nil {
			t.Fatalf("encoding %s does not parse back: %+v", enc, errs)
		}
		if again := back.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, again)
		}
		v, err := Compile(def, nil)
		if err != nil {
			t.Fatalf("Compile(%s): %v", enc, err)
		}
		for _, e := range v.Validate(d) {
			if e.Field == "" || e.Code == "" || e.Message == "" {
				t.Fatalf("incomplete validation error %+v", e)
			}
		}
	})
}

// FuzzParseActor does the same for POST /v1/actor_schema bodies.
func FuzzParseActor(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"type":"object","properties":{"email":{"type":"string"},"role":{"type":"string"}}}}`,
		`{"metadata":{}}`, `{}`, `{"metadata":{"properties":{"a b":{"type":"x"}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		def, errs := ParseActor(body)
		if errs != nil {
			for _, e := range errs {
				if e.Field == "" || e.Code == "" || e.Message == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		enc := def.EncodeActor()
		back, err := DecodeActor(enc)
		if err != nil || !bytes.Equal(back.EncodeActor(), enc) {
			t.Fatalf("encoding %s does not parse back the same: %v", enc, err)
		}
		if _, err := Compile(nil, def); err != nil {
			t.Fatalf("Compile: %v", err)
		}
	})
}
