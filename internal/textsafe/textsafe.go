// Package textsafe names the characters that must not hide in identifiers
// or reach a terminal as they are: control characters (C0, DEL, C1), which
// a terminal obeys (ESC sequences, CR overwriting a line, BEL), and the
// invisible formatting characters (bidirectional controls, zero-width
// characters) that make two different strings look alike.
//
// Trail refuses them where a value is an identifier (docs/ARCHITECTURE.md,
// "Input rules") and escapes them, with Terminal, where it prints free text
// to a terminal.
package textsafe

import (
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IsControl reports whether r is a C0 control (U+0000–U+001F), DEL
// (U+007F) or a C1 control (U+0080–U+009F).
func IsControl(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }

// IsInvisible reports whether r is a bidirectional control (U+061C,
// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) or a zero-width character
// (U+200B–U+200D, U+2060, U+FEFF).
func IsInvisible(r rune) bool {
	switch {
	case r == 0x061c, r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e,
		r == 0x2060, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// HasControl reports whether s has a control character.
func HasControl(s string) bool { return strings.ContainsFunc(s, IsControl) }

// HasInvisible reports whether s has an invisible formatting character.
func HasInvisible(s string) bool { return strings.ContainsFunc(s, IsInvisible) }

// Terminal returns s with what a terminal would obey or hide written as
// escapes: control and invisible characters as \x1b, \u202e and the like,
// and bytes that are not UTF-8 as \xff. Text without any of these is
// returned as it is (a backslash too: the output is for reading, not for
// parsing back).
func Terminal(s string) string { return escape(s, false) }

// TerminalLines is Terminal for text of several lines: line feeds and tabs
// are kept as they are.
func TerminalLines(s string) string { return escape(s, true) }

func escape(s string, lines bool) string {
	keep := func(r rune) bool { return lines && (r == '\n' || r == '\t') }
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (IsControl(r) || IsInvisible(r)) && !keep(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case keep(r):
			b.WriteRune(r)
		case IsControl(r) && r < 0x80:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(r)|0x100, 16)[1:])
		case IsControl(r) || IsInvisible(r):
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatUint(uint64(r)|0x10000, 16)[1:])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Writer passes what is written to it on to a terminal through
// TerminalLines, whatever the chunks: a character split between two writes
// is escaped whole. Close writes out a truncated last character.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (t *Writer) Write(p []byte) (int, error) {
	buf := append(t.pending, p...)
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.pending = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(t.w, TerminalLines(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes what is left of an incomplete character, escaped.
func (t *Writer) Close() error {
	if len(t.pending) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, TerminalLines(string(t.pending)))
	t.pending = nil
	return err
}
