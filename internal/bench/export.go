package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/trailaudit/trail/client"
)

// ExportOptions configure an export run.
type ExportOptions struct {
	Org    string // organization to export; with Seed, created when empty
	Seed   int64  // events to store first
	Format string // "csv" (default) or "ndjson"
	Target string
	// Restart, when set, is called once the events are stored and signed,
	// before anything is measured: it restarts the server (the embedded
	// one) so that its peak RSS is the export's, not the ingest's, and
	// returns the client of the new process.
	Restart func(ctx context.Context) (*Client, error)
	// Step, when set, is told what the run is doing (for a progress line).
	Step func(what string)
}

// ExportStats are the results of an export run.
type ExportStats struct {
	Organization string `json:"organization"`
	Format       string `json:"format"`
	ExportID     string `json:"export_id"`
	Events       int64  `json:"events"`      // events exported
	EventsRead   int64  `json:"events_read"` // events the job read
	Bytes        int64  `json:"bytes"`       // size of the file
	// ExportSeconds runs from POST /audit_logs/exports to the export being
	// ready (seen by polling every 50 ms): the job, plus its time in the
	// queue.
	ExportSeconds   float64 `json:"export_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	DownloadSeconds float64 `json:"download_seconds"`
	// The baseline reads the same records raw from the same server: the
	// log bundle of the organization (records as stored, with hashes),
	// streamed and discarded. Both run on a warm page cache (the records
	// are read once before either).
	BaselineSeconds         float64 `json:"baseline_seconds"`
	BaselineEventsPerSecond float64 `json:"baseline_events_per_second"`
	RatioToBaseline         float64 `json:"ratio_to_baseline"` // export time / baseline time
}

// Export stores events (optionally), then times an export of the whole of
// one organization's log to CSV (or NDJSON) against reading the same
// records raw from the same server.
func Export(ctx context.Context, c *Client, opts ExportOptions) (Report, error) {
	rep := Report{Mode: "export", RunID: NewRunID(), Target: opts.Target}
	step := func(s string) {
		if opts.Step != nil {
			opts.Step(s)
		}
	}
	if opts.Format == "" {
		opts.Format = "csv"
	}
	org, err := seedOrganization(ctx, c, rep.RunID, opts.Org, opts.Seed, step)
	if err != nil {
		return rep, err
	}
	if org == "" {
		return rep, fmt.Errorf("name the organization to export (--org), or store events first with --seed N")
	}
	rep.Orgs = 1
	step("waiting for a checkpoint that covers them")
	if err := waitCheckpoint(ctx, c, org, opts.Seed, 5*time.Minute); err != nil {
		return rep, err
	}
	if opts.Restart != nil {
		step("restarting the server")
		if c, err = opts.Restart(ctx); err != nil {
			return rep, err
		}
	}
	st := &ExportStats{Organization: org, Format: opts.Format}
	rep.Export = st
	// Both timings below read the same records: read them once first, so
	// that neither pays for bringing the database file into the page cache
	// and the other not.
	step("warming up: reading the records once")
	bundle := func() (int64, error) {
		var n countWriter
		err := c.API.PullBundle(ctx, org, client.BundleOptions{}, &n)
		return int64(n), err
	}
	if _, err := bundle(); err != nil {
		return rep, fmt.Errorf("couldn't read the log bundle: %w", err)
	}

	step("exporting")
	t0 := time.Now()
	a, err := c.API.CreateExport(ctx, client.ExportRequest{OrganizationID: org, RangeStart: time.Unix(0, 0).UTC(),
		RangeEnd: time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second), Format: opts.Format})
	if err != nil {
		return rep, fmt.Errorf("couldn't create the export: %w", err)
	}
	st.ExportID = a.ID
	for a.State == client.ExportPending {
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		id := a.ID
		if a, err = c.API.GetExport(ctx, id); err != nil {
			return rep, fmt.Errorf("couldn't read export %s: %w", id, err)
		}
		step(fmt.Sprintf("exporting: %d of %d events read", a.Progress.EventsRead, a.Progress.EventsTotal))
	}
	st.ExportSeconds = time.Since(t0).Seconds()
	if a.State != client.ExportReady {
		return rep, fmt.Errorf("export %s ended %s: %s", a.ID, a.State, a.Error)
	}
	st.Events, st.EventsRead = a.Progress.EventsExported, a.Progress.EventsRead
	st.EventsPerSecond = float64(st.EventsRead) / st.ExportSeconds

	step("downloading the export")
	t1 := time.Now()
	n, err := c.API.DownloadExport(ctx, a.ID, io.Discard)
	if err != nil {
		return rep, fmt.Errorf("couldn't download export %s: %w", a.ID, err)
	}
	st.Bytes, st.DownloadSeconds = n, time.Since(t1).Seconds()

	step("reading the same records raw (baseline)")
	t2 := time.Now()
	if _, err := bundle(); err != nil {
		return rep, fmt.Errorf("couldn't read the log bundle (the baseline): %w", err)
	}
	st.BaselineSeconds = time.Since(t2).Seconds()
	st.BaselineEventsPerSecond = float64(st.EventsRead) / st.BaselineSeconds
	st.RatioToBaseline = st.ExportSeconds / st.BaselineSeconds
	return rep, nil
}

// countWriter counts the bytes written to it.
type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) {
	*w += countWriter(len(p))
	return len(p), nil
}
