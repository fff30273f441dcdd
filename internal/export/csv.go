package export

import (
	"bufio"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/trailaudit/trail/internal/event"
)

// CSVHeader is the first line of every CSV export: one column per field,
// in this order (docs/EXPORTS.md documents each).
//
//   - id, occurred_at, action: the event's.
//   - actor_id, actor_type, actor_name: the actor's.
//   - targets: a JSON array of the targets, each {"id","type","name","metadata"}
//     (name and metadata only when set), as in the record.
//   - location, user_agent: the event's context.
//   - metadata: the event's metadata as a JSON object (keys sorted), or empty.
//   - version: the schema version the event named, or empty.
//   - seq: the event's position in the organization's log.
//   - received_at: when Trail accepted it.
var CSVHeader = []string{"id", "occurred_at", "action", "actor_id", "actor_type", "actor_name", "targets",
	"location", "user_agent", "metadata", "version", "seq", "received_at"}

// CSVWriter writes events as CSV (RFC 4180: comma separated, CRLF line ends,
// a field quoted when it holds a comma, a quote, CR or LF, quotes doubled).
//
// Spreadsheet formula injection is neutralised: a text cell that starts
// with '=', '+', '-', '@', tab or CR — which Excel, LibreOffice and Google
// Sheets would evaluate as a formula — gets a leading apostrophe, the
// spreadsheets' own marker for "this is text". That changes the cell's
// value; the NDJSON export keeps every value exactly as recorded.
type CSVWriter struct {
	w   *bufio.Writer
	buf []byte
	tmp []byte
}

// NewCSVWriter returns a writer to w; it writes the header at once.
func NewCSVWriter(w io.Writer) *CSVWriter {
	c := &CSVWriter{w: bufio.NewWriterSize(w, 256<<10)}
	for i, h := range CSVHeader {
		if i > 0 {
			c.buf = append(c.buf, ',')
		}
		c.buf = append(c.buf, h...)
	}
	c.buf = append(c.buf, '\r', '\n')
	c.w.Write(c.buf)
	return c
}

// Write writes one event.
func (c *CSVWriter) Write(r *event.Record) error {
	b := c.buf[:0]
	b = appendCell(b, r.ID)
	b = append(b, ',')
	b = appendTimeCell(b, r.OccurredAt)
	b = append(b, ',')
	b = appendCell(b, r.Action)
	b = append(b, ',')
	b = appendCell(b, r.Actor.ID)
	b = append(b, ',')
	b = appendCell(b, r.Actor.Type)
	b = append(b, ',')
	b = appendCell(b, r.Actor.Name)
	b = append(b, ',')
	c.tmp = appendTargets(c.tmp[:0], r)
	b = appendRawCell(b, c.tmp)
	b = append(b, ',')
	b = appendCell(b, r.Location)
	b = append(b, ',')
	b = appendCell(b, r.UserAgent)
	b = append(b, ',')
	if len(r.Metadata) > 0 {
		c.tmp = appendMetadata(c.tmp[:0], r.Metadata)
		b = appendRawCell(b, c.tmp)
	}
	b = append(b, ',')
	if r.Version != 0 {
		b = strconv.AppendInt(b, r.Version, 10)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, ',')
	b = appendTimeCell(b, r.ReceivedAt)
	b = append(b, '\r', '\n')
	c.buf = b
	_, err := c.w.Write(b)
	return err
}

// writeRaw writes one event read in place (the fast path of a job); it
// writes exactly what Write writes for the same record.
func (c *CSVWriter) writeRaw(x *rawRecord) error {
	b := c.buf[:0]
	b = appendCell(b, unsafe.String(unsafe.SliceData(x.id), len(x.id)))
	b = append(b, ',')
	b = append(b, x.occurredAt...)
	b = append(b, ',')
	b = appendCell(b, unsafe.String(unsafe.SliceData(x.action), len(x.action)))
	b = append(b, ',')
	b = appendCell(b, x.actorID)
	b = append(b, ',')
	b = appendCell(b, x.actorType)
	b = append(b, ',')
	b = appendCell(b, x.actorName)
	b = append(b, ',')
	b = appendRawCell(b, x.targets)
	b = append(b, ',')
	b = appendCell(b, x.location)
	b = append(b, ',')
	b = appendCell(b, x.userAgent)
	b = append(b, ',')
	if len(x.metadata) > 2 {
		b = appendRawCell(b, x.metadata)
	}
	b = append(b, ',')
	if len(x.version) > 0 && string(x.version) != "0" {
		b = append(b, x.version...)
	}
	b = append(b, ',')
	b = append(b, x.seq...)
	b = append(b, ',')
	b = append(b, x.receivedAt...)
	b = append(b, '\r', '\n')
	c.buf = b
	_, err := c.w.Write(b)
	return err
}

// Flush writes out what is buffered.
func (c *CSVWriter) Flush() error { return c.w.Flush() }

func appendTimeCell(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// dangerous reports whether a cell starting with c would be read as a
// formula by a spreadsheet.
func dangerous(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// appendCell appends a text cell, neutralised and quoted as needed.
func appendCell(b []byte, s string) []byte {
	neutral := s != "" && dangerous(s[0])
	if !strings.ContainsAny(s, ",\"\r\n") {
		if neutral {
			b = append(b, '\'')
		}
		return append(b, s...)
	}
	b = append(b, '"')
	if neutral {
		b = append(b, '\'')
	}
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		b = append(b, s[:i+1]...)
		b = append(b, '"')
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}

// appendRawCell appends a JSON cell: it starts with '[' or '{', never a
// formula, and is quoted when it needs to be.
func appendRawCell(b []byte, v []byte) []byte {
	return appendCell(b, unsafeString(v))
}

// unsafeString views b as a string without copying; the cell is copied
// into the row at once and b is not changed meanwhile.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendTargets(b []byte, r *event.Record) []byte {
	b = append(b, '[')
	for i, t := range r.Targets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = event.AppendJSONString(b, t.ID)
		b = append(b, `,"type":`...)
		b = event.AppendJSONString(b, t.Type)
		if t.Name != "" {
			b = append(b, `,"name":`...)
			b = event.AppendJSONString(b, t.Name)
		}
		if i < len(r.TargetsMetadata) && len(r.TargetsMetadata[i]) > 0 {
			b = append(b, `,"metadata":`...)
			b = appendMetadata(b, r.TargetsMetadata[i])
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendMetadata(b []byte, md event.Metadata) []byte {
	var arr [event.MaxMetadataKeys]string
	keys := arr[:0]
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = event.AppendJSONString(b, k)
		b = append(b, ':')
		switch v := md[k].(type) {
		case string:
			b = event.AppendJSONString(b, v)
		case json.Number:
			b = append(b, v...)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}
