package lograte_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/lograte"
)

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(1_000_000, 0)
	h := lograte.New(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return clock })
	log := slog.New(h).With("component", "x")
	for _, step := range []struct {
		advance time.Duration
		msg     string
		want    string // the line logged, "" for none
	}{
		{0, "db down", `msg="db down" component=x`},
		{time.Second, "db down", ""},
		{time.Second, "db down", ""},
		{time.Second, "other", `msg=other component=x`},
		{6 * time.Second, "db down", ""}, // 9 s after the first
		{time.Second, "db down", `msg="db down" component=x suppressed=3 suppressed_over=10s`},
		{10 * time.Second, "db down", `msg="db down" component=x`},
	} {
		clock = clock.Add(step.advance)
		buf.Reset()
		log.Error(step.msg)
		got := strings.TrimSpace(buf.String())
		if step.want == "" && got != "" || step.want != "" && !strings.HasSuffix(got, step.want) {
			t.Errorf("after %s, %q logged %q; want %q", step.advance, step.msg, got, step.want)
		}
	}
	// Derived handlers share the limits.
	buf.Reset()
	slog.New(h.WithGroup("g")).Error("db down")
	if buf.Len() != 0 {
		t.Errorf("a derived handler logged %q within the interval", buf.String())
	}
}
