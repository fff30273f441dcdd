package event

import (
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds the nesting of skipped values (unknown fields, rejected
// metadata values). Skipping is iterative, so this is not about the stack: it
// keeps the error for hostile input short and its cost linear.
const maxDepth = 1000

// kind is the JSON type of the value at the read position.
type kind uint8

const (
	kindInvalid kind = iota // a syntax error was recorded
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// an returns the kind with its article, for messages ("found an array").
func (k kind) an() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	}
	return "nothing"
}

// syntaxError is the first point where the input stopped being JSON.
type syntaxError struct {
	msg string
	off int // byte offset into the input
}

// scanner is a strict JSON reader over one input, written for this package
// rather than using encoding/json because an audit record needs what that
// package hides: duplicate keys, invalid UTF-8 (which it silently replaces),
// exact number text, and byte offsets for every kind of error.
//
// Errors are sticky: after the first syntax error every method returns zero
// values and every loop ends, so callers check err once where convenient.
type scanner struct {
	data []byte
	// str holds the same bytes as data. Strings without escapes (nearly all of
	// them) are sliced from it, so decoding them does not allocate; the price is
	// that decoded values keep the whole input alive, which is bounded by the
	// request body limit and lasts only as long as the Draft.
	str string
	pos int
	err *syntaxError
	buf []byte // scratch for strings with escapes
}

func newScanner(data []byte) scanner {
	return scanner{data: data, str: string(data)}
}

func (sc *scanner) fail(off int, format string, args ...any) {
	if sc.err == nil {
		sc.err = &syntaxError{msg: fmt.Sprintf(format, args...), off: off}
	}
}

func (sc *scanner) failEOF() {
	sc.fail(len(sc.data), "unexpected end of input")
}

// quoteByte describes the byte at i for a message: 'x', or U+000A, or 0xff.
func (sc *scanner) quoteByte(i int) string {
	c := sc.data[i]
	switch {
	case c >= 0x20 && c < 0x7f:
		return fmt.Sprintf("%q", rune(c))
	case c < 0x80:
		return fmt.Sprintf("%U", rune(c))
	}
	r, _ := utf8.DecodeRune(sc.data[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("%q (%U)", r, r)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (sc *scanner) ws() {
	for sc.pos < len(sc.data) && isSpace(sc.data[sc.pos]) {
		sc.pos++
	}
}

// next skips whitespace and returns the kind of the value that starts there,
// without consuming it. At the end of input or a byte that cannot start a value
// it records a syntax error and returns kindInvalid.
func (sc *scanner) next() kind {
	if sc.err != nil {
		return kindInvalid
	}
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return kindInvalid
	}
	switch c := sc.data[sc.pos]; c {
	case '{':
		return kindObject
	case '[':
		return kindArray
	case '"':
		return kindString
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return kindNumber
	}
	sc.fail(sc.pos, "invalid character %s looking for the beginning of a value", sc.quoteByte(sc.pos))
	return kindInvalid
}

// end checks that only whitespace follows the top-level value.
func (sc *scanner) end() {
	if sc.err != nil {
		return
	}
	sc.ws()
	if sc.pos < len(sc.data) {
		sc.fail(sc.pos, "unexpected data after the top-level value (%s)", sc.quoteByte(sc.pos))
	}
}

func (sc *scanner) literal(lit string) bool {
	if sc.err != nil {
		return false
	}
	end := sc.pos + len(lit)
	if end <= len(sc.data) && string(sc.data[sc.pos:end]) == lit {
		sc.pos = end
		return true
	}
	for i := 0; i < len(lit); i++ {
		if sc.pos+i >= len(sc.data) {
			sc.failEOF()
			return false
		}
		if sc.data[sc.pos+i] != lit[i] {
			sc.fail(sc.pos+i, "invalid character %s in literal %s", sc.quoteByte(sc.pos+i), lit)
			return false
		}
	}
	return false
}

// readNull consumes null; the caller has seen kindNull.
func (sc *scanner) readNull() { sc.literal("null") }

// readBool consumes true or false; the caller has seen kindBool.
func (sc *scanner) readBool() bool {
	if sc.data[sc.pos] == 't' {
		return sc.literal("true")
	}
	sc.literal("false")
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// readNumber consumes a number and returns its exact source text; the caller
// has seen kindNumber.
func (sc *scanner) readNumber() string {
	start := sc.pos
	i := start
	if sc.data[i] == '-' {
		i++
	}
	if i < len(sc.data) && sc.data[i] == '0' {
		i++
		if i < len(sc.data) && isDigit(sc.data[i]) {
			sc.fail(i-1, "number with a leading zero")
			return ""
		}
	} else if i = sc.digits(i); i < 0 {
		return ""
	}
	if i < len(sc.data) && sc.data[i] == '.' {
		if i = sc.digits(i + 1); i < 0 {
			return ""
		}
	}
	if i < len(sc.data) && (sc.data[i] == 'e' || sc.data[i] == 'E') {
		i++
		if i < len(sc.data) && (sc.data[i] == '+' || sc.data[i] == '-') {
			i++
		}
		if i = sc.digits(i); i < 0 {
			return ""
		}
	}
	sc.pos = i
	return sc.str[start:i]
}

// digits consumes one or more digits from i and returns the index after
// them, or -1 after recording a syntax error.
func (sc *scanner) digits(i int) int {
	if i >= len(sc.data) {
		sc.failEOF()
		return -1
	}
	if !isDigit(sc.data[i]) {
		sc.fail(i, "invalid character %s in number (expected a digit)", sc.quoteByte(i))
		return -1
	}
	for i < len(sc.data) && isDigit(sc.data[i]) {
		i++
	}
	return i
}

// readString consumes a string (the caller has seen kindString) and returns
// its decoded value and whether that value is valid UTF-8: no invalid bytes
// and no unpaired surrogate escapes. Invalid UTF-8 is not a syntax error here:
// the caller reports it against the field it occurred in.
func (sc *scanner) readString() (string, bool) {
	start := sc.pos + 1
	ascii := true
	for i := start + plainPrefix(sc.str[start:]); i < len(sc.data); i++ {
		switch c := sc.data[i]; {
		case c == '"':
			sc.pos = i + 1
			s := sc.str[start:i]
			return s, ascii || utf8.ValidString(s)
		case c == '\\':
			return sc.readEscaped(start, i)
		case c < 0x20:
			sc.fail(i, "control character %U in a string (it must be escaped)", rune(c))
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	sc.fail(len(sc.data), "unexpected end of input in the string starting at byte %d", start-1)
	return "", false
}

// readEscaped finishes a string that has escapes, from the first backslash at i.
func (sc *scanner) readEscaped(start, i int) (string, bool) {
	buf := append(sc.buf[:0], sc.data[start:i]...)
	lone := false // an unpaired surrogate escape, which has no UTF-8 form
	for i < len(sc.data) {
		c := sc.data[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			sc.buf = buf
			return string(buf), !lone && utf8.Valid(buf)
		case c < 0x20:
			sc.fail(i, "control character %U in a string (it must be escaped)", rune(c))
			return "", false
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(sc.data) {
			sc.failEOF()
			return "", false
		}
		switch e := sc.data[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := sc.hex4(i + 2)
			if !ok {
				return "", false
			}
			i += 6
			if utf16IsHigh(r) && i+6 <= len(sc.data) && sc.data[i] == '\\' && sc.data[i+1] == 'u' {
				if r2, ok := sc.hex4(i + 2); !ok {
					return "", false
				} else if utf16IsLow(r2) {
					buf = utf8.AppendRune(buf, (r-0xd800)<<10+(r2-0xdc00)+0x10000)
					i += 6
					continue
				}
			}
			if utf16IsHigh(r) || utf16IsLow(r) {
				lone = true
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			sc.fail(i, "invalid escape sequence \\%s in a string", string(rune(e)))
			return "", false
		}
		i += 2
	}
	sc.fail(len(sc.data), "unexpected end of input in the string starting at byte %d", start-1)
	return "", false
}

func utf16IsHigh(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }

// hex4 decodes the four hex digits of a \u escape starting at i.
func (sc *scanner) hex4(i int) (rune, bool) {
	var r rune
	for j := i; j < i+4; j++ {
		if j >= len(sc.data) {
			sc.failEOF()
			return 0, false
		}
		c := sc.data[j]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			sc.fail(j, "invalid character %s in \\u escape (expected a hex digit)", sc.quoteByte(j))
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipString consumes a string without decoding it, checking only syntax.
func (sc *scanner) skipString() {
	for i := sc.pos + 1; i < len(sc.data); i++ {
		switch c := sc.data[i]; {
		case c == '"':
			sc.pos = i + 1
			return
		case c < 0x20:
			sc.fail(i, "control character %U in a string (it must be escaped)", rune(c))
			return
		case c == '\\':
			if i+1 >= len(sc.data) {
				sc.failEOF()
				return
			}
			switch e := sc.data[i+1]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := sc.hex4(i + 2); !ok {
					return
				}
				i += 5
			default:
				sc.fail(i, "invalid escape sequence \\%s in a string", string(rune(e)))
				return
			}
		}
	}
	sc.fail(len(sc.data), "unexpected end of input in the string starting at byte %d", sc.pos)
}

// objectFirst consumes the '{' at the read position and reports whether a
// member follows; the read position is then at its key.
func (sc *scanner) objectFirst() bool {
	sc.pos++
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return false
	}
	switch sc.data[sc.pos] {
	case '}':
		sc.pos++
		return false
	case '"':
		return true
	}
	sc.fail(sc.pos, "invalid character %s looking for an object key (a string) or '}'", sc.quoteByte(sc.pos))
	return false
}

// objectNext consumes what follows an object member: ',' (then reports true,
// the read position at the next key) or '}' (then reports false).
func (sc *scanner) objectNext() bool {
	if sc.err != nil {
		return false
	}
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return false
	}
	switch sc.data[sc.pos] {
	case ',':
		sc.pos++
		sc.ws()
		if sc.pos >= len(sc.data) {
			sc.failEOF()
			return false
		}
		if sc.data[sc.pos] == '"' {
			return true
		}
		sc.fail(sc.pos, "invalid character %s looking for an object key (a string) after ','", sc.quoteByte(sc.pos))
		return false
	case '}':
		sc.pos++
		return false
	}
	sc.fail(sc.pos, "invalid character %s after an object value (expected ',' or '}')", sc.quoteByte(sc.pos))
	return false
}

// key reads an object key and the ':' after it. It reports whether the key is
// valid UTF-8.
func (sc *scanner) key() (string, bool) {
	k, valid := sc.readString()
	if sc.err != nil {
		return "", false
	}
	sc.colon()
	return k, valid
}

func (sc *scanner) colon() {
	if sc.err != nil {
		return
	}
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return
	}
	if sc.data[sc.pos] != ':' {
		sc.fail(sc.pos, "invalid character %s after an object key (expected ':')", sc.quoteByte(sc.pos))
		return
	}
	sc.pos++
}

// arrayFirst consumes the '[' at the read position and reports whether an
// element follows.
func (sc *scanner) arrayFirst() bool {
	sc.pos++
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return false
	}
	if sc.data[sc.pos] == ']' {
		sc.pos++
		return false
	}
	return true
}

// arrayNext consumes what follows an array element: ',' (then reports true)
// or ']' (then reports false).
func (sc *scanner) arrayNext() bool {
	if sc.err != nil {
		return false
	}
	sc.ws()
	if sc.pos >= len(sc.data) {
		sc.failEOF()
		return false
	}
	switch sc.data[sc.pos] {
	case ',':
		sc.pos++
		return true
	case ']':
		sc.pos++
		return false
	}
	sc.fail(sc.pos, "invalid character %s after an array element (expected ',' or ']')", sc.quoteByte(sc.pos))
	return false
}

// skipValue consumes one value of any shape, checking its syntax. It keeps
// its own stack of open containers instead of recursing, so that no input can
// exhaust the goroutine stack.
func (sc *scanner) skipValue() {
	var closers [32]byte // '}' or ']' per open container; grows only for deep input
	stack := closers[:0]
	for sc.err == nil {
		switch sc.next() {
		case kindInvalid:
			return
		case kindObject:
			open := sc.pos
			if sc.objectFirst() {
				if len(stack) == maxDepth {
					sc.fail(open, "nesting deeper than %d levels", maxDepth)
					return
				}
				stack = append(stack, '}')
				sc.skipString()
				sc.colon()
				continue
			}
		case kindArray:
			open := sc.pos
			if sc.arrayFirst() {
				if len(stack) == maxDepth {
					sc.fail(open, "nesting deeper than %d levels", maxDepth)
					return
				}
				stack = append(stack, ']')
				continue
			}
		case kindString:
			sc.skipString()
		case kindNumber:
			sc.readNumber()
		case kindBool:
			sc.readBool()
		case kindNull:
			sc.readNull()
		}
		// A value ended: close every container that ends with it.
		for {
			if sc.err != nil || len(stack) == 0 {
				return
			}
			if stack[len(stack)-1] == '}' {
				if sc.objectNext() {
					sc.skipString()
					sc.colon()
					break
				}
			} else if sc.arrayNext() {
				break
			}
			stack = stack[:len(stack)-1]
		}
	}
}
