package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// checkRoundTrip checks that rec is JSON, that ParseRecord reads it back,
// that re-encoding gives the same bytes, and that encoding/json reads the
// same values as ParseRecord.
func checkRoundTrip(t *testing.T, rec []byte) *Record {
	t.Helper()
	if !json.Valid(rec) {
		t.Fatalf("record is not valid JSON: %s", rec)
	}
	r, err := ParseRecord(rec)
	if err != nil {
		t.Fatalf("ParseRecord: %v\n%s", err, rec)
	}
	again := AppendRecord(nil, r.Accepted, appendTail(nil, &r.Draft))
	if !bytes.Equal(again, rec) {
		t.Fatalf("re-encoding differs\n got %s\nwant %s", again, rec)
	}
	if got, want := std(t, rec), fromRecord(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("encoding/json reads\n%#v\nParseRecord reads\n%#v", got, want)
	}
	return r
}

// stdRecord is the record as encoding/json sees it.
type stdRecord struct {
	ID             string
	OrganizationID string `json:"organization_id"`
	Seq            int64
	ReceivedAt     time.Time `json:"received_at"`
	Action         string
	Version        int64
	OccurredAt     time.Time `json:"occurred_at"`
	Actor          stdEntity
	Targets        []stdEntity
	Context        struct {
		Location  string
		UserAgent string `json:"user_agent"`
	}
	Metadata Metadata
}

type stdEntity struct {
	ID, Type, Name string
	Metadata       Metadata
}

func std(t *testing.T, rec []byte) stdRecord {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var s stdRecord
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return s
}

func fromRecord(r *Record) stdRecord {
	s := stdRecord{
		ID: r.ID, OrganizationID: r.OrganizationID, Seq: r.Seq, ReceivedAt: r.ReceivedAt,
		Action: r.Action, Version: r.Version, OccurredAt: r.OccurredAt, Metadata: r.Metadata,
		Actor: stdEntity{r.Actor.ID, r.Actor.Type, r.Actor.Name, r.ActorMetadata},
	}
	s.Targets = []stdEntity{}
	for i, e := range r.Targets {
		s.Targets = append(s.Targets, stdEntity{e.ID, e.Type, e.Name, r.TargetsMetadata[i]})
	}
	s.Context.Location, s.Context.UserAgent = r.Location, r.UserAgent
	return s
}

func TestRoundTrip(t *testing.T) {
	bodies := []string{
		body(nil),
		body(func(ev map[string]any) {
			ev["version"] = 9
			ev["metadata"] = map[string]any{"a": raw("1.50"), "b": "x\u2028", "c": true}
			obj(ev, "actor")["name"] = "Ada <ada@example.com>"
			obj(ev, "actor")["metadata"] = map[string]any{"k": raw("-2e-5")}
			target(ev, 0)["metadata"] = map[string]any{"k": "v"}
			obj(ev, "context")["user_agent"] = "UA \"quoted\" \\ \x01"
		}),
		body(func(ev map[string]any) { ev["targets"] = []any{} }),
	}
	for _, b := range bodies {
		org, d, err := ParseCreate([]byte(b), testNow, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		acc := Accepted{ID: NewID(testNow), OrganizationID: org, Seq: 1 << 40, ReceivedAt: testNow.Add(1234567 * time.Microsecond)}
		rec := AppendRecord(nil, acc, d.Tail)
		r := checkRoundTrip(t, rec)

		wantAcc := acc
		wantAcc.ReceivedAt = acc.ReceivedAt.Truncate(time.Millisecond)
		if r.Accepted != wantAcc {
			t.Fatalf("accepted\n got %+v\nwant %+v", r.Accepted, wantAcc)
		}
		want := *d
		want.Tail = nil
		if !reflect.DeepEqual(r.Draft, want) {
			t.Fatalf("draft\n got %#v\nwant %#v", r.Draft, want)
		}
	}
}

func TestAppendRecord(t *testing.T) {
	acc := Accepted{ID: "evt_1", OrganizationID: "org_\"q\"", Seq: 42, ReceivedAt: time.Date(2026, 1, 2, 4, 5, 6, 7_891_000, time.FixedZone("x", 3600))}
	got := string(AppendRecord([]byte("prefix:"), acc, []byte(`"action":"a"`)))
	want := `prefix:{"id":"evt_1","organization_id":"org_\"q\"","seq":42,"received_at":"2026-01-02T03:05:06.007Z","action":"a"}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if got := string(AppendRecord(nil, acc, nil)); !json.Valid([]byte(got)) || !strings.HasSuffix(got, `.007Z"}`) {
		t.Fatalf("empty tail: %s", got)
	}
}

