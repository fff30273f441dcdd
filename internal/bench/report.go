// Package bench measures a running Trail server the way pgbench or
// redis-benchmark measure theirs: it sends load (single events, batches,
// searches), verifies bundles, and reports throughput, latency percentiles,
// errors by status and the server's peak memory. It also checks afterwards
// that every acknowledged event is stored exactly once. `trail bench` is
// its command line; internal/loadgen sends the requests.
package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trailaudit/trail/internal/loadgen"
)

// Report is what one benchmark run measured. It is printed as a table for
// people and as one JSON object for scripts.
type Report struct {
	Mode   string `json:"mode"`   // ingest, query or verify
	RunID  string `json:"run_id"` // prefix of the run's bench_ids
	Target string `json:"target"` // "embedded" or the server URL

	Loop        string  `json:"loop,omitempty"` // "closed" or "open"
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"` // requests scheduled per second (open loop)
	Batch       int     `json:"batch,omitempty"`
	Orgs        int     `json:"orgs,omitempty"`
	EventBytes  int     `json:"event_bytes,omitempty"` // JSON size of one event

	Requests          int64            `json:"requests"`
	Errors            int64            `json:"errors"`
	ErrorsByStatus    map[string]int64 `json:"errors_by_status"` // "0" means no answer
	FirstError        string           `json:"first_error,omitempty"`
	Events            int64            `json:"events"` // events acknowledged
	ElapsedSeconds    float64          `json:"elapsed_seconds"`
	RequestsPerSecond float64          `json:"requests_per_second"`
	EventsPerSecond   float64          `json:"events_per_second"`
	Latency           Latency          `json:"latency"`

	Queries []QueryStats `json:"queries,omitempty"`
	Verify  *VerifyStats `json:"verify,omitempty"`
	Export  *ExportStats `json:"export,omitempty"`

	ServerRSS *RSS `json:"server_peak_rss,omitempty"`
	// ServerCPU is the CPU time the server used during the load (ingest
	// runs whose server exports process_cpu_seconds_total on a known
	// operator listener).
	ServerCPU *CPU `json:"server_cpu,omitempty"`
	// Machine is the CPU the machine lent to other guests during the load
	// (ingest and query runs, where the kernel says).
	Machine *Machine `json:"machine,omitempty"`

	Record         string `json:"record,omitempty"` // file of acknowledged events
	RecordedEvents int64  `json:"recorded_events,omitempty"`
}

// Latency summarizes the latencies of successful requests, in milliseconds.
type Latency struct {
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Exact is false when the run kept a uniform sample of its latencies
	// (more than loadgen.DefaultMaxSamples) and the percentiles are
	// estimates; the maximum is always exact.
	Exact   bool  `json:"exact"`
	Samples int64 `json:"samples"`
}

// QueryStats are the results of one kind of search in a query run.
type QueryStats struct {
	Kind       string  `json:"kind"`
	Example    string  `json:"example"` // the query string of one of them
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	EmptyPages int64   `json:"empty_pages"`
	Latency    Latency `json:"latency"`
}

// VerifyStats compare ledger.Verify with SHA-256 of the same bundle file.
type VerifyStats struct {
	Organization    string  `json:"organization"`
	Records         int64   `json:"records"`
	Bytes           int64   `json:"bytes"`
	DownloadSeconds float64 `json:"download_seconds"`
	Runs            int     `json:"runs"`           // each timing is the best of this many
	VerifySeconds   float64 `json:"verify_seconds"` // ledger.Verify of the file
	RecordsPerSec   float64 `json:"records_per_second"`
	VerifyMBPerSec  float64 `json:"verify_mb_per_second"`
	SHA256Seconds   float64 `json:"sha256_seconds"` // SHA-256 of the same file
	SHA256MBPerSec  float64 `json:"sha256_mb_per_second"`
	RatioToSHA256   float64 `json:"ratio_to_sha256"` // verify time / SHA-256 time
	Verified        string  `json:"verified"`        // what Verify proved
}

// RSS is the server's peak resident set size and how it was measured.
type RSS struct {
	Bytes int64 `json:"bytes"`
	// Source: "VmHWM" (the embedded server's own high-water mark) or
	// "sampled" (the largest process_resident_memory_bytes seen on
	// /metrics during the run: a lower bound of the true peak).
	Source  string `json:"source"`
	Samples int    `json:"samples,omitempty"`
}

// CPU is the server's CPU time (user and system) over a run, and per
// acknowledged request and event.
type CPU struct {
	Seconds float64 `json:"seconds"`
	// Cores is Seconds over the time between the two readings: how many
	// of the machine's cores the server kept busy.
	Cores            float64 `json:"cores"`
	MicrosPerRequest float64 `json:"us_per_request"`
	MicrosPerEvent   float64 `json:"us_per_event"`
	Source           string  `json:"source"` // "process_cpu_seconds_total"
}

// LatencyOf summarizes s.
func LatencyOf(s *loadgen.Samples) Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{P50Ms: ms(s.Percentile(50)), P90Ms: ms(s.Percentile(90)), P99Ms: ms(s.Percentile(99)),
		MaxMs: ms(s.Max()), Exact: s.Exact(), Samples: s.Count()}
}

