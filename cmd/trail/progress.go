package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// isTerminal reports whether w is a terminal (a character device), where a
// progress line that rewrites itself is welcome.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressEvery is how often a progress line is redrawn at most.
const progressEvery = 250 * time.Millisecond

// progress draws one status line that rewrites itself ("\r…"), at most every
// progressEvery. Its methods do nothing when w is nil, so callers need not
// check whether progress is wanted.
type progress struct {
	w     io.Writer
	now   func() time.Time
	last  time.Time
	width int // of the line drawn last, to blank it out
}

// newProgress returns a progress line on w if w is a terminal, else one that
// draws nothing.
func newProgress(w io.Writer) *progress {
	if !isTerminal(w) {
		return &progress{}
	}
	return &progress{w: w, now: time.Now}
}

// update redraws the line with format and args, unless it was drawn less
// than progressEvery ago. The text is only formatted when it is drawn.
func (p *progress) update(format string, args ...any) {
	if p.w == nil {
		return
	}
	if t := p.now(); t.Sub(p.last) >= progressEvery {
		p.last = t
		p.draw(fmt.Sprintf(format, args...))
	}
}

func (p *progress) draw(s string) {
	pad := max(0, p.width-len(s))
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.width = len(s)
}

// clear blanks the line out, so that what is printed next starts clean.
func (p *progress) clear() {
	if p.w == nil || p.width == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	p.width = 0
}

// commas formats n with thousands separators: 1,204,331.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// byteSize formats a byte count for people: 512 B, 12.3 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
