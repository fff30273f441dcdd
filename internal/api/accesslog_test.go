package api

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/logbuf"
)

var updateAccessLog = flag.Bool("update-access-log", false, "rewrite testdata/accesslog/*.golden from the current access log")

// accessLogVarying are the parts of an access log line that differ from run
// to run (time, duration, generated ids), masked before comparing.
var accessLogVarying = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`"time":"[^"]*"`), `"time":"TIME"`},
	{regexp.MustCompile(`"duration_ms":[0-9.e+-]+`), `"duration_ms":DURATION`},
	{regexp.MustCompile(`"(key_id|organization_id)":"[^"]*"`), `"$1":"ID"`},
	{regexp.MustCompile(`(^|\n)time=\S+`), `${1}time=TIME`},
	{regexp.MustCompile(`duration_ms=\S+`), `duration_ms=DURATION`},
	{regexp.MustCompile(`(key_id|organization_id)=\S+`), `$1=ID`},
}

// TestAccessLogGolden pins the access log's lines, JSON and text, for an
// accepted event, a refusal and a request no route matched (with a path
// that needs escaping), written both ways: by the handler trail serve
// sets up, which writes the line itself (logbuf.Line), and through slog,
// as any other handler gets it. Both must give the golden lines.
func TestAccessLogGolden(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		for _, direct := range []bool{true, false} {
			name := format + "/slog"
			if direct {
				name = format + "/direct"
			}
			t.Run(name, func(t *testing.T) {
				out := &syncBuffer{}
				lines := logbuf.New(out, time.Hour, 1<<20)
				opts := &slog.HandlerOptions{Level: slog.LevelInfo}
				var h slog.Handler = slog.NewJSONHandler(lines, opts)
				enc := logbuf.JSON
				if format == "text" {
					h, enc = slog.NewTextHandler(lines, opts), logbuf.Text
				}
				var lh *logbuf.Handler
				if direct {
					lh = logbuf.NewEncodedHandler(h, lines, enc)
				} else {
					lh = logbuf.NewHandler(h, lines)
				}
				e := newEnv(t, func(c *Config, _ *env) {
					c.Logger = slog.New(lh)
					if direct {
						c.AccessLines = lh
					}
				})
				org := e.org("Acme")
				_ = lines.Flush()
				out.Reset()
				e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in"), "X-Request-ID", "req-1")
				e.do("POST", "/audit_logs/events", e.admin, `{"organization_id":"`+org+`","event":{}}`, "X-Request-ID", "req-2")
				e.do("GET", `/no%20such/%22route%22=%0A%E2%80%A8`, "", "", "X-Request-ID", "req-3")
				_ = lines.Close()
				got := out.String()
				for _, v := range accessLogVarying {
					got = v.re.ReplaceAllString(got, v.repl)
				}
				path := filepath.Join("testdata", "accesslog", format+".golden")
				if *updateAccessLog && direct {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if got != string(want) {
					t.Errorf("access log:\n%s\nwant (%s):\n%s", got, path, want)
				}
			})
		}
	}
}

// Reset empties the buffer.
func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
