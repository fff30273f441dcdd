package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/textsafe"
)

// exportCommand is `trail export`: it asks a running server for an export
// of one organization's events (POST /audit_logs/exports), follows its
// progress, downloads the file and says what it holds.
type exportCommand struct {
	stdout, stderr io.Writer
	// poll is how often the export's state is read; default 500 ms.
	poll time.Duration
}

const exportUsage = `Usage:
  trail export --server URL --api-key KEY --org ID [--from T] [--to T] [--action A,…]
               [--actor-id ID,…] [--actor-name NAME,…] [--target TYPE,…] [--format csv|ndjson] [--out FILE]

Exports the organization's events whose occurred_at is in [--from, --to) and that
match every filter given (within one filter, any of its values), as CSV or as an
NDJSON bundle that 'trail verify FILE --key VKEY' checks offline. T is an RFC 3339
time (2026-11-01T00:00:00Z) or a date (2026-11-01).`

// listFlag is a comma-separated (or repeated) list of values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func (c *exportCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags:\n", exportUsage)
		fs.PrintDefaults()
	}
	server := setting{fs}.String("server", "TRAIL_SERVER", "", "URL of the Trail server, e.g. https://trail.example.com")
	apiKey := setting{fs}.String("api-key", "TRAIL_API_KEY", "", "API key with the exports scope")
	org := setting{fs}.String("org", "TRAIL_ORG", "", "organization id (org_…)")
	from := fs.String("from", "1970-01-01T00:00:00Z", "export events that occurred at or after this time")
	to := fs.String("to", "", "export events that occurred before this time (default: a day from now, i.e. everything)")
	format := fs.String("format", "csv", "csv, or ndjson for a bundle trail verify checks")
	out := fs.String("out", "", "file to write (default <export id>.<format> in the current directory); - for standard output")
	var actions, actorIDs, actorNames, targets listFlag
	fs.Var(&actions, "action", "only these actions (comma-separated or repeated)")
	fs.Var(&actorIDs, "actor-id", "only events of these actor ids")
	fs.Var(&actorNames, "actor-name", "only events of these actor names")
	fs.Var(&targets, "target", "only events with a target of one of these types")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *server == "":
		return usagef("--server is required (or TRAIL_SERVER): the URL of the Trail server")
	case *apiKey == "":
		return usagef("--api-key is required (or TRAIL_API_KEY): a key with the exports scope")
	case *org == "":
		return usagef("--org is required: the id of the organization whose events to export")
	case *format != "csv" && *format != "ndjson":
		return usagef("--format must be csv or ndjson, not %q", *format)
	}
	start, err := parseExportTime("--from", *from)
	if err != nil {
		return err
	}
	end := time.Now().Add(24 * time.Hour).UTC()
	if *to != "" {
		if end, err = parseExportTime("--to", *to); err != nil {
			return err
		}
	}
	if !start.Before(end) {
		return usagef("--from (%s) must be before --to (%s)", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	cl, err := newClient(*server, *apiKey)
	if err != nil {
		return err
	}
	if c.poll <= 0 {
		c.poll = 500 * time.Millisecond
	}

	began := time.Now()
	e, err := cl.CreateExport(ctx, client.ExportRequest{OrganizationID: *org, Format: *format,
		RangeStart: start, RangeEnd: end, Actions: actions, ActorIDs: actorIDs, ActorNames: actorNames, Targets: targets})
	if err != nil {
		return fmt.Errorf("couldn't request the export: %w", serverError(*server, err))
	}
	fmt.Fprintf(c.stderr, "Export %s of %s requested.\n", e.ID, *org)

	bar := newExportBar(c.stderr, e.Progress.EventsTotal, "reading events")
	for e.State == client.ExportPending {
		bar.set(e.Progress.EventsRead, e.Progress.EventsExported)
		select {
		case <-ctx.Done():
			bar.done()
			return fmt.Errorf("stopped waiting; the export goes on on the server: GET /audit_logs/exports/%s: %w", e.ID, ctx.Err())
		case <-time.After(c.poll):
		}
		if e, err = cl.GetExport(ctx, e.ID); err != nil {
			bar.done()
			return fmt.Errorf("couldn't read the export's state: %w", serverError(*server, err))
		}
	}
	bar.set(e.Progress.EventsRead, e.Progress.EventsExported)
	bar.done()
	if e.State != client.ExportReady {
		return fmt.Errorf("export %s ended %s: %s", e.ID, e.State, e.Error)
	}

	path := *out
	if path == "" {
		path = e.ID + "." + *format
	}
	d, err := cl.OpenExport(ctx, e.ID)
	if err != nil {
		return fmt.Errorf("couldn't download the export: %w", serverError(*server, err))
	}
	defer d.Body.Close()
	size, err := c.download(d, path)
	if err != nil {
		return err
	}
	where := path
	if path == "-" {
		where = "standard output"
	}
	fmt.Fprintf(c.stdout, "Exported %s of %s events of %s to %s (%s, %s) in %s.\n",
		commas(e.Progress.EventsExported), commas(e.Progress.EventsRead), *org, where, *format, byteSize(size),
		time.Since(began).Round(100*time.Millisecond))
	if *format == "ndjson" && path != "-" {
		fmt.Fprintf(c.stdout, "Check it offline: trail verify %s --key \"$(trail log key --server %s)\"\n", path, *server)
	}
	return nil
}

func parseExportTime(flagName, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("%s %q: give an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)", flagName, s)
}

// download saves the export's file d to path (- for stdout), through a
// file renamed into place once complete.
func (c *exportCommand) download(d *client.Download, path string) (int64, error) {
	var err error
	var w io.Writer = c.stdout
	if path == "-" && isTerminal(c.stdout) {
		// Events carry free text (metadata, user agents) that may hold
		// terminal escapes: shown escaped, never obeyed. A pipe or a file
		// gets the bytes as they are.
		tw := textsafe.NewWriter(c.stdout)
		defer tw.Close()
		w = tw
	}
	var f *os.File
	tmp := path + ".partial"
	if path != "-" {
		if f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return 0, fmt.Errorf("couldn't create %s: %w", tmp, err)
		}
		defer func() {
			if f != nil {
				f.Close()
				os.Remove(tmp)
			}
		}()
		w = f
	}
	bar := newByteBar(c.stderr, d.Size)
	n, err := io.Copy(io.MultiWriter(w, bar), d.Body)
	bar.Finish()
	if err != nil {
		return n, fmt.Errorf("the download broke off after %s: %w", byteSize(n), err)
	}
	if d.Size >= 0 && n != d.Size {
		return n, fmt.Errorf("the download ended after %s of %s", byteSize(n), byteSize(d.Size))
	}
	if f == nil {
		return n, nil
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("couldn't write %s: %w", tmp, err)
	}
	f = nil
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return n, fmt.Errorf("couldn't move the download to %s: %w", path, err)
	}
	return n, nil
}

// exportBar shows a job's progress: a progress bar on a terminal, a plain
// line every few seconds otherwise.
type exportBar struct {
	bar   *progressbar.ProgressBar // nil when not a terminal
	w     io.Writer
	total int64
	last  time.Time
}

func newExportBar(w io.Writer, total int64, what string) *exportBar {
	b := &exportBar{w: w, total: total}
	if isTerminal(w) {
		b.bar = progressbar.NewOptions64(max(total, 1), progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	return b
}

func (b *exportBar) set(read, exported int64) {
	if b.bar != nil {
		_ = b.bar.Set64(read)
		return
	}
	if time.Since(b.last) >= 2*time.Second {
		b.last = time.Now()
		fmt.Fprintf(b.w, "exporting: %s of %s events read, %s selected\n", commas(read), commas(b.total), commas(exported))
	}
}

func (b *exportBar) done() {
	if b.bar != nil {
		_ = b.bar.Finish()
	}
}

// newByteBar is the download's progress bar (writing nowhere when w is not
// a terminal).
func newByteBar(w io.Writer, size int64) *progressbar.ProgressBar {
	if !isTerminal(w) {
		w = io.Discard
	}
	return progressbar.NewOptions64(size, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("downloading"),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
}
