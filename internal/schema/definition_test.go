package schema

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.stored from the current encoder")

// TestGolden pins the stored (and answered) form of schemas: each
// testdata/golden/NAME.json request body must encode to exactly
// NAME.stored (plus a newline). Stored bodies are read back by every later
// version of Trail, so a change here needs a migration.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if strings.HasPrefix(name, "actor-") {
				d, errs := ParseActor(body)
				if errs != nil {
					t.Fatalf("ParseActor: %v", errs)
				}
				got = append(d.EncodeActor(), '\n')
			} else {
				d, errs := ParseAction(body)
				if errs != nil {
					t.Fatalf("ParseAction: %v", errs)
				}
				got = append(d.Encode(), '\n')
			}
			path := strings.TrimSuffix(in, ".json") + ".stored"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestParseActionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []event.FieldError // Field and Code only
	}{
		{"not an object", `[1]`, []event.FieldError{{Field: "(body)", Code: event.CodeInvalidType}}},
		{"targets missing", `{}`, []event.FieldError{{Field: "targets", Code: event.CodeRequired}}},
		{"targets null", `{"targets":null}`, []event.FieldError{{Field: "targets", Code: event.CodeRequired}}},
		{"targets not an array", `{"targets":{}}`, []event.FieldError{{Field: "targets", Code: event.CodeInvalidType}}},
		{"target not an object", `{"targets":["team"]}`, []event.FieldError{{Field: "targets[0]", Code: event.CodeInvalidType}}},
		{"target type missing", `{"targets":[{}]}`, []event.FieldError{{Field: "targets[0].type", Code: event.CodeRequired}}},
		{"target type empty", `{"targets":[{"type":""}]}`, []event.FieldError{{Field: "targets[0].type", Code: event.CodeRequired}}},
		{"target type number", `{"targets":[{"type":3}]}`, []event.FieldError{{Field: "targets[0].type", Code: event.CodeInvalidType}}},
		{"target type control", `{"targets":[{"type":"a\u0007"}]}`, []event.FieldError{{Field: "targets[0].type", Code: event.CodeInvalidFormat}}},
		{"target type twice", `{"targets":[{"type":"a"},{"type":"b"},{"type":"a"}]}`, []event.FieldError{{Field: "targets[2].type", Code: event.CodeInvalidValue}}},
		{"unknown top field", `{"targets":[],"colour":1}`, []event.FieldError{{Field: "colour", Code: "unknown_field"}}},
		{"unknown target field", `{"targets":[{"type":"a","name":"x"}]}`, []event.FieldError{{Field: "targets[0].name", Code: "unknown_field"}}},
		{"hostile unknown key quoted", `{"targets":[],"a.b[0]":1}`, []event.FieldError{{Field: `"a.b[0]"`, Code: "unknown_field"}}},
		{"metadata not object type", `{"targets":[],"metadata":{"type":"array"}}`, []event.FieldError{{Field: "metadata.type", Code: event.CodeInvalidValue}}},
		{"metadata properties not object", `{"targets":[],"metadata":{"properties":[]}}`, []event.FieldError{{Field: "metadata.properties", Code: event.CodeInvalidType}}},
		{"property type missing", `{"targets":[],"metadata":{"properties":{"k":{}}}}`, []event.FieldError{{Field: "metadata.properties.k.type", Code: event.CodeRequired}}},
		{"property type unknown", `{"targets":[],"metadata":{"properties":{"k":{"type":"object"}}}}`, []event.FieldError{{Field: "metadata.properties.k.type", Code: event.CodeInvalidValue}}},
		{"property type not string", `{"targets":[],"metadata":{"properties":{"k":{"type":true}}}}`, []event.FieldError{{Field: "metadata.properties.k.type", Code: event.CodeInvalidType}}},
		{"property extra keyword", `{"targets":[],"metadata":{"properties":{"k":{"type":"string","maxLength":3}}}}`, []event.FieldError{{Field: "metadata.properties.k.maxLength", Code: "unknown_field"}}},
		{"bad key", `{"targets":[],"actor":{"metadata":{"properties":{"bad key":{"type":"string"}}}}}`, []event.FieldError{{Field: `actor.metadata.properties."bad key"`, Code: event.CodeInvalidFormat}}},
		{"long key", `{"targets":[],"metadata":{"properties":{"` + strings.Repeat("k", 41) + `":{"type":"string"}}}}`, []event.FieldError{{Field: `metadata.properties."` + strings.Repeat("k", 40) + `…"`, Code: event.CodeInvalidFormat}}},
		{"actor not object", `{"targets":[],"actor":"user"}`, []event.FieldError{{Field: "actor", Code: event.CodeInvalidType}}},
		{"actor unknown field", `{"targets":[],"actor":{"type":"user"}}`, []event.FieldError{{Field: "actor.type", Code: "unknown_field"}}},
		{"display name not a string", `{"targets":[],"display_name":3}`, []event.FieldError{{Field: "display_name", Code: event.CodeInvalidType}}},
		{"display name control", `{"targets":[],"display_name":"a\u0007"}`, []event.FieldError{{Field: "display_name", Code: event.CodeInvalidValue}}},
		{"display name too long", `{"targets":[],"display_name":"` + strings.Repeat("é", MaxDisplayName+1) + `"}`, []event.FieldError{{Field: "display_name", Code: event.CodeInvalidValue}}},
		{"description too long", `{"targets":[],"description":"` + strings.Repeat("x", MaxDescription+1) + `"}`, []event.FieldError{{Field: "description", Code: event.CodeInvalidValue}}},
		{"every problem at once", `{"targets":[{"type":""},{"type":"x","metadata":{"properties":{"n":{"type":"int"}}}}],"metadata":{"type":"object","properties":{"ok":{"type":"string"},"b":{"type":"bool"}}}}`,
			[]event.FieldError{{Field: "targets[0].type", Code: event.CodeRequired}, {Field: "targets[1].metadata.properties.n.type", Code: event.CodeInvalidValue}, {Field: "metadata.properties.b.type", Code: event.CodeInvalidValue}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, errs := ParseAction([]byte(tc.body))
			if d != nil {
				t.Fatalf("ParseAction(%s) accepted it", tc.body)
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("ParseAction(%s) = %+v, want %+v", tc.body, errs, tc.want)
			}
			for i, e := range errs {
				if e.Field != tc.want[i].Field || e.Code != tc.want[i].Code || e.Message == "" {
					t.Errorf("error %d = %+v, want field %q code %q with a message", i, e, tc.want[i].Field, tc.want[i].Code)
				}
			}
		})
	}
}

