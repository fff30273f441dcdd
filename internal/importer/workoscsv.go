// Package importer reads audit-log history exported by another service —
// WorkOS's CSV export — into Trail's events, so that a team switching to
// Trail keeps its past. It owns the file formats and their checks: every
// row is validated with the same rules as the API's before anything is
// stored, and each event keeps its id at the source, which the stored
// record shows (docs/WORKOS.md, "The history").
package importer

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/textsafe"
)

// SourceWorkOS is the Import.Source of events read from WorkOS's exports.
const SourceWorkOS = "workos"

// MaxProblems is how many problems a failed read lists.
const MaxProblems = 50

// MaxRowBytes bounds one CSV row: an event's body is at most 1 MiB in the
// API, and a row holds the same content.
const MaxRowBytes = 1 << 20

// Columns of WorkOS's audit-log CSV export, as Trail's own CSV export also
// writes them (docs/EXPORTS.md). The required ones must be in the header;
// the others may be missing or empty. seq and received_at are the exporting
// log's own and are not imported: the events get new ones here.
var (
	requiredColumns = []string{"id", "occurred_at", "action", "actor_id", "actor_type", "location"}
	optionalColumns = []string{"actor_name", "targets", "user_agent", "metadata", "version"}
	skippedColumns  = []string{"seq", "received_at"}
)

// Row is one event of an export, validated.
type Row struct {
	Line     int    // the CSV line it starts on, 1-based (the header is line 1)
	SourceID string // its id at the source
	Draft    *event.Draft
}

// Problem is what is wrong with one row, or with the header (Line 1).
type Problem struct {
	Line int
	Msg  string
}

// ProblemsError lists the problems found in a file; nothing of it should be
// imported.
type ProblemsError struct {
	Problems []Problem
	More     int // problems found beyond MaxProblems
}

func (e *ProblemsError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "line %d: %s", p.Line, p.Msg)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n… and %d more", e.More)
	}
	return b.String()
}

// Reader reads a WorkOS audit-log CSV export row by row.
type Reader struct {
	r       *csv.Reader
	col     map[string]int
	ignored []string
	now     time.Time
	lim     event.Limits
	seen    map[string]int // source id → line, to refuse duplicates
}

// NewReader reads the header of a CSV export from r and checks it. now and
// lim are the rules events are checked with (the API's).
func NewReader(r io.Reader, now time.Time, lim event.Limits) (*Reader, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = 0 // every row as long as the header
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &ProblemsError{Problems: []Problem{{1, "the file is empty; want a CSV export with a header line (id,occurred_at,action,actor_id,actor_type,…)"}}}
	}
	if err != nil {
		return nil, &ProblemsError{Problems: []Problem{{1, "not CSV: " + csvMessage(err)}}}
	}
	rd := &Reader{r: cr, col: map[string]int{}, now: now, lim: lim, seen: map[string]int{}}
	known := map[string]bool{}
	for _, c := range append(append(append([]string{}, requiredColumns...), optionalColumns...), skippedColumns...) {
		known[c] = true
	}
	var problems []Problem
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) // a byte-order mark spreadsheets add
		if _, dup := rd.col[h]; dup {
			problems = append(problems, Problem{1, fmt.Sprintf("column %q appears twice", h)})
			continue
		}
		rd.col[h] = i
		if !known[h] {
			rd.ignored = append(rd.ignored, h)
		}
	}
	for _, c := range skippedColumns {
		if _, ok := rd.col[c]; ok {
			rd.ignored = append(rd.ignored, c)
		}
	}
	for _, c := range requiredColumns {
		if _, ok := rd.col[c]; !ok {
			problems = append(problems, Problem{1, fmt.Sprintf("the header has no %q column; a WorkOS audit-log export has id, occurred_at, action, actor_id, actor_type, actor_name, targets, location, user_agent, metadata", c)})
		}
	}
	if len(problems) > 0 {
		return nil, &ProblemsError{Problems: problems}
	}
	return rd, nil
}

// Ignored lists the header's columns that are not imported: the exporting
// log's own seq and received_at, and columns this reader does not know.
func (rd *Reader) Ignored() []string { return rd.ignored }