// fill sets the report's totals from a load run's result.
func (r *Report) fill(res loadgen.Result, eventsPerRequest int) {
	r.Requests, r.Errors, r.FirstError = res.Requests, res.Errors, res.FirstErr
	r.ErrorsByStatus = map[string]int64{}
	for s, n := range res.ByStatus {
		r.ErrorsByStatus[strconv.Itoa(s)] = n
	}
	r.ElapsedSeconds = res.Elapsed.Seconds()
	r.RequestsPerSecond = res.PerSecond()
	if eventsPerRequest > 0 {
		r.Events = (res.Requests - res.Errors) * int64(eventsPerRequest)
		r.EventsPerSecond = r.RequestsPerSecond * float64(eventsPerRequest)
	}
	r.Latency = LatencyOf(res.Samples)
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	fmt.Fprintf(tw, "trail bench %s against %s (run %s)\n", r.Mode, r.Target, r.RunID)
	if r.Loop != "" {
		load := fmt.Sprintf("closed loop, %d clients", r.Concurrency)
		if r.Loop == "open" {
			load = fmt.Sprintf("open loop, %s req/s scheduled, at most %d in flight", trimFloat(r.Rate), r.Concurrency)
		}
		if r.Batch > 0 {
			load += fmt.Sprintf(", batches of %d", r.Batch)
		}
		if r.Orgs > 0 {
			load += fmt.Sprintf(", %d organization%s", r.Orgs, map[bool]string{true: "s"}[r.Orgs != 1])
		}
		if r.EventBytes > 0 {
			load += fmt.Sprintf(", %d-byte events", r.EventBytes)
		}
		row("load", "%s", load)
	}
	if r.Mode != "verify" && r.Mode != "export" {
		row("requests", "%d in %.2fs (%d errors)", r.Requests, r.ElapsedSeconds, r.Errors)
		tp := fmt.Sprintf("%.1f req/s", r.RequestsPerSecond)
		if r.Events > 0 {
			tp += fmt.Sprintf(", %.1f events/s (%d events)", r.EventsPerSecond, r.Events)
		}
		row("throughput", "%s", tp)
		row("latency", "%s", latencyText(r.Latency))
		row("errors", "%s", errorsText(r.ErrorsByStatus, r.FirstError))
	}
	for _, q := range r.Queries {
		row("  "+q.Kind, "%d requests, %d errors, %d empty; %s", q.Requests, q.Errors, q.EmptyPages, latencyText(q.Latency))
	}
	if v := r.Verify; v != nil {
		row("bundle", "%d records of %s, %.1f MB, downloaded in %.2fs", v.Records, v.Organization, float64(v.Bytes)/1e6, v.DownloadSeconds)
		row("ledger.Verify", "%.0f records/s, %.1f MB/s (%.3fs, best of %d)", v.RecordsPerSec, v.VerifyMBPerSec, v.VerifySeconds, v.Runs)
		row("sha256", "%.1f MB/s (%.3fs, best of %d)", v.SHA256MBPerSec, v.SHA256Seconds, v.Runs)
		row("ratio", "verify takes %.1f× as long as sha256 of the same file", v.RatioToSHA256)
		row("verified", "%s", v.Verified)
	}
	if x := r.Export; x != nil {
		row("export", "%d of %d events of %s to %s, %.1f MB (%s)", x.Events, x.EventsRead, x.Organization, x.Format, float64(x.Bytes)/1e6, x.ExportID)
		row("export time", "%.0f events/s (%.2fs from request to ready, queue included)", x.EventsPerSecond, x.ExportSeconds)
		row("baseline", "%.0f events/s (%.2fs to stream the same records raw: the log bundle)", x.BaselineEventsPerSecond, x.BaselineSeconds)
		row("ratio", "the export takes %.2f× as long as reading the records raw", x.RatioToBaseline)
		row("download", "%.2fs", x.DownloadSeconds)
	}
	if c := r.ServerCPU; c != nil {
		row("server CPU", "%.2fs (%.2f cores): %.0f µs per acknowledged request, %.1f µs per event", c.Seconds, c.Cores, c.MicrosPerRequest, c.MicrosPerEvent)
	}
	if m := r.Machine; m != nil {
		text := fmt.Sprintf("%.2fs of CPU lent to other guests by the hypervisor (%.1f %% of %d cores)", m.StolenSeconds, m.StolenShare*100, m.Cores)
		if m.StolenShare > noisyShare {
			text += ": rates not comparable with quieter runs"
		}
		row("machine", "%s", text)
	}
	switch {
	case r.ServerRSS == nil:
		row("server RSS", "unknown (the server exports no process_resident_memory_bytes)")
	case r.ServerRSS.Source == "sampled":
		row("server RSS", "peak %.1f MB (sampled from /metrics, %d samples: a lower bound)", float64(r.ServerRSS.Bytes)/1e6, r.ServerRSS.Samples)
	default:
		row("server RSS", "peak %.1f MB (%s of the embedded server)", float64(r.ServerRSS.Bytes)/1e6, r.ServerRSS.Source)
	}
	if r.Record != "" {
		row("record", "%d acknowledged events written to %s", r.RecordedEvents, r.Record)
	}
	return tw.Flush()
}

func latencyText(l Latency) string {
	if l.Samples == 0 {
		return "no successful request"
	}
	how := "exact"
	if !l.Exact {
		how = "estimated from a sample"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s ms (%s)", trimFloat(l.P50Ms), trimFloat(l.P90Ms), trimFloat(l.P99Ms), trimFloat(l.MaxMs), how)
}

func errorsText(by map[string]int64, first string) string {
	if len(by) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(by)) {
		name := "HTTP " + s
		if s == "0" {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, by[s]))
	}
	text := strings.Join(parts, ", ")
	if first != "" {
		text += "; first: " + first
	}
	return text
}

func trimFloat(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}
