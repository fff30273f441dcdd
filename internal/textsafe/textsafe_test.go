package textsafe

import (
	"bytes"
	"strings"
	"testing"
)

func TestClasses(t *testing.T) {
	for _, c := range []struct {
		r                  rune
		control, invisible bool
	}{
		{'a', false, false}, {' ', false, false}, {'é', false, false}, {'\u00a0', false, false},
		{0, true, false}, {'\a', true, false}, {'\n', true, false}, {'\r', true, false}, {0x1b, true, false},
		{0x1f, true, false}, {0x7f, true, false}, {0x80, true, false}, {0x9b, true, false}, {0x9f, true, false},
		{0x061c, false, true}, {0x200b, false, true}, {0x200c, false, true}, {0x200d, false, true},
		{0x200e, false, true}, {0x200f, false, true}, {0x202a, false, true}, {0x202e, false, true},
		{0x2060, false, true}, {0x2066, false, true}, {0x2069, false, true}, {0xfeff, false, true},
		{0x2010, false, false}, {0x202f, false, false}, {0x2065, false, false}, {0x206a, false, false},
	} {
		if got := IsControl(c.r); got != c.control {
			t.Errorf("IsControl(%U) = %v", c.r, got)
		}
		if got := IsInvisible(c.r); got != c.invisible {
			t.Errorf("IsInvisible(%U) = %v", c.r, got)
		}
	}
}

func TestTerminal(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain text, é ü 漢字", "plain text, é ü 漢字"},
		{"\x1b[2J\x1b]0;title\a", `\x1b[2J\x1b]0;title\x07`},
		{"line\r\nnext\ttab", `line\x0d\x0anext\x09tab`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"c1\u009bx", `c1\u009bx`},
		{"user.\u202edeleted", `user.\u202edeleted`},
		{"a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"bad\xffbyte", `bad\xffbyte`},
		{`back\slash`, `back\slash`},
	} {
		if got := Terminal(c.in); got != c.want {
			t.Errorf("Terminal(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTerminalLines(t *testing.T) {
	in := "a,b\n\"x\ty\"\r\n\x1b[2J\u202e\n"
	want := "a,b\n\"x\ty\"\\x0d\n\\x1b[2J\\u202e\n"
	if got := TerminalLines(in); got != want {
		t.Errorf("TerminalLines(%q) = %q, want %q", in, got, want)
	}
}

// TestWriter: the same output whatever the chunks, characters split
// between writes included.
func TestWriter(t *testing.T) {
	in := "héllo\x1b[31m wörld \u202e日本\u0085\xff\n" + strings.Repeat("é", 10)
	want := TerminalLines(in)
	for size := 1; size <= len(in); size++ {
		var out bytes.Buffer
		w := NewWriter(&out)
		for i := 0; i < len(in); i += size {
			if _, err := w.Write([]byte(in[i:min(i+size, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("chunks of %d: %q, want %q", size, out.String(), want)
		}
	}
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Write([]byte("ab\xe6\x97")) // a truncated 日
	w.Close()
	if out.String() != `ab\xe6\x97` {
		t.Errorf("truncated end: %q", out.String())
	}
}
