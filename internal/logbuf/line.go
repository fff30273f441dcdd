package logbuf

import (
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Encoding is how the slog handler a Handler wraps writes its records, so
// that the Handler can write lines that look the same without it (Line).
type Encoding int

// The encodings a Handler can write lines in.
const (
	// Opaque: unknown to the Handler, which then writes no Line of its own.
	Opaque Encoding = iota
	// JSON: slog.NewJSONHandler with no ReplaceAttr and no AddSource.
	JSON
	// Text: slog.NewTextHandler with no ReplaceAttr and no AddSource.
	Text
)

// NewEncodedHandler returns a Handler over next, which must write to w in
// enc (a slog.JSONHandler or slog.TextHandler made with no ReplaceAttr and
// no AddSource): its Line writes records the way next would.
func NewEncodedHandler(next slog.Handler, w *Writer, enc Encoding) *Handler {
	return &Handler{next: next, w: w, enc: enc,
		lines: &sync.Pool{New: func() any { return &Line{buf: make([]byte, 0, 512)} }}}
}

// A Line is one record written straight into a Handler's Writer, encoded
// as the handler it wraps would encode it, without slog's generic
// machinery: no Record, no attribute values boxed, no reflection for
// numbers. The access log writes one per request answered
// (docs/PERFORMANCE.md, "CPU per event").
//
// Start a Line with Handler.Line, add its attributes, then End it. Only
// strings, integers and floats are supported; they are encoded, escaped
// and quoted exactly as slog.JSONHandler and slog.TextHandler do.
type Line struct {
	buf  []byte
	json bool
	w    *Writer
	pool *sync.Pool // where End returns it
}

// Line starts a record at t with level and msg, or returns nil when h
// cannot write one itself (its encoding is Opaque, or it was derived with
// WithAttrs or WithGroup): log through slog then. The caller checks
// Enabled first, as slog.Logger does.
func (h *Handler) Line(t time.Time, level slog.Level, msg string) *Line {
	if h.enc == Opaque {
		return nil
	}
	l := h.lines.Get().(*Line)
	l.json, l.w, l.pool = h.enc == JSON, h.w, h.lines
	t = t.Round(0) // as slog does: no monotonic reading
	if l.json {
		l.buf = append(l.buf, `{"time":"`...)
		l.buf = t.AppendFormat(l.buf, time.RFC3339Nano)
		l.buf = append(l.buf, `","level":`...)
	} else {
		l.buf = append(l.buf, "time="...)
		l.buf = appendRFC3339Millis(l.buf, t)
		l.buf = append(l.buf, " level="...)
	}
	l.appendString(level.String())
	l.key("msg")
	l.appendString(msg)
	return l
}

// String adds the attribute key=value.
func (l *Line) String(key, value string) {
	l.key(key)
	l.appendString(value)
}

// Int adds the attribute key=v.
func (l *Line) Int(key string, v int64) {
	l.key(key)
	l.buf = strconv.AppendInt(l.buf, v, 10)
}

// Float adds the attribute key=v, a finite number.
func (l *Line) Float(key string, v float64) {
	l.key(key)
	if l.json {
		l.buf = appendJSONFloat(l.buf, v)
	} else {
		l.buf = strconv.AppendFloat(l.buf, v, 'g', -1, 64)
	}
}

// End writes the line to the Handler's Writer. Unless mayWait (the record
// would have been logged with a MayWait context) and level is below a
// warning, the Writer's buffer is then written out, as Handler.Handle does.
// The Line must not be used after End.
func (l *Line) End(level slog.Level, mayWait bool) error {
	if l.json {
		l.buf = append(l.buf, '}')
	}
	l.buf = append(l.buf, '\n')
	_, err := l.w.Write(l.buf)
	if !mayWait || level >= slog.LevelWarn {
		if ferr := l.w.Flush(); err == nil {
			err = ferr
		}
	}
	if cap(l.buf) <= 4<<10 { // one long line must not stay pinned
		pool := l.pool
		l.buf, l.w, l.pool = l.buf[:0], nil, nil
		pool.Put(l)
	}
	return err
}

func (l *Line) key(k string) {
	if l.json {
		l.buf = append(l.buf, ',')
		l.appendString(k)
		l.buf = append(l.buf, ':')
	} else {
		l.buf = append(l.buf, ' ')
		l.appendString(k)
		l.buf = append(l.buf, '=')
	}
}

// appendString is slog's handleState.appendString.
func (l *Line) appendString(s string) {
	switch {
	case l.json:
		l.buf = append(l.buf, '"')
		l.buf = appendEscapedJSONString(l.buf, s)
		l.buf = append(l.buf, '"')
	case needsQuoting(s):
		l.buf = strconv.AppendQuote(l.buf, s)
	default:
		l.buf = append(l.buf, s...)
	}
}

// appendJSONFloat writes v as encoding/json does (slog.JSONHandler marshals
// floats with it).
func appendJSONFloat(b []byte, v float64) []byte {
	abs := v
	if abs < 0 {
		abs = -abs
	}
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b = strconv.AppendFloat(b, v, 'e', -1, 64)
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendRFC3339Millis is slog's: RFC 3339 with exactly three fractional
// digits, truncated.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the 4th digit
}

// needsQuoting is slog.TextHandler's test for a string it quotes.
func needsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b != '\\' && (b == ' ' || b == '=' || !safeSet(b)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// safeSet reports whether the ASCII byte b stands for itself in a JSON
// string: every one but the control characters, '"' and '\'.
func safeSet(b byte) bool { return b >= 0x20 && b != '"' && b != '\\' }

const hexDigits = "0123456789abcdef"

// appendEscapedJSONString is slog.JSONHandler's escaping of s (without the
// quotes): encoding/json's without HTML escaping, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped.
func appendEscapedJSONString(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safeSet(b) {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\')
			switch b {
			case '\\', '"':
				buf = append(buf, b)
			case '\n':
				buf = append(buf, 'n')
			case '\r':
				buf = append(buf, 'r')
			case '\t':
				buf = append(buf, 't')
			default:
				buf = append(buf, 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}
