package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.csv from the current writer")

// goldenRecords turns each request body of testdata/golden/events.ndjson
// into a stored record (seq = line number) and parses it back, as a job
// reads it.
func goldenRecords(tb testing.TB) []*event.Record {
	tb.Helper()
	f, err := os.Open("testdata/golden/events.ndjson")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	now := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	var out []*event.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for seq := int64(0); sc.Scan(); seq++ {
		org, d, err := event.ParseCreate(sc.Bytes(), now, event.DefaultLimits())
		if err != nil {
			tb.Fatalf("line %d: %v", seq+1, err)
		}
		acc := event.Accepted{ID: "evt_01JDGOLDEN00000000000000" + string(rune('0'+seq)), OrganizationID: org, Seq: seq,
			ReceivedAt: time.Date(2026, 11, 25, 18, 50, 0, int(seq)*1e6, time.UTC)}
		r, err := event.ParseRecord(event.AppendRecord(nil, acc, d.Tail))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestCSVGolden pins the CSV format, hostile cells included: formula
// injection in every text column, quotes, commas, CR/LF inside values,
// right-to-left overrides, emoji and 500-character values.
func TestCSVGolden(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	for _, r := range goldenRecords(t) {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	const path = "testdata/golden/events.csv"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("CSV differs from %s\n got:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}

// TestCSVReadsBack checks that an RFC 4180 reader gets every cell back as
// written (apart from the apostrophe that neutralises a formula), and that
// no cell a spreadsheet would evaluate remains.
func TestCSVReadsBack(t *testing.T) {
	recs := goldenRecords(t)
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot read the export: %v", err)
	}
	if len(rows) != len(recs)+1 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("%d rows, header %q", len(rows), rows[0])
	}
	for i, r := range recs {
		row := rows[i+1]
		for j, cell := range row {
			if cell != "" && dangerous(cell[0]) {
				t.Errorf("row %d column %s starts with %q: a spreadsheet would evaluate it", i+1, CSVHeader[j], cell[:1])
			}
		}
		for _, c := range []struct {
			col  int
			want string
		}{{0, r.ID}, {2, r.Action}, {3, r.Actor.ID}, {4, r.Actor.Type}, {5, r.Actor.Name}, {7, r.Location}, {8, r.UserAgent}} {
			want := c.want
			if want != "" && dangerous(want[0]) {
				want = "'" + want
			}
			// encoding/csv turns CRLF inside a quoted field into LF.
			if got := row[c.col]; got != strings.ReplaceAll(want, "\r\n", "\n") {
				t.Errorf("row %d column %s = %q, want %q", i+1, CSVHeader[c.col], got, want)
			}
		}
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"=1+1", "'=1+1"},
		{"+1", "'+1"},
		{"-1", "'-1"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "\"'\rx\""},
		{"a,b", `"a,b"`},
		{`say "hi"`, `"say ""hi"""`},
		{"=a,\"b\"", `"'=a,""b"""`},
		{"line\nbreak", "\"line\nbreak\""},
		{"1-2", "1-2"},
		{"'=quoted already", "'=quoted already"},
	} {
		if got := string(appendCell(nil, tc.in)); got != tc.want {
			t.Errorf("appendCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// rows writes r through both paths: the full decoder (Write) and the
// in-place reader (writeRaw); ok is false when the fast path refused it.
func rows(t testing.TB, record []byte) (slow, fast string, ok bool) {
	r, err := event.ParseRecord(record)
	if err != nil {
		t.Fatalf("ParseRecord: %v", err)
	}
	var a, b bytes.Buffer
	wa, wb := NewCSVWriter(&a), NewCSVWriter(&b)
	if err := wa.Write(r); err != nil {
		t.Fatal(err)
	}
	wa.Flush()
	var x rawRecord
	if !x.parse(record) {
		return a.String(), "", false
	}
	if err := wb.writeRaw(&x); err != nil {
		t.Fatal(err)
	}
	wb.Flush()
	return a.String(), b.String(), true
}

// TestCSVPathsAgree checks that the fast path writes exactly what the full
// decoder writes, on the hostile golden records.
func TestCSVPathsAgree(t *testing.T) {
	f, err := os.Open("testdata/golden/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		record := goldenRecord(t, sc.Bytes(), int64(i))
		slow, fast, ok := rows(t, record)
		if !ok {
			t.Fatalf("line %d: the fast path refused a canonical record: %s", i+1, record)
		}
		if slow != fast {
			t.Errorf("line %d: the paths differ\nslow %q\nfast %q", i+1, slow, fast)
		}
	}
}

func goldenRecord(tb testing.TB, body []byte, seq int64) []byte {
	now := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	org, d, err := event.ParseCreate(body, now, event.DefaultLimits())
	if err != nil {
		return nil
	}
	acc := event.Accepted{ID: "evt_01JDGOLDEN0000000000000000", OrganizationID: org, Seq: seq, ReceivedAt: now}
	return event.AppendRecord(nil, acc, d.Tail)
}

// FuzzCSVPaths feeds event bodies through acceptance and checks that both
// CSV paths agree on every record the fast path accepts, and that a
// filter gives the same answer on both.
func FuzzCSVPaths(f *testing.F) {
	fh, err := os.Open("testdata/golden/events.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f.Add(append([]byte(nil), sc.Bytes()...))
	}
	fh.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		record := goldenRecord(t, body, 3)
		if record == nil {
			return
		}
		slow, fast, ok := rows(t, record)
		if !ok {
			t.Fatalf("the fast path refused a canonical record: %s", record)
		}
		if slow != fast {
			t.Fatalf("the paths differ\nslow %q\nfast %q", slow, fast)
		}
		r, _ := event.ParseRecord(record)
		var x rawRecord
		x.parse(record)
		for _, filter := range []store.ExportFilter{
			{Actions: []string{r.Action}}, {ActorNames: []string{r.Actor.Name}}, {ActorIDs: []string{"user_1"}},
			{Targets: []string{"team"}}, {RangeStart: r.OccurredAt}, {RangeEnd: r.OccurredAt},
			{RangeStart: r.OccurredAt.Add(time.Microsecond)}, {RangeEnd: r.OccurredAt.Add(time.Microsecond)},
		} {
			if a, b := matches(&filter, r), newRawFilter(&filter).matches(&x); a != b {
				t.Fatalf("filter %+v: full decoder %v, fast path %v", filter, a, b)
			}
		}
	})
}
