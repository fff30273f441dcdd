package export_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/store"
)

var benchEvents = flag.Int("export-events", 100_000, "events in the log of the export benchmarks (the issue's figure is 1,000,000)")

// setupBench stores n realistic events (about 600 bytes each) in one
// organization, integrated.
func setupBench(b *testing.B, n int) *fixture {
	b.Helper()
	f := newFixture(b)
	ctx := context.Background()
	if err := f.st.CreateOrganization(ctx, store.Organization{ID: "org_bench", Name: "bench", CreatedAt: epoch, UpdatedAt: epoch}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for done := 0; done < n; {
		k := min(4096, n-done)
		var sub store.Submission
		for i := done; i < done+k; i++ {
			raw := fmt.Sprintf(`{"action":"user.signed_in","occurred_at":%q,"actor":{"id":"user_%d","type":"user","name":"User %d","metadata":{"role":"admin"}},`+
				`"targets":[{"id":"team_%d","type":"team","name":"Team %d"},{"id":"doc_%d","type":"document"}],`+
				`"context":{"location":"203.0.113.%d","user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},`+
				`"metadata":{"request_id":"req_%08d","attempt":%d,"ok":true}}`,
				epoch.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%1000, i%1000, i%50, i%50, i, i%250, i, i%3)
			d, err := event.ParseEvent([]byte(raw), now, event.DefaultLimits())
			if err != nil {
				b.Fatal(err)
			}
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: "org_bench", ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
		}
		res, err := f.st.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			b.Fatalf("Append: %v %v", err, res[0].Err)
		}
		done += k
		if done%(16*4096) == 0 { // within the bound on events waiting for the indexer
			for {
				k, err := f.st.IndexPending(ctx, 16_384)
				if err != nil {
					b.Fatal(err)
				}
				if k == 0 {
					break
				}
			}
		}
	}
	if err := f.in.WaitIdle(ctx); err != nil {
		b.Fatal(err)
	}
	for { // the search file, where exports of a date range look up its start
		k, err := f.st.IndexPending(ctx, 16_384)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	return f
}

// BenchmarkExport measures export jobs (Service.Run, without the queue)
// over one organization's whole log, beside the baseline of reading the
// same records raw from the store (ledger.Storage.ReadRecords). Run with
// -export-events 1000000 for the figure.
func BenchmarkExport(b *testing.B) {
	f := setupBench(b, *benchEvents)
	ctx := context.Background()
	n := int64(*benchEvents)
	b.Run("baseline-read-raw", func(b *testing.B) {
		for b.Loop() {
			var bytes int64
			if err := f.st.ReadRecords(ctx, "org_bench", 0, n, func(_ int64, r []byte) error { bytes += int64(len(r)); return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, format := range []string{export.FormatCSV, export.FormatNDJSON} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				e, err := f.svc.Create(ctx, "org_bench", format, store.ExportFilter{})
				if err != nil {
					b.Fatal(err)
				}
				if err := f.svc.Run(ctx, e.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	// The last tenth of the log by occurred_at: the job looks up where the
	// range starts and reads from there. Before, it read the whole log, at
	// least the cost of baseline-read-raw.
	b.Run("csv-last-tenth", func(b *testing.B) {
		var read int64
		for b.Loop() {
			e, err := f.svc.Create(ctx, "org_bench", export.FormatCSV, store.ExportFilter{
				RangeStart: epoch.Add(time.Duration(n-n/10) * time.Second), RangeEnd: epoch.Add(time.Duration(n) * time.Second)})
			if err != nil {
				b.Fatal(err)
			}
			if err := f.svc.Run(ctx, e.ID); err != nil {
				b.Fatal(err)
			}
			got, err := f.svc.Get(ctx, e.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Exported != n/10 {
				b.Fatalf("exported %d events, want %d", got.Exported, n/10)
			}
			read = got.Processed
		}
		b.ReportMetric(float64(read), "events-read")
	})
}