// TestAppendStringMatchesEncodingJSON checks the escaping against encoding/json
// with HTML escaping off, for every rune of the Basic Multilingual Plane and
// some beyond, and for invalid UTF-8 (which parsing never lets through, but
// which must still give valid JSON).
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if got := string(AppendJSONString(nil, s)); got != want {
			t.Fatalf("AppendJSONString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	var all strings.Builder
	for r := rune(0); r < 0x10000; r++ {
		if r >= 0xd800 && r < 0xe000 {
			continue
		}
		check(string(r))
		check("a" + string(r) + "b")
		all.WriteRune(r)
	}
	check(all.String())
	for _, s := range []string{"", "\U0001F600", "\U0010FFFF", "<script>&amp;</script>", "\xff", "a\xc3", "\xed\xa0\x80", "\xe2\x80"} {
		check(s)
	}
}

func TestNewID(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 43, 9, 709e6, time.UTC)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID(now)
		if len(id) != 30 || !strings.HasPrefix(id, "evt_") {
			t.Fatalf("id %q", id)
		}
		u, err := ulid.ParseStrict(id[4:])
		if err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		if !u.Timestamp().Equal(now) {
			t.Fatalf("%q: time %v", id, u.Timestamp())
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
	}
	if id := NewID(time.Unix(-5, 0)); !strings.HasPrefix(id, "evt_0000000000") {
		t.Fatalf("before 1970: %q", id)
	}
	if id := NewID(time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)); !strings.HasPrefix(id, "evt_7ZZZZZZZZZ") {
		t.Fatalf("after 10889: %q", id)
	}
}

