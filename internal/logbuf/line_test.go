package logbuf

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// lineAttr is one attribute of a line: a string, an int or a float.
type lineAttr struct {
	key string
	s   string
	i   int64
	f   float64
	typ byte // 's', 'i' or 'f'
}

func str(k, v string) lineAttr       { return lineAttr{key: k, s: v, typ: 's'} }
func num(k string, v int64) lineAttr { return lineAttr{key: k, i: v, typ: 'i'} }
func flt(k string, v float64) lineAttr {
	return lineAttr{key: k, f: v, typ: 'f'}
}

// TestLineEncodesAsSlog checks that a Line writes, byte for byte, what
// slog's JSON and text handlers write for the same record: the access
// log's format and its escaping of client strings must not depend on
// which of the two wrote a line.
func TestLineEncodesAsSlog(t *testing.T) {
	base := time.Now()
	hostile := []string{
		"", "plain", "with space", "a=b", `quote"d`, `back\slash`, "new\nline", "cr\rtab\t",
		"nul\x00bel\x07esc\x1b", "del\x7f", "<html>&amp;", "héllo wörld", "日本語",
		"invalid \xff\xfe utf-8", "\u2028line sep\u2029", "replacement \ufffd char", "nbsp\u00a0here",
		"zero\u200bwidth", "/audit_logs/events", "127.0.0.1:54321", "POST /v1/events/batch",
	}
	var records [][]lineAttr
	for _, h := range hostile {
		records = append(records, []lineAttr{str("request_id", h), str(h, "value")})
	}
	records = append(records,
		[]lineAttr{str("request_id", "0123456789abcdef0123456789abcdef"), str("method", "POST"),
			str("route", "POST /audit_logs/events"), str("path", "/audit_logs/events"), num("status", 201),
			num("bytes", 16), flt("duration_ms", 6.283), str("remote", "127.0.0.1:40000"),
			str("key_id", "key_01"), str("organization_id", "org_01")},
		[]lineAttr{num("n", 0), num("neg", -42), num("big", 1<<62)},
		[]lineAttr{flt("zero", 0), flt("milli", 0.001), flt("int", 12), flt("long", 123456.789),
			flt("huge", 1e21), flt("tiny", 1e-7), flt("million", 1234567), flt("neg", -0.5)},
	)
	times := []time.Time{base, base.Truncate(time.Second), base.Truncate(time.Millisecond),
		time.Date(base.Year(), 1, 2, 3, 4, 5, 999_999_999, time.UTC), base.In(time.FixedZone("X", 5*3600+1800))}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2}
	msgs := []string{"request", "with space", `q"uote`}
	for _, enc := range []Encoding{JSON, Text} {
		for i, attrs := range records {
			tm, level, msg := times[i%len(times)], levels[i%len(levels)], msgs[i%len(msgs)]
			var want, got bytes.Buffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			var sh slog.Handler = slog.NewJSONHandler(&want, opts)
			if enc == Text {
				sh = slog.NewTextHandler(&want, opts)
			}
			r := slog.NewRecord(tm, level, msg, 0)
			for _, a := range attrs {
				switch a.typ {
				case 's':
					r.AddAttrs(slog.String(a.key, a.s))
				case 'i':
					r.AddAttrs(slog.Int64(a.key, a.i))
				case 'f':
					r.AddAttrs(slog.Float64(a.key, a.f))
				}
			}
			if err := sh.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}

			w := New(&got, hour, 1<<20)
			h := NewEncodedHandler(sh, w, enc)
			l := h.Line(tm, level, msg)
			if l == nil {
				t.Fatalf("encoding %d: Line returned nil", enc)
			}
			for _, a := range attrs {
				switch a.typ {
				case 's':
					l.String(a.key, a.s)
				case 'i':
					l.Int(a.key, a.i)
				case 'f':
					l.Float(a.key, a.f)
				}
			}
			if err := l.End(level, false); err != nil {
				t.Fatal(err)
			}
			_ = w.Close()
			if got.String() != want.String() {
				t.Errorf("encoding %d, record %d:\n got %q\nwant %q", enc, i, got.String(), want.String())
			}
		}
	}
}

