package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/textsafe"
)

// fromMap converts an event decoded by encoding/json into a map into the
// shape fromRecord gives, without the fields acceptance assigns.
func fromMap(ev map[string]any) stdRecord {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	meta := func(m map[string]any) Metadata {
		md, _ := m["metadata"].(map[string]any)
		if len(md) == 0 {
			return nil
		}
		return Metadata(md)
	}
	entity := func(v any) stdEntity {
		m := v.(map[string]any)
		return stdEntity{ID: str(m, "id"), Type: str(m, "type"), Name: str(m, "name"), Metadata: meta(m)}
	}
	s := stdRecord{Action: str(ev, "action"), Actor: entity(ev["actor"]), Metadata: meta(ev), Targets: []stdEntity{}}
	if v, ok := ev["version"].(json.Number); ok {
		s.Version, _ = v.Int64()
	}
	for _, t := range ev["targets"].([]any) {
		s.Targets = append(s.Targets, entity(t))
	}
	ctx := ev["context"].(map[string]any)
	s.Context.Location, s.Context.UserAgent = str(ctx, "location"), str(ctx, "user_agent")
	return s
}

// FuzzParseCreate checks that no body makes ParseCreate panic, that every
// failure is a well-formed client error, that what it accepts encoding/json
// also calls JSON, and that every accepted event becomes a valid record that
// reads back and re-encodes to the same bytes. Seeds: testdata/fuzz/FuzzParseCreate.
func FuzzParseCreate(f *testing.F) {
	f.Add([]byte(body(nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		org, d, err := ParseCreate(b, testNow, DefaultLimits())
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			switch e.Status {
			case 400:
				if e.Code != CodeInvalidJSON || len(e.Errors) != 0 {
					t.Fatalf("400 with code %q, %d errors", e.Code, len(e.Errors))
				}
				// A 400 for input encoding/json calls valid needs a reason.
				if json.Valid(b) && !strings.Contains(e.Message, "must be a JSON object") && !strings.Contains(e.Message, "nesting deeper") {
					t.Fatalf("400 for valid JSON: %s", e.Message)
				}
			case 422:
				if e.Code != "" || len(e.Errors) == 0 || len(e.Errors) > MaxFieldErrors {
					t.Fatalf("422 with code %q, %d errors", e.Code, len(e.Errors))
				}
				if !json.Valid(b) {
					t.Fatalf("422 for invalid JSON: %v", e)
				}
				for _, fe := range e.Errors {
					if fe.Field == "" || fe.Code == "" || fe.Message == "" {
						t.Fatalf("incomplete field error %+v", fe)
					}
				}
			default:
				t.Fatalf("status %d", e.Status)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON")
		}
		// Identifiers carry no control characters, actions no invisible
		// ones either; metadata numbers are finite as float64.
		if textsafe.HasControl(d.Action) || textsafe.HasInvisible(d.Action) || textsafe.HasControl(org) {
			t.Fatalf("accepted action %q of organization %q", d.Action, org)
		}
		for _, e := range append([]Entity{d.Actor}, d.Targets...) {
			if textsafe.HasControl(e.ID) || textsafe.HasControl(e.Type) || textsafe.HasControl(e.Name) {
				t.Fatalf("accepted entity %+v", e)
			}
		}
		for _, md := range append([]Metadata{d.Metadata, d.ActorMetadata}, d.TargetsMetadata...) {
			for k, v := range md {
				if n, ok := v.(json.Number); ok {
					if f, _ := strconv.ParseFloat(string(n), 64); math.IsInf(f, 0) {
						t.Fatalf("accepted metadata %s: %s", k, n)
					}
				}
			}
		}
		if org == "" || d == nil || len(d.Tail) == 0 {
			t.Fatalf("accepted with org %q draft %v", org, d)
		}
		acc := goldenAccepted
		acc.OrganizationID = org
		rec := AppendRecord(nil, acc, d.Tail)
		if !json.Valid(rec) {
			t.Fatalf("record is not valid JSON: %s", rec)
		}
		r, err := ParseRecord(rec)
		if err != nil {
			t.Fatalf("ParseRecord: %v\n%s", err, rec)
		}
		if again := AppendRecord(nil, r.Accepted, appendTail(nil, &r.Draft)); !bytes.Equal(again, rec) {
			t.Fatalf("re-encoding differs\n got %s\nwant %s", again, rec)
		}
		// The search index is built from the draft of a freshly committed
		// event and from the record read back otherwise (a restart, a
		// rebuild, retention's delete), so every field it uses must read
		// back the same.
		if r.Action != d.Action || r.Actor != d.Actor || !slices.Equal(r.Targets, d.Targets) || r.SearchText() != d.SearchText() ||
			r.OccurredAt.UnixMilli() != d.OccurredAt.UnixMilli() {
			t.Fatalf("read back differs: %+v vs %+v", r.Draft, d)
		}
		// encoding/json must read the same values from the body (it cannot
		// disagree on duplicates or invalid UTF-8: those were rejected). A map,
		// not a struct, because struct decoding matches keys case-insensitively.
		var req map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("encoding/json cannot decode an accepted body: %v", err)
		}
		want := fromRecord(r)
		want.ID, want.OrganizationID, want.Seq, want.ReceivedAt, want.OccurredAt = "", "", 0, time.Time{}, time.Time{}
		if got := fromMap(req["event"].(map[string]any)); req["organization_id"] != org || !reflect.DeepEqual(got, want) {
			t.Fatalf("encoding/json reads\n%#v\nParseCreate read\n%#v", got, want)
		}
	})
}

// FuzzParseRecord checks that no input makes ParseRecord panic, and that a
// record it accepts re-encodes to a canonical record that reads back the same
// and is stable under another round. Seeds: testdata/fuzz/FuzzParseRecord.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","organization_id":"org_1","seq":0,"received_at":"2026-11-25T18:43:10.123Z","action":"a","occurred_at":"2026-11-25T18:43:09.709Z","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"l"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v does not wrap *Error", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON")
		}
		canon := AppendRecord(nil, r.Accepted, appendTail(nil, &r.Draft))
		if !json.Valid(canon) {
			t.Fatalf("re-encoding is not valid JSON: %s", canon)
		}
		r2, err := ParseRecord(canon)
		if err != nil {
			t.Fatalf("canonical form rejected: %v\n%s", err, canon)
		}
		if again := AppendRecord(nil, r2.Accepted, appendTail(nil, &r2.Draft)); !bytes.Equal(again, canon) {
			t.Fatalf("not stable\n got %s\nwant %s", again, canon)
		}
	})
}