func TestParseRecordRejects(t *testing.T) {
	_, d, err := ParseCreate([]byte(body(nil)), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	good := string(AppendRecord(nil, goldenAccepted, d.Tail))
	tests := []struct {
		name, rec string
		status    int
		want      []string
	}{
		{"no id", strings.Replace(good, `"id":"evt_01JDGOLDEN0000000000000000",`, ``, 1), 422, []string{"id required"}},
		{"negative seq", strings.Replace(good, `"seq":7`, `"seq":-1`, 1), 422, []string{"seq out_of_range"}},
		{"fractional seq", strings.Replace(good, `"seq":7`, `"seq":7.5`, 1), 422, []string{"seq invalid_type"}},
		{"seq string", strings.Replace(good, `"seq":7`, `"seq":"7"`, 1), 422, []string{"seq invalid_type"}},
		{"no seq", strings.Replace(good, `"seq":7,`, ``, 1), 422, []string{"seq required"}},
		{"bad received_at", strings.Replace(good, `"received_at":"2026-11-25T18:43:10.123Z"`, `"received_at":"noon"`, 1), 422, []string{"received_at invalid_format"}},
		{"duplicate seq", strings.Replace(good, `"seq":7`, `"seq":7,"seq":8`, 1), 422, []string{"seq invalid_format"}},
		{"bad target", strings.Replace(good, `"targets":[{"id":"team_1",`, `"targets":[{`, 1), 422, []string{"targets[0].id required"}},
		{"bad action", strings.Replace(good, `"action":"user.signed_in"`, `"action":"a\nb"`, 1), 422, []string{"action invalid_format"}},
		{"not an object", `[]`, 400, nil},
		{"empty", ``, 400, nil},
		{"truncated", good[:len(good)-1], 400, nil},
		{"trailing", good + `x`, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecord([]byte(tc.rec))
			if err == nil {
				t.Fatalf("accepted %s", tc.rec)
			}
			if !strings.HasPrefix(err.Error(), "event: parse record: ") {
				t.Fatalf("error %q", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v does not wrap *Error", err)
			}
			if e.Status != tc.status || !reflect.DeepEqual(fieldCodes(e), tc.want) {
				t.Fatalf("got %d %q, want %d %q", e.Status, fieldCodes(e), tc.status, tc.want)
			}
		})
	}
}

// TestParseRecordLenient checks that limits an operator can change do not
// make stored records unreadable.
func TestParseRecordLenient(t *testing.T) {
	_, d, err := ParseCreate([]byte(body(func(ev map[string]any) {
		ts := make([]any, 150)
		for i := range ts {
			ts[i] = map[string]any{"id": "t", "type": "team"}
		}
		ev["targets"] = ts
		ev["occurred_at"] = "2030-01-01T00:00:00Z"
	})), testNow, Limits{MaxTargets: 1000, MaxFuture: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := checkRoundTrip(t, AppendRecord(nil, goldenAccepted, d.Tail))
	if len(r.Targets) != 150 {
		t.Fatalf("%d targets", len(r.Targets))
	}
	// Unknown fields, as a later version might add, are ignored.
	if _, err := ParseRecord([]byte(`{"schema":2,` + string(AppendRecord(nil, goldenAccepted, d.Tail))[1:])); err != nil {
		t.Fatal(err)
	}
}

func TestSearchText(t *testing.T) {
	_, d, err := ParseCreate([]byte(body(func(ev map[string]any) {
		obj(ev, "actor")["name"] = "Ada"
		obj(ev, "actor")["metadata"] = map[string]any{"z": "last", "a": raw("1.50"), "b": true}
		ev["targets"] = []any{
			map[string]any{"id": "t1", "type": "team", "name": "Core", "metadata": map[string]any{"k": "tv"}},
			map[string]any{"id": "t2", "type": "doc"},
		}
		obj(ev, "context")["user_agent"] = "curl/8"
		ev["metadata"] = map[string]any{"reason": "audit", "n": raw("7")}
	})), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"user.signed_in", "user_1", "user", "Ada", "t1", "team", "Core", "t2", "doc",
		"203.0.113.7", "curl/8", "1.50", "last", "tv", "7", "audit"}, "\n")
	if got := d.SearchText(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(d.AppendSearchText([]byte("x"))); got != "x"+want {
		t.Fatalf("append form: %q", got)
	}
	if !utf8.ValidString(want) {
		t.Fatal("invalid")
	}
}

func TestPlainPrefix(t *testing.T) {
	special := []byte{0, 0x1f, '"', '\\', 0x80, 0xff, 0xc3}
	for n := 0; n <= 20; n++ {
		for at := 0; at <= n; at++ {
			for _, c := range special {
				b := []byte(strings.Repeat("a~ !#[]", 3)[:n])
				want := n
				if at < n {
					b[at] = c
					want = at
				}
				if got := plainPrefix(string(b)); got != want {
					t.Fatalf("plainPrefix(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
	// Bytes next to the special values must not trigger the test.
	for c := 0; c < 256; c++ {
		s := strings.Repeat(string([]byte{byte(c)}), 9)
		want := 9
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			want = 0
		}
		if got := plainPrefix(s); got != want {
			t.Fatalf("plainPrefix of byte %#x: %d, want %d", c, got, want)
		}
	}
}

func TestRecordSize(t *testing.T) {
	a := Accepted{ID: "evt_01JBXYZABCDEFGHJKMNPQRSTVW", OrganizationID: "org_01JBXYZABCDEFGHJKMNPQRSTVW", Seq: math.MaxInt64,
		ReceivedAt: time.Date(2026, 11, 26, 23, 59, 59, 999e6, time.UTC)}
	tail := []byte(`"action":"a"`)
	rec := AppendRecord(nil, a, tail)
	if got := RecordSize(a, len(tail)); got < len(rec) {
		t.Fatalf("RecordSize = %d, record is %d bytes: %s", got, len(rec), rec)
	}
}

// TestParseRecordKeepsNUL: requests may no longer carry NUL in identifiers
// and names, but records stored before that rule must still read back.
func TestParseRecordKeepsNUL(t *testing.T) {
	raw := `{"id":"evt_1","organization_id":"org_1","seq":0,"received_at":"2026-11-25T18:43:10.123Z","action":"a",` +
		`"occurred_at":"2026-11-25T18:43:09.709Z","actor":{"id":"u\u0000","type":"user","name":"\u0000"},` +
		`"targets":[{"id":"t\u0000","type":"team"}],"context":{"location":"l"}}`
	r, err := ParseRecord([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Actor.ID != "u\x00" || r.Actor.Name != "\x00" || r.Targets[0].ID != "t\x00" {
		t.Fatalf("read %+v", r.Draft)
	}
}

// TestParseRecordPredatesRules: records stored before the rules on control
// characters in ids and names, invisible characters in actions and finite
// metadata numbers still read (the rules are for requests), while the same
// values in a request are refused.
func TestParseRecordPredatesRules(t *testing.T) {
	_, d, err := ParseCreate([]byte(body(nil)), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	good := string(AppendRecord(nil, goldenAccepted, d.Tail))
	for _, c := range []struct{ name, old, new string }{
		{"actor id ESC", `"id":"user_1"`, `"id":"user\u001b[2J"`},
		{"actor name LF", `"type":"user"`, `"type":"user","name":"a\nb"`},
		{"target id CR", `"id":"team_1"`, `"id":"team\r"`},
		{"action RLO", `"action":"user.signed_in"`, `"action":"user.` + "\u202e" + `ni_dengis"`},
		{"infinite number", `"context":`, `"metadata":{"n":1e999},"context":`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := strings.Replace(good, c.old, c.new, 1)
			if rec == good {
				t.Fatalf("%s not found in %s", c.old, good)
			}
			if _, err := ParseRecord([]byte(rec)); err != nil {
				t.Fatalf("stored record refused: %v\n%s", err, rec)
			}
		})
	}
}

// An imported event's record ends with where it came from and reads back
// with it; a request cannot claim an import (the key is ignored there), and
// a malformed "imported" in a record is refused.
func TestImportedRecord(t *testing.T) {
	body := []byte(`{"action":"a.b","occurred_at":"2022-09-02T17:14:57.094Z","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"},"imported":{"source":"evil","id":"x"}}`)
	d, err := ParseEvent(body, testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if d.Imported != nil || strings.Contains(string(d.Tail), "imported") {
		t.Fatalf("a request set imported: %s", d.Tail)
	}
	d.MarkImported(Import{Source: "workos", ID: "audit_log_event_1"})
	rec := AppendRecord(nil, Accepted{ID: "evt_1", OrganizationID: "org_1", Seq: 3, ReceivedAt: testNow}, d.Tail)
	if !strings.HasSuffix(string(rec), `"context":{"location":"x"},"imported":{"source":"workos","id":"audit_log_event_1"}}`) {
		t.Fatalf("record %s", rec)
	}
	back, err := ParseRecord(rec)
	if err != nil || back.Imported == nil || *back.Imported != (Import{Source: "workos", ID: "audit_log_event_1"}) {
		t.Fatalf("ParseRecord: %+v %v", back, err)
	}
	for _, bad := range []string{`"imported":1`, `"imported":{"source":"workos"}`, `"imported":{"source":"","id":"x"}`, `"imported":{"source":"a","id":"b","id":"c"}`} {
		r := []byte(`{"id":"evt_1","organization_id":"org_1","seq":0,"received_at":"2022-09-02T17:14:57.094Z","action":"a.b","occurred_at":"2022-09-02T17:14:57.094Z","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"},` + bad + `}`)
		if _, err := ParseRecord(r); err == nil {
			t.Errorf("ParseRecord accepted %s", bad)
		}
	}
	a1, a2, b := DerivedID(testNow, []byte("a")), DerivedID(testNow, []byte("a")), DerivedID(testNow, []byte("b"))
	if a1 != a2 || a1 == b || !strings.HasPrefix(a1, "evt_") {
		t.Error("DerivedID is not a function of its inputs")
	}
}