func TestLineIsNilWhereTheHandlerCannotWriteIt(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, hour, 1<<10)
	defer w.Close()
	sh := slog.NewJSONHandler(w, nil)
	tests := []struct {
		name string
		h    slog.Handler
	}{
		{"an opaque handler", NewHandler(sh, w)},
		{"with attributes", NewEncodedHandler(sh, w, JSON).WithAttrs([]slog.Attr{slog.String("component", "x")})},
		{"with a group", NewEncodedHandler(sh, w, JSON).WithGroup("g")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l := tt.h.(*Handler).Line(time.Now(), slog.LevelInfo, "request"); l != nil {
				t.Fatal("Line is not nil")
			}
		})
	}
}

func TestLineMayWaitInTheBuffer(t *testing.T) {
	tests := []struct {
		name      string
		level     slog.Level
		mayWait   bool
		wantWrite int
	}{
		{"a line that may wait stays buffered", slog.LevelInfo, true, 0},
		{"a line that may not wait goes out", slog.LevelInfo, false, 1},
		{"a warning goes out even if it may wait", slog.LevelWarn, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &syncBuffer{}
			w := New(out, hour, 1<<10)
			h := NewEncodedHandler(slog.NewJSONHandler(w, nil), w, JSON)
			l := h.Line(time.Now(), tt.level, "request")
			l.String("k", "v")
			if err := l.End(tt.level, tt.mayWait); err != nil {
				t.Fatal(err)
			}
			if got := out.Writes(); got != tt.wantWrite {
				t.Fatalf("%d writes before Close, want %d", got, tt.wantWrite)
			}
			_ = w.Close()
			if !bytes.HasSuffix([]byte(out.String()), []byte(`"msg":"request","k":"v"}`+"\n")) {
				t.Fatalf("line %q", out.String())
			}
		})
	}
}

// BenchmarkAccessLine compares an access log line written as a Line with
// the same line through slog (go test -bench AccessLine ./internal/logbuf).
func BenchmarkAccessLine(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "slog"
		if direct {
			name = "line"
		}
		b.Run(name, func(b *testing.B) {
			w := New(io.Discard, hour, 32<<10)
			defer w.Close()
			h := NewEncodedHandler(slog.NewJSONHandler(w, nil), w, JSON)
			log := slog.New(h)
			ctx := MayWait(context.Background())
			b.ReportAllocs()
			for b.Loop() {
				if direct {
					l := h.Line(time.Now(), slog.LevelInfo, "request")
					l.String("request_id", "0123456789abcdef0123456789abcdef")
					l.String("method", "POST")
					l.String("route", "POST /audit_logs/events")
					l.String("path", "/audit_logs/events")
					l.Int("status", 201)
					l.Int("bytes", 16)
					l.Float("duration_ms", 6.283)
					l.String("remote", "127.0.0.1:40000")
					l.String("key_id", "key_01JTKEY0000000000000000")
					l.String("organization_id", "org_01JTORG0000000000000000")
					_ = l.End(slog.LevelInfo, true)
					continue
				}
				log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("request_id", "0123456789abcdef0123456789abcdef"),
					slog.String("method", "POST"),
					slog.String("route", "POST /audit_logs/events"),
					slog.String("path", "/audit_logs/events"),
					slog.Int("status", 201),
					slog.Int64("bytes", 16),
					slog.Float64("duration_ms", 6.283),
					slog.String("remote", "127.0.0.1:40000"),
					slog.String("key_id", "key_01JTKEY0000000000000000"),
					slog.String("organization_id", "org_01JTORG0000000000000000"))
			}
		})
	}
}
