package client_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

// benchEvent is an event of about 600 bytes of JSON, the size trail bench
// ingest sends by default.
func benchEvent(i int) client.Event {
	return client.Event{
		Action:     "user.signed_in",
		OccurredAt: time.Now(),
		Actor:      client.Entity{Type: "user", ID: "user_01HZX3Q9R8M4K2W7N5P6T1V0AB", Name: "Ada Lovelace", Metadata: map[string]any{"role": "admin", "team": "platform"}},
		Targets: []client.Entity{{Type: "team", ID: "team_01HZX3Q9R8M4K2W7N5P6T1V0CD", Name: "Platform"},
			{Type: "document", ID: "doc_01HZX3Q9R8M4K2W7N5P6T1V0EF", Name: "Quarterly report"}},
		Context:  client.EventContext{Location: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},
		Metadata: map[string]any{"n": i, "request_id": "req_8f14e45fceea167a5a36dedd4bea2543", "mfa": true},
	}
}

// sink accepts every batch at once, storing nothing.
func sink(b *testing.B) *client.Client {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"data":[]}`))
	}))
	b.Cleanup(srv.Close)
	c, _ := client.New(srv.URL, "sk_bench")
	return c
}

// BenchmarkPublish is what Publish costs the caller's goroutine without a
// spool: the queue is large enough that it never waits for room, so the
// figure is the hand-over alone.
func BenchmarkPublish(b *testing.B) {
	p, err := client.NewPublisher(sink(b), client.PublisherOptions{QueueSize: 1 << 21})
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvent(0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Publish(ctx, "org_bench", ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	p.Close(context.Background())
}

// BenchmarkPublishSpool is Publish with a spool under each fsync policy,
// from 16 goroutines at once (the writer groups their events, one write and
// one fsync for a group). Trail is a sink that stores nothing.
func BenchmarkPublishSpool(b *testing.B) {
	for _, pol := range []struct {
		name string
		sync client.SyncPolicy
	}{{"every-batch", client.SyncEveryBatch}, {"interval", client.SyncInterval}, {"never", client.SyncNever}} {
		b.Run(pol.name, func(b *testing.B) {
			p, err := client.NewPublisher(sink(b), client.PublisherOptions{SpoolDir: b.TempDir(), Sync: pol.sync, MaxSpoolBytes: 8 << 30})
			if err != nil {
				b.Fatal(err)
			}
			ev := benchEvent(0)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := p.Publish(ctx, "org_bench", ev); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			p.Close(context.Background())
		})
	}
}

// BenchmarkSpoolVersusBareFsync compares the spool's write rate with the
// bare loop it cannot beat on the same disk: append the same frames to a
// file, fsync after each group of the same size.
func BenchmarkSpoolVersusBareFsync(b *testing.B) {
	payload := []byte(strings.Repeat("x", 700)) // about one encoded event
	for _, group := range []int{1, 16} {
		b.Run(fmt.Sprintf("bare-append-fsync-group-%d", group), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "bare"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			frame := make([]byte, 8+len(payload))
			binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
			binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
			copy(frame[8:], payload)
			buf := make([]byte, 0, group*len(frame))
			b.SetBytes(int64(len(frame)))
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				buf = buf[:0]
				for range min(group, b.N-i) {
					buf = append(buf, frame...)
				}
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("spool-every-batch-parallelism-%d", par), func(b *testing.B) {
			// RunParallel runs par goroutines per core.
			p, err := client.NewPublisher(sink(b), client.PublisherOptions{SpoolDir: b.TempDir(), Sync: client.SyncEveryBatch, MaxSpoolBytes: 8 << 30})
			if err != nil {
				b.Fatal(err)
			}
			ev := benchEvent(0)
			ctx := context.Background()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := p.Publish(ctx, "org_bench", ev); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			p.Close(context.Background())
		})
	}
}

// BenchmarkPublisherIntoTrail is the publisher's throughput into a real
// trail serve on this machine: b.N events published and delivered (Close
// returns once Trail stored them all). Compare with trail bench ingest
// --batch 1000 --embedded in the same run (docs/PERFORMANCE.md).
func BenchmarkPublisherIntoTrail(b *testing.B) {
	srv := trailtest.Start(b, trailtest.Options{})
	ctx := context.Background()
	c, _ := client.New(srv.URL, srv.Key)
	org, err := c.CreateOrganization(ctx, "Bench", "")
	if err != nil {
		b.Fatal(err)
	}
	for _, conc := range []int{4, 16} {
		b.Run(fmt.Sprintf("memory-concurrency-%d", conc), func(b *testing.B) {
			p, err := client.NewPublisher(c, client.PublisherOptions{BatchSize: 1000, Concurrency: conc, QueueSize: 100_000})
			if err != nil {
				b.Fatal(err)
			}
			ev := benchEvent(0)
			var published atomic.Int64
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := p.Publish(ctx, org.ID, ev); err != nil {
					b.Fatal(err)
				}
				published.Add(1)
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
	b.Run("spool-every-batch", func(b *testing.B) {
		p, err := client.NewPublisher(c, client.PublisherOptions{BatchSize: 1000, SpoolDir: b.TempDir(), MaxSpoolBytes: 8 << 30})
		if err != nil {
			b.Fatal(err)
		}
		ev := benchEvent(0)
		b.ResetTimer()
		start := time.Now()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := p.Publish(ctx, org.ID, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}