// Next reads and checks the next row. It returns io.EOF after the last row.
// A row that is wrong is a *ProblemsError naming its line; reading may go
// on after it, to report every problem of a file at once.
func (rd *Reader) Next() (Row, error) {
	rec, err := rd.r.Read()
	if err == io.EOF {
		return Row{}, io.EOF
	}
	if err != nil {
		line := 0
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			line = pe.StartLine
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				return Row{}, rowProblem(line, fmt.Sprintf("has %d fields, the header has %d", len(rec), len(rd.col)))
			}
		}
		// A CSV syntax error ends the file: what follows cannot be
		// trusted to start where a row starts.
		return Row{}, &fatalError{rowProblem(line, "not CSV: "+csvMessage(err))}
	}
	line, _ := rd.r.FieldPos(0)
	size := 0
	for _, f := range rec {
		size += len(f)
	}
	if size > MaxRowBytes {
		return Row{}, rowProblem(line, fmt.Sprintf("is %d bytes; an event is at most %d", size, MaxRowBytes))
	}
	get := func(c string) string {
		if i, ok := rd.col[c]; ok {
			return rec[i]
		}
		return ""
	}
	id := get("id")
	switch {
	case id == "":
		return Row{}, rowProblem(line, "id is empty: every event needs its id at the source, which makes the import safe to run again")
	case len(id) > event.MaxImportFieldLen || !utf8.ValidString(id) || textsafe.HasControl(id):
		return Row{}, rowProblem(line, fmt.Sprintf("id must be at most %d characters of text", event.MaxImportFieldLen))
	}
	if first, ok := rd.seen[id]; ok {
		return Row{}, rowProblem(line, fmt.Sprintf("id %q is also the id of line %d", id, first))
	}
	rd.seen[id] = line
	body, err := eventJSON(get)
	if err != nil {
		return Row{}, rowProblem(line, err.Error())
	}
	d, err := event.ParseEvent(body, rd.now, rd.lim)
	if err != nil {
		return Row{}, rowProblem(line, describe(err))
	}
	d.MarkImported(event.Import{Source: SourceWorkOS, ID: id})
	return Row{Line: line, SourceID: id, Draft: d}, nil
}

// Fatal reports whether err, from Next, ends the file.
func Fatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f)
}

type fatalError struct{ *ProblemsError }

func (f *fatalError) Unwrap() error { return f.ProblemsError }

func rowProblem(line int, msg string) *ProblemsError {
	return &ProblemsError{Problems: []Problem{{line, msg}}}
}

// eventJSON builds the WorkOS event object of a row, for the API's own
// parser to check. The JSON cells (targets, metadata) go in as they are.
func eventJSON(get func(string) string) ([]byte, error) {
	type entity struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Name string `json:"name,omitempty"`
	}
	type context struct {
		Location  string `json:"location"`
		UserAgent string `json:"user_agent,omitempty"`
	}
	ev := struct {
		Action     string          `json:"action"`
		OccurredAt string          `json:"occurred_at"`
		Version    *int64          `json:"version,omitempty"`
		Actor      entity          `json:"actor"`
		Targets    json.RawMessage `json:"targets"`
		Context    context         `json:"context"`
		Metadata   json.RawMessage `json:"metadata,omitempty"`
	}{
		Action:     text(get("action")),
		OccurredAt: get("occurred_at"),
		Actor:      entity{ID: text(get("actor_id")), Type: text(get("actor_type")), Name: text(get("actor_name"))},
		Targets:    json.RawMessage("[]"),
		Context:    context{Location: text(get("location")), UserAgent: text(get("user_agent"))},
	}
	if v := strings.TrimSpace(get("version")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("version %q must be a whole number of at least 1, or empty", v)
		}
		ev.Version = &n
	}
	if t := strings.TrimSpace(get("targets")); t != "" {
		if !json.Valid([]byte(t)) {
			return nil, errors.New(`targets must be a JSON array of targets ({"id","type","name","metadata"}), or empty`)
		}
		ev.Targets = json.RawMessage(t)
	}
	if m := strings.TrimSpace(get("metadata")); m != "" {
		if !json.Valid([]byte(m)) {
			return nil, errors.New("metadata must be a JSON object, or empty")
		}
		ev.Metadata = json.RawMessage(m)
	}
	return json.Marshal(ev)
}

// text undoes the spreadsheet formula guard CSV exports apply (Trail's own
// among them, docs/EXPORTS.md): a text cell that would start with '=', '+',
// '-', '@', a tab or a carriage return is written with a leading
// apostrophe, which is not part of the value.
func text(cell string) string {
	if len(cell) >= 2 && cell[0] == '\'' && strings.IndexByte("=+-@\t\r", cell[1]) >= 0 {
		return cell[1:]
	}
	return cell
}

// describe turns the API parser's error into one line naming each field in
// the terms of the CSV's columns.
func describe(err error) string {
	var ee *event.Error
	if !errors.As(err, &ee) {
		return err.Error()
	}
	if len(ee.Errors) == 0 {
		return ee.Message
	}
	parts := make([]string, 0, len(ee.Errors))
	for _, fe := range ee.Errors {
		parts = append(parts, columnOf(fe.Field)+": "+fe.Message)
	}
	return strings.Join(parts, "; ")
}

// columnOf names the CSV column a field path of the event came from.
func columnOf(field string) string {
	f := strings.TrimPrefix(field, "event.")
	switch {
	case f == "actor.id", f == "actor.type", f == "actor.name":
		return "actor_" + strings.TrimPrefix(f, "actor.")
	case f == "actor":
		return "actor_id, actor_type"
	case f == "context.location":
		return "location"
	case f == "context.user_agent":
		return "user_agent"
	case strings.HasPrefix(f, "targets"):
		return "targets (" + f + ")"
	case strings.HasPrefix(f, "metadata"):
		return "metadata (" + f + ")"
	}
	return f
}

// csvMessage is a CSV error without the package's prefixes.
func csvMessage(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