// TestDisplayTexts: an action schema's display name and description are
// kept, encoded and decoded back; absent, they stay out of the encoding.
func TestDisplayTexts(t *testing.T) {
	for _, tc := range []struct {
		name, body, wantName, wantDesc string
	}{
		{"both", `{"targets":[],"display_name":" Role changed ","description":"A member's role changed."}`, "Role changed", "A member's role changed."},
		{"none", `{"targets":[]}`, "", ""},
		{"null", `{"targets":[],"display_name":null}`, "", ""},
		{"markup is text", `{"targets":[],"display_name":"<b>Rôle</b> \u05e9"}`, "<b>Rôle</b> \u05e9", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, errs := ParseAction([]byte(tc.body))
			if errs != nil {
				t.Fatalf("ParseAction: %+v", errs)
			}
			back, err := Decode(d.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if back.DisplayName != tc.wantName || back.Description != tc.wantDesc {
				t.Errorf("got %q / %q, want %q / %q", back.DisplayName, back.Description, tc.wantName, tc.wantDesc)
			}
			if tc.wantName == "" && strings.Contains(string(d.Encode()), "display_name") {
				t.Errorf("encoding %s names an empty display name", d.Encode())
			}
		})
	}
}

func TestParseActionLimits(t *testing.T) {
	var targets []string
	for i := range MaxTargets + 1 {
		targets = append(targets, `{"type":"t`+strings.Repeat("x", i)+`"}`)
	}
	_, errs := ParseAction([]byte(`{"targets":[` + strings.Join(targets, ",") + `]}`))
	if len(errs) != 1 || errs[0].Code != event.CodeTooMany {
		t.Errorf("101 target types: %+v, want one too_many", errs)
	}
	var props []string
	for i := range event.MaxMetadataKeys + 1 {
		props = append(props, `"k`+strings.Repeat("x", i%30)+string(rune('a'+i%26))+string(rune('a'+i/26))+`":{"type":"string"}`)
	}
	_, errs = ParseAction([]byte(`{"targets":[],"metadata":{"properties":{` + strings.Join(props, ",") + `}}}`))
	if len(errs) != 1 || errs[0].Code != event.CodeTooMany || errs[0].Field != "metadata.properties" {
		t.Errorf("51 metadata keys: %+v, want one too_many", errs)
	}
}

func TestParseActor(t *testing.T) {
	if _, errs := ParseActor([]byte(`{}`)); len(errs) != 1 || errs[0].Field != "metadata" || errs[0].Code != event.CodeRequired {
		t.Errorf("ParseActor({}) = %+v, want metadata required", errs)
	}
	if _, errs := ParseActor([]byte(`{"metadata":{},"targets":[]}`)); len(errs) != 1 || errs[0].Field != "targets" || errs[0].Code != "unknown_field" {
		t.Errorf("ParseActor with targets = %+v, want targets unknown", errs)
	}
	d, errs := ParseActor([]byte(`{"metadata":{"type":"object","properties":{"email":{"type":"string"},"role":{"type":"string"}}}}`))
	if errs != nil || len(d.Actor) != 2 || d.Actor["email"] != TypeString {
		t.Fatalf("ParseActor = %+v, %+v", d, errs)
	}
	back, err := DecodeActor(d.EncodeActor())
	if err != nil || !bytes.Equal(back.EncodeActor(), d.EncodeActor()) {
		t.Errorf("DecodeActor(EncodeActor) = %+v, %v", back, err)
	}
}
