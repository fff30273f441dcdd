package console

import (
	"context"
	"fmt"
	"html/template"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// Operations connects the console's operations pages (docs/CONSOLE.md):
// retention, stream health and event rates on the organizations list,
// schemas, log streams, integrity and the system. Each part left nil hides
// what needs it.
type Operations struct {
	// Retention reads and sets organizations' retention; DefaultDays is
	// the deployment's default and RetentionChanged, when set, wakes the
	// retention sweeper after a change.
	Retention        store.RetentionStore
	DefaultDays      int
	RetentionChanged func()

	// Events counts and reads an organization's events: the event-rate
	// charts and the schema preview.
	Events EventReader

	// Streams manages log streams (the same rules as the API and the
	// Admin Portal).
	Streams *streamadmin.Manager

	// Schemas stores schema versions; Forget, when set, drops a cached
	// compiled schema after a new version (schema.Registry.Forget).
	Schemas store.SchemaStore
	Forget  func(kind, name string)

	// Ledger reads checkpoints and witness cosignatures; Quorum is how
	// many cosignatures each checkpoint should get (0: no witnesses).
	Ledger Ledger
	Quorum int

	// Metrics is this replica's metrics registry (what /metrics serves);
	// Leases reads who holds each background lease; DiskReserve is the
	// disk guard's reserve in bytes (0: none).
	Metrics     prometheus.Gatherer
	Leases      store.LeaseStore
	DiskReserve int64
}

// EventReader is what the console reads of an organization's events.
type EventReader interface {
	SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error)
	EventHistogram(ctx context.Context, org string, from time.Time, step time.Duration, n int) ([]int64, error)
	OrganizationActions(ctx context.Context, org string, limit int) ([]string, error)
}

// Ledger is what the integrity and system pages read of the verifiable log.
type Ledger interface {
	LatestCheckpoint(ctx context.Context, org string) ([]byte, error)
	CheckpointsAfter(ctx context.Context, org string, after int64, limit int) ([]store.StoredCheckpoint, error)
	LatestCosignatures(ctx context.Context, org string) ([]ledger.Cosignature, error)
	PendingLogs(ctx context.Context) ([]ledger.LogState, error)
}

// operationsRoutes adds the operations pages' routes.
func (c *Console) operationsRoutes() {
	c.mux.Handle("GET /console/organizations/{id}/rate.svg", c.session(c.rateChart))
	c.mux.Handle("POST /console/organizations/{id}/retention", c.session(c.csrf(c.setRetention)))
	c.mux.Handle("GET /console/schemas", c.session(c.schemas))
	c.mux.Handle("GET /console/schemas/{action}", c.session(c.schemaVersions))
	c.mux.Handle("POST /console/schemas/{action}", c.session(c.csrf(c.createSchema)))
	c.mux.Handle("GET /console/streams", c.session(c.streams))
	c.mux.Handle("POST /console/streams/{id}/test", c.session(c.csrf(c.testStream)))
	c.mux.Handle("POST /console/streams/{id}/pause", c.session(c.csrf(c.pauseStream)))
	c.mux.Handle("POST /console/streams/{id}/resume", c.session(c.csrf(c.resumeStream)))
	c.mux.Handle("GET /console/integrity", c.session(c.integrity))
	c.mux.Handle("GET /console/system", c.session(c.system))
}

// operationsPages are the operations pages' templates.
var operationsPages = []string{"schemas", "schema", "streams", "streamtest", "integrity", "system"}

// operationsFuncs are the template functions of the operations pages.
func operationsFuncs() template.FuncMap {
	return template.FuncMap{
		"commas": func(n int64) string { return commas(n) },
		"plural": plural,
		"hasInt": func(list []int, v int) bool { return slices.Contains(list, v) },
		"inc":    func(n int) int { return n + 1 },
		"dec":    func(n int) int { return n - 1 },
		"seconds": func(s float64) string {
			switch {
			case s < 1:
				return fmt.Sprintf("%.0f ms", s*1000)
			case s < 120:
				return fmt.Sprintf("%.1f s", s)
			case s < 7200:
				return fmt.Sprintf("%.0f min", s/60)
			default:
				return fmt.Sprintf("%.1f h", s/3600)
			}
		},
		"bytes": func(n int64) string {
			switch {
			case n >= 1<<30:
				return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
			case n >= 1<<20:
				return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
			default:
				return fmt.Sprintf("%d KiB", n>>10)
			}
		},
		"svg": func(b []byte) template.HTML { return template.HTML(b) }, // only charts barsSVG drew, labels escaped
	}
}
